"""The vector env's tensor path (:class:`TorchListeningSessionVectorEnv`) plays the numpy path's episodes exactly.

Run on the CPU everywhere (``device="cpu"``); set ``MUSICENV_TEST_DEVICE=cuda``
to run the same comparisons with the tensor path on a GPU (and ``MUSICENV_TEST_WORLD`` to a saved
world folder to compare on it instead of the embedded default world).
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from fakes import FakeGroundTruth, random_policy

import musicenv  # noqa: F401  (registers the id)
from musicenv.registration import ENV_ID
from musicenv.rewards import RewardConfig
from musicenv.torch_vector_env import TorchListeningSessionVectorEnv
from musicenv.vector_base import ListeningSessionVectorEnvBase
from musicenv.vector_env import ListeningSessionVectorEnv, make_vector_env

torch.set_num_threads(1)
DEVICE = os.environ.get("MUSICENV_TEST_DEVICE", "cpu")


@pytest.fixture(scope="module")
def learned_world():
    """The embedded default world, or the saved world folder named by ``MUSICENV_TEST_WORLD``."""
    module = pytest.importorskip("world_model.world", reason="world_model.world is not built yet")
    folder = os.environ.get("MUSICENV_TEST_WORLD")
    return module.load_world(folder) if folder else module.default_world()


def assert_same_steps(numpy_env, tensor_env, steps: int, seed: int, invalid_share: float = 0.1) -> None:
    """Both envs, the same seed and actions: equal observations, rewards, flags and infos, step by step."""
    obs_a, _ = numpy_env.reset(seed=seed)
    obs_b, _ = tensor_env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    ended = 0
    for step in range(steps):
        for key in obs_a:
            assert obs_b[key].dtype == obs_a[key].dtype, key
            np.testing.assert_allclose(obs_b[key], obs_a[key], rtol=0, atol=1e-6, err_msg=f"step {step} {key}")
        actions = random_policy(rng, obs_a["action_mask"], invalid_share)
        obs_a, rew_a, term_a, trunc_a, info_a = numpy_env.step(actions)
        obs_b, rew_b, term_b, trunc_b, info_b = tensor_env.step(actions)
        np.testing.assert_allclose(rew_b, rew_a, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(term_b, term_a)
        np.testing.assert_array_equal(trunc_b, trunc_a)
        assert set(info_b) == set(info_a)
        for key in ("response", "track_id", "artist_id", "track_index", "invalid_action", "position"):
            np.testing.assert_array_equal(info_b[key], info_a[key], err_msg=f"step {step} {key}")
        np.testing.assert_allclose(info_b["response_probs"], info_a["response_probs"], rtol=0, atol=1e-5)
        if "session" in info_a:
            ended += int(info_a["_session"].sum())
            np.testing.assert_array_equal(info_b["_final_obs"], info_a["_final_obs"])
            for key, value in info_a["session"].items():
                np.testing.assert_allclose(info_b["session"][key], value, rtol=0, atol=1e-9)
            for row in np.flatnonzero(info_a["_final_obs"]):
                for key, value in info_a["final_obs"][row].items():
                    np.testing.assert_allclose(info_b["final_obs"][row][key], value, rtol=0, atol=1e-6)
    assert ended > 0, "the comparison must cross autoresets"
    for name in ("users", "pools", "history_tracks", "history_responses", "played", "lengths", "steps"):
        np.testing.assert_array_equal(getattr(tensor_env, name), getattr(numpy_env, name), err_msg=name)


def test_backend_selection(world):
    """make_vector_env (the registered vector entry point) picks the path; the two classes are siblings."""
    assert type(make_vector_env(2, world=world)) is ListeningSessionVectorEnv
    env = make_vector_env(2, world=world, backend="torch")
    assert type(env) is TorchListeningSessionVectorEnv and env.device == torch.device("cpu")
    assert type(make_vector_env(2, world=world, obs_format="torch")) is TorchListeningSessionVectorEnv
    assert not isinstance(env, ListeningSessionVectorEnv)
    assert isinstance(env, ListeningSessionVectorEnvBase)
    with pytest.raises(ValueError, match="backend"):
        make_vector_env(2, world=world, backend="jax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="obs_format"):
        make_vector_env(2, world=world, backend="torch", obs_format="jax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        make_vector_env(2, world=world, device="cpu", backend="numpy", obs_format="torch")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            make_vector_env(2, world=world, device="cuda")
    vec = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", world=world, backend="torch")
    assert isinstance(vec, TorchListeningSessionVectorEnv)


def test_tensor_path_equals_numpy_path_on_a_fake_world(world):
    """A numpy session model (the host adapter), invalid actions, padding-free pools, both reward options.

    The rewards agree to 1e-12: both paths compute them with :func:`musicenv.rewards.play_rewards`
    on float64 (a boost of 1.3 rounded to float32 would show).
    """
    reward = RewardConfig(diversity_bonus=0.2, discovery_boost=1.3)
    kwargs = {"world": world, "pool_size": 30, "playlist_length": 8, "reward": reward}
    assert_same_steps(
        ListeningSessionVectorEnv(5, **kwargs),
        TorchListeningSessionVectorEnv(5, device=DEVICE, **kwargs),
        60,
        3,
    )


def test_tensor_path_equals_numpy_path_with_a_ground_truth_responder(world):
    groundtruth = FakeGroundTruth(world, seed=1)
    kwargs = {"world": world, "responder": groundtruth, "pool_size": 20, "playlist_length": 6}
    numpy_env = ListeningSessionVectorEnv(3, **kwargs)
    tensor_env = TorchListeningSessionVectorEnv(3, device=DEVICE, **kwargs)
    assert_same_steps(numpy_env, tensor_env, 30, 11)
    np.testing.assert_allclose(tensor_env.oracle.leave_probs(), numpy_env.oracle.leave_probs())


def test_tensor_path_equals_numpy_path_on_the_learned_world(learned_world):
    """The learned world's model in torch against its numpy path (B * K under the numpy threshold)."""
    kwargs = {"world": learned_world, "pool_size": 50}
    numpy_env = ListeningSessionVectorEnv(6, **kwargs)
    tensor_env = TorchListeningSessionVectorEnv(6, device=DEVICE, **kwargs)
    assert type(tensor_env.responder).__name__ == "TorchLearnedSessionModel"
    assert_same_steps(numpy_env, tensor_env, 60, 5)


