"""What a service knows of each listener's past with each track: their logged plays of it.

:class:`ListeningHistory` gives, per (listener, track), whether and how often the listener
played the track in the logs and how those plays ended (:data:`HISTORY_FEATURES`); the
user-response model reads it beside the track's features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from world_model.sessions import SessionTable


HISTORY_FEATURES: tuple[str, ...] = ("played_before", "log_plays", "complete_share", "skip_share")
"""What the world knows of a listener's past with a track (:class:`ListeningHistory`), in column order."""


@dataclass(frozen=True)
class ListeningHistory:
    """Every listener's logged plays of every track: what a service knows of their past with it.

    Why: a listener responds to a track they already know differently from a new one (the
    default ground-truth world gives known tracks a bonus, and the listener's mood changes how
    welcome new ones are). ALS vectors blur that: a track near the listener's vector may be
    one they played ten times or one they never heard, and a candidate pool, ranked by those
    vectors, holds far more of the second kind than the logged sessions did. So the
    user-response model reads, for each (listener, track), :data:`HISTORY_FEATURES`:
    ``played_before`` (0 or 1), ``log_plays`` (``log(1 + plays)``) and the shares of those
    plays completed and skipped (0 when never played).

    In training, a play's history leaves out its own session (:meth:`session_features`): the
    environment's sessions are not in the log either, so the model sees what it will see.

    Attributes:
        keys: ``(P,)`` int64, sorted ``listener * n_tracks + track`` of every pair with plays.
        counts: ``(P, 3)`` float64 plays of the pair per response (skip, listen, complete).
        n_tracks: catalogue size.
    """

    keys: np.ndarray
    counts: np.ndarray
    n_tracks: int

    @classmethod
    def from_sessions(cls, sessions: SessionTable, n_tracks: int) -> ListeningHistory:
        """The history of every play in ``sessions`` (all listeners, evaluation users included)."""
        mask = sessions.play_mask()
        keys = sessions.listeners[:, None].astype(np.int64) * n_tracks + sessions.tracks
        unique, inverse = np.unique(keys[mask], return_inverse=True)
        counts = np.zeros((len(unique), 3))
        np.add.at(counts, (inverse, sessions.responses[mask]), 1.0)
        return cls(unique.astype(np.int64), counts, int(n_tracks))

    def pair_counts(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., 3)`` plays per response of each (listener, track) pair (broadcast shapes)."""
        keys = np.asarray(listeners, dtype=np.int64) * self.n_tracks + np.asarray(tracks, dtype=np.int64)
        if len(self.keys) == 0:
            return np.zeros((*keys.shape, 3))
        where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[where] == keys
        return np.where(found[..., None], self.counts[where], 0.0)

    def features(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., len(HISTORY_FEATURES))`` float32 of each (listener, track) pair (broadcast shapes)."""
        return history_features(self.pair_counts(listeners, tracks))

    def session_features(self, sessions: SessionTable) -> np.ndarray:
        """``(S, L, len(HISTORY_FEATURES))`` float32: each play's history without its own session.

        ``sessions`` must be (a subset of) the sessions the history was built from; padding rows
        are zeros.
        """
        mask = sessions.play_mask()
        tracks = np.maximum(sessions.tracks, 0)
        counts = self.pair_counts(sessions.listeners[:, None], tracks)
        # The session's own plays of each of its tracks (a track may recur within a session).
        session_keys = np.arange(len(sessions))[:, None] * self.n_tracks + tracks
        unique, inverse = np.unique(session_keys[mask], return_inverse=True)
        own = np.zeros((len(unique), 3))
        np.add.at(own, (inverse, sessions.responses[mask]), 1.0)
        counts[mask] -= own[inverse]
        out = history_features(np.maximum(counts, 0.0))
        out[~mask] = 0.0
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for an ``.npz`` file; :meth:`from_arrays` inverts it."""
        return {"history_keys": self.keys, "history_counts": self.counts, "history_n_tracks": np.array(self.n_tracks)}

    @classmethod
    def from_arrays(cls, arrays: Any) -> ListeningHistory:
        """Inverse of :meth:`to_arrays` (``arrays``: a mapping such as an open ``.npz``)."""
        return cls(
            np.asarray(arrays["history_keys"], dtype=np.int64),
            np.asarray(arrays["history_counts"], dtype=np.float64),
            int(arrays["history_n_tracks"]),
        )


def history_features(counts: np.ndarray) -> np.ndarray:
    """:data:`HISTORY_FEATURES` ``(..., 4)`` float32 from plays per response ``(..., 3)``."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1)
    share = counts / np.maximum(total, 1.0)[..., None]
    out = np.stack([total > 0, np.log1p(total), share[..., 2], share[..., 0]], axis=-1)
    return out.astype(np.float32)
