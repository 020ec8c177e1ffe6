"""Discover Weekly: each listener's weekly playlist of tracks they have never played, from ALS.

Spotify's Discover Weekly is a 30-track playlist refreshed every Monday with music the listener
has not heard, picked by collaborative filtering. Here: the catalogue ranked by the ALS score
``user . track`` (Hu, Koren & Volinsky 2008; the retrieval stage's vectors), without the tracks
the listener played in the logs, the tracks they blocked, and every track past the first
``per_artist`` of an artist (so one artist cannot fill the week), cut at ``length`` tracks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from world_model.ann_index import top_k

WEEKLY_LENGTH = 30
"""Tracks in a weekly playlist."""
PER_ARTIST = 2
"""Most tracks of one artist in a weekly playlist."""


def weekly_playlist(
    scores: np.ndarray,
    heard: np.ndarray,
    artists: np.ndarray,
    length: int = WEEKLY_LENGTH,
    per_artist: int = PER_ARTIST,
) -> np.ndarray:
    """One listener's weekly playlist: ``(<= length,)`` int64 track indices, best first.

    Args:
        scores: ``(n_tracks,)`` ALS scores of every track for the listener.
        heard: track indices the listener must not get (played or blocked).
        artists: ``(n_tracks,)`` int64 artist codes (a track of unknown artist: a code of its own).
        length: tracks in the playlist (fewer only when the catalogue runs out).
        per_artist: most tracks per artist.
    """
    allowed = np.ones(len(scores), dtype=bool)
    allowed[np.asarray(heard, dtype=np.int64)] = False
    ranked = top_k(np.where(allowed, scores, -np.inf), len(scores))
    ranked = ranked[allowed[ranked]]
    # Rank of each track among its artist's tracks in ranking order: keep the first per_artist.
    order = np.argsort(artists[ranked], kind="stable")
    sorted_artists = artists[ranked][order]
    first = np.searchsorted(sorted_artists, sorted_artists)
    within = np.empty(len(ranked), dtype=np.int64)
    within[order] = np.arange(len(ranked)) - first
    return ranked[within < per_artist][:length]


def weekly_playlists(
    user_vectors: np.ndarray,
    track_vectors: np.ndarray,
    excluded: sp.csr_matrix,
    artists: np.ndarray,
    users: np.ndarray,
    length: int = WEEKLY_LENGTH,
    per_artist: int = PER_ARTIST,
) -> np.ndarray:
    """``(len(users), length)`` int64 weekly playlists of ``users``, ``-1`` padded.

    Args:
        user_vectors, track_vectors: ALS factors.
        excluded: ``(n_users, n_tracks)`` CSR of the tracks each listener must not get (played, blocked).
        artists: ``(n_tracks,)`` int64 artist codes.
        users: listener indices.
        length, per_artist: see :func:`weekly_playlist`.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    out = np.full((len(users), length), -1, dtype=np.int64)
    for row, user in enumerate(users):
        heard = excluded.indices[excluded.indptr[user] : excluded.indptr[user + 1]]
        playlist = weekly_playlist(track_vectors @ user_vectors[user], heard, artists, length, per_artist)
        out[row, : len(playlist)] = playlist
    return out
