"""The environments' ``responses=`` modes and ``info["disagreement"]``, on a fake ensemble of known members."""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest
from fakes import FakeGroundTruth, FakeWorld, ensemble_world, random_policy

import musicenv  # noqa: F401  (registers the id)
from musicenv.env import ListeningSessionEnv
from musicenv.registration import ENV_ID
from musicenv.responders import DEFAULT_PESSIMISM
from musicenv.vector_env import ListeningSessionVectorEnv, make_vector_env
from musicenv.world import RESPONSES, member_disagreement

SIZES = {"playlist_length": 8, "pool_size": 40}
STEP_KEYS = ("response", "response_probs", "track_index", "p_complete", "invalid_action", "position", "disagreement")


@pytest.fixture(scope="module")
def world() -> FakeWorld:
    return FakeWorld(seed=0)


@pytest.fixture(scope="module")
def ensemble() -> FakeWorld:
    return ensemble_world(seed=0)


def single_run(world, seed: int, steps: int, invalid_share: float = 0.1, **kwargs) -> list[tuple]:
    """(track, response code, reward, terminated, truncated, info) of a single env's steps over consecutive episodes."""
    env = ListeningSessionEnv(world=world, **SIZES, **kwargs)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = random_policy(rng, obs["action_mask"][None], invalid_share)[0]
        obs, reward, terminated, truncated, info = env.step(action)
        code = -1 if info["response"] is None else RESPONSES.index(info["response"])
        rows.append((info["track_index"], code, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, _ = env.reset()
    return rows


def digest(rows: list[tuple]) -> str:
    return hashlib.sha256(repr([row[:5] for row in rows]).encode()).hexdigest()[:16]


def vector_digest(world, **kwargs) -> str:
    envs = ListeningSessionVectorEnv(3, world=world, **SIZES, **kwargs)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=5)
    rows = []
    for _ in range(70):
        obs, rewards, terminated, truncated, info = envs.step(random_policy(rng, obs["action_mask"], 0.1))
        rows.append((info["track_index"].tolist(), rewards.tolist(), terminated.tolist(), truncated.tolist()))
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


# Recorded from the code before responses= existed: "mean" must replay it, draw for draw.
BEFORE_SINGLE, BEFORE_VECTOR = "4b8aed63792d6419", "545a3eb7aecd6bd8"


@pytest.mark.parametrize("responses", [None, "mean", "sample", "pessimistic"])
def test_a_single_model_answers_as_before_in_every_mode(world, responses):
    kwargs = {} if responses is None else {"responses": responses}
    assert digest(single_run(world, 5, 200, **kwargs)) == BEFORE_SINGLE
    assert vector_digest(world, **kwargs) == BEFORE_VECTOR


@pytest.mark.parametrize("responses", ["mean", "sample", "pessimistic"])
def test_disagreement_is_in_every_info_and_zero_for_single_models(world, responses):
    truth = FakeGroundTruth(world, seed=1)
    for responder in (None, truth):
        rows = single_run(world, 3, 60, responder=responder, responses=responses)
        assert all(type(info["disagreement"]) is float and info["disagreement"] == 0.0 for *_, info in rows)
        envs = ListeningSessionVectorEnv(4, world=world, responder=responder, responses=responses, **SIZES)
        obs, _ = envs.reset(seed=0)
        _, _, _, _, info = envs.step(random_policy(np.random.default_rng(0), obs["action_mask"]))
        np.testing.assert_array_equal(info["disagreement"], np.zeros(4))


@pytest.mark.parametrize("responses", ["mean", "sample", "pessimistic"])
def test_disagreement_is_the_members_spread_on_the_played_track(ensemble, responses):
    model = ensemble.session_model
    env = ListeningSessionEnv(world=ensemble, responses=responses, **SIZES)
    obs, _ = env.reset(seed=2)
    values = env.reward_config.response_values
    for _ in range(6):
        state, slot = env.unwrapped._session(), int(np.flatnonzero(obs["action_mask"])[0])
        expected = member_disagreement(model.member_response_probs(state, env.pool[None, [slot]])[0, 0], values)
        obs, _, terminated, truncated, info = env.step(slot)
        assert info["disagreement"] == pytest.approx(float(expected), abs=1e-15) and info["disagreement"] > 0.01
        if terminated or truncated:
            break


def test_invalid_actions_have_no_disagreement_and_no_penalty_beyond_the_invalid_reward(ensemble):
    env = ListeningSessionEnv(world=ensemble, responses="pessimistic", pessimism=3.0, **SIZES)
    obs, _ = env.reset(seed=0)
    slot = int(np.flatnonzero(obs["action_mask"])[0])
    env.step(slot)
    _, reward, _, _, info = env.step(slot)
    assert info["invalid_action"] and info["disagreement"] == 0.0 and reward == env.reward_config.invalid_action


def test_a_kernel_that_reports_its_members_gives_the_same_disagreement(ensemble):
    reporting = ensemble_world(seed=0, reports_members=True)
    asked, reported = single_run(ensemble, 4, 80), single_run(reporting, 4, 80)
    assert digest(asked) == digest(reported)
    np.testing.assert_allclose([r[-1]["disagreement"] for r in reported], [r[-1]["disagreement"] for r in asked])


def test_sample_mode_replays_with_the_same_seed_and_draws_several_members(ensemble):
    env = ListeningSessionEnv(world=ensemble, responses="sample", **SIZES)
    members = []
    for seed in range(12):
        env.reset(seed=seed)
        members.append(int(env.get_state()["member"]))
    assert set(members) == {0, 1, 2}
    assert digest(single_run(ensemble, 9, 150, responses="sample")) == digest(
        single_run(ensemble, 9, 150, responses="sample")
    )


def test_sample_mode_answers_each_episode_with_its_member(ensemble):
    model = ensemble.session_model
    env = ListeningSessionEnv(world=ensemble, responses="sample", **SIZES)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        member = model.member(int(env.get_state()["member"]))
        state, slot = env.unwrapped._session(), int(np.flatnonzero(obs["action_mask"])[0])
        expected = member.response_probs(state, env.pool[None, [slot]])[0, 0]
        _, _, _, _, info = env.step(slot)
        np.testing.assert_array_equal(info["response_probs"], expected)


def test_sample_mode_draws_the_member_after_the_episode(ensemble):
    """The first episode after a seed meets mean mode's listener, pool and uniforms; the member is drawn last."""
    states = {}
    for responses in ("mean", "sample"):
        env = ListeningSessionEnv(world=ensemble, responses=responses, **SIZES)
        env.reset(seed=11)
        states[responses] = env.get_state()
    for key in ("user", "context_type", "hour", "attention", "pool", "uniforms"):
        np.testing.assert_array_equal(states["mean"][key], states["sample"][key])


def test_pessimistic_reward_is_the_mean_reward_minus_lambda_times_disagreement(ensemble):
    mean = single_run(ensemble, 6, 120, responses="mean")
    pessimistic = single_run(ensemble, 6, 120, responses="pessimistic", pessimism=0.7)
    assert [row[:2] for row in mean] == [row[:2] for row in pessimistic]
    for m, p in zip(mean, pessimistic, strict=True):
        assert p[-1]["disagreement"] == m[-1]["disagreement"]
        assert p[2] == pytest.approx(m[2] - 0.7 * m[-1]["disagreement"], abs=1e-12)
    assert sum(m[2] for m in mean) > sum(p[2] for p in pessimistic)


def test_pessimism_defaults_to_the_documented_value(ensemble):
    assert ListeningSessionEnv(world=ensemble).pessimism == DEFAULT_PESSIMISM
    assert ListeningSessionVectorEnv(2, world=ensemble).pessimism == DEFAULT_PESSIMISM


def vector_trace(envs, seed: int, steps: int) -> list[list[tuple]]:
    """Per sub-env: (action, reward, terminated, truncated, step info) of each step."""
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=seed)
    rows: list[list[tuple]] = [[] for _ in range(envs.num_envs)]
    for _ in range(steps):
        actions = random_policy(rng, obs["action_mask"], invalid_share=0.1)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        for i in range(envs.num_envs):
            step_info = {key: info[key][i] for key in STEP_KEYS}
            rows[i].append((int(actions[i]), float(rewards[i]), bool(terminated[i]), bool(truncated[i]), step_info))
    return rows


