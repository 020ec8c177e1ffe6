"""Wrappers that let agents without action masking train on ``ListeningSession-v0``.

Plain stable-baselines3 PPO and DQN know nothing of ``action_masks()``: they pick any of the M
slots, including ones already played. :class:`FlatListeningSession` makes the environment a
plain ``Box`` -> ``Discrete(M)`` problem for them::

    import gymnasium as gym
    import musicenv
    from musicenv.wrappers import FlatListeningSession
    from stable_baselines3 import DQN

    env = FlatListeningSession(gym.make("ListeningSession-v0"))
    DQN("MlpPolicy", env).learn(50_000)

Agents that can mask (sb3-contrib's ``MaskablePPO``, the project's AH-DQN) should use the
environment as it is: masking is both faster to learn and exact.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

InvalidActions = Literal["best_valid", "penalty"]


class FlatListeningSession(gym.Wrapper[np.ndarray, np.int64, dict[str, np.ndarray], np.int64]):
    """``ListeningSession-v0`` with a flat observation and every action playable.

    Observation: the ``Dict`` observation flattened into one float32 ``Box``
    (``gymnasium.spaces.flatten``: the keys in sorted order, each raveled; ``action_mask`` is
    included, so the policy can still learn which slots are spent).

    Actions: ``Discrete(M)`` as before. What an invalid slot (already played, or padding) does is
    ``invalid_actions``:

    * ``"best_valid"`` (default): the action is replaced by the **highest-ranked valid slot** (pools
      are ordered best first by the retrieval score), so every step plays a track and the agent
      falls back to the retrieval ranking where it has nothing better. Why this default: with a
      penalty, a deterministic policy (DQN's greedy argmax, PPO's ``deterministic=True``) that
      picks a played slot sees the same observation again and picks it again, burning the rest
      of the session on penalties. Every step's ``info`` says whether the action was remapped
      (``remapped_action``) and keeps the agent's choice (``requested_action``).
    * ``"penalty"``: the action goes to the environment unchanged and earns its invalid-action
      penalty (``RewardConfig.invalid_action``), which teaches the agent to avoid spent slots.

    Args:
        env: a ``ListeningSession-v0`` environment (wrapped or not).
        invalid_actions: ``"best_valid"`` or ``"penalty"``.
    """

    def __init__(self, env: gym.Env, invalid_actions: InvalidActions = "best_valid") -> None:
        if invalid_actions not in ("best_valid", "penalty"):
            raise ValueError(f"invalid_actions must be 'best_valid' or 'penalty', got {invalid_actions!r}")
        super().__init__(env)
        self.invalid_actions = invalid_actions
        self._dict_space = env.observation_space
        self.observation_space = spaces.flatten_space(self._dict_space)
        self._mask: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._flatten(obs), info

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        requested = int(action)
        played = requested
        mask = self._mask
        if self.invalid_actions == "best_valid" and mask is not None and not mask[requested] and mask.any():
            played = int(np.argmax(mask))
        obs, reward, terminated, truncated, info = self.env.step(played)
        info = {**info, "remapped_action": played != requested, "requested_action": requested}
        return self._flatten(obs), reward, terminated, truncated, info

    def _flatten(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self._mask = obs["action_mask"].astype(bool)
        return spaces.flatten(self._dict_space, obs).astype(np.float32, copy=False)
