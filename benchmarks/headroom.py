"""Benchmark: how much can sequencing gain over greedy ranking on the default world?

docs/design.md ("The two worlds") asks for a lookahead planner on the true model as the reference for how
much a policy that sequences can gain over greedy on a given world: measured, reported, and never
used to tune the world. This script measures it, on the default world in a ground-truth run
(pools and observations from the learned world, responses and leaving from the exact ground
truth), on evaluation users, with paired episodes (common random numbers: every agent meets the
same listeners, pools and luck; :mod:`agents.rollout`), and prints one ``name=value`` per line:

======================================  =========================================================
``<agent>_return``                      mean return of ``random``, ``greedy_truth``,
                                        ``planner_truth``, ``greedy_learned``, ``planner_learned``
``planner_vs_greedy_truth``             planner_truth mean / greedy_truth mean
``planner_minus_greedy_ci_low/_high``   95% t interval of the mean paired difference ("A beats
                                        B" when it excludes zero: docs/design.md)
``planner_learned_vs_greedy_learned``   the same for the learned model (model-predictive control
                                        against the paper's strongest baseline), with
                                        ``planner_learned_minus_greedy_learned_ci_low/_high``
``optimum_gap``                         mean relative gap ``(optimum - planner) / optimum`` of
                                        planner_truth to the exact optimum on small instances
                                        (M = 8, 5 plays; :mod:`agents.optimum`; goal <= 0.01),
                                        beside ``greedy_optimum_gap``
``planner_vs_greedy_truth_without_X``   the ratio with effect X of the ground truth switched off
                                        (``GroundTruthConfig.ablate``), with its paired interval
                                        ``..._ci_low/_high``; X in satiation, mood,
                                        position_fatigue, skip_runs, artist_repetition,
                                        acoustic_transitions, satiation_and_mood (both off:
                                        greedy should then be close to optimal) and
                                        leaving_after_skips (the session-end model's skip
                                        terms at zero); beside it the
                                        returns ``{greedy,planner}_truth_return_without_X`` and
                                        the exact ``greedy_optimum_gap_without_X`` and
                                        ``optimum_gap_without_X`` on ``--ablation-instances``
                                        small instances, the same for every ablation (no
                                        sampling noise: which effects make greedy fall short),
                                        against ``greedy_optimum_gap_with_all_effects`` and
                                        ``optimum_gap_with_all_effects`` on the same instances
``planner_decisions_per_s``             planner_truth decisions per second of ``act`` (batched
                                        over the vector env's sessions), beside
                                        ``planner_learned_decisions_per_s``
======================================  =========================================================

The optimum's instances are the first 8 tracks of the learned pools of evaluation listeners, from
an empty session, with the true model; greedy and the planner are evaluated exactly on the same
instances (:func:`agents.optimum.policy_value`), so the gap is not sampled.

``--sweep`` adds, for a grid of depths, widths and leaf estimates, the planner's return, its
paired difference to greedy and its decisions per second (``sweep_d<depth>_w<width>_<leaf>_...``):
the measurement behind :class:`agents.planner.PlannerConfig`'s defaults.

Sizes: the default run (300 paired episodes per agent and ablation, 50 optimum instances, 30
per ablation) takes about 1.5 minutes of CPU (4.5 minutes of wall time on a shared 2-core
machine) once the default world is cached; ``--full`` is the measurement the closing notes quote
(1,000 paired episodes, 200 instances: about 4 minutes of CPU, 11 of wall time there);
``--quick`` builds a small world instead of the default one and plays 100 episodes (CI's smoke
run).

Run::

    python benchmarks/headroom.py                 # the default world, reduced size
    python benchmarks/headroom.py --full          # 1,000 paired episodes, 200 optimum instances
    python benchmarks/headroom.py --quick         # a small world and few episodes, for CI
    python benchmarks/headroom.py --sweep         # also the depth/width grid
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.base import Agent, Observation, make_agent
from agents.metrics import paired_difference
from agents.optimum import optimal_value, policy_value
from agents.planner import PlannerConfig, greedy_policy, planner_policy
from agents.rollout import evaluation_seed, rollout
from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
from musicenv.responders import GroundTruthResponder
from musicenv.rewards import RewardConfig
from musicenv.vector_env import ListeningSessionVectorEnv
from world_model.world import default_world, groundtruth_for, open_world

ABLATIONS: dict[str, tuple[str, ...]] = {
    "satiation": ("satiation",),
    "mood": ("mood",),
    "position_fatigue": ("position_fatigue",),
    "skip_runs": ("skip_runs",),
    "artist_repetition": ("artist_repetition",),
    "acoustic_transitions": ("acoustic_transitions",),
    "satiation_and_mood": ("satiation", "mood"),
    "leaving_after_skips": (),
}
"""Ground-truth effects switched off per ablation (each alone, then the two that pull against greedy)."""

ABLATED_STRENGTHS: dict[str, dict[str, float]] = {
    "leaving_after_skips": {"leave_after_skip": 0.0, "leave_per_run": 0.0},
}
"""Ablations that zero strengths rather than switch an effect off: the session-end model's extra
chance of leaving after a skip and along a run of skips has no switch of its own (``skip_runs``
only switches the response model's term)."""

SWEEP: tuple[tuple[int, int, str], ...] = (
    (1, 1, "none"),
    (2, 2, "none"),
    (2, 4, "none"),
    (2, 4, "survival"),
    (2, 8, "survival"),
    (3, 2, "survival"),
    (3, 3, "none"),
    (3, 3, "survival"),
)
"""(depth, width, leaf) configurations of ``--sweep``."""


@dataclass(frozen=True)
class Settings:
    """What one run measures.

    Attributes:
        episodes: paired episodes per agent (and per ablation).
        num_envs: sessions stepped together by the vector env.
        instances: small instances for the exact optimum.
        ablation_instances: small instances for the exact gaps of each ablation (0: none).
        optimum_pool, optimum_length: their pool size and plays.
        planner: the planner's search.
        quick: build a small world instead of the default one.
        sweep: also measure the grid :data:`SWEEP`.
        seed: evaluation seed number (:func:`agents.rollout.evaluation_seed`).
    """

    episodes: int = 300
    num_envs: int = 100
    instances: int = 50
    ablation_instances: int = 30
    optimum_pool: int = 8
    optimum_length: int = 5
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    quick: bool = False
    sweep: bool = False
    seed: int = 0


class TimedAgent:
    """An agent whose ``act`` is timed: decisions (session rows) per second of planning."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.name = agent.name
        self.seconds = 0.0
        self.decisions = 0

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        start = time.perf_counter()
        actions = self.agent.act(obs, oracle)
        self.seconds += time.perf_counter() - start
        self.decisions += len(actions)
        return actions

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.seconds


def emit(name: str, value: float) -> None:
    print(f"{name}={value:.4f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def build_world(quick: bool) -> Any:
    """The default learned world, or with ``quick`` a small one built from a small ground truth
    (a ground-truth config that :func:`~world_model.world.open_world` does not take, hence
    :func:`~world_model.world.default_world` itself)."""
    if not quick:
        return open_world("default")
    small = GroundTruthConfig(n_users=400, n_tracks=1500, n_artists=150, n_sessions=4000)
    return default_world(log_sessions=4000, groundtruth_config=small)


def returns_of(name: str, world: Any, env: ListeningSessionVectorEnv, settings: Settings, **kwargs: Any) -> Any:
    agent = make_agent(name, world, **kwargs)
    timed = TimedAgent(agent)
    result = rollout(timed, env, settings.episodes, evaluation_seed(settings.seed))  # type: ignore[arg-type]
    return result.returns, timed


def compare(ratio_name: str, interval_name: str, planner: np.ndarray, greedy: np.ndarray) -> None:
    """Emit ``planner / greedy`` means and the 95% interval of their mean paired difference."""
    interval = paired_difference(planner, greedy)
    emit(ratio_name, float(planner.mean() / greedy.mean()))
    emit(f"{interval_name}_ci_low", interval.low)
    emit(f"{interval_name}_ci_high", interval.high)


def exact_values(
    world: Any, truth: GroundTruthWorld, settings: Settings, reward: np.ndarray, instances: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Exact expected returns of the optimum, planner_truth and greedy on ``instances`` small instances.

    The instances (listeners, contexts, pools) depend on the seed only, so every ground truth
    (ablated or not) is measured on the same ones. Returns ``(optimum, planner, greedy, seconds
    of the optimum)``.
    """
    rng = np.random.default_rng(evaluation_seed(settings.seed))
    users, contexts = world.sample_sessions(rng, instances, "eval")
    pools = np.asarray(world.candidate_pools(users, settings.optimum_pool), dtype=np.int64)
    model = GroundTruthResponder(truth, world)
    state = model.initial_state(users, contexts)
    length = settings.optimum_length
    start = time.perf_counter()
    optimum = optimal_value(model, state, pools, length, reward)
    seconds = time.perf_counter() - start
    planner = policy_value(model, state, pools, length, reward, planner_policy(model, reward, settings.planner))
    greedy = policy_value(model, state, pools, length, reward, greedy_policy(model, reward))
    return optimum, planner, greedy, seconds


def optimum_gaps(world: Any, truth: GroundTruthWorld, settings: Settings, reward: np.ndarray) -> None:
    """Exact relative gaps of planner_truth and greedy to the optimum on small instances."""
    optimum, planner, greedy, seconds = exact_values(world, truth, settings, reward, settings.instances)
    emit("optimum_instances", settings.instances)
    emit("optimum_return", float(optimum.mean()))
    emit("optimum_gap", float(((optimum - planner) / optimum).mean()))
    emit("greedy_optimum_gap", float(((optimum - greedy) / optimum).mean()))
    emit("optimum_seconds", seconds)


def run(settings: Settings) -> None:
    torch.set_num_threads(1)
    reward_config = RewardConfig()
    reward = reward_config.response_values
    start = time.perf_counter()
    world = build_world(settings.quick)
    truth = groundtruth_for(world)
    emit("world_seconds", time.perf_counter() - start)
    planner_kwargs = {
        "depth": settings.planner.depth,
        "width": settings.planner.width,
        "leaf": settings.planner.leaf,
        "shortlist": settings.planner.shortlist,
    }
    emit("episodes", settings.episodes)
    for key, value in planner_kwargs.items():
        emit(f"planner_{key}", value)

    def env_for(groundtruth: GroundTruthWorld) -> ListeningSessionVectorEnv:
        return ListeningSessionVectorEnv(
            num_envs=settings.num_envs, world=world, responder=groundtruth, split="eval", reward=reward_config
        )

    env = env_for(truth)
    returns: dict[str, np.ndarray] = {}
    timings: dict[str, TimedAgent] = {}
    for name in ("random", "greedy_truth", "planner_truth", "greedy_learned", "planner_learned"):
        kwargs = planner_kwargs if name.startswith("planner") else {}
        returns[name], timings[name] = returns_of(name, world, env, settings, **kwargs)
        emit(f"{name}_return", float(returns[name].mean()))
    compare("planner_vs_greedy_truth", "planner_minus_greedy", returns["planner_truth"], returns["greedy_truth"])
    compare(
        "planner_learned_vs_greedy_learned",
        "planner_learned_minus_greedy_learned",
        returns["planner_learned"],
        returns["greedy_learned"],
    )

    optimum_gaps(world, truth, settings, reward)

    if settings.ablation_instances:
        # The unablated ground truth on the ablations' instances: what each ablation's exact gaps compare with.
        optimum, exact_planner, exact_greedy, _ = exact_values(
            world, truth, settings, reward, settings.ablation_instances
        )
        emit("ablation_instances", settings.ablation_instances)
        emit("greedy_optimum_gap_with_all_effects", float(((optimum - exact_greedy) / optimum).mean()))
        emit("optimum_gap_with_all_effects", float(((optimum - exact_planner) / optimum).mean()))

    for label, effects in ABLATIONS.items():
        config = dataclasses.replace(truth.config.ablate(*effects), **ABLATED_STRENGTHS.get(label, {}))
        ablated = GroundTruthWorld(seed=truth.seed, config=config)
        ablated_env = env_for(ablated)
        greedy, _ = returns_of("greedy_truth", world, ablated_env, settings)
        planner, _ = returns_of("planner_truth", world, ablated_env, settings, **planner_kwargs)
        emit(f"greedy_truth_return_without_{label}", float(greedy.mean()))
        emit(f"planner_truth_return_without_{label}", float(planner.mean()))
        name = f"planner_vs_greedy_truth_without_{label}"
        compare(name, name, planner, greedy)
        if settings.ablation_instances:
            # The same question answered exactly, without sampling noise: greedy's gap to the optimum.
            optimum, exact_planner, exact_greedy, _ = exact_values(
                world, ablated, settings, reward, settings.ablation_instances
            )
            emit(f"greedy_optimum_gap_without_{label}", float(((optimum - exact_greedy) / optimum).mean()))
            emit(f"optimum_gap_without_{label}", float(((optimum - exact_planner) / optimum).mean()))

    if settings.sweep:
        for depth, width, leaf in SWEEP:
            label = f"sweep_d{depth}_w{width}_{leaf}"
            planner, timed = returns_of("planner_truth", world, env, settings, depth=depth, width=width, leaf=leaf)
            interval = paired_difference(planner, returns["greedy_truth"])
            emit(f"{label}_return", float(planner.mean()))
            emit(f"{label}_minus_greedy", interval.mean)
            emit(f"{label}_minus_greedy_ci_half", interval.half_width)
            emit(f"{label}_decisions_per_s", timed.decisions_per_s)

    emit("planner_decisions_per_s", timings["planner_truth"].decisions_per_s)
    emit("planner_learned_decisions_per_s", timings["planner_learned"].decisions_per_s)
    emit("seconds", time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small world, 100 episodes, 20 instances (CI)")
    parser.add_argument("--full", action="store_true", help="1,000 paired episodes and 200 optimum instances")
    parser.add_argument("--sweep", action="store_true", help="also measure the depth/width grid")
    parser.add_argument(
        "--episodes", type=int, default=None, help="paired episodes per agent (default 300; --full 1000)"
    )
    parser.add_argument(
        "--instances", type=int, default=None, help="instances of the exact optimum (default 50; --full 200)"
    )
    parser.add_argument(
        "--ablation-instances",
        type=int,
        default=Settings.ablation_instances,
        help="instances of the exact optimum per ablation (default 30; 0: none)",
    )
    parser.add_argument("--num-envs", type=int, default=100, help="sessions stepped together")
    parser.add_argument("--depth", type=int, default=PlannerConfig.depth)
    parser.add_argument("--width", type=int, default=PlannerConfig.width)
    parser.add_argument("--leaf", choices=("none", "survival"), default=PlannerConfig.leaf)
    parser.add_argument(
        "--shortlist",
        type=int,
        default=PlannerConfig.shortlist,
        help="tracks scored below the root (0: the whole pool)",
    )
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed number")
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")
    episodes = args.episodes or (100 if args.quick else 1000 if args.full else Settings.episodes)
    instances = args.instances or (20 if args.quick else 200 if args.full else Settings.instances)
    if episodes < 2 or instances < 1:
        parser.error("need --episodes >= 2 and --instances >= 1")
    settings = Settings(
        episodes=episodes,
        num_envs=min(args.num_envs, episodes),
        instances=instances,
        ablation_instances=min(instances, args.ablation_instances),
        planner=PlannerConfig(args.depth, args.width, args.leaf, args.shortlist or None),
        quick=args.quick,
        sweep=args.sweep,
        seed=args.seed,
    )
    run(settings)


if __name__ == "__main__":
    main()
