"""ListeningSession-v0, the single environment: Gymnasium and SB3 contracts, the episode, fuzzing."""

from __future__ import annotations

import sys
import types
import warnings

import gymnasium as gym
import numpy as np
import pytest
from fakes import FakeGroundTruth, FakeWorld
from gymnasium.utils.env_checker import check_env, data_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import musicenv
from musicenv.env import SESSION_STATS, ListeningSessionEnv
from musicenv.observation import build_observations, expand_observations, write_history_plays
from musicenv.registration import ENV_ID
from musicenv.rewards import RewardConfig
from musicenv.world import CONTEXT_FEATURES_DIM, Contexts, context_features

STEP_INFO_KEYS = {
    "response",
    "response_probs",
    "track_id",
    "artist_id",
    "track_index",
    "p_complete",
    "invalid_action",
    "position",
}


def first_valid(obs: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero(obs["action_mask"])[0])


def quiet_check_env(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)


# -- Gymnasium and SB3 contracts --------------------------------------------------------------------


def test_registered_with_vector_entry_point_and_no_time_limit():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "musicenv.env:ListeningSessionEnv"
    assert spec.vector_entry_point == "musicenv.vector_env:make_vector_env"
    # The env truncates itself at playlist_length; a TimeLimit could only cut earlier.
    assert spec.max_episode_steps is None
    musicenv.registration.register_envs()  # idempotent


@pytest.mark.parametrize("truth", [False, True], ids=["learned", "groundtruth"])
def test_gymnasium_check_env(world, groundtruth, truth):
    env = gym.make(ENV_ID, world=world, responder=groundtruth if truth else None, render_mode="ansi")
    quiet_check_env(env.unwrapped)
    assert (env.unwrapped.oracle is not None) == truth


def test_sb3_check_env(world):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        # SB3 recommends flattening 2-D observations; the (L, d) / (M, d) layout is the contract.
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        sb3_check_env(ListeningSessionEnv(world=world), warn=True)


def test_make_passes_the_passive_checker_without_warnings(world):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(ENV_ID, world=world)
        obs, _ = env.reset(seed=0)
        env.step(first_valid(obs))
        env.step(first_valid(obs))  # invalid now: still no warning


# SB3's make_vec_env asks for render_mode="rgb_array", which the env accepts and renders nothing for.
@pytest.mark.filterwarnings("ignore:.*render_mode='rgb_array'.*:UserWarning")
def test_maskable_ppo_trains(world):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    # Four envs in one DummyVecEnv: SB3's per-step cost is its batch-1 forward pass, so batching
    # keeps a few thousand steps within seconds.
    envs = make_vec_env(ENV_ID, n_envs=4, seed=0, env_kwargs={"world": world, "pool_size": 30})
    model = MaskablePPO(
        "MultiInputPolicy",
        envs,
        n_steps=256,
        batch_size=256,
        n_epochs=1,
        policy_kwargs={"net_arch": [32]},
        seed=0,
        device="cpu",
    )
    model.learn(3072)
    assert model.num_timesteps >= 3072 and len(model.ep_info_buffer) > 0
    env = gym.make(ENV_ID, world=world, pool_size=30)
    obs, _ = env.reset(seed=3)
    for _ in range(10):
        action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
        assert obs["action_mask"][int(action)] == 1
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break


