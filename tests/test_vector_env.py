"""ListeningSession-v0, the vector environment: batching, seeding, same-step autoreset, compact state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from fakes import FakeWorld, random_policy
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import musicenv  # noqa: F401  (registers the id)
from musicenv.env import SESSION_STATS, ListeningSessionEnv
from musicenv.observation import build_observations, expand_observations
from musicenv.registration import ENV_ID
from musicenv.rewards import RewardConfig
from musicenv.vector_env import ListeningSessionVectorEnv, make_vector_env
from musicenv.world import context_features


def test_make_vec_uses_the_vector_entry_point(world):
    envs = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", world=world, pool_size=30)
    assert isinstance(envs, ListeningSessionVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert envs.action_space == gym.spaces.MultiDiscrete([30] * 4)
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert envs.single_observation_space == ListeningSessionEnv(world=world, pool_size=30).observation_space


def single_trace(world, seed: int, actions: list[int], **kwargs) -> list:
    """Observations, rewards, flags and infos of one single env over consecutive episodes."""
    env = ListeningSessionEnv(world=world, **kwargs)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("responder", ["learned", "groundtruth"])
def test_each_sub_env_replays_the_single_env_seeded_seed_plus_i(world, groundtruth, responder, n):
    kwargs = {
        "playlist_length": 8,
        "pool_size": 40,
        "reward": RewardConfig(diversity_bonus=0.1, discovery_boost=1.5),
        "responder": groundtruth if responder == "groundtruth" else None,
    }
    seed, steps = 100, 60
    envs = ListeningSessionVectorEnv(n, world=world, **kwargs)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=seed)
    actions, vector_trace = [], [[{k: v[i] for k, v in obs.items()}] for i in range(n)]
    for _ in range(steps):
        action = random_policy(rng, obs["action_mask"], invalid_share=0.2)
        actions.append(action)
        obs, rewards, terminated, truncated, info = envs.step(action)
        for i in range(n):
            step_info = {
                key: info[key][i] for key in info if key not in ("session", "final_obs", "_session", "_final_obs")
            }
            if info.get("_session", np.zeros(n, bool))[i]:
                step_info["session"] = {key: value[i] for key, value in info["session"].items()}
                last = info["final_obs"][i]
            else:
                last = {k: v[i] for k, v in obs.items()}
            vector_trace[i].append((last, rewards[i], terminated[i], truncated[i], step_info))
            if terminated[i] or truncated[i]:
                vector_trace[i].append({k: v[i] for k, v in obs.items()})
    for i in range(n):
        expected = single_trace(world, seed + i, [int(a[i]) for a in actions], **kwargs)
        assert len(expected) == len(vector_trace[i])
        for k, (single_step, vector_step) in enumerate(zip(expected, vector_trace[i], strict=True)):
            if isinstance(single_step, dict):
                assert data_equivalence(single_step, vector_step, exact=True), (i, k)
                continue
            s_obs, s_reward, s_term, s_trunc, s_info = single_step
            v_obs, v_reward, v_term, v_trunc, v_info = vector_step
            assert data_equivalence(s_obs, v_obs, exact=True), (i, k)
            assert (s_reward, s_term, s_trunc) == (v_reward, v_term, v_trunc), (i, k)
            assert s_info.keys() == v_info.keys()
            for key, value in s_info.items():
                if key == "session":
                    assert value == v_info[key]
                else:
                    np.testing.assert_array_equal(value, v_info[key], err_msg=f"{key} {i} {k}")


def run_vector(envs: ListeningSessionVectorEnv, seed: int, steps: int) -> list:
    rng = np.random.default_rng(seed)
    obs, info = envs.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        result = envs.step(random_policy(rng, obs["action_mask"], invalid_share=0.1))
        obs = result[0]
        out.append(result)
    return out


def test_same_seed_same_everything(world):
    a = run_vector(ListeningSessionVectorEnv(5, world=world), 7, 50)
    b = run_vector(ListeningSessionVectorEnv(5, world=world), 7, 50)
    assert data_equivalence(a, b, exact=True)
    c = run_vector(ListeningSessionVectorEnv(5, world=world), 8, 50)
    assert not data_equivalence(a[0][0], c[0][0], exact=True)


def test_seed_list_and_continuing_generators(world):
    envs = ListeningSessionVectorEnv(3, world=world)
    first, _ = envs.reset(seed=[5, 6, 7])
    again, _ = envs.reset(seed=5)
    assert data_equivalence(first, again, exact=True)
    following, _ = envs.reset()  # no seed: each sub-env's generator goes on, as a single env's would
    single = ListeningSessionEnv(world=world)
    single.reset(seed=6)
    single.reset(seed=6)
    expected, _ = single.reset()
    assert data_equivalence({k: v[1] for k, v in following.items()}, expected, exact=True)
    with pytest.raises(ValueError, match="2 seeds for 3"):
        envs.reset(seed=[1, 2])


def test_same_step_autoreset(world):
    envs = ListeningSessionVectorEnv(4, world=world, playlist_length=5)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=1)
    ended_somewhere = False
    for _ in range(30):
        before = {k: v.copy() for k, v in obs.items()}
        obs, _, terminated, truncated, info = envs.step(random_policy(rng, obs["action_mask"]))
        ended = terminated | truncated
        assert not (terminated & truncated).any()
        if ended.any():
            ended_somewhere = True
            np.testing.assert_array_equal(info["_session"], ended)
            np.testing.assert_array_equal(info["_final_obs"], ended)
            for i in np.flatnonzero(ended):
                # The row already holds the next session; its last observation is in final_obs.
                assert obs["history_mask"][i].sum() == 0 and envs.lengths[i] == 0 and envs.steps[i] == 0
                final = info["final_obs"][i]
                assert final["history_mask"].sum() == before["history_mask"][i].sum() + 1
                assert set(final) == set(obs)
                assert info["session"]["length"][i] == final["history_mask"].sum()
            assert set(info["session"]) == set(SESSION_STATS)
            assert all(info["final_obs"][i] is None for i in np.flatnonzero(~ended))
        assert (envs.steps <= 5).all()
    assert ended_somewhere


def test_compact_state_rebuilds_the_observation(world):
    envs = ListeningSessionVectorEnv(6, world=world, playlist_length=10)
    rng = np.random.default_rng(3)
    obs, _ = envs.reset(seed=3)
    for _ in range(25):
        obs, *_ = envs.step(random_policy(rng, obs["action_mask"], invalid_share=0.2))
        rebuilt = build_observations(
            world.track_features,
            world.user_features,
            envs.users,
            context_features(envs.contexts),
            envs.pools,
            envs.history_tracks,
            envs.history_responses,
            envs.played,
        )
        assert data_equivalence(rebuilt, obs, exact=True)
        np.testing.assert_array_equal(envs.lengths, (envs.history_tracks >= 0).sum(axis=1))
        np.testing.assert_array_equal(envs.action_masks(), obs["action_mask"].astype(bool))
    assert (envs.contexts.attention == 0).all()  # the latent attention is not observable


class CountingResponder:
    """A responder that counts its calls and the batch sizes it saw."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list[tuple[str, int]] = []

    def initial_state(self, users, contexts):
        return self.model.initial_state(users, contexts)

    def response_probs(self, state, tracks):
        self.calls.append(("response_probs", len(tracks)))
        return self.model.response_probs(state, tracks)

    def advance(self, state, tracks, responses):
        self.calls.append(("advance", len(tracks)))
        return self.model.advance(state, tracks, responses)

    def leave_probs(self, state):
        self.calls.append(("leave_probs", len(state["users"])))
        return self.model.leave_probs(state)


