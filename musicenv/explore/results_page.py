"""The Results page: an ``eval.py`` output folder's tables and figures, filtered by agent and world."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from musicenv.explore import data

CHOSEN = "eval_folder_chosen"
"""Session-state key of the evaluation folder last given."""


def render(settings: data.Settings) -> None:
    """Draw the page: the folder, the filters, the results table, a return chart, fidelity, figures."""
    st.header("Results")
    if CHOSEN not in st.session_state:
        latest = data.latest_eval_output()
        st.session_state[CHOSEN] = str(latest) if latest else ""
    folder = st.text_input(
        "eval.py output folder",
        value=st.session_state[CHOSEN],
        key="eval_folder",
        help="python eval.py --out FOLDER",
    )
    st.session_state[CHOSEN] = folder  # kept when the page changes (the widget's own state is not)
    if not folder.strip():
        st.info("Give the folder of an evaluation (python eval.py --out FOLDER); none was found under eval_out/.")
        return
    try:
        output = data.read_eval_output(folder.strip())
    except data.ExploreError as error:
        st.error(str(error))
        return
    results = output.results
    agents = list(dict.fromkeys(results["agent"]))
    worlds = list(dict.fromkeys(results["world"]))
    left, right = st.columns(2)
    chosen_agents = left.multiselect("Agents", agents, default=agents, key="results_agents")
    chosen_worlds = right.multiselect("Worlds", worlds, default=worlds, key="results_worlds")
    shown = output.filtered(chosen_agents, chosen_worlds)
    if shown.empty:
        st.info("No row matches the filters.")
        return
    st.dataframe(shown, hide_index=True)
    st.altair_chart(returns_chart(shown), width="stretch")
    if output.fidelity is not None:
        st.subheader("Fidelity: relative return gap (learned - truth) / truth")
        fidelity = output.fidelity[output.fidelity["agent"].isin(chosen_agents)]
        st.dataframe(fidelity, hide_index=True)
    for figure in output.figures:
        st.image(str(figure), caption=figure.name)


def returns_chart(results: pd.DataFrame) -> alt.LayerChart:
    """Mean return per agent with its 95% interval, one colour per world (rows without a return are left out)."""
    rows = results.dropna(subset=["mean_return"])
    base = alt.Chart(rows).encode(
        y=alt.Y("agent:N", sort=list(dict.fromkeys(rows["agent"]))), color="world:N", yOffset="world:N"
    )
    points = base.mark_point(filled=True, size=60).encode(x=alt.X("mean_return:Q", title="mean return (95% CI)"))
    if {"return_ci_low", "return_ci_high"} <= set(rows.columns):
        bars = base.mark_rule().encode(x="return_ci_low:Q", x2="return_ci_high:Q")
        return alt.layer(bars, points)
    return alt.layer(points)
