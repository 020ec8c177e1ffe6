"""Benchmark: the pessimism lambda of ``responses="pessimistic"``, by the AH-DQN's return in the ground truth.

``responses="pessimistic"`` (``--env.responses pessimistic``) trains on each play's reward minus
``lambda`` times the ensemble members' disagreement on it (MOPO); its default is
:data:`musicenv.responders.DEFAULT_PESSIMISM`. The default is chosen on a ground-truth seed that
is not reported (1; the README reports seed 0): this script builds (or reads from the cache) the
default world of ``--groundtruth-seed``, trains one AH-DQN there with the ensemble's mean answers
(``responses="mean"``, the reference) and one per ``--lambdas`` with ``responses="pessimistic"``,
each ``--steps`` agent steps with ``train.py``'s other defaults and the same training seed
(``--train-seed``), saves them in ``--out``, and evaluates them and ``greedy_learned`` on the same
held-out episodes in both worlds (:func:`agents.evaluate.evaluate`, common random numbers). It
prints ``name=value`` lines, ``<agent>`` being ``ahdqn_mean``, ``ahdqn_lambda_<l>`` or
``greedy_learned``:

==================================  ==============================================================
``<agent>_<world>``                 the agent's mean return in ``learned`` and ``groundtruth``
``<agent>_vs_mean``                 its paired ground-truth difference to ``ahdqn_mean``, mean
``<agent>_vs_mean_ci_low/high``     and its 95% t interval
``<agent>_vs_greedy``               its paired ground-truth difference to ``greedy_learned``, mean
``<agent>_vs_greedy_ci_low/high``   and its 95% t interval
``<agent>_selected_step``           the step of the network model selection kept (during training)
``best_lambda``                     the lambda of the largest ground-truth mean return
``best_lambda_vs_<l>``              its paired ground-truth difference to each other lambda's
``best_lambda_vs_<l>_ci_low/high``  AH-DQN, mean and 95% t interval (does the choice beat noise?)
==================================  ==============================================================

Model selection (``train.py``'s default) scores the networks on the learned world's mean answers
whatever the training mode, so every run keeps its network by the same measure. The checkpoints
are ``<out>/mean`` and ``<out>/lambda_<l>`` (``python eval.py --checkpoints <folder>`` evaluates
one again); a second run replaces them. The figures of the default run, and the lambda chosen from
them, are in ``benchmarks/RESULTS.md`` ("Choosing the pessimism lambda").

Run::

    python benchmarks/pessimism.py                                   # seed 1, lambdas 0.25,0.5,1,2, 100,000 steps
    python benchmarks/pessimism.py --lambdas 1,4 --steps 20000 --episodes 200   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from agents.ahdqn import AHDQNLearner
from agents.config import TRAIN_SEED_LIMIT, EnvConfig, TrainConfig
from agents.evaluate import AgentSpec, Evaluation, checkpoint_spec, evaluate
from agents.metrics import paired_difference
from agents.train import make_learner
from musicenv.allocator import keep_freed_memory
from musicenv.artifacts import check_writable
from world_model.world import LearnedWorld, default_world, groundtruth_for

REFERENCE = "ahdqn_mean"
"""The label of the AH-DQN trained on the ensemble's mean answers."""
GREEDY = "greedy_learned"
LAMBDA = "ahdqn_lambda_"
"""The label of an AH-DQN trained with ``responses="pessimistic"``, before its lambda."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; bad values stop the script with a message naming the option."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groundtruth-seed", type=int, default=1, help="ground truth of the world (default 1)")
    parser.add_argument(
        "--lambdas",
        type=lambda text: [float(part) for part in text.split(",") if part],
        default=[0.25, 0.5, 1.0, 2.0],
        help="pessimism lambdas to train with (default 0.25,0.5,1,2)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=TrainConfig.total_steps,
        help="AH-DQN agent steps per run (default: train.py's, 100000)",
    )
    parser.add_argument(
        "--train-seed", type=int, default=TrainConfig.seed, help="training seed of every run (default: train.py's, 1)"
    )
    parser.add_argument("--episodes", type=int, default=500, help="held-out episodes per agent and world (default 500)")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path("pessimism_out"), help="folder for the checkpoints (default pessimism_out)"
    )
    args = parser.parse_args(argv)
    lambdas_ok = bool(args.lambdas) and all(math.isfinite(value) and value >= 0 for value in args.lambdas)
    if not lambdas_ok or len({f"{value:g}" for value in args.lambdas}) != len(args.lambdas):
        parser.error(f"--lambdas must be given, finite, non-negative and distinct: {args.lambdas}")
    if args.steps < 1 or args.episodes < 1:
        parser.error(f"--steps and --episodes must be >= 1: {args.steps}, {args.episodes}")
    for name in ("groundtruth_seed", "train_seed", "eval_seed"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.train_seed + TrainConfig.num_envs > TRAIN_SEED_LIMIT:
        parser.error(f"--train-seed must stay below 2**30 - {TrainConfig.num_envs}, got {args.train_seed}")
    return args


def trained_ahdqn(world: LearnedWorld, config: TrainConfig, folder: Path, label: str, bar: tqdm) -> AgentSpec:
    """An AH-DQN trained in ``world`` as ``config`` says, saved in ``folder``, labelled ``label``.

    Ticks ``bar`` by the agent steps done, and writes ``<label>_selected_step=``: the step of the
    network that model selection kept (``None`` without selection).
    """
    bar.set_postfix_str(label)
    ticked = [0]

    def tick(learner: AHDQNLearner) -> bool:
        bar.update(learner.global_step - ticked[0])
        ticked[0] = learner.global_step
        return False

    learner = make_learner(config, world)
    learner.run(config.total_steps, tick)
    learner.finish()
    tqdm.write(f"{label}_selected_step={learner.best_step}", file=sys.stdout)
    learner.agent.save(folder)
    return dataclasses.replace(checkpoint_spec(folder), label=label)


def print_difference(name: str, evaluation: Evaluation, agent: str, reference: str) -> None:
    """``agent``'s paired ground-truth difference to ``reference`` as ``name``, ``name_ci_low`` and ``name_ci_high``."""
    difference = paired_difference(
        evaluation.rollouts[agent, "groundtruth"].returns, evaluation.rollouts[reference, "groundtruth"].returns
    )
    print(f"{name}={difference.mean:+.4f}")
    print(f"{name}_ci_low={difference.low:+.4f}")
    print(f"{name}_ci_high={difference.high:+.4f}")


