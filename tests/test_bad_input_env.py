"""The catalogue of bad input to the environments: constructor arguments, actions, RewardConfig.

Every case asserts the error type and that the message names the argument, the field or the
action at fault, and, for actions, that a rejected action changes nothing. Cases handled before
this catalogue are in the same tables (marked "held"). One rule holds for the single, the vector and
the tensor vector env: sizes and seeds are integers (Python or numpy, never bool, float or text),
and an action is an integer slot.
"""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from fakes import FakeWorld
from gymnasium.utils.env_checker import data_equivalence

import musicenv  # noqa: F401  (registers the id)
from musicenv.env import ListeningSessionEnv
from musicenv.registration import ENV_ID
from musicenv.rewards import RewardConfig
from musicenv.vector_env import ListeningSessionVectorEnv, make_vector_env

WORLD = FakeWorld(seed=0)

# RewardConfig ------------------------------------------------------------------------------------

REWARD_FIELDS = (
    "skip",
    "listen",
    "complete",
    "invalid_action",
    "diversity_bonus",
    "discovery_boost",
    "discovery_popularity_quantile",
)


@pytest.mark.parametrize("field", REWARD_FIELDS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, np.float32("nan")], ids=["nan", "inf", "-inf", "f32nan"]
)
def test_reward_config_rejects_non_finite_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^RewardConfig\.{field} must be a finite number"):
        RewardConfig(**{field: value})


@pytest.mark.parametrize("field", REWARD_FIELDS)
@pytest.mark.parametrize("value", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_reward_config_rejects_integers_too_large_for_a_float_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"^RewardConfig\.{field} must be a finite number, got an integer too large"):
        RewardConfig(**{field: value})


