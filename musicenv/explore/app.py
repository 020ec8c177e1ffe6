"""The Streamlit script of ``musicenv explore``: the sidebar (page, world) and the chosen page.

Run it through ``musicenv explore`` (:mod:`musicenv.explore.cli`), which also binds the server to
localhost; ``streamlit run musicenv/explore/app.py`` works too. Options arrive in the environment
variables of :class:`musicenv.explore.data.Settings`.
"""

from __future__ import annotations

import streamlit as st

from musicenv.explore import data, listener_page, resources, results_page, session_page, sound_page

# The pages that look at a world; the Results page reads an evaluation folder instead.
WORLD_PAGES = {
    "Listener": listener_page.render,
    "Session": session_page.render,
    "Explore by sound": sound_page.render,
}
PAGES = (*WORLD_PAGES, "Results")


def main() -> None:
    """Draw the sidebar, load the world (cached), and draw the chosen page; bad input is a message."""
    st.set_page_config(page_title="musicenv explore", layout="wide")
    settings = data.Settings.from_environment()
    with st.sidebar:
        st.title("musicenv explore")
        page = st.radio("Page", PAGES, key="page")
        source = st.text_input(
            "World", value=settings.world, key="world_source", help="'default' or a saved world folder"
        )
    if page == "Results":  # results need no world
        results_page.render(settings)
        return
    try:
        bundle = resources.world_bundle(source)
    except data.ExploreError as error:
        st.error(str(error))
        return
    with st.sidebar:
        world = bundle.world
        truth = "yes" if bundle.groundtruth is not None else "no (learned from logs without one)"
        st.caption(f"{len(world.user_ids)} listeners · {len(world.tracks)} tracks · ground truth: {truth}")
    WORLD_PAGES[page](bundle, settings)


main()
