"""``content_clusters``: content-based exploration by KMeans clusters of the audio features.

The listener's taste is the mean min-max scaled acoustic vector of the tracks they liked
(completed): in the world's listening log (:func:`agents.world_logs.world_log`) and in the session
so far. Candidates rank by cosine distance to it, nearest first. The listener's clusters are the
clusters (by the logistic-regression cluster classifier, :mod:`world_model.content_clusters`) of
those liked tracks; on every ``EXPLORATION_PERIOD``-th play (positions 5, 10, 15, ...: a share of
1 / ``EXPLORATION_PERIOD`` = 20% of plays) the agent plays the nearest candidate *outside* them, to
explore beyond the listener's current clusters (any candidate when none lies outside). The
schedule is deterministic, so the agent draws no random numbers. A listener with no liked track
yet has no taste vector: every candidate ties and the retrieval's best (lowest slot) is played.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import scipy.sparse as sp

from agents.base import Agent, Observation, masked_argmax
from agents.baselines import RowLookup, feature_block
from agents.world_logs import world_log
from musicenv.world import World
from world_model.content_clusters import ContentClusters, cosine_distance
from world_model.likeability import COMPLETE

EXPLORATION_PERIOD = 5
"""Every ``EXPLORATION_PERIOD``-th play explores outside the listener's clusters (a 20% share)."""


class ListenerTastes:
    """Each listener's liked tracks in the log: the sum of their scaled vectors, their count, their clusters."""

    def __init__(self, world: World, clusters: ContentClusters, scaled: np.ndarray, seed: int) -> None:
        log = world_log(world, seed=seed)
        liked = log.responses == COMPLETE
        shape = (len(world.user_ids), len(scaled))
        likes = sp.csr_matrix((np.ones(int(liked.sum())), (log.users[liked], log.tracks[liked])), shape=shape)
        likes.data[:] = 1.0  # each liked track once, however often it was completed
        self.sums = np.asarray(likes @ scaled)
        self.counts = np.asarray(likes.sum(axis=1)).ravel()
        track_clusters = clusters.clusters(world.track_features[:, feature_block(world, "acoustic")])
        one_hot = sp.csr_matrix(
            (np.ones(len(scaled)), (np.arange(len(scaled)), track_clusters)), shape=(len(scaled), clusters.k)
        )
        self.clusters = np.asarray((likes @ one_hot).todense()) > 0


_FITTED: weakref.WeakKeyDictionary[Any, dict[int, tuple[ContentClusters, ListenerTastes]]] = weakref.WeakKeyDictionary()
"""Clusters and tastes per world and seed: deterministic fits, never modified, so shared."""


class ContentClustersAgent(Agent):
    """The candidate nearest to the listener's liked-track mean, exploring other clusters on a schedule.

    See the module docstring. The clustering and the listeners' tastes are fitted once per world
    and seed, on first construction.

    Args:
        world: the world whose observations the agent reads (its ``"acoustic"`` track block).
        seed: seeds KMeans, the silhouette sample and the classifier's split.
    """

    name = "content_clusters"

    def __init__(self, world: World, seed: int = 0) -> None:
        super().__init__(world)
        self.seed = int(seed)
        self.acoustic = feature_block(world, "acoustic")
        self.users = RowLookup(world.user_features)
        fitted = _FITTED.setdefault(world, {})
        if self.seed not in fitted:
            features = np.asarray(world.track_features)[:, self.acoustic]
            clusters = ContentClusters.fit(features, seed=self.seed)
            fitted[self.seed] = (clusters, ListenerTastes(world, clusters, clusters.scale(features), self.seed))
        self.clusters, self.tastes = fitted[self.seed]

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        users = self.users(obs["user"])
        known = users >= 0
        history = obs["history"]
        liked = (obs["history_mask"] > 0) & (history[..., -3 + COMPLETE] > 0)
        played = self.clusters.scale(history[..., self.acoustic])
        sums = (played * liked[..., None]).sum(axis=1) + np.where(known[:, None], self.tastes.sums[users], 0.0)
        counts = liked.sum(axis=1) + np.where(known, self.tastes.counts[users], 0.0)
        taste = sums / np.maximum(counts, 1.0)[:, None]
        candidates = obs["candidates"][..., self.acoustic]
        distance = cosine_distance(taste, self.clusters.scale(candidates))
        k = self.clusters.k
        own = np.where(known[:, None], self.tastes.clusters[users], False)
        own |= (np.eye(k, dtype=bool)[self.clusters.clusters(history[..., self.acoustic])] & liked[..., None]).any(1)
        outside = ~np.take_along_axis(own, self.clusters.clusters(candidates), axis=1)
        mask = obs["action_mask"].astype(bool)
        position = obs["history_mask"].sum(axis=1).astype(np.int64) + 1
        explore = (position % EXPLORATION_PERIOD == 0) & (mask & outside).any(axis=1)
        return masked_argmax(-distance, np.where(explore[:, None], mask & outside, mask))

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}