def test_one_batched_responder_call_per_step(world):
    counting = CountingResponder(world.session_model)
    envs = ListeningSessionVectorEnv(16, world=world, responder=counting)
    obs, _ = envs.reset(seed=0)
    for _ in range(10):
        counting.calls.clear()
        obs, *_ = envs.step(random_policy(np.random.default_rng(1), obs["action_mask"]))
        assert counting.calls == [("response_probs", 16), ("advance", 16), ("leave_probs", 16)]


def test_invalid_actions_in_a_batch(world):
    envs = ListeningSessionVectorEnv(3, world=world)
    envs.reset(seed=0)
    envs.step(np.array([0, 0, 0]))
    state = envs.get_state()
    _, rewards, _, _, info = envs.step(np.array([0, 1, 0]))
    np.testing.assert_array_equal(info["invalid_action"], [True, False, True])
    assert rewards[0] == rewards[2] == -1.0 and rewards[1] >= 0.0
    assert info["response"][0] is None and info["response"][1] in ("skip", "listen", "complete")
    np.testing.assert_array_equal(info["response_probs"][0], np.zeros(3))
    after = envs.get_state()
    for key in ("history_tracks", "played", "history_responses"):
        np.testing.assert_array_equal(after[key][[0, 2]], state[key][[0, 2]])
    for key, value in state.items():
        if key.startswith("session_model/"):
            np.testing.assert_array_equal(after[key][[0, 2]], value[[0, 2]])
    np.testing.assert_array_equal(envs.steps, [2, 2, 2])

    strict = ListeningSessionVectorEnv(3, world=world, strict=True)
    strict.reset(seed=0)
    strict.step(np.array([4, 4, 4]))
    before = strict.get_state()
    with pytest.raises(ValueError, match="sub-environment 1: slot 4 is invalid"):
        strict.step(np.array([5, 4, 6]))
    assert data_equivalence(strict.get_state(), before, exact=True)  # nothing changed
    with pytest.raises(ValueError, match="outside the action space"):
        envs.step(np.array([0, 1, 100]))
    with pytest.raises(ValueError, match="3 integers"):
        envs.step(np.array([0, 1]))