@pytest.mark.parametrize("algorithm", ["PPO", "DQN"])
@pytest.mark.parametrize("invalid_actions", ["best_valid", "penalty"])
def test_plain_sb3_runs_through_the_wrapper(world, algorithm, invalid_actions):
    import stable_baselines3

    from musicenv.wrappers import FlatListeningSession

    env = FlatListeningSession(gym.make(ENV_ID, world=world, pool_size=30), invalid_actions=invalid_actions)
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.dtype == np.float32
    cls = getattr(stable_baselines3, algorithm)
    if algorithm == "PPO":
        kwargs = {"n_steps": 128, "batch_size": 64, "n_epochs": 1}
    else:
        kwargs = {"learning_starts": 50, "buffer_size": 1000}
    cls("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [32]}, **kwargs).learn(300)


def test_wrapper_remaps_spent_slots_to_the_best_valid_one(world):
    from musicenv.wrappers import FlatListeningSession

    env = FlatListeningSession(gym.make(ENV_ID, world=world, reward=RewardConfig()))
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert not info["remapped_action"]
    _, reward, _, _, info = env.step(0)  # slot 0 is spent: slot 1 plays instead
    assert info["remapped_action"] and info["requested_action"] == 0
    assert not info["invalid_action"] and reward >= 0.0
    assert env.unwrapped.get_state()["history_tracks"][1] == env.unwrapped.pool[1]


def test_real_worlds_pass_check_env(real_worlds):
    world, _ = real_worlds
    quiet_check_env(gym.make(ENV_ID).unwrapped)
    truth = gym.make(ENV_ID, world="groundtruth").unwrapped
    quiet_check_env(truth)
    assert truth.oracle is not None and ListeningSessionEnv(world=world).oracle is None


def test_real_world_episodes_are_deterministic(real_worlds):
    world, truth = real_worlds
    for responder in (None, truth):
        env_a = ListeningSessionEnv(world=world, responder=responder)
        env_b = ListeningSessionEnv(world=world, responder=responder)
        for seed in range(3):
            assert_same_trace(run_episode(env_a, seed, first_valid), run_episode(env_b, seed, first_valid))


# -- the episode --------------------------------------------------------------------------------------


def run_episode(env: ListeningSessionEnv, seed: int, policy) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        trace.append((obs, reward, terminated, truncated, info))
        done = terminated or truncated
    return trace


def assert_same_trace(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b, strict=True):
        assert gym.utils.env_checker.data_equivalence(step_a, step_b, exact=True)


def test_same_seed_same_episode(world):
    env_a, env_b = ListeningSessionEnv(world=world), ListeningSessionEnv(world=world)
    for seed in range(5):
        assert_same_trace(run_episode(env_a, seed, first_valid), run_episode(env_b, seed, first_valid))


def test_common_random_numbers_same_listener_and_pool_for_any_policy(world):
    env = ListeningSessionEnv(world=world)
    first = run_episode(env, 11, first_valid)
    last = run_episode(env, 11, lambda obs: int(np.flatnonzero(obs["action_mask"])[-1]))
    for key in ("user", "context", "candidates", "action_mask"):
        np.testing.assert_array_equal(first[0][0][key], last[0][0][key])


def test_reset_draws_from_np_random_only(world):
    env = ListeningSessionEnv(world=world)
    env.reset(seed=5)
    state = env.np_random.bit_generator.state
    env.reset(seed=5)
    assert env.np_random.bit_generator.state == state
    np.random.seed(0)  # noqa: NPY002  (the legacy global state must not matter)
    a = run_episode(env, 5, first_valid)
    np.random.seed(1)  # noqa: NPY002
    b = run_episode(env, 5, first_valid)
    assert_same_trace(a, b)


def test_observation_layout_and_step_info(world):
    env = ListeningSessionEnv(world=world, playlist_length=12, pool_size=40)
    obs, _ = env.reset(seed=2)
    d_track, d_user = world.track_features.shape[1], world.user_features.shape[1]
    shapes = {key: value.shape for key, value in obs.items()}
    assert shapes == {
        "user": (d_user,),
        "context": (8,),
        "history": (12, d_track + 3),
        "history_mask": (12,),
        "candidates": (40, d_track),
        "action_mask": (40,),
        "familiarity": (40, 12),
        "history_familiarity": (12, 12),
    }
    assert obs["action_mask"].dtype == np.int8 and all(
        v.dtype == np.float32 for k, v in obs.items() if k != "action_mask"
    )
    np.testing.assert_array_equal(obs["user"], world.user_features[env.user])
    np.testing.assert_array_equal(obs["candidates"], world.track_features[env.pool])
    assert obs["history_mask"].sum() == 0 and obs["history"].sum() == 0

    slot = 3
    obs, reward, _, _, info = env.step(slot)
    assert STEP_INFO_KEYS <= info.keys()
    track = env.pool[slot]
    assert info["track_index"] == track and info["track_id"] == world.tracks["track_id"][track]
    assert info["artist_id"] == world.tracks["artist_id"][track]
    assert info["position"] == 1 and info["invalid_action"] is False
    assert info["response"] in ("skip", "listen", "complete")
    assert info["response_probs"].shape == (3,) and np.isclose(info["response_probs"].sum(), 1.0)
    assert info["p_complete"] == info["response_probs"][2]
    assert reward == {"skip": 0.0, "listen": 0.5, "complete": 1.0}[info["response"]]
    np.testing.assert_array_equal(obs["history"][0, :d_track], world.track_features[track])
    assert obs["history"][0, d_track:].tolist() == [
        float(info["response"] == name) for name in ("skip", "listen", "complete")
    ]
    assert obs["history_mask"].tolist() == [1.0] + [0.0] * 11
    assert obs["action_mask"][slot] == 0 and obs["action_mask"].sum() == 39


def test_observations_are_new_arrays_every_step(world):
    env = ListeningSessionEnv(world=world)
    obs, _ = env.reset(seed=0)
    kept = {key: value.copy() for key, value in obs.items()}
    obs2, *_ = env.step(0)
    for key in obs:
        assert not np.shares_memory(obs[key], obs2[key])
        np.testing.assert_array_equal(obs[key], kept[key])


def test_invalid_action_penalty_and_no_state_change(world):
    env = ListeningSessionEnv(world=world, playlist_length=6)
    obs, _ = env.reset(seed=4)
    env.step(7)
    before = env.get_state()
    obs_before = env._observation()
    for step in range(2, 7):
        obs, reward, terminated, truncated, info = env.step(7)
        assert reward == -1.0 and info["invalid_action"] is True and info["response"] is None
        assert not terminated
        assert truncated == (step == 6)  # invalid steps count toward the cap
        assert gym.utils.env_checker.data_equivalence(obs, obs_before, exact=True)
    after = env.get_state()
    for key in before:
        if key not in ("steps", "counts", "return", "done"):
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert info["session"]["invalid_actions"] == 5 and info["session"]["length"] == 1


def test_invalid_action_penalty_is_configurable_but_below_every_play():
    assert RewardConfig(invalid_action=-5.0).invalid_action == -5.0
    with pytest.raises(ValueError, match="below the lowest response reward"):
        RewardConfig(skip=-0.5, invalid_action=-0.5)


def test_strict_raises_naming_the_slot(world):
    env = ListeningSessionEnv(world=world, strict=True)
    env.reset(seed=0)
    env.step(5)
    with pytest.raises(ValueError, match="slot 5 is invalid: already played"):
        env.step(5)
    env.step(6)  # the env is unharmed


def test_out_of_range_action_raises(world):
    env = ListeningSessionEnv(world=world, pool_size=10)
    env.reset(seed=0)
    for action in (-1, 10):
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(action)


def test_step_after_the_end_raises_reset_needed(world):
    env = ListeningSessionEnv(world=world, playlist_length=2)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    *_, info = env.step(1)
    assert "session" in info
    with pytest.raises(gym.error.ResetNeeded):
        env.step(2)


def test_padded_pool_masks_padding_and_truncates_when_exhausted():
    tiny = FakeWorld(seed=3, n_tracks=25, leave_scale=0.0)
    env = ListeningSessionEnv(world=tiny, playlist_length=40, pool_size=32)
    obs, _ = env.reset(seed=0)
    n_tracks = int((env.pool >= 0).sum())
    assert n_tracks < 32
    assert obs["action_mask"][n_tracks:].sum() == 0 and obs["candidates"][n_tracks:].sum() == 0
    *_, info = env.step(31)
    assert info["invalid_action"] and info["track_id"] is None and info["track_index"] == -1
    for k in range(n_tracks):
        obs, _, terminated, truncated, info = env.step(k)
    assert not terminated and truncated and obs["action_mask"].sum() == 0
    assert info["session"]["length"] == n_tracks


def test_blocked_and_explicit_tracks_never_in_the_pool(world):
    env = ListeningSessionEnv(world=world, explicit_filter=True, split="all")
    explicit = world.tracks["explicit"].to_numpy()
    artists = world.tracks["artist_id"].to_numpy()
    for seed in range(40):
        env.reset(seed=seed)
        pool = env.pool[env.pool >= 0]
        assert not set(pool.tolist()) & world.blocked_tracks[env.user]
        assert not set(artists[pool].tolist()) & world.blocked_artists[env.user]
        assert not explicit[pool].any()
        assert len(pool) == env.pool_size  # refilled to M


def test_playlist_length_30_through_make_is_not_cut_by_a_time_limit():
    never_leaves = FakeWorld(seed=0, leave_scale=0.0)
    env = gym.make(ENV_ID, world=never_leaves, playlist_length=30)
    obs, _ = env.reset(seed=0)
    assert obs["history"].shape[0] == 30
    for step in range(1, 31):
        obs, _, terminated, truncated, info = env.step(first_valid(obs))
        assert not terminated and truncated == (step == 30)
    assert info["session"]["length"] == 30
    default = gym.make(ENV_ID, world=never_leaves)
    obs, _ = default.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        obs, _, terminated, truncated, _ = default.step(first_valid(obs))
        if terminated or truncated:
            break
    assert steps == 20


def test_episode_statistics_add_up(world):
    env = ListeningSessionEnv(world=world)
    for seed in range(5):
        trace = run_episode(env, seed, first_valid)
        session = trace[-1][-1]["session"]
        assert set(session) == set(SESSION_STATS)
        rewards = [step[1] for step in trace[1:]]
        assert session["return"] == pytest.approx(sum(rewards))
        assert session["length"] == len(rewards)
        responses = [step[-1]["response"] for step in trace[1:]]
        assert session["completions"] == responses.count("complete")
        assert session["skips"] == responses.count("skip")
        assert trace[-1][2] or trace[-1][3]
        assert all(not (step[2] or step[3]) for step in trace[1:-1])


def test_session_statistics_leave_the_episode_key_to_gymnasium_and_sb3(world):
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(ENV_ID, world=world))
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(first_valid(obs))
        done = terminated or truncated
    assert info["episode"]["r"] == pytest.approx(info["session"]["return"])
    assert info["episode"]["l"] == info["session"]["length"]


