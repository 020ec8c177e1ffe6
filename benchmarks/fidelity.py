"""Benchmark: how much data a faithful world needs, and whether the cross-fitted world can tell.

For each ground-truth seed (``--seeds``, default 0, 1, 2) and log size (``--sessions``, default
5,000, 20,000 and 80,000 sessions) it simulates the ground truth's log (log seed 0, as the default
world's), learns the world from it with the default :class:`~world_model.world.WorldConfig`
(timed), learns its cross world from a fresh log of the same ground truth
(:mod:`world_model.cross_fit`), and evaluates every agent of ``eval.py``'s default list
(:data:`agents.evaluate.DEFAULT_AGENTS`, so new agents join by themselves; ``--agents`` to choose)
and an AH-DQN trained briefly in the learned world (``--ahdqn-steps``; 0 leaves it out) on the
same held-out episodes in the three worlds: the learned world, its ground truth and the cross
world (:func:`agents.evaluate.evaluate`, common random numbers).

Figures (``seed=<s> sessions=<n> name=value`` lines, and per case in ``--out``)
    ==============================  ===============================================================
    ``gap_<agent>``                 the agent's relative return gap ``(learned - truth) / truth``
    ``max_abs_gap``                 the largest absolute gap (goal <= 0.15)
    ``kendall_tau``                 Kendall's tau between the learned world's and the truth's
                                    rankings of the agents (goal 1.0)
    ``greedy_pick_bias``            on ``greedy_learned``'s plays in the ground-truth run, the
                                    learned model's P(complete) minus the true one, averaged over
                                    the plays (goal <= 0.02: the learned world does not flatter
                                    what its own greedy ranker picks)
    ``greedy_learned_truth_share``  ``(greedy_learned - random) / (greedy_truth - random)`` of the
                                    ground-truth returns: the share of the true model's greedy
                                    gain over random play that the learned model's greedy ranker
                                    gets (goal >= 0.75)
    ``cross_gap_<agent>``           the cross world's predicted gap ``(learned - cross) / cross``
    ``cross_world_gap_error_<a>``   predicted minus true gap; ``max_abs_cross_world_gap_error``
                                    the largest in absolute value (goal <= 0.10 for every agent)
    ``cross_kendall_tau``           the cross world's ranking of the agents against the learned one's
    ``auc_skip_lift_ratio``,        on the evaluation users' sessions of the cross world's log
    ``auc_complete_lift_ratio``     (which the learned world never saw), ``(auc - 0.5) /
                                    (oracle_auc - 0.5)`` of the learned model against the truth's
                                    exact probabilities (``benchmarks/user_model.py``'s protocol);
                                    ``auc_lift_ratio`` the smaller (goal >= 0.95)
    ``observable_oracle_lift_ratio`` the same ratio of the oracle that does not know the session's
                                    latent attention (``benchmarks/user_model.py``'s
                                    ``observable_oracle_replay``): the most any model of the logs
                                    can reach; ``observable_auc_lift_ratio`` the learned model's
                                    lift ratio against that oracle
    ``ece``                         three-class expected calibration error on those plays (goal
                                    <= 0.02)
    ``build_seconds``               the world's build (``build_world``: ALS, features, the models;
                                    not the log's simulation); goal < 120 at the default size.
                                    ``cross_build_seconds`` the cross world's
    ``goals_failed``                the goals above this case misses (``none``)
    ==============================  ===============================================================

``greedy_pick_bias`` is averaged over every play ``greedy_learned`` makes in the evaluation's
episodes of its ground-truth rollout, the episodes the evaluation records. A closing Markdown
table (one row per case) is the README's "How much data a faithful world needs"; ``--out``
(default ``fidelity_out/figures.csv``) gets every figure of every case, written atomically (and a
``.json`` beside it).

Run::

    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --episodes 300 --ahdqn-steps 0   # one case
    python benchmarks/fidelity.py                                                             # the 3 x 3 grid
    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --shared-trunk                   # the cheaper ensemble
    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --world-seeds 0,1                # two builds of one case
    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --world-seeds 0,1 --shared-holdout  # old split

``--ensemble-size``, ``--shared-trunk`` and ``--shared-holdout`` set the user-response model's
ensemble (:class:`~world_model.user_model.UserModelConfig`), to compare ensembles on the same cases.
The ``--world.*`` options set any other field of :class:`~world_model.world.WorldConfig` (one flag
per field, as ``train.py``'s options; ``--help`` lists them), for the world and its cross world
alike, to measure a setting before it becomes a default (the figures' ``world_settings`` records
them)::

    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --world.retrieval.factors 8
    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --world.user_model.weight-decay 1e-4
``--world-seeds`` builds each world (and its cross world) once per ``WorldConfig.seed``, from the same
logs: how far two builds' figures are from each other is the smallest difference a comparison of
one build against another can resolve (lines of another build than 0 end their prefix with
``world_seed=<w>``, and the table gets a ``world_seed`` column). With two builds or more the run ends
with the spread between them (:func:`build_spread`): for each figure and each agent's gap, its mean,
min, max and ``spread`` (max minus min) over the builds, also emitted as
``seed=<s> sessions=<n> builds=<k> <figure>_spread=<value>`` lines.

``--truth-ablate`` switches effects of the ground truth's response model off
(:meth:`~musicenv.groundtruth.config.GroundTruthConfig.ablate`, names from
:data:`~musicenv.groundtruth.config.EFFECTS`), for every case: the world is then learned from,
and judged against, a ground truth without them. Comparing a case with and without an effect
measures how much of the learned world's error that effect causes (the ablated truth is no longer
calibrated to the MSSD; it is a diagnostic, not a default world)::

    python benchmarks/fidelity.py --seeds 0 --sessions 20000 --truth-ablate satiation,acoustic_transitions
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

# The sibling benchmark (this folder is first on sys.path when run as a script): its held-out protocol.
from pick_bias import record as record_plays
from tqdm.auto import tqdm
from user_model import add_world_options, chosen_world, held_out_familiarity, held_out_sessions

from agents.config import TrainConfig, apply_overrides
from agents.evaluate import DEFAULT_AGENTS, AgentSpec, Evaluation, checkpoint_spec, evaluate
from agents.metrics import Fidelity
from agents.report import markdown_table
from agents.train import make_learner
from musicenv.artifacts import write_atomic, write_json_atomic
from musicenv.groundtruth import GroundTruthWorld
from musicenv.groundtruth.config import EFFECTS, GroundTruthConfig
from world_model.cross_fit import cross_log_seed, cross_responder
from world_model.metrics import lift_ratio, response_metrics
from world_model.user_model import UserModelConfig, logged_response_probs
from world_model.world import DEFAULT_LOG_SEED, GroundTruthProvenance, LearnedWorld, WorldConfig, build_world

GOALS: dict[str, tuple[str, float]] = {
    "max_abs_gap": ("<=", 0.15),
    "greedy_pick_bias": ("<=", 0.02),
    "kendall_tau": (">=", 1.0),
    "greedy_learned_truth_share": (">=", 0.75),
    "auc_lift_ratio": (">=", 0.95),
    "ece": ("<=", 0.02),
    "max_abs_cross_world_gap_error": ("<=", 0.10),
}
"""Each figure's goal (docs/design.md, "An honest learned world"), checked on every case;
``build_seconds`` < 120 only at the default size."""
SETTINGS = ("seed", "sessions", "world_seed", "ensemble_size", "shared_trunk", "truth_ablated", "world_settings")
"""What a case was run with: in its prefix or printed once, not among its ``name=value`` figure lines."""
BUILD_SETTINGS = tuple(name for name in SETTINGS if name != "world_seed")
"""What the builds of one world share (:func:`build_spread` groups cases by it)."""
BUILD_SECONDS_GOAL = 120.0
DEFAULT_SESSIONS = 20_000
FIDELITY_FIGURES = (
    "max_abs_gap",
    "kendall_tau",
    "greedy_pick_bias",
    "greedy_learned_truth_share",
    "max_abs_cross_world_gap_error",
    "auc_lift_ratio",
    "ece",
)
"""The figures with a goal, besides the build's seconds: the README table's columns and what
:func:`build_spread` compares between builds (with every agent's ``gap_<agent>``)."""
SUMMARY_COLUMNS = ("seed", "sessions", *FIDELITY_FIGURES, "build_seconds", "goals_failed")


def greedy_learned_truth_share(greedy_learned: float, greedy_truth: float, random: float) -> float:
    """``(greedy_learned - random) / (greedy_truth - random)``: the share of the true greedy ranker's gain
    over random play (ground-truth returns) that the learned model's greedy ranker gets; NaN when the
    true ranker gains nothing."""
    gain = greedy_truth - random
    return (greedy_learned - random) / gain if gain != 0 else math.nan


def cross_world_gap_errors(true: Fidelity, predicted: Fidelity) -> dict[str, float]:
    """Per agent in both, the cross world's predicted relative gap minus the true one."""
    truth = dict(zip(true.agents, true.relative_gaps, strict=True))
    return {
        agent: gap - truth[agent]
        for agent, gap in zip(predicted.agents, predicted.relative_gaps, strict=True)
        if agent in truth
    }


def goals_failed(figures: Mapping[str, Any]) -> list[str]:
    """The names of the :data:`GOALS` (and the build time's, at the default size) that ``figures`` miss.

    A NaN figure misses its goal.
    """
    failed = []
    for name, (sense, bound) in GOALS.items():
        value = figures.get(name, math.nan)
        met = value <= bound if sense == "<=" else value >= bound
        if not met:  # NaN compares false: missed
            failed.append(name)
    if figures.get("sessions") == DEFAULT_SESSIONS and not figures.get("build_seconds", math.inf) < BUILD_SECONDS_GOAL:
        failed.append("build_seconds")
    return failed


def greedy_pick_bias(world: LearnedWorld, truth: GroundTruthWorld, episodes: int, seed: int, batch_size: int) -> float:
    """``greedy_learned``'s ground-truth run (the evaluation's episodes), recorded play by play by
    ``benchmarks/pick_bias.py``: the mean learned minus true P(complete) of its plays."""
    plays = record_plays(world, episodes, seed, batch_size, truth=truth)
    return float((plays["learned"] - plays["true"]).mean())


def response_figures(world: LearnedWorld, truth: GroundTruthWorld, future: Any) -> dict[str, float]:
    """The learned model's AUC lift ratios and ECE on the held-out plays of ``future`` (simulated sessions
    the world never saw), against the truth's exact probabilities (``benchmarks/user_model.py``)."""
    model = world.session_model
    held_out, oracle_probs, _, observable_probs = held_out_sessions(
        truth, future, np.asarray(world.user_ids), world.config.user_model.max_session_length
    )
    history = None if model.history is None else held_out_familiarity(model.history, held_out)
    probs = logged_response_probs(
        model.response_model,
        held_out,
        model.track_features,
        model.user_features,
        shuffled=True,
        session_history=history,
    )
    mask = held_out.play_mask()
    responses = held_out.responses[mask]
    learned, oracle = response_metrics(probs[mask], responses), response_metrics(oracle_probs[mask], responses)
    observable = response_metrics(observable_probs[mask], responses)
    figures = {}
    for name in ("auc_skip", "auc_complete"):
        figures[f"{name}_lift_ratio"] = lift_ratio(learned[name], oracle[name])
        figures[f"{name}_observable_lift_ratio"] = lift_ratio(learned[name], observable[name])
        figures[f"observable_oracle_{name}_lift_ratio"] = lift_ratio(observable[name], oracle[name])
    figures["auc_lift_ratio"] = min(figures["auc_skip_lift_ratio"], figures["auc_complete_lift_ratio"])
    figures["observable_auc_lift_ratio"] = min(
        figures["auc_skip_observable_lift_ratio"], figures["auc_complete_observable_lift_ratio"]
    )
    figures["observable_oracle_lift_ratio"] = min(
        figures["observable_oracle_auc_skip_lift_ratio"], figures["observable_oracle_auc_complete_lift_ratio"]
    )
    figures["ece"] = learned["ece"]
    figures["held_out_plays"] = int(mask.sum())
    return figures


def trained_ahdqn(world: LearnedWorld, steps: int, seed: int, folder: Path) -> AgentSpec:
    """An AH-DQN trained ``steps`` agent steps in ``world`` with ``train.py``'s defaults, saved in ``folder``."""
    config = TrainConfig(total_steps=steps, seed=seed)
    learner = make_learner(config, world)
    learner.run(steps)
    learner.finish()
    learner.agent.save(folder)
    return checkpoint_spec(folder)


def case_figures(
    seed: int, sessions: int, args: argparse.Namespace, bar: Any, world_seed: int = 0
) -> tuple[dict[str, Any], Evaluation]:
    """Build the world and its cross world of one (ground-truth seed, log size, world seed), evaluate,
    and compute the figures."""
    user_model = UserModelConfig(
        ensemble_size=args.ensemble_size, shared_trunk=args.shared_trunk, member_holdout=not args.shared_holdout
    )
    config = apply_overrides(WorldConfig(user_model=user_model, seed=world_seed), args.world)
    truth = GroundTruthWorld(seed=seed, config=GroundTruthConfig().ablate(*args.truth_ablate))
    bar.set_postfix_str(f"seed {seed}, {sessions:,} sessions: learning the world")
    log = truth.simulate_logs(sessions, seed=DEFAULT_LOG_SEED)
    started = time.perf_counter()
    world = build_world(log, config, GroundTruthProvenance.of(truth, sessions, DEFAULT_LOG_SEED))
    build_seconds = time.perf_counter() - started
    bar.set_postfix_str(f"seed {seed}, {sessions:,} sessions: learning the cross world")
    future = truth.simulate(sessions, seed=cross_log_seed(DEFAULT_LOG_SEED))
    started = time.perf_counter()
    cross = build_world(
        truth.log_of(future), config, GroundTruthProvenance.of(truth, sessions, cross_log_seed(DEFAULT_LOG_SEED))
    )
    cross_build_seconds = time.perf_counter() - started

    specs = [AgentSpec(name, name) for name in args.agents]
    with tempfile.TemporaryDirectory() as scratch:
        if args.ahdqn_steps > 0:
            bar.set_postfix_str(f"seed {seed}, {sessions:,} sessions: training the AH-DQN")
            specs.append(trained_ahdqn(world, args.ahdqn_steps, seed, Path(scratch) / "ahdqn"))
        bar.set_postfix_str(f"seed {seed}, {sessions:,} sessions: evaluating")
        evaluation = evaluate(
            world,
            specs,
            truth,
            episodes=args.episodes,
            seed=args.eval_seed,
            batch_size=args.batch_size,
            progress=True,
            cross=cross_responder(cross, world),
        )
    figures: dict[str, Any] = {
        "seed": seed,
        "sessions": sessions,
        "world_seed": config.seed,
        # The ensemble built: --world.user_model.* options override --ensemble-size and --shared-trunk.
        "ensemble_size": config.user_model.ensemble_size,
        "shared_trunk": config.user_model.shared_trunk,
        "truth_ablated": ",".join(args.truth_ablate) or "none",
        "world_settings": " ".join(f"{name}={value}" for name, value in args.world.items()) or "default",
    }
    true, predicted = evaluation.fidelity, evaluation.cross_fidelity
    assert true is not None and predicted is not None
    figures.update({f"gap_{agent}": gap for agent, gap in zip(true.agents, true.relative_gaps, strict=True)})
    figures["max_abs_gap"] = true.max_relative_return_gap
    figures["kendall_tau"] = true.kendall_tau
    figures["greedy_pick_bias"] = greedy_pick_bias(world, truth, args.episodes, args.eval_seed, args.batch_size)
    truth_returns = {
        r.agent: r.metrics.mean_return.mean for r in evaluation.results if r.world == "groundtruth" and r.metrics
    }
    figures["greedy_learned_truth_share"] = greedy_learned_truth_share(
        truth_returns.get("greedy_learned", math.nan),
        truth_returns.get("greedy_truth", math.nan),
        truth_returns.get("random", math.nan),
    )
    figures.update({f"cross_gap_{a}": gap for a, gap in zip(predicted.agents, predicted.relative_gaps, strict=True)})
    errors = cross_world_gap_errors(true, predicted)
    figures.update({f"cross_world_gap_error_{agent}": error for agent, error in errors.items()})
    figures["max_abs_cross_world_gap_error"] = max((abs(e) for e in errors.values()), default=math.nan)
    figures["cross_kendall_tau"] = predicted.kendall_tau
    figures.update(response_figures(world, truth, future))
    figures["build_seconds"] = build_seconds
    figures["cross_build_seconds"] = cross_build_seconds
    figures["eval_seconds"] = evaluation.seconds
    figures["goals_failed"] = ",".join(goals_failed(figures)) or "none"
    return figures, evaluation


def summary_table(cases: Sequence[Mapping[str, Any]]) -> str:
    """The README's table, "How much data a faithful world needs": one row per case, :data:`SUMMARY_COLUMNS`
    (and the world seed after the log size when a case was built with another than 0)."""
    columns = list(SUMMARY_COLUMNS)
    if any(case.get("world_seed", 0) for case in cases):
        columns.insert(2, "world_seed")
    rows = []
    for case in cases:
        cells = []
        for column in columns:
            value = case.get(column, math.nan)
            if isinstance(value, float):
                decimals = 0 if column == "build_seconds" else 3
                cells.append("n/a" if math.isnan(value) else f"{value:.{decimals}f}")
            else:
                cells.append(f"{value:,}" if column == "sessions" else str(value))
        rows.append(cells)
    return markdown_table(columns, rows)


def build_spread(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """How far the builds of one case are from each other (``--world-seeds`` with two or more).

    Cases that differ only in ``world_seed`` are builds of one world from the same logs. For each
    such group of two or more builds and each figure of :data:`FIDELITY_FIGURES` and each agent's
    relative gap (``gap_<agent>``), one row: the case's settings (:data:`SETTINGS` but the world
    seed), ``builds``, ``figure``, and the figure's ``mean``, ``min``, ``max`` and ``spread`` (max
    minus min) over the builds. A difference between two designs smaller than the spread is not
    resolved by one build of each. Groups of one build give no rows; NaN figures are left out.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for case in cases:
        groups.setdefault(tuple(case.get(name) for name in BUILD_SETTINGS), []).append(case)
    rows = []
    for key, builds in groups.items():
        if len(builds) < 2:
            continue
        settings = dict(zip(BUILD_SETTINGS, key, strict=True))
        gaps = sorted({name for case in builds for name in case if name.startswith("gap_")})
        for figure in (*FIDELITY_FIGURES, *gaps):
            values = np.array([float(case.get(figure, math.nan)) for case in builds])
            values = values[~np.isnan(values)]
            if len(values) < 2:
                continue
            low, high = float(values.min()), float(values.max())
            rows.append(
                {
                    **settings,
                    "builds": len(values),
                    "figure": figure,
                    "mean": float(values.mean()),
                    "min": low,
                    "max": high,
                    "spread": high - low,
                }
            )
    return rows


def spread_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`build_spread`'s rows as a markdown table (seed, sessions, builds, figure, mean, min, max, spread)."""
    columns = ["seed", "sessions", "builds", "figure", "mean", "min", "max", "spread"]
    cells = [
        [str(row["seed"]), f"{row['sessions']:,}", str(row["builds"]), row["figure"]]
        + [f"{row[name]:.3f}" for name in ("mean", "min", "max", "spread")]
        for row in rows
    ]
    return markdown_table(columns, cells)


def emit(prefix: str, name: str, value: Any) -> None:
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    print(f"{prefix} {name}={text}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def numbers(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part]

    def names(text: str) -> list[str]:
        return [part for part in text.replace(" ", ",").split(",") if part]

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=numbers, default=[0, 1, 2], help="ground-truth seeds (default 0,1,2)")
    parser.add_argument(
        "--sessions", type=numbers, default=[5_000, 20_000, 80_000], help="log sizes (default 5000,20000,80000)"
    )
    parser.add_argument(
        "--world-seeds",
        type=numbers,
        default=[0],
        help="builds of each world (WorldConfig.seed; default 0): the spread between builds",
    )
    parser.add_argument("--episodes", type=int, default=1000, help="evaluation episodes per agent and world")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (eval.py's --seed)")
    parser.add_argument("--batch-size", type=int, default=1000, help="sessions stepped side by side")
    parser.add_argument(
        "--ahdqn-steps", type=int, default=20_000, help="AH-DQN training steps in each learned world (0: no AH-DQN)"
    )
    parser.add_argument(
        "--agents", type=names, default=list(DEFAULT_AGENTS), help="agents (default: eval.py's default list)"
    )
    parser.add_argument(
        "--ensemble-size", type=int, default=UserModelConfig.ensemble_size, help="members of the user-response model"
    )
    parser.add_argument(
        "--shared-trunk",
        action="store_true",
        help="members share the trunk (UserModelConfig.shared_trunk) instead of being independent networks",
    )
    parser.add_argument(
        "--shared-holdout",
        action="store_true",
        help="every member holds out the same validation sessions (UserModelConfig.member_holdout off)",
    )
    parser.add_argument(
        "--truth-ablate",
        type=names,
        default=[],
        help=f"ground-truth effects switched off in every case (a diagnostic; of {', '.join(EFFECTS)})",
    )
    add_world_options(parser)
    parser.add_argument("--out", type=Path, default=Path("fidelity_out/figures.csv"), help="CSV of every figure")
    args = parser.parse_args(argv)
    _, args.world = chosen_world(parser, args)
    if "seed" in args.world:
        parser.error("--world.seed would build every case with one seed: give the builds' seeds with --world-seeds")
    if args.out.is_dir():
        parser.error(f"--out must name a CSV file, not the folder {args.out}")
    if args.ensemble_size < 1:
        parser.error(f"--ensemble-size must be positive, got {args.ensemble_size}")
    for name in ("sessions", "episodes", "batch_size"):
        values = getattr(args, name)
        if min(values if isinstance(values, list) else [values], default=0) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {values}")
    if not args.world_seeds or min(args.world_seeds) < 0:
        parser.error(f"--world-seeds must be non-negative and given, got {args.world_seeds}")
    if not args.seeds or min(args.seeds) < 0 or args.ahdqn_steps < 0:
        parser.error(
            f"--seeds must be non-negative and given, --ahdqn-steps non-negative: {args.seeds}, {args.ahdqn_steps}"
        )
    unknown = sorted(set(args.truth_ablate) - set(EFFECTS))
    if unknown:
        parser.error(f"--truth-ablate: unknown effects {unknown}; known: {', '.join(EFFECTS)}")
    if "greedy_learned" not in args.agents or "random" not in args.agents or "greedy_truth" not in args.agents:
        parser.error("--agents must include random, greedy_learned and greedy_truth (the figures read them)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cases = [(s, n, w) for s in args.seeds for n in args.sessions for w in args.world_seeds]
    if args.truth_ablate:
        print(f"truth_ablated={','.join(args.truth_ablate)}", flush=True)
    if args.world:
        print(f"world_settings={' '.join(f'{name}={value}' for name, value in args.world.items())}", flush=True)
    rows = []
    started = time.perf_counter()
    with tqdm(cases, unit="case", desc="fidelity") as bar:
        for seed, sessions, world_seed in bar:
            figures, _ = case_figures(seed, sessions, args, bar, world_seed)
            rows.append(figures)
            prefix = f"seed={seed} sessions={sessions}" + (f" world_seed={world_seed}" if world_seed else "")
            for name, value in figures.items():
                if name not in SETTINGS:
                    emit(prefix, name, value)
            frame = pd.DataFrame(rows)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(args.out, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
            write_json_atomic(args.out.with_suffix(".json"), rows)
    print()
    print(summary_table(rows))
    spread = build_spread(rows)
    if spread:
        for row in spread:
            prefix = f"seed={row['seed']} sessions={row['sessions']} builds={row['builds']}"
            emit(prefix, f"{row['figure']}_spread", row["spread"])
        print("\nBetween builds (--world-seeds): a difference smaller than the spread is within one build's luck")
        print(spread_table(spread))
    print(f"total_seconds={time.perf_counter() - started:.0f}")
    print(f"figures of every case in {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main(sys.argv[1:])
