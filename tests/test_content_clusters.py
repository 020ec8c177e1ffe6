"""Content clusters: k by silhouette, the cluster classifier, and the agent's scheduled exploration."""

from __future__ import annotations

import numpy as np
import pytest
from test_agents import POOL, LayoutWorld, vector_env

from agents.content_clusters import EXPLORATION_PERIOD, ContentClustersAgent
from world_model.content_clusters import ContentClusters, cosine_distance


def test_silhouette_finds_the_true_number_of_clusters_and_the_classifier_learns_them() -> None:
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 10, size=(6, 4)) * np.array([1.0, 100.0, 0.01, 5.0])  # features on any scale
    labels = rng.integers(0, 6, 1200)
    features = centres[labels] + rng.normal(size=(1200, 4)) * np.array([1.0, 100.0, 0.01, 5.0]) * 0.05
    clusters = ContentClusters.fit(features, k_range=(3, 6, 9), seed=0)
    assert clusters.k == 6 and set(clusters.silhouettes) == {3, 6, 9}
    assert clusters.inertias[3] > clusters.inertias[6] > clusters.inertias[9]
    assert clusters.classifier_accuracy > 0.95
    scaled = clusters.scale(features)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    # The classifier's clusters are KMeans' (up to the label permutation): one cluster per true blob.
    predicted = clusters.clusters(features)
    assert all(len(np.unique(predicted[labels == blob])) == 1 for blob in range(6))


def test_cosine_distance() -> None:
    taste = np.array([[1.0, 0.0], [0.0, 0.0]])
    tracks = np.array([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 1.0], [1.0, 0.0]]])
    np.testing.assert_allclose(cosine_distance(taste, tracks), [[0.0, 1.0], [1.0, 1.0]])


@pytest.fixture(scope="module")
def world() -> LayoutWorld:
    return LayoutWorld(seed=0)


def test_plays_the_nearest_candidate_and_explores_outside_the_listeners_clusters_on_schedule(
    world: LayoutWorld,
) -> None:
    agent = ContentClustersAgent(world)
    env = vector_env(world, None, n=6)
    obs, _ = env.reset(seed=3)
    users = agent.users(obs["user"])
    candidates = obs["candidates"][..., agent.acoustic]
    taste = agent.tastes.sums[users] / np.maximum(agent.tastes.counts[users], 1)[:, None]
    distance = cosine_distance(taste, agent.clusters.scale(candidates))
    nearest = np.where(obs["action_mask"] > 0, distance, np.inf).argmin(axis=1)
    np.testing.assert_array_equal(agent.act(obs), nearest)

    # The same listeners at the first exploring position, after plays that were not liked.
    later = {**obs, "history_mask": np.zeros_like(obs["history_mask"])}
    later["history_mask"][:, : EXPLORATION_PERIOD - 1] = 1
    picked = agent.act(later)
    cluster_of = agent.clusters.clusters(candidates)
    outside = ~np.take_along_axis(agent.tastes.clusters[users], cluster_of, axis=1) & (obs["action_mask"] > 0)
    rows = np.arange(len(users))
    assert outside.any()
    assert np.all(outside[rows, picked] | ~outside.any(axis=1))
    assert not np.array_equal(picked[outside.any(axis=1)], nearest[outside.any(axis=1)])
    assert candidates.shape[1] == POOL
