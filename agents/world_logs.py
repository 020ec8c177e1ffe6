"""The listening logs an agent learns from, for any world: the logs it was learned from, or a simulation.

The classic recommenders (user-user CF, the likeability classifier, content clusters, Discover
Weekly) learn from listening history, not from the simulator. Where that history comes from,
first found first:

1. a learned world built from a ground truth's logs (``world.provenance``): those very logs,
   simulated again from the provenance's seeds (:func:`world_model.world.groundtruth_for`), which
   is deterministic, so they are the plays the world's ALS and user model were fitted on;
2. otherwise the world itself under a uniformly random logging policy
   (:func:`world_model.sequence.simulate_world_log`, as ``sequence_rnn`` does): a world that
   keeps no logs is still a simulator to learn from.

Logs are made once per world and settings and shared (a log is never modified).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicenv.data import ListeningLog
from musicenv.world import World

SIMULATED_SESSIONS = 1000
"""Sessions simulated for a world without logs of its own."""
SIMULATED_LENGTH = 20
"""Most plays per simulated session."""


@dataclass(frozen=True)
class WorldLog:
    """A world's listening log with the world's indices of its plays.

    Attributes:
        log: the :class:`~musicenv.data.ListeningLog`.
        users: ``(n_plays,)`` int64 index of each play's listener in ``world.user_ids``.
        tracks: ``(n_plays,)`` int64 index of each play's track in ``world.tracks``.
        responses: ``(n_plays,)`` int64 response codes (0 skip, 1 listen, 2 complete).
    """

    log: ListeningLog
    users: np.ndarray
    tracks: np.ndarray
    responses: np.ndarray

    def play_counts(self, n_users: int, n_tracks: int) -> sp.csr_matrix:
        """``(n_users, n_tracks)`` CSR of how often each listener played each track."""
        ones = np.ones(len(self.users), dtype=np.float32)
        counts = sp.csr_matrix((ones, (self.users, self.tracks)), shape=(n_users, n_tracks))
        counts.sum_duplicates()
        return counts


_LOGS: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], WorldLog]] = weakref.WeakKeyDictionary()


def world_log(world: World, sessions: int = SIMULATED_SESSIONS, seed: int = 0) -> WorldLog:
    """The log ``world`` is learned from, or ``sessions`` simulated sessions of it (module docstring).

    Raises:
        ValueError: the world's listener ids are not sorted (log listeners are found by search).
    """
    cached = _LOGS.setdefault(world, {})
    key = (sessions, seed)
    if key not in cached:
        provenance = getattr(world, "provenance", None)
        if provenance is not None:
            from world_model.world import groundtruth_for

            log = groundtruth_for(world).simulate_logs(provenance.log_sessions, seed=provenance.log_seed)
        else:
            from world_model.sequence import simulate_world_log

            log = simulate_world_log(world, sessions, length=SIMULATED_LENGTH, seed=seed)
        ids = np.asarray(world.user_ids, dtype=str)
        if not np.array_equal(np.sort(ids), ids):
            raise ValueError("the world's user_ids must be in sorted order")
        users = np.searchsorted(ids, log.listener_ids().to_numpy(dtype=str)).astype(np.int64)
        track_ids = world.tracks["track_id"].to_numpy(dtype=str)
        order = np.argsort(track_ids, kind="stable")
        tracks = order[np.searchsorted(track_ids[order], log.plays["track_id"].to_numpy(dtype=str))]
        cached[key] = WorldLog(log, users, tracks.astype(np.int64), np.asarray(log.response_codes(), dtype=np.int64))
    return cached[key]


def play_counts(world: World, sessions: int = SIMULATED_SESSIONS, seed: int = 0) -> sp.csr_matrix:
    """``(n_users, n_tracks)`` play counts: the retrieval stage's ``heard`` when the world has one, else the log's."""
    heard = getattr(getattr(world, "retrieval", None), "heard", None)
    if heard is not None:
        return sp.csr_matrix(heard, dtype=np.float32)
    return world_log(world, sessions, seed).play_counts(len(world.user_ids), len(world.tracks))
