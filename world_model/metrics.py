"""Metrics of a user-response model: AUC, log-loss, three-class ECE and the lift ratio.

These are the metrics of docs/design.md ("Metrics"), used by the training report, the benchmark
(``benchmarks/user_model.py``) and the tests:

- **AUC one-vs-rest** for *skip* (score ``P(skip)``, positives the skipped plays) and for
  *complete* (score ``P(complete)``), as Tomasi et al. (KDD 2023) report the accuracy of their
  user model by how well it ranks plays by response.
- **Log-loss** in nats, the mean of ``-log P(observed response)``.
- **ECE** for three classes: per class, 15 equal-width bins of the predicted probability of that
  class, the bin-weighted ``|mean predicted - observed frequency|``, averaged over the classes.
- **Lift ratio** ``(auc - 0.5) / (oracle_auc - 0.5)``: how much of the ground truth's ranking
  power above chance a model recovers. It is the honest companion of ``auc / oracle_auc``,
  which looks close to 1 whenever both AUCs are modest.
"""

from __future__ import annotations

import numpy as np

from musicenv.world import COMPLETE, SKIP

ECE_BINS = 15
"""Equal-width bins per class for :func:`expected_calibration_error` (docs/design.md, "Metrics")."""

PROBABILITY_FLOOR = 1e-12
"""Probabilities are clipped to at least this before taking logs, so a confident miss costs
about 27.6 nats instead of infinity."""


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Computed from ranks (the Mann-Whitney statistic) with ties counted one half, so it is exact
    and ``O(n log n)``.

    Args:
        scores: ``(n,)`` real scores, higher meaning "more likely positive".
        labels: ``(n,)`` booleans (or 0/1).

    Returns:
        The AUC, or ``nan`` when the labels are all positive or all negative.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average rank (1-based) of each group of tied scores.
    _, group_start, group_size = np.unique(sorted_scores, return_index=True, return_counts=True)
    group_rank = group_start + (group_size + 1) / 2.0
    ranks = np.empty(labels.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, group_size)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(probs: np.ndarray, responses: np.ndarray) -> float:
    """Mean negative log-likelihood in nats of the observed ``responses`` under ``probs`` ``(n, C)``."""
    probs = np.asarray(probs, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.int64)
    chosen = probs[np.arange(len(responses)), responses]
    return float(-np.mean(np.log(np.clip(chosen, PROBABILITY_FLOOR, 1.0))))


def binary_log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood in nats of 0/1 ``labels`` under ``P(label = 1) = probs``."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    labels = np.asarray(labels).astype(bool)
    return float(-np.mean(np.where(labels, np.log(probs), np.log1p(-probs))))


def expected_calibration_error(probs: np.ndarray, responses: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Three-class (in general C-class) expected calibration error, averaged over the classes.

    For each class ``k``, the plays are binned by ``probs[:, k]`` into ``n_bins`` equal-width
    bins of [0, 1] (1.0 falls in the last bin); each non-empty bin contributes
    ``|mean probs[:, k] - mean (responses == k)|`` weighted by its share of the plays. The
    result is the mean of the per-class errors.
    """
    probs = np.asarray(probs, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.int64)
    n, n_classes = probs.shape
    errors = []
    for k in range(n_classes):
        predicted = probs[:, k]
        observed = (responses == k).astype(np.float64)
        bins = np.minimum((predicted * n_bins).astype(np.int64), n_bins - 1)
        count = np.bincount(bins, minlength=n_bins)
        gap = np.abs(
            np.bincount(bins, weights=predicted, minlength=n_bins)
            - np.bincount(bins, weights=observed, minlength=n_bins)
        )
        # The per-bin |sum predicted - sum observed| / n is the bin weight times the gap of means.
        errors.append(gap[count > 0].sum() / n)
    return float(np.mean(errors))


def lift_ratio(model_auc: float, oracle_auc: float) -> float:
    """``(model_auc - 0.5) / (oracle_auc - 0.5)``: the share of the oracle's lift over chance."""
    return float((model_auc - 0.5) / (oracle_auc - 0.5))


def response_metrics(probs: np.ndarray, responses: np.ndarray) -> dict[str, float]:
    """``auc_skip``, ``auc_complete``, ``logloss`` and ``ece`` of ``(n, 3)`` probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.int64)
    return {
        "auc_skip": auc(probs[:, SKIP], responses == SKIP),
        "auc_complete": auc(probs[:, COMPLETE], responses == COMPLETE),
        "logloss": log_loss(probs, responses),
        "ece": expected_calibration_error(probs, responses),
    }
