"""What the app keeps across reruns and sessions (``st.cache_resource``), and the shared page widgets.

A page answers within a second because the world, its ground truth and the agent registry are
loaded once per server process, not once per click; the first load shows a spinner.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from musicenv.explore import data


@st.cache_resource(show_spinner="Loading the world (the first time takes a few seconds) ...")
def world_bundle(source: str) -> data.WorldBundle:
    """:func:`musicenv.explore.data.open_world`, once per source and server process."""
    return data.open_world(source)


@st.cache_resource(show_spinner="Loading the agent registry ...")
def agent_names() -> list[str]:
    """:func:`musicenv.explore.data.agent_names`, once per server process."""
    return data.agent_names()


LISTENER_KEY = "listener_id"
"""Session-state key of the listener chosen on any page (kept when the page changes)."""


def pick_listener(bundle: data.WorldBundle, key: str) -> int:
    """A listener picker with a *Random listener* button; the choice is shared by the pages.

    Returns:
        The chosen listener's user index.
    """
    user_ids = [str(user_id) for user_id in bundle.world.user_ids]
    select = f"{key}_select"
    if st.session_state.get(select) not in user_ids:  # first visit of the page, or another world
        shared = st.session_state.get(LISTENER_KEY)
        st.session_state[select] = shared if shared in user_ids else user_ids[0]
    left, right = st.columns([4, 1])
    if right.button("Random listener", key=f"{key}_random"):
        st.session_state[select] = user_ids[int(np.random.default_rng().integers(len(user_ids)))]
    chosen = left.selectbox("Listener", user_ids, key=select)
    st.session_state[LISTENER_KEY] = chosen
    return user_ids.index(chosen)