def test_observations_are_new_arrays_unless_copy_is_off(world):
    envs = ListeningSessionVectorEnv(2, world=world)
    obs, _ = envs.reset(seed=0)
    obs2, *_ = envs.step(np.array([0, 0]))
    assert not any(np.shares_memory(obs[k], obs2[k]) for k in obs)
    buffers = ListeningSessionVectorEnv(2, world=world, copy=False)
    obs, _ = buffers.reset(seed=0)
    obs2, *_ = buffers.step(np.array([0, 0]))
    assert all(obs[k] is obs2[k] for k in obs)


def test_get_state_set_state_resume_is_exact(world, tmp_path):
    envs = ListeningSessionVectorEnv(4, world=world, playlist_length=6)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=11)
    for _ in range(9):
        obs, *_ = envs.step(random_policy(rng, obs["action_mask"]))
    np.savez(tmp_path / "vec.npz", **envs.get_state())
    actions, expected = [], []
    for _ in range(20):  # through several autoresets, drawn from the saved generators
        actions.append(random_policy(rng, obs["action_mask"], invalid_share=0.1))
        result = envs.step(actions[-1])
        obs = result[0]
        expected.append(result)
    resumed = ListeningSessionVectorEnv(4, world=world, playlist_length=6)
    with np.load(tmp_path / "vec.npz", allow_pickle=False) as saved:
        resumed.set_state(dict(saved))
    assert data_equivalence([resumed.step(action) for action in actions], expected, exact=True)