def test_render_ansi_lists_the_playlist(world):
    env = ListeningSessionEnv(world=world, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    played = []
    for _ in range(3):
        obs, _, _, _, info = env.step(first_valid(obs))
        played.append(info)
    table = env.render()
    assert isinstance(table, str) and "p(complete)" in table and "3 of 20 played" in table
    for position, info in enumerate(played, start=1):
        line = table.splitlines()[1 + position]
        assert line.split()[:4] == [str(position), info["track_id"], info["artist_id"], info["response"]]
        assert f"{info['p_complete']:.2f}" in line
    with pytest.warns(UserWarning, match="renders nothing"):
        assert ListeningSessionEnv(world=world).render() is None


def test_get_state_set_state_resume_is_exact(world, tmp_path):
    env = ListeningSessionEnv(world=world)
    obs, _ = env.reset(seed=9)
    for _ in range(4):
        obs, *_ = env.step(first_valid(obs))
    np.savez(tmp_path / "env.npz", **env.get_state())
    with np.load(tmp_path / "env.npz", allow_pickle=False) as saved:
        state = dict(saved)

    def rest(e: ListeningSessionEnv, obs) -> list:
        out, done = [], False
        while not done:
            step = e.step(first_valid(obs))
            obs, done = step[0], step[2] or step[3]
            out.append(step)
        out.append(e.reset())  # the next episode comes from the restored generator too
        return out

    expected = rest(env, obs)
    resumed = ListeningSessionEnv(world=world)
    resumed.set_state(state)
    assert gym.utils.env_checker.data_equivalence(resumed._observation(), obs, exact=True)
    assert gym.utils.env_checker.data_equivalence(rest(resumed, obs), expected, exact=True)


def test_observation_builder_rebuilds_the_observation_from_compact_indices(world):
    env = ListeningSessionEnv(world=world)
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[2]))
    state = env.get_state()
    contexts = Contexts(state["context_type"], state["hour"], state["attention"])
    rebuilt = build_observations(
        world.track_features,
        world.user_features,
        state["user"][None],
        context_features(contexts),
        state["pool"][None],
        state["history_tracks"][None],
        state["history_responses"][None],
        state["played"][None],
    )
    assert gym.utils.env_checker.data_equivalence({k: v[0] for k, v in rebuilt.items()}, obs, exact=True)


