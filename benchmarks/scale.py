"""A catalogue-scale world, stage by stage: seconds and peak memory of each.

The learned world's pipeline on a ground-truth world of N users and T tracks:

==================  ==========================================================================
stage               what runs
==================  ==========================================================================
``groundtruth``     ``GroundTruthWorld(config with n_users, n_tracks)``: catalogue, tastes, libraries
``simulate``        ``simulate_logs``: the logging policy plays ``--plays`` plays (sessions of the
                    calibrated length mix; the exact count is printed as ``plays``)
``retrieval``       ``Retrieval.fit``: implicit ALS with 64 factors and the Annoy index
                    (``als_seconds`` and ``annoy_seconds`` split its time)
``pools``           candidate pools of M = 100 tracks for ``--pool-users`` users
``features``        the learned world's track and user features (``learn_features``) and the
                    tracks' genres (``track_genres``)
``user_model``      the user-response model trained for one epoch (``train_user_model``)
==================  ==========================================================================

Each stage prints ``<stage>_seconds``, ``<stage>_py_peak_mb`` (the peak of memory allocated through
Python during the stage, numpy arrays included: ``tracemalloc``) and ``<stage>_rss_mb`` (the
process's resident set at the stage's end); ``rss_high_water_mb`` is the process's peak resident
set over the run (``getrusage``), which also counts what C++ and torch allocate. Nothing holds a
dense users x tracks matrix: interactions are sparse (CSR), pools come from the ANN index per
user, and the logging policy draws a few hundred candidates per session.

Sizes (``--size``; ``--users``, ``--tracks``, ``--plays``, ``--pool-users`` override one figure):

=========  =========  =========  ===========  ==========  ======================================
size       users      tracks     plays        pool users  runs on
=========  =========  =========  ===========  ==========  ======================================
default    5,000      10,000     200,000      2,000       CI: a few minutes on 2 cores, < 2 GB
medium     100,000    100,000    1,000,000    10,000      a laptop: minutes, a few GB
large      1,000,000  1,000,000  10,000,000   100,000     a 16-core, 128 GiB machine
=========  =========  =========  ===========  ==========  ======================================

Usage::

    python benchmarks/scale.py                 # the default size
    python benchmarks/scale.py --size large --threads 16
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

SIZES: dict[str, dict[str, int]] = {
    "default": {"users": 5_000, "tracks": 10_000, "plays": 200_000, "pool_users": 2_000},
    "medium": {"users": 100_000, "tracks": 100_000, "plays": 1_000_000, "pool_users": 10_000},
    "large": {"users": 1_000_000, "tracks": 1_000_000, "plays": 10_000_000, "pool_users": 100_000},
}
MEAN_SESSION_LENGTH = 11.5
"""Plays per simulated session, about (measured: 11.4 at the default size, 11.7 at medium); sets the sessions."""

T = TypeVar("T")


def rss_mb() -> float:
    """The process's resident set now, in MB (``/proc/self/statm``; the high-water mark elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return high_water_mb()


def high_water_mb() -> float:
    """The process's peak resident set so far, in MB (``ru_maxrss`` is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage and print its seconds and memory as ``name=value`` lines."""
    tracemalloc.reset_peak()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    print(f"{name}_seconds={seconds:.2f}")
    print(f"{name}_py_peak_mb={peak / 2**20:.0f}")
    print(f"{name}_rss_mb={rss_mb():.0f}", flush=True)


def timed(name: str, function: Callable[[], T]) -> T:
    with stage(name):
        return function()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default", help="a preset (table in --help's source)")
    parser.add_argument("--users", type=int, help="override the preset's users")
    parser.add_argument("--tracks", type=int, help="override the preset's tracks")
    parser.add_argument("--plays", type=int, help="override the preset's simulated plays (about)")
    parser.add_argument("--pool-users", type=int, help="override the preset's users to build pools for")
    parser.add_argument("--factors", type=int, default=64, help="ALS factors")
    parser.add_argument("--pool-size", type=int, default=100, help="candidates per pool (M)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for ALS and torch (0: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the world, the logs and the models")
    args = parser.parse_args(argv)
    size = {key: getattr(args, key) or value for key, value in SIZES[args.size].items()}
    if min(size.values()) < 1:
        parser.error(f"every size figure must be positive, got {size}")

    import torch

    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
    from world_model.genres import track_genres
    from world_model.retrieval import Retrieval
    from world_model.sessions import SessionTable
    from world_model.user_model import train_user_model
    from world_model.world import WorldConfig, learn_features

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"size={args.size}")
    for key, value in size.items():
        print(f"{key}={value}")
    print(f"factors={args.factors}")
    print(f"threads={args.threads or 'all'}", flush=True)
    tracemalloc.start()
    total = time.perf_counter()

    groundtruth_config = GroundTruthConfig(
        n_users=size["users"], n_tracks=size["tracks"], n_artists=max(size["tracks"] // 10, 1)
    )
    truth = timed("groundtruth", lambda: GroundTruthWorld(seed=args.seed, config=groundtruth_config))
    sessions_to_simulate = max(int(size["plays"] / MEAN_SESSION_LENGTH), 1)
    log = timed("simulate", lambda: truth.simulate_logs(sessions_to_simulate, seed=args.seed))
    print(f"sessions={sessions_to_simulate}")
    print(f"plays={len(log.plays)}", flush=True)

    config = WorldConfig()
    retrieval_config = dataclasses.replace(
        config.retrieval, factors=args.factors, num_threads=args.threads, seed=args.seed
    )
    retrieval: Any = timed("retrieval", lambda: Retrieval.fit(log, retrieval_config))
    print(f"als_seconds={retrieval.timings.get('als_seconds', float('nan')):.2f}")
    print(f"annoy_seconds={retrieval.timings.get('index_build_seconds', float('nan')):.2f}", flush=True)

    rng = np.random.default_rng(args.seed)
    users = rng.choice(retrieval.n_users, size=min(size["pool_users"], retrieval.n_users), replace=False)
    start = time.perf_counter()
    pools = timed("pools", lambda: retrieval.candidate_pools(users, args.pool_size))
    print(f"pools_per_s={len(users) / (time.perf_counter() - start):.0f}")
    print(f"pool_fill={float((pools >= 0).mean()):.3f}", flush=True)

    user_model_config = dataclasses.replace(config.user_model, max_epochs=1, seed=args.seed)
    with stage("features"):
        sessions = SessionTable.from_log(log, user_model_config.max_session_length)
        features = learn_features(
            log, sessions, retrieval, retrieval_config, config.leave_session_out, config.track_folds, args.seed
        )
        genres, _ = track_genres(log.tracks, retrieval.track_vectors, args.seed)
    timed(
        "user_model",
        lambda: train_user_model(
            sessions,
            features.track_features,
            features.user_features,
            user_model_config,
            progress=False,
            session_user_features=features.session_user_features,
            session_track_features=features.session_track_features,
            track_artists=log.track_artist_codes(),
            track_genres=genres,
        ),
    )
    print(f"total_seconds={time.perf_counter() - total:.2f}")
    print(f"rss_high_water_mb={high_water_mb():.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
