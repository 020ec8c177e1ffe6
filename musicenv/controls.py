"""Listener controls: what a listener tells the service, applied through the session's pool and mask.

Streaming services let listeners steer recommendations; three of Spotify's controls and one of
its rules are modelled here, each through the mask (as blocked tracks already are: a withdrawn
slot cannot be played, :meth:`ListeningSessionEnv.withdraw <musicenv.env.ListeningSessionEnv.withdraw>`)
or through the reward:

"Don't suggest" after two skips in a row
    When the listener skips two tracks in a row, the candidates that sound like them (cosine
    similarity of their acoustic features to the mean of the two skipped tracks' at least
    ``similarity``) are withdrawn for the rest of the session: negative feedback demotes similar
    tracks. At least one playable slot is always left (the least similar ones are kept).

Hide for 30 days
    :meth:`ListenerControls.hide` records (listener, track, day); for ``HIDE_DAYS`` days from that
    day the track is withdrawn from the listener's pools at the start of every session
    (``ListenerControlsWrapper(today=...)`` gives the session's day).

Excluding a playlist from the taste profile
    :meth:`ListenerControls.exclude_from_taste` records the tracks of a playlist the listener
    wants kept out of their taste; :meth:`ListenerControls.taste_counts` is the play vectors
    without them. In a world with a retrieval stage, the wrapper ranks such a listener's pool by
    a taste vector re-solved without those plays: the ALS user step of Hu, Koren & Volinsky
    (2008, eq. 4) with the track factors fixed, on the listener's remaining play counts
    (:func:`folded_in_vector`; confidence ``1 + alpha * count``, the retrieval's ``alpha`` and
    ``regularization``), blocked (and, with the filter, explicit) tracks removed, and the
    session restarted on it before its first play.

Discovery Mode's rule
    With a discovery boost (``RewardConfig(discovery_boost > 1)``), a boosted track that the
    listener skips once is not boosted again for that listener: the wrapper records the skip and
    takes the boost out of that track's later rewards for that listener.

Usage::

    controls = ListenerControls()
    controls.hide(user=12, track=345, day=0)
    env = ListenerControlsWrapper(ListeningSessionEnv(world), controls, today=10)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.sparse as sp

from musicenv.world import RESPONSES

HIDE_DAYS = 30
"""Days a hidden track stays out of the listener's pools."""
SKIP_RUN = 2
"""Skips in a row that trigger "don't suggest"."""


