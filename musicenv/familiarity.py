"""A listener's familiarity with a candidate *within the session*: how recently its artist and its genre played.

The observations' ``"familiarity"`` rows (:data:`musicenv.world.FAMILIARITY_FEATURES`) end with
:data:`SESSION_FAMILIARITY_FEATURES`, the columns that change as the session goes on:

``artist_just_played``
    1.0 when the previous play was by the candidate's artist.
``artist_played_two_ago``
    1.0 when the play before that was.
``artist_recent_plays``
    ``log(1 + n)`` for the ``n`` plays of the candidate's artist among the session's last
    :data:`RECENT_PLAYS` plays.
``genre_just_played``
    1.0 when the previous play was of the candidate's genre.
``genre_exposure``
    the plays of the candidate's genre among the last :data:`RECENT_PLAYS`, each weighted by
    :data:`GENRE_DECAY` to the power of how many plays ago it was (1 for the previous play, 0.8
    for the one before, ...): how much of the genre the listener has just heard.

Why: listeners tire of an artist played just before, and of a genre heard again and again. In
the default ground-truth world's logs a play whose artist also made the previous play is skipped
70% of the time against 57% otherwise, and the logged columns (the listener's past with the track
and artist in *other* sessions) cannot show it; without the artist columns the learned world
over-rated a greedy agent's picks most where it played one artist twice in a row, and with them
it still ranked agents as if a listener never tired of a genre (``benchmarks/RESULTS.md``,
"Artist repetition within a session" and "Which effects of the truth the learned world misses").

Play codes
    Everything here reads one integer per track, its *play code*: the artist code shifted left
    by :data:`GENRE_BITS` bits, or'ed with the genre code (:func:`play_codes`); ``-1`` (padding,
    an empty slot) never matches. A session's recent plays are kept as their codes newest first
    (``-1`` where the session has fewer plays), as the learned world's session state keeps them
    (``"recent_codes"``), or given in play order, as an observation's history gives them. A
    world's genres are the tracks table's ``genre`` column where every track has one, else
    clusters of the tracks' ALS vectors (:mod:`world_model.genres`).

Match masks
    What the columns are computed from is, per candidate, one 16-bit *match mask*: bit j set
    when the play j + 1 plays ago was by the candidate's artist, bit 8 + j when it was of its
    genre. The five columns are a function of the mask alone, tabulated once
    (:data:`SESSION_COLUMNS`), so every path (recomputed from the recent plays, updated play by
    play by shifting the mask, on Python numbers or on tensors) reads the same numbers bit for
    bit, and an environment's step costs a shift, a comparison and one table lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SESSION_FAMILIARITY_FEATURES: tuple[str, ...] = (
    "artist_just_played",
    "artist_played_two_ago",
    "artist_recent_plays",
    "genre_just_played",
    "genre_exposure",
)
"""The in-session columns of a familiarity row, in order (the module docstring)."""

RECENT_PLAYS = 8
"""Plays back that the in-session columns look (and a session state remembers)."""

GENRE_BITS = 16
"""Low bits of a play code that hold the genre: genre codes are below ``2**GENRE_BITS - 1`` (the
low bits of ``-1``, padding, are all ones, so padding never matches a genre)."""

GENRE_DECAY = 0.8
"""Weight of a genre play per play since (``genre_exposure``): a half-life of about three plays."""

GENRE_MASK = (1 << GENRE_BITS) - 1
"""A play code's genre bits: ``code & GENRE_MASK`` is its genre, ``code >> GENRE_BITS`` its artist."""

_RECENT_BITS = (1 << RECENT_PLAYS) - 1
_DECAY_WEIGHTS = GENRE_DECAY ** np.arange(RECENT_PLAYS)
_KEEP = ~(1 << RECENT_PLAYS | 1 << (2 * RECENT_PLAYS))  # a shifted mask's bits that stay in the window


def _bits(masks: np.ndarray) -> np.ndarray:
    """``(..., RECENT_PLAYS)`` 0/1 of ``RECENT_PLAYS``-bit ``masks``, bit j first."""
    return (np.asarray(masks)[..., None] >> np.arange(RECENT_PLAYS)) & 1


