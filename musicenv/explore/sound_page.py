"""The Explore-by-sound page: sliders over the audio features rank the catalogue by similarity.

The sliders start at the chosen listener's sound (the play-weighted mean of the tracks they
played); moving one re-ranks the catalogue by cosine similarity of standardised features, without
the tracks the listener blocked and, with the explicit filter, explicit tracks.
"""

from __future__ import annotations

import streamlit as st

from musicenv.explore import data, resources


def render(bundle: data.WorldBundle, settings: data.Settings) -> None:
    """Draw the page: listener, features to match, one slider per feature, the ranking."""
    st.header("Explore by sound")
    world = bundle.world
    user = resources.pick_listener(bundle, "sound")
    available = data.sound_features(world)
    if not available:
        st.warning("This world's tracks have no audio features to explore.")
        return
    defaults = [name for name in data.SOUND_DEFAULTS if name in available] or available[:5]
    features = st.multiselect("Audio features to match", available, default=defaults, key="sound_features")
    explicit_filter = st.checkbox("Explicit filter", key="sound_explicit")
    if not features:
        st.info("Choose at least one audio feature to match.")
        return
    ranges = data.feature_ranges(world, features)
    start = data.listener_sound(world, user, features)
    reset = st.button("Reset the sliders to the listener's sound", key="sound_reset")
    target = {}
    columns = st.columns(min(len(features), 5))
    for i, name in enumerate(features):
        low, high = float(ranges.loc[name, "min"]), float(ranges.loc[name, "max"])
        key = f"sound_{name}_{user}"
        if reset or key not in st.session_state:
            st.session_state[key] = min(max(start[name], low), high)
        step = (high - low) / 100 if high > low else 1.0
        target[name] = columns[i % len(columns)].slider(name, low, max(high, low + step), key=key, step=step)
    ranking = data.rank_by_sound(world, target, user, explicit_filter=explicit_filter, top=25)
    st.subheader("Closest tracks")
    st.dataframe(ranking, hide_index=True, height=420)
