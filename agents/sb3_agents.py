"""stable-baselines3 agents on ``ListeningSession-v0``: training, and adapters to :class:`~agents.base.Agent`.

=================  =========================================  ==========================================
name               algorithm                                  observation
=================  =========================================  ==========================================
``maskable_ppo``   sb3-contrib ``MaskablePPO`` (PPO that      the ``Dict`` observation
                   samples only valid slots, through the      (``MultiInputPolicy``)
                   env's ``action_masks()``)
``ppo``            SB3 ``PPO``                                flattened by
``dqn``            SB3 ``DQN``                                :class:`musicenv.wrappers.FlatListeningSession`
=================  =========================================  ==========================================

Plain PPO and DQN cannot mask: during training the wrapper plays the best-ranked valid slot in
place of a spent one (its documented default). As :class:`~agents.base.Agent` every adapter acts
by the masked argmax of its policy's logits (PPO) or Q-values (DQN), so in evaluation it plays
only valid slots and is compared with the other agents on equal terms.

Saving
    :meth:`SB3Agent.save` writes the policy's ``state_dict`` (loaded with ``weights_only=True``)
    and a JSON config, like every musicenv agent. SB3's own ``.zip`` (``model.save``) holds
    *pickled* Python objects; :meth:`SB3Agent.from_sb3_zip` loads one for comparison, but loading
    a pickle runs code: **never load a ``.zip`` from an untrusted source**.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.dqn.policies import DQNPolicy

from agents.base import Agent, Observation, masked_argmax
from agents.config import SB3Config
from musicenv.env import ListeningSessionEnv
from musicenv.world import World
from musicenv.wrappers import FlatListeningSession

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"maskable_ppo": MaskablePPO, "ppo": PPO, "dqn": DQN}
POLICIES: dict[str, type[BasePolicy]] = {
    "maskable_ppo": MaskableMultiInputActorCriticPolicy,
    "ppo": ActorCriticPolicy,
    "dqn": DQNPolicy,
}


def make_env(
    algorithm: str, world: World, playlist_length: int = 20, pool_size: int = 100, **env_kwargs: Any
) -> gym.Env:
    """One ``ListeningSession-v0`` over ``world`` as ``algorithm`` trains on it (flattened for PPO / DQN)."""
    env: gym.Env = ListeningSessionEnv(world=world, playlist_length=playlist_length, pool_size=pool_size, **env_kwargs)
    return env if algorithm == "maskable_ppo" else FlatListeningSession(env)


def flatten_observations(space: spaces.Dict, obs: Observation) -> np.ndarray:
    """A batch of ``Dict`` observations flattened as :class:`FlatListeningSession` flattens one.

    ``gymnasium.spaces.flatten`` of a ``Dict`` concatenates its keys in the space's order, each
    raveled; this does the same row-wise for N rows at once.
    """
    n = len(obs["action_mask"])
    return np.concatenate([np.asarray(obs[key]).reshape(n, -1) for key in space.spaces], axis=1).astype(np.float32)


def _policy_scores(algorithm: str, policy: BasePolicy, obs: Observation, dict_space: spaces.Dict) -> np.ndarray:
    """``(N, M)`` scores whose argmax is the policy's choice: logits (PPO) or Q-values (DQN)."""
    model_input = obs if algorithm == "maskable_ppo" else flatten_observations(dict_space, obs)
    tensor, _ = policy.obs_to_tensor(model_input)
    with torch.no_grad():
        if algorithm == "dqn":
            scores = policy.q_net(tensor)  # type: ignore[attr-defined]
        else:
            scores = policy.get_distribution(tensor).distribution.logits  # type: ignore[attr-defined]
    return scores.float().cpu().numpy()


