"""``discover_weekly``: plays the listener's Discover Weekly playlist, in its order.

The weekly playlist (:mod:`world_model.discover_weekly`: 30 tracks from ALS the listener never
played, at most 2 per artist) is built from the world's ALS blocks (``world.user_features`` and
``world.track_features``), its play counts (:func:`agents.world_logs.play_counts`) and, in a learned
world, the retrieval stage's block lists. The agent plays the playlist's tracks that are in the
session's pool, first to last; the ALS pool of a learned world holds the listener's best-ranked
tracks, heard or not, so it holds most of the playlist. When none is left it plays the pool's best
remaining slot (the retrieval's ranking). Evaluate it with ``playlist_length=30``, the playlist
played as a whole::

    python eval.py --agents discover_weekly,als,greedy_learned --playlist-length 30
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from agents.base import Agent, Observation, masked_argmax
from agents.baselines import RowLookup, feature_block
from agents.world_logs import play_counts
from musicenv.world import World
from world_model.discover_weekly import PER_ARTIST, WEEKLY_LENGTH, weekly_playlists


def artist_codes(tracks: pd.DataFrame) -> np.ndarray:
    """``(n_tracks,)`` int64 artist codes; a track of unknown artist gets a code of its own."""
    if "artist_id" not in tracks.columns:
        return np.arange(len(tracks), dtype=np.int64)
    codes, uniques = pd.factorize(tracks["artist_id"])
    return np.where(codes >= 0, codes, len(uniques) + np.arange(len(tracks))).astype(np.int64)


class DiscoverWeeklyAgent(Agent):
    """The listener's weekly playlist, played in order from the pool (module docstring).

    Args:
        world: the world whose observations the agent reads (its ``"als"`` blocks).
        length: tracks in the weekly playlist.
        per_artist: most tracks per artist in it.
    """

    name = "discover_weekly"

    def __init__(self, world: World, length: int = WEEKLY_LENGTH, per_artist: int = PER_ARTIST) -> None:
        super().__init__(world)
        self.length, self.per_artist = int(length), int(per_artist)
        self.user_vectors = np.asarray(world.user_features)[:, feature_block(world, "als", of="user")]
        self.track_vectors = np.asarray(world.track_features)[:, feature_block(world, "als")]
        excluded = play_counts(world)
        blocked = getattr(getattr(world, "retrieval", None), "blocked", None)
        if blocked is not None:
            excluded = excluded + sp.csr_matrix(blocked, dtype=excluded.dtype)
        self.excluded = sp.csr_matrix(excluded)
        self.artists = artist_codes(world.tracks)
        self.users = RowLookup(world.user_features)
        self.tracks = RowLookup(world.track_features)
        self._playlists: dict[int, np.ndarray] = {}

    def playlist(self, user: int) -> np.ndarray:
        """The listener's weekly playlist (``(<= length,)`` track indices; built once per listener)."""
        if user not in self._playlists:
            playlist = weekly_playlists(
                self.user_vectors, self.track_vectors, self.excluded, self.artists, [user], self.length, self.per_artist
            )[0]
            self._playlists[user] = playlist[playlist >= 0]
        return self._playlists[user]

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        users = self.users(obs["user"])
        candidates = self.tracks(obs["candidates"])
        scores = np.full(candidates.shape, -np.inf)
        for row, user in enumerate(users):
            if user < 0:
                continue
            playlist = self.playlist(int(user))
            rank = {track: position for position, track in enumerate(playlist.tolist())}
            scores[row] = [-rank.get(track, np.inf) for track in candidates[row].tolist()]
        # A row whose playlist is played out ties at -inf everywhere: the lowest valid slot.
        return masked_argmax(np.nan_to_num(scores, neginf=-1e18), obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {"length": self.length, "per_artist": self.per_artist}