def _column_table() -> np.ndarray:
    """:data:`SESSION_COLUMNS`: the five columns of every match mask, in float64 rounded to float32 once."""
    masks = np.arange(1 << (2 * RECENT_PLAYS))
    artist, genre = _bits(masks & _RECENT_BITS), _bits(masks >> RECENT_PLAYS)
    columns = np.stack(
        [artist[:, 0], artist[:, 1], np.log1p(artist.sum(axis=1)), genre[:, 0], genre @ _DECAY_WEIGHTS], axis=1
    )
    return columns.astype(np.float32)


SESSION_COLUMNS = _column_table()
"""``(2**16, 5)`` float32: :data:`SESSION_FAMILIARITY_FEATURES` of every *match mask*, the 16-bit
integer whose bit j says that the play j + 1 plays ago was by the candidate's artist and whose
bit 8 + j says that it was of the candidate's genre. Every path reads the columns from here, so
they agree bit for bit."""


def play_codes(artists: np.ndarray, genres: np.ndarray) -> np.ndarray:
    """``(...)`` int64 play codes of tracks by ``artists`` (codes >= 0) in ``genres`` (codes in
    ``[0, 2**GENRE_BITS - 1)``)."""
    artists = np.asarray(artists, dtype=np.int64)
    genres = np.asarray(genres, dtype=np.int64)
    if artists.size and artists.min() < 0:
        raise ValueError(f"artist codes must be >= 0, got {artists.min()}")
    if genres.size and (genres.min() < 0 or genres.max() >= GENRE_MASK):
        raise ValueError(f"genre codes must lie in [0, {GENRE_MASK - 1}], got [{genres.min()}, {genres.max()}]")
    return (artists << GENRE_BITS) | genres


def _hits(codes: np.ndarray, played_codes: np.ndarray) -> np.ndarray:
    """``(...)`` int64: 1 where the play of ``played_codes`` was by the candidate's artist, plus
    ``2**RECENT_PLAYS`` where it was of its genre (``-1``, an empty slot or padding, matches nothing)."""
    # Two codes share their artist (genre) when their high (low) bits agree: their xor has none set.
    differ = np.bitwise_xor(codes, played_codes)
    played = played_codes >= 0
    artist = ((differ >> GENRE_BITS) == 0) & played
    genre = ((differ & GENRE_MASK) == 0) & played
    return artist.astype(np.int64) | (genre.astype(np.int64) << RECENT_PLAYS)


def match_masks(codes: np.ndarray, recent_codes: np.ndarray) -> np.ndarray:
    """``(...)`` int64 match masks (:data:`SESSION_COLUMNS`) of candidates' play ``codes`` ``(...)``.

    ``recent_codes`` ``(..., R)``: the session's last ``R`` plays' codes, newest first, ``-1`` for
    none; its leading axes broadcast against ``codes``' (a session's ``(B, 1, R)`` against its
    candidates' ``(B, K)``). What :func:`advance_session_familiarity` keeps up to date.
    """
    codes = np.asarray(codes, dtype=np.int64)[..., None]
    recent = np.asarray(recent_codes, dtype=np.int64)[..., :RECENT_PLAYS]
    return (_hits(codes, recent) << np.arange(recent.shape[-1])).sum(axis=-1)


def session_familiarity(codes: np.ndarray, recent_codes: np.ndarray) -> np.ndarray:
    """``(..., 5)`` float32 :data:`SESSION_FAMILIARITY_FEATURES` of candidates' play ``codes`` ``(...)``.

    Shapes as for :func:`match_masks`. Padding (code ``-1``) gets zeros.
    """
    return SESSION_COLUMNS[match_masks(codes, recent_codes)]


def advance_session_familiarity(
    columns: np.ndarray, masks: np.ndarray, codes: np.ndarray, played_codes: np.ndarray
) -> None:
    """Update the candidates' in-session ``columns`` ``(..., M, 5)`` in place after one more play of each session.

    :func:`session_familiarity`'s numbers kept up to date instead of recomputed, which an
    environment's step can afford: each candidate's match mask (``masks`` ``(..., M)``, updated
    in place, :func:`match_masks` at the start) moves one play back, forgets the play that left
    the window and records whether the new one was by its artist and of its genre; the columns
    are read from :data:`SESSION_COLUMNS`. ``codes`` ``(..., M)``: the candidates' play codes
    (``-1`` for padding); ``played_codes`` ``(...)``: the code just played.
    """
    # _hits without its guard against empty slots (a played track is never one): the fewest array
    # operations for an environment's step.
    differ = np.bitwise_xor(codes, np.asarray(played_codes, dtype=np.int64)[..., None])
    masks <<= 1
    masks &= _KEEP
    masks |= (differ >> GENRE_BITS) == 0
    masks |= ((differ & GENRE_MASK) == 0).astype(np.int64) << RECENT_PLAYS
    columns[...] = SESSION_COLUMNS[masks]


