"""The session-end model: the probability that a listener leaves after each play.

Listeners leave sessions, and in real logs they leave above all after runs of skips (docs/design.md,
"Realism the real rows show"). Tomasi et al. (KDD 2023) end a simulated episode when the user
model says the listener is gone; this module is that part of the learned world.

Model
    A logistic regression on features of the session so far (:data:`SESSION_END_FEATURES`):
    the length of the current run of skips (one indicator per run length 1 to 4 and one for
    5 or more, plus the run length beyond 5, over 5, so that longer runs can keep rising),
    whether the last play was completed, the position
    and its square (scaled by :data:`~world_model.sessions.POSITION_SCALE`), and the shares of
    skips and of completions so far. Few, interpretable parameters: it cannot overfit a log of a
    few thousand sessions, and its hazard can be read off the weights.

Training data
    Every play of a train user's session is one example, labelled 1 when it is the session's
    last play and the session ended *before* the length cap; a session that reached the cap was
    cut by it, not left, so its last play is censored and dropped (as is every play at the cap).
    Evaluation users (:func:`musicenv.world.is_eval_user`) are never trained on. The fit is
    damped Newton's method on the L2-penalised mean log-likelihood: deterministic, no seed needed.

    Logs that keep only sessions of at least some length (the MSSD kept 10 to 20 plays) never
    show a listener leaving early; a model fitted on them learns a hazard of about zero there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from musicenv.world import COMPLETE, SKIP
from world_model.sessions import POSITION_SCALE, SessionTable

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

SESSION_END_FEATURES: tuple[str, ...] = (
    "intercept",
    "skip_run_1",
    "skip_run_2",
    "skip_run_3",
    "skip_run_4",
    "skip_run_5_plus",
    "skip_run_beyond_5",
    "last_complete",
    "position",
    "position_squared",
    "skip_share",
    "complete_share",
)
"""The regressors, in weight order."""

_TABLE_SIZE = 1024
"""Skip runs and positions up to this index are tabulated (longer ones read the last entry)."""

DEFAULT_L2 = 1e-4
"""Ridge penalty on the mean log-likelihood (not on the intercept): enough to keep the weights
of run lengths that never end a session finite, too little to bias the others."""


def session_end_features(
    position: np.ndarray, skip_run: np.ndarray, last_response: np.ndarray, response_counts: np.ndarray
) -> np.ndarray:
    """``(B, len(SESSION_END_FEATURES))`` float64 regressors after ``position`` plays.

    Args:
        position: ``(B,)`` plays so far (the 1-based position of the last play).
        skip_run: ``(B,)`` consecutive skips ending at the last play.
        last_response: ``(B,)`` code of the last response, ``-1`` before any play.
        response_counts: ``(B, 3)`` plays so far per response.
    """
    position = np.asarray(position, dtype=np.float64)
    skip_run = np.asarray(skip_run, dtype=np.int64)
    counts = np.asarray(response_counts, dtype=np.float64)
    played = np.maximum(counts.sum(axis=1), 1.0)
    scaled = position / POSITION_SCALE
    out = np.empty((len(position), len(SESSION_END_FEATURES)))
    out[:, 0] = 1.0
    for run in range(1, 5):
        out[:, run] = skip_run == run
    out[:, 5] = skip_run >= 5
    out[:, 6] = np.maximum(skip_run - 5, 0) / 5.0
    out[:, 7] = np.asarray(last_response) == COMPLETE
    out[:, 8] = scaled
    out[:, 9] = scaled**2
    out[:, 10] = counts[:, SKIP] / played
    out[:, 11] = counts[:, COMPLETE] / played
    return out


def session_end_examples(sessions: SessionTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plays of ``sessions`` as session-end examples.

    Returns:
        ``(features, labels, mask)``: ``features`` ``(S, L, n_features)`` after each play,
        ``labels`` ``(S, L)`` bool (the listener left after this play), and ``mask`` ``(S, L)``
        bool, the plays that are examples (stored, and not at the cap: censored plays are out).
    """
    n_sessions, length = sessions.tracks.shape
    responses = sessions.responses
    skip_run = np.zeros((n_sessions, length), dtype=np.int64)
    run = np.zeros(n_sessions, dtype=np.int64)
    for t in range(length):
        run = np.where(responses[:, t] == SKIP, run + 1, 0)
        skip_run[:, t] = run
    counts = np.stack([np.cumsum(responses == k, axis=1) for k in range(3)], axis=-1)
    features = session_end_features(
        sessions.positions.reshape(-1), skip_run.reshape(-1), responses.reshape(-1), counts.reshape(-1, 3)
    ).reshape(n_sessions, length, -1)
    last = np.arange(length)[None, :] == (sessions.n_plays - 1)[:, None]
    labels = last & sessions.ended_before_cap()[:, None]
    mask = sessions.play_mask() & (sessions.positions < sessions.max_session_length)
    return features, labels, mask