class SB3Agent(Agent):
    """An SB3 policy as an :class:`~agents.base.Agent`: the masked argmax of its logits or Q-values.

    Built fresh (random weights, seeded) by :func:`~agents.base.make_agent`; trained by
    :func:`train_sb3`; saved and loaded as a state dict and JSON.

    Args:
        world: the world whose observation space sizes the policy.
        net_arch: hidden layers of the policy's MLPs.
        playlist_length, pool_size: the env's L and M (they size the observation).
        seed: seeds the policy's initialisation.
        device: torch device of the policy.
    """

    algorithm: str

    def __init__(
        self,
        world: World,
        net_arch: tuple[int, ...] | list[int] = (128, 128),
        playlist_length: int = 20,
        pool_size: int = 100,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        super().__init__(world)
        self.net_arch = tuple(int(width) for width in net_arch)
        self.playlist_length, self.pool_size, self.seed, self.device = (
            playlist_length,
            pool_size,
            seed,
            device,
        )
        env = make_env(self.algorithm, world, playlist_length, pool_size)
        self.dict_space: spaces.Dict = env.unwrapped.observation_space  # type: ignore[assignment]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = POLICIES[self.algorithm](
                env.observation_space, env.action_space, lambda _: 0.0, net_arch=list(self.net_arch)
            ).to(device)
        self.policy.set_training_mode(False)

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        return masked_argmax(_policy_scores(self.algorithm, self.policy, obs, self.dict_space), obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {
            "net_arch": list(self.net_arch),
            "playlist_length": self.playlist_length,
            "pool_size": self.pool_size,
            "seed": self.seed,
            "device": self.device,
        }

    def _save_state(self, folder: Path) -> None:
        torch.save(self.policy.state_dict(), folder / "policy.pt")

    def _load_state(self, folder: Path) -> None:
        self.policy.load_state_dict(torch.load(folder / "policy.pt", map_location=self.device, weights_only=True))

    @classmethod
    def from_sb3_zip(cls, path: str | os.PathLike[str], world: World, **kwargs: Any) -> SB3Agent:
        """Wrap a model saved by SB3's own ``model.save`` (a ``.zip``).

        **Unsafe for untrusted files**: SB3's ``.zip`` holds pickled objects, and unpickling runs
        whatever code the file names. Load only files you made yourself; share musicenv's own
        checkpoints (:meth:`save`: state dicts and JSON) instead.

        Args:
            path: the ``.zip``.
            world: the world the model was trained on.
            kwargs: constructor arguments (``net_arch``, ``playlist_length``, ``pool_size``)
                matching the saved policy.
        """
        agent = cls(world, **kwargs)
        model = ALGORITHMS[cls.algorithm].load(path, device=agent.device)
        agent.policy.load_state_dict(model.policy.state_dict())
        return agent


class MaskablePPOAgent(SB3Agent):
    """sb3-contrib's MaskablePPO (Huang & Ontañón 2022's invalid action masking on PPO)."""

    name = "maskable_ppo"
    algorithm = "maskable_ppo"


class PPOAgent(SB3Agent):
    """SB3's PPO (Schulman et al. 2017) on the flattened observation; cannot mask while training."""

    name = "ppo"
    algorithm = "ppo"


class DQNAgent(SB3Agent):
    """SB3's DQN (Mnih et al. 2015) on the flattened observation, one output per slot; cannot mask while training."""

    name = "dqn"
    algorithm = "dqn"


def make_model(
    agent: SB3Agent,
    config: SB3Config,
    num_envs: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> BaseAlgorithm:
    """An SB3 model for ``agent``'s algorithm on ``num_envs`` copies of the env, with ``agent.policy`` as its policy.

    The SB3 hyperparameters come from ``config`` (:class:`~agents.config.SB3Config` documents
    each default); the env copies share the agent's world object (built once).
    """

    def factory(index: int) -> Callable[[], gym.Env]:
        return lambda: Monitor(
            make_env(agent.algorithm, agent.world, agent.playlist_length, agent.pool_size, **(env_kwargs or {}))
        )

    vec_env = DummyVecEnv([factory(i) for i in range(num_envs)])
    common = {
        "learning_rate": config.learning_rate,
        "gamma": config.gamma,
        "batch_size": config.batch_size,
        "policy_kwargs": {"net_arch": list(agent.net_arch)},
        "seed": seed,
        "device": agent.device,
        "verbose": 0,
    }
    if agent.algorithm == "dqn":
        model = DQN(
            "MlpPolicy",
            vec_env,
            buffer_size=config.buffer_size,
            learning_starts=config.learning_starts,
            exploration_fraction=config.exploration_fraction,
            # One gradient step per vector step (SB3: every 4 steps of one env), as the AH-DQN.
            train_freq=1,
            **common,
        )
    else:
        algorithm = MaskablePPO if agent.algorithm == "maskable_ppo" else PPO
        model = algorithm(
            "MultiInputPolicy" if agent.algorithm == "maskable_ppo" else "MlpPolicy",
            vec_env,
            n_steps=config.n_steps,
            n_epochs=config.n_epochs,
            ent_coef=config.ent_coef,
            **common,
        )
    # The agent's seeded initial weights become the model's (so `make_agent(..., seed=s)` and a
    # trained agent start from the same network).
    model.policy.load_state_dict(agent.policy.state_dict())
    return model


class SessionStatsCallback(BaseCallback):
    """Calls ``on_step(num_timesteps, ended_sessions)`` after every vector step; stops when it returns True.

    ``ended_sessions`` is the list of ``info["session"]`` dicts of the sessions that ended on
    that step (the env's own statistics: return, length, completions, skips, ...).
    """

    def __init__(self, on_step: Callable[[int, list[dict[str, Any]]], bool]) -> None:
        super().__init__()
        self.on_step_fn = on_step

    def _on_step(self) -> bool:
        ended = [info["session"] for info in self.locals.get("infos", []) if "session" in info]
        return not self.on_step_fn(self.num_timesteps, ended)
