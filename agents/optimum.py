"""Exact expected returns on small instances: the optimum, and any deterministic policy's value.

How close is the lookahead planner to the best any policy could do? On a small instance (a pool
of about 8 tracks, a playlist of about 5) the full expectimax tree is small enough to enumerate,
so the gap is computed exactly rather than estimated from sampled episodes:

- :func:`optimal_value`: the maximal expected return from a start state, by a DP over every node
  (ordered tracks played so far, responses so far) of the tree, evaluated level by level in
  batches: one model call per level for all its nodes and candidates, then a backward max.
- :func:`policy_value`: the exact expected return of a deterministic :data:`~agents.planner.Policy`
  (greedy, the planner) on the same instance, by a forward pass over its response histories.

Both use the same conventions as the env and the planner: a play earns ``reward[response]``,
then the listener leaves with ``model.leave_probs`` of the advanced state, and the session ends
after ``length`` plays or when the pool runs out. Nodes are ordered sequences, not played sets:
a model with satiation that decays depends on the order of the plays, not only on which.

Cost: level ``t`` of the optimum has ``P(c, t) * 3**t`` nodes for ``c`` available tracks
(136,080 at ``c = 8``, ``t = 4``), so instances are evaluated in chunks of at most ``max_nodes``
nodes per level; :func:`policy_value` has ``3**t`` nodes at level ``t``.
"""

from __future__ import annotations

from math import perm

import numpy as np

from agents.planner import Policy, SlotRewards
from musicenv.world import SessionModel, SessionState, take_state


def optimal_value(
    model: SessionModel,
    state: SessionState,
    pools: np.ndarray,
    length: int | np.ndarray,
    reward: np.ndarray | SlotRewards,
    available: np.ndarray | None = None,
    max_nodes: int = 400_000,
) -> np.ndarray:
    """Maximal expected return of B sessions from ``state`` over the next ``length`` plays.

    Args:
        model: the session model; ``state`` and ``pools`` are in its indices.
        state: B session states (start of the instance).
        pools: ``(B, M)`` track indices, ``-1`` padding.
        length: plays to come, an int or ``(B,)`` ints (cut at the number of available tracks).
        reward: ``(3,)`` reward of (skip, listen, complete), or
            :class:`~agents.planner.SlotRewards` (what the env pays, per slot).
        available: ``(B, M)`` bool, slots that may be played; default every non-padding slot.
        max_nodes: bound on the nodes of one level evaluated in one batch (memory).

    Returns:
        ``(B,)`` float64 optimal expected returns.
    """
    pools, available, horizon, rewards = _instance(pools, length, reward, available)
    values = np.zeros(len(pools))
    for chunk in _chunks(available.sum(axis=1), horizon, max_nodes):
        values[chunk] = _optimal_chunk(
            model,
            take_state(state, chunk),
            pools[chunk],
            available[chunk],
            horizon[chunk],
            rewards.take(chunk),
        )
    return values


