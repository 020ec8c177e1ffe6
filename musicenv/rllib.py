"""``ListeningSession-v0`` in the shape Ray RLlib's action-masking RLModule reads.

RLlib's PPO with action masking (``ray.rllib.examples.rl_modules.classes.action_masking_rlm.
ActionMaskingTorchRLModule``) expects a ``Dict`` observation of exactly two keys:
``"action_mask"`` (float 0/1 per action) and ``"observations"`` (what the policy network reads).
:class:`MaskedListeningSession` wraps :class:`~musicenv.env.ListeningSessionEnv` into that shape:
the mask is the env's ``action_mask``, and the observations are every other key flattened
(``gymnasium.spaces.flatten`` of user, context, history, history_mask and candidates, in the order
of the env's observation space). The module adds ``log(mask)`` (clamped to a large negative
number) to the logits, so masked slots get probability zero: PPO never plays a padded or
already-played slot.

Worlds travel by path. ``config["world"]`` should be a saved world folder (``World.save``) that
every Ray worker can read: each env runner loads it itself (:func:`world_model.world.load_world`),
nothing is pickled and sent over the network. ``"default"`` also works on one machine (each
worker loads the embedded default world from its ``MUSICENV_HOME`` cache). This module imports no
Ray, so musicenv works without it; ``examples/rllib_ppo.py`` is the training script.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from musicenv.env import ListeningSessionEnv

RLLIB_ENV_ID = "ListeningSession-rllib"
"""The name :func:`register_with_ray` registers :class:`MaskedListeningSession` under."""

_INFO_KEYS = ("response", "track_id", "invalid_action", "p_complete")
"""The step info kept for RLlib (its episodes store infos; the rest is for the env's own users)."""


class MaskedListeningSession(gym.Env):
    """``ListeningSession-v0`` with a ``{"action_mask", "observations"}`` observation (see the module docstring).

    Args:
        config: the env's keyword arguments (an RLlib ``env_config``): ``world`` (a saved world
            folder path, or ``"default"``), and any other :class:`~musicenv.env.ListeningSessionEnv`
            argument (``pool_size``, ``playlist_length``, ``split``, ...). World objects are
            refused: a worker must load its world from a path, not receive it pickled.
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        kwargs = dict(config or {})
        world = kwargs.pop("world", "default")
        if not isinstance(world, (str, os.PathLike)):
            raise TypeError(
                f"config['world'] must be a saved world folder (a path) or 'default', not {type(world).__name__}: "
                "Ray workers load the world themselves instead of receiving a pickled copy"
            )
        self.env = ListeningSessionEnv(world=world, **kwargs)
        inner = self.env.observation_space
        self._features = spaces.Dict({key: space for key, space in inner.spaces.items() if key != "action_mask"})
        size = self.env.pool_size
        self.observation_space = spaces.Dict(
            {
                "action_mask": spaces.Box(0.0, 1.0, (size,), dtype=np.float32),
                "observations": spaces.flatten_space(self._features),
            }
        )
        self.action_space = self.env.action_space
        self.render_mode = self.env.render_mode

    def _convert(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = {key: obs[key] for key in self._features.spaces}
        return {
            "action_mask": obs["action_mask"].astype(np.float32),
            "observations": spaces.flatten(self._features, features).astype(np.float32),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        return self._convert(obs), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        kept = {key: info[key] for key in _INFO_KEYS if key in info}
        return self._convert(obs), float(reward), terminated, truncated, kept

    def render(self) -> str | None:
        return self.env.render()


def make_masked_env(config: Mapping[str, Any] | None = None) -> MaskedListeningSession:
    """RLlib's env creator: ``config`` is the ``env_config`` (see :class:`MaskedListeningSession`)."""
    return MaskedListeningSession(config)


def register_with_ray(name: str = RLLIB_ENV_ID) -> str:
    """Register :func:`make_masked_env` with Ray Tune's registry under ``name`` (needs ``ray``); return ``name``."""
    from ray.tune.registry import register_env

    register_env(name, make_masked_env)
    return name
