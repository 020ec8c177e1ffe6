"""Lookahead planning with a session model: how much can sequencing gain over greedy?

The :class:`LookaheadPlanner` picks each track by planning over the next ``depth`` tracks with a
:class:`~musicenv.world.SessionModel`'s exact probabilities (responses and leaving) and playing
the first track of the best plan. It is the reference docs/design.md ("The two worlds") asks for: on the
ground-truth model (``planner_truth``) it measures how much a policy that sequences can gain over
greedy ranking on a given world; on the learned model (``planner_learned``) it is
model-predictive control, the strongest model-based competitor of AH-DQN.

The value it maximises
    An expectimax over responses, truncated at depth ``d``::

        V(s, h) = max_a  sum_r p(r | s, a) * [R(a, r) + (1 - p_leave(s')) * V(s', h - 1)]
        s' = advance(s, a, r)

    where ``h`` is the number of plays still to come (the planning depth, cut at the playlist's
    remaining length and at the pool's unplayed tracks), ``a`` ranges over the unplayed tracks of
    the pool, and ``R`` is what the env pays for the play (:class:`SlotRewards`, built from the
    env's :class:`~musicenv.rewards.RewardConfig`). Leaving is checked after each play on the
    advanced state, as the env does (docs/design.md, "Common random numbers"): the play after which
    the listener leaves still earns its reward. With ``depth`` equal to the remaining length and
    ``width`` equal to the pool size this is the exact optimum (:func:`agents.optimum.optimal_value`;
    tested).

Why a pruned expectimax and not MCTS
    The model gives exact probabilities, a response has only three outcomes, and what a track is
    worth right now is a strong prior for what it is worth in a plan. So the tree is small once the
    candidates of each node are pruned to the ``width`` best by immediate expected reward (a beam
    per node), and it can be evaluated exactly: no sampling noise, no exploration constant, and one
    batched model call per tree level (all nodes of the level, all their candidates, branched with
    :func:`~musicenv.world.take_state`). MCTS earns its keep with sampled transitions or a large
    branching factor; here it would spend its budget re-estimating expectations that one call
    computes exactly.

The leaf estimate (``leaf="survival"``)
    A truncated search treats the listener as gone after ``depth`` plays, so it cannot see that a
    skip, by raising the chance of leaving, also costs the plays after the horizon. With
    ``leaf="survival"`` a leaf that still has ``k`` plays to come is worth
    ``v * (1 + q + q^2 + ... + q^(k-1))``: ``v`` is the root's mean immediate expected reward over
    its ``k_root`` best candidates (what a play is worth in this session, computed once per
    decision) and ``q`` the probability that the listener stays after the leaf's play. It values
    staying, not which tracks are left. That is deliberate: a static greedy value of the leftover
    tracks (the obvious alternative, tried) makes the planner nearly indifferent to the order of
    the plays (the best track now or later sums to the same) and then rewards the errors of the
    static estimate, which ignores satiation; on a fake model with satiation it was worse than
    greedy. ``leaf="none"`` truncates (value 0 beyond the horizon).

Defaults (``depth=2, width=4, leaf="survival", shortlist=16``)
    Measured on the default world in a ground-truth run (``python benchmarks/headroom.py --full``:
    1,000 paired episodes of evaluation listeners, 200 exact small instances): ``planner_truth``
    returns 1.2% more than greedy by the true model (mean paired difference +0.11, 95% interval
    [+0.008, +0.215]) at about 1,200 decisions/s on one shared CPU core, and its exact gap to
    the optimum on the small instances (M = 8, 5 plays) is 0.7% where greedy's is 1.8%. The
    shortlist of 16 made ``planner_truth`` about twice and ``planner_learned`` about four times
    faster at no measurable cost (300 paired episodes against the full search: -0.03, interval
    [-0.13, +0.06]). ``--sweep`` (300 paired episodes) could not tell depths 2 to 3 and widths
    2 to 8 apart: every one was within +0.03 to +0.15 of greedy, with interval half-widths of
    0.11 to 0.18; the defaults are the cheapest setting that closes most of greedy's exact gap
    to the optimum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from agents.base import Agent, Observation
from musicenv.rewards import RewardConfig
from musicenv.world import CONTEXT_TYPES, Contexts, SessionModel, SessionState, World, leave_probs_after, take_state

LeafEstimate = Literal["none", "survival"]

Policy = Callable[[SessionState, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A deterministic policy over batches of sessions, as :mod:`agents.optimum` evaluates it.

``policy(state, pools, available, remaining) -> slots``: ``state`` holds B session states of the
model being planned with, ``pools`` ``(B, M)`` track indices (``-1`` padding), ``available``
``(B, M)`` bool (not yet played, not padding), ``remaining`` ``(B,)`` plays still to come
(including this one, >= 1). Returns ``(B,)`` int64 slots, each available.
"""


