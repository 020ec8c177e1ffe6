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
``plays``                 plays recorded
========================  ===========================================================================

and a table with one row per stratum of each of these (``stratum``, ``plays``, ``share``,
``learned``, ``true``, ``pick_bias``, ``pool_bias``, ``skip_bias``):

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
    python benchmarks/pick_bias.py --world path/to/world --episodes 1000 --out pick_bias_out/strata.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fidelity import PickRecorder

from agents.base import agent_names, make_agent
from agents.baselines import learned_response_probs
from agents.report import markdown_table
from agents.rollout import episode_quotas, evaluation_seed, rollout
from musicenv.artifacts import write_atomic
from musicenv.responders import translate_ids
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import COMPLETE, SKIP
from world_model.history import HISTORY_FEATURES
from world_model.world import LearnedWorld, default_world, groundtruth_for, load_world

STRATA: dict[str, list[float]] = {
    "position": [0, 1, 3, 6, 10, np.inf],
    "played_before": [0, 0.5, np.inf],
    "artist_penalty": [0, 0.01, 0.5, 1, np.inf],
    "genre_penalty": [0, 0.01, 0.3, 0.6, 1, np.inf],
    "mood": [-np.inf, -2, -0.5, 0.5, 2, np.inf],
    "skip_run": [0, 1, 2, 3, np.inf],
}
"""Each stratified quantity and its bin edges (a bin holds ``low <= value < high``)."""


class StateRecorder(PickRecorder):
    """:class:`~fidelity.PickRecorder` for any agent that also records, per recorded play, the
    pool's mean bias and the quantities of :data:`STRATA` (read from the observation and the
    truth's state).

    Args:
        agent, quotas: as :class:`~fidelity.PickRecorder`'s.
        model: the learned world's user-response model (what ``greedy_learned`` reads).
        truth_tracks: ``(n_tracks,)`` the ground truth's index of each learned-world track.
    """

    def __init__(self, agent: Any, quotas: np.ndarray, model: Any, truth_tracks: np.ndarray) -> None:
        super().__init__(agent, quotas)
        self.needs_oracle = agent.needs_oracle
        self.model = model
        self.truth_tracks = truth_tracks
        self.rows: list[pd.DataFrame] = []

    def act(self, obs: Any, oracle: Any = None) -> np.ndarray:
        actions = self.agent.act(obs, oracle)
        rows = np.arange(len(actions))
        self.episodes += np.asarray(obs["history_mask"]).sum(axis=1) == 0
        playable = np.asarray(obs["action_mask"]).astype(bool)
        recorded = playable[rows, actions] & (self.episodes < self.quotas)
        learned_probs = learned_response_probs(self.model, obs)
        true_probs = oracle.response_probs()
        learned, true = learned_probs[..., COMPLETE], true_probs[..., COMPLETE]
        pool_bias = np.where(playable, learned - true, 0.0).sum(axis=1) / np.maximum(playable.sum(axis=1), 1)
        state = oracle.state
        picked = self.truth_tracks[np.take_along_axis(oracle.pools, actions[:, None], axis=1)]
        artist, genre = oracle.session_model.session_model.satiation_penalties(state, picked)
        responses = np.asarray(obs["history"])[:, :, -3:].argmax(axis=2)
        played = np.asarray(obs["history_mask"]).astype(bool)
        position = played.sum(axis=1)
        skips = (responses == SKIP) & played
        # Consecutive skips ending at the last play: the plays since the last non-skip.
        last_other = np.where(played & ~skips, np.arange(played.shape[1]), -1).max(axis=1)
        frame = pd.DataFrame(
            {
                "learned": learned[rows, actions],
                "true": true[rows, actions],
                "pool_bias": pool_bias,
                "skip_bias": learned_probs[rows, actions, SKIP] - true_probs[rows, actions, SKIP],
                "position": position,
                "played_before": np.asarray(obs["familiarity"])[rows, actions, HISTORY_FEATURES.index("played_before")],
                "artist_penalty": artist[:, 0],
                "genre_penalty": genre[:, 0],
                "mood": state["mood"],
                "skip_run": position - 1 - last_other,
            }
        )
        self.rows.append(frame[recorded])
        return actions


def record(
    world: LearnedWorld, episodes: int, seed: int, batch_size: int, agent: str = "greedy_learned"
) -> pd.DataFrame:
    """``agent``'s recorded plays in the ground truth of ``world``, one row each."""
    truth = groundtruth_for(world)
    truth_tracks = translate_ids(truth.track_index, world.tracks["track_id"].to_numpy(), "track")
    num_envs = min(episodes, batch_size)
    env = ListeningSessionVectorEnv(num_envs, world=world, responder=truth, split="eval", copy=False)
    model = make_agent("greedy_learned", world).model
    recorder = StateRecorder(make_agent(agent, world), episode_quotas(num_envs, episodes), model, truth_tracks)
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
                        "pool_bias": float(plays.loc[inside, "pool_bias"].mean()),
                        "skip_bias": float(plays.loc[inside, "skip_bias"].mean()),
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
    parser.add_argument("--out", type=Path, default=Path("pick_bias_out/strata.csv"), help="CSV of the strata")
    args = parser.parse_args(argv)
    if args.agent not in agent_names():
        parser.error(f"--agent must be one of {', '.join(agent_names())}, got {args.agent!r}")
    for name in ("episodes", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, got {args.seed}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        world = default_world() if args.world == "default" else load_world(args.world)
    except (OSError, ValueError) as error:
        raise SystemExit(f"--world {args.world}: {error}") from error
    plays = record(world, args.episodes, args.seed, args.batch_size, args.agent)
    print(f"pick_bias={float((plays['learned'] - plays['true']).mean()):.4f}")
    print(f"pool_bias={float(plays['pool_bias'].mean()):.4f}")
    print(f"skip_bias={float(plays['skip_bias'].mean()):.4f}")
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
