"""Benchmark: ``lcb_greedy``'s ``kappa``, against ``greedy_learned``, in the learned world and its ground truth.

``lcb_greedy`` (:class:`agents.baselines.LCBGreedyAgent`) ranks candidates by the ensemble's mean
expected reward minus ``kappa`` times the members' disagreement. Its default ``kappa`` is chosen
on a ground-truth seed that is not reported (1; the README reports seed 0): this script builds
(or reads from the cache) the default world of ``--groundtruth-seed``, evaluates
``greedy_learned`` and ``lcb_greedy`` at each ``--kappas`` on the same held-out episodes in both
worlds (:func:`agents.evaluate.evaluate`, common random numbers), and prints ``name=value`` lines:

================================  ================================================================
``greedy_learned_<world>``        greedy_learned's mean return in ``learned`` and ``groundtruth``
``kappa_<k>_<world>``             lcb_greedy's paired difference to greedy_learned, mean
``kappa_<k>_<world>_ci_low/high`` and its 95% t interval
``best_kappa``                    the kappa of the largest ground-truth difference
================================  ================================================================

Run::

    python benchmarks/lcb_kappa.py                                  # seed 1, kappas 0.5,1,2,3, 500 episodes
    python benchmarks/lcb_kappa.py --groundtruth-seed 0 --kappas 2  # the reported world
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from agents.evaluate import AgentSpec, evaluate
from world_model.world import default_world, groundtruth_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groundtruth-seed", type=int, default=1, help="ground truth of the world (default 1)")
    parser.add_argument(
        "--kappas",
        type=lambda text: [float(part) for part in text.split(",") if part],
        default=[0.5, 1.0, 2.0, 3.0],
        help="kappas to compare (default 0.5,1,2,3)",
    )
    parser.add_argument("--episodes", type=int, default=500, help="held-out episodes per agent and world")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed")
    args = parser.parse_args(argv)
    kappas_ok = bool(args.kappas) and all(math.isfinite(kappa) and kappa >= 0 for kappa in args.kappas)
    if args.groundtruth_seed < 0 or args.episodes < 1 or not kappas_ok:
        parser.error(
            f"--groundtruth-seed must be >= 0, --episodes >= 1 and --kappas finite, non-negative and given: "
            f"{args.groundtruth_seed}, {args.episodes}, {args.kappas}"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    world = default_world(groundtruth_seed=args.groundtruth_seed)
    specs = [AgentSpec("greedy_learned", "greedy_learned")]
    specs += [AgentSpec(f"kappa_{kappa:g}", "lcb_greedy", kwargs={"kappa": kappa}) for kappa in args.kappas]
    evaluation = evaluate(
        world, specs, groundtruth_for(world), episodes=args.episodes, seed=args.eval_seed, progress=True
    )
    best, best_difference = None, -float("inf")
    for result in evaluation.results:
        if result.metrics is None:
            continue
        if result.agent == "greedy_learned":
            print(f"greedy_learned_{result.world}={result.metrics.mean_return.mean:.4f}")
            continue
        versus = result.vs_reference
        assert versus is not None
        print(f"{result.agent}_{result.world}={versus.mean:+.4f}")
        print(f"{result.agent}_{result.world}_ci_low={versus.low:+.4f}")
        print(f"{result.agent}_{result.world}_ci_high={versus.high:+.4f}")
        if result.world == "groundtruth" and versus.mean > best_difference:
            best, best_difference = result.agent.removeprefix("kappa_"), versus.mean
    print(f"best_kappa={best}")
    print(f"total_seconds={time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