@dataclass(frozen=True)
class PlannerConfig:
    """How far and how wide the planner looks.

    Attributes:
        depth: plays planned ahead, the first included (1 is greedy by expected reward). The
            work per decision grows as ``(3 * width) ** (depth - 1)`` model calls over the pool.
        width: candidates kept per node, the best by immediate expected reward. ``width >= M``
            with ``depth`` = remaining length is the exact optimum.
        leaf: value of a leaf that still has plays to come: ``"survival"`` (staying is worth the
            session's mean play value per play, see the module docstring) or ``"none"``.
        shortlist: tracks scored at the nodes below the root: the root's best ones by immediate
            expected reward (at least ``width + depth`` of them, so a plan never runs out).
            The root always scores the whole pool. None scores the whole pool at every node
            (exact, ``(3 * width) ** (depth - 1)`` times a greedy step's model work); the default
            16 of a pool of 100 makes a decision about 4 times cheaper, and one play rarely
            lifts a track from below the root's 16th place to the top of the next step.
    """

    depth: int = 2
    width: int = 4
    leaf: LeafEstimate = "survival"
    shortlist: int | None = 16

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.leaf not in ("none", "survival"):
            raise ValueError(f"leaf must be 'none' or 'survival', got {self.leaf!r}")
        if self.shortlist is not None and self.shortlist < 1:
            raise ValueError(f"shortlist must be >= 1 or None, got {self.shortlist}")


@dataclass(frozen=True)
class SlotRewards:
    """What playing each pool slot earns, per response, as ``ListeningSession-v0`` pays it.

    The env's reward (:class:`~musicenv.rewards.RewardConfig`) of a play is
    ``value[response] * discovery boost of the track + artist_bonus * (its artist is new to the
    session)``. The first part is a fixed ``(B, M, 3)`` table; the second depends on the plays so
    far, so search nodes carry which slots' artists are still new and update it along the path.

    Attributes:
        values: ``(B, M, 3)`` float64 reward of each response for each slot.
        artist_bonus: added to a play whose artist is new to the session (0: off).
        artists: ``(B, M)`` int64 artist codes of the slots, ``-1`` where unknown (an unknown
            artist is always new, as the env counts it); needed when ``artist_bonus`` is set.
        artist_new: ``(B, M)`` bool, the slot's artist has not been played in the session yet.
    """

    values: np.ndarray
    artist_bonus: float = 0.0
    artists: np.ndarray | None = None
    artist_new: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.artist_bonus and (self.artists is None or self.artist_new is None):
            raise ValueError("an artist bonus needs the slots' artists and which of them are new")

    @classmethod
    def of(cls, reward: np.ndarray | SlotRewards, shape: tuple[int, int]) -> SlotRewards:
        """``reward`` as slot rewards: a ``(3,)`` response reward is the same for every slot."""
        if isinstance(reward, SlotRewards):
            return reward
        values = np.asarray(reward, dtype=np.float64)
        return cls(np.broadcast_to(values, (*shape, 3)) if values.shape == (3,) else values)

    def take(self, rows: np.ndarray) -> SlotRewards:
        """The rewards of sessions ``rows``."""
        return SlotRewards(
            self.values[rows],
            self.artist_bonus,
            None if self.artists is None else self.artists[rows],
            None if self.artist_new is None else self.artist_new[rows],
        )

    def initial_new(self) -> np.ndarray | None:
        """``(B, M)`` which slots' artists are new at the start (None when there is no bonus)."""
        return self.artist_new.copy() if self.artist_bonus else None

    def expected(self, probs: np.ndarray, roots: np.ndarray, slots: np.ndarray, new: np.ndarray | None) -> np.ndarray:
        """Expected rewards of playing ``slots`` ``(n, K)`` of nodes with sessions ``roots`` ``(n,)``.

        ``probs`` ``(n, K, 3)`` are the slots' response probabilities, ``new`` the nodes' ``(n, M)``
        artist-is-new masks.
        """
        expected = (probs * self.values[roots[:, None], slots]).sum(axis=-1)
        if new is not None:
            expected += self.artist_bonus * np.take_along_axis(new, slots, axis=1)
        return expected

    def after_play(self, new: np.ndarray | None, roots: np.ndarray, slots: np.ndarray) -> np.ndarray | None:
        """Artist-is-new masks ``(n, M)`` after each node played slot ``slots`` ``(n,)`` (a copy)."""
        if new is None:
            return None
        artists = self.artists[roots]
        played = artists[np.arange(len(slots)), slots]
        return new & ~((artists == played[:, None]) & (played >= 0)[:, None])