def test_state_round_trip_between_paths(world):
    """get_state of one path restores into the other, and both continue identically."""
    kwargs = {"world": world, "pool_size": 30, "playlist_length": 8}
    numpy_env = ListeningSessionVectorEnv(4, **kwargs)
    tensor_env = TorchListeningSessionVectorEnv(4, device=DEVICE, **kwargs)
    numpy_env.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(5):
        numpy_env.step(random_policy(rng, numpy_env.action_masks(), 0.0))
    tensor_env.set_state(numpy_env.get_state())
    for key, value in numpy_env.get_state().items():
        np.testing.assert_array_equal(np.asarray(tensor_env.get_state()[key]), np.asarray(value), err_msg=key)
    for _ in range(12):
        actions = random_policy(rng, numpy_env.action_masks(), 0.0)
        _, rew_a, term_a, _, _ = numpy_env.step(actions)
        _, rew_b, term_b, _, _ = tensor_env.step(actions)
        np.testing.assert_allclose(rew_b, rew_a)
        np.testing.assert_array_equal(term_b, term_a)


def test_torch_observations_stay_on_the_device(world):
    env = TorchListeningSessionVectorEnv(4, world=world, pool_size=30, device=DEVICE, obs_format="torch")
    obs, _ = env.reset(seed=0)
    assert all(isinstance(value, torch.Tensor) and value.device.type == env.device.type for value in obs.values())
    reference = ListeningSessionVectorEnv(4, world=world, pool_size=30)
    expected, _ = reference.reset(seed=0)
    for key, value in expected.items():
        np.testing.assert_allclose(obs[key].cpu().numpy(), value, atol=1e-6)
    for _ in range(20):
        mask = env.action_mask_tensor()
        actions = torch.argmax(mask.float() + torch.rand(mask.shape, device=mask.device) * 0.5, dim=1)
        obs, rewards, _, _, info = env.step(actions)
        assert isinstance(rewards, torch.Tensor) and rewards.shape == (4,)
        assert not bool(info["invalid_action"].any())
        assert info["response"].dtype == torch.int8
        if "final_obs" in info:
            assert set(info["final_obs"]) == set(obs)
    # Observations are fresh tensors unless copy=False.
    before = obs["action_mask"].clone()
    env.step(torch.argmax(env.action_mask_tensor().float(), dim=1))
    assert torch.equal(obs["action_mask"], before)
