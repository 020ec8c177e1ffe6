"""The vector environment's tensor path: N sessions whose state lives in torch tensors on a ``device``.

:class:`TorchListeningSessionVectorEnv` is the sibling of the numpy path
(:class:`~musicenv.vector_env.ListeningSessionVectorEnv`, over the same
:class:`~musicenv.vector_base.ListeningSessionVectorEnvBase`), and what
:func:`~musicenv.vector_env.make_vector_env` (so ``gymnasium.make_vec``) builds for
``device="cuda"``, or ``backend="torch"`` on any device, ``"cpu"`` included. It plays the same
episodes as the numpy path, draw for draw: the same seed gives the same users, contexts, pools, responses,
rewards and observations (tested on the CPU, ``tests/test_gpu_path.py``), because

* every episode is still drawn on the host from sub-environment ``i``'s own numpy generator
  (``world.sample_sessions`` and the common-random-numbers uniforms, as the numpy path draws
  them), and only then moved to the device: an autoreset costs a few small host-to-device copies
  of the rows that ended, nothing else;
* candidate pools are asked of the world once per user and kept on the device (a pool depends only
  on the user and ``explicit_filter``), so after warm-up no autoreset queries the ANN index;
* the responder runs on the device (:mod:`musicenv.torch_session`): the learned world's model in
  torch, any other model through the host.

What crosses to the host on a step: the ``(N,)`` bool "which sessions ended" (to know which
generators to draw from), and, only with ``obs_format="numpy"``, the observation and the info.
With ``obs_format="torch"`` observations are tensors on ``device`` and the info holds tensors
too: ``response`` is then the int8 response code (``-1`` for an invalid action) instead of its
name, ``track_id`` / ``artist_id`` (strings) are left out (``track_index`` indexes
``world.tracks``), and ``final_obs`` is a dict of ``(N, ...)`` tensors whose rows are valid where
``info["_final_obs"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import error

from musicenv.env import COUNTS, RESPONSE_COUNTS
from musicenv.familiarity import torch_recent_codes, torch_session_familiarity
from musicenv.observation import N_LOGGED, candidate_familiarity, played_familiarity
from musicenv.rewards import new_artists, play_rewards
from musicenv.torch_session import TorchSessionState, context_feature_tensor, torch_session_model
from musicenv.validation import check_actions
from musicenv.vector_base import RESPONSE_NAMES, ListeningSessionVectorEnvBase, session_model_state
from musicenv.world import (
    RESPONSES,
    Contexts,
    SessionState,
    draw_response,
    sample_session_each,
)

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)

ObsFormat = Literal["numpy", "torch"]

_TENSOR_STATE = (
    ("users", torch.int64),
    ("pools", torch.int64),
    ("history_tracks", torch.int64),
    ("history_responses", torch.int8),
    ("played", torch.bool),
    ("lengths", torch.int64),
    ("steps", torch.int64),
)
"""The compact state's public arrays (the numpy path's attributes of the same names)."""


class TorchListeningSessionVectorEnv(ListeningSessionVectorEnvBase):
    """N listening sessions with their state in torch tensors on ``device``: the tensor path.

    Everything :class:`~musicenv.vector_env.ListeningSessionVectorEnv` documents holds (seeding,
    same-step autoreset, rewards, invalid actions, ``get_state`` / ``set_state``, whose snapshots
    the two paths exchange); the module docstring says what differs. The compact state attributes
    (``users``, ``pools``, ``history_tracks``, ...) read as numpy copies of the device tensors; the
    tensors themselves are in :attr:`tensors`.

    Args:
        device: the torch device the state lives on (``"cuda"``, ``"cuda:1"``, or ``"cpu"``).
        obs_format: ``"numpy"`` (default; what Gymnasium and SB3 expect) or ``"torch"`` (tensors
            on ``device``, nothing copied to the host).
        num_envs, kwargs: the arguments of :class:`~musicenv.vector_env.ListeningSessionVectorEnv`
            (``world``, ``pool_size``, ...; observations are always the full feature matrices here).
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        obs_format: ObsFormat = "numpy",
        **kwargs: Any,
    ) -> None:
        if obs_format not in ("numpy", "torch"):
            raise ValueError(f"obs_format must be 'numpy' or 'torch', not {obs_format!r}")
        if kwargs.get("observation", "full") == "compact":
            raise ValueError("observation='compact' is available on the numpy path (device='cpu') only")
        try:
            torch_device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not a torch device") from exc
        if torch_device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: torch sees no CUDA device here, so only 'cpu' is available")
        super().__init__(num_envs, **kwargs)
        self.device = torch_device
        self.obs_format: ObsFormat = obs_format
        self.responder = torch_session_model(self._responder, torch_device)
        catalogue = self.catalogue
        self._track_features = torch.as_tensor(catalogue.track_features, device=torch_device)
        # Play codes of the tracks, a last -1 for padding: the familiarity's in-session columns.
        self._play_codes = (
            None
            if catalogue.familiarity is None
            else torch.as_tensor(np.append(catalogue.familiarity.play_codes, -1), device=torch_device)
        )
        self._user_features = torch.as_tensor(catalogue.user_features, device=torch_device)
        self._artist_codes = torch.as_tensor(catalogue.artist_codes, device=torch_device)
        self._track_boosts = torch.as_tensor(catalogue.track_boosts, device=torch_device)
        self._response_values = torch.as_tensor(self.reward_config.response_values, device=torch_device)
        self._response_one_hot = torch.eye(len(RESPONSES), dtype=torch.float32, device=torch_device)
        self._response_count = torch.tensor([COUNTS.index(key) for key in RESPONSE_COUNTS], device=torch_device)
        self._invalid_count = COUNTS.index("invalid_actions")
        n_users = len(catalogue.user_features)
        self._pool_table = torch.full((n_users, self.pool_size), -1, dtype=torch.int64, device=torch_device)
        self._pool_known = np.zeros(n_users, dtype=bool)
        self._rows_t = torch.arange(self.num_envs, device=torch_device)
        self.tensors: dict[str, torch.Tensor] = {}

    # -- episodes ------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start N new sessions; seeding as in the numpy path."""
        self._reseed(seed)
        self._allocate()
        self._started = True
        self._begin(self._rows)
        return self._observations(), {}

    def _allocate(self) -> None:
        n, length, device = self.num_envs, self.playlist_length, self.device
        t = {name: torch.zeros(self._shape(name), dtype=dtype, device=device) for name, dtype in _TENSOR_STATE}
        t["context_type"] = torch.zeros(n, dtype=torch.int8, device=device)
        t["hour"] = torch.zeros(n, dtype=torch.int8, device=device)
        t["attention"] = torch.zeros(n, dtype=torch.float32, device=device)
        t["history_p_complete"] = torch.zeros((n, length), dtype=torch.float64, device=device)
        t["uniforms"] = torch.zeros((n, 2, length), dtype=torch.float64, device=device)
        t["pool_tracks"] = torch.zeros(n, dtype=torch.int64, device=device)
        t["returns"] = torch.zeros(n, dtype=torch.float64, device=device)
        t["counts"] = torch.zeros((n, len(COUNTS)), dtype=torch.int64, device=device)
        t["members"] = torch.zeros(n, dtype=torch.int64, device=device)
        self.tensors = t
        self._session_state: TorchSessionState = {}
        self._obs_t = {
            key: torch.zeros(space.shape, dtype=_torch_dtype(space.dtype), device=device)
            for key, space in self.observation_space.spaces.items()
        }

    def _shape(self, name: str) -> tuple[int, ...]:
        n, length, size = self.num_envs, self.playlist_length, self.pool_size
        return {
            "pools": (n, size),
            "played": (n, size),
            "history_tracks": (n, length),
            "history_responses": (n, length),
        }.get(name, (n,))

    def _pools_of(self, users: np.ndarray) -> torch.Tensor:
        """Pools of ``users`` from the device cache, asking the world for the users not seen yet."""
        unknown = np.unique(users[~self._pool_known[users]])
        if len(unknown):
            pools = np.asarray(self.world.candidate_pools(unknown, self.pool_size, self.explicit_filter), np.int64)
            self._pool_table[torch.as_tensor(unknown, device=self.device)] = torch.as_tensor(pools, device=self.device)
            self._pool_known[unknown] = True
        return self._pool_table[torch.as_tensor(users, device=self.device)]

    def _begin(self, rows: np.ndarray) -> None:
        """Start new sessions in ``rows``, drawn on the host from each row's own generator as the numpy path."""
        # Each session's draws come from its own generator only: the session, then its uniforms.
        rngs = [self._rngs[row] for row in rows.tolist()]
        users, contexts = sample_session_each(self.world, rngs, self.split)
        users = users.astype(np.int64, copy=False)
        uniforms = [rng.random((2, self.playlist_length)) for rng in rngs]
        members = [self._draw_member(rng) for rng in rngs]
        device, t = self.device, self.tensors
        index = torch.as_tensor(rows, device=device)
        users_t = torch.as_tensor(users, device=device)
        pools = self._pools_of(users)
        t["users"][index] = users_t
        t["context_type"][index] = torch.as_tensor(contexts.context_type, device=device)
        t["hour"][index] = torch.as_tensor(contexts.hour, device=device)
        t["attention"][index] = torch.as_tensor(contexts.attention, device=device)
        t["pools"][index] = pools
        t["history_tracks"][index] = -1
        t["history_responses"][index] = 0
        t["played"][index] = False
        t["lengths"][index] = 0
        t["steps"][index] = 0
        t["history_p_complete"][index] = 0.0
        t["uniforms"][index] = torch.as_tensor(np.stack(uniforms), device=device)
        t["pool_tracks"][index] = (pools >= 0).sum(dim=1)
        t["returns"][index] = 0.0
        t["counts"][index] = 0
        t["members"][index] = torch.as_tensor(members, dtype=torch.int64, device=device)
        fresh = self.responder.initial_state(users_t, contexts)
        if len(rows) == self.num_envs:
            self._session_state = fresh
        else:
            for key, value in self._session_state.items():
                value[index] = fresh[key]
        self._write_observation_rows_t(index)

    def _write_observation_rows_t(self, index: torch.Tensor) -> None:
        t, obs = self.tensors, self._obs_t
        obs["user"][index] = self._user_features[t["users"][index]]
        obs["context"][index] = context_feature_tensor(t["context_type"][index], t["hour"][index])
        history = t["history_tracks"][index]
        in_history = history >= 0
        rows = torch.cat(
            [
                self._track_features[history.clamp(min=0)],
                self._response_one_hot[t["history_responses"][index].long().clamp(min=0)],
            ],
            dim=-1,
        )
        obs["history"][index] = rows * in_history[..., None]
        obs["history_mask"][index] = in_history.to(torch.float32)
        pools = t["pools"][index]
        in_pool = pools >= 0
        obs["candidates"][index] = self._track_features[pools.clamp(min=0)] * in_pool[..., None]
        # The familiarity table is the world's sparse host table, read once per session begun.
        users, history_tracks = t["users"][index].cpu().numpy(), history.cpu().numpy()
        obs["familiarity"][index] = torch.as_tensor(
            candidate_familiarity(self.catalogue.familiarity, users, pools.cpu().numpy(), history_tracks),
            device=pools.device,
        )
        obs["history_familiarity"][index] = torch.as_tensor(
            played_familiarity(self.catalogue.familiarity, users, history_tracks), device=pools.device
        )
        obs["action_mask"][index] = (in_pool & ~t["played"][index]).to(torch.int8)

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """One play in every session; ``actions`` ``(N,)`` integers, a numpy array or a tensor on any device."""
        if not self._started:
            raise error.ResetNeeded("ListeningSessionVectorEnv: call reset() before step()")
        actions_t = self._check_actions(actions)
        t, state, rows = self.tensors, self._session_state, self._rows_t
        tracks = t["pools"][rows, actions_t]
        valid = (tracks >= 0) & ~t["played"][rows, actions_t]
        if self.strict and not bool(valid.all()):
            i = int(torch.nonzero(~valid)[0, 0])
            reason = "padding (the pool has fewer tracks)" if int(tracks[i]) < 0 else "already played in this session"
            raise ValueError(f"sub-environment {i}: slot {int(actions_t[i])} is invalid: {reason}")
        positions = t["lengths"].clone()

        # Every session is scored and advanced; those with an invalid action keep their old state.
        probs, disagreement = self._answer_t(state, tracks)
        disagreement = disagreement * valid
        responses = draw_response(probs[:, 0], probs[:, 1], t["uniforms"][rows, 0, positions])
        advanced = self.responder.advance(state, tracks.clamp(min=0), responses)
        self._session_state = {
            key: torch.where(valid.view(-1, *([1] * (value.dim() - 1))), value, state[key])
            for key, value in advanced.items()
        }
        leave = self.responder.leave_probs(self._session_state)
        terminated = valid & (t["uniforms"][rows, 1, positions] < leave)
        probs = probs * valid[:, None]
        responses = torch.where(valid, responses, -1).to(torch.int8)

        rewards = torch.where(
            valid,
            self._play_rewards_t(tracks, responses) - self._penalty * disagreement,
            self.reward_config.invalid_action,
        )
        self._record_plays_t(valid, actions_t, tracks, responses, probs[:, 2], positions)
        t["steps"] += 1
        t["returns"] += rewards
        counts = t["counts"]
        counts[rows, self._response_count[responses.long().clamp(min=0)]] += valid.to(torch.int64)
        counts[:, self._invalid_count] += (~valid).to(torch.int64)
        truncated = ~terminated & ((t["steps"] >= self.playlist_length) | (t["lengths"] >= t["pool_tracks"]))
        ended = terminated | truncated
        info: dict[str, Any] = {
            "response": responses,
            "response_probs": probs,
            "track_index": tracks,
            "p_complete": probs[:, 2].clone(),
            "invalid_action": ~valid,
            "position": positions + 1,
            "disagreement": disagreement,
        }
        ended_host = ended.cpu().numpy()
        if ended_host.any():
            info.update(self._end_t(np.flatnonzero(ended_host), ended))
        if self.obs_format == "torch":
            return self._observations(), rewards, terminated, truncated, info
        return (
            self._observations(),
            rewards.cpu().numpy(),
            terminated.cpu().numpy(),
            truncated.cpu().numpy(),
            self._numpy_info(info),
        )

    def _check_actions(self, actions: Any) -> torch.Tensor:
        if isinstance(actions, torch.Tensor):
            # The rule of musicenv.validation.check_actions, for tensors: integer dtypes only.
            if actions.shape != (self.num_envs,) or actions.dtype not in _INTEGER_DTYPES:
                raise ValueError(
                    f"actions must be {self.num_envs} integers (an integer tensor of shape ({self.num_envs},)), "
                    f"got {actions!r}"
                )
            actions_t = actions.to(self.device, torch.int64)
            if self.device.type == "cpu" or self.strict:
                # On a GPU this range check would cost a sync every step; indexing still fails loudly.
                low, high = int(actions_t.min()), int(actions_t.max())
                if low < 0 or high >= self.pool_size:
                    raise ValueError(f"actions {actions!r} are outside the action space Discrete({self.pool_size})")
            return actions_t
        array = check_actions(actions, self.num_envs, self.pool_size)
        return torch.as_tensor(array, dtype=torch.int64, device=self.device)

    def _answer_t(self, state: TorchSessionState, tracks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row's ``(N, 3)`` probabilities of its track, as ``responses`` asks, and the members' ``(N,)``
        disagreement on it (0 for a single model): the numpy path's ``_answer`` on the device."""
        if self._ensemble_size == 1:
            probs = self.responder.response_probs(state, tracks[:, None])[:, 0]
            return probs, torch.zeros_like(probs[:, 0])
        member_probs = self.responder.member_response_probs(state, tracks[:, None])[:, 0]  # type: ignore[attr-defined]
        # musicenv.world.member_disagreement on tensors: the population standard deviation over members.
        disagreement = (member_probs @ self._response_values).std(dim=-1, correction=0)
        if self.responses == "sample":
            return member_probs[self._rows_t, self.tensors["members"]], disagreement
        return self.responder.response_probs(state, tracks[:, None])[:, 0], disagreement

    def _play_rewards_t(self, tracks: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """Every row's reward as if its play were valid (padding reads as track 0; the caller masks)."""
        config = self.reward_config
        safe = tracks.clamp(min=0)
        new_artist = None
        if config.diversity_bonus != 0.0:
            new_artist = new_artists(self._artist_codes, self.tensors["history_tracks"], safe).to(torch.float64)
        return play_rewards(
            self._response_values,
            self._track_boosts,
            responses.long().clamp(min=0),
            safe,
            config.diversity_bonus,
            new_artist,
        )

    def _record_plays_t(
        self,
        valid: torch.Tensor,
        slots: torch.Tensor,
        tracks: torch.Tensor,
        responses: torch.Tensor,
        p_complete: torch.Tensor,
        positions: torch.Tensor,
    ) -> None:
        """Append the valid plays to their sessions (rows with an invalid action are rewritten unchanged)."""
        t, obs, rows = self.tensors, self._obs_t, self._rows_t

        def put(array: torch.Tensor, index: tuple[torch.Tensor, ...], value: torch.Tensor) -> None:
            keep = valid.view(-1, *([1] * (array[index].dim() - 1)))
            array[index] = torch.where(keep, value.to(array.dtype), array[index])

        at = (rows, positions)
        put(t["history_tracks"], at, tracks)
        put(t["history_responses"], at, responses)
        put(t["history_p_complete"], at, p_complete)
        put(t["played"], (rows, slots), torch.ones_like(valid))
        t["lengths"] += valid.to(torch.int64)
        history = torch.cat(
            [self._track_features[tracks.clamp(min=0)], self._response_one_hot[responses.long().clamp(min=0)]], dim=-1
        )
        put(obs["history"], at, history)
        put(obs["history_mask"], at, torch.ones_like(positions, dtype=torch.float32))
        put(obs["history_familiarity"], at, obs["familiarity"][rows, slots.clamp(min=0)])
        if self._play_codes is not None:
            # The candidates' in-session columns follow the tracks just played, on the device.
            codes = self._play_codes
            recent = torch_recent_codes(codes[t["history_tracks"]], t["lengths"])
            obs["familiarity"][..., N_LOGGED:] = torch_session_familiarity(codes[t["pools"]], recent[:, None, :])
        put(obs["action_mask"], (rows, slots), torch.zeros_like(slots, dtype=torch.int8))

    def _end_t(self, rows: np.ndarray, ended: torch.Tensor) -> dict[str, Any]:
        """Info of the sessions that just ended, then start their next sessions."""
        t = self.tensors
        session = {
            "return": torch.where(ended, t["returns"], 0.0),
            "length": torch.where(ended, t["lengths"], 0),
            **{key: torch.where(ended, t["counts"][:, column], 0) for column, key in enumerate(COUNTS)},
        }
        final_obs = {key: value.clone() for key, value in self._obs_t.items()}
        self._begin(rows)
        return {"session": session, "_session": ended, "final_obs": final_obs, "_final_obs": ended}

    def _numpy_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """The info as the numpy path gives it."""
        responses = info["response"].cpu().numpy()
        tracks = info["track_index"].cpu().numpy()
        out: dict[str, Any] = {
            "response": RESPONSE_NAMES[responses],
            "response_probs": info["response_probs"].cpu().numpy(),
            "track_id": self._track_ids[tracks],
            "artist_id": self._artist_ids[tracks],
            "track_index": tracks,
            "p_complete": info["p_complete"].cpu().numpy(),
            "invalid_action": info["invalid_action"].cpu().numpy(),
            "position": info["position"].cpu().numpy(),
            "disagreement": info["disagreement"].cpu().numpy(),
        }
        if "session" in info:
            ended = info["_session"].cpu().numpy()
            out["session"] = {key: value.cpu().numpy() for key, value in info["session"].items()}
            out["_session"] = ended
            final_obs = np.full(self.num_envs, None, dtype=object)
            index = torch.as_tensor(np.flatnonzero(ended), device=self.device)
            last = {key: value[index].cpu().numpy() for key, value in info["final_obs"].items()}
            for k, row in enumerate(np.flatnonzero(ended)):
                final_obs[row] = {key: value[k] for key, value in last.items()}
            out["final_obs"] = final_obs
            out["_final_obs"] = ended
        return out

    def _observations(self) -> dict[str, Any]:
        if self.obs_format == "torch":
            if self.copy:
                return {key: value.clone() for key, value in self._obs_t.items()}
            return dict(self._obs_t)
        return {key: self._host(value) for key, value in self._obs_t.items()}

    def _host(self, tensor: torch.Tensor) -> np.ndarray:
        """A numpy copy of ``tensor`` (on the CPU ``.numpy()`` would share the env's memory)."""
        array = tensor.detach().cpu().numpy()
        return array.copy() if self.device.type == "cpu" else array

    def action_masks(self) -> np.ndarray:
        """``(N, M)`` bool, the slots each session can play now (numpy; :meth:`action_mask_tensor` on the device)."""
        return self._host(self.action_mask_tensor())

    def action_mask_tensor(self) -> torch.Tensor:
        """``(N, M)`` bool tensor on ``device``, the slots each session can play now."""
        self._require_started()
        return (self.tensors["pools"] >= 0) & ~self.tensors["played"]

    # -- numpy views of the compact state ----------------------------------------------------------------

    def _view(self, name: str) -> np.ndarray:
        self._require_started()
        return self._host(self.tensors[name])

    users = property(lambda self: self._view("users"), doc="``(N,)`` user indices (a numpy copy).")
    pools = property(lambda self: self._view("pools"), doc="``(N, M)`` pool track indices (a numpy copy).")
    history_tracks = property(lambda self: self._view("history_tracks"), doc="``(N, L)`` tracks played.")
    history_responses = property(lambda self: self._view("history_responses"), doc="``(N, L)`` their responses.")
    played = property(lambda self: self._view("played"), doc="``(N, M)`` bool, the slots played.")
    lengths = property(lambda self: self._view("lengths"), doc="``(N,)`` tracks played.")
    steps = property(lambda self: self._view("steps"), doc="``(N,)`` steps taken.")

    @property
    def contexts(self) -> Contexts:
        """The sessions' contexts as observed: the latent ``attention`` reads as 0."""
        return Contexts(self._view("context_type"), self._view("hour"), np.zeros(self.num_envs, dtype=np.float32))

    def _session(self) -> SessionState:
        self._require_started()
        # Copies: states are values (an oracle's caller may keep one while the env steps on).
        return {key: np.array(value) for key, value in self.responder.to_numpy(self._session_state).items()}

    def _current_pools(self) -> np.ndarray:
        return self._view("pools")

    def _session_arrays(self) -> dict[str, np.ndarray]:
        names = ("users", "context_type", "hour", "attention", "pools", "played", "history_tracks")
        names += ("history_responses", "history_p_complete", "uniforms", "steps", "returns", "counts", "members")
        return {name: self._view(name) for name in names}

    # -- saving and restoring ----------------------------------------------------------------------------

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a ``get_state`` snapshot, of this path or of the numpy path (they are the same format)."""
        pools = self._restore_generators(state)
        self._allocate()
        t = self.tensors
        history_tracks = np.array(state["history_tracks"], dtype=np.int64)
        values = {
            "users": state["users"],
            "context_type": state["context_type"],
            "hour": state["hour"],
            "attention": state["attention"],
            "pools": pools,
            "played": state["played"],
            "history_tracks": history_tracks,
            "history_responses": state["history_responses"],
            "history_p_complete": state["history_p_complete"],
            "lengths": (history_tracks >= 0).sum(axis=1),
            "steps": state["steps"],
            "uniforms": state["uniforms"],
            "pool_tracks": (pools >= 0).sum(axis=1),
            "returns": state["returns"],
            "counts": state["counts"],
            "members": self._restore_members(state),
        }
        for key, value in values.items():
            t[key].copy_(torch.as_tensor(np.asarray(value)).to(t[key].dtype))
        self._session_state = self.responder.from_numpy(session_model_state(state))
        self._started = True
        self._write_observation_rows_t(self._rows_t)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
