"""The likeability classifier: it learns who likes what, on held-out listeners, and never trains on them."""

from __future__ import annotations

import numpy as np
import pytest
from test_agents import LayoutWorld

from agents.likeability import listener_plays
from agents.world_logs import world_log
from world_model.likeability import LikeabilityClassifier, LikeabilityConfig, classification_metrics


def taste_plays(n_users: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plays of listeners with a 3-d taste: liked when the taste agrees with the track's 3 features."""
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(n_users, 3))
    listener = rng.integers(0, n_users, 6000)
    tracks = rng.normal(size=(6000, 3))
    agreement = (users[listener] * tracks).sum(axis=1)
    likes = rng.random(6000) < 1 / (1 + np.exp(-3 * agreement))
    return np.concatenate([users[listener], tracks], axis=1), likes


@pytest.fixture(scope="module")
def classifier() -> LikeabilityClassifier:
    inputs, likes = taste_plays(200, seed=0)
    return LikeabilityClassifier.fit(inputs, likes, LikeabilityConfig(hidden_size=32, epochs=15, seed=1))


def test_predicts_the_likes_of_listeners_it_never_saw(classifier: LikeabilityClassifier) -> None:
    inputs, likes = taste_plays(100, seed=7)  # other listeners, other tracks
    metrics = classification_metrics(classifier.like_probs(inputs), likes)
    assert metrics["auc"] > 0.8
    assert metrics["accuracy"] > max(metrics["like_rate"], 1 - metrics["like_rate"]) + 0.1
    assert classifier.losses[-1] < classifier.losses[0]


def test_fit_is_seeded_and_state_round_trips(classifier: LikeabilityClassifier) -> None:
    inputs, likes = taste_plays(200, seed=0)
    again = LikeabilityClassifier.fit(inputs, likes, LikeabilityConfig(hidden_size=32, epochs=15, seed=1))
    np.testing.assert_array_equal(again.like_probs(inputs[:50]), classifier.like_probs(inputs[:50]))
    rebuilt = LikeabilityClassifier.from_state(*classifier.state())
    np.testing.assert_array_equal(rebuilt.like_probs(inputs[:50]), classifier.like_probs(inputs[:50]))


def test_metrics_of_a_perfect_and_a_constant_classifier() -> None:
    likes = np.array([True, False, True, False, False])
    assert classification_metrics(likes.astype(float), likes) == {"accuracy": 1.0, "auc": 1.0, "like_rate": 0.4}
    assert classification_metrics(np.zeros(5), likes)["accuracy"] == 0.6


@pytest.mark.parametrize("kind", ["simulated", "learned"])
def test_training_plays_exclude_the_evaluation_listeners(kind: str, real_worlds) -> None:
    world = LayoutWorld(seed=0) if kind == "simulated" else real_worlds[0]
    log = world_log(world)
    train_inputs, _ = listener_plays(world, log, held_out=False)
    heldout_inputs, _ = listener_plays(world, log, held_out=True)
    eval_rows = {tuple(row) for row in world.user_features[world.eval_users]}
    assert len(train_inputs) and (kind == "simulated" or len(heldout_inputs))  # simulations draw training users
    assert not any(tuple(row) in eval_rows for row in train_inputs[:, : world.user_features.shape[1]])
    assert all(tuple(row) in eval_rows for row in heldout_inputs[:, : world.user_features.shape[1]])
