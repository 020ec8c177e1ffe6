"""The GPU path: the vector env on a CUDA device with AH-DQN choosing every action, and AH-DQN training.

Prints ``name=value`` lines, one run (docs/design.md, "Speed"):

* ``gpu_vector_steps_per_s``: session-steps per second of ``TorchListeningSessionVectorEnv(N,
  device="cuda", obs_format="torch")`` (default N = 4,096) with an AH-DQN Q-network choosing every
  action on the GPU (masked argmax over the pool), autoresets included; observations never leave
  the device. Goal >= 500,000. ``gpu_env_only_steps_per_s``: the same env under a random valid
  policy drawn on the device, to show the env's own share.
* ``cpu_vector_steps_per_s``: the same N and agent on the CPU of the same machine, through the
  numpy path (the default) with ``AHDQN.act``; ``gpu_vs_cpu_vector`` is the ratio.
* ``gpu_train_sps`` / ``cpu_train_sps``: AH-DQN training (``agents.ahdqn.AHDQNLearner``, as
  ``train.py --agent ahdqn --device ...`` runs it: a numpy vector env, the networks on the
  device) in agent steps per second after ``learning_starts``; ``gpu_train_sps_ratio`` is GPU over
  CPU (goal >= 10). ``gpu_gradient_steps_per_s`` / ``cpu_gradient_steps_per_s``: gradient steps
  alone at ``--batch-size``.
* ``implicit_gpu``: 1 when implicit was built with CUDA (``implicit.gpu.HAS_CUDA``; pip's wheels
  are CPU-only), with ``als_gpu_seconds`` / ``als_cpu_seconds`` for one ALS fit then.

Without a CUDA device it prints ``gpu=unavailable`` and why, and exits 0 (``--device cpu`` runs the
"GPU" side on the CPU's tensor path instead: a smoke test of the code, not a measurement).

Usage::

    python benchmarks/gpu.py                            # the embedded default world, N = 4096
    python benchmarks/gpu.py --world fake --num-envs 256 --device cpu --threads 1   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import musicenv  # noqa: F401  (registers ListeningSession-v0)
from agents.ahdqn import AHDQN, AHDQNLearner
from agents.config import AHDQNConfig
from agents.networks import observation_tensors
from musicenv.torch_vector_env import TorchListeningSessionVectorEnv
from musicenv.vector_env import ListeningSessionVectorEnv


def open_world(name: str) -> Any:
    """The world for ``--world``: ``fake`` (the tests'), else as ``train.py``'s ``--world`` (``default`` or a
    saved world folder)."""
    if name == "fake":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fakes import FakeWorld

        return FakeWorld(seed=0, n_users=500, n_tracks=3000, d_user=33, d_track=63)
    from world_model.world import open_world as open_named_world  # the one way to open a world by name

    return open_named_world(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def tensor_vector_steps_per_s(
    world: Any, agent: AHDQN | None, num_envs: int, steps: int, warmup: int, device: torch.device
) -> float:
    """Session-steps/s of the tensor path on ``device``: ``agent`` (or a random valid policy) picks on the device."""
    env = TorchListeningSessionVectorEnv(num_envs, world=world, device=device, obs_format="torch", copy=False)
    obs, _ = env.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)

    def act(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = obs["action_mask"].bool()
        if agent is None:
            scores = torch.rand(mask.shape, device=device, generator=generator)
        else:
            scores = agent.q_network(observation_tensors(obs, device))
        return scores.masked_fill(~mask, -torch.inf).argmax(dim=1)

    for _ in range(warmup):  # also fills the env's pool cache for most users
        obs = env.step(act(obs))[0]
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        obs = env.step(act(obs))[0]
    synchronize(device)
    return num_envs * steps / (time.perf_counter() - start)


def cpu_vector_steps_per_s(world: Any, agent: AHDQN, num_envs: int, steps: int, warmup: int) -> float:
    """Session-steps/s of the numpy path with ``AHDQN.act`` (on the CPU) picking every action."""
    env = ListeningSessionVectorEnv(num_envs, world=world, copy=False)
    obs, _ = env.reset(seed=0)
    for _ in range(warmup):
        obs = env.step(agent.act(obs))[0]
    start = time.perf_counter()
    for _ in range(steps):
        obs = env.step(agent.act(obs))[0]
    return num_envs * steps / (time.perf_counter() - start)


def train_rates(world: Any, device: str, args: argparse.Namespace) -> tuple[float, float]:
    """AH-DQN training on ``device``: (agent steps/s of the learner after ``learning_starts``, gradient steps/s)."""
    # Pure TD learning: no planner demonstrations, no model-selection evaluations in the timed span.
    config = AHDQNConfig(
        batch_size=args.batch_size,
        learning_starts=args.train_envs * 4,
        train_frequency=args.train_envs,
        demonstration_fraction=0.0,
        selection_interval=0,
    )
    env = ListeningSessionVectorEnv(args.train_envs, world=world, copy=False)
    agent = AHDQN(world, seed=0, device=device)
    total = args.train_envs * (4 + args.train_iterations + 2)
    learner = AHDQNLearner(agent, env, config, total_steps=total, seed=0)
    learner.run(config.learning_starts + args.train_envs)  # fill the replay, take the first gradient step
    synchronize(torch.device(device))
    start_step, start = learner.global_step, time.perf_counter()
    learner.run(start_step + args.train_iterations * args.train_envs)
    synchronize(torch.device(device))
    agent_sps = (learner.global_step - start_step) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(args.gradient_steps):
        learner.train_step()
    synchronize(torch.device(device))
    return agent_sps, args.gradient_steps / (time.perf_counter() - start)


def als_seconds(device: str, users: int, tracks: int) -> float:
    """Seconds of one 64-factor ALS fit (``world_model.embeddings``) on a random sparse play matrix."""
    import scipy.sparse as sp

    from world_model.embeddings import fit_als

    rng = np.random.default_rng(0)
    plays = 20 * users
    matrix = sp.csr_matrix(
        (rng.random(plays).astype(np.float32) + 1.0, (rng.integers(0, users, plays), rng.integers(0, tracks, plays))),
        shape=(users, tracks),
    )
    start = time.perf_counter()
    fit_als(matrix, factors=64, regularization=0.05, iterations=15, seed=0, device=device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="default", help="default, fake, or a saved world folder")
    parser.add_argument("--num-envs", type=int, default=4096, help="sessions stepped together (N)")
    parser.add_argument("--steps", type=int, default=200, help="timed vector steps on the GPU")
    parser.add_argument("--cpu-steps", type=int, default=5, help="timed vector steps on the CPU")
    parser.add_argument("--warmup", type=int, default=20, help="untimed vector steps first")
    parser.add_argument("--device", default="cuda", help="the accelerator ('cpu' runs the tensor path: a smoke test)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default, all cores)")
    parser.add_argument("--train-envs", type=int, default=256, help="sessions of the training vector env")
    parser.add_argument("--train-iterations", type=int, default=30, help="timed learner iterations")
    parser.add_argument("--batch-size", type=int, default=1024, help="AH-DQN batch size for the training rates")
    parser.add_argument("--gradient-steps", type=int, default=30, help="timed gradient steps alone")
    parser.add_argument("--skip-train", action="store_true", help="measure the vector env only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu=unavailable")
        print("reason=torch.cuda.is_available() is False: no CUDA GPU here; run this on a machine with one")
        return 0
    print(f"device={torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu (smoke run)'}")
    print(f"cpu_threads={torch.get_num_threads()}")
    print(f"num_envs={args.num_envs}")
    world = open_world(args.world)
    print(f"world={args.world} users={len(world.user_features)} tracks={len(world.track_features)}")

    gpu_agent = AHDQN(world, seed=0, device=str(device))
    cpu_agent = AHDQN(world, seed=0, device="cpu")
    gpu_env_only = tensor_vector_steps_per_s(world, None, args.num_envs, args.steps, args.warmup, device)
    gpu_steps = tensor_vector_steps_per_s(world, gpu_agent, args.num_envs, args.steps, args.warmup, device)
    cpu_steps = cpu_vector_steps_per_s(world, cpu_agent, args.num_envs, args.cpu_steps, min(args.warmup, 3))
    print(f"gpu_env_only_steps_per_s={gpu_env_only:.0f}")
    print(f"gpu_vector_steps_per_s={gpu_steps:.0f}")
    print(f"cpu_vector_steps_per_s={cpu_steps:.0f}")
    print(f"gpu_vs_cpu_vector={gpu_steps / cpu_steps:.2f}")
    if device.type == "cuda":
        print(f"gpu_peak_memory_mb={torch.cuda.max_memory_allocated(device) / 2**20:.0f}")

    if not args.skip_train:
        gpu_train, gpu_gradient = train_rates(world, str(device), args)
        cpu_train, cpu_gradient = train_rates(world, "cpu", args)
        print(f"train_envs={args.train_envs} batch_size={args.batch_size}")
        print(f"gpu_train_sps={gpu_train:.0f}")
        print(f"cpu_train_sps={cpu_train:.0f}")
        print(f"gpu_train_sps_ratio={gpu_train / cpu_train:.2f}")
        print(f"gpu_gradient_steps_per_s={gpu_gradient:.1f}")
        print(f"cpu_gradient_steps_per_s={cpu_gradient:.1f}")
        print(f"gpu_gradient_ratio={gpu_gradient / cpu_gradient:.2f}")

    try:
        import implicit.gpu

        has_cuda = bool(implicit.gpu.HAS_CUDA)
    except ImportError:
        has_cuda = False
    print(f"implicit_gpu={int(has_cuda)}")
    if has_cuda and device.type == "cuda":
        print(f"als_gpu_seconds={als_seconds('cuda', 100_000, 50_000):.2f}")
        print(f"als_cpu_seconds={als_seconds('cpu', 100_000, 50_000):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