def plan(
    model: SessionModel,
    state: SessionState,
    pools: np.ndarray,
    available: np.ndarray,
    remaining: np.ndarray,
    reward: np.ndarray | SlotRewards,
    config: PlannerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best first track and its planned value for B sessions at once.

    Args:
        model: the session model to plan with; ``state`` and ``pools`` are in its indices.
        state: B session states of ``model``.
        pools: ``(B, M)`` track indices of each session's pool, ``-1`` for padding.
        available: ``(B, M)`` bool, slots that may be played (not yet played, not padding).
            Every row needs at least one.
        remaining: ``(B,)`` plays still to come including this one (>= 1); the search never
            plans past it, nor past the pool's available tracks.
        reward: ``(3,)`` reward of (skip, listen, complete), or :class:`SlotRewards`.
        config: depth, width and leaf estimate (default :class:`PlannerConfig()`).

    Returns:
        ``(slots, values)``: ``(B,)`` int64 slots to play now, and ``(B,)`` float64 planned values
        (expected reward of the next ``min(depth, remaining)`` plays, plus the leaf estimate).
        Ties go to the higher immediate expected reward, then to the lower slot, so ``depth=1``
        is exactly greedy by expected reward.

    Raises:
        ValueError: a session has no available slot, or ``remaining < 1``.
    """
    config = config if config is not None else PlannerConfig()
    pools = np.asarray(pools, dtype=np.int64)
    available = np.asarray(available, dtype=bool) & (pools >= 0)
    remaining = np.asarray(remaining, dtype=np.int64)
    if not available.any(axis=1).all():
        raise ValueError("every session needs at least one available slot to plan")
    if (remaining < 1).any():
        raise ValueError("remaining must be >= 1 for every session")
    remaining = np.minimum(remaining, available.sum(axis=1))
    rewards = SlotRewards.of(reward, pools.shape)
    search = _Search(model, pools, rewards, config)
    roots = np.arange(len(pools))
    values, slots = search.node_values(state, roots, available, rewards.initial_new(), remaining, config.depth)
    return slots, values


def planner_policy(
    model: SessionModel, reward: np.ndarray | SlotRewards, config: PlannerConfig | None = None
) -> Policy:
    """The planner on ``model`` as a :data:`Policy` (for :func:`agents.optimum.policy_value`).

    With :class:`SlotRewards` the policy must be called on the sessions the rewards describe (the
    optimum's functions pass ``pools`` rows in session order); a ``(3,)`` reward fits any call.
    """

    def policy(state: SessionState, pools: np.ndarray, available: np.ndarray, remaining: np.ndarray) -> np.ndarray:
        return plan(model, state, pools, available, remaining, reward, config)[0]

    return policy


def greedy_policy(model: SessionModel, reward: np.ndarray) -> Policy:
    """Greedy by expected reward under ``model`` (the planner at depth 1) as a :data:`Policy`."""
    return planner_policy(model, reward, PlannerConfig(depth=1, width=1, leaf="none"))


class _Search:
    """One batched expectimax: the nodes of a tree level are evaluated together.

    Nodes are rows; ``roots`` maps each node to its session (row of ``pools``), so pools and
    rewards are never copied per node, only the model states and the small masks are.
    """

    def __init__(self, model: SessionModel, pools: np.ndarray, rewards: SlotRewards, config: PlannerConfig):
        self.model = model
        self.pools = pools
        self.rewards = rewards
        self.width = min(config.width, pools.shape[1])
        self.leaf = config.leaf
        self.depth = config.depth
        m = pools.shape[1]
        wanted = m if config.shortlist is None else max(config.shortlist, config.width + config.depth)
        self.shortlist_size = min(wanted, m)
        self.play_value = np.zeros(len(pools))
        # (B, K) slots each session's nodes below the root score (set at the root); all M by default.
        self.shortlist = np.broadcast_to(np.arange(m), pools.shape)

    def node_values(
        self,
        state: SessionState,
        roots: np.ndarray,
        available: np.ndarray,
        new: np.ndarray | None,
        steps_left: np.ndarray,
        depth_left: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Planned values ``(n,)`` and best slots ``(n,)`` of n nodes with ``steps_left >= 1``."""
        n, m = available.shape
        rows = np.arange(n)
        root = depth_left == self.depth
        # The root scores the whole pool; the nodes below it only their session's shortlist.
        slots = np.broadcast_to(np.arange(m), (n, m)) if root else self.shortlist[roots]
        open_ = np.take_along_axis(available, slots, axis=1)
        tracks = np.where(open_, np.take_along_axis(self.pools[roots], slots, axis=1), -1)
        probs = self.model.response_probs(state, tracks)
        immediate = np.where(open_, self.rewards.expected(probs, roots, slots, new), -np.inf)
        # Stable sort of the negated scores: equal scores keep slot order, so ties are deterministic.
        order = np.argsort(-immediate, axis=1, kind="stable")
        columns = order[:, : self.width]
        candidates = np.take_along_axis(slots, columns, axis=1)
        q = immediate[rows[:, None], columns]
        if root:
            # What one play is worth in this session (the mean of the best ``steps_left``
            # immediate values), the worth per play of staying at the leaves.
            ranked = immediate[rows[:, None], order]
            counted = np.arange(m) < steps_left[:, None]
            self.play_value = np.where(counted, ranked, 0.0).sum(axis=1) / steps_left
            self.shortlist = np.sort(order[:, : self.shortlist_size], axis=1)

        if depth_left > 1 or self.leaf == "survival":
            node, rank = np.nonzero((steps_left[:, None] > 1) & np.isfinite(q))
            if len(node):
                slot = candidates[node, rank]
                q[node, rank] += self._continuation(
                    state, roots, available, new, steps_left, depth_left, probs[node, columns[node, rank]], node, slot
                )
        best = np.argmax(q, axis=1)
        return q[rows, best], candidates[rows, best]

    def _continuation(
        self,
        state: SessionState,
        roots: np.ndarray,
        available: np.ndarray,
        new: np.ndarray | None,
        steps_left: np.ndarray,
        depth_left: int,
        probs: np.ndarray,
        node: np.ndarray,
        slot: np.ndarray,
    ) -> np.ndarray:
        """``sum_r p_r (1 - leave) V`` after node ``node[i]`` plays ``slot[i]`` (``probs`` ``(k, 3)``)."""
        parent = np.repeat(node, 3)
        played = np.repeat(slot, 3)
        responses = np.tile(np.arange(3, dtype=np.int8), len(node))
        child_roots = roots[parent]
        child_tracks = self.pools[child_roots, played]
        child_steps = steps_left[parent] - 1
        if depth_left > 1:
            child_state = self.model.advance(take_state(state, parent), child_tracks, responses)
            stay = 1.0 - self.model.leave_probs(child_state)
            child_available = available[parent]
            child_available[np.arange(len(parent)), played] = False
            child_new = self.rewards.after_play(None if new is None else new[parent], child_roots, played)
            value, _ = self.node_values(
                child_state, child_roots, child_available, child_new, child_steps, depth_left - 1
            )
        else:
            # A leaf: only the listener's staying is asked of the next state.
            stay = 1.0 - leave_probs_after(self.model, take_state(state, parent), child_tracks, responses)
            j = np.arange(int(child_steps.max()))
            plays = ((stay[:, None] ** j) * (j < child_steps[:, None])).sum(axis=1)
            value = self.play_value[child_roots] * plays
        return (probs * (stay * value).reshape(-1, 3)).sum(axis=1)


class LookaheadPlanner(Agent):
    """Plays the first track of the best ``depth``-track plan under a session model.

    Use one of the two registered agents: ``planner_truth`` (:class:`TruthPlanner`) plans with
    the ground-truth model read through the env's oracle; ``planner_learned``
    (:class:`LearnedPlanner`) plans with the learned world's model (model-predictive control).
    At each step the plan covers ``min(depth, plays left)`` plays; the plays left are the
    playlist's length (the observation's history length) minus the plays so far. Only slots the
    observation's ``action_mask`` allows are considered. Rewards are those the env pays, from
    the same :class:`~musicenv.rewards.RewardConfig` (pass the env's own if it is not the
    default), including its discovery boost and artist diversity bonus.

    Args:
        world: the world the agent observes (the learned world, in either run).
        depth, width, leaf, shortlist: the search, see :class:`PlannerConfig` (defaults from there).
        reward: the env's reward config, as a :class:`RewardConfig` or its fields as a dict
            (default: :class:`RewardConfig()`, the env's default).
    """

    name: ClassVar[str] = "planner"

    def __init__(
        self,
        world: World,
        depth: int = PlannerConfig.depth,
        width: int = PlannerConfig.width,
        leaf: LeafEstimate = PlannerConfig.leaf,
        reward: RewardConfig | dict[str, Any] | None = None,
        shortlist: int | None = PlannerConfig.shortlist,
    ) -> None:
        super().__init__(world)
        self.planner_config = PlannerConfig(depth, width, leaf, shortlist)
        if isinstance(reward, dict):
            reward = RewardConfig(**reward)
        self.reward_config = reward if reward is not None else RewardConfig()
        self.values = self.reward_config.response_values
        discovery = self.reward_config.discovery_flags(world.tracks)
        # Per-track multiplier of the response values, and per-track artist codes, as the env has them.
        self.track_boost = None if discovery is None else np.where(discovery, self.reward_config.discovery_boost, 1.0)
        self.artist_codes = _artist_codes(world.tracks) if self.reward_config.diversity_bonus else None
        self._tracks = FeatureRows(world.track_features)

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        model, state, pools = self.session(obs, oracle)
        available = obs["action_mask"].astype(bool)
        if not available.any(axis=1).all():
            raise ValueError("an observation's action_mask allows no slot (is the session already over?)")
        remaining = obs["history_mask"].shape[1] - obs["history_mask"].sum(axis=1).astype(np.int64)
        rewards = self.slot_rewards(obs, pools)
        slots, _ = plan(model, state, pools, available, np.maximum(remaining, 1), rewards, self.planner_config)
        return slots.astype(np.int64)

    def session(self, obs: Observation, oracle: Any) -> tuple[SessionModel, SessionState, np.ndarray]:
        """The model to plan with, its states of the current sessions, and the pools in its indices."""
        raise NotImplementedError

    def slot_rewards(self, obs: Observation, pools: np.ndarray) -> SlotRewards:
        """What the env would pay for each slot of ``pools`` (learned-world track indices)."""
        tracks = np.maximum(pools, 0)
        values = np.broadcast_to(self.values, (*pools.shape, 3))
        if self.track_boost is not None:
            values = values * self.track_boost[tracks][..., None]
        if self.artist_codes is None:
            return SlotRewards(values)
        played, _ = self.history(obs)
        artists = self.artist_codes[tracks]
        played_artists = np.where(played >= 0, self.artist_codes[np.maximum(played, 0)], -1)
        seen = (artists[:, :, None] == played_artists[:, None, :]).any(axis=2)
        return SlotRewards(values, self.reward_config.diversity_bonus, artists, ~seen)

    def history(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """``(N, L)`` track indices (``-1`` after the last play) and response codes of the plays so far.

        Read back from the observation: each history row holds the played track's features (found
        in the world's feature table) and the response one-hot.
        """
        d_track = obs["candidates"].shape[-1]
        found = self._tracks.find(obs["history"][..., :d_track])
        played = np.where(obs["history_mask"] > 0, found, -1)
        responses = obs["history"][..., d_track:].argmax(axis=-1).astype(np.int8)
        return played, responses

    def config(self) -> dict[str, Any]:
        return {
            "depth": self.planner_config.depth,
            "width": self.planner_config.width,
            "leaf": self.planner_config.leaf,
            "shortlist": self.planner_config.shortlist,
            "reward": dataclasses.asdict(self.reward_config),
        }


class TruthPlanner(LookaheadPlanner):
    """``planner_truth``: the lookahead planner on the ground-truth model (ground-truth run only).

    The model, the current sessions' true states and the pools come from ``oracle``
    (``env.oracle``, in the learned world's indices); nothing is read from the observation but
    the mask and the plays so far. It is the reference for how much sequencing can gain on a
    world: compare it with ``greedy_truth`` (``benchmarks/headroom.py``).

    Raises:
        ValueError: from :meth:`act`, without an oracle (outside a ground-truth run).
    """

    name = "planner_truth"
    needs_oracle = True

    def session(self, obs: Observation, oracle: Any) -> tuple[SessionModel, SessionState, np.ndarray]:
        if oracle is None:
            raise ValueError(
                "planner_truth plans with the ground-truth model read through the env's oracle, which only a "
                "ground-truth run has: make the env with world='groundtruth' and pass env.oracle to act()"
            )
        return oracle.session_model, oracle.state, oracle.pools


class LearnedPlanner(LookaheadPlanner):
    """``planner_learned``: the lookahead planner on the learned world's model, in any run.

    Model-predictive control with the learned user-response and session-end models
    (``world.session_model``): the strongest model-based competitor of AH-DQN, and, evaluated in
    the ground-truth run, a measure of how far planning on a learned model transfers.

    The learned model's state of each session is rebuilt from the observation alone, as a deployed
    recommender would: the user and the pool's and history's tracks are found in the world's
    feature tables (exact float32 rows), the context type and hour are read back from the context
    features, and the plays so far are replayed through ``initial_state`` and ``advance``. So it
    needs no oracle and no access to the env, and works with any env that builds observations
    with :func:`musicenv.observation.build_observations` over this world. The latent attention of
    a session is not observed (the learned model ignores it). Replaying costs one batched
    ``advance`` per play so far, small next to the search.
    """

    name = "planner_learned"

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(world, **kwargs)
        self._users = FeatureRows(world.user_features)

    def session(self, obs: Observation, oracle: Any) -> tuple[SessionModel, SessionState, np.ndarray]:
        model = self.world.session_model
        users = self._users.find(obs["user"])
        if (users < 0).any():
            raise ValueError("an observation's user features are not in this world's table: wrong world?")
        pools = self._tracks.find(obs["candidates"])
        pools[~obs["action_mask"].astype(bool) & (obs["candidates"] == 0).all(axis=-1)] = -1
        played, responses = self.history(obs)
        state = model.initial_state(users, decode_contexts(obs["context"]))
        for position in range(played.shape[1]):
            rows = np.flatnonzero(played[:, position] >= 0)
            if not len(rows):
                break
            after = model.advance(take_state(state, rows), played[rows, position], responses[rows, position])
            state = {key: value.copy() for key, value in state.items()}
            for key, value in after.items():
                state[key][rows] = value
        return model, state, pools


class FeatureRows:
    """Finds rows of a float32 feature table by their exact bits (observation back to indices).

    Rows are hashed from their raw 32-bit patterns with integer arithmetic (exact, unlike a float
    projection whose rounding can depend on the batch shape), sorted once, and looked up with
    ``searchsorted``; a hit is confirmed by comparing the whole row. Identical rows are
    indistinguishable to any agent that reads features, and to a model that reads them, so any of
    them is an answer.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self._multipliers = np.random.default_rng(0).integers(1, 2**63, self.table.shape[1], dtype=np.uint64) | 1
        keys = self._hash(self.table)
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]

    def _hash(self, rows: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(rows, dtype=np.float32).view(np.uint32).astype(np.uint64)
        return (bits * self._multipliers).sum(axis=-1, dtype=np.uint64)

    def find(self, rows: np.ndarray) -> np.ndarray:
        """Indices ``rows.shape[:-1]`` int64 of the table rows equal to ``rows``, ``-1`` where none is."""
        keys = self._hash(rows)
        position = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        index = self._order[position]
        return np.where((self.table[index] == rows).all(axis=-1), index, -1).astype(np.int64)


def decode_contexts(features: np.ndarray) -> Contexts:
    """The context type and hour behind :func:`musicenv.world.context_features` (attention 0: unobserved)."""
    n_types = len(CONTEXT_TYPES)
    hour = np.round(np.arctan2(features[:, n_types], features[:, n_types + 1]) * 24.0 / (2.0 * np.pi)) % 24
    return Contexts(
        features[:, :n_types].argmax(axis=1).astype(np.int8),
        hour.astype(np.int8),
        np.zeros(len(features), dtype=np.float32),
    )


def _artist_codes(tracks: pd.DataFrame) -> np.ndarray:
    """Per-track artist codes as the env counts artists: an unknown artist is the track's own."""
    if "artist_id" not in tracks.columns:
        return np.arange(len(tracks), dtype=np.int64)
    codes, uniques = pd.factorize(tracks["artist_id"])
    return np.where(codes >= 0, codes, len(uniques) + np.arange(len(tracks))).astype(np.int64)
