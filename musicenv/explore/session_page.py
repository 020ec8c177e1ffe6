"""The Session page: play one episode step by step, yourself or by agents, in both worlds side by side.

Up to two players (a person, any registered agent, or a saved checkpoint from ``--checkpoint-dir``)
play the same episode: every lane's environment is reset with the same seed, so they meet the same
listener, pool and luck (common random numbers). Each player plays in the learned world and, where
there is one, in the ground truth; the playlist of each lane shows every response drawn, its
probabilities, the chance that the listener leaves after it, and the running return.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from musicenv.explore import data, resources

RUN_KEY = "session_run"
NONE = "none"


def render(bundle: data.WorldBundle, settings: data.Settings) -> None:
    """Draw the page: the episode's settings, the step controls, then each lane's playlist."""
    st.header("Session")
    checkpoints = data.checkpoints_in(settings.checkpoint_dir)
    choices = [data.MANUAL, *resources.agent_names(), *(data.checkpoint_label(folder) for folder in checkpoints)]
    first, second, seed_column, split_column, length_column = st.columns([3, 3, 1, 1, 1])
    player_a = first.selectbox("Player A", choices, index=0, key="player_a")
    player_b = second.selectbox("Player B", [NONE, *choices], index=choices.index("greedy_learned") + 1, key="player_b")
    seed = int(seed_column.number_input("Episode seed", 0, 2**31 - 1, 0, key="episode_seed"))
    split = split_column.selectbox("Listeners", ("eval", "train", "all"), key="split")
    length = int(length_column.number_input("Playlist length", 1, 100, 20, key="playlist_length"))
    if not checkpoints:
        st.caption(f"No saved agent under {settings.checkpoint_dir}/ (musicenv explore --checkpoint-dir DIR).")
    players = [data.player_named(player_a, checkpoints)]
    if player_b != NONE:
        players.append(data.player_named(player_b, checkpoints))
    wanted = (bundle.source, tuple(players), seed, split, length)

    run: data.SessionRun | None = st.session_state.get(RUN_KEY)
    if st.button("New episode", key="new_episode") or run is None or st.session_state.get("session_wanted") != wanted:
        try:
            with st.spinner("Starting the episode ..."):
                run = data.start_session(bundle, players, seed, split=split, playlist_length=length)
        except data.ExploreError as error:
            st.session_state.pop(RUN_KEY, None)
            st.error(str(error))
            return
        st.session_state[RUN_KEY], st.session_state["session_wanted"] = run, wanted

    st.caption(
        f"Listener {run.user_id} · {run.context_type} at {run.hour:02d}:00 · episode seed {run.seed} · "
        f"{int((run.pool >= 0).sum())} tracks in the pool"
    )
    _controls(bundle, run)
    for player in dict.fromkeys(lane.player for lane in run.lanes):
        st.subheader(player.label)
        lanes = [lane for lane in run.lanes if lane.player == player]
        for column, lane in zip(st.columns(len(lanes)), lanes, strict=True):
            with column:
                _lane(lane)


def _controls(bundle: data.WorldBundle, run: data.SessionRun) -> None:
    """The step buttons (and a person's track picker); a click plays before the playlists are drawn."""
    if not run.finished:
        _step_buttons(bundle, run)
    if run.finished:
        st.success("The episode is over in every lane. Start a new one, or change the seed.")


def _step_buttons(bundle: data.WorldBundle, run: data.SessionRun) -> None:
    """A person's track picker, *Play* (one step in every lane) and, for agents only, *Play to the end*."""
    slot = None
    if run.needs_pick:
        options = run.choices(bundle)
        labels = [
            f"{row.track_id} · {row.artist_id} · predicted p(complete) {row.p_complete:.2f}"
            for row in options.itertuples()
        ]
        picked = st.selectbox("Next track (best predicted first)", labels, key="next_track")
        slot = int(options["slot"].iloc[labels.index(picked)])
    play, to_end = st.columns([1, 5])
    try:
        if play.button("Play", key="play_step", type="primary"):
            run.step(slot)
        if not run.needs_pick and to_end.button("Play to the end", key="play_to_end"):
            while not run.finished:
                run.step()
    except data.ExploreError as error:
        st.error(str(error))


def _lane(lane: data.Lane) -> None:
    """One lane: its return and state, then its playlist as a table."""
    st.markdown(f"**{data.WORLD_TITLES[lane.world]}**")
    if lane.note:
        st.info(lane.note)
        return
    status = f"ended: {lane.ending}" if lane.done else "playing"
    st.metric("Return", f"{lane.total:.1f}", help=status)
    st.caption(f"{len(lane.rows)} plays · {status}")
    with st.container(key=f"playlist_{_key(lane.player.label)}_{lane.world}"):
        st.table(_formatted(lane.table()))


def _formatted(table: pd.DataFrame) -> Any:
    """The playlist with probabilities to two decimals and the position as the index."""
    return table.set_index("position").style.format(
        {name: "{:.2f}" for name in ("p_skip", "p_listen", "p_complete", "p_leave", "reward", "return")}
    )


def _key(label: str) -> str:
    """A widget-key-safe form of a player's label."""
    return "".join(character if character.isalnum() else "_" for character in label)