def test_plays_written_into_a_history_are_the_builders_rows(world):
    """The vector env appends each play to its history buffer in place; the rows are build_observations'."""
    rng = np.random.default_rng(0)
    n, length = 4, 6
    tracks = rng.integers(0, len(world.track_features), (n, length))
    responses = rng.integers(0, 3, (n, length)).astype(np.int8)
    history = np.zeros((n, length, world.track_features.shape[1] + 3), np.float32)
    for position in range(length):
        at = np.arange(n) * length + position
        write_history_plays(history, at, world.track_features, tracks[:, position], responses[:, position])
    pools = np.concatenate([tracks, np.full((n, 4), -1)], axis=1)
    built = build_observations(
        world.track_features,
        world.user_features,
        np.zeros(n, np.int64),
        np.zeros((n, CONTEXT_FEATURES_DIM), np.float32),
        pools,
        tracks,
        responses,
        pools >= 0,
    )
    np.testing.assert_array_equal(history, built["history"])
    with pytest.raises(ValueError, match="C-contiguous"):
        write_history_plays(history[:, ::2], np.arange(n), world.track_features, tracks[:, 0], responses[:, 0])


# -- rewards ------------------------------------------------------------------------------------------


def test_diversity_bonus_pays_for_new_artists_only(world):
    env = ListeningSessionEnv(world=world, reward=RewardConfig(diversity_bonus=0.25))
    obs, _ = env.reset(seed=0)
    seen = set()
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(first_valid(obs))
        base = {"skip": 0.0, "listen": 0.5, "complete": 1.0}[info["response"]]
        assert reward == base + (0.25 if info["artist_id"] not in seen else 0.0)
        seen.add(info["artist_id"])
        if terminated or truncated:
            break


