"""``likeability``: the candidate the likeability classifier finds most likeable for the listener.

The classifier (:mod:`world_model.likeability`) predicts like = complete from the listener's
features and the track's acoustic block; it is trained on the plays of the world's training
listeners only (never the evaluation listeners the agent is measured on), from the world's
listening log (:func:`agents.world_logs.world_log`). Like ``als`` it ignores the session so far:
the classifier has no notion of one.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent, Observation, masked_argmax
from agents.baselines import feature_block
from agents.world_logs import WorldLog, world_log
from musicenv.artifacts import read_arrays
from musicenv.world import World
from world_model.likeability import COMPLETE, LikeabilityClassifier, LikeabilityConfig

_FITTED: weakref.WeakKeyDictionary[Any, dict[LikeabilityConfig, LikeabilityClassifier]] = weakref.WeakKeyDictionary()
"""Classifiers per world and config: a deterministic fit, never modified, so agents share it."""


def like_inputs(world: World, users: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """``(n, d_user + d_acoustic)`` classifier inputs of (listener, track) index pairs."""
    acoustic = feature_block(world, "acoustic")
    return np.concatenate(
        [np.asarray(world.user_features)[users], np.asarray(world.track_features)[tracks, acoustic]], axis=1
    ).astype(np.float32)


def listener_plays(world: World, log: WorldLog, held_out: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and likes of the plays of the training listeners (``held_out=False``) or the evaluation ones."""
    rows = np.asarray(world.eval_users, dtype=bool)[log.users] == held_out
    return like_inputs(world, log.users[rows], log.tracks[rows]), log.responses[rows] == COMPLETE


def fitted_classifier(world: World, config: LikeabilityConfig) -> LikeabilityClassifier:
    """The classifier trained on the world's training listeners' plays (shared per world and config)."""
    fitted = _FITTED.setdefault(world, {})
    if config not in fitted:
        inputs, likes = listener_plays(world, world_log(world, seed=config.seed), held_out=False)
        fitted[config] = LikeabilityClassifier.fit(inputs, likes, config)
    return fitted[config]


class LikeabilityAgent(Agent):
    """The valid candidate with the highest predicted P(like) for the observation's listener.

    The inputs come from the observation itself (``"user"`` and the candidates' acoustic block),
    so the agent needs no lookup. The classifier is trained on first use (seconds on the
    default world) and saved with the agent.

    Args:
        world: the world whose log the classifier learns from (its ``"acoustic"`` track block).
        hidden_size, epochs, seed: the classifier's :class:`~world_model.likeability.LikeabilityConfig`.
    """

    name = "likeability"

    def __init__(self, world: World, hidden_size: int = 64, epochs: int = 5, seed: int = 0) -> None:
        super().__init__(world)
        self.settings = LikeabilityConfig(hidden_size=int(hidden_size), epochs=int(epochs), seed=int(seed))
        self.acoustic = feature_block(world, "acoustic")
        self._classifier: LikeabilityClassifier | None = None

    @property
    def classifier(self) -> LikeabilityClassifier:
        """The trained classifier (trained lazily)."""
        if self._classifier is None:
            self._classifier = fitted_classifier(self.world, self.settings)
        return self._classifier

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        candidates = obs["candidates"][..., self.acoustic]
        users = np.broadcast_to(obs["user"][:, None, :], (*candidates.shape[:2], obs["user"].shape[1]))
        probs = self.classifier.like_probs(np.concatenate([users, candidates], axis=-1))
        return masked_argmax(probs, obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {"hidden_size": self.settings.hidden_size, "epochs": self.settings.epochs, "seed": self.settings.seed}

    def _save_state(self, folder: Path) -> None:
        arrays, weights = self.classifier.state()
        np.savez(folder / "scaler.npz", **arrays)
        torch.save(weights, folder / "classifier.pt")

    def _load_state(self, folder: Path) -> None:
        arrays = read_arrays(folder / "scaler.npz")
        weights = torch.load(folder / "classifier.pt", weights_only=True)
        self._classifier = LikeabilityClassifier.from_state(arrays, weights)
