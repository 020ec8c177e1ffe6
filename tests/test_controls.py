"""Listener controls through the pool, the mask and the reward."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from test_agents import LayoutWorld

from musicenv.controls import HIDE_DAYS, ListenerControls, ListenerControlsWrapper, dont_suggest, folded_in_vector
from musicenv.env import ListeningSessionEnv
from musicenv.rewards import RewardConfig

POOL, LENGTH = 40, 12


def make_env(world: LayoutWorld, controls: ListenerControls, today: int = 0, **kwargs) -> ListenerControlsWrapper:
    env = ListeningSessionEnv(world=world, playlist_length=LENGTH, pool_size=POOL, **kwargs)
    return ListenerControlsWrapper(env, controls, today=today, similarity=0.5)


def test_hidden_tracks_leave_the_mask_for_thirty_days() -> None:
    world = LayoutWorld(seed=0)
    controls = ListenerControls()
    probe = make_env(world, controls)
    probe.reset(seed=3)
    user, pool = probe.unwrapped.user, probe.unwrapped.pool.copy()
    controls.hide(user, int(pool[0]), day=5)
    controls.hide(user, int(pool[7]), day=5)
    for today, hidden in ((4, False), (5, True), (5 + HIDE_DAYS - 1, True), (5 + HIDE_DAYS, False)):
        env = make_env(world, controls, today=today)
        obs, info = env.reset(seed=3)
        assert bool(obs["action_mask"][0] == 0) is hidden and bool(obs["action_mask"][7] == 0) is hidden
        assert info["withdrawn"] == (2 if hidden else 0)
        np.testing.assert_array_equal(obs["action_mask"].astype(bool), env.unwrapped.action_masks())
        if hidden:
            _, _, _, _, step_info = env.step(0)
            assert step_info["invalid_action"]


def test_two_skips_in_a_row_withdraw_similar_tracks_for_the_session() -> None:
    world = LayoutWorld(seed=0)
    env = make_env(world, ListenerControls())
    acoustic = slice(3, 5)
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        responses = []
        withdrawn_at = None
        for position in range(LENGTH):
            slot = int(np.flatnonzero(obs["action_mask"])[0])
            obs, _, terminated, truncated, info = env.step(slot)
            responses.append(info["response"])
            if info["withdrawn"]:
                withdrawn_at = position
                break
            if terminated or truncated:
                break
        if withdrawn_at is not None:
            break
    assert withdrawn_at is not None and responses[-2:] == ["skip", "skip"]
    base = env.unwrapped
    skipped = base.catalogue.track_features[
        [base._history_tracks[withdrawn_at - 1], base._history_tracks[withdrawn_at]]
    ]
    features = base.catalogue.track_features[np.maximum(base.pool, 0)][:, acoustic]
    centre = skipped[:, acoustic].mean(axis=0)
    cosine = features @ centre / (np.linalg.norm(features, axis=1) * np.linalg.norm(centre))
    masked = obs["action_mask"] == 0
    assert np.all(masked[cosine >= 0.5])  # every similar track is out of reach for the session
    assert obs["action_mask"].any()
    np.testing.assert_array_equal(obs["action_mask"].astype(bool), base.action_masks())


def test_dont_suggest_never_empties_the_mask() -> None:
    candidates = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2]])
    assert list(dont_suggest(candidates, np.array([[1.0, 0.0]]), np.ones(3, bool), 0.1)) == [0, 1]
    assert list(dont_suggest(candidates, np.array([[0.0, 1.0]]), np.array([True, True, False]), 0.5)) == []


def test_a_skipped_boosted_track_is_not_boosted_again_for_that_listener() -> None:
    world = LayoutWorld(seed=0)
    controls = ListenerControls()
    reward = RewardConfig(discovery_boost=3.0, discovery_popularity_quantile=0.99)  # ~every track boosted
    env = make_env(world, controls, reward=reward)
    for seed in range(60):
        env.reset(seed=seed)
        _, rewarded, _, _, info = env.step(0)
        if (
            info["response"] == "skip"
            and env.unwrapped.catalogue.track_boosts[info["track_index"]] == reward.discovery_boost
        ):
            break
    user, track = env.unwrapped.user, info["track_index"]
    assert controls.unboosted[user] == {track}
    # The same listener and pool again: the same track, now unboosted (a skip is worth 0 either way,
    # so look for a seed where the common random numbers make it a listen or a completion).
    for seed in range(60, 400):
        env.reset(seed=seed)
        if env.unwrapped.user != user or track not in env.unwrapped.pool:
            continue
        slot = int(np.flatnonzero(env.unwrapped.pool == track)[0])
        _, rewarded, _, _, info = env.step(slot)
        if info["response"] != "skip":
            value = reward.response_values[["skip", "listen", "complete"].index(info["response"])]
            assert rewarded == value  # not value * 3
            return
    raise AssertionError("the listener never met the track again with a non-skip response")


def test_excluded_playlist_leaves_the_taste_counts() -> None:
    controls = ListenerControls()
    counts = sp.csr_matrix(np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0]]))
    controls.exclude_from_taste(0, np.array([0, 2]))
    np.testing.assert_array_equal(controls.taste_counts(counts).toarray(), [[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])


def test_folded_in_vector_solves_the_als_user_step() -> None:
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(30, 4))
    tracks, counts = np.array([2, 5, 9]), np.array([1.0, 3.0, 2.0])
    vector = folded_in_vector(factors, tracks, counts, alpha=10.0, regularization=0.5)
    confidence, preference = np.ones(30), np.zeros(30)
    confidence[tracks], preference[tracks] = 1 + 10.0 * counts, 1.0
    # The gradient of sum_i c_i (p_i - x . y_i)^2 + lambda |x|^2 vanishes at the solution.
    residual = preference - factors @ vector
    gradient = -2 * factors.T @ (confidence * residual) + 2 * 0.5 * vector
    np.testing.assert_allclose(gradient, 0.0, atol=1e-3)


def test_excluded_playlist_moves_the_pool_away_from_its_tracks(real_worlds) -> None:
    world = real_worlds[0]
    controls = ListenerControls()
    env = ListenerControlsWrapper(ListeningSessionEnv(world=world, pool_size=POOL), controls, similarity=0.99)
    env.reset(seed=5)
    user, before = env.unwrapped.user, env.unwrapped.pool.copy()
    heard = world.retrieval.heard[user]
    playlist = heard.indices[np.argsort(-heard.data, kind="stable")[: max(1, len(heard.indices) // 2)]]
    controls.exclude_from_taste(user, playlist)
    obs, _ = env.reset(seed=5)
    after = env.unwrapped.pool
    assert env.unwrapped.user == user and not np.array_equal(after, before)
    track_vectors = world.retrieval.track_vectors
    centre = track_vectors[playlist].mean(axis=0)
    assert (track_vectors[after] @ centre).mean() < (track_vectors[before] @ centre).mean()
    np.testing.assert_array_equal(obs["candidates"], world.track_features[after])
    assert not np.isin(after, world.retrieval.blocked[user].indices).any()