@pytest.mark.parametrize("field", REWARD_FIELDS)
@pytest.mark.parametrize("value", ["0.5", None, True], ids=["text", "none", "bool"])
def test_reward_config_rejects_non_numbers_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"^RewardConfig\.{field} must be a number"):
        RewardConfig(**{field: value})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"skip": -0.5, "invalid_action": -0.5}, r"RewardConfig\.invalid_action=-0\.5 must be below"),  # held
        ({"discovery_boost": -1.0}, r"RewardConfig\.discovery_boost=-1\.0 must be non-negative"),  # held
        ({"discovery_popularity_quantile": 1.0}, r"RewardConfig\.discovery_popularity_quantile=1\.0 must lie"),  # held
    ],
)
def test_reward_config_rejects_values_out_of_range(fields: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RewardConfig(**fields)


def test_reward_config_stores_numbers_as_floats() -> None:
    config = RewardConfig(complete=np.float32(2.0), listen=1, invalid_action=np.int64(-3))
    assert (config.complete, config.listen, config.invalid_action) == (2.0, 1.0, -3.0)
    assert all(type(getattr(config, field)) is float for field in REWARD_FIELDS)


# Constructor arguments -----------------------------------------------------------------------------

ARGUMENT_CASES = [
    ("playlist_length", 2.5, TypeError, "playlist_length must be an integer, got 2.5 (float)"),
    ("playlist_length", "20", TypeError, "playlist_length must be an integer, got '20' (str)"),
    ("playlist_length", None, TypeError, "playlist_length must be an integer, got None"),
    ("playlist_length", True, TypeError, "playlist_length must be an integer, got True (bool)"),
    ("playlist_length", 0, ValueError, "playlist_length must be at least 1, got 0"),  # held
    ("pool_size", 2.5, TypeError, "pool_size must be an integer, got 2.5"),
    ("pool_size", np.float64(10), TypeError, "pool_size must be an integer"),
    ("pool_size", -3, ValueError, "pool_size must be at least 1, got -3"),  # held
    ("groundtruth_seed", 1.5, TypeError, "groundtruth_seed must be an integer, got 1.5"),
    ("groundtruth_seed", "7", TypeError, "groundtruth_seed must be an integer"),
    ("groundtruth_seed", False, TypeError, "groundtruth_seed must be an integer"),
    ("groundtruth_seed", -1, ValueError, "groundtruth_seed must be at least 0"),
    ("strict", "no", TypeError, "strict must be True or False, got 'no'"),
    ("explicit_filter", 1, TypeError, "explicit_filter must be True or False, got 1"),
    ("reward", {"skip": -1.0}, TypeError, "reward must be a RewardConfig or None, got dict"),
    ("split", "test", ValueError, "split must be one of"),  # held
    ("observation", "pixels", ValueError, "observation must be one of"),  # held
]


@pytest.mark.parametrize(
    ("argument", "value", "error", "problem"), ARGUMENT_CASES, ids=[f"{c[0]}={c[1]!r}" for c in ARGUMENT_CASES]
)
@pytest.mark.parametrize("make", ["single", "vector", "tensor", "gymnasium.make"])
def test_bad_constructor_arguments_are_named(
    make: str, argument: str, value: Any, error: type[Exception], problem: str
) -> None:
    kwargs = {"world": WORLD, argument: value}
    with pytest.raises(error) as caught:
        if make == "single":
            ListeningSessionEnv(**kwargs)
        elif make == "vector":
            ListeningSessionVectorEnv(2, **kwargs)
        elif make == "tensor":
            make_vector_env(2, backend="torch", **kwargs)
        else:
            gym.make(ENV_ID, **kwargs)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("num_envs", "error", "problem"),
    [
        (2.0, TypeError, "num_envs must be an integer, got 2.0 (float)"),
        ("2", TypeError, "num_envs must be an integer, got '2' (str)"),
        (0, ValueError, "num_envs must be at least 1, got 0"),  # held
    ],
)
def test_bad_num_envs_is_named(num_envs: Any, error: type[Exception], problem: str) -> None:
    with pytest.raises(error, match=re.escape(problem)):
        ListeningSessionVectorEnv(num_envs, world=WORLD)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"backend": "jax"}, "backend must be 'numpy' or 'torch'"),  # held
        ({"device": "tpu:0"}, "device='tpu:0' is not a torch device"),  # held
        ({"backend": "torch", "obs_format": "jax"}, "obs_format must be 'numpy' or 'torch'"),  # held
    ],
)
def test_bad_vector_backend_arguments_are_named(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_vector_env(2, world=WORLD, **kwargs)


def test_numpy_integer_sizes_are_accepted_as_ints() -> None:
    env = ListeningSessionEnv(world=WORLD, playlist_length=np.int64(5), pool_size=np.int32(12), groundtruth_seed=None)
    assert (type(env.playlist_length), type(env.pool_size)) == (int, int)
    assert env.action_space == gym.spaces.Discrete(12)
    envs = ListeningSessionVectorEnv(np.int16(3), world=WORLD, playlist_length=np.uint8(5))
    assert (envs.num_envs, envs.playlist_length) == (3, 5)


# Actions -------------------------------------------------------------------------------------------

BAD_ACTIONS = [2.7, 2.0, np.float64(3.0), "3", True, np.True_, None, np.array([3]), [3], np.array(3.0), 3 + 0j]


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=[repr(a) for a in BAD_ACTIONS])
def test_single_env_rejects_non_integer_actions_and_stays_intact(action: Any) -> None:
    env = ListeningSessionEnv(world=WORLD)
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(ValueError, match=r"^action must be an integer slot .* of Discrete\(100\), got "):
        env.step(action)
    assert data_equivalence(env.get_state(), before, exact=True)
    env.step(2)  # the env is unharmed


@pytest.mark.parametrize("action", [-1, 100, np.int64(100)])
def test_single_env_rejects_actions_outside_the_space(action: Any) -> None:  # held
    env = ListeningSessionEnv(world=WORLD)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the action space Discrete\(100\)"):
        env.step(action)


@pytest.mark.parametrize("action", [3, np.int64(3), np.int32(3), np.uint8(3), np.array(3), np.array(3, np.int8)])
def test_single_env_accepts_every_integer_spelling_alike(action: Any) -> None:
    reference = ListeningSessionEnv(world=WORLD)
    reference.reset(seed=0)
    expected = reference.step(3)
    env = ListeningSessionEnv(world=WORLD)
    env.reset(seed=0)
    assert data_equivalence(env.step(action), expected, exact=True)


def _tensor_env() -> ListeningSessionVectorEnv:
    return make_vector_env(3, world=WORLD, backend="torch")


