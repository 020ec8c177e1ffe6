"""The one interface every playlist agent implements, and the registry that builds them by name.

An :class:`Agent` picks the next track of N sessions at once::

    agent = make_agent("als", world)
    actions = agent.act(obs)            # obs: dict of (N, ...) arrays from the vector env
    agent.save("checkpoints/als")
    same = load_agent("checkpoints/als", world)

Contract (held by the shared test ``tests/test_agents.py::TestAgentContract`` for every agent in
:data:`AGENTS`, as ``implicit`` holds its models to one test mixin):

* ``act`` returns ``(N,)`` int64 slots that are valid under ``obs["action_mask"]``, whatever
  the mask;
* acting on a batch of N equals N single calls on its rows (agents that draw random numbers
  draw one per row, in row order);
* two agents made with the same arguments (seed included) act the same;
* ``save`` then ``load`` gives an agent that acts exactly as the saved one from then on;
* it plays whole episodes in ``ListeningSession-v0``.

Observations are those of ``ListeningSession-v0`` with a leading batch axis: ``"user"``
``(N, d_user)``, ``"context"`` ``(N, 8)``, ``"history"`` ``(N, L, d_track + 3)`` (played tracks'
features, then the response one-hot skip / listen / complete; zero rows past the session's
length), ``"history_mask"`` ``(N, L)``, ``"candidates"`` ``(N, M, d_track)`` and
``"action_mask"`` ``(N, M)``. Agents read the world's feature layouts
(``world.track_feature_layout["als"]``, ...) to find the columns they need.

Agents that read the truth (greedy by the ground-truth model) take it from ``oracle``, which
only a ground-truth run's env offers (``env.oracle``) and no observation exposes (docs/design.md,
"One World protocol").

Saved agents are folders written atomically by :mod:`musicenv.artifacts`: a JSON manifest with
the agent's name and constructor arguments, and plain state files (torch state dicts loaded with
``weights_only=True``, ``.npz`` arrays, JSON). No pickle.
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from musicenv.artifacts import MANIFEST, ArtifactError, atomic_folder, read_manifest, write_manifest
from musicenv.world import World

Observation = dict[str, np.ndarray]
"""A batch of ``ListeningSession-v0`` observations: each array has the batch as its first axis."""

AGENT_FORMAT = "musicenv.agent"
AGENT_FORMAT_VERSION = 1


class Agent(ABC):
    """A policy over batches of listening sessions.

    Subclasses set :attr:`name` (their registry key), implement :meth:`act`, and, when they have
    state beyond their constructor arguments, :meth:`_save_state` / :meth:`_load_state`.

    Attributes:
        name: the agent's registry name (``"random"``, ``"ahdqn"``, ...).
        needs_oracle: True for agents that read the ground truth through ``oracle`` (and so run
            only in a ground-truth run).
        world: the world the agent observes (its feature layouts, its models).
    """

    name: ClassVar[str]
    needs_oracle: ClassVar[bool] = False

    def __init__(self, world: World) -> None:
        self.world = world

    @abstractmethod
    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        """Choose one valid slot per session.

        Args:
            obs: a batch of N observations (see the module docstring). They may be the env's own
                buffers (evaluation steps with ``copy=False``): copy what must outlive the call.
            oracle: the env's ground-truth handle (``env.oracle``) in a ground-truth run, else
                None; only agents with :attr:`needs_oracle` read it.

        Returns:
            ``(N,)`` int64 slots, each with ``obs["action_mask"]`` set.
        """

    def config(self) -> dict[str, Any]:
        """The JSON-ready constructor arguments (besides ``world``) that rebuild this agent."""
        return {}

    def _save_state(self, folder: Path) -> None:
        """Write state beyond :meth:`config` (weights, random streams) into ``folder``."""

    def _load_state(self, folder: Path) -> None:
        """Read what :meth:`_save_state` wrote."""

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Save the agent atomically to ``folder`` (a previous save there is replaced only when complete).

        Raises:
            musicenv.artifacts.ArtifactError: ``folder`` holds something other than an empty
                folder or an earlier saved agent (nothing is written then).
        """
        folder = Path(folder)
        with atomic_folder(folder, AGENT_FORMAT) as staging:
            self._save_state(staging)
            write_manifest(staging, AGENT_FORMAT, AGENT_FORMAT_VERSION, {"agent": self.name, "kwargs": self.config()})
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], world: World) -> Agent:
        """Load a saved agent, checking the manifest and checksums; see :func:`load_agent`."""
        agent = load_agent(folder, world)
        if not isinstance(agent, cls):
            raise TypeError(f"{folder} holds a {agent.name!r} agent, not a {cls.__name__}")
        return agent

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({arguments})"