@pytest.mark.parametrize("responses", ["mean", "sample", "pessimistic"])
def test_each_sub_env_replays_the_single_env_in_every_mode(ensemble, responses):
    n, seed = 3, 40
    envs = ListeningSessionVectorEnv(n, world=ensemble, responses=responses, pessimism=0.5, **SIZES)
    for i, rows in enumerate(vector_trace(envs, seed, 50)):
        env = ListeningSessionEnv(world=ensemble, responses=responses, pessimism=0.5, **SIZES)
        env.reset(seed=seed + i)
        for action, reward, terminated, truncated, step_info in rows:
            _, single_reward, single_terminated, single_truncated, info = env.step(action)
            assert (single_terminated, single_truncated) == (terminated, truncated)
            assert single_reward == pytest.approx(reward, abs=1e-12)
            assert info["response"] == step_info["response"] and info["track_index"] == step_info["track_index"]
            np.testing.assert_allclose(info["response_probs"], step_info["response_probs"], atol=1e-12)
            assert info["disagreement"] == pytest.approx(step_info["disagreement"], abs=1e-12)
            if terminated or truncated:
                env.reset()


@pytest.mark.parametrize("responses", ["sample", "pessimistic"])
def test_the_tensor_path_answers_as_the_numpy_path(ensemble, responses):
    numpy_rows = vector_trace(ListeningSessionVectorEnv(3, world=ensemble, responses=responses, **SIZES), 8, 40)
    tensor_envs = make_vector_env(3, backend="torch", world=ensemble, responses=responses, **SIZES)
    for numpy_row, tensor_row in zip(numpy_rows, vector_trace(tensor_envs, 8, 40), strict=True):
        for (_, reward, *flags, info), (_, tensor_reward, *tensor_flags, tensor_info) in zip(
            numpy_row, tensor_row, strict=True
        ):
            assert flags == tensor_flags and reward == pytest.approx(tensor_reward, abs=1e-12)
            assert info["disagreement"] == pytest.approx(tensor_info["disagreement"], abs=1e-12)