def test_diversity_counts_tracks_when_artists_are_unknown():
    anonymous = FakeWorld(seed=0, artists=False)
    env = ListeningSessionEnv(world=anonymous, reward=RewardConfig(diversity_bonus=0.25))
    env.reset(seed=0)
    _, reward, *_, info = env.step(0)
    assert info["artist_id"] is None
    assert reward == {"skip": 0.0, "listen": 0.5, "complete": 1.0}[info["response"]] + 0.25


def test_discovery_boost_multiplies_low_popularity_tracks(world):
    config = RewardConfig(discovery_boost=2.0, skip=-0.25, invalid_action=-1.0)
    flags = config.discovery_flags(world.tracks)
    popularity = world.tracks["us_pop_estimate"].to_numpy()
    assert flags.mean() == pytest.approx(0.2, abs=0.01)
    assert popularity[flags].max() < popularity[~flags].min()
    env = ListeningSessionEnv(world=world, reward=config)
    for seed in range(3):
        env.reset(seed=seed)
        for slot in range(5):
            _, reward, terminated, truncated, info = env.step(slot)
            base = {"skip": -0.25, "listen": 0.5, "complete": 1.0}[info["response"]]
            assert reward == base * (2.0 if flags[info["track_index"]] else 1.0)
            if terminated or truncated:
                break