BAD_BATCHES = [
    np.array([0.0, 1.0, 2.0]),
    np.array([0, 1, 2.5]),
    [0, 1, 2.5],
    np.array([True, False, True]),
    np.array(["0", "1", "2"]),
    [0, 1, None],
    np.array([0, 1]),
    np.array([[0, 1, 2]]),
    3,
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("actions", BAD_BATCHES, ids=[repr(a) for a in BAD_BATCHES])
def test_vector_envs_reject_non_integer_batches_and_stay_intact(backend: str, actions: Any) -> None:
    envs = make_vector_env(3, world=WORLD, backend=backend)
    envs.reset(seed=0)
    before = envs.get_state()
    with pytest.raises(ValueError, match=r"^actions must be 3 integers"):
        envs.step(actions)
    assert data_equivalence(envs.get_state(), before, exact=True)
    envs.step(np.array([0, 1, 2]))  # the envs are unharmed


@pytest.mark.parametrize(
    "actions",
    [
        torch.tensor([0.0, 1.0, 2.0]),
        torch.tensor([True, False, True]),
        torch.tensor([0j, 1j, 2j]),
        torch.tensor([0, 1]),
    ],
    ids=["float", "bool", "complex", "short"],
)
def test_tensor_env_rejects_non_integer_tensors(actions: torch.Tensor) -> None:
    envs = _tensor_env()
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions must be 3 integers \(an integer tensor"):
        envs.step(actions)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_vector_envs_reject_slots_outside_the_space(backend: str) -> None:  # held
    envs = make_vector_env(3, world=WORLD, backend=backend)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the action space Discrete\(100\)"):
        envs.step(np.array([0, 1, 100]))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_vector_envs_accept_every_integer_spelling_alike(backend: str) -> None:
    steps = []
    for actions in ([0, 1, 2], (0, 1, 2), np.array([0, 1, 2], np.int32), np.array([0, 1, 2], np.uint8)):
        envs = make_vector_env(3, world=WORLD, backend=backend)
        envs.reset(seed=0)
        steps.append(envs.step(actions)[:4])
    assert all(data_equivalence(step, steps[0], exact=True) for step in steps)


# reset(seed=...) ----------------------------------------------------------------------------------

BAD_SEEDS = [
    (2.5, TypeError, r"^seed must be an integer, got 2\.5 \(float\)"),
    (True, TypeError, r"^seed must be an integer, got True \(bool\)"),
    (np.bool_(True), TypeError, r"^seed must be an integer"),
    (np.float64(3.0), TypeError, r"^seed must be an integer"),
    ("3", TypeError, r"^seed must be an integer, got '3' \(str\)"),
    (-1, ValueError, r"^seed must be at least 0"),
]


def _make(kind: str) -> Any:
    if kind == "single":
        return ListeningSessionEnv(world=WORLD)
    return make_vector_env(3, world=WORLD, backend=kind)


@pytest.mark.parametrize("kind", ["single", "numpy", "torch"])
@pytest.mark.parametrize(("seed", "error", "problem"), BAD_SEEDS, ids=[repr(s[0]) for s in BAD_SEEDS])
def test_reset_rejects_a_seed_that_is_not_a_non_negative_integer_naming_it(
    kind: str, seed: Any, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        _make(kind).reset(seed=seed)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(
    ("seeds", "error", "problem"),
    [
        ([0, 2.5, 1], TypeError, r"^seed\[1\] must be an integer, got 2\.5"),
        ([0, 1, True], TypeError, r"^seed\[2\] must be an integer, got True"),
        ([0, -1, 1], ValueError, r"^seed\[1\] must be at least 0"),
        (np.array([0.0, 1.0, 2.0]), TypeError, r"^seed\[0\] must be an integer"),
        ([0, 1], ValueError, r"^seed: got 2 seeds for 3 sub-environments"),
    ],
    ids=["float entry", "bool entry", "negative entry", "float array", "too few"],
)
def test_vector_reset_checks_each_seed_of_a_list_naming_it(
    backend: str, seeds: Any, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        make_vector_env(3, world=WORLD, backend=backend).reset(seed=seeds)


@pytest.mark.parametrize("kind", ["single", "numpy", "torch"])
def test_reset_takes_a_numpy_integer_seed_as_the_same_int(kind: str) -> None:
    spellings = [3, np.int64(3), np.int32(3), np.uint8(3)]
    if kind != "single":
        spellings += [[3, 4, 5], np.array([3, 4, 5]), [np.int64(3), np.int16(4), 5]]
    observations = [_make(kind).reset(seed=seed)[0] for seed in spellings]
    for observation in observations[1:]:
        assert data_equivalence(_plain(observation), _plain(observations[0]))


def _plain(observation: dict[str, Any]) -> dict[str, Any]:
    return {key: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for key, v in observation.items()}
