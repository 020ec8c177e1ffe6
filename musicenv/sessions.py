"""Listening modes: what a session's candidate pool holds (``ListeningSession-v0``'s ``session`` option).

``"default"``
    The world's own pool: the listener's M best tracks by the retrieval stage.

``"smart_shuffle"``
    Spotify's Smart Shuffle: the listener shuffles *their playlist* and the service injects
    recommended tracks into it. The playlist is the listener's most-played tracks in the logs the
    world was learned from (``world.retrieval.heard``; ties by track index), at most
    ``PLAYLIST_SHARE`` of the pool; the rest of the pool holds recommendations, the world's own
    pool without the playlist's tracks, best first. Pool layout: slots ``[0, P)`` are the playlist
    (most played first), slots ``[P, M)`` the recommendations; an agent that knows the listener's
    plays finds P by :func:`playlist_slots`. Blocked tracks (and, with the explicit filter, explicit tracks) are
    never in either part. How often a recommendation is played is the agent's choice; the
    ``smart_shuffle`` agent injects one after every ``INJECTION_PERIOD - 1`` playlist tracks.

A mode is a world whose ``candidate_pools`` serve that pool (:func:`session_world`); everything
else (features, responses, the ground truth) is the world's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from musicenv.world import World

SESSIONS = ("default", "smart_shuffle")
PLAYLIST_SHARE = 2 / 3
"""At most this share of a Smart Shuffle pool is the listener's playlist; the rest is recommendations."""
INJECTION_PERIOD = 3
"""Smart Shuffle plays a recommendation every ``INJECTION_PERIOD``-th track (one in three)."""


def listener_playlist(heard: sp.csr_matrix, user: int, excluded: np.ndarray) -> np.ndarray:
    """A listener's tracks by decreasing play count (ties by track index), without ``excluded``."""
    start, stop = heard.indptr[user], heard.indptr[user + 1]
    tracks, counts = heard.indices[start:stop].astype(np.int64), heard.data[start:stop]
    order = np.lexsort((tracks, -counts))
    tracks = tracks[order]
    return tracks[~np.isin(tracks, excluded)]


def playlist_slots(played: np.ndarray, size: int) -> np.ndarray:
    """How many leading slots of Smart Shuffle pools are the playlist: ``(N,)`` int64.

    Args:
        played: ``(N, M)`` bool, whether the listener played each slot's track in the logs.
        size: the pool size M.

    The playlist is the leading run of played tracks, capped at ``PLAYLIST_SHARE * M``: a listener
    with fewer allowed played tracks than the cap has all of them in the playlist, so no
    recommendation is a played track and the run stops exactly where the playlist does.
    """
    run = np.cumprod(np.asarray(played, dtype=bool), axis=1).sum(axis=1)
    return np.minimum(run, int(round(PLAYLIST_SHARE * size))).astype(np.int64)


class SmartShuffleWorld:
    """``world`` with Smart Shuffle pools (module docstring); every other attribute is the world's.

    Args:
        world: a world with a retrieval stage (``world.retrieval.heard``, ``.blocked``, ``.explicit``).
    """

    def __init__(self, world: World) -> None:
        retrieval = getattr(world, "retrieval", None)
        if getattr(retrieval, "heard", None) is None:
            raise ValueError(
                f"session='smart_shuffle' needs the listeners' logged plays (world.retrieval.heard); "
                f"the {type(world).__name__} world has none"
            )
        self.base = world
        self._retrieval = retrieval

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not yet set (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)

    def playlist_size(self, size: int) -> int:
        """Most playlist tracks in a pool of ``size``."""
        return int(round(PLAYLIST_SHARE * size))

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(B, size)`` int64 pools: the playlist, then recommendations (``-1`` padded)."""
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        retrieval = self._retrieval
        ranking = self.base.candidate_pools(users, size, explicit_filter)
        out = np.full((len(users), size), -1, dtype=np.int64)
        for row, user in enumerate(users):
            excluded = retrieval.blocked.indices[retrieval.blocked.indptr[user] : retrieval.blocked.indptr[user + 1]]
            if explicit_filter:
                excluded = np.concatenate([excluded, np.flatnonzero(retrieval.explicit)])
            playlist = listener_playlist(retrieval.heard, int(user), excluded)[: self.playlist_size(size)]
            recommended = ranking[row][(ranking[row] >= 0) & ~np.isin(ranking[row], playlist)]
            pool = np.concatenate([playlist, recommended])[:size]
            out[row, : len(pool)] = pool
        return out


def session_world(world: World, session: str) -> World:
    """The world whose pools are those of listening mode ``session`` (module docstring).

    Raises:
        ValueError: an unknown mode, or a world the mode cannot serve.
    """
    if session not in SESSIONS:
        raise ValueError(f"session must be one of {SESSIONS}, got {session!r}")
    return world if session == "default" else SmartShuffleWorld(world)  # type: ignore[return-value]
