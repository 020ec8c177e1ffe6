"""What the vector environment's two paths share: arguments, spaces, seeding, rendering and saved state.

:class:`~musicenv.vector_env.ListeningSessionVectorEnv` (state in numpy arrays) and
:class:`~musicenv.torch_vector_env.TorchListeningSessionVectorEnv` (state in torch tensors on a
device) are siblings over :class:`ListeningSessionVectorEnvBase`; each keeps its sessions its own
way and hands them to the base in one form, host numpy arrays (``_session_arrays``), from
which the base renders and saves them. :func:`musicenv.vector_env.make_vector_env` chooses between
the two paths (it is the registered ``vector_entry_point``).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from gymnasium import error, spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from musicenv.env import SessionEnvSetup, SessionSettings, render_playlist
from musicenv.observation import ObservationLayout
from musicenv.responders import DEFAULT_PESSIMISM, GroundTruthLike, Oracle, ResponseMode
from musicenv.rewards import RewardConfig
from musicenv.validation import check_count, check_seed
from musicenv.world import RESPONSES, SessionModel, SessionState, Split, World

RESPONSE_NAMES = np.array([*RESPONSES, None], dtype=object)
"""Response names by code, with code -1 (no play: an invalid action) as None."""

SESSION_MODEL_PREFIX = "session_model/"
"""Prefix of the session model's arrays in a :meth:`ListeningSessionVectorEnvBase.get_state` snapshot."""


