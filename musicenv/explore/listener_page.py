"""The Listener page: a listener's taste, their candidate pool, and what the world predicts for it.

The pool is scored as the first play of a session in the chosen context (by default the
listener's usual one). Where the world has a ground truth, the true probabilities stand beside
the learned ones, and a scatter plot shows where the learned world is optimistic (points above
the diagonal).
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from musicenv.explore import data, resources
from musicenv.world import CONTEXT_TYPES


def render(bundle: data.WorldBundle, settings: data.Settings) -> None:
    """Draw the page for ``bundle``'s world."""
    st.header("Listener")
    user = resources.pick_listener(bundle, "listener")
    profile = data.listener_profile(bundle.world, user)
    columns = st.columns(6)
    columns[0].metric("Premium", "yes" if profile.premium else "no")
    columns[1].metric("Sessions", profile.sessions)
    columns[2].metric("Plays", profile.plays)
    columns[3].metric("Tracks heard", profile.distinct_tracks)
    columns[4].metric("Artists heard", profile.distinct_artists)
    columns[5].metric("Blocked tracks", profile.blocked_tracks)
    st.caption(
        f"{'held out for evaluation' if profile.held_out else 'a training listener'} · "
        f"usual context: {CONTEXT_TYPES[profile.usual_context]} at {profile.usual_hour:02d}:00"
    )
    left, middle, right = st.columns(3)
    left.subheader("Top artists")
    left.dataframe(profile.top_artists, hide_index=True)
    middle.subheader("Top tracks")
    middle.dataframe(profile.top_tracks, hide_index=True)
    right.subheader("Usual contexts")
    right.dataframe(profile.contexts, hide_index=True)

    st.subheader("Candidate pool: predicted response to the next play")
    controls = st.columns(4)
    context = controls[0].selectbox("Context", CONTEXT_TYPES, index=profile.usual_context, key="listener_context")
    hour = controls[1].slider("Hour", 0, 23, profile.usual_hour, key="listener_hour")
    pool_size = controls[2].number_input("Pool size", 1, 500, 100, key="listener_pool_size")
    explicit_filter = controls[3].checkbox("Explicit filter", key="listener_explicit")
    pool = data.pool_predictions(
        bundle, user, CONTEXT_TYPES.index(context), hour, int(pool_size), explicit_filter=explicit_filter
    )
    st.dataframe(pool, hide_index=True, height=320)
    if bundle.truth is None:
        st.info("This world has no ground truth (it was learned from logs such as the MSSD's): no true probabilities.")
        return
    st.subheader("Learned vs true probabilities")
    st.altair_chart(scatter(data.learned_vs_true(pool)), width="stretch")
    optimistic = float((pool["optimism"] > 0).mean())
    st.caption(
        f"Above the diagonal the learned world is optimistic. It overrates completion for {optimistic:.0%} "
        f"of this pool; mean learned minus true p(complete): {pool['optimism'].mean():+.3f}."
    )


def scatter(points: pd.DataFrame) -> alt.LayerChart:
    """Learned (y) against true (x) probability per track and response, with the diagonal."""
    dots = (
        alt.Chart(points)
        .mark_circle(size=40, opacity=0.7)
        .encode(
            x=alt.X("true:Q", title="true probability", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("learned:Q", title="learned probability", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("response:N", sort=["skip", "listen", "complete"]),
            tooltip=[
                "track_id",
                "response",
                alt.Tooltip("true:Q", format=".3f"),
                alt.Tooltip("learned:Q", format=".3f"),
            ],
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"true": [0.0, 1.0], "learned": [0.0, 1.0]}))
        .mark_line(color="grey")
        .encode(x="true:Q", y="learned:Q")
    )
    return alt.layer(diagonal, dots).properties(height=380)
