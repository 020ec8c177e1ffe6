"""A listener's familiarity with a candidate *within the session*: how recently its artist played.

The observations' ``"familiarity"`` rows (:data:`musicenv.world.FAMILIARITY_FEATURES`) end with
:data:`SESSION_FAMILIARITY_FEATURES`, the columns that change as the session goes on:

``artist_just_played``
    1.0 when the previous play was by the candidate's artist.
``artist_played_two_ago``
    1.0 when the play before that was.
``artist_recent_plays``
    ``log(1 + n)`` for the ``n`` plays of the candidate's artist among the session's last
    :data:`RECENT_ARTISTS` plays.

Why: listeners tire of an artist played just before. In the default ground-truth world's logs a
play whose artist also made the previous play is skipped 70% of the time against 57% otherwise,
and the logged columns (the listener's past with the track and artist in *other* sessions) cannot
show it; without these columns the learned world over-rated a greedy agent's picks most where it
played one artist twice in a row (``benchmarks/RESULTS.md``, "Artist repetition within a
session").

Everything here reads artist codes only (the world's ``track_artists``, one per track index,
``-1`` never matches): the session's recent artists newest first (``-1`` where the session has
fewer plays), as the learned world's session state keeps them (``"recent_artists"``), or the played
tracks' artists in play order, as an observation's history gives them. Numpy and torch twins give
the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SESSION_FAMILIARITY_FEATURES: tuple[str, ...] = ("artist_just_played", "artist_played_two_ago", "artist_recent_plays")
"""The in-session columns of a familiarity row, in order (the module docstring)."""

RECENT_ARTISTS = 8
"""Plays back that ``artist_recent_plays`` counts (and a session state remembers)."""


def session_familiarity(artists: np.ndarray, recent_artists: np.ndarray) -> np.ndarray:
    """``(..., 3)`` float32 :data:`SESSION_FAMILIARITY_FEATURES` of candidate ``artists`` ``(...)``.

    ``recent_artists`` ``(..., R)``: the session's last ``R`` (at least 2) plays' artists, newest
    first, ``-1`` for none; its leading axes broadcast against ``artists``' (a session's ``(B, 1,
    R)`` against its candidates' ``(B, K)``).
    """
    recent = np.asarray(recent_artists)[..., :RECENT_ARTISTS]
    match = (np.asarray(artists)[..., None] == recent) & (recent >= 0)
    out = np.empty((*match.shape[:-1], len(SESSION_FAMILIARITY_FEATURES)), dtype=np.float32)
    out[..., 0] = match[..., 0]
    out[..., 1] = match[..., 1]
    out[..., 2] = np.log1p(match.sum(axis=-1))
    return out


def recent_artist_plays(artists: np.ndarray, recent_artists: np.ndarray) -> np.ndarray:
    """``(...)`` int64 plays of each candidate's artist among ``recent_artists`` (``artist_recent_plays``'s count).

    Shapes as for :func:`session_familiarity`.
    """
    recent = np.asarray(recent_artists)[..., :RECENT_ARTISTS]
    return ((np.asarray(artists)[..., None] == recent) & (recent >= 0)).sum(axis=-1)


def advance_session_familiarity(
    columns: np.ndarray,
    recent_plays: np.ndarray,
    artists: np.ndarray,
    played_artists: np.ndarray,
    left_artists: np.ndarray,
) -> None:
    """Update the candidates' in-session ``columns`` ``(..., M, 3)`` in place after one more play of each session.

    :func:`session_familiarity`'s numbers kept up to date instead of recomputed, which an
    environment's step can afford: the old "just played" becomes "two ago", and the count of each
    candidate's artist among the recent plays (``recent_plays`` ``(..., M)``, updated in place,
    :func:`recent_artist_plays` at the start) gains the play and loses the one that left the window.
    ``artists`` ``(..., M)``: the candidates' artists (``-1`` for padding); ``played_artists``
    ``(...)``: the artist just played; ``left_artists`` ``(...)``: the artist of the play
    :data:`RECENT_ARTISTS` plays before it (``-1`` while the session is shorter).
    """
    played = np.asarray(played_artists)[..., None]
    left = np.asarray(left_artists)[..., None]
    just_played = artists == played
    columns[..., 1] = columns[..., 0]
    columns[..., 0] = just_played
    recent_plays += just_played
    recent_plays -= (artists == left) & (left >= 0)
    columns[..., 2] = np.log1p(recent_plays)


def recent_artists(history_artists: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """``(N, RECENT_ARTISTS)`` int64: the last plays' artists, newest first.

    ``history_artists`` ``(N, L)``: the played tracks' artists in play order.

    ``lengths`` ``(N,)``: plays so far (default: the entries that are not ``-1``, which must
    come first). Positions before the first play are ``-1``.
    """
    history_artists = np.asarray(history_artists, dtype=np.int64)
    n, length = history_artists.shape
    if lengths is None:
        lengths = (history_artists >= 0).sum(axis=1)
    back = np.asarray(lengths, dtype=np.int64)[:, None] - 1 - np.arange(RECENT_ARTISTS)
    found = back >= 0
    picked = history_artists[np.arange(n)[:, None], np.clip(back, 0, max(length - 1, 0))] if length else back
    return np.where(found, picked, -1)


def played_session_familiarity(history_artists: np.ndarray) -> np.ndarray:
    """``(N, L, 3)`` float32: each played track's :func:`session_familiarity` against the plays before it.

    ``history_artists`` ``(N, L)`` in play order, ``-1`` after the last play (those rows are zeros).
    """
    history_artists = np.asarray(history_artists, dtype=np.int64)
    length = history_artists.shape[1]
    # Row t, column j: the artist j + 1 plays before play t (-1 before the first).
    lag = np.arange(length)[:, None] - 1 - np.arange(RECENT_ARTISTS)[None, :]
    before = np.where(lag >= 0, history_artists[:, np.clip(lag, 0, None)], -1)
    out = session_familiarity(history_artists, before)
    out[history_artists < 0] = 0.0
    return out


def advance_recent_artists(recent: np.ndarray, played_artists: np.ndarray) -> np.ndarray:
    """The recent artists ``(B, R)`` after each session played a track by ``played_artists`` ``(B,)``."""
    return np.concatenate([np.asarray(played_artists, dtype=np.int64)[:, None], recent[:, :-1]], axis=1)


def torch_session_familiarity(artists: torch.Tensor, recent_artists: torch.Tensor) -> torch.Tensor:
    """:func:`session_familiarity` on tensors (same shapes, float32 on ``artists``' device)."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    recent = recent_artists[..., :RECENT_ARTISTS]
    match = (artists[..., None] == recent) & (recent >= 0)
    return torch.stack(
        [match[..., 0].float(), match[..., 1].float(), torch.log1p(match.sum(dim=-1).double()).float()], dim=-1
    )


def torch_advance_recent_artists(recent: torch.Tensor, played_artists: torch.Tensor) -> torch.Tensor:
    """:func:`advance_recent_artists` on tensors."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    return torch.cat([played_artists.long()[:, None], recent[:, :-1]], dim=1)


def torch_recent_artists(history_artists: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """:func:`recent_artists` on tensors, of ``history_artists`` ``(N, L)`` and ``lengths`` ``(N,)``."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    length = history_artists.shape[1]
    back = lengths.long()[:, None] - 1 - torch.arange(RECENT_ARTISTS, device=history_artists.device)
    picked = history_artists.gather(1, back.clamp(0, max(length - 1, 0)))
    return torch.where(back >= 0, picked, torch.full_like(picked, -1))
