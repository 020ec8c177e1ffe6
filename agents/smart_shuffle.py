"""``shuffle`` and ``smart_shuffle``: a listener's playlist shuffled, plain or with recommendations injected.

Made for the Smart Shuffle listening mode (``session="smart_shuffle"``, :mod:`musicenv.sessions`),
whose pool is the listener's playlist (their most-played tracks) followed by recommendations.
Both agents find the playlist's slots as the mode defines them
(:func:`musicenv.sessions.playlist_slots`, from the world's play counts,
:func:`agents.world_logs.play_counts`):

* ``shuffle`` plays a uniformly random unplayed playlist track: plain shuffle of the playlist. Only
  when the playlist is played out does it play the best recommendation.
* ``smart_shuffle`` does the same, except that every ``INJECTION_PERIOD``-th play (positions 3, 6,
  9, ...: one in three) is the best unplayed recommendation (the lowest recommendation slot:
  the retrieval's ranking), as Spotify's Smart Shuffle injects recommendations into a shuffle.

Each draws one uniform per session per call, in row order, from its own seeded stream. In the
default mode the "playlist" is the leading run of the pool's tracks the listener played.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Observation, masked_argmax
from agents.baselines import RowLookup, SeededAgent
from agents.world_logs import play_counts
from musicenv.sessions import INJECTION_PERIOD, playlist_slots
from musicenv.world import World


class PlaylistShuffle(SeededAgent):
    """Shuffle of the listener's playlist slots, with a recommendation every ``injection_period``-th play.

    Args:
        world: the world whose observations the agent reads.
        seed: seeds the shuffle.
    """

    injection_period: int | None = None

    def __init__(self, world: World, seed: int = 0) -> None:
        super().__init__(world, seed)
        self.heard = play_counts(world)
        self.users = RowLookup(world.user_features)
        self.tracks = RowLookup(world.track_features)

    def playlist_mask(self, obs: Observation) -> np.ndarray:
        """``(N, M)`` bool: the slots of the listener's playlist (module docstring)."""
        users, candidates = self.users(obs["user"]), self.tracks(obs["candidates"])
        played = np.zeros(candidates.shape, dtype=bool)
        for row, user in enumerate(users):
            if user >= 0:
                heard = self.heard.indices[self.heard.indptr[user] : self.heard.indptr[user + 1]]
                played[row] = np.isin(candidates[row], heard)
        slots = playlist_slots(played, candidates.shape[1])
        return np.arange(candidates.shape[1])[None, :] < slots[:, None]

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        mask = obs["action_mask"].astype(bool)
        if not mask.any(axis=1).all():
            raise ValueError("an observation's action_mask allows no slot (is the session already over?)")
        draws = self.rng.random(len(mask))
        in_playlist = self.playlist_mask(obs)
        playlist, recommendations = in_playlist & mask, ~in_playlist & mask
        position = obs["history_mask"].sum(axis=1).astype(np.int64) + 1
        inject = np.zeros(len(mask), dtype=bool)
        if self.injection_period is not None:
            inject = (position % self.injection_period == 0) & recommendations.any(axis=1)
        shuffle = playlist.any(axis=1) & ~inject
        # Slot of the pick-th allowed playlist slot: a uniform draw among them.
        counts = playlist.sum(axis=1)
        picks = np.floor(draws * np.maximum(counts, 1)).astype(np.int64)
        shuffled = (np.cumsum(playlist, axis=1) <= picks[:, None]).sum(axis=1)
        best = masked_argmax(
            np.zeros(mask.shape), np.where(recommendations.any(axis=1)[:, None], recommendations, mask)
        )
        return np.where(shuffle, shuffled, best).astype(np.int64)


class ShuffleAgent(PlaylistShuffle):
    """Plain shuffle of the listener's playlist (module docstring)."""

    name = "shuffle"


class SmartShuffleAgent(PlaylistShuffle):
    """Shuffle of the listener's playlist with a recommendation every third play (module docstring)."""

    name = "smart_shuffle"
    injection_period = INJECTION_PERIOD