class SessionEndModel:
    """Logistic regression for the probability of leaving after a play (see the module docstring).

    Attributes:
        weights: ``(len(SESSION_END_FEATURES),)`` float64 coefficients.
    """

    def __init__(self, weights: np.ndarray) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(SESSION_END_FEATURES),):
            raise ValueError(f"expected {len(SESSION_END_FEATURES)} weights, got shape {weights.shape}")
        self.weights = weights
        # leave_probs' tables: the logit is intercept + f(run) + g(position) + h(last) + shares.
        index = np.arange(_TABLE_SIZE)
        zeros = np.zeros(_TABLE_SIZE)
        self._run_table = session_end_features(zeros, index, np.full(_TABLE_SIZE, -1), np.zeros((_TABLE_SIZE, 3)))
        self._run_table = self._run_table[:, 1:7] @ weights[1:7]
        scaled = index / POSITION_SCALE
        self._position_table = weights[0] + weights[8] * scaled + weights[9] * scaled**2
        self._last_table = np.array([0.0, 0.0, 0.0, weights[7]])
        self._share_weights = np.array([weights[10], 0.0, weights[11]])
        # The same tables as Python numbers, for leave_prob's scalar path.
        self._run_list = self._run_table.tolist()
        self._position_list = self._position_table.tolist()
        self._last_list = self._last_table.tolist()
        self._share_list = self._share_weights.tolist()

    @classmethod
    def fit(
        cls,
        log: ListeningLog | SessionTable,
        max_session_length: int = 20,
        l2: float = DEFAULT_L2,
        max_iterations: int = 50,
    ) -> SessionEndModel:
        """Fit on the train users' sessions of ``log`` (a log, or its :class:`SessionTable`).

        Args:
            log: the listening log.
            max_session_length: the length cap (ignored when ``log`` is already a table).
            l2: ridge penalty (:data:`DEFAULT_L2`).
            max_iterations: Newton steps at most; it stops earlier when a step moves no
                weight by more than 1e-10.
        """
        sessions = log if isinstance(log, SessionTable) else SessionTable.from_log(log, max_session_length)
        sessions = sessions.take(~sessions.eval_sessions())
        features, labels, mask = session_end_examples(sessions)
        x, y = features[mask], labels[mask].astype(np.float64)
        if len(y) == 0:
            raise ValueError("no plays of train users to fit the session-end model on")
        penalty = np.full(x.shape[1], l2)
        penalty[0] = 0.0

        def objective(w: np.ndarray) -> float:
            logits = x @ w
            return float(np.mean(np.logaddexp(0.0, logits) - y * logits) + 0.5 * penalty @ (w * w))

        weights = np.zeros(x.shape[1])
        # Start at the base rate, so the first Newton step is a small one.
        base = np.clip(y.mean(), 1e-6, 1 - 1e-6)
        weights[0] = np.log(base / (1 - base))
        current = objective(weights)
        for _ in range(max_iterations):
            p = 1.0 / (1.0 + np.exp(-(x @ weights)))
            gradient = x.T @ (p - y) / len(y) + penalty * weights
            hessian = (x * (p * (1 - p))[:, None]).T @ x / len(y) + np.diag(penalty + 1e-10)
            step = np.linalg.solve(hessian, gradient)
            # Damped Newton: halve the step until the penalised loss does not rise.
            scale = 1.0
            while scale > 1e-6 and objective(weights - scale * step) > current:
                scale *= 0.5
            weights = weights - scale * step
            current = objective(weights)
            if np.max(np.abs(scale * step)) < 1e-10:
                break
        return cls(weights)

    def leave_probs(
        self, position: np.ndarray, skip_run: np.ndarray, last_response: np.ndarray, response_counts: np.ndarray
    ) -> np.ndarray:
        """``(B,)`` float64 probability of leaving now (arguments of :func:`session_end_features`).

        The logit is read from per-run, per-position and per-response tables of the weights
        (an environment asks this once a step, for one session: a dozen small array operations
        instead of building the feature matrix); :func:`session_end_features` times
        :attr:`weights` is the same number (tested).
        """
        last = _TABLE_SIZE - 1
        counts = np.asarray(response_counts, dtype=np.float64)
        weights = self._share_weights
        # The shares term one product at a time (not a matrix product, whose summation may vary
        # with the batch), so a session's probability is the same bit for bit in any batch.
        shares = counts[:, 0] * weights[0] + counts[:, 1] * weights[1] + counts[:, 2] * weights[2]
        logits = (
            self._run_table.take(np.minimum(skip_run, last))
            + self._position_table.take(np.minimum(position, last))
            + self._last_table.take(np.asarray(last_response) + 1)
            + shares / np.maximum(counts.sum(axis=1), 1.0)
        )
        return expit(logits)

    def leave_prob(self, position: int, skip_run: int, last_response: int, response_counts: list[int]) -> float:
        """:meth:`leave_probs` of one session, in Python numbers (a single environment's step).

        Same tables and the same operations in the same order, so the same number bit for bit
        (tested).
        """
        last = _TABLE_SIZE - 1
        skips, listens, completes = response_counts
        shares = self._share_list
        logit = (
            self._run_list[min(skip_run, last)]
            + self._position_list[min(position, last)]
            + self._last_list[last_response + 1]
            + (skips * shares[0] + listens * shares[1] + completes * shares[2]) / max(skips + listens + completes, 1)
        )
        try:
            return 1.0 / (1.0 + math.exp(-logit))
        except OverflowError:  # exp(-logit) beyond float range: 0, as expit gives
            return 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the feature names and their weights."""
        return {"features": list(SESSION_END_FEATURES), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> SessionEndModel:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` when the features differ from this version's."""
        if tuple(payload.get("features", ())) != SESSION_END_FEATURES:
            raise ValueError(
                f"session-end weights are for features {payload.get('features')}, not {SESSION_END_FEATURES}"
            )
        return cls(np.asarray(payload["weights"], dtype=np.float64))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON (a plain file; callers put it inside an artifact folder)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SessionEndModel:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