def recent_codes(history_codes: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """``(N, RECENT_PLAYS)`` int64: the last plays' codes, newest first.

    ``history_codes`` ``(N, L)``: the played tracks' play codes in play order.

    ``lengths`` ``(N,)``: plays so far (default: the entries that are not ``-1``, which must
    come first). Positions before the first play are ``-1``.
    """
    history_codes = np.asarray(history_codes, dtype=np.int64)
    n, length = history_codes.shape
    if lengths is None:
        lengths = (history_codes >= 0).sum(axis=1)
    back = np.asarray(lengths, dtype=np.int64)[:, None] - 1 - np.arange(RECENT_PLAYS)
    found = back >= 0
    picked = history_codes[np.arange(n)[:, None], np.clip(back, 0, max(length - 1, 0))] if length else back
    return np.where(found, picked, -1)


def played_session_familiarity(history_codes: np.ndarray) -> np.ndarray:
    """``(N, L, 5)`` float32: each played track's :func:`session_familiarity` against the plays before it.

    ``history_codes`` ``(N, L)`` in play order, ``-1`` after the last play (those rows are zeros).
    """
    history_codes = np.asarray(history_codes, dtype=np.int64)
    length = history_codes.shape[1]
    # Row t, column j: the code j + 1 plays before play t (-1 before the first).
    lag = np.arange(length)[:, None] - 1 - np.arange(RECENT_PLAYS)[None, :]
    before = np.where(lag >= 0, history_codes[:, np.clip(lag, 0, None)], -1)
    out = session_familiarity(history_codes, before)
    out[history_codes < 0] = 0.0
    return out


def advance_recent_codes(recent: np.ndarray, played_codes: np.ndarray) -> np.ndarray:
    """The recent codes ``(B, R)`` after each session played a track of code ``played_codes`` ``(B,)``."""
    return np.concatenate([np.asarray(played_codes, dtype=np.int64)[:, None], recent[:, :-1]], axis=1)


def torch_session_familiarity(codes: torch.Tensor, recent_codes: torch.Tensor) -> torch.Tensor:
    """:func:`session_familiarity` on tensors (same shapes, float32 on ``codes``' device)."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    codes = codes.long()[..., None]
    recent = recent_codes.long()[..., :RECENT_PLAYS]
    played = recent >= 0
    artist = ((codes >> GENRE_BITS) == (recent >> GENRE_BITS)) & played
    genre = ((codes & GENRE_MASK) == (recent & GENRE_MASK)) & played
    bits = torch.arange(recent.shape[-1], device=codes.device)
    # The artist's columns depend on the artist bits alone, the genre's on the genre bits: two
    # small slices of SESSION_COLUMNS instead of the whole table on the device.
    artist_columns = torch.as_tensor(SESSION_COLUMNS[: 1 << RECENT_PLAYS, :3], device=codes.device)
    genre_columns = torch.as_tensor(SESSION_COLUMNS[:: 1 << RECENT_PLAYS, 3:], device=codes.device)
    return torch.cat(
        [artist_columns[(artist.long() << bits).sum(dim=-1)], genre_columns[(genre.long() << bits).sum(dim=-1)]],
        dim=-1,
    )


def torch_advance_recent_codes(recent: torch.Tensor, played_codes: torch.Tensor) -> torch.Tensor:
    """:func:`advance_recent_codes` on tensors."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    return torch.cat([played_codes.long()[:, None], recent[:, :-1]], dim=1)


def torch_recent_codes(history_codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """:func:`recent_codes` on tensors, of ``history_codes`` ``(N, L)`` and ``lengths`` ``(N,)``."""
    import torch  # here: the numpy half of this module serves environments that never load torch

    length = history_codes.shape[1]
    back = lengths.long()[:, None] - 1 - torch.arange(RECENT_PLAYS, device=history_codes.device)
    picked = history_codes.gather(1, back.clamp(0, max(length - 1, 0)))
    return torch.where(back >= 0, picked, torch.full_like(picked, -1))
