"""What a service knows of each listener's past with each track: their logged plays of it and of its artist.

:class:`ListeningHistory` gives, per (listener, track), whether and how often the listener
played the track and its artist in the logs and how those plays ended (:data:`HISTORY_FEATURES`,
the listener's *familiarity* with the track); the user-response model reads it beside the track's
features, and the environments put it in the observation (``"familiarity"``), so agents see what
the world sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from musicenv.familiarity import play_codes, played_session_familiarity, session_familiarity
from musicenv.world import FAMILIARITY_FEATURES

if TYPE_CHECKING:
    from world_model.sessions import SessionTable


HISTORY_FEATURES: tuple[str, ...] = FAMILIARITY_FEATURES
"""What the user-response model reads of a listener and a track, in column order: the logged
familiarity (:meth:`ListeningHistory.features`), then how recently the session played the track's
artist and genre (:mod:`musicenv.familiarity`; :meth:`ListeningHistory.session_features` and
:meth:`ListeningHistory.familiarity` give both)."""


@dataclass(frozen=True)
class ListeningHistory:
    """Every listener's logged plays of every track and artist: what a service knows of their past.

    Why: a listener responds to a track they already know differently from a new one (the
    default ground-truth world gives known tracks a bonus, and the listener's mood changes how
    welcome new ones are), and to a new track by an artist they know differently from one by a
    stranger. ALS vectors blur that: a track near the listener's vector may be one they played
    ten times or one they never heard, and a candidate pool, ranked by those vectors, holds far
    more of the second kind than the logged sessions did. So the user-response model reads, for
    each (listener, track), :data:`HISTORY_FEATURES`: ``played_before`` (0 or 1), ``log_plays``
    (``log(1 + plays)``) and the shares of those plays completed and skipped (0 when never
    played), then the same counts over every track of the track's artist (``artist_log_plays``,
    ``artist_complete_share``, ``artist_skip_share``; the track's own plays included). Those
    are :meth:`features`; :meth:`familiarity` and :meth:`session_features` append the columns
    that depend on the session so far (:mod:`musicenv.familiarity`: whether the track's artist
    made the last play, the one before, and how many of the last eight; whether its genre made
    the last play, and how much of the genre the last eight plays held, the recent ones weighing
    more).

    Storage is sparse, as the log is: sorted ``listener * n_tracks + track`` and
    ``listener * n_artists + artist`` keys of the pairs with plays and their per-response counts,
    looked up with ``searchsorted``; nothing is dense in listeners x tracks.

    In training, a play's history leaves out its own session (:meth:`session_features`): the
    environment's sessions are not in the log either, so the model sees what it will see.

    Attributes:
        keys: ``(P,)`` int64, sorted ``listener * n_tracks + track`` of every pair with plays.
        counts: ``(P, 3)`` float64 plays of the pair per response (skip, listen, complete).
        n_tracks: catalogue size.
        track_artists: ``(n_tracks,)`` int64 artist code of every track
            (:meth:`~musicenv.data.ListeningLog.track_artist_codes`).
        artist_keys: ``(Q,)`` int64, sorted ``listener * n_artists + artist`` with plays.
        artist_counts: ``(Q, 3)`` float64 plays of the (listener, artist) pair per response.
        n_artists: number of artist codes (the largest code + 1).
        track_genres: ``(n_tracks,)`` int64 genre code of every track (:func:`world_model.genres.track_genres`).
        genre_source: where the genres came from: ``"genre column"`` or ``"ALS clusters"``
            (:func:`world_model.genres.track_genres`), ``"given"`` (by the caller) or ``"none"``
            (one genre for every track).
        play_codes: ``(n_tracks,)`` int64 play code of every track, what the in-session columns
            compare (:func:`musicenv.familiarity.play_codes`; derived).
    """

    keys: np.ndarray
    counts: np.ndarray
    n_tracks: int
    track_artists: np.ndarray
    artist_keys: np.ndarray
    artist_counts: np.ndarray
    n_artists: int
    track_genres: np.ndarray
    genre_source: str
    play_codes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "play_codes", play_codes(self.track_artists, self.track_genres))

    @classmethod
    def from_sessions(
        cls,
        sessions: SessionTable,
        n_tracks: int,
        track_artists: np.ndarray | None = None,
        track_genres: np.ndarray | None = None,
        genre_source: str | None = None,
    ) -> ListeningHistory:
        """The history of every play in ``sessions`` (all listeners, evaluation users included).

        ``track_artists`` ``(n_tracks,)``: each track's artist code; None makes every track its own
        artist (a log without artists), so the artist columns repeat the track's counts.
        ``track_genres`` ``(n_tracks,)``: each track's genre code; None puts every track in one
        genre, so the genre columns only count the session's plays. ``genre_source``: where they
        came from (default ``"given"``, or ``"none"`` without genres).
        """
        artists = np.arange(n_tracks, dtype=np.int64) if track_artists is None else np.asarray(track_artists, np.int64)
        genres = np.zeros(n_tracks, dtype=np.int64) if track_genres is None else np.asarray(track_genres, np.int64)
        for name, codes in (("track_artists", artists), ("track_genres", genres)):
            if codes.shape != (n_tracks,):
                raise ValueError(f"{name} has shape {codes.shape}, expected ({n_tracks},)")
        mask = sessions.play_mask()
        listeners = sessions.listeners[:, None].astype(np.int64)
        responses = sessions.responses[mask]
        keys, counts = _pair_counts((listeners * n_tracks + sessions.tracks)[mask], responses)
        n_artists = int(artists.max()) + 1 if n_tracks else 0
        played_artists = artists[np.maximum(sessions.tracks, 0)]
        artist_keys, artist_counts = _pair_counts((listeners * n_artists + played_artists)[mask], responses)
        source = genre_source or ("none" if track_genres is None else "given")
        return cls(keys, counts, int(n_tracks), artists, artist_keys, artist_counts, n_artists, genres, source)

    def pair_counts(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., 3)`` plays per response of each (listener, track) pair (broadcast shapes)."""
        keys = np.asarray(listeners, dtype=np.int64) * self.n_tracks + np.asarray(tracks, dtype=np.int64)
        return _lookup(self.keys, self.counts, keys)

    def artist_pair_counts(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., 3)`` plays per response of each listener with each track's artist (broadcast shapes)."""
        artists = self.track_artists[np.asarray(tracks, dtype=np.int64)]
        return _lookup(self.artist_keys, self.artist_counts, np.asarray(listeners, np.int64) * self.n_artists + artists)

    def features(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., 7)`` float32 logged familiarity of each (listener, track) pair (broadcast shapes)."""
        return history_features(self.pair_counts(listeners, tracks), self.artist_pair_counts(listeners, tracks))

    def familiarity(self, listeners: np.ndarray, tracks: np.ndarray, recent_codes: np.ndarray) -> np.ndarray:
        """``(..., len(HISTORY_FEATURES))`` float32: :meth:`features`, then the in-session columns.

        ``recent_codes`` ``(..., R)``: each session's last plays' play codes, newest first (``-1``
        for none; :func:`musicenv.familiarity.session_familiarity`), its leading axes broadcast
        against ``tracks``'.
        """
        tracks = np.asarray(tracks, dtype=np.int64)
        return np.concatenate(
            [self.features(listeners, tracks), session_familiarity(self.play_codes[tracks], recent_codes)], axis=-1
        )

    def pair_features(self, listener: int, track: int) -> list[float]:
        """The 7 logged columns of one pair as Python floats: :meth:`features`' numbers, bit for bit once float32.

        The single-session kernel's form: two scalar lookups and Python arithmetic instead of
        array operations, about a tenth of :meth:`features`' cost on one pair (the single env's
        step speed). The float64 operations are the same, in the same order.
        """
        c0, c1, c2 = _find(self.keys, self.counts, listener * self.n_tracks + track)
        a0, a1, a2 = _find(
            self.artist_keys, self.artist_counts, listener * self.n_artists + int(self.track_artists[track])
        )
        total, artist_total = c0 + c1 + c2, a0 + a1 + a2
        scale, artist_scale = max(total, 1.0), max(artist_total, 1.0)
        return [
            float(total > 0),
            math.log1p(total),
            c2 / scale,
            c0 / scale,
            math.log1p(artist_total),
            a2 / artist_scale,
            a0 / artist_scale,
        ]

    def session_features(self, sessions: SessionTable) -> np.ndarray:
        """``(S, L, len(HISTORY_FEATURES))`` float32: each play's familiarity as the model reads it.

        The logged columns count the listener's plays without the play's own session; the
        in-session ones compare the play's artist and genre with the plays before it in its session
        (:func:`musicenv.familiarity.played_session_familiarity`). ``sessions`` must be (a subset
        of) the sessions the history was built from; padding rows are zeros.
        """
        mask = sessions.play_mask()
        tracks = np.maximum(sessions.tracks, 0)
        listeners = sessions.listeners[:, None]
        counts = self.pair_counts(listeners, tracks)
        artist_counts = self.artist_pair_counts(listeners, tracks)
        # The session's own plays of each of its tracks and artists (either may recur within it).
        rows = np.arange(len(sessions), dtype=np.int64)[:, None]
        for total, keys in (
            (counts, rows * self.n_tracks + tracks),
            (artist_counts, rows * self.n_artists + self.track_artists[tracks]),
        ):
            unique, inverse = np.unique(keys[mask], return_inverse=True)
            own = np.zeros((len(unique), 3))
            np.add.at(own, (inverse, sessions.responses[mask]), 1.0)
            total[mask] -= own[inverse]
        logged = history_features(np.maximum(counts, 0.0), np.maximum(artist_counts, 0.0))
        in_session = played_session_familiarity(np.where(mask, self.play_codes[tracks], -1))
        out = np.concatenate([logged, in_session], axis=-1)
        out[~mask] = 0.0
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for an ``.npz`` file; :meth:`from_arrays` inverts it."""
        return {
            "history_keys": self.keys,
            "history_counts": self.counts,
            "history_n_tracks": np.array(self.n_tracks),
            "history_track_artists": self.track_artists,
            "history_artist_keys": self.artist_keys,
            "history_artist_counts": self.artist_counts,
            "history_n_artists": np.array(self.n_artists),
            "history_track_genres": self.track_genres,
            "history_genre_source": np.array(self.genre_source),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> ListeningHistory:
        """Inverse of :meth:`to_arrays` (``arrays``: a mapping such as an open ``.npz``)."""
        return cls(
            np.asarray(arrays["history_keys"], dtype=np.int64),
            np.asarray(arrays["history_counts"], dtype=np.float64),
            int(arrays["history_n_tracks"]),
            np.asarray(arrays["history_track_artists"], dtype=np.int64),
            np.asarray(arrays["history_artist_keys"], dtype=np.int64),
            np.asarray(arrays["history_artist_counts"], dtype=np.float64),
            int(arrays["history_n_artists"]),
            np.asarray(arrays["history_track_genres"], dtype=np.int64),
            str(arrays["history_genre_source"]),
        )


def _pair_counts(keys: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``keys`` and their ``(P, 3)`` plays per response."""
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.zeros((len(unique), 3))
    np.add.at(counts, (inverse, responses), 1.0)
    return unique.astype(np.int64), counts


def _find(sorted_keys: np.ndarray, counts: np.ndarray, key: int) -> list[float]:
    """The three counts of one ``key`` in ``sorted_keys`` as Python floats (zeros where absent)."""
    where = int(sorted_keys.searchsorted(key))
    if where < len(sorted_keys) and sorted_keys[where] == key:
        return counts[where].tolist()
    return [0.0, 0.0, 0.0]


def _lookup(sorted_keys: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``(..., 3)`` counts of ``keys`` in ``sorted_keys`` (zeros where absent)."""
    if len(sorted_keys) == 0:
        return np.zeros((*keys.shape, 3))
    where = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    found = sorted_keys[where] == keys
    return np.where(found[..., None], counts[where], 0.0)


def history_features(counts: np.ndarray, artist_counts: np.ndarray) -> np.ndarray:
    """The logged columns ``(..., 7)`` float32 of the track's and its artist's plays by response (see the class)."""
    counts = np.asarray(counts, dtype=np.float64)
    artist_counts = np.asarray(artist_counts, dtype=np.float64)
    total = counts.sum(axis=-1)
    share = counts / np.maximum(total, 1.0)[..., None]
    artist_total = artist_counts.sum(axis=-1)
    artist_share = artist_counts / np.maximum(artist_total, 1.0)[..., None]
    out = np.stack(
        [
            total > 0,
            np.log1p(total),
            share[..., 2],
            share[..., 0],
            np.log1p(artist_total),
            artist_share[..., 2],
            artist_share[..., 0],
        ],
        axis=-1,
    )
    return out.astype(np.float32)
