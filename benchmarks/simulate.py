"""Benchmark: how fast the ground-truth world writes listening logs.

Builds the default world (``GroundTruthWorld(seed=0)``), then simulates enough sessions for
``--plays`` plays (default 1,000,000; a small pilot run, not timed, estimates plays per session)
all the way to a validated :class:`musicenv.data.ListeningLog`, and prints one ``name=value``
per line:

``world_build_seconds``  building the world
``plays``, ``sessions``  what was simulated
``seconds``              simulating them into a ListeningLog (``simulate_logs``)
``plays_per_s``          ``plays / seconds`` (goal: 1M plays in under 60 s on 2 cores, >= 17k/s)
``simulate_seconds``     of ``seconds``, the sessions as arrays (``GroundTruthWorld.simulate``)
``log_seconds``          of ``seconds``, the plays table and its validation

Run::

    python benchmarks/simulate.py
    python benchmarks/simulate.py --plays 200000
"""

from __future__ import annotations

import argparse
import time

from musicenv.data import ListeningLog
from musicenv.groundtruth import GroundTruthWorld
from musicenv.groundtruth.simulate import log_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=1_000_000, help="plays to simulate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    world = GroundTruthWorld(seed=args.seed)
    build_seconds = time.perf_counter() - start

    pilot = world.simulate(2000, seed=args.seed + 1)
    n_sessions = max(1, round(args.plays / pilot.lengths.mean()))

    start = time.perf_counter()
    sessions = world.simulate(n_sessions, seed=args.seed)
    simulated = time.perf_counter()
    plays = log_frames(sessions, world.config, world.user_ids, world.track_ids, world.catalogue.premium)

    log = ListeningLog.from_frames(plays, world.tracks, world.blocks)
    end = time.perf_counter()

    seconds = end - start
    print(f"world_build_seconds={build_seconds:.3f}")
    print(f"plays={log.n_plays}")
    print(f"sessions={n_sessions}")
    print(f"seconds={seconds:.3f}")
    print(f"plays_per_s={log.n_plays / seconds:.0f}")
    print(f"simulate_seconds={simulated - start:.3f}")
    print(f"log_seconds={end - simulated:.3f}")


if __name__ == "__main__":
    main()
