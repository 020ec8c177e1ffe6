"""Benchmark: does the AH-DQN beat greedy ranking where it counts, in the ground truth?

The protocol of docs/design.md ("Evaluation protocol"): on the default world, the AH-DQN
is trained in the *learned* world (as ``train.py`` trains it), then every agent is evaluated on
held-out listeners in the *ground-truth* world (observations and pools from the learned world,
responses and leaving from the exact ground truth: the sim-to-real run), on the same fixed
evaluation episodes (common random numbers, :mod:`agents.rollout`). Prints one ``name=value`` per
line:

====================================  ===========================================================
``<agent>_return``                    mean ground-truth return of each agent (the AH-DQN and
                                      ``agents.train.BASELINES``), with its 95% t interval
                                      ``<agent>_return_ci_low`` / ``_ci_high``
``ahdqn_vs_greedy``                   AH-DQN's mean return over ``greedy_learned``'s (goal >= 1.05)
``ahdqn_minus_greedy_ci_low/_high``   95% t interval of the mean paired difference (docs/design.md: "A
                                      beats B" when it excludes zero)
``ahdqn_vs_planner_learned``          the same ratio against model-predictive control
``learned_<agent>_return``            the same episodes in the *learned* world (where the AH-DQN
                                      trains) for the AH-DQN, ``greedy_learned`` and
                                      ``planner_learned`` (``--learned-agents``), with intervals,
                                      and ``learned_ahdqn_minus_<agent>`` paired differences
``selection_<step>``                  the AH-DQN's model-selection scores (mean return on the
                                      training users' selection episodes in the learned world) and
                                      ``selected_step``, the step of the network it keeps
``train_seconds_to_greedy``           training wall time (evaluations excluded) until the AH-DQN's
                                      return on the checkpoint episodes first reaches greedy's on
                                      the same episodes (``nan``: never within ``--steps``)
``agent_steps_per_s``                 AH-DQN training throughput (env steps and gradient steps)
``agent_steps_per_cpu_s``             the same per second of the process's CPU time (user and
                                      system): the figure to compare on a busy shared machine,
                                      where wall time counts other processes' turns
``load_average_1m``                   the machine's load when the run ended (the CPU is shared:
                                      read throughput against it)
====================================  ===========================================================

``--checkpoint-every`` steps, training pauses and the agent plays ``--checkpoint-episodes``
fixed ground-truth episodes (greedy's return on them is computed once); that curve is what
``train_seconds_to_greedy`` reads, and its points are printed as ``curve_<step>=<return>``.

With ``--ahdqn.model-features`` (the default) the untrained AH-DQN *is* greedy_learned (its
network adds a zero correction to greedy's score), so ``train_seconds_to_greedy`` then measures
when training first stops losing to greedy at a checkpoint, not when it catches up from scratch.
The curve follows the network being trained; the final figures are those of the network that
model selection keeps (``selected_step``; selection reads only the learned world). On 128
episodes a checkpoint's mean has a 95% interval of about +-1 (the returns spread widely), so
the curve is a rough guide.

Options not listed by ``--help`` go to ``train.py``'s configuration (``--ahdqn.n-step 3``, ...),
so a variant is measured with exactly the code ``train.py`` runs.

Run::

    python benchmarks/agent_returns.py                                    # small default: a few minutes
    python benchmarks/agent_returns.py --steps 100000 --episodes 1000     # train.py's run, the issue's measurement
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import torch

from agents.base import Agent, make_agent
from agents.config import TrainConfig, apply_overrides, build_parser
from agents.metrics import mean_interval, paired_difference
from agents.rollout import RolloutResult, evaluation_seed, rollout
from agents.train import BASELINES, EVAL_ENVS, make_learner
from musicenv.vector_env import ListeningSessionVectorEnv
from world_model.world import open_world_and_truth


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other option is a train.py option (python train.py --help), e.g. --ahdqn.n-step 3.",
    )
    parser.add_argument("--steps", type=int, default=30_000, help="AH-DQN training steps (default: 30000)")
    parser.add_argument("--episodes", type=int, default=300, help="evaluation episodes per agent (default: 300)")
    parser.add_argument("--seed", type=int, default=1, help="training seed (default: 1)")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed, counted from 2**30 (default: 0)")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=10_000,
        help="training steps between evaluations on the checkpoint episodes (0: none; default: 10000)",
    )
    parser.add_argument(
        "--checkpoint-episodes", type=int, default=128, help="episodes of each checkpoint evaluation (default: 128)"
    )
    parser.add_argument(
        "--agents",
        default=",".join(("ahdqn", *BASELINES)),
        help="comma-separated agents to evaluate (default: the AH-DQN and every baseline of train.py)",
    )
    parser.add_argument(
        "--learned-agents",
        default="ahdqn,greedy_learned,planner_learned",
        help="comma-separated agents also evaluated in the learned world (default: %(default)s)",
    )
    parser.add_argument("--world", default="default", help="the world: default or a saved world folder")
    args, rest = parser.parse_known_args(argv)
    given = vars(build_parser(prog="benchmarks/agent_returns.py (train.py options)").parse_args(rest))
    config = apply_overrides(TrainConfig(), {**given, "total_steps": args.steps, "seed": args.seed})
    return args, config


def ground_truth_rollout(
    agent: Agent, world: Any, truth: Any, config: TrainConfig, episodes: int, seed: int
) -> RolloutResult:
    """``agent`` on ``episodes`` fixed held-out episodes of the ground-truth run (``truth=None``: the
    same episodes answered by the learned world)."""
    env = ListeningSessionVectorEnv(
        min(EVAL_ENVS, episodes),
        world=world,
        responder=truth,
        split="eval",
        playlist_length=config.playlist_length,
        pool_size=config.pool_size,
    )
    return rollout(agent, env, episodes, evaluation_seed(seed), world="learned" if truth is None else "groundtruth")


def print_returns(prefix: str, results: dict[str, Any]) -> None:
    """``<prefix><agent>_return`` and its 95% interval's bounds, one ``name=value`` line each."""
    for name, result in results.items():
        interval = mean_interval(result.returns)
        print(f"{prefix}{name}_return={interval.mean:.4f}")
        print(f"{prefix}{name}_return_ci_low={interval.low:.4f}")
        print(f"{prefix}{name}_return_ci_high={interval.high:.4f}")


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    args, config = parse_args(argv)
    names = [name for name in args.agents.split(",") if name]
    world, truth = open_world_and_truth(args.world)
    if truth is None:
        raise SystemExit(f"benchmarks/agent_returns.py: error: the world {args.world!r} has no ground truth")

    # The checkpoint episodes come after the final evaluation's (disjoint seeds), so the curve
    # never selects on the episodes the final figures are computed from.
    curve_seed = args.eval_seed + 10 * max(args.episodes, EVAL_ENVS)
    greedy = make_agent("greedy_learned", world)
    greedy_curve_return = (
        ground_truth_rollout(greedy, world, truth, config, args.checkpoint_episodes, curve_seed).returns.mean()
        if args.checkpoint_every
        else math.nan
    )

    learner = make_learner(config, world)
    train_seconds, train_cpu_seconds, seconds_to_greedy = 0.0, 0.0, math.nan
    next_check = args.checkpoint_every or config.total_steps
    while learner.global_step < config.total_steps:
        start, cpu_start = time.perf_counter(), time.process_time()
        learner.run(min(next_check, config.total_steps))
        train_seconds += time.perf_counter() - start
        train_cpu_seconds += time.process_time() - cpu_start
        if args.checkpoint_every:
            curve = ground_truth_rollout(learner.agent, world, truth, config, args.checkpoint_episodes, curve_seed)
            value = float(curve.returns.mean())
            print(f"curve_{learner.global_step}={value:.4f}", flush=True)
            if math.isnan(seconds_to_greedy) and value >= greedy_curve_return:
                seconds_to_greedy = train_seconds
            next_check += args.checkpoint_every
    start, cpu_start = time.perf_counter(), time.process_time()
    learner.finish()
    train_seconds += time.perf_counter() - start
    train_cpu_seconds += time.process_time() - cpu_start

    results: dict[str, RolloutResult] = {}
    learned: dict[str, RolloutResult] = {}
    for name in names:
        agent = learner.agent if name == "ahdqn" else make_agent(name, world, **_kwargs(name, config))
        results[name] = ground_truth_rollout(agent, world, truth, config, args.episodes, args.eval_seed)
    for name in [name for name in args.learned_agents.split(",") if name]:
        agent = learner.agent if name == "ahdqn" else make_agent(name, world, **_kwargs(name, config))
        learned[name] = ground_truth_rollout(agent, world, None, config, args.episodes, args.eval_seed)

    print(f"episodes={args.episodes}")
    print(f"steps={learner.global_step}")
    print_returns("", results)
    if "ahdqn" in results:
        for reference, label in (("greedy_learned", "greedy"), ("planner_learned", "planner_learned")):
            if reference not in results:
                continue
            ratio = results["ahdqn"].returns.mean() / results[reference].returns.mean()
            difference = paired_difference(results["ahdqn"].returns, results[reference].returns)
            print(f"ahdqn_vs_{label}={ratio:.4f}")
            print(f"ahdqn_minus_{label}_ci_low={difference.low:.4f}")
            print(f"ahdqn_minus_{label}_ci_high={difference.high:.4f}")
    print_returns("learned_", learned)
    if "ahdqn" in learned:
        for reference in [name for name in learned if name != "ahdqn"]:
            difference = paired_difference(learned["ahdqn"].returns, learned[reference].returns)
            print(f"learned_ahdqn_minus_{reference}={difference.mean:.4f}")
            print(f"learned_ahdqn_minus_{reference}_ci_low={difference.low:.4f}")
            print(f"learned_ahdqn_minus_{reference}_ci_high={difference.high:.4f}")
    for step, score in learner.selection_scores.items():
        print(f"selection_{step}={score:.4f}")
    if learner.best_step is not None:
        print(f"selected_step={learner.best_step}")
    print(f"greedy_checkpoint_return={greedy_curve_return:.4f}")
    print(f"train_seconds_to_greedy={seconds_to_greedy:.1f}")
    print(f"train_seconds={train_seconds:.1f}")
    print(f"agent_steps_per_s={learner.global_step / max(train_seconds, 1e-9):.0f}")
    print(f"agent_steps_per_cpu_s={learner.global_step / max(train_cpu_seconds, 1e-9):.0f}")
    print(f"load_average_1m={os.getloadavg()[0]:.2f}")


def _kwargs(name: str, config: TrainConfig) -> dict[str, Any]:
    return {"seed": config.seed} if name == "random" else {}


if __name__ == "__main__":
    main()
