"""``ListeningSession-v0`` as a batched vector environment: N sessions, one model call a step.

:class:`ListeningSessionVectorEnv` keeps the sessions in numpy arrays;
:class:`~musicenv.torch_vector_env.TorchListeningSessionVectorEnv`, its sibling, in torch tensors on
a device. :func:`make_vector_env` (the registered ``vector_entry_point``) builds the one its
``device``, ``backend`` and ``obs_format`` ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from gymnasium import error

from musicenv.env import COUNTS, RESPONSE_COUNTS
from musicenv.familiarity import advance_session_familiarity, match_masks, recent_codes
from musicenv.observation import (
    N_LOGGED,
    build_observations,
    candidate_familiarity,
    track_play_codes,
    write_history_plays,
)
from musicenv.rewards import new_artists, play_rewards
from musicenv.validation import check_actions
from musicenv.vector_base import RESPONSE_NAMES, ListeningSessionVectorEnvBase, session_model_state
from musicenv.world import (
    RESPONSES,
    Contexts,
    SessionState,
    context_features,
    member_disagreement,
    sample_responses,
    sample_session_each,
    take_state,
)

if TYPE_CHECKING:
    from musicenv.torch_vector_env import TorchListeningSessionVectorEnv

_RESPONSE_COUNT = np.array([COUNTS.index(key) for key in RESPONSE_COUNTS])
"""Column of the session counts that each response code adds to."""
_INVALID_COUNT = COUNTS.index("invalid_actions")


class ListeningSessionVectorEnv(ListeningSessionVectorEnvBase):
    """N listening sessions stepped together: the batched form of :class:`~musicenv.env.ListeningSessionEnv`.

    Each step asks the responder once for all N sessions (``response_probs``, ``advance`` and
    ``leave_probs`` on the whole batch), so a batched model (the learned world's torch networks)
    pays its per-call cost once per step instead of N times. The episode, the observation, the
    reward and the info are those of the single environment (read its docstring); this one adds:

    **Seeding.** Sub-environment ``i`` has its own generator, seeded as a single environment would
    be: ``reset(seed=s)`` gives sub-environment ``i`` the generator of ``ListeningSessionEnv``'s
    ``reset(seed=s + i)`` (Gymnasium's ``SyncVectorEnv`` convention; a list of N seeds sets them
    one by one). Every episode a sub-environment plays, first and autoreset ones alike, is drawn
    from its own generator only, so ``num_envs=1`` matches the single environment step for step,
    and sub-environment ``i`` replays the episodes of a single environment seeded ``s + i``: the
    same listeners, pools, responses and ends (tested on the default world). The learned model's
    float32 matrix products over a batch of N round differently from a batch of one, so with N > 1
    probabilities agree to ~1e-7 rather than bit for bit, and a response or an end differs only
    when its uniform falls within that rounding of a threshold (about once in ten million plays).

    **Autoreset: same step** (``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``). When a
    session ends, ``step`` returns its reward, ``terminated`` / ``truncated`` and step info, and
    already the *first observation of the next session* in that row. The last observation of the
    ended session is in ``info["final_obs"]`` (an object array of N, a single-env observation dict
    where ``info["_final_obs"]`` is True, None elsewhere) and its statistics in ``info["session"]``
    (a dict of arrays, valid where ``info["_session"]``). Chosen because every action of every step
    then plays a track: no step is spent on a reset, and a replay buffer needs no special case.
    (Gymnasium's vector *observation* wrappers accept only next-step autoreset; normalise features
    in the agent instead.) The other info keys describe the step just taken, for every row.

    **Compact state.** For replay buffers that store indices instead of observations (docs/design.md,
    "Memory and resume"), the current sessions are exposed as arrays. They are the environment's
    own, updated in place by ``step`` and ``reset``: copy what you keep.

    =====================  =============  =====================================================
    attribute              shape          content
    =====================  =============  =====================================================
    ``users``              ``(N,)``       user indices
    ``contexts``           ``Contexts``   context type and hour (``attention``, a latent of the
                                          ground truth, reads as 0: it is not observable)
    ``pools``              ``(N, M)``     track indices of the pools, -1 for padding
    ``history_tracks``     ``(N, L)``     tracks played, in order, -1 after the last
    ``history_responses``  ``(N, L)``     their response codes (int8)
    ``played``             ``(N, M)``     bool, the slots played
    ``lengths``            ``(N,)``       tracks played
    ``steps``              ``(N,)``       steps taken (invalid ones included)
    =====================  =============  =====================================================

    :func:`musicenv.observation.build_observations` of these (with ``context_features(contexts)``)
    equals the observation. The next state of a play is the state before it plus
    ``(pools[i, action], response)`` (``info["response"]``), so a transition that ended a
    session needs nothing more.

    **Observations** are new arrays on every call, by default. With ``copy=False`` (as for
    Gymnasium's ``SyncVectorEnv``) they are the environment's own buffers, overwritten by the next
    ``step``: that saves copying the ``(N, M, d_track)`` candidate matrix every step, for agents
    that use an observation before the next step and store compact indices, never observations.

    **Compact observations.** ``observation="compact"`` hands over the indices of the table above
    (user, pool, history tracks and responses) with the context features and the mask, instead of
    feature matrices: see :mod:`musicenv.observation`. For agents that read the world's feature
    tables themselves; it spares gathering and copying the ``(N, M, d_track)`` candidate matrix.

    **Tensor path.** :class:`~musicenv.torch_vector_env.TorchListeningSessionVectorEnv` (what
    :func:`make_vector_env` and ``gymnasium.make_vec`` build for ``device="cuda"``,
    ``backend="torch"`` or ``obs_format="torch"``) plays the same episodes draw for draw (same
    seed, same results; tested on the CPU), with the state in torch tensors on ``device`` and the
    responder running there, and with ``obs_format="torch"`` observations handed over as tensors
    on ``device`` (read that module's docstring for what crosses to the host).

    Args:
        num_envs: N, the number of sessions.
        copy: return new observation arrays on every call (default), or the env's buffers.
        observation: ``"full"`` (feature matrices, the default) or ``"compact"`` (indices).
        session: the listening mode, as for :class:`~musicenv.env.ListeningSessionEnv`.

    **Responses.** ``responses`` and ``pessimism`` are the single environment's (its Responses
    section); ``info["disagreement"]`` is ``(N,)`` float64, 0 where the action was invalid. In
    ``"sample"`` mode each episode's member is drawn from its sub-environment's own generator
    after that episode's uniforms, as the single environment draws it, so sub-environment ``i``
    still replays a single environment seeded ``s + i``; one batched ``member_response_probs``
    call then answers every session with its own member.

    The other arguments (``world``, ``playlist_length``, ``pool_size``, ``reward``,
    ``explicit_filter``, ``strict``, ``split``, ``render_mode``, ``responder``,
    ``groundtruth_seed``, ``responses``, ``pessimism``) are those of
    :class:`~musicenv.env.ListeningSessionEnv`. With
    ``strict=True`` a batch with an invalid action raises before any session changes;
    ``render_mode="ansi"``: ``render()`` returns a tuple of N tables.
    """

    # Names of state arrays that only this env holds (see step); none until a step makes some.
    _owned_state: set[str] | frozenset[str] = frozenset()

    # -- episodes ------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start N new sessions; ``seed`` seeds sub-environment ``i`` with ``seed + i`` (or ``seed[i]``)."""
        self._reseed(seed)
        n, length, size = self.num_envs, self.playlist_length, self.pool_size
        self.users = np.zeros(n, dtype=np.int64)
        self._contexts = Contexts(np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros(n, np.float32))
        self.pools = np.full((n, size), -1, dtype=np.int64)
        self.history_tracks = np.full((n, length), -1, dtype=np.int64)
        self.history_responses = np.zeros((n, length), dtype=np.int8)
        self.played = np.zeros((n, size), dtype=bool)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self._history_p_complete = np.zeros((n, length), dtype=np.float64)
        self._uniforms = np.zeros((n, 2, length), dtype=np.float64)
        self._pool_tracks = np.zeros(n, dtype=np.int64)
        self._returns = np.zeros(n, dtype=np.float64)
        self._counts = np.zeros((n, len(COUNTS)), dtype=np.int64)
        self._members = np.zeros(n, dtype=np.int64)
        # The pool's play codes and each candidate's match mask (musicenv.familiarity.match_masks):
        # what its in-session familiarity columns are updated from, play by play.
        self._pool_codes = np.full((n, size), -1, dtype=np.int64)
        self._match_masks = np.zeros((n, size), dtype=np.int64)
        self._state: SessionState = {}
        self._obs = {
            key: np.zeros(space.shape, dtype=space.dtype) for key, space in self.observation_space.spaces.items()
        }
        self._started = True
        self._owned_state = frozenset()
        self._begin(self._rows)
        return self._observations(), {}

    def _begin(self, rows: np.ndarray) -> None:
        """Start new sessions in ``rows``, each drawn from its own generator as a single env would."""
        row_list = rows.tolist()
        # Each session's draws come from its own generator only: the session, then its uniforms.
        rngs = [self._rngs[row] for row in row_list]
        users, contexts = sample_session_each(self.world, rngs, self.split)
        users = users.astype(np.int64, copy=False)
        for row, rng in zip(row_list, rngs):
            rng.random(out=self._uniforms[row])
            self._members[row] = self._draw_member(rng)
        pools = np.asarray(self.world.candidate_pools(users, self.pool_size, self.explicit_filter), dtype=np.int64)

        self.users[rows] = users
        self._contexts.context_type[rows] = contexts.context_type
        self._contexts.hour[rows] = contexts.hour
        self._contexts.attention[rows] = contexts.attention
        self.pools[rows] = pools
        self.history_tracks[rows] = -1
        self.history_responses[rows] = 0
        self.played[rows] = False
        self.lengths[rows] = 0
        self.steps[rows] = 0
        self._history_p_complete[rows] = 0.0
        self._pool_tracks[rows] = (pools >= 0).sum(axis=1)
        self._returns[rows] = 0.0
        self._counts[rows] = 0
        fresh = self._responder.initial_state(users, contexts)
        # States are values (the oracle may hold one): rows go into new arrays, or into those only
        # this step's advance made (see step).
        if len(rows) == self.num_envs:
            self._state = fresh
        else:
            self._state = _state_with_rows(self._state, rows, fresh, self._owned_state)
        self._write_first_observations(rows, pools, contexts)

    def _write_first_observations(self, rows: np.ndarray, pools: np.ndarray, contexts: Contexts) -> None:
        """The observation rows of sessions that just began: :func:`build_observations` with no history."""
        obs, catalogue = self._obs, self.catalogue
        in_pool = pools >= 0
        obs["action_mask"][rows] = in_pool
        obs["context"][rows] = context_features(contexts)
        if self.observation == "compact":
            obs["user"][rows] = self.users[rows]
            obs["pool"][rows] = pools
            obs["history_tracks"][rows] = -1
            obs["history_responses"][rows] = 0
            return
        obs["user"][rows] = catalogue.user_features[self.users[rows]]
        obs["history"][rows] = 0.0
        obs["history_mask"][rows] = 0.0
        obs["candidates"][rows] = catalogue.candidate_features.take(pools, axis=0)
        no_history = np.full((len(rows), self.playlist_length), -1, dtype=np.int64)
        obs["familiarity"][rows] = candidate_familiarity(catalogue.familiarity, self.users[rows], pools, no_history)
        obs["history_familiarity"][rows] = 0.0
        self._pool_codes[rows] = track_play_codes(catalogue.familiarity, pools)
        self._match_masks[rows] = 0

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise error.ResetNeeded("ListeningSessionVectorEnv: call reset() before step()")
        actions = check_actions(actions, self.num_envs, self.pool_size)
        rows = self._rows
        tracks = self.pools[rows, actions]
        valid = (tracks >= 0) & ~self.played[rows, actions]
        all_valid = bool(valid.all())
        if self.strict and not all_valid:
            i = int(np.flatnonzero(~valid)[0])
            reason = "padding (the pool has fewer tracks)" if tracks[i] < 0 else "already played in this session"
            raise ValueError(f"sub-environment {i}: slot {int(actions[i])} is invalid: {reason}")
        positions = self.lengths.copy()

        # One batched call per model method for all sessions that play (all of them, when the
        # agent reads the mask); sessions with an invalid action keep their state.
        previous = self._state
        if all_valid:
            playing = rows
            probs, disagreement = self._answer(self._state, tracks, rows)
            responses = sample_responses(probs, self._uniforms[rows, 0, positions])
            self._state = self._responder.advance(self._state, tracks, responses)
        else:
            playing = np.flatnonzero(valid)
            probs = np.zeros((self.num_envs, len(RESPONSES)))
            disagreement = np.zeros(self.num_envs)
            responses = np.full(self.num_envs, -1, dtype=np.int8)
            if len(playing):
                before = take_state(self._state, playing)
                probs[playing], disagreement[playing] = self._answer(before, tracks[playing], playing)
                responses[playing] = sample_responses(probs[playing], self._uniforms[playing, 0, positions[playing]])
                after = self._responder.advance(before, tracks[playing], responses[playing])
                self._state = _state_with_rows(self._state, playing, after)
        # Arrays this step made (owning their memory, neither given to the responder nor viewed
        # by what it was given) are the env's alone: an autoreset may write its rows into them.
        inputs = (*previous.values(), tracks, responses)
        self._owned_state = {
            key
            for key, value in self._state.items()
            if value.base is None and all(other is not value and other.base is not value for other in inputs)
        }
        terminated = valid & (self._uniforms[rows, 1, positions] < self._responder.leave_probs(self._state))

        rewards = np.full(self.num_envs, self.reward_config.invalid_action, dtype=np.float64)
        rewards[playing] = (
            self._play_rewards(tracks[playing], responses[playing], playing) - self._penalty * disagreement[playing]
        )
        self._record_plays(playing, actions[playing], tracks[playing], responses[playing], probs[playing, 2])
        self.steps += 1
        self._returns += rewards
        self._counts[playing, _RESPONSE_COUNT[responses[playing]]] += 1  # one play per session: no repeats
        self._counts[:, _INVALID_COUNT] += ~valid

        truncated = ~terminated & ((self.steps >= self.playlist_length) | (self.lengths >= self._pool_tracks))
        info: dict[str, Any] = {
            "response": RESPONSE_NAMES[responses],
            "response_probs": probs,
            "track_id": self._track_ids[tracks],
            "artist_id": self._artist_ids[tracks],
            "track_index": tracks.copy(),
            "p_complete": probs[:, 2].copy(),
            "invalid_action": ~valid,
            "position": positions + 1,
            "disagreement": disagreement,
        }
        ended = terminated | truncated
        if ended.any():
            info.update(self._end(np.flatnonzero(ended), ended))
        return self._observations(), rewards, terminated, truncated, info

    def _answer(self, state: SessionState, tracks: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The responder's ``(B, 3)`` probabilities of the plays of sessions ``rows`` (``state``, ``tracks``),
        as ``responses`` asks, and the members' ``(B,)`` disagreement on them (0 for a single model)."""
        if self._ensemble_size == 1:
            probs = np.asarray(self._responder.response_probs(state, tracks[:, None])[:, 0], np.float64)
            return probs, np.zeros(len(tracks))
        member_probs = np.asarray(self._responder.member_response_probs(state, tracks[:, None])[:, 0], np.float64)  # type: ignore[attr-defined]
        disagreement = member_disagreement(member_probs, self.reward_config.response_values)
        if self.responses == "sample":
            return member_probs[np.arange(len(rows)), self._members[rows]], disagreement
        return np.asarray(self._responder.response_probs(state, tracks[:, None])[:, 0], np.float64), disagreement

    def _play_rewards(self, tracks: np.ndarray, responses: np.ndarray, playing: np.ndarray) -> np.ndarray:
        config, catalogue = self.reward_config, self.catalogue
        new_artist = None
        if config.diversity_bonus != 0.0:
            new_artist = new_artists(catalogue.artist_codes, self.history_tracks[playing], tracks)
        return play_rewards(
            config.response_values, catalogue.track_boosts, responses, tracks, config.diversity_bonus, new_artist
        )

    def _record_plays(
        self,
        rows: np.ndarray,
        slots: np.ndarray,
        tracks: np.ndarray,
        responses: np.ndarray,
        p_complete: np.ndarray,
    ) -> None:
        """Append the plays of ``rows`` to their sessions."""
        positions = self.lengths[rows]
        at = rows * self.playlist_length + positions  # flat (session, position) indices
        self.history_tracks.reshape(-1)[at] = tracks
        self.history_responses.reshape(-1)[at] = responses
        self._history_p_complete.reshape(-1)[at] = p_complete
        self.played[rows, slots] = True
        self.lengths[rows] = positions + 1
        if self.observation == "compact":
            self._obs["history_tracks"].reshape(-1)[at] = tracks
            self._obs["history_responses"].reshape(-1)[at] = responses
        else:
            write_history_plays(self._obs["history"], at, self.catalogue.track_features, tracks, responses)
            self._obs["history_mask"].reshape(-1)[at] = 1.0
            familiarity = self._obs["history_familiarity"]
            familiarity.reshape(-1, familiarity.shape[-1])[at] = self._obs["familiarity"][rows, slots]
            if self.catalogue.familiarity is not None:
                # The candidates' in-session columns follow the tracks just played.
                played = self.catalogue.familiarity.play_codes[tracks]
                columns = self._obs["familiarity"][rows, :, N_LOGGED:]
                masks = self._match_masks[rows]
                advance_session_familiarity(columns, masks, self._pool_codes[rows], played)
                self._obs["familiarity"][rows, :, N_LOGGED:] = columns
                self._match_masks[rows] = masks
        self._obs["action_mask"][rows, slots] = 0

    def _end(self, rows: np.ndarray, ended: np.ndarray) -> dict[str, Any]:
        """Info of the sessions in ``rows`` that just ended, then start their next sessions."""
        session = {
            "return": np.where(ended, self._returns, 0.0),
            "length": np.where(ended, self.lengths, 0),
            **{key: np.where(ended, self._counts[:, column], 0) for column, key in enumerate(COUNTS)},
        }
        final_obs = np.full(self.num_envs, None, dtype=object)
        keys = list(self._obs)
        last = [value.take(rows, axis=0) for value in self._obs.values()]  # copies: the rows reset next
        for row, values in zip(rows.tolist(), zip(*last)):
            final_obs[row] = dict(zip(keys, values))
        self._begin(rows)
        return {"session": session, "_session": ended, "final_obs": final_obs, "_final_obs": ended}

    def _observations(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {key: value.copy() for key, value in self._obs.items()}
        return dict(self._obs)

    def action_masks(self) -> np.ndarray:
        """``(N, M)`` bool, the slots each session can play now."""
        self._require_started()
        return (self.pools >= 0) & ~self.played

    # -- views -----------------------------------------------------------------------------------------

    @property
    def contexts(self) -> Contexts:
        """The sessions' contexts as observed: the latent ``attention`` reads as 0."""
        self._require_started()
        return Contexts(self._contexts.context_type, self._contexts.hour, np.zeros(self.num_envs, dtype=np.float32))

    def _session(self) -> SessionState:
        self._require_started()
        return self._state

    def _current_pools(self) -> np.ndarray:
        self._require_started()
        return self.pools

    def _session_arrays(self) -> dict[str, np.ndarray]:
        return {
            "users": self.users,
            "context_type": self._contexts.context_type,
            "hour": self._contexts.hour,
            "attention": self._contexts.attention,
            "pools": self.pools,
            "played": self.played,
            "history_tracks": self.history_tracks,
            "history_responses": self.history_responses,
            "history_p_complete": self._history_p_complete,
            "uniforms": self._uniforms,
            "steps": self.steps,
            "returns": self._returns,
            "counts": self._counts,
            "members": self._members,
        }

    # -- saving and restoring ----------------------------------------------------------------------------

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`get_state` snapshot (taken on a vector env over the same world and settings)."""
        pools = self._restore_generators(state)
        self.users = np.array(state["users"], dtype=np.int64)
        self._contexts = Contexts(
            np.array(state["context_type"]), np.array(state["hour"]), np.array(state["attention"])
        )
        self.pools = pools
        self.played = np.array(state["played"], dtype=bool)
        self.history_tracks = np.array(state["history_tracks"], dtype=np.int64)
        self.history_responses = np.array(state["history_responses"], dtype=np.int8)
        self._history_p_complete = np.array(state["history_p_complete"], dtype=np.float64)
        self.lengths = (self.history_tracks >= 0).sum(axis=1)
        self.steps = np.array(state["steps"], dtype=np.int64)
        self._uniforms = np.array(state["uniforms"], dtype=np.float64)
        self._pool_tracks = (pools >= 0).sum(axis=1)
        self._returns = np.array(state["returns"], dtype=np.float64)
        self._counts = np.array(state["counts"], dtype=np.int64)
        self._members = self._restore_members(state)
        self._state = session_model_state(state)
        self._started = True
        contexts = context_features(self._contexts)
        if self.observation == "compact":
            self._obs = {
                "user": self.users.copy(),
                "context": contexts,
                "pool": self.pools.copy(),
                "history_tracks": self.history_tracks.copy(),
                "history_responses": self.history_responses.copy(),
                "action_mask": self.action_masks().astype(np.int8),
            }
            return
        self._obs = build_observations(
            self.catalogue.track_features,
            self.catalogue.user_features,
            self.users,
            contexts,
            self.pools,
            self.history_tracks,
            self.history_responses,
            self.played,
            self.catalogue.familiarity,
        )
        self._pool_codes = track_play_codes(self.catalogue.familiarity, self.pools)
        recent = recent_codes(track_play_codes(self.catalogue.familiarity, self.history_tracks))
        self._match_masks = match_masks(self._pool_codes, recent[:, None, :])


def _state_with_rows(
    state: SessionState, rows: np.ndarray, rows_state: SessionState, owned: set[str] | frozenset[str] = frozenset()
) -> SessionState:
    """``state`` with ``rows`` replaced by ``rows_state``.

    States are values (an oracle's caller may hold one), so arrays are copied before the rows are
    written, except those named in ``owned``: arrays no one else can hold (the step that calls
    this just made them), written in place.
    """
    replaced = {}
    for key, value in state.items():
        replaced[key] = value if key in owned else value.copy()
        replaced[key][rows] = rows_state[key]
    return replaced


def make_vector_env(
    num_envs: int = 1,
    *,
    device: str = "cpu",
    backend: Literal["numpy", "torch"] | None = None,
    obs_format: Literal["numpy", "torch"] = "numpy",
    **kwargs: Any,
) -> ListeningSessionVectorEnv | TorchListeningSessionVectorEnv:
    """The vector env that ``device``, ``backend`` and ``obs_format`` ask for: the numpy path or the tensor path.

    It is ``ListeningSession-v0``'s ``vector_entry_point``: ``gymnasium.make_vec("ListeningSession-v0",
    num_envs=N, vectorization_mode="vector_entry_point", **kwargs)`` calls it.

    Args:
        num_envs: N, the number of sessions.
        device: where the state lives: ``"cpu"`` (the default) or a torch device such as ``"cuda"``.
        backend: ``"numpy"`` or ``"torch"``; default numpy on ``"cpu"``, torch on any other device.
            ``backend="torch"`` with ``device="cpu"`` runs the tensor path on the CPU.
        obs_format: ``"numpy"`` (default; Gymnasium and SB3 read numpy) or ``"torch"`` (tensors on
            ``device``; the tensor path).
        kwargs: the other arguments of :class:`ListeningSessionVectorEnv` (``world``,
            ``pool_size``, ...); ``observation="compact"`` is for the numpy path only.

    Returns:
        A :class:`ListeningSessionVectorEnv` (numpy path) or a
        :class:`~musicenv.torch_vector_env.TorchListeningSessionVectorEnv` (tensor path).
    """
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch', not {backend!r}")
    if backend != "torch" and obs_format == "numpy" and str(device) == "cpu":
        return ListeningSessionVectorEnv(num_envs, **kwargs)
    if backend == "numpy":
        raise ValueError(
            f"backend='numpy' is the CPU path with numpy observations; device={device!r} and "
            f"obs_format={obs_format!r} need backend='torch'"
        )
    if kwargs.get("observation", "full") == "compact":
        raise ValueError("observation='compact' is available on the numpy path (device='cpu') only")
    from musicenv.torch_vector_env import TorchListeningSessionVectorEnv

    return TorchListeningSessionVectorEnv(num_envs, device=device, obs_format=obs_format, **kwargs)
