"""Benchmark: what scoring candidates and playing one track cost on each path of the learned world.

The learned world's user-response model is asked two things again and again: the probabilities of
a batch of sessions' candidate pools (agents, planners, the vector environment) and one play of
one session (the single environment). This script times each path on the default world (or
``--world``), torch at one thread, and prints ``name=value`` lines:

=================================  ===============================================================
``module_<B>x<K>_ms``              ``UserResponseModel.score`` on ``B`` sessions x ``K`` candidates
                                   (what agents that read observations run: ``greedy_learned``,
                                   the AH-DQN's model features), members' logits
``session_model_<B>x<K>_ms``       ``LearnedSessionModel.member_response_probs`` on the same batch
                                   (the planners' path: numpy up to ``numpy_threshold`` rows, the
                                   module above)
``device_model_<B>x<K>_ms``        the device model's tables (``torch_session_model("cpu")``)
``single_play_us``                 ``LearnedSingleSession.play``: one play of one session (the
                                   single environment's kernel), sessions of 20 plays
=================================  ===============================================================

Each figure is the median of ``--rounds`` timings of at least a quarter of a second each.

Run::

    python benchmarks/scoring.py                   # the default world, batches 8x100, 64x100, 192x16
    python benchmarks/scoring.py --batches 256x100
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from musicenv.artifacts import ArtifactError
from musicenv.world import Contexts, SessionState
from world_model.learned_session import LearnedSessionModel
from world_model.world import default_world, open_world


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def batches(text: str) -> list[tuple[int, int]]:
        pairs = []
        for part in text.split(","):
            sessions, _, candidates = part.partition("x")
            if not (sessions.isdigit() and candidates.isdigit()) or min(int(sessions), int(candidates)) < 1:
                raise argparse.ArgumentTypeError(f"a batch is SESSIONSxCANDIDATES with both >= 1, got {part!r}")
            pairs.append((int(sessions), int(candidates)))
        return pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="default", help="default, or a saved world folder")
    parser.add_argument("--batches", type=batches, default=[(8, 100), (64, 100), (192, 16)], help="e.g. 64x100,8x100")
    parser.add_argument("--rounds", type=int, default=5, help="timings per figure, the median printed (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def median_seconds(call: Callable[[], object], rounds: int) -> float:
    """The median over ``rounds`` of the mean time of ``call``, each round at least 0.25 s long."""
    call()
    timings = []
    for _ in range(rounds):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.25:
            call()
            count += 1
        timings.append((time.perf_counter() - started) / count)
    return statistics.median(timings)


def batch_timings(model: LearnedSessionModel, state: SessionState, tracks: np.ndarray, rounds: int) -> dict[str, float]:
    """Seconds per call of each path scoring ``tracks`` ``(B, K)`` for the sessions of ``state``."""
    network = model.response_model
    mlp = network.mlp_size
    context = torch.as_tensor(state["context"])
    features = torch.as_tensor(model.track_features[tracks])
    history = None
    if model.history is not None:
        history = torch.as_tensor(
            model.history.familiarity(state["users"][:, None], tracks, state["recent_codes"][:, None])
        )
    device_model = model.torch_session_model("cpu")
    device_state, device_tracks = device_model.from_numpy(state), torch.as_tensor(tracks)
    with torch.inference_mode():
        return {
            "module": median_seconds(
                lambda: network.score(context[:, :mlp], context[:, mlp:], features, history, members=True), rounds
            ),
            "session_model": median_seconds(lambda: model.member_response_probs(state, tracks), rounds),
            "device_model": median_seconds(
                lambda: device_model.member_response_probs(device_state, device_tracks), rounds
            ),
        }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        world = default_world() if args.world == "default" else open_world(args.world)
    except (ArtifactError, OSError) as error:
        raise SystemExit(f"scoring.py: error: --world {args.world}: {error}") from error
    model = world.session_model
    network = model.response_model
    rng = np.random.default_rng(0)
    n_users, n_tracks = len(model.user_features), len(model.track_features)
    print(f"world={args.world}")
    print(f"ensemble_size={network.ensemble_size}")
    print(f"shared_trunk={network.shared_trunk}")

    def contexts(sessions: int) -> Contexts:
        return Contexts(
            rng.integers(0, 3, sessions).astype(np.int8),
            rng.integers(0, 24, sessions).astype(np.int8),
            np.zeros(sessions, np.float32),
        )

    for sessions, candidates in args.batches:
        state = model.initial_state(rng.integers(0, n_users, sessions), contexts(sessions))
        tracks = rng.integers(0, n_tracks, (sessions, candidates))
        for path, seconds in batch_timings(model, state, tracks, args.rounds).items():
            print(f"{path}_{sessions}x{candidates}_ms={seconds * 1e3:.3f}")

    plays = 20
    state = model.initial_state(rng.integers(0, n_users, 1), contexts(1))
    tracks = rng.integers(0, n_tracks, plays).tolist()
    uniforms = rng.random(plays).tolist()

    def session() -> None:
        kernel = model.single_session(state)
        for track, uniform in zip(tracks, uniforms, strict=True):
            kernel.play(track, uniform)

    print(f"single_play_us={median_seconds(session, args.rounds) / plays * 1e6:.1f}")


if __name__ == "__main__":
    main()