class ListenerControls:
    """Every listener's controls, kept across sessions (per listener index of the world).

    Attributes:
        hidden: per listener, the day each hidden track was hidden.
        unboosted: per listener, the boosted tracks they skipped (boost revoked).
        excluded: per listener, tracks excluded from their taste profile.
    """

    def __init__(self) -> None:
        self.hidden: dict[int, dict[int, int]] = defaultdict(dict)
        self.unboosted: dict[int, set[int]] = defaultdict(set)
        self.excluded: dict[int, set[int]] = defaultdict(set)

    def hide(self, user: int, track: int, day: int) -> None:
        """Hide ``track`` from ``user``'s pools for ``HIDE_DAYS`` days from ``day``."""
        self.hidden[user][track] = day

    def hidden_tracks(self, user: int, today: int) -> np.ndarray:
        """The tracks ``user`` has hidden and that are still hidden on ``today`` (int64)."""
        return np.array([t for t, day in self.hidden[user].items() if day <= today < day + HIDE_DAYS], dtype=np.int64)

    def exclude_from_taste(self, user: int, tracks: np.ndarray) -> None:
        """Keep a playlist's ``tracks`` out of ``user``'s taste profile."""
        self.excluded[user].update(int(t) for t in np.asarray(tracks).ravel())

    def taste_counts(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Play vectors ``(n_users, n_tracks)`` without each listener's excluded tracks."""
        counts = sp.lil_matrix(counts, copy=True)
        for user, tracks in self.excluded.items():
            if tracks:
                counts[user, sorted(tracks)] = 0
        out = sp.csr_matrix(counts)
        out.eliminate_zeros()
        return out


def folded_in_vector(
    track_vectors: np.ndarray, tracks: np.ndarray, counts: np.ndarray, alpha: float, regularization: float
) -> np.ndarray:
    """A listener's ALS vector from their plays with the track factors fixed (Hu et al. 2008, eq. 4).

    ``x = (Y^T Y + Y^T (C - I) Y + lambda I)^-1 Y^T C p`` with ``p = 1`` on the played ``tracks``
    and confidence ``c = 1 + alpha * counts`` there (1 elsewhere).
    """
    factors = np.asarray(track_vectors, dtype=np.float64)
    played = factors[np.asarray(tracks, dtype=np.int64)]
    confidence = 1.0 + alpha * np.asarray(counts, dtype=np.float64)
    gram = factors.T @ factors + (played.T * (confidence - 1.0)) @ played
    gram += regularization * np.eye(factors.shape[1])
    return np.linalg.solve(gram, played.T @ confidence).astype(np.float32)


def dont_suggest(candidates: np.ndarray, skipped: np.ndarray, playable: np.ndarray, similarity: float) -> np.ndarray:
    """Slots to withdraw after a skip run: playable candidates similar to the skipped tracks.

    Args:
        candidates: ``(M, d)`` the pool's acoustic features.
        skipped: ``(k, d)`` the skipped tracks' acoustic features.
        playable: ``(M,)`` bool, slots playable now.
        similarity: cosine similarity to the skipped tracks' mean at or above which a slot goes.

    Returns:
        int64 slots; never all the playable ones (the least similar playable slot stays).
    """
    centre = skipped.mean(axis=0)
    norms = np.linalg.norm(candidates, axis=1) * np.linalg.norm(centre)
    cosine = np.divide(candidates @ centre, norms, out=np.zeros(len(candidates)), where=norms > 0)
    withdrawn = playable & (cosine >= similarity)
    if withdrawn.sum() == playable.sum() and playable.any():
        withdrawn[np.flatnonzero(playable)[np.argmin(cosine[playable])]] = False
    return np.flatnonzero(withdrawn)


class ListenerControlsWrapper(gym.Wrapper):
    """``ListeningSession-v0`` with the listeners' controls applied (module docstring).

    Args:
        env: a :class:`~musicenv.env.ListeningSessionEnv` (``observation="full"``).
        controls: the listeners' :class:`ListenerControls` (shared across sessions and envs).
        today: the day the sessions happen (for hidden tracks).
        similarity: the "don't suggest" cosine threshold on the acoustic features.
        acoustic: the acoustic columns of the track features (default: the world's ``"acoustic"`` block).

    ``info["withdrawn"]`` counts the slots each step (and reset) withdrew.
    """

    def __init__(
        self,
        env: gym.Env,
        controls: ListenerControls,
        today: int = 0,
        similarity: float = 0.8,
        acoustic: slice | None = None,
    ) -> None:
        super().__init__(env)
        self.controls = controls
        self.today = int(today)
        self.similarity = float(similarity)
        base = env.unwrapped
        if acoustic is None:
            start, stop = base.world.track_feature_layout["acoustic"]
            acoustic = slice(start, stop)
        self.acoustic = acoustic
        self._skips: list[int] = []

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        base = self.env.unwrapped
        self._skips = []
        retrieval = getattr(base.world, "retrieval", None)
        if self.controls.excluded[base.user] and retrieval is not None:
            obs = base.replace_pool(self.taste_pool(base.user, retrieval, base.pool_size, base.explicit_filter))
        hidden = np.flatnonzero(np.isin(base.pool, self.controls.hidden_tracks(base.user, self.today)))
        base.withdraw(hidden)
        obs["action_mask"][hidden] = 0
        info["withdrawn"] = len(hidden)
        return obs, info

    def taste_pool(self, user: int, retrieval: Any, size: int, explicit_filter: bool) -> np.ndarray:
        """``(size,)`` the listener's pool ranked by their taste without the excluded playlist (module docstring)."""
        row = retrieval.heard[user]
        kept_plays = ~np.isin(row.indices, sorted(self.controls.excluded[user]))
        config = retrieval.config
        vector = folded_in_vector(
            retrieval.track_vectors, row.indices[kept_plays], row.data[kept_plays], config.alpha, config.regularization
        )
        allowed = np.ones(retrieval.n_tracks, dtype=bool)
        allowed[retrieval.blocked[user].indices] = False
        if explicit_filter:
            allowed &= ~retrieval.explicit
        scores = np.where(allowed, retrieval.track_vectors @ vector, -np.inf)
        ranked = np.argsort(-scores, kind="stable")[:size]
        pool = np.full(size, -1, dtype=np.int64)
        kept = ranked[allowed[ranked]]
        pool[: len(kept)] = kept
        return pool

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        base = self.env.unwrapped
        user = base.user
        obs, reward, terminated, truncated, info = self.env.step(action)
        track, response = info["track_index"], info["response"]
        boost = base.reward_config.discovery_boost
        if response is not None and boost != 1.0 and base.catalogue.track_boosts[track] == boost:
            if track in self.controls.unboosted[user]:
                # The boost was revoked by an earlier skip: the play earns its unboosted value.
                value = float(base.reward_config.response_values[RESPONSES.index(response)])
                reward = reward - value * (boost - 1.0)
            elif response == "skip":
                self.controls.unboosted[user].add(int(track))
        withdrawn = np.empty(0, dtype=np.int64)
        if response is not None:
            self._skips = [*self._skips, int(track)][-SKIP_RUN:] if response == "skip" else []
            if len(self._skips) == SKIP_RUN and not (terminated or truncated):
                features = base.catalogue.track_features
                pool = np.maximum(base.pool, 0)
                withdrawn = dont_suggest(
                    features[pool][:, self.acoustic],
                    features[self._skips][:, self.acoustic],
                    base.action_masks(),
                    self.similarity,
                )
                base.withdraw(withdrawn)
                obs["action_mask"][withdrawn] = 0
                self._skips = []
        info["withdrawn"] = len(withdrawn)
        return obs, float(reward), terminated, truncated, info
