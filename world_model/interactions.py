"""Listener x track interaction matrices from a listening log, for implicit-feedback ALS.

A listening log records *responses*, not ratings: a listener skipped a track, listened past the
first seconds, or played it to the end. Hu, Koren & Volinsky ("Collaborative Filtering for
Implicit Feedback Datasets", ICDM 2008) turn such observations into two matrices: a preference
``p_ui`` (does ``u`` like ``i``, 0 or 1) and a confidence ``c_ui`` (how sure we are), and fit
factors by weighted least squares over *all* pairs, unobserved ones counting as ``p = 0`` with
confidence 1.

This module builds that input in two steps, both sparse (never a dense listeners x tracks array):

1. :func:`interaction_matrix` sums a weight per play into a ``(n_listeners, n_tracks)`` CSR
   matrix ``W``: ``response_weights[response]``, times ``0.5 ** (age_days / half_life_days)``
   when a recency half-life is given. A completion counts more than a listen, a listen more than
   a skip; a *negative* skip weight turns skips into evidence of dislike.
2. :func:`confidence_matrix` maps ``W`` to the matrix implicit fits: ``+(1 + alpha * w)`` where
   ``w > 0`` (preference 1, Hu et al.'s ``c = 1 + alpha * r``) and ``-(1 + alpha * |w|)`` where
   ``w < 0``, which implicit 0.7 reads as preference 0 with confidence ``1 + alpha * |w|``
   (a confident "does not like", stronger than an unobserved pair's confidence of 1).

Listeners are ``log.listener_ids()``: the user id where the log has one, else the session id
(the MSSD has no user ids, so there each session is a listener of its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from musicenv.data import ListeningLog


def listener_codes(log: ListeningLog) -> tuple[np.ndarray, np.ndarray]:
    """Listener ids, sorted as strings, and the listener index of every play.

    Returns:
        ``(ids, codes)``: ``ids`` a str array of the distinct listeners in sorted order (index =
        listener index everywhere in the retrieval stage), ``codes`` an int64 array with one
        listener index per row of ``log.plays``.
    """
    listeners = pd.Series(np.asarray(log.listener_ids())).astype(str)
    codes, ids = pd.factorize(listeners, sort=True)
    return np.asarray(ids, dtype=str), codes.astype(np.int64)


def play_weights(
    log: ListeningLog,
    response_weights: tuple[float, float, float],
    half_life_days: float | None = None,
) -> np.ndarray:
    """Weight of every play: its response's weight, decayed by age when a half-life is given.

    Age is measured in days from the log's latest ``date``, so the newest plays keep their full
    weight and a play ``half_life_days`` older counts half.
    """
    weights = np.asarray(response_weights, dtype=np.float64)[np.asarray(log.response_codes(), dtype=np.int64)]
    if half_life_days is not None:
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, got {half_life_days}")
        dates = pd.to_datetime(log.plays["date"])
        if dates.isna().any():
            raise ValueError("recency decay needs a date on every play; some plays have none")
        age_days = (dates.max() - dates).dt.total_seconds().to_numpy() / 86_400.0
        weights = weights * np.power(0.5, age_days / half_life_days)
    return weights


def interaction_matrix(
    log: ListeningLog,
    response_weights: tuple[float, float, float] = (0.0, 0.5, 1.0),
    half_life_days: float | None = None,
    listener_index: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Summed play weights per (listener, track) as a CSR matrix.

    Args:
        log: the listening log; columns of the matrix are rows of ``log.tracks``.
        response_weights: weight of a (skip, listen, complete) play.
        half_life_days: recency half-life on the plays' ``date``; ``None`` for no decay.
        listener_index: ``(ids, codes)`` from :func:`listener_codes`, when the caller has them.

    Returns:
        ``(W, ids)``: ``W`` float32 CSR of shape ``(len(ids), len(log.tracks))`` with sorted
        indices and no stored zeros (a pair whose weights cancel, or whose plays all weigh 0,
        is left unobserved), and the listener ids of its rows.
    """
    ids, codes = listener_index if listener_index is not None else listener_codes(log)
    tracks = np.asarray(log.track_codes(), dtype=np.int64)
    weights = play_weights(log, response_weights, half_life_days)
    matrix = sp.coo_matrix((weights, (codes, tracks)), shape=(len(ids), len(log.tracks))).tocsr()
    # tocsr sums duplicates; the float64 sum then drops to float32, the dtype implicit fits in.
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix.astype(np.float32), ids


def confidence_matrix(weights: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Hu et al.'s confidence, signed as implicit 0.7 reads it, from summed play weights.

    ``c = 1 + alpha * |w|`` on every stored pair, negative where ``w < 0``. implicit's solver
    (``implicit/cpu/_als.pyx``) treats a stored value ``v > 0`` as preference 1 with confidence
    ``v`` and ``v < 0`` as preference 0 with confidence ``|v|``; unstored pairs are preference 0
    with confidence 1. Its own ``alpha`` only multiplies the stored values (``alpha * v``, no
    ``1 +``), so the retrieval stage fits with implicit's ``alpha=1`` and applies Hu et al.'s
    ``1 + alpha * r`` here.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    out = weights.astype(np.float32, copy=True)
    out.data = np.sign(out.data) * (1.0 + alpha * np.abs(out.data))
    return out
