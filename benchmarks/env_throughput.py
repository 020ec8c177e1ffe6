"""Throughput of ListeningSession-v0: the single env against CartPole, the vector env against its model.

Prints ``name=value`` lines, one run:

* ``single_steps_per_s``: ``gymnasium.make("ListeningSession-v0")`` stepped by a random *valid*
  policy (resets included), and ``cartpole_steps_per_s``: ``gymnasium.make("CartPole-v1")`` with
  random actions, in the same process; ``single_vs_cartpole`` is their ratio (goal >= 0.25).
* ``kernel_steps_per_s``: the session model's single-session kernel alone
  (:func:`musicenv.world.single_session`: ``play`` and ``leave_prob``, one call each per play, on
  sessions played until the listener leaves), the part of a single env's step that is the world
  model itself; ``kernel_vs_cartpole`` is its ratio to CartPole, the ceiling of
  ``single_vs_cartpole`` for an environment that added nothing to its model.
* ``vector_steps_per_s``: session-steps per second of ``ListeningSessionVectorEnv`` at N sessions
  (default 256) under a random valid policy (autoresets included), and
  ``model_only_samples_per_s``: the responder's batched ``response_probs`` + ``advance`` alone on
  N sessions; ``vector_vs_model_only`` is their ratio (goal >= 0.5: the env adds at most as much
  time as the model). ``model_with_leave_samples_per_s`` adds the session-end model's
  ``leave_probs``, which the env also calls every step.
  ``vector_no_copy_steps_per_s`` and ``vector_no_copy_vs_model_only``: the same with
  ``copy=False`` (observations in the env's own buffers, not copied for the caller: how
  musicenv's own agents collect, since they store indices, never observations); the copy alone
  is the ``(N, M, d_track)`` candidate matrix and the history, ~8 MB a step at N = 256.
  ``vector_compact_steps_per_s`` and ``vector_compact_vs_model_only``: ``observation="compact"``
  (indices into the world's feature tables instead of feature matrices, copied for the caller as
  by default).
* ``vector_peak_memory_mb``: the peak of Python-allocated memory (tracemalloc, numpy arrays
  included) while building and stepping the vector env.

Each ratio is the median of rounds that alternate its two sides, so that a changing machine
load favours neither. Every env first runs ``--warmup`` seconds, long enough for the world's
pool cache (``world_model.candidates.PoolCache``) to hold nearly every listener of the default
world, so the figures are the steady state of any run longer than a few thousand sessions (a
cold cache ranks each new listener's pool once, ~0.2 ms).

Usage::

    python benchmarks/env_throughput.py                 # the embedded default world
    python benchmarks/env_throughput.py --world fake    # the tests' fake world: a smoke run
    python benchmarks/env_throughput.py --world groundtruth --num-envs 1024
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import musicenv  # noqa: F401  (registers ListeningSession-v0)
from musicenv.artifacts import package_version
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import sample_responses, single_session, take_state


def open_world(name: str) -> Any:
    """The ``world`` argument for a world name (``fake``: the tests' fake world, at a realistic width)."""
    if name == "fake":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fakes import FakeWorld

        return FakeWorld(seed=0, n_users=2000, n_tracks=5000, d_user=32, d_track=32)
    return name


def single_steps_per_s(env: gym.Env, seconds: float, seed: int) -> float:
    """Steps per second under a random valid policy: a random permutation of each pool's slots."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    order = rng.permutation(env.action_space.n)
    k = steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        # The permutation's next slot that is still valid: random, valid, and nearly free.
        mask = obs["action_mask"]
        while not mask[order[k]]:
            k += 1
        obs, _, terminated, truncated, _ = env.step(order[k])
        steps += 1
        if terminated or truncated:
            obs, _ = env.reset()
            order, k = rng.permutation(env.action_space.n), 0
            if time.perf_counter() > deadline:
                return steps / (time.perf_counter() - start)


def kernel_steps_per_s(env: gym.Env, seconds: float, seed: int) -> float:
    """Plays per second of the env's single-session kernel alone: ``play`` and ``leave_prob`` per play.

    Sessions as the env draws them (listener, context, pool, uniforms), each played in pool order
    until the listener leaves or the playlist is full; building each session's kernel is counted.
    """
    unwrapped = env.unwrapped
    world, responder, length = unwrapped.world, unwrapped._responder, unwrapped.playlist_length
    rng = np.random.default_rng(seed)
    users, contexts = world.sample_sessions(rng, 256, "train")
    pools = np.asarray(world.candidate_pools(users, unwrapped.pool_size))
    states = responder.initial_state(users, contexts)
    sessions = [
        (take_state(states, slice(i, i + 1)), pool[pool >= 0][:length].tolist(), rng.random((2, length)))
        for i, pool in enumerate(pools)
    ]
    plays = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for state, tracks, uniforms in sessions:
            kernel = single_session(responder, state)
            for position, track in enumerate(tracks):
                kernel.play(track, uniforms[0, position])
                plays += 1
                if uniforms[1, position] < kernel.leave_prob():
                    break
    return plays / (time.perf_counter() - start)


def cartpole_steps_per_s(seconds: float, seed: int) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 2, 1 << 16).tolist()
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        _, _, terminated, truncated, _ = env.step(actions[steps & 0xFFFF])
        steps += 1
        if terminated or truncated:
            env.reset()
            if time.perf_counter() > deadline:
                return steps / (time.perf_counter() - start)


def vector_steps_per_s(envs: ListeningSessionVectorEnv, seconds: float, seed: int) -> float:
    """Session-steps per second under a random valid policy (random scores, masked argmax)."""
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    scores = rng.random((8, envs.num_envs, envs.pool_size), dtype=np.float32)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = (scores[steps % 8] * obs["action_mask"]).argmax(axis=1)
        obs, *_ = envs.step(actions)
        steps += 1
    return steps * envs.num_envs / (time.perf_counter() - start)


def model_only_samples_per_s(envs: ListeningSessionVectorEnv, seconds: float, leave: bool) -> float:
    """The responder alone on the vector env's sessions: ``response_probs``, ``advance``, ``leave_probs``."""
    responder = envs._responder
    rows = np.arange(envs.num_envs)
    envs.reset(seed=0)
    initial = envs._state
    tracks = envs.pools[:, : envs.playlist_length]
    uniforms = np.random.default_rng(0).random((envs.playlist_length, envs.num_envs))
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = initial
        for position in range(envs.playlist_length):
            played = tracks[rows, position]
            probs = responder.response_probs(state, played[:, None])[:, 0]
            state = responder.advance(state, played, sample_responses(probs, uniforms[position]))
            if leave:
                responder.leave_probs(state)
            calls += 1
    return calls * envs.num_envs / (time.perf_counter() - start)


def interleaved(
    first: Callable[[float], float], second: Callable[[float], float], rounds: int, seconds: float
) -> tuple[float, float, float]:
    """Medians of two rates measured in alternating rounds, and the median of their per-round ratio.

    Alternating keeps a changing machine load (other processes, CPU frequency) from favouring
    either side of a ratio.
    """
    pairs = [(first(seconds), second(seconds)) for _ in range(rounds)]
    return (
        statistics.median(a for a, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(a / b for a, b in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="default", help="default, groundtruth, fake, or a saved world folder")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5, help="alternating measuring rounds of each pair")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time of each round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds each env runs before measuring")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    single = gym.make("ListeningSession-v0", world=open_world(args.world))
    single_steps_per_s(single, args.warmup, args.seed)  # warm-up: caches, lazy imports
    single_rate, cartpole_rate, single_ratio = interleaved(
        lambda seconds: single_steps_per_s(single, seconds, args.seed),
        lambda seconds: cartpole_steps_per_s(seconds, args.seed),
        args.rounds,
        args.seconds,
    )

    kernel_rate, _, kernel_ratio = interleaved(
        lambda seconds: kernel_steps_per_s(single, seconds, args.seed),
        lambda seconds: cartpole_steps_per_s(seconds, args.seed),
        args.rounds,
        args.seconds,
    )

    tracemalloc.start()
    # The single env's world and responder, so that both figures measure the same model.
    envs = ListeningSessionVectorEnv(args.num_envs, world=single.unwrapped.world, responder=single.unwrapped._responder)
    vector_steps_per_s(envs, 0.5, args.seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    vector_steps_per_s(envs, args.warmup, args.seed)
    model_only_samples_per_s(envs, 0.5, leave=False)
    vector_rate, model_rate, vector_ratio = interleaved(
        lambda seconds: vector_steps_per_s(envs, seconds, args.seed),
        lambda seconds: model_only_samples_per_s(envs, seconds, leave=False),
        args.rounds,
        args.seconds,
    )
    model_leave_rate = model_only_samples_per_s(envs, args.seconds, leave=True)

    def against_the_model(**options: Any) -> tuple[float, float]:
        """Steps/s of a vector env built with ``options``, and its ratio to the model alone."""
        variant = ListeningSessionVectorEnv(
            args.num_envs, world=single.unwrapped.world, responder=single.unwrapped._responder, **options
        )
        vector_steps_per_s(variant, args.warmup, args.seed)
        rate, _, ratio = interleaved(
            lambda seconds: vector_steps_per_s(variant, seconds, args.seed),
            lambda seconds: model_only_samples_per_s(envs, seconds, leave=False),
            args.rounds,
            args.seconds,
        )
        return rate, ratio

    no_copy_rate, no_copy_ratio = against_the_model(copy=False)
    compact_rate, compact_ratio = against_the_model(observation="compact")

    print(f"world={args.world}")
    print(f"musicenv_version={package_version()}")
    print(f"single_steps_per_s={single_rate:.0f}")
    print(f"cartpole_steps_per_s={cartpole_rate:.0f}")
    print(f"single_vs_cartpole={single_ratio:.3f}")
    print(f"kernel_steps_per_s={kernel_rate:.0f}")
    print(f"kernel_vs_cartpole={kernel_ratio:.3f}")
    print(f"num_envs={args.num_envs}")
    print(f"vector_steps_per_s={vector_rate:.0f}")
    print(f"model_only_samples_per_s={model_rate:.0f}")
    print(f"vector_vs_model_only={vector_ratio:.3f}")
    print(f"model_with_leave_samples_per_s={model_leave_rate:.0f}")
    print(f"vector_no_copy_steps_per_s={no_copy_rate:.0f}")
    print(f"vector_no_copy_vs_model_only={no_copy_ratio:.3f}")
    print(f"vector_compact_steps_per_s={compact_rate:.0f}")
    print(f"vector_compact_vs_model_only={compact_ratio:.3f}")
    print(f"vector_peak_memory_mb={peak / 2**20:.1f}")


if __name__ == "__main__":
    main()
