"""The one World protocol that both worlds implement, and the vocabulary they share.

musicenv has two worlds (see docs/design.md, "The two worlds"): the synthetic **ground-truth world**
(:mod:`musicenv.groundtruth`), whose response probabilities are known exactly, and the
**learned world** (:mod:`world_model.world`), built from listening logs. The environment, the
agents and the evaluation talk to either through the protocols below, so one trained agent runs
in both unchanged.

Indices, not ids
    Inside a world, users and tracks are integer indices: row ``i`` of ``world.tracks`` is track
    ``i``; ``world.user_ids[u]`` is the id of user ``u``. Ids are strings and are shared by the
    two worlds (the learned world is built from the ground-truth world's logs), so translating
    between them is ``np.searchsorted`` or a dict, done once.

Session state
    A :class:`SessionModel` keeps what it needs to know about a session so far in a
    ``SessionState``: a ``dict[str, np.ndarray]`` whose arrays all have the batch as their first
    axis. Methods never modify a state in place; :meth:`SessionModel.advance` returns a new one.
    That makes a state cheap to branch (a planner repeats rows with :func:`take_state`) and to
    save (``get_state`` of an env is a copy of the dict).

Responses
    The three the whole project uses, in this order (the order is the inverse-CDF order of the
    common-random-numbers draw, see :func:`sample_responses`): ``0 = skip`` (left within the first
    N seconds), ``1 = listen`` (past N seconds, not to the end), ``2 = complete``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from musicenv.familiarity import SESSION_FAMILIARITY_FEATURES

RESPONSES: tuple[str, str, str] = ("skip", "listen", "complete")
"""Response names; their position is the integer code used in arrays."""
SKIP, LISTEN, COMPLETE = 0, 1, 2

CONTEXT_TYPES: tuple[str, ...] = (
    "editorial_playlist",
    "user_collection",
    "catalog",
    "radio",
    "charts",
    "personalized_playlist",
)
"""The MSSD's six context types; their position is the integer code used in arrays."""

CONTEXT_FEATURES_DIM = len(CONTEXT_TYPES) + 2
"""Context as the agent observes it: one-hot context type, then sin and cos of the hour."""

EVAL_USER_SHARE = 0.2
"""Share of users held out for evaluation (docs/design.md, "Users")."""

SessionState = dict[str, np.ndarray]
Split = Literal["train", "eval", "all"]


@dataclass(frozen=True)
class Contexts:
    """The listening contexts of a batch of sessions (arrays of length B).

    Attributes:
        context_type: int8 codes into :data:`CONTEXT_TYPES`.
        hour: int8 hour of day, 0..23.
        attention: float32 standard-normal draw, the session's latent mood/attention. Real
            sessions differ in skip rate far more than chance allows (docs/design.md, "Realism the real rows show");
            the ground-truth world reads this to reproduce that, the learned world cannot
            observe it and ignores it, and no observation exposes it.
    """

    context_type: np.ndarray
    hour: np.ndarray
    attention: np.ndarray

    def __len__(self) -> int:
        return len(self.context_type)

    def take(self, index: np.ndarray | slice) -> Contexts:
        """Rows ``index`` of every field."""
        return Contexts(self.context_type[index], self.hour[index], self.attention[index])


def _context_feature_table() -> np.ndarray:
    """Rows ``24 * context_type + hour``: the context features of every (context type, hour) pair."""
    context_type, hour = np.divmod(np.arange(len(CONTEXT_TYPES) * 24), 24)
    out = np.zeros((len(context_type), CONTEXT_FEATURES_DIM), dtype=np.float32)
    out[np.arange(len(context_type)), context_type] = 1.0
    angle = 2.0 * np.pi * hour.astype(np.float32) / 24.0
    out[:, len(CONTEXT_TYPES)] = np.sin(angle)
    out[:, len(CONTEXT_TYPES) + 1] = np.cos(angle)
    return out


_CONTEXT_FEATURE_TABLE = _context_feature_table()


def context_features(contexts: Contexts) -> np.ndarray:
    """Observed context features, shape ``(B, CONTEXT_FEATURES_DIM)`` float32 (a new array).

    One-hot context type, then the sine and cosine of the hour on the 24-hour circle (read from a
    table of the 144 (context type, hour) pairs: an environment asks this at every reset).

    Raises:
        ValueError: a context type outside :data:`CONTEXT_TYPES` or an hour outside 0..23.
    """
    context_type, hour = contexts.context_type.astype(np.int64), contexts.hour.astype(np.int64)
    if len(hour) and (
        context_type.min() < 0 or context_type.max() >= len(CONTEXT_TYPES) or hour.min() < 0 or hour.max() > 23
    ):
        raise ValueError(
            f"contexts out of range: context_type must lie in [0, {len(CONTEXT_TYPES)}) and hour in [0, 23], got "
            f"context_type {context_type.min()}..{context_type.max()} and hour {hour.min()}..{hour.max()}"
        )
    return _CONTEXT_FEATURE_TABLE[context_type * 24 + hour]


