"""Benchmark: where the learned world flatters an agent's picks, play by play.

``benchmarks/fidelity.py``'s ``greedy_pick_bias`` is one number: on ``greedy_learned``'s plays in
the ground-truth run, the learned model's P(complete) minus the true one. This script runs the
same rollout (``--agent``, default ``greedy_learned``, in the ground truth of ``--world``, the
evaluation's held-out episodes) and splits that bias by what the session so far has done, so
that the part the optimizer's curse explains (the bias of the argmax over a pool) can be told
from the part the session's history explains (the bias of the whole pool in the same states):

========================  ===========================================================================
``pick_bias``             mean learned minus true P(complete) of the played tracks
``pool_bias``             the same, averaged over every playable candidate of each state first (what
                          a random pick from the same pool would show)
``skip_bias``             mean learned minus true P(skip) of the played tracks (a world that
                          under-predicts skips also keeps its listeners longer)
``own_pick_bias``         the learned model's P(complete) bias on what ``greedy_learned`` would pick
                          in the same state (the agent's own picks for ``greedy_learned``)
``second_*``              with ``--second-build SEED``: the same four figures from a second build of
                          the world (same log and settings, ``WorldConfig.seed`` = SEED) scoring the
                          same states, its own ``greedy_learned`` picking for ``second_own_pick_bias``.
                          A second build does not share the first one's estimation noise: on the
                          first build's greedy picks it shows how much of their bias is selection on
                          that noise (the optimizer's curse), and on any agent's picks how much is
                          the particular build's error rather than the model's
``plays``                 plays recorded
========================  ===========================================================================

and a table with one row per stratum of each of these (``stratum``, ``plays``, ``share``,
``learned``, ``true``, ``pick_bias`` and the mean of each other bias above):

- ``position``: plays so far in the session;
- ``played_before``: the listener's logs hold the track (the familiarity column the model reads);
- ``artist_penalty`` and ``genre_penalty``: the utility the truth takes from the played track for
  its artist and its genre having been played earlier in the session
  (:meth:`~musicenv.groundtruth.response.GroundTruthSessionModel.satiation_penalties`);
- ``mood``: the truth's mood (completions raise it, skips lower it);
- ``skip_run``: consecutive skips just before the play.

The world must have been learned from a ground truth's logs (the default world is).

Run::

    python benchmarks/pick_bias.py                          # the default world, 500 episodes
    python benchmarks/pick_bias.py --agent popular          # another agent's picks
    python benchmarks/pick_bias.py --second-build 1         # and a second build's view of the same states
    python benchmarks/pick_bias.py --world path/to/world --episodes 1000 --out pick_bias_out/strata.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agents.base import Agent, agent_names, make_agent
from agents.baselines import learned_response_probs
from agents.report import markdown_table
from agents.rollout import episode_quotas, evaluation_seed, rollout
from musicenv.artifacts import ArtifactError, write_atomic
from musicenv.groundtruth import GroundTruthConfig
from musicenv.observation import expand_observations
from musicenv.responders import translate_ids
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import COMPLETE, SKIP, world_familiarity
from world_model.history import HISTORY_FEATURES
from world_model.world import LearnedWorld, default_world, groundtruth_for, open_world

STRATA: dict[str, list[float]] = {
    "position": [0, 1, 3, 6, 10, np.inf],
    "played_before": [0, 0.5, np.inf],
    "artist_penalty": [0, 0.01, 0.5, 1, np.inf],
    "genre_penalty": [0, 0.01, 0.3, 0.6, 1, np.inf],
    "mood": [-np.inf, -2, -0.5, 0.5, 2, np.inf],
    "skip_run": [0, 1, 2, 3, np.inf],
}
"""Each stratified quantity and its bin edges (a bin holds ``low <= value < high``)."""


BIASES: tuple[str, ...] = (
    "pool_bias",
    "skip_bias",
    "own_pick_bias",
    "second_pick_bias",
    "second_pool_bias",
    "second_skip_bias",
    "second_own_pick_bias",
)
"""The bias columns of :func:`record` besides ``learned - true`` (the ``second_*`` ones only with a second build)."""


class StateRecorder:
    """An agent that plays as ``agent`` in a ground-truth run and records, per play of the recorded
    episodes, the biases of :data:`BIASES` and the quantities of :data:`STRATA` (read from the
    observations and the truth's state).

    :func:`~agents.rollout.rollout` records episodes ``0 .. quota_i - 1`` of sub-environment ``i``
    and lets the others run on until the last recorded one ends; the recorder counts each row's
    episodes (one starts at every step with an empty history) and keeps the plays of the recorded
    ones only (``benchmarks/fidelity.py``'s ``greedy_pick_bias`` is the mean bias of these plays).

    The environment hands out compact observations; each world's full ones are built from them
    (:func:`~musicenv.observation.expand_observations`), so that a second build reads the same
    states through its own feature tables.

    Args:
        agent: whose plays are recorded.
        quotas: ``(N,)`` episodes recorded per sub-environment (:func:`~agents.rollout.episode_quotas`).
        world: the learned world the agent acts in.
        truth_tracks: ``(n_tracks,)`` the ground truth's index of each learned-world track.
        second: a second build of ``world`` (same ids), or None.
    """

    def __init__(
        self,
        agent: Agent,
        quotas: np.ndarray,
        world: LearnedWorld,
        truth_tracks: np.ndarray,
        second: LearnedWorld | None,
    ) -> None:
        self.agent = agent
        self.name = agent.name
        self.needs_oracle = True  # the truth's probabilities and state, whatever the agent reads
        self.quotas = np.asarray(quotas, dtype=np.int64)
        self.episodes = np.full(len(self.quotas), -1, dtype=np.int64)
        self.worlds = [world] if second is None else [world, second]
        self.greedy = [agent if agent.name == "greedy_learned" else make_agent("greedy_learned", world)]
        if second is not None:
            self.greedy.append(make_agent("greedy_learned", second))
        self.truth_tracks = truth_tracks
        self.rows: list[pd.DataFrame] = []

    def act(self, obs: Any, oracle: Any = None) -> np.ndarray:
        full = [expand_observations(w.track_features, w.user_features, obs, world_familiarity(w)) for w in self.worlds]
        actions = self.agent.act(full[0], oracle if self.agent.needs_oracle else None)
        rows = np.arange(len(actions))
        self.episodes += full[0]["history_mask"].sum(axis=1) == 0
        playable = full[0]["action_mask"].astype(bool)
        recorded = playable[rows, actions] & (self.episodes < self.quotas)
        true_probs = oracle.response_probs()
        true = true_probs[..., COMPLETE]
        columns: dict[str, np.ndarray] = {}
        for prefix, observed, greedy in zip(("", "second_")[: len(full)], full, self.greedy, strict=True):
            probs = learned_response_probs(greedy.model, observed)
            learned = probs[..., COMPLETE]
            own = actions if greedy is self.agent else greedy.act(observed)
            columns[f"{prefix}learned"] = learned[rows, actions]
            columns[f"{prefix}pool_bias"] = np.where(playable, learned - true, 0.0).sum(axis=1) / np.maximum(
                playable.sum(axis=1), 1
            )
            columns[f"{prefix}skip_bias"] = probs[rows, actions, SKIP] - true_probs[rows, actions, SKIP]
            columns[f"{prefix}own_pick_bias"] = learned[rows, own] - true[rows, own]
        if len(full) > 1:
            columns["second_pick_bias"] = columns.pop("second_learned") - true[rows, actions]
        state = oracle.state
        picked = self.truth_tracks[np.take_along_axis(oracle.pools, actions[:, None], axis=1)]
        artist, genre = oracle.session_model.session_model.satiation_penalties(state, picked)
        frame = pd.DataFrame(
            {
                "true": true[rows, actions],
                **columns,
                "position": state["position"],
                "played_before": full[0]["familiarity"][rows, actions, HISTORY_FEATURES.index("played_before")],
                "artist_penalty": artist[:, 0],
                "genre_penalty": genre[:, 0],
                "mood": state["mood"],
                "skip_run": state["skip_run"],
            }
        )
        self.rows.append(frame[recorded])
        return actions


def second_build(world: LearnedWorld, seed: int) -> LearnedWorld:
    """``world`` built again from the same ground-truth log and settings with ``WorldConfig.seed = seed``
    (cached like the default world).

    Raises:
        ValueError: ``world`` has no ground truth, ``seed`` is its own, or the build's ids differ.
    """
    provenance = world.provenance
    if provenance is None:
        raise ValueError("a second build needs a world learned from a ground truth's logs")
    if seed == world.config.seed:
        raise ValueError(f"the world was built with seed {seed}: a second build needs another")
    second = default_world(
        groundtruth_seed=provenance.seed,
        log_sessions=provenance.log_sessions,
        log_seed=provenance.log_seed,
        config=dataclasses.replace(world.config, seed=seed),
        groundtruth_config=GroundTruthConfig.from_dict(provenance.config),
    )
    same_tracks = np.array_equal(second.tracks["track_id"].to_numpy(), world.tracks["track_id"].to_numpy())
    if not (same_tracks and np.array_equal(np.asarray(second.user_ids), np.asarray(world.user_ids))):
        raise ValueError("the second build's users or tracks are not the world's: it was not built from the same log")
    return second


def record(
    world: LearnedWorld,
    episodes: int,
    seed: int,
    batch_size: int,
    agent: str = "greedy_learned",
    second: LearnedWorld | None = None,
    truth: Any = None,
) -> pd.DataFrame:
    """``agent``'s recorded plays in the ground truth of ``world``, one row each (``second``: a
    :func:`second_build` that scores the same states too; ``truth``: the ground truth when the
    caller holds it, else :func:`~world_model.world.groundtruth_for` rebuilds it)."""
    truth = groundtruth_for(world) if truth is None else truth
    truth_tracks = translate_ids(truth.track_index, world.tracks["track_id"].to_numpy(), "track")
    num_envs = min(episodes, batch_size)
    env = ListeningSessionVectorEnv(
        num_envs, world=world, responder=truth, split="eval", copy=False, observation="compact"
    )
    recorder = StateRecorder(make_agent(agent, world), episode_quotas(num_envs, episodes), world, truth_tracks, second)
    rollout(recorder, env, episodes, evaluation_seed(seed))  # type: ignore[arg-type]
    return pd.concat(recorder.rows, ignore_index=True)


def strata_table(plays: pd.DataFrame) -> pd.DataFrame:
    """One row per bin of each of :data:`STRATA` (empty bins left out), with the bias of each."""
    rows = []
    bias = plays["learned"] - plays["true"]
    for name, edges in STRATA.items():
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            inside = (plays[name] >= low) & (plays[name] < high)
            if inside.any():
                rows.append(
                    {
                        "stratum": f"{name} [{low:g}, {high:g})",
                        "plays": int(inside.sum()),
                        "share": float(inside.mean()),
                        "learned": float(plays.loc[inside, "learned"].mean()),
                        "true": float(plays.loc[inside, "true"].mean()),
                        "pick_bias": float(bias[inside].mean()),
                        **{column: float(plays.loc[inside, column].mean()) for column in BIASES if column in plays},
                    }
                )
    return pd.DataFrame(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="greedy_learned", help="whose picks (an eval.py agent name)")
    parser.add_argument("--world", default="default", help="a saved world folder, or 'default' (the embedded one)")
    parser.add_argument("--episodes", type=int, default=500, help="evaluation episodes recorded")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (eval.py's --seed)")
    parser.add_argument("--batch-size", type=int, default=500, help="sessions stepped side by side")
    parser.add_argument(
        "--second-build", type=int, default=None, help="also score the states with the world built with this seed"
    )
    parser.add_argument("--out", type=Path, default=Path("pick_bias_out/strata.csv"), help="CSV of the strata")
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out must name a CSV file, not the folder {args.out}")
    if args.agent not in agent_names():
        parser.error(f"--agent must be one of {', '.join(agent_names())}, got {args.agent!r}")
    for name in ("episodes", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("seed", "second_build"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be non-negative, got {value}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        world = open_world(args.world)
    except (ArtifactError, OSError, ValueError) as error:
        raise SystemExit(f"pick_bias.py: error: --world {args.world}: {error}") from error
    try:
        second = None if args.second_build is None else second_build(world, args.second_build)
    except ValueError as error:
        raise SystemExit(f"--second-build {args.second_build}: {error}") from error
    plays = record(world, args.episodes, args.seed, args.batch_size, args.agent, second)
    print(f"pick_bias={float((plays['learned'] - plays['true']).mean()):.4f}")
    for name in BIASES:
        if name in plays:
            print(f"{name}={float(plays[name].mean()):.4f}")
    print(f"plays={len(plays)}")
    table = strata_table(plays)
    cells = [
        [row.stratum, f"{row.plays:,}", *(f"{value:.3f}" for value in row[2:])] for row in table.itertuples(index=False)
    ]
    print(markdown_table(list(table.columns), cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"strata in {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