AGENTS: dict[str, str] = {
    "ahdqn": "agents.ahdqn:AHDQN",
    "random": "agents.baselines:RandomAgent",
    "popular": "agents.baselines:MostPopularAgent",
    "als": "agents.baselines:ALSAgent",
    "content": "agents.baselines:ContentSimilarityAgent",
    "greedy_learned": "agents.baselines:GreedyLearnedAgent",
    "greedy_truth": "agents.baselines:GreedyTruthAgent",
    "lcb_greedy": "agents.baselines:LCBGreedyAgent",
    "sequence_rnn": "agents.baselines:SequenceRNNAgent",
    "planner_truth": "agents.planner:TruthPlanner",
    "planner_learned": "agents.planner:LearnedPlanner",
    "maskable_ppo": "agents.sb3_agents:MaskablePPOAgent",
    "ppo": "agents.sb3_agents:PPOAgent",
    "dqn": "agents.sb3_agents:DQNAgent",
    "user_cf": "agents.user_cf:UserCFAgent",
    "likeability": "agents.likeability:LikeabilityAgent",
    "content_clusters": "agents.content_clusters:ContentClustersAgent",
    "discover_weekly": "agents.discover_weekly:DiscoverWeeklyAgent",
    "shuffle": "agents.smart_shuffle:ShuffleAgent",
    "smart_shuffle": "agents.smart_shuffle:SmartShuffleAgent",
}
"""Every agent by name, as a ``"module:Class"`` entry point (as Gymnasium's registry).

The table is static and its modules are imported only when an agent is built, so every name
works in a fresh process whatever was imported before, and listing the names costs no import of
torch or stable-baselines3. A new agent is one line here; its class's :attr:`Agent.name` must
equal its key.
"""


def agent_names() -> tuple[str, ...]:
    """The registered agent names, sorted."""
    return tuple(sorted(AGENTS))


def agent_class(name: str) -> type[Agent]:
    """Import and return the class registered as ``name``.

    Raises:
        KeyError: no agent has that name (the message lists those that do).
        TypeError: the entry point is not an :class:`Agent` named ``name`` (a broken table).
    """
    if name not in AGENTS:
        raise KeyError(f"no agent named {name!r}; known agents: {', '.join(agent_names())}")
    module_name, _, class_name = AGENTS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Agent) and cls.name == name):
        raise TypeError(f"the entry point {AGENTS[name]!r} of agent {name!r} is not an Agent named {name!r}")
    return cls


def make_agent(name: str, world: World, **kwargs: Any) -> Agent:
    """Build the agent registered as ``name`` for ``world``.

    Raises:
        KeyError: no agent has that name (the message lists those that do).
    """
    return agent_class(name)(world, **kwargs)


def load_agent(folder: str | os.PathLike[str], world: World) -> Agent:
    """Load any saved agent: the manifest names its class and constructor arguments.

    Raises:
        musicenv.artifacts.ArtifactError: not a saved agent, another format version, a file
            missing or corrupted, a manifest naming an unknown agent or arguments it does not
            take, or state files that do not fit the agent the manifest describes (e.g. weights
            of another network size); the message names the file.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, AGENT_FORMAT, AGENT_FORMAT_VERSION)
    try:
        name, kwargs = manifest["config"]["agent"], manifest["config"]["kwargs"]
        agent = make_agent(name, world, **kwargs)
    except (KeyError, TypeError) as error:  # an unknown agent, or arguments it does not take
        raise ArtifactError(f"{folder / MANIFEST}: does not describe an agent that can be built ({error})") from error
    try:
        agent._load_state(folder)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
        # torch's load_state_dict raises RuntimeError for weights of another shape.
        raise ArtifactError(
            f"{folder}: its state files do not fit the agent that {MANIFEST} describes "
            f"(the manifest edited, files from another save, or a world other than the agent's?): {error}"
        ) from error
    return agent


def masked_argmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``scores`` over the slots ``mask`` allows (ties: the lowest slot).

    Raises:
        ValueError: a row allows no slot at all.
    """
    mask = mask.astype(bool)
    if not mask.any(axis=-1).all():
        raise ValueError("an observation's action_mask allows no slot (is the session already over?)")
    return np.where(mask, scores, -np.inf).argmax(axis=-1).astype(np.int64)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON (inside a folder that :func:`atomic_folder` publishes)."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))


def read_json(path: Path) -> Any:
    """Read JSON written by :func:`write_json`."""
    return json.loads(path.read_text())