def test_oracle_only_in_a_groundtruth_run(world, groundtruth):
    assert ListeningSessionVectorEnv(2, world=world).oracle is None
    envs = ListeningSessionVectorEnv(3, world=world, responder=groundtruth, pool_size=20)
    obs, _ = envs.reset(seed=0)
    oracle = envs.oracle
    probs = oracle.response_probs()
    assert probs.shape == (3, 20, 3) and np.allclose(probs.sum(axis=-1), 1.0)
    chosen = oracle.response_probs(np.array([[2], [0], [5]]))
    np.testing.assert_allclose(chosen[:, 0], probs[[0, 1, 2], [2, 0, 5]])
    _, _, _, _, info = envs.step(np.array([2, 0, 5]))
    np.testing.assert_allclose(info["response_probs"], chosen[:, 0])
    assert oracle.state["position"].tolist() == [1, 1, 1]
    assert oracle.leave_probs().shape == (3,)
    assert not any("oracle" in key for key in obs)


def test_render_ansi_gives_one_table_per_session(world):
    envs = ListeningSessionVectorEnv(2, world=world, render_mode="ansi")
    envs.reset(seed=0)
    envs.step(np.array([0, 1]))
    tables = envs.render()
    assert len(tables) == 2 and all("1 of 20 played" in table for table in tables)