def take_state(state: SessionState, index: np.ndarray | slice) -> SessionState:
    """Rows ``index`` of every array of ``state`` (for branching, e.g. ``np.repeat(arange, k)``)."""
    return {key: value[index] for key, value in state.items()}


def draw_response(p_skip: Any, p_listen: Any, uniform: Any) -> Any:
    """The response at ``uniform`` by the inverse CDF of (skip, listen, complete): the one common-random-numbers draw.

    0 (skip) when ``uniform < p_skip``, 1 (listen) when below ``p_skip + p_listen``, else 2
    (complete). With the same uniform, two agents whose chosen tracks have the same probabilities
    get the same response, and a track with a higher completion probability never gets a worse
    response (docs/design.md, "Common random numbers"). Written with operators only, so it takes
    Python numbers (the single env's session kernels), numpy arrays (:func:`sample_responses`,
    the vector env) and torch tensors (the tensor env), and all of them draw the same response
    from the same probabilities, bit for bit.
    """
    return (uniform >= p_skip) * 1 + (uniform >= p_skip + p_listen) * 1


def sample_responses(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Responses by the inverse CDF of (skip, listen, complete) at the given uniforms (:func:`draw_response`).

    Args:
        probs: ``(..., 3)`` response probabilities.
        uniforms: uniforms in [0, 1) of shape ``probs.shape[:-1]``.

    Returns:
        int8 response codes of shape ``uniforms.shape``.
    """
    return draw_response(probs[..., 0], probs[..., 1], uniforms).astype(np.int8)


def is_eval_user(user_ids: np.ndarray | pd.Series | list[str], salt: str = "musicenv") -> np.ndarray:
    """Seeded-hash split of users: True for the ~20% held out for evaluation.

    The hash depends only on the id and the salt, so the ground-truth and the learned world agree
    on the split without sharing state.
    """
    threshold = int(EVAL_USER_SHARE * 2**32)
    out = np.empty(len(user_ids), dtype=bool)
    for i, user_id in enumerate(user_ids):
        digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=4).digest()
        out[i] = int.from_bytes(digest, "little") < threshold
    return out


@runtime_checkable
class SessionModel(Protocol):
    """How a listener responds, and when they leave, given the session so far.

    Both worlds implement it: the ground-truth world exactly, the learned world with its
    user-response and session-end models. All methods are batched over sessions.
    """

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        """State of B empty sessions for ``users`` (int indices) in ``contexts``."""
        ...

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """Probabilities of (skip, listen, complete) for candidate tracks.

        Args:
            state: B session states.
            tracks: ``(B, K)`` track indices, K candidates per session, scored as the *next*
                play of each session. Entries ``< 0`` are padding; their rows are arbitrary
                but finite.

        Returns:
            ``(B, K, 3)`` float64 probabilities summing to 1 over the last axis.
        """
        ...

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        """New state after each session played ``tracks[b]`` (B,) with ``responses[b]`` (B,)."""
        ...

    def leave_probs(self, state: SessionState) -> np.ndarray:
        """``(B,)`` probability that each listener leaves now, after the plays so far."""
        ...


@runtime_checkable
class EnsembleSessionModel(SessionModel, Protocol):
    """A :class:`SessionModel` whose responses come from an ensemble of ``ensemble_size`` members.

    The learned world's user-response model is an ensemble (docs/design.md, "An honest learned
    world"): every member answers every question, the members share one session state, and
    :meth:`~SessionModel.response_probs` is the members' mean. Where the members disagree the
    logs did not pin the answer down; the environments report that disagreement
    (``info["disagreement"]``, :func:`member_disagreement`) and can penalise it
    (``responses="pessimistic"``) or answer each episode with one member (``responses="sample"``).
    A model that is not an ensemble is treated as an ensemble of one (:func:`ensemble_size`).
    """

    @property
    def ensemble_size(self) -> int:
        """How many members answer (1: a single model)."""
        ...

    def member_response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K, E, 3)`` float64: each of the ``E`` members' probabilities for ``tracks`` ``(B, K)``.

        Their mean over the member axis is :meth:`~SessionModel.response_probs`.
        """
        ...

    def member(self, index: int) -> SessionModel:
        """Member ``index`` alone, as a :class:`SessionModel` over the same states (``0 <= index < E``).

        Its ``initial_state``, ``advance`` and ``leave_probs`` are the ensemble's (a state made by
        one serves the other); its ``response_probs`` are that member's.
        """
        ...


def ensemble_size(model: SessionModel) -> int:
    """The number of members of ``model``'s ensemble: its ``ensemble_size``, or 1 for a single model."""
    return int(getattr(model, "ensemble_size", 1))


def leave_probs_after(
    model: SessionModel, state: SessionState, tracks: np.ndarray, responses: np.ndarray
) -> np.ndarray:
    """``(B,)`` probability that each listener leaves right after playing ``tracks`` with ``responses`` ``(B,)``.

    ``model.leave_probs(model.advance(state, tracks, responses))``. A model whose leaving reads
    less than the whole new state answers through its own ``leave_probs_after`` with the same
    numbers: the learned world's reads only the session's counters, so a planner's leaves (where
    nothing but leaving is asked of the next state) skip its GRU step.
    """
    shortcut = getattr(model, "leave_probs_after", None)
    if shortcut is not None:
        return shortcut(state, tracks, responses)
    return model.leave_probs(model.advance(state, tracks, responses))


def member_disagreement(member_probs: np.ndarray, response_values: np.ndarray) -> np.ndarray:
    """The members' disagreement on a play: the standard deviation over members of its expected value.

    Args:
        member_probs: ``(..., E, 3)`` each member's (skip, listen, complete) probabilities.
        response_values: ``(3,)`` the reward of each response (:attr:`musicenv.rewards.RewardConfig.response_values`).

    Returns:
        ``(...)`` float64 ``std_e(member_probs[..., e, :] @ response_values)`` (population standard
        deviation; 0 for an ensemble of one), in reward units, so ``reward - lambda * disagreement``
        is a lower-confidence reward (MOPO, Yu et al. 2020).
    """
    values = np.asarray(member_probs, dtype=np.float64) @ np.asarray(response_values, dtype=np.float64)
    return values.std(axis=-1)


class SingleSession(Protocol):
    """One listener's session, stepped one play at a time: the single environment's fast path.

    A :class:`SessionModel` is batched; a single environment asks it about one session per step,
    where the per-call cost of three batched calls (and of their state dicts) is most of the step
    (docs/design.md, "Speed"). A model may offer ``single_session(state)`` returning one of these, a
    fused kernel that keeps the state in its own form; :func:`single_session` falls back to
    :class:`BatchedSingleSession` for models that do not. Both give the answers of the batched
    calls on a batch of one.
    """

    def play(self, track: int, uniform: float) -> tuple[list[float], int]:
        """Play ``track`` next: its (skip, listen, complete) probabilities and the response drawn at ``uniform``.

        The response is :func:`draw_response` at ``uniform``; the session then advances past
        the play.
        """
        ...

    def leave_prob(self) -> float:
        """Probability that the listener leaves now, after the plays so far."""
        ...

    @property
    def state(self) -> SessionState:
        """The session as the model's batched state (batch of one), for oracles and snapshots."""
        ...


class BatchedSingleSession:
    """:class:`SingleSession` through any :class:`SessionModel`'s batched calls, on a batch of one."""

    def __init__(self, model: SessionModel, state: SessionState) -> None:
        self.model = model
        self.state = state

    def play(self, track: int, uniform: float) -> tuple[list[float], int]:
        p_skip, p_listen, p_complete = self.model.response_probs(self.state, np.array([[track]]))[0, 0].tolist()
        response = draw_response(p_skip, p_listen, uniform)
        self.state = self.model.advance(self.state, np.array([track]), np.array([response], dtype=np.int8))
        return [p_skip, p_listen, p_complete], response

    def leave_prob(self) -> float:
        return float(self.model.leave_probs(self.state)[0])


def sample_session_each(world: World, rngs: Sequence[np.random.Generator], split: Split) -> tuple[np.ndarray, Contexts]:
    """One (user, context) pair from each generator: ``world.sample_sessions(rng, 1, split)`` for each, stacked.

    A vector environment's autoresets draw each new session from its own sub-environment's
    generator, a few dozen a step. A world may offer ``sample_session_each(rngs, split)`` that
    makes the same draws from the same generators without a call and four arrays per session (the
    learned world does); otherwise this calls ``sample_sessions`` once per generator.

    Returns:
        ``(len(rngs),)`` users and their contexts, as ``sample_sessions`` would return them.
    """
    own = getattr(world, "sample_session_each", None)
    if own is not None:
        return own(rngs, split)
    sessions = [world.sample_sessions(rng, 1, split) for rng in rngs]
    contexts = [contexts for _, contexts in sessions]
    return np.concatenate([users for users, _ in sessions]), Contexts(
        np.concatenate([c.context_type for c in contexts]),
        np.concatenate([c.hour for c in contexts]),
        np.concatenate([c.attention for c in contexts]),
    )


def single_session(model: SessionModel, state: SessionState) -> SingleSession:
    """``model``'s own :class:`SingleSession` for ``state`` (a batch of one), or the batched fallback."""
    own = getattr(model, "single_session", None)
    return own(state) if own is not None else BatchedSingleSession(model, state)


LOGGED_FAMILIARITY_FEATURES: tuple[str, ...] = (
    "played_before",
    "log_plays",
    "complete_share",
    "skip_share",
    "artist_log_plays",
    "artist_complete_share",
    "artist_skip_share",
)
"""A listener's familiarity with a track from the logs a world was learned from, in column order:
whether and how often (``log(1 + plays)``) they played the track and the shares of those plays
completed and skipped, then the same over every track of its artist
(:class:`world_model.history.ListeningHistory`). Fixed within a session."""

FAMILIARITY_FEATURES: tuple[str, ...] = (*LOGGED_FAMILIARITY_FEATURES, *SESSION_FAMILIARITY_FEATURES)
"""The observations' ``"familiarity"`` columns: :data:`LOGGED_FAMILIARITY_FEATURES`, then how
recently the session played the track's artist and genre (:data:`musicenv.familiarity.SESSION_FAMILIARITY_FEATURES`),
which change as the session goes on."""


class Familiarity(Protocol):
    """A sparse (listener, track) table of :data:`LOGGED_FAMILIARITY_FEATURES` (the learned world's listening history).

    Attributes:
        play_codes: ``(n_tracks,)`` int64 play code of every track index, its artist and genre
            (:func:`musicenv.familiarity.play_codes`; the in-session columns of
            :data:`FAMILIARITY_FEATURES` compare them).
    """

    play_codes: np.ndarray

    def features(self, listeners: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(..., len(LOGGED_FAMILIARITY_FEATURES))`` float32 of each (listener, track) pair (broadcast shapes)."""
        ...


def world_familiarity(world: object) -> Familiarity | None:
    """The familiarity table a world's observations carry: the learned world's ``familiarity``, or None.

    A world learned without it (``UserModelConfig.history=False``) or one with no logs of its own
    has none; its observations' ``"familiarity"`` is then zeros ("never played").
    """
    return getattr(world, "familiarity", None)


@runtime_checkable
class World(Protocol):
    """What the environment and the agents need of a world.

    Attributes:
        name: short label for tables and logs ("learned", "groundtruth").
        tracks: the track table, one row per track index (columns of
            :data:`musicenv.data.TRACK_COLUMNS` at least ``track_id``, ``artist_id``,
            ``us_pop_estimate``, ``explicit``).
        user_ids: ``(n_users,)`` str ids; index ``u`` is user ``u``.
        track_features: ``(n_tracks, d_track)`` float32, what an agent observes of a track.
        user_features: ``(n_users, d_user)`` float32, what an agent observes of a user.
        eval_users: ``(n_users,)`` bool, :func:`is_eval_user` of ``user_ids``.
        session_model: the world's :class:`SessionModel`.
    """

    name: str
    tracks: pd.DataFrame
    user_ids: np.ndarray
    track_features: np.ndarray
    user_features: np.ndarray
    eval_users: np.ndarray
    session_model: SessionModel

    def sample_sessions(self, rng: np.random.Generator, n: int, split: Split) -> tuple[np.ndarray, Contexts]:
        """Draw ``n`` (user, context) pairs from ``split``'s users, using ``rng`` only."""
        ...

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(len(users), size)`` int64 track indices, best first, ``-1`` where the catalogue runs out.

        The tracks and artists each user blocked (the world's own per-user block lists) and,
        with ``explicit_filter``, explicit tracks are removed and the pool refilled from further
        down the ranking (docs/design.md, "Pools and masks"). The ground-truth world has no pools of
        its own: in a sim-to-real run pools always come from the learned world.
        """
        ...
