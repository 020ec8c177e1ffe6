"""What an agent and the user-response model observe of tracks, users and sessions.

Tracks
    :func:`track_feature_matrix` gives one float32 row per track (row ``i`` is track index ``i``,
    the row order of ``log.tracks``), in this order (:func:`track_feature_names`):

    1. the track's ALS vector (collaborative filtering, from :mod:`world_model.embeddings`),
       divided by the root-mean-square of all track vectors so its entries are of order one
       whatever ALS's regularisation made of their scale;
    2. the content features of :data:`musicenv.data.ACOUSTIC_FEATURES` (the MSSD's track-feature
       file: popularity estimate, release year, acousticness, ..., ``acoustic_vector_0..7``),
       each standardised to mean 0 and standard deviation 1 over the catalogue, with
       ``duration`` replaced by its logarithm (durations are long-tailed);
    3. ``log_plays``: ``log(1 + plays in the log)``, standardised, the track's popularity in the
       logs the world is learned from (what a "most popular" recommender ranks by);
    4. ``explicit``: 1.0 or 0.0.

    A missing value (NaN) becomes 0 *after* standardisation, i.e. the catalogue mean, so logs
    without content features (the MSSD's log alone, a generic CSV of plays) work unchanged: their
    content columns are all zeros and the model learns from the ALS vector and popularity.

Users
    :func:`user_feature_matrix` gives one float32 row per listener: the ALS user vector divided
    by the root-mean-square of all user vectors, then ``premium`` (1.0 or 0.0). A learned world
    uses one exact ALS step against the fitted track vectors (:func:`exact_user_vectors`), and
    can train on each session with the vector *without* that session (:func:`held_out_user_vectors`).

Listening history
    :class:`ListeningHistory` gives, per (listener, track), whether and how often the listener
    played the track in the logs and how those plays ended (:data:`HISTORY_FEATURES`).

The statistics of both (means, standard deviations, vector scales) are a
:class:`FeatureStats`, fitted once on the world's own catalogue and listeners and saved with it
(:meth:`FeatureStats.to_dict`), so a loaded world rebuilds exactly the features it was trained
on.

Sessions
    :class:`SessionTable` holds a log's sessions as padded arrays (one row per session, one
    column per play), the form in which the user-response and session-end models read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicenv.data import ACOUSTIC_FEATURES
from musicenv.world import Contexts, is_eval_user
from world_model.interactions import listener_codes

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

STANDARDISED_COLUMNS: tuple[str, ...] = (
    *("log_duration" if name == "duration" else name for name in ACOUSTIC_FEATURES),
    "log_plays",
)
"""Track columns that are standardised, in feature order (block 2 and 3 of the module docstring)."""

POSITION_SCALE = 20.0
"""Session positions enter the models divided by this: the MSSD's (and the default world's) cap of
20 plays, so the feature runs from 0.05 to 1 over a default session."""


@dataclass(frozen=True)
class FeatureStats:
    """Standardisation statistics of the track and user features (see the module docstring).

    Attributes:
        mean: per :data:`STANDARDISED_COLUMNS` entry, the catalogue mean (0 where a column has
            no known value).
        std: per entry, the catalogue standard deviation (1 where it is 0 or unknown).
        track_vector_scale: root-mean-square entry of the ALS track vectors.
        user_vector_scale: root-mean-square entry of the ALS user vectors.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    track_vector_scale: float
    user_vector_scale: float

    @classmethod
    def fit(
        cls,
        tracks: pd.DataFrame,
        track_vectors: np.ndarray,
        user_vectors: np.ndarray,
        play_counts: np.ndarray,
    ) -> FeatureStats:
        """Statistics of a catalogue (``tracks`` with its ALS vectors and play counts) and its users."""
        raw = _raw_track_columns(tracks, play_counts)
        known = np.isfinite(raw)
        count = known.sum(axis=0)
        mean = np.where(count > 0, np.where(known, raw, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
        variance = np.where(known, (raw - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
        std = np.sqrt(variance)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            track_vector_scale=_rms(track_vectors),
            user_vector_scale=_rms(user_vectors),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` inverts it exactly (floats survive JSON round trips)."""
        return {
            "columns": list(STANDARDISED_COLUMNS),
            "mean": list(self.mean),
            "std": list(self.std),
            "track_vector_scale": self.track_vector_scale,
            "user_vector_scale": self.user_vector_scale,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> FeatureStats:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` when the columns differ from this version's."""
        if tuple(payload["columns"]) != STANDARDISED_COLUMNS:
            raise ValueError(
                f"feature statistics were saved for columns {payload['columns']}, this version uses "
                f"{list(STANDARDISED_COLUMNS)}"
            )
        return cls(
            mean=tuple(float(v) for v in payload["mean"]),
            std=tuple(float(v) for v in payload["std"]),
            track_vector_scale=float(payload["track_vector_scale"]),
            user_vector_scale=float(payload["user_vector_scale"]),
        )


def _rms(vectors: np.ndarray) -> float:
    value = float(np.sqrt(np.mean(np.square(np.asarray(vectors, dtype=np.float64))))) if np.size(vectors) else 0.0
    return value if value > 1e-12 else 1.0


def _raw_track_columns(tracks: pd.DataFrame, play_counts: np.ndarray) -> np.ndarray:
    """``(n_tracks, len(STANDARDISED_COLUMNS))`` float64 before standardisation, NaN where unknown."""
    play_counts = np.asarray(play_counts, dtype=np.float64)
    if play_counts.shape != (len(tracks),):
        raise ValueError(f"play_counts has shape {play_counts.shape}, expected ({len(tracks)},)")
    columns = []
    for name in ACOUSTIC_FEATURES:
        values = (
            tracks[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in tracks else np.full(len(tracks), np.nan)
        )
        if name == "duration":
            values = np.log(np.where(values > 0, values, np.nan))
        columns.append(values)
    columns.append(np.log1p(play_counts))
    return np.stack(columns, axis=1)


def track_play_counts(log: ListeningLog) -> np.ndarray:
    """``(n_tracks,)`` int64 number of plays of each track (row of ``log.tracks``) in the log."""
    return np.bincount(np.asarray(log.track_codes(), dtype=np.int64), minlength=len(log.tracks))


def track_feature_names(vector_dim: int) -> list[str]:
    """Names of the columns of :func:`track_feature_matrix` for ALS vectors of ``vector_dim``."""
    return [*(f"als_{i}" for i in range(vector_dim)), *STANDARDISED_COLUMNS, "explicit"]


def track_feature_layout(vector_dim: int) -> dict[str, tuple[int, int]]:
    """Column blocks of :func:`track_feature_matrix`: name -> ``(start, stop)``, for agents that read one."""
    acoustic = vector_dim + len(STANDARDISED_COLUMNS) - 1
    return {
        "als": (0, vector_dim),
        "acoustic": (vector_dim, acoustic),
        "popularity": (acoustic, acoustic + 1),
        "explicit": (acoustic + 1, acoustic + 2),
    }


def user_feature_layout(vector_dim: int) -> dict[str, tuple[int, int]]:
    """Column blocks of :func:`user_feature_matrix`: name -> ``(start, stop)``."""
    return {"als": (0, vector_dim), "premium": (vector_dim, vector_dim + 1)}


def track_feature_matrix(
    tracks: pd.DataFrame, track_vectors: np.ndarray, play_counts: np.ndarray, stats: FeatureStats
) -> np.ndarray:
    """What an agent and the user-response model observe of every track.

    Args:
        tracks: the track table (``log.tracks``: ``explicit`` and the columns of
            :data:`musicenv.data.ACOUSTIC_FEATURES`; absent columns count as unknown).
        track_vectors: ``(n_tracks, f)`` ALS track vectors aligned to ``tracks`` rows.
        play_counts: ``(n_tracks,)`` plays per track (:func:`track_play_counts`).
        stats: the world's :class:`FeatureStats`.

    Returns:
        ``(n_tracks, f + len(STANDARDISED_COLUMNS) + 1)`` float32, finite, columns named by
        :func:`track_feature_names`.
    """
    track_vectors = np.asarray(track_vectors, dtype=np.float64)
    if track_vectors.shape[0] != len(tracks):
        raise ValueError(f"{track_vectors.shape[0]} track vectors for {len(tracks)} tracks")
    standardised = (_raw_track_columns(tracks, play_counts) - np.asarray(stats.mean)) / np.asarray(stats.std)
    explicit = (
        tracks["explicit"].to_numpy(dtype=np.float64, na_value=0.0) if "explicit" in tracks else np.zeros(len(tracks))
    )
    out = np.concatenate(
        [track_vectors / stats.track_vector_scale, np.nan_to_num(standardised, nan=0.0), explicit[:, None]], axis=1
    )
    return out.astype(np.float32)


def user_feature_matrix(user_vectors: np.ndarray, premium: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """What an agent and the user-response model observe of every listener.

    Args:
        user_vectors: ``(n_users, f)`` ALS user vectors (rows aligned to sorted listener ids).
        premium: ``(n_users,)`` premium flags (:func:`listener_premium`).
        stats: the world's :class:`FeatureStats`.

    Returns:
        ``(n_users, f + 1)`` float32: the scaled vector, then premium.
    """
    user_vectors = np.asarray(user_vectors, dtype=np.float64)
    premium = np.asarray(premium, dtype=np.float64)
    if premium.shape != (user_vectors.shape[0],):
        raise ValueError(f"premium has shape {premium.shape}, expected ({user_vectors.shape[0]},)")
    return np.concatenate([user_vectors / stats.user_vector_scale, premium[:, None]], axis=1).astype(np.float32)


def _solve_user(
    columns: np.ndarray, values: np.ndarray, base: np.ndarray, tracks_y: np.ndarray, alpha: float
) -> np.ndarray | None:
    """One exact ALS user step on a row of summed play weights; None for an empty row."""
    kept = np.abs(values) > 1e-6
    if not kept.any():
        return None
    y = tracks_y[columns[kept]]
    confidence = 1.0 + alpha * np.abs(values[kept])
    matrix = base + (y.T * (confidence - 1.0)) @ y
    return np.linalg.solve(matrix, y.T @ (confidence * (values[kept] > 0)))


def exact_user_vectors(
    weights: sp.csr_matrix, track_vectors: np.ndarray, alpha: float, regularization: float
) -> np.ndarray:
    """Every listener's ALS vector by one exact least-squares step against fixed track vectors.

    ``x = (YᵀY + Yᵀ(Cᵤ - I)Y + λI)⁻¹ Yᵀ Cᵤ pᵤ`` (Hu et al., eq. 4) with ``c = 1 + alpha * |w|``
    and ``p = [w > 0]`` on the stored entries of ``weights`` (as
    :func:`~world_model.interactions.confidence_matrix` has it). implicit's conjugate-gradient
    solver stops after a few steps and its last sweep updates the track side, so its user
    vectors are this step only approximately (in the default world they point the same way,
    median cosine 0.999, but their lengths differ by about 10%). The user-response model's
    inputs are this step both in training (:func:`held_out_user_vectors`) and in the world, so
    the two are on exactly the same footing.

    Returns:
        ``(n_listeners, f)`` float32; a listener without stored plays gets zeros.
    """
    tracks_y = np.asarray(track_vectors, dtype=np.float64)
    base = tracks_y.T @ tracks_y + regularization * np.eye(tracks_y.shape[1])
    weights = sp.csr_matrix(weights)
    out = np.zeros((weights.shape[0], tracks_y.shape[1]), dtype=np.float32)
    for listener in range(weights.shape[0]):
        start, stop = weights.indptr[listener], weights.indptr[listener + 1]
        vector = _solve_user(
            weights.indices[start:stop], weights.data[start:stop].astype(np.float64), base, tracks_y, alpha
        )
        if vector is not None:
            out[listener] = vector
    return out


def exact_track_vectors(
    weights: sp.csr_matrix, user_vectors: np.ndarray, alpha: float, regularization: float
) -> np.ndarray:
    """Every track's ALS vector by one exact least-squares step against fixed user vectors.

    The track-side twin of :func:`exact_user_vectors` (same confidence and preference), on the
    columns of ``weights``. Returns ``(n_tracks, f)`` float32; a track without plays gets zeros.
    """
    return exact_user_vectors(sp.csr_matrix(sp.csr_matrix(weights).T), user_vectors, alpha, regularization)


def session_folds(n_sessions: int, folds: int, seed: int) -> np.ndarray:
    """``(n_sessions,)`` int64 fold of each session: a seeded permutation dealt round-robin."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    return (np.random.default_rng(seed).permutation(n_sessions) % folds).astype(np.int64)


def held_out_track_vectors(
    sessions: SessionTable,
    fold: np.ndarray,
    weights: sp.csr_matrix,
    user_vectors: np.ndarray,
    response_weights: tuple[float, float, float],
    alpha: float,
    regularization: float,
) -> np.ndarray:
    """Per fold of sessions, every track's ALS vector without that fold's plays: ``(K, n_tracks, f)`` float32.

    Why: a track's vector holds every play of it, the response included (a completion pulls it
    towards the listener more than a skip). For a track with few plays, a training play's own
    response is then visible in "how close the track is to the listener", and the model is
    optimistic about the new tracks of a candidate pool, whose responses are in no vector.
    Cross-fitting (K folds of sessions) removes that: a session of fold ``k`` is read with the
    vectors of :func:`exact_track_vectors` on the plays of the other folds.

    Args:
        sessions: the log's sessions; ``fold``: ``(S,)`` fold of each (:func:`session_folds`).
        weights: ``(n_listeners, n_tracks)`` summed play weights of the whole log.
        user_vectors: ``(n_listeners, f)`` the fixed user side.
        response_weights, alpha, regularization: as ``weights`` and ALS were built.
    """
    weights = sp.csr_matrix(weights)
    mask = sessions.play_mask()
    play_weight = np.asarray(response_weights, dtype=np.float64)[np.maximum(sessions.responses, 0)]
    rows = np.broadcast_to(sessions.listeners[:, None], sessions.tracks.shape)
    n_folds = int(fold.max(initial=0)) + 1
    out = []
    for k in range(n_folds):
        own = mask & (fold == k)[:, None]
        removed = sp.csr_matrix(
            (play_weight[own], (rows[own], sessions.tracks[own])), shape=weights.shape, dtype=np.float64
        )
        rest = (weights.astype(np.float64) - removed).tocsr()
        rest.data[np.abs(rest.data) < 1e-6] = 0.0
        rest.eliminate_zeros()
        out.append(exact_track_vectors(rest, user_vectors, alpha, regularization))
    return np.stack(out)


def held_out_user_vectors(
    sessions: SessionTable,
    weights: sp.csr_matrix,
    track_vectors: np.ndarray,
    response_weights: tuple[float, float, float],
    alpha: float,
    regularization: float,
) -> np.ndarray:
    """Each session's listener's ALS vector as it would be *without* that session: ``(S, f)`` float32.

    Why: ALS is fitted on every logged play, weighted by its response (a completion counts
    more than a skip). A session's own plays are therefore in its listener's vector, and a
    user-response model trained on those plays learns that "the listener's vector points at
    the track" predicts a good response, partly because the response itself pulled the vector
    there. In the environment the pool's tracks are ranked by the same vectors, but the
    responses to come are not in them: such a model is optimistic about every track it never
    saw the listener play (in the default world about 3 in 4 of a pool's tracks are new to the
    listener, who skips them more than familiar ones). Leaving the session out makes the
    training input what the environment sees: the listener's vector from their *other*
    sessions, in which tracks played before (familiar) and new tracks look as they will at
    play time.

    Measured, it did not help (:attr:`world_model.world.WorldConfig.leave_session_out` has the
    figures), so a world uses it only when asked.

    The vector is :func:`exact_user_vectors`'s step on the listener's row minus the session's
    own play weights. A listener with no other session gets the zero vector, the vector of a
    listener the service knows nothing about.

    Args:
        sessions: the log's sessions (their plays up to the length cap are left out).
        weights: ``(n_listeners, n_tracks)`` summed play weights of the whole log
            (:func:`~world_model.interactions.interaction_matrix` with ``response_weights`` and
            no recency decay), rows aligned to ``sessions.listener_ids``.
        track_vectors: ``(n_tracks, f)`` fitted ALS track vectors.
        response_weights: weight of a (skip, listen, complete) play, as ``weights`` was built.
        alpha: confidence slope; ``regularization``: ALS's ``lambda``.
    """
    tracks_y = np.asarray(track_vectors, dtype=np.float64)
    base = tracks_y.T @ tracks_y + regularization * np.eye(tracks_y.shape[1])
    weights = sp.csr_matrix(weights)
    if weights.shape[0] != len(sessions.listener_ids):
        raise ValueError(f"weights has {weights.shape[0]} rows for {len(sessions.listener_ids)} listeners")
    weights.sort_indices()
    play_weight = np.asarray(response_weights, dtype=np.float64)
    out = np.zeros((len(sessions), tracks_y.shape[1]), dtype=np.float32)
    for s in range(len(sessions)):
        listener = sessions.listeners[s]
        start, stop = weights.indptr[listener], weights.indptr[listener + 1]
        columns = weights.indices[start:stop]
        values = weights.data[start:stop].astype(np.float64)
        n = sessions.n_plays[s]
        played = sessions.tracks[s, :n]
        where = np.searchsorted(columns, played)
        if np.any(where >= len(columns)) or np.any(columns[np.minimum(where, len(columns) - 1)] != played):
            raise ValueError(f"session {sessions.session_ids[s]} has plays missing from the weights matrix")
        np.subtract.at(values, where, play_weight[sessions.responses[s, :n]])
        vector = _solve_user(columns, values, base, tracks_y, alpha)
        if vector is not None:
            out[s] = vector
    return out


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


def listener_premium(log: ListeningLog) -> tuple[np.ndarray, np.ndarray]:
    """Sorted listener ids and whether each listener is premium (the majority of their plays are).

    The log records ``premium`` per play; a listener who upgraded mid-log counts as what most of
    their plays say.
    """
    ids, codes = listener_codes(log)
    premium_plays = np.bincount(codes, weights=log.plays["premium"].to_numpy(dtype=np.float64), minlength=len(ids))
    return ids, premium_plays * 2 > np.bincount(codes, minlength=len(ids))


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