def policy_value(
    model: SessionModel,
    state: SessionState,
    pools: np.ndarray,
    length: int | np.ndarray,
    reward: np.ndarray | SlotRewards,
    policy: Policy,
    available: np.ndarray | None = None,
) -> np.ndarray:
    """Exact expected return of a deterministic ``policy`` on the instances of :func:`optimal_value`.

    The policy is called once per tree level with every node of the level (``B * 3**t`` of them);
    each node is weighted by the probability of reaching it (responses so far, and staying).

    Raises:
        ValueError: the policy chose a slot that is not available.
    """
    pools, available, horizon, rewards = _instance(pools, length, reward, available)
    n_sessions = len(pools)
    totals = np.zeros(n_sessions)
    roots = np.flatnonzero(horizon >= 1)
    state = take_state(state, roots)
    available = available[roots]
    new = rewards.initial_new()
    new = None if new is None else new[roots]
    steps = horizon[roots]
    weight = np.ones(len(roots))
    while len(roots):
        slots = np.asarray(policy(state, pools[roots], available, steps), dtype=np.int64)
        if not available[np.arange(len(roots)), slots].all():
            raise ValueError("the policy chose a slot that is not available")
        tracks = pools[roots, slots]
        probs = model.response_probs(state, tracks[:, None])
        expected = rewards.expected(probs, roots, slots[:, None], new)[:, 0]
        totals += np.bincount(roots, weight * expected, minlength=n_sessions)
        parent = np.repeat(np.flatnonzero(steps > 1), 3)
        if not len(parent):
            break
        responses = np.tile(np.arange(3, dtype=np.int8), len(parent) // 3)
        state = model.advance(take_state(state, parent), tracks[parent], responses)
        stay = 1.0 - model.leave_probs(state)
        weight = weight[parent] * probs[parent, 0, responses] * stay
        available = available[parent]
        available[np.arange(len(parent)), slots[parent]] = False
        new = rewards.after_play(None if new is None else new[parent], roots[parent], slots[parent])
        roots, steps = roots[parent], steps[parent] - 1
    return totals


def _instance(
    pools: np.ndarray,
    length: int | np.ndarray,
    reward: np.ndarray | SlotRewards,
    available: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, SlotRewards]:
    pools = np.asarray(pools, dtype=np.int64)
    available = pools >= 0 if available is None else np.asarray(available, dtype=bool) & (pools >= 0)
    horizon = np.minimum(np.broadcast_to(np.asarray(length, dtype=np.int64), len(pools)), available.sum(axis=1))
    return pools, available, horizon, SlotRewards.of(reward, pools.shape)


def _chunks(n_available: np.ndarray, horizon: np.ndarray, max_nodes: int) -> list[np.ndarray]:
    """Consecutive groups of instances whose widest tree level fits in ``max_nodes``."""
    sizes = [
        max(perm(int(c), t) * 3**t for t in range(int(h))) if h else 0
        for c, h in zip(n_available, horizon, strict=True)
    ]
    chunks: list[np.ndarray] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if total and total + size > max_nodes:
            chunks.append(np.arange(start, i))
            start, total = i, 0
        total += size
    chunks.append(np.arange(start, len(sizes)))
    return chunks


def _optimal_chunk(
    model: SessionModel,
    state: SessionState,
    pools: np.ndarray,
    available: np.ndarray,
    horizon: np.ndarray,
    rewards: SlotRewards,
) -> np.ndarray:
    """Forward: enumerate every node level by level; backward: max over each node's candidates."""
    roots = np.flatnonzero(horizon >= 1)
    state = take_state(state, roots)
    available = available[roots]
    new = rewards.initial_new()
    new = None if new is None else new[roots]
    steps = horizon[roots]
    levels: list[dict[str, np.ndarray]] = []
    while len(roots):
        # Score only the available tracks, packed to the left: deep levels have few of them left.
        node, slot = np.nonzero(available)
        column = (np.cumsum(available, axis=1) - 1)[node, slot]
        tracks = np.full((len(roots), column.max() + 1), -1, dtype=np.int64)
        tracks[node, column] = pools[roots[node], slot]
        probs = model.response_probs(state, tracks)[node, column]
        expected = rewards.expected(probs[:, None], roots[node], slot[:, None], None if new is None else new[node])
        expand = np.flatnonzero(steps[node] > 1)
        level = {
            "size": np.array(len(roots)),
            "node": node,
            "q": expected[:, 0],
            "probs": probs,
            "expand": expand,
        }
        levels.append(level)
        if not len(expand):
            break
        parent = np.repeat(node[expand], 3)
        played = np.repeat(slot[expand], 3)
        responses = np.tile(np.arange(3, dtype=np.int8), len(expand))
        state = model.advance(take_state(state, parent), pools[roots[parent], played], responses)
        level["stay"] = 1.0 - model.leave_probs(state)
        available = available[parent]
        available[np.arange(len(parent)), played] = False
        new = rewards.after_play(None if new is None else new[parent], roots[parent], played)
        roots, steps = roots[parent], steps[parent] - 1

    values = np.zeros(0)
    for level in reversed(levels):
        q, expand = level["q"], level["expand"]
        if len(expand):
            q[expand] += (level["probs"][expand] * (level["stay"] * values).reshape(-1, 3)).sum(axis=1)
        values = np.full(int(level["size"]), -np.inf)
        np.maximum.at(values, level["node"], q)
    out = np.zeros(len(horizon))
    out[horizon >= 1] = values
    return out