def print_figures(evaluation: Evaluation) -> None:
    """The ``name=value`` lines of the module docstring, from the evaluation of ``greedy_learned``,
    ``ahdqn_mean`` and the ``ahdqn_lambda_<l>``."""
    truth = {}
    for result in evaluation.results:
        assert result.metrics is not None
        print(f"{result.agent}_{result.world}={result.metrics.mean_return.mean:.4f}")
        if result.world == "groundtruth":
            truth[result.agent] = result.metrics.mean_return.mean
    for label in truth:
        if label != REFERENCE:
            print_difference(f"{label}_vs_mean", evaluation, label, REFERENCE)
        if label != GREEDY:
            print_difference(f"{label}_vs_greedy", evaluation, label, GREEDY)
    lambdas = [label for label in truth if label.startswith(LAMBDA)]
    best = max(lambdas, key=truth.__getitem__)
    print(f"best_lambda={best.removeprefix(LAMBDA)}")
    for label in lambdas:
        if label != best:
            print_difference(f"best_lambda_vs_{label.removeprefix(LAMBDA)}", evaluation, best, label)


def main(argv: list[str] | None = None) -> None:
    """Train the AH-DQNs, evaluate them with ``greedy_learned``, print the figures."""
    args = parse_args(argv)
    try:
        check_writable(args.out, "--out")  # now, not after the training
    except (PermissionError, FileNotFoundError) as error:
        raise SystemExit(f"pessimism.py: error: {error}") from error
    torch.set_num_threads(1)
    keep_freed_memory()
    started = time.perf_counter()
    world = default_world(groundtruth_seed=args.groundtruth_seed)
    runs = {REFERENCE: (args.out / "mean", EnvConfig(responses="mean"))}
    for value in args.lambdas:
        runs[f"{LAMBDA}{value:g}"] = (
            args.out / f"lambda_{value:g}",
            EnvConfig(responses="pessimistic", pessimism=value),
        )
    specs = [AgentSpec(GREEDY, GREEDY)]
    with tqdm(total=args.steps * len(runs), unit="step", desc="training") as bar:
        for label, (folder, env) in runs.items():
            config = TrainConfig(total_steps=args.steps, seed=args.train_seed, env=env)
            specs.append(trained_ahdqn(world, config, folder, label, bar))
    print(f"checkpoints in {args.out}/: {', '.join(folder.name for folder, _ in runs.values())}", flush=True)
    evaluation = evaluate(
        world, specs, groundtruth_for(world), episodes=args.episodes, seed=args.eval_seed, progress=True
    )
    print_figures(evaluation)
    print(f"total_seconds={time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