def test_discovery_flags_prefer_the_worlds_own_column(world):
    tracks = world.tracks.assign(discovery_mode=np.arange(len(world.tracks)) % 3 == 0)
    flags = RewardConfig(discovery_boost=1.5).discovery_flags(tracks)
    np.testing.assert_array_equal(flags, tracks["discovery_mode"].to_numpy())
    assert RewardConfig().discovery_flags(tracks) is None


# -- the sim-to-real run ------------------------------------------------------------------------------


def test_groundtruth_run_sees_the_learned_world_and_hears_the_truth(world, groundtruth):
    learned = ListeningSessionEnv(world=world)
    truth = ListeningSessionEnv(world=world, responder=groundtruth)
    assert learned.oracle is None and truth.oracle is not None
    obs_l, _ = learned.reset(seed=6)
    obs_t, _ = truth.reset(seed=6)
    assert gym.utils.env_checker.data_equivalence(obs_l, obs_t, exact=True)

    gt_users = groundtruth.user_index(world.user_ids[[truth.user]])
    oracle_probs = truth.oracle.response_probs()
    assert oracle_probs.shape == (1, truth.pool_size, 3)
    gt_tracks = groundtruth.track_index(world.tracks["track_id"].to_numpy()[truth.pool])
    saved = truth.get_state()
    contexts = Contexts(saved["context_type"], saved["hour"], saved["attention"])
    state = groundtruth.session_model.initial_state(gt_users, contexts)
    np.testing.assert_allclose(oracle_probs[0], groundtruth.session_model.response_probs(state, gt_tracks[None])[0])
    _, _, _, _, info_l = learned.step(0)
    _, _, _, _, info_t = truth.step(0)
    assert info_l["track_id"] == info_t["track_id"]
    np.testing.assert_allclose(info_t["response_probs"], oracle_probs[0, 0])
    assert not np.allclose(info_l["response_probs"], info_t["response_probs"])
    np.testing.assert_array_equal(truth.oracle.state["position"], [1])
    assert truth.oracle.action_mask[0, 0] == 0 and truth.oracle.leave_probs().shape == (1,)


def test_groundtruth_needs_a_world_with_a_truth(world, monkeypatch):
    module = types.ModuleType("world_model.world")
    module.groundtruth_for = lambda _world: None
    monkeypatch.setitem(sys.modules, "world_model.world", module)
    with pytest.raises(ValueError, match="has no ground truth"):
        ListeningSessionEnv(world=world, responder="groundtruth")
    with pytest.raises(ValueError, match="groundtruth_seed"):
        ListeningSessionEnv(world=world, groundtruth_seed=3)


def test_groundtruth_of_other_logs_is_refused(world):
    other = FakeGroundTruth(FakeWorld(seed=0, n_users=10), seed=1)
    with pytest.raises(ValueError, match="not built from its logs"):
        ListeningSessionEnv(world=world, responder=other)


# -- fuzzing ------------------------------------------------------------------------------------------

FUZZ_WORLDS = {"full": FakeWorld(seed=5), "padded": FakeWorld(seed=6, n_tracks=45)}
operation = st.one_of(
    st.tuples(st.just("masked"), st.integers(0, 10**6)),
    st.tuples(st.just("any"), st.integers(0, 47)),
    st.tuples(st.just("reset"), st.integers(0, 2**31)),
)