def test_arguments_are_checked(world):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            make_vector_env(2, world=world, device="cuda")
    with pytest.raises(ValueError, match="num_envs"):
        ListeningSessionVectorEnv(0, world=world)
    with pytest.raises(gym.error.ResetNeeded):
        ListeningSessionVectorEnv(2, world=world).step(np.array([0, 0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), invalid_share=st.floats(0.0, 1.0), steps=st.integers(1, 80))
def test_fuzz_vector_observations_stay_in_the_space(seed, invalid_share, steps):
    envs = ListeningSessionVectorEnv(5, world=FakeWorld(seed=6, n_tracks=45), pool_size=48, playlist_length=12)
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        obs, rewards, terminated, truncated, info = envs.step(random_policy(rng, obs["action_mask"], invalid_share))
        assert envs.observation_space.contains(obs)
        assert rewards.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
        assert ((rewards == -1.0) == info["invalid_action"]).all()


def test_real_world_vector_env_matches_the_single_env(real_worlds):
    world, truth = real_worlds
    for responder in (None, truth):
        envs = ListeningSessionVectorEnv(1, world=world, responder=responder)
        single = ListeningSessionEnv(world=world, responder=responder)
        obs, _ = envs.reset(seed=5)
        single_obs, _ = single.reset(seed=5)
        for _ in range(40):
            assert data_equivalence({k: v[0] for k, v in obs.items()}, single_obs, exact=True)
            action = int(np.flatnonzero(single_obs["action_mask"])[0])
            obs, rewards, terminated, truncated, info = envs.step(np.array([action]))
            single_obs, reward, single_terminated, single_truncated, single_info = single.step(action)
            assert (rewards[0], terminated[0], truncated[0]) == (reward, single_terminated, single_truncated)
            np.testing.assert_array_equal(info["response_probs"][0], single_info["response_probs"])
            if single_terminated or single_truncated:
                single_obs, _ = single.reset()


def test_real_world_sub_envs_replay_single_envs(real_worlds):
    """N > 1 on the default world: each sub-env plays the single env's episodes (probabilities to float32 rounding)."""
    world, _ = real_worlds
    n, seed = 4, 21
    envs = ListeningSessionVectorEnv(n, world=world, observation="compact")
    singles = [ListeningSessionEnv(world=world, observation="compact") for _ in range(n)]
    obs, _ = envs.reset(seed=seed)
    single_obs = [single.reset(seed=seed + i)[0] for i, single in enumerate(singles)]
    for _ in range(60):
        actions = obs["action_mask"].argmax(axis=1)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        for i, single in enumerate(singles):
            single_obs[i], reward, single_terminated, single_truncated, single_info = single.step(int(actions[i]))
            assert (rewards[i], terminated[i], truncated[i]) == (reward, single_terminated, single_truncated)
            assert info["response"][i] == single_info["response"]
            # float32 matrix products round differently over a batch of N than of one: ~1e-8 here.
            np.testing.assert_allclose(info["response_probs"][i], single_info["response_probs"], rtol=0, atol=1e-6)
            if single_terminated or single_truncated:
                single_obs[i], _ = single.reset()
            for key in ("user", "pool", "history_tracks", "history_responses", "action_mask"):
                np.testing.assert_array_equal(obs[key][i], single_obs[i][key], err_msg=key)


@pytest.mark.parametrize("n", [1, 4])
def test_compact_observations_expand_to_the_full_ones(world, n):
    """observation="compact" hands over indices; expanded, they are the full observations, final ones included."""
    kwargs = {"world": world, "playlist_length": 6, "pool_size": 30}
    full = ListeningSessionVectorEnv(n, **kwargs)
    compact = ListeningSessionVectorEnv(n, observation="compact", **kwargs)
    features = (world.track_features, world.user_features)
    obs, _ = full.reset(seed=3)
    small, _ = compact.reset(seed=3)
    assert compact.observation_space.contains(small)
    assert data_equivalence(expand_observations(*features, small), obs, exact=True)
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = random_policy(rng, obs["action_mask"], invalid_share=0.1)
        obs, rewards, terminated, truncated, info = full.step(actions)
        small, small_rewards, small_terminated, small_truncated, small_info = compact.step(actions)
        assert compact.observation_space.contains(small)
        assert data_equivalence(expand_observations(*features, small), obs, exact=True)
        np.testing.assert_array_equal(rewards, small_rewards)
        np.testing.assert_array_equal(terminated | truncated, small_terminated | small_truncated)
        for row in np.flatnonzero(info.get("_final_obs", np.zeros(n, bool))):
            expanded = expand_observations(*features, small_info["final_obs"][row])
            assert data_equivalence(expanded, info["final_obs"][row], exact=True)
    state = compact.get_state()
    restored = ListeningSessionVectorEnv(n, observation="compact", **kwargs)
    restored.set_state(state)
    assert data_equivalence(restored._observations(), compact._observations(), exact=True)


def test_compact_observations_are_for_the_numpy_path(world):
    with pytest.raises(ValueError, match="observation"):
        ListeningSessionVectorEnv(2, world=world, observation="features")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numpy path"):
        make_vector_env(2, world=world, backend="torch", observation="compact")


class ViewingResponder:
    """A responder whose ``advance`` hands back views of its inputs (allowed: states are values)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def initial_state(self, users, contexts):
        return {**self.inner.initial_state(users, contexts), "last_track": np.full(len(users), -1)}

    def response_probs(self, state, tracks):
        return self.inner.response_probs(state, tracks)

    def advance(self, state, tracks, responses):
        advanced = self.inner.advance(state, tracks, responses)
        return {**advanced, "users": state["users"][:], "attention": state["attention"][:], "last_track": tracks}

    def leave_probs(self, state):
        return self.inner.leave_probs(state)


@pytest.mark.parametrize("responder", ["learned", "groundtruth", "viewing", "real"])
def test_a_held_state_never_changes_under_steps_and_autoresets(world, groundtruth, real_worlds, responder):
    """States are values: what an oracle's caller holds stays as it was, whatever the env does next."""
    if responder == "real":
        world = real_worlds[0]
    answers = {"groundtruth": groundtruth, "viewing": ViewingResponder(world.session_model)}.get(responder)
    envs = ListeningSessionVectorEnv(8, world=world, playlist_length=3, responder=answers)
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(12):  # every session ends within three steps: autoresets on most steps
        held = envs._session()
        snapshot = {key: value.copy() for key, value in held.items()}
        obs, _, _, _, info = envs.step(random_policy(rng, obs["action_mask"], invalid_share=0.2))
        tracks = info["track_index"].copy()
        for key, value in snapshot.items():
            np.testing.assert_array_equal(held[key], value, err_msg=key)
        envs.step(random_policy(rng, obs["action_mask"]))  # the info of a step is not rewritten by the next
        np.testing.assert_array_equal(info["track_index"], tracks)
