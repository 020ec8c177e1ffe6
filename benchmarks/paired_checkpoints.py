"""Benchmark: is one trained agent better than another, on the same evaluation episodes?

Evaluates two checkpoints (``train.py``'s folders) and ``greedy_learned`` with
:func:`agents.evaluate.evaluate_config`, on ``eval.py``'s held-out episodes (common random
numbers: the same seed gives the same listeners, pools and luck), in the learned world and in its
ground truth. Prints one ``name=value`` per line:

====================================  ===========================================================
``<world>_<label>_return``            mean return of each agent (labels as ``eval.py`` gives them)
``<world>_second_minus_first``        mean paired per-episode difference, second checkpoint minus
                                      first, with its 95% t interval ``..._ci_low`` / ``_ci_high``
                                      (docs/design.md, "Evaluation protocol")
====================================  ===========================================================

Run::

    python benchmarks/paired_checkpoints.py checkpoints/<old run> checkpoints/<new run>
"""

from __future__ import annotations

import argparse

import torch

from agents.evaluate import EvalConfig, agent_specs, evaluate_config
from agents.metrics import paired_difference
from world_model.world import open_world_and_truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="the first checkpoint folder (the reference of the difference)")
    parser.add_argument("second", help="the second checkpoint folder")
    parser.add_argument("--world", default="default", help="the learned world (default: default)")
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per agent and world (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed, counted from 2**30 (default: 0)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    world, truth = open_world_and_truth(args.world)
    config = EvalConfig(
        world=args.world,
        agents=("greedy_learned",),
        checkpoints=(args.first, args.second),
        episodes=args.episodes,
        seed=args.seed,
        progress=False,
    )
    specs, _ = agent_specs(config)
    evaluation = evaluate_config(config, world, truth, specs)
    first, second = specs[-2].label, specs[-1].label
    for label in ("learned", "groundtruth"):
        if (first, label) not in evaluation.rollouts:
            continue
        for spec in specs:
            returns = evaluation.rollouts[(spec.label, label)].returns
            print(f"{label}_{spec.label}_return={float(returns.mean()):.4f}")
        difference = paired_difference(
            evaluation.rollouts[(second, label)].returns, evaluation.rollouts[(first, label)].returns
        )
        print(f"{label}_second_minus_first={difference.mean:.4f}")
        print(f"{label}_second_minus_first_ci_low={difference.low:.4f}")
        print(f"{label}_second_minus_first_ci_high={difference.high:.4f}")


if __name__ == "__main__":
    main()