@pytest.mark.parametrize("name", FUZZ_WORLDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=40, max_size=80), strict=st.booleans())
def test_fuzz_random_actions_never_crash_and_stay_in_the_space(name, operations, strict):
    env = ListeningSessionEnv(world=FUZZ_WORLDS[name], pool_size=48, playlist_length=15, strict=strict)
    space = env.observation_space
    obs, _ = env.reset(seed=0)
    done = False
    for kind, value in operations:
        if kind == "reset":
            obs, _ = env.reset(seed=value)
            done = False
            assert space.contains(obs)
            continue
        valid = np.flatnonzero(obs["action_mask"])
        action = valid[value % len(valid)] if kind == "masked" and len(valid) else value
        if done:
            with pytest.raises(gym.error.ResetNeeded):
                env.step(action)
            continue
        if strict and not obs["action_mask"][action]:
            with pytest.raises(ValueError, match=f"slot {action} is invalid"):
                env.step(action)
            continue
        new_obs, reward, terminated, truncated, info = env.step(action)
        assert space.contains(new_obs)
        assert STEP_INFO_KEYS <= info.keys() and isinstance(reward, float)
        assert info["invalid_action"] == (not obs["action_mask"][action])
        if info["invalid_action"]:
            assert reward == -1.0 and np.array_equal(new_obs["history_mask"], obs["history_mask"])
        obs, done = new_obs, terminated or truncated
        assert ("session" in info) == done


def test_context_features_are_the_one_hot_and_the_hour_on_the_circle() -> None:
    context_type = np.repeat(np.arange(6, dtype=np.int8), 24)
    hour = np.tile(np.arange(24, dtype=np.int8), 6)
    features = context_features(Contexts(context_type, hour, np.zeros(len(hour), np.float32)))
    assert features.dtype == np.float32 and features.shape == (144, 8)
    np.testing.assert_array_equal(features[:, :6], np.eye(6, dtype=np.float32)[context_type])
    angle = 2.0 * np.pi * hour.astype(np.float32) / 24.0
    np.testing.assert_array_equal(features[:, 6], np.sin(angle))
    np.testing.assert_array_equal(features[:, 7], np.cos(angle))
    features[0, 0] = 5.0  # a new array: the table behind it is untouched
    assert context_features(Contexts(context_type[:1], hour[:1], np.zeros(1, np.float32)))[0, 0] == 1.0
    for bad_type, bad_hour in ((0, 24), (0, -1), (6, 3), (-1, 3)):
        with pytest.raises(ValueError, match="out of range"):
            context_features(Contexts(np.array([bad_type], np.int8), np.array([bad_hour], np.int8), np.zeros(1)))


def test_compact_observations_expand_to_the_full_ones(world) -> None:
    full = ListeningSessionEnv(world=world, playlist_length=6, pool_size=30)
    compact = ListeningSessionEnv(world=world, playlist_length=6, pool_size=30, observation="compact")
    quiet_check_env(compact)
    features = (world.track_features, world.user_features)
    rng = np.random.default_rng(1)
    for episode in range(5):
        obs, _ = full.reset(seed=episode)
        small, _ = compact.reset(seed=episode)
        done = False
        while not done:
            assert compact.observation_space.contains(small)
            assert data_equivalence(expand_observations(*features, small), obs, exact=True)
            action = int(rng.integers(0, 30))  # valid or not
            obs, reward, terminated, truncated, info = full.step(action)
            small, small_reward, small_terminated, small_truncated, small_info = compact.step(action)
            assert (reward, terminated, truncated) == (small_reward, small_terminated, small_truncated)
            assert data_equivalence(info, small_info, exact=True)
            done = terminated or truncated
    compact.reset(seed=9)
    restored = ListeningSessionEnv(world=world, playlist_length=6, pool_size=30, observation="compact")
    for slot in range(12):  # round trips at every step: the same continuation and the same next episodes
        restored.set_state(compact.get_state())
        assert data_equivalence(restored._observation(), compact._observation(), exact=True)
        step, restored_step = compact.step(slot % 5), restored.step(slot % 5)
        assert data_equivalence(step, restored_step, exact=True)
        if step[2] or step[3]:
            assert data_equivalence(compact.reset(), restored.reset(), exact=True)
    with pytest.raises(ValueError, match="observation must be one of"):
        ListeningSessionEnv(world=world, observation="indices")  # type: ignore[arg-type]
