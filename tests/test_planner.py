"""The lookahead planner, the exact optimum and the paired comparison, on small fake models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fakes import FakeGroundTruth, FakeWorld, SequencingSessionModel

from agents.metrics import mean_interval, paired_difference
from agents.optimum import optimal_value, policy_value
from agents.planner import (
    LearnedPlanner,
    PlannerConfig,
    TruthPlanner,
    greedy_policy,
    plan,
    planner_policy,
)
from musicenv.env import ListeningSessionEnv
from musicenv.rewards import RewardConfig
from musicenv.world import Contexts, SessionState, take_state

REWARD = np.array([0.0, 0.5, 1.0])


def _instances(model: SequencingSessionModel, n: int, m: int, seed: int = 1) -> tuple[SessionState, np.ndarray]:
    rng = np.random.default_rng(seed)
    contexts = Contexts(np.zeros(n, np.int8), np.zeros(n, np.int8), rng.normal(size=n).astype(np.float32))
    state = model.initial_state(np.arange(n), contexts)
    pools = np.stack([rng.choice(len(model.genre), m, replace=False) for _ in range(n)])
    return state, pools


def _brute_force(model: SequencingSessionModel, state: SessionState, pool: np.ndarray, length: int) -> float:
    """Optimal expected return by plain recursion, one session and one model call at a time."""

    def value(state: SessionState, left: list[int], steps: int) -> float:
        if steps == 0 or not left:
            return 0.0
        best = -np.inf
        for track in left:
            probs = model.response_probs(state, np.array([[track]]))[0, 0]
            q = 0.0
            for response in range(3):
                after = model.advance(state, np.array([track]), np.array([response], np.int8))
                stay = 1.0 - model.leave_probs(after)[0]
                rest = [t for t in left if t != track]
                q += probs[response] * (REWARD[response] + stay * value(after, rest, steps - 1))
            best = max(best, q)
        return best

    return value(state, list(pool), length)


def _brute_force_greedy(model: SequencingSessionModel, state: SessionState, pool: np.ndarray, length: int) -> float:
    """Expected return of greedy by expected reward, by plain recursion."""

    def value(state: SessionState, left: list[int], steps: int) -> float:
        if steps == 0 or not left:
            return 0.0
        probs = model.response_probs(state, np.array([left]))[0]
        pick = int(np.argmax(probs @ REWARD))
        rest = left[:pick] + left[pick + 1 :]
        q = 0.0
        for response in range(3):
            after = model.advance(state, np.array([left[pick]]), np.array([response], np.int8))
            stay = 1.0 - model.leave_probs(after)[0]
            q += probs[pick, response] * (REWARD[response] + stay * value(after, rest, steps - 1))
        return q

    return value(state, list(pool), length)


def _row(state: SessionState, b: int) -> SessionState:
    return {key: value[b : b + 1] for key, value in state.items()}


def test_optimal_value_equals_brute_force() -> None:
    model = SequencingSessionModel()
    state, pools = _instances(model, n=4, m=5)
    pools[3, 4] = -1  # padding: a catalogue smaller than the pool
    got = optimal_value(model, state, pools, 3, REWARD)
    want = [_brute_force(model, _row(state, b), pools[b][pools[b] >= 0], 3) for b in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Chunking (one instance per batch) changes nothing; a length past the pool is cut at the pool.
    np.testing.assert_allclose(optimal_value(model, state, pools, 3, REWARD, max_nodes=1), got, rtol=1e-12)
    whole = optimal_value(model, _row(state, 3), pools[3:4], 9, REWARD)
    np.testing.assert_allclose(whole[0], _brute_force(model, _row(state, 3), pools[3][:4], 4), rtol=1e-12)


def test_policy_value_equals_brute_force() -> None:
    model = SequencingSessionModel()
    state, pools = _instances(model, n=3, m=6)
    got = policy_value(model, state, pools, 4, REWARD, greedy_policy(model, REWARD))
    want = [_brute_force_greedy(model, _row(state, b), pools[b], 4) for b in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_policy_value_rejects_unavailable_choice() -> None:
    model = SequencingSessionModel()
    state, pools = _instances(model, n=2, m=4)
    pools[:, 0] = -1
    with pytest.raises(ValueError, match="not available"):
        policy_value(model, state, pools, 2, REWARD, lambda s, p, a, r: np.zeros(len(p), np.int64))


def test_full_width_full_depth_planner_is_optimal() -> None:
    model = SequencingSessionModel()
    state, pools = _instances(model, n=6, m=6)
    length = 4
    optimum = optimal_value(model, state, pools, length, REWARD)
    config = PlannerConfig(depth=length, width=6, leaf="none")
    _, planned = plan(model, state, pools, pools >= 0, np.full(6, length), REWARD, config)
    np.testing.assert_allclose(planned, optimum, rtol=1e-12)
    achieved = policy_value(model, state, pools, length, REWARD, planner_policy(model, REWARD, config))
    np.testing.assert_allclose(achieved, optimum, rtol=1e-12)


def test_depth_one_is_greedy_and_respects_the_mask() -> None:
    model = SequencingSessionModel()
    state, pools = _instances(model, n=5, m=8)
    rng = np.random.default_rng(3)
    available = rng.random((5, 8)) < 0.6
    available[:, 2] = True
    probs = model.response_probs(state, np.where(available, pools, -1))
    want = np.argmax(np.where(available, probs @ REWARD, -np.inf), axis=1)
    for config in (PlannerConfig(depth=1, width=1, leaf="none"), PlannerConfig(depth=1, width=3)):
        slots, values = plan(model, state, pools, available, np.full(5, 10), REWARD, config)
        if config.leaf == "none":
            np.testing.assert_array_equal(slots, want)
            np.testing.assert_allclose(values, (probs @ REWARD)[np.arange(5), want])
        assert available[np.arange(5), slots].all()
    # With one play left every depth is greedy: nothing comes after it.
    slots, _ = plan(model, state, pools, available, np.ones(5, np.int64), REWARD, PlannerConfig(depth=3))
    np.testing.assert_array_equal(slots, want)
    with pytest.raises(ValueError, match="available slot"):
        plan(model, state, pools, np.zeros((5, 8), bool), np.ones(5, np.int64), REWARD)


def test_shortlist_scores_fewer_tracks_below_the_root() -> None:
    model = SequencingSessionModel(n_tracks=16)
    state, pools = _instances(model, n=8, m=10)
    remaining = np.full(8, 5)
    full = plan(model, state, pools, pools >= 0, remaining, REWARD, PlannerConfig(depth=3, width=3, shortlist=None))
    # A shortlist as long as the pool is the full search, exactly.
    same = plan(model, state, pools, pools >= 0, remaining, REWARD, PlannerConfig(depth=3, width=3, shortlist=10))
    np.testing.assert_array_equal(same[0], full[0])
    np.testing.assert_allclose(same[1], full[1], rtol=1e-12)
    # A short one is widened to width + depth tracks, so plans never run out, and plays an available slot.
    available = np.ones((8, 10), dtype=bool)
    available[:, :4] = False
    slots, values = plan(model, state, pools, available, remaining, REWARD, PlannerConfig(3, 3, shortlist=1))
    assert available[np.arange(8), slots].all() and np.isfinite(values).all()
    with pytest.raises(ValueError, match="shortlist"):
        PlannerConfig(shortlist=0)


def test_planner_beats_greedy_when_sequencing_matters() -> None:
    model = SequencingSessionModel(n_tracks=16)
    state, pools = _instances(model, n=30, m=7)
    length = 4
    optimum = optimal_value(model, state, pools, length, REWARD)
    greedy = policy_value(model, state, pools, length, REWARD, greedy_policy(model, REWARD))
    planner = policy_value(model, state, pools, length, REWARD, planner_policy(model, REWARD))
    assert np.all(optimum >= planner - 1e-12) and np.all(optimum >= greedy - 1e-12)
    assert planner.mean() > greedy.mean()
    # The planner closes most of greedy's gap to the optimum.
    assert (optimum - planner).mean() < 0.5 * (optimum - greedy).mean()


def test_planner_equals_greedy_without_sequential_effects() -> None:
    model = SequencingSessionModel(n_tracks=16, satiation=0.0, mood=0.0, leave_per_skip=0.0)
    state, pools = _instances(model, n=10, m=6)
    length = 4
    greedy = policy_value(model, state, pools, length, REWARD, greedy_policy(model, REWARD))
    planner = policy_value(model, state, pools, length, REWARD, planner_policy(model, REWARD))
    optimum = optimal_value(model, state, pools, length, REWARD)
    np.testing.assert_allclose(planner, greedy, rtol=1e-12)
    np.testing.assert_allclose(greedy, optimum, rtol=1e-12)


def _sampled_returns(
    model: SequencingSessionModel,
    state: SessionState,
    pools: np.ndarray,
    length: int,
    policy: Any,
    uniforms: np.ndarray,
) -> np.ndarray:
    """Returns of ``policy`` on episodes whose luck is ``uniforms`` ``(E, length, 2)``, as the env draws it.

    Episode ``e`` replays instance ``e % B``; its response at play ``t`` is the inverse CDF of the
    response probabilities at ``uniforms[e, t, 0]``, and the listener leaves after it when
    ``uniforms[e, t, 1]`` is below the leaving probability (docs/design.md, "Common random numbers").
    """
    episodes = len(uniforms)
    rows = np.arange(episodes) % len(pools)
    state, pools = take_state(state, rows), pools[rows]
    available = pools >= 0
    alive = np.ones(episodes, dtype=bool)
    returns = np.zeros(episodes)
    for t in range(length):
        live = np.flatnonzero(alive)
        if not len(live):
            break
        sub = take_state(state, live)
        slots = policy(sub, pools[live], available[live], np.full(len(live), length - t))
        tracks = pools[live, slots]
        probs = model.response_probs(sub, tracks[:, None])[:, 0]
        responses = (uniforms[live, t, 0, None] > np.cumsum(probs, axis=1)[:, :2]).sum(axis=1).astype(np.int8)
        returns[live] += REWARD[responses]
        after = model.advance(sub, tracks, responses)
        for key, value in after.items():
            state[key] = state[key].copy()
            state[key][live] = value
        available[live, slots] = False
        alive[live[uniforms[live, t, 1] < model.leave_probs(after)]] = False
    return returns


def test_paired_interval_covers_the_exact_difference_and_is_tighter() -> None:
    # The headroom benchmark's comparison on a tiny world: planner and greedy meet the same
    # listeners and the same luck (common random numbers); the 95% t interval of their mean
    # paired difference must cover the exact difference of their expected returns (computed by
    # policy_value, no sampling) and exclude zero, and be far tighter than an unpaired interval.
    model = SequencingSessionModel(n_tracks=16)
    state, pools = _instances(model, n=30, m=7)
    length = 4
    greedy, planner = greedy_policy(model, REWARD), planner_policy(model, REWARD)
    exact = (
        policy_value(model, state, pools, length, REWARD, planner)
        - policy_value(model, state, pools, length, REWARD, greedy)
    ).mean()
    assert exact > 0.0
    uniforms = np.random.default_rng(7).random((3000, length, 2))
    planner_returns = _sampled_returns(model, state, pools, length, planner, uniforms)
    greedy_returns = _sampled_returns(model, state, pools, length, greedy, uniforms)
    interval = paired_difference(planner_returns, greedy_returns)
    assert interval.low <= exact <= interval.high
    assert interval.excludes_zero and interval.mean > 0.0
    unpaired = np.hypot(mean_interval(planner_returns).half_width, mean_interval(greedy_returns).half_width)
    assert interval.half_width < 0.7 * unpaired
    # Mean sampled returns agree with the exact values too (the simulator is the model).
    want = policy_value(model, state, pools, length, REWARD, greedy).mean()
    assert mean_interval(greedy_returns).low <= want <= mean_interval(greedy_returns).high


def _fake_env(groundtruth: bool, reward: RewardConfig | None = None) -> ListeningSessionEnv:
    world = FakeWorld(seed=0, n_tracks=120)
    responder = FakeGroundTruth(world, seed=1) if groundtruth else None
    return ListeningSessionEnv(world=world, playlist_length=6, pool_size=10, responder=responder, reward=reward)


def _batch(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value[None] for key, value in obs.items()}


def test_planner_truth_needs_the_oracle_and_plays_valid_slots() -> None:
    env = _fake_env(groundtruth=True)
    agent = TruthPlanner(env.world, depth=2, width=3)
    obs, _ = env.reset(seed=3)
    with pytest.raises(ValueError, match="oracle"):
        agent.act(_batch(obs))
    done, steps = False, 0
    while not done:
        slot = agent.act(_batch(obs), env.oracle)
        assert slot.dtype == np.int64 and obs["action_mask"][slot[0]] == 1
        obs, _, terminated, truncated, info = env.step(int(slot[0]))
        assert not info["invalid_action"]
        done, steps = terminated or truncated, steps + 1
    assert steps <= 6


def test_planner_learned_rebuilds_the_learned_state_from_the_observation() -> None:
    env = _fake_env(groundtruth=False)
    agent = LearnedPlanner(env.world)
    obs, _ = env.reset(seed=5)
    for _ in range(4):
        model, state, pools = agent.session(_batch(obs), None)
        assert model is env.world.session_model
        np.testing.assert_array_equal(pools[0], env.pool)
        for key, value in env._session().items():
            if key != "attention":  # latent, never observed
                np.testing.assert_array_equal(state[key], value, err_msg=key)
        obs, _, terminated, truncated, _ = env.step(int(agent.act(_batch(obs))[0]))
        if terminated or truncated:
            break


def test_planner_pays_what_the_env_pays() -> None:
    reward = RewardConfig(diversity_bonus=0.3, discovery_boost=2.0)
    env = _fake_env(groundtruth=True, reward=reward)
    agent = TruthPlanner(env.world, depth=1, reward=reward)
    obs, _ = env.reset(seed=11)
    for _ in range(3):
        batch = _batch(obs)
        _, _, pools = agent.session(batch, env.oracle)
        rewards = agent.slot_rewards(batch, pools)
        probs = env.oracle.response_probs()
        slot = int(agent.act(batch, env.oracle)[0])
        chosen = np.array([[slot]])
        expected = rewards.expected(probs[:, [slot]], np.zeros(1, np.int64), chosen, rewards.initial_new())[0, 0]
        # The env's reward of each response for this slot, through its own reward code.
        paid = [env._play_reward(int(pools[0, slot]), r, env._length) for r in range(3)]
        assert expected == pytest.approx(float(probs[0, slot] @ paid))
        obs, _, terminated, truncated, _ = env.step(slot)
        if terminated or truncated:
            break
    assert agent.config()["reward"]["diversity_bonus"] == 0.3