def test_sample_snapshots_resume_exactly(ensemble):
    env = ListeningSessionEnv(world=ensemble, responses="sample", **SIZES)
    obs, _ = env.reset(seed=21)
    env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    snapshot = env.get_state()
    restored = ListeningSessionEnv(world=ensemble, responses="sample", **SIZES)
    restored.set_state(snapshot)
    for _ in range(30):
        slot = int(np.flatnonzero(env.action_masks())[0])
        a, b = env.step(slot), restored.step(slot)
        assert a[1:4] == b[1:4] and a[4]["response_probs"].tolist() == b[4]["response_probs"].tolist()
        if a[2] or a[3]:
            env.reset(), restored.reset()

    envs = ListeningSessionVectorEnv(3, world=ensemble, responses="sample", **SIZES)
    vector_trace(envs, 3, 7)
    vector_snapshot = envs.get_state()
    later = vector_trace_from(envs, 20)
    again = ListeningSessionVectorEnv(3, world=ensemble, responses="sample", **SIZES)
    again.set_state(vector_snapshot)
    assert repr(vector_trace_from(again, 20)) == repr(later)
    tensor = make_vector_env(3, backend="torch", world=ensemble, responses="sample", **SIZES)
    tensor.set_state(vector_snapshot)
    np.testing.assert_array_equal(tensor.get_state()["members"], vector_snapshot["members"])


def vector_trace_from(envs, steps: int) -> list:
    """Rewards, flags and responses of ``steps`` steps of the first valid slots, from the env as it is."""
    out = []
    for _ in range(steps):
        _, rewards, terminated, truncated, info = envs.step(envs.action_masks().argmax(axis=1))
        out.append((rewards.tolist(), terminated.tolist(), truncated.tolist(), info["response"].tolist()))
    return out


def test_a_sample_snapshot_does_not_restore_into_a_mean_env(ensemble):
    env = ListeningSessionEnv(world=ensemble, responses="sample", **SIZES)
    seed = next(s for s in range(50) if int((env.reset(seed=s), env.get_state()["member"])[1]) > 0)
    env.reset(seed=seed)
    with pytest.raises(ValueError, match="responses='mean' has 1 model"):
        ListeningSessionEnv(world=ensemble, **SIZES).set_state(env.get_state())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"responses": "median"}, ValueError, r"^responses must be one of \('mean', 'sample', 'pessimistic'\)"),
        ({"responses": None}, ValueError, r"^responses must be one of"),
        ({"pessimism": -0.5}, ValueError, r"^pessimism must be at least 0"),
        ({"pessimism": float("nan")}, ValueError, r"^pessimism must be a finite number"),
        ({"pessimism": float("inf")}, ValueError, r"^pessimism must be a finite number"),
        ({"pessimism": "1"}, TypeError, r"^pessimism must be a number"),
        ({"pessimism": True}, TypeError, r"^pessimism must be a number"),
    ],
)
def test_bad_responses_and_pessimism_raise_naming_the_argument(world, kwargs, error, message):
    with pytest.raises(error, match=message):
        ListeningSessionEnv(world=world, **kwargs)
    with pytest.raises(error, match=message):
        ListeningSessionVectorEnv(2, world=world, **kwargs)
    with pytest.raises(error, match=message):
        make_vector_env(2, backend="torch", world=world, **kwargs)


def test_make_and_make_vec_pass_responses_through(ensemble):
    env = gym.make(ENV_ID, world=ensemble, responses="pessimistic", pessimism=0.25, **SIZES)
    assert (env.unwrapped.responses, env.unwrapped.pessimism) == ("pessimistic", 0.25)
    envs = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", world=ensemble, responses="sample")
    assert envs.responses == "sample"