class ListeningSessionVectorEnvBase(SessionEnvSetup, VectorEnv, ABC):
    """N listening sessions stepped together: what both paths share (read the numpy path's docstring).

    The base checks the arguments, resolves the world and responder, builds the catalogue arrays,
    the spaces and the ground-truth oracle, seeds the sub-environments' generators, renders, and
    saves the state (:meth:`get_state`). A path implements ``reset``, ``step``,
    :meth:`action_masks`, ``set_state`` and the three views the base reads:
    ``_session_arrays`` (every session as host arrays), ``_session`` (the session model's
    state, for the oracle and snapshots) and ``_current_pools``.

    Its arguments (``num_envs``, ``world``, ``playlist_length``, ``pool_size``, ``reward``,
    ``explicit_filter``, ``strict``, ``split``, ``render_mode``, ``responder``,
    ``groundtruth_seed``, ``copy``, ``observation``, ``session``, ``responses``, ``pessimism``) are those of
    :class:`~musicenv.vector_env.ListeningSessionVectorEnv`.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        world: str | os.PathLike[str] | World = "default",
        playlist_length: int = 20,
        pool_size: int = 100,
        reward: RewardConfig | None = None,
        explicit_filter: bool = False,
        strict: bool = False,
        split: Split = "train",
        render_mode: str | None = None,
        responder: str | SessionModel | GroundTruthLike | None = None,
        groundtruth_seed: int | None = None,
        copy: bool = True,
        observation: ObservationLayout = "full",
        session: str = "default",
        responses: ResponseMode = "mean",
        pessimism: float = DEFAULT_PESSIMISM,
    ) -> None:
        self.num_envs = check_count("num_envs", num_envs)
        settings = SessionSettings.check(
            playlist_length, pool_size, reward, explicit_filter, strict, split, observation, responses, pessimism
        )
        groundtruth = self._set_up(settings, world, responder, groundtruth_seed, session, render_mode)
        self.copy = copy
        # Padding (-1) reads the extra last entry: no track, no artist.
        self._track_ids = np.append(self.catalogue.track_ids, None)
        self._artist_ids = np.append(self.catalogue.artist_ids, None)
        self.single_observation_space = self._session_observation_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = spaces.Discrete(self.pool_size)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.oracle = (
            Oracle(self._responder, state=self._session, pools=self._current_pools, action_mask=self.action_masks)
            if groundtruth
            else None
        )
        self._rows = np.arange(self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._started = False

    # -- what a path provides ------------------------------------------------------------------------

    @abstractmethod
    def action_masks(self) -> np.ndarray:
        """``(N, M)`` bool, the slots each session can play now."""

    @abstractmethod
    def _session_arrays(self) -> dict[str, np.ndarray]:
        """Every session as host arrays: :meth:`get_state`'s snapshot without the generators and the session model."""

    @abstractmethod
    def _session(self) -> SessionState:
        """The session model's state of all N sessions, as numpy arrays (what the oracle and snapshots read)."""

    @abstractmethod
    def _current_pools(self) -> np.ndarray:
        """``(N, M)`` track indices of the pools, -1 for padding."""

    # -- seeding ---------------------------------------------------------------------------------------

    def _reseed(self, seed: int | Sequence[int | None] | None) -> None:
        """Seed the sub-environments' generators: sub-environment ``i`` with ``seed + i`` (or ``seed[i]``).

        Seeds follow :mod:`musicenv.validation`: non-negative integers (numpy's included) or None;
        a bool, float or text is a ``TypeError`` naming ``seed`` (or ``seed[i]``).
        """
        if seed is None:
            seeds: Sequence[int | None] = [None] * self.num_envs
        elif not (isinstance(seed, Sequence) and not isinstance(seed, (str, bytes))) and not (
            isinstance(seed, np.ndarray) and seed.ndim == 1
        ):
            first = check_seed("seed", seed)  # one integer for all: sub-environment i gets seed + i
            seeds = [first + i for i in range(self.num_envs)]
        else:
            seeds = [check_seed(f"seed[{i}]", sub_seed) for i, sub_seed in enumerate(seed)]
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: got {len(seeds)} seeds for {self.num_envs} sub-environments")
        for i, sub_seed in enumerate(seeds):
            # As Env.reset: a seed reseeds; no seed keeps the generator, or makes one if there is none.
            if sub_seed is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(sub_seed)[0]

    def _require_started(self) -> None:
        if not self._started:
            raise error.ResetNeeded("ListeningSessionVectorEnv: call reset() first")

    # -- rendering ---------------------------------------------------------------------------------------

    def render(self) -> tuple[str, ...] | None:
        """With ``render_mode="ansi"``, one playlist table per session; otherwise None."""
        if self.render_mode != "ansi":
            return None
        self._require_started()
        arrays = self._session_arrays()
        lengths = (arrays["history_tracks"] >= 0).sum(axis=1)
        return tuple(
            render_playlist(
                self.catalogue,
                user=int(arrays["users"][i]),
                context_type=int(arrays["context_type"][i]),
                hour=int(arrays["hour"][i]),
                tracks=arrays["history_tracks"][i, : lengths[i]],
                responses=arrays["history_responses"][i, : lengths[i]],
                p_complete=arrays["history_p_complete"][i, : lengths[i]],
                playlist_length=self.playlist_length,
            )
            for i in range(self.num_envs)
        )

    # -- saving and restoring ----------------------------------------------------------------------------

    def get_state(self) -> dict[str, np.ndarray]:
        """All N sessions and generators as a flat dict of arrays (``np.savez``-able), for an exact resume.

        Both paths write the same snapshot, so one path's state restores into the other.
        """
        self._require_started()
        state = {"rng": np.array(json.dumps([rng.bit_generator.state for rng in self._rngs]))}
        state.update(self._session_arrays())
        state.update({f"{SESSION_MODEL_PREFIX}{key}": value for key, value in self._session().items()})
        return {key: np.array(value) for key, value in state.items()}

    def _restore_generators(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """Check that ``state`` fits this env and restore its generators; return its ``(N, M)`` pools.

        Raises:
            ValueError: the snapshot's pools or histories have another shape than this env's.
        """
        pools = np.array(state["pools"], dtype=np.int64)
        history = np.shape(state["history_tracks"])
        if pools.shape != (self.num_envs, self.pool_size) or history != (self.num_envs, self.playlist_length):
            raise ValueError(
                f"state has pools {pools.shape} and history {history}; this env has num_envs="
                f"{self.num_envs}, pool_size={self.pool_size}, playlist_length={self.playlist_length}"
            )
        self._rngs = []
        for bit_state in json.loads(str(state["rng"])):
            rng = seeding.np_random(0)[0]
            rng.bit_generator.state = bit_state
            self._rngs.append(rng)
        return pools

    def _restore_members(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """The ``(N,)`` members that answer the snapshot's episodes (0 in a snapshot from before ``responses=``)."""
        return self._known_members(np.array(state.get("members", np.zeros(self.num_envs)), dtype=np.int64))


def session_model_state(state: dict[str, np.ndarray]) -> SessionState:
    """The session model's arrays of a :meth:`~ListeningSessionVectorEnvBase.get_state` snapshot (copies)."""
    prefix = SESSION_MODEL_PREFIX
    return {key[len(prefix) :]: np.array(value) for key, value in state.items() if key.startswith(prefix)}
