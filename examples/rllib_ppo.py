"""Train PPO on ``ListeningSession-v0`` with Ray RLlib: several env runners, the action mask honoured.

Needs the optional extra: ``pip install "musicenv[ray]"`` (Ray RLlib; its 2.60 release pins
gymnasium 1.2.2, which musicenv supports).

What it does
    * Starts (or joins, with ``--address``) a Ray instance and trains RLlib's PPO (the new API
      stack: RLModule, Learner, EnvRunner) with ``--num-env-runners`` (default 2) env runners.
    * **Action mask**: RLlib's own action-masking RLModule,
      ``ray.rllib.examples.rl_modules.classes.action_masking_rlm.ActionMaskingTorchRLModule``,
      which adds ``log(mask)`` to the policy's logits so masked slots have probability zero. The
      env is :class:`musicenv.rllib.MaskedListeningSession`: ``ListeningSession-v0`` with the
      ``{"action_mask", "observations"}`` observation that module reads.
    * **Worlds travel by path**: the world is saved once as a folder (``--world`` names an existing
      one; by default the embedded default world is saved under the run folder) and every env
      runner loads that folder itself. Nothing but the path is pickled.
    * **TensorBoard**: one scalar per RLlib metric under ``charts/`` (returns, episode lengths),
      ``perf/`` (throughput, time) and ``losses/`` (the learner's), plus the hyperparameters as
      text, in ``--log-dir/<run name>``: ``tensorboard --logdir runs``.
    * Prints ``name=value`` lines per iteration (``iteration``, ``episode_return_mean``,
      ``env_steps``, ``seconds``) and the run folder.

Running on one machine::

    python examples/rllib_ppo.py --iterations 20

Running on a multi-node cluster: start Ray on the head node, join every other node to it, and
run the script on the head node with ``--address auto``. The world folder must be readable at the
same path on every node (a shared file system, or copy it to each node first), and musicenv must
be installed on every node (the env runners import :mod:`musicenv.rllib`)::

    # head node
    ray start --head --port=6379
    python -c "from world_model.world import default_world; default_world().save('/shared/worlds/default')"
    # every other node
    ray start --address=<head-node-ip>:6379
    # head node again: 32 env runners spread over the cluster
    python examples/rllib_ppo.py --address auto --world /shared/worlds/default --num-env-runners 32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default=None, help="a saved world folder (default: save the default world)")
    parser.add_argument("--iterations", type=int, default=20, help="PPO iterations (algo.train() calls)")
    parser.add_argument("--num-env-runners", type=int, default=2, help="RLlib env runners (remote workers)")
    parser.add_argument("--pool-size", type=int, default=100, help="candidate pool size M (the action space)")
    parser.add_argument("--playlist-length", type=int, default=20, help="session length cap")
    parser.add_argument("--train-batch-size", type=int, default=2000, help="env steps per PPO iteration")
    parser.add_argument("--minibatch-size", type=int, default=250, help="SGD minibatch size")
    parser.add_argument("--num-epochs", type=int, default=4, help="SGD epochs per iteration")
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate")
    parser.add_argument("--hidden", type=int, default=128, help="width of the policy and value MLPs (two layers)")
    parser.add_argument("--seed", type=int, default=0, help="seeds RLlib (env runners, networks)")
    parser.add_argument("--address", default=None, help="Ray cluster address ('auto' to join); default: a local Ray")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--log-dir", default="runs", help="TensorBoard root folder")
    parser.add_argument("--run-name", default=None, help="run folder name (default: env, agent, seed and time)")
    return parser.parse_args(argv)


def prepare_world(world: str | None, run_dir: Path) -> Path:
    """The world folder the env runners will load: ``world``, or the default world saved under ``run_dir``."""
    if world is not None:
        folder = Path(world).resolve()
        if not (folder / "manifest.json").is_file():
            raise FileNotFoundError(f"--world {world}: not a saved world folder (no manifest.json)")
        return folder
    from world_model.world import default_world

    folder = run_dir / "world"
    default_world().save(folder)
    return folder.resolve()


def scalars(result: dict[str, Any]) -> dict[str, float]:
    """RLlib's nested result as TensorBoard tags (numbers only)."""
    env_runners = result.get("env_runners", {})
    learners = result.get("learners", {}).get("default_policy", {})
    tags: dict[str, float] = {}
    for key in ("episode_return_mean", "episode_return_min", "episode_return_max", "episode_len_mean"):
        if isinstance(env_runners.get(key), (int, float)):
            tags[f"charts/{key}"] = float(env_runners[key])
    for key in ("num_env_steps_sampled_lifetime", "num_episodes_lifetime"):
        if isinstance(env_runners.get(key), (int, float)):
            tags[f"perf/{key}"] = float(env_runners[key])
    for key, value in learners.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tags[f"losses/{key}"] = float(value)
    timers = result.get("timers", {})
    if isinstance(timers.get("training_iteration"), (int, float)):
        tags["perf/iteration_seconds"] = float(timers["training_iteration"])
    return tags


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
    from torch.utils.tensorboard import SummaryWriter

    from musicenv.rllib import register_with_ray

    run_name = args.run_name or f"ListeningSession-v0__rllib_ppo__{args.seed}__{int(time.time())}"
    run_dir = Path(args.log_dir) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    world = prepare_world(args.world, run_dir)
    print(f"world={world}", flush=True)

    ray.init(address=args.address, num_cpus=None if args.address else args.num_cpus, include_dashboard=False)
    env_name = register_with_ray()
    hidden = [args.hidden, args.hidden]
    config = (
        PPOConfig()
        .environment(
            env=env_name,
            env_config={"world": str(world), "pool_size": args.pool_size, "playlist_length": args.playlist_length},
        )
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1, num_cpus_per_env_runner=1)
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=args.train_batch_size,
            minibatch_size=args.minibatch_size,
            num_epochs=args.num_epochs,
            lr=args.lr,
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=ActionMaskingTorchRLModule,
                model_config={"fcnet_hiddens": hidden, "head_fcnet_hiddens": [], "vf_share_layers": False},
            )
        )
        .debugging(seed=args.seed)
    )
    writer = SummaryWriter(str(run_dir))
    hyperparameters = {**vars(args), "world": str(world), "action_masking": "ActionMaskingTorchRLModule"}
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in hyperparameters.items())
    )
    (run_dir / "config.json").write_text(json.dumps(hyperparameters, indent=2))
    algo = config.build_algo()
    start = time.perf_counter()
    try:
        for iteration in range(1, args.iterations + 1):
            result = algo.train()
            tags = scalars(result)
            steps = int(tags.get("perf/num_env_steps_sampled_lifetime", iteration * args.train_batch_size))
            for tag, value in tags.items():
                writer.add_scalar(tag, value, steps)
            elapsed = time.perf_counter() - start
            writer.add_scalar("charts/SPS", steps / elapsed, steps)
            print(
                f"iteration={iteration} episode_return_mean={tags.get('charts/episode_return_mean', float('nan')):.3f} "
                f"env_steps={steps} seconds={elapsed:.1f}",
                flush=True,
            )
    finally:
        writer.close()
        algo.stop()
        ray.shutdown()
    print(f"run_dir={run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
