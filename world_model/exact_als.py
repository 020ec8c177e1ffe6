"""Exact ALS least-squares steps against fixed factors, and the held-out vectors built on them.

:mod:`world_model.embeddings` fits both sides of implicit ALS with implicit's
conjugate-gradient solver; the user-response model's inputs instead need each side solved
exactly against the other (:func:`exact_user_vectors`, :func:`exact_track_vectors`), and, so
that a training play's own response is not visible in its inputs, vectors solved without that
play's session (:func:`held_out_user_vectors`) or fold of sessions
(:func:`held_out_track_vectors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from world_model.sessions import SessionTable


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
        sessions: the log's sessions; ``fold``: ``(S,)`` fold of each (:func:`~world_model.sessions.session_folds`).
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

    Measured, it did not help (``WorldConfig.leave_session_out`` (:class:`world_model.world.WorldConfig`) has the
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
