"""A log's sessions in the form the user-response and session-end models read them.

:class:`SessionTable` holds a log's sessions as padded arrays (one row per session, one column
per play); :data:`POSITION_SCALE` is how the models read a play's position;
:func:`session_folds` deals sessions into seeded folds for cross-fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from musicenv.world import Contexts, is_eval_user
from world_model.interactions import listener_codes

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

POSITION_SCALE = 20.0
"""Session positions enter the models divided by this: the MSSD's (and the default world's) cap of
20 plays, so the feature runs from 0.05 to 1 over a default session."""


def session_folds(n_sessions: int, folds: int, seed: int) -> np.ndarray:
    """``(n_sessions,)`` int64 fold of each session: a seeded permutation dealt round-robin."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    return (np.random.default_rng(seed).permutation(n_sessions) % folds).astype(np.int64)


@dataclass(frozen=True)
class SessionTable:
    """A log's sessions as padded arrays: one row per session, plays in position order.

    Sessions are in the order of their ids (sorted as strings). Plays beyond
    ``max_session_length`` (the playlist length the world is built for) are dropped.

    Attributes:
        session_ids: ``(S,)`` str.
        listener_ids: ``(n_listeners,)`` sorted listener ids of the whole log (user id, else
            session id; :meth:`musicenv.data.ListeningLog.listener_ids`).
        listeners: ``(S,)`` int64 listener index of each session.
        context_type: ``(S,)`` int8 context codes; ``hour``: ``(S,)`` int8.
        shuffled: ``(S,)`` bool, the logging policy shuffled the session uniformly.
        tracks: ``(S, L)`` int64 track indices, ``-1`` after the session's plays.
        responses: ``(S, L)`` int64 response codes, ``-1`` after the session's plays.
        positions: ``(S, L)`` int64 1-based positions in the session, ``0`` after its plays.
        n_plays: ``(S,)`` int64 plays kept per session (``<= L``).
        session_length: ``(S,)`` int64 the log's ``session_length``.
        max_session_length: L, the length cap.
    """

    session_ids: np.ndarray
    listener_ids: np.ndarray
    listeners: np.ndarray
    context_type: np.ndarray
    hour: np.ndarray
    shuffled: np.ndarray
    tracks: np.ndarray
    responses: np.ndarray
    positions: np.ndarray
    n_plays: np.ndarray
    session_length: np.ndarray
    max_session_length: int

    @classmethod
    def from_log(
        cls, log: ListeningLog, max_session_length: int = 20, listener_ids: np.ndarray | None = None
    ) -> SessionTable:
        """Build the table from ``log.plays``.

        Args:
            log: the listening log; its track indices are rows of ``log.tracks``.
            max_session_length: the length cap L.
            listener_ids: sorted listener ids to index into (a world's, when scoring new sessions
                of its listeners); default: the log's own. Raises ``KeyError`` for a listener
                not among them.
        """
        plays = log.plays
        own_ids, listener_of_play = listener_codes(log)
        if listener_ids is None:
            listener_ids = own_ids
        else:
            listener_ids = np.asarray(listener_ids, dtype=str)
            mapped = np.searchsorted(listener_ids, own_ids)
            found = mapped < len(listener_ids)
            found[found] = listener_ids[mapped[found]] == own_ids[found]
            if not found.all():
                raise KeyError(f"listeners not in listener_ids: {list(own_ids[~found][:5])}")
            listener_of_play = mapped[listener_of_play]
        session_codes, session_ids = pd.factorize(plays["session_id"].astype(str), sort=True)
        session_codes = session_codes.astype(np.int64)
        n_sessions = len(session_ids)
        # Rank of each play within its session, by position (plays are sorted, but rely on nothing).
        order = np.lexsort((plays["position"].to_numpy(), session_codes))
        sorted_sessions = session_codes[order]
        first = np.searchsorted(sorted_sessions, np.arange(n_sessions))
        rank = np.arange(len(order)) - first[sorted_sessions]
        keep = rank < max_session_length
        rows, cols = sorted_sessions[keep], rank[keep]
        source = order[keep]

        def padded(values: np.ndarray, fill: int) -> np.ndarray:
            out = np.full((n_sessions, max_session_length), fill, dtype=np.int64)
            out[rows, cols] = values[source]
            return out

        first_play = order[first]
        return cls(
            session_ids=np.asarray(session_ids, dtype=str),
            listener_ids=listener_ids,
            listeners=listener_of_play[first_play],
            context_type=plays["context_type"].cat.codes.to_numpy()[first_play].astype(np.int8),
            hour=plays["hour"].to_numpy()[first_play].astype(np.int8),
            shuffled=plays["shuffled"].to_numpy(dtype=bool)[first_play],
            tracks=padded(np.asarray(log.track_codes(), dtype=np.int64), -1),
            responses=padded(np.asarray(log.response_codes(), dtype=np.int64), -1),
            positions=padded(plays["position"].to_numpy().astype(np.int64), 0),
            n_plays=np.minimum(np.bincount(session_codes, minlength=n_sessions), max_session_length),
            session_length=plays["session_length"].to_numpy().astype(np.int64)[first_play],
            max_session_length=max_session_length,
        )

    def __len__(self) -> int:
        return len(self.session_ids)

    def take(self, index: np.ndarray) -> SessionTable:
        """The sessions ``index`` (int positions or a boolean mask), with the same listener ids."""
        return SessionTable(
            session_ids=self.session_ids[index],
            listener_ids=self.listener_ids,
            listeners=self.listeners[index],
            context_type=self.context_type[index],
            hour=self.hour[index],
            shuffled=self.shuffled[index],
            tracks=self.tracks[index],
            responses=self.responses[index],
            positions=self.positions[index],
            n_plays=self.n_plays[index],
            session_length=self.session_length[index],
            max_session_length=self.max_session_length,
        )

    def contexts(self) -> Contexts:
        """The sessions' :class:`~musicenv.world.Contexts` (attention 0: logs do not record it)."""
        return Contexts(self.context_type, self.hour, np.zeros(len(self), dtype=np.float32))

    def eval_sessions(self) -> np.ndarray:
        """``(S,)`` bool: the session's listener is an evaluation user (:func:`~musicenv.world.is_eval_user`)."""
        return is_eval_user(self.listener_ids)[self.listeners]

    def play_mask(self) -> np.ndarray:
        """``(S, L)`` bool, True where a play is stored."""
        return self.tracks >= 0

    def ended_before_cap(self) -> np.ndarray:
        """``(S,)`` bool: the listener left (the session is shorter than the cap and its last play is kept).

        A session that reached the cap was cut by it, not ended by the listener: it is censored.
        A fragment whose last stored position is below its ``session_length`` did not record its
        end either.
        """
        last = self.positions[np.arange(len(self)), np.maximum(self.n_plays - 1, 0)]
        return (self.session_length < self.max_session_length) & (last == self.session_length) & (self.n_plays > 0)
