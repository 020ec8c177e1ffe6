"""Run agents on fixed episodes and compare them with paired confidence intervals.

Common random numbers (docs/design.md, "Evaluation protocol")
    A :class:`~musicenv.vector_env.ListeningSessionVectorEnv` reset with seed ``s`` gives
    sub-environment ``i`` its own generator, seeded ``s + i``, from which it draws every one of
    its episodes (user, context, pool, and the per-position response and leaving uniforms), and
    nothing else draws from it. So episode ``j`` of sub-environment ``i`` is the same for every
    agent, however long the agent's earlier episodes were. :func:`rollout` gives each of the N
    sub-environments a quota of episodes and identifies an episode by ``(seed + i, j)``; two
    rollouts with the same ``seed``, ``num_envs`` and episode count meet the same listeners,
    pools and luck, row for row, and their returns differ only through the agents' choices. The
    same holds across the learned and the ground-truth world (the draws come from the learned
    world in both): an agent's per-episode sim-to-real gap is paired too.

Evaluation seeds
    :func:`evaluation_seed` places them at ``2**30`` and above; training seeds lie below
    (:data:`agents.config.TRAIN_SEED_LIMIT`), so the two sets never meet. Evaluation episodes
    draw the held-out users (``split="eval"``).

Statistics
    :mod:`agents.metrics` computes every figure from a result's arrays (``returns``, ``tracks``,
    ``responses``, ``terminated``); :meth:`RolloutResult.paired_with` checks that two results
    hold the same episodes before :func:`agents.metrics.paired_difference` pairs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent
from agents.config import TRAIN_SEED_LIMIT
from musicenv.world import RESPONSES

RESPONSE_CODES = {name: code for code, name in enumerate(RESPONSES)}


def evaluation_seed(eval_seed: int = 0) -> int:
    """The vector-env seed of evaluation number ``eval_seed``: at or above ``2**30``, disjoint from training seeds."""
    return TRAIN_SEED_LIMIT + eval_seed


def episode_quotas(num_envs: int, n_episodes: int) -> np.ndarray:
    """``(num_envs,)`` episodes :func:`rollout` records from each sub-environment: as equal as
    ``num_envs`` allows, the earlier ones taking the remainder."""
    return np.full(num_envs, n_episodes // num_envs) + (np.arange(num_envs) < n_episodes % num_envs)


@dataclass
class RolloutResult:
    """Per-episode records of one agent over a fixed set of episodes (E rows, L positions).

    Rows are ordered by episode key ``(env_seeds, episode_numbers)``, so two rollouts over the same
    episodes align row for row.

    Attributes:
        agent: the agent's name.
        world: ``"learned"`` or ``"groundtruth"`` (who answered).
        env_seeds: ``(E,)`` seed of the sub-environment that drew the episode.
        episode_numbers: ``(E,)`` the episode's number within its sub-environment (0-based).
        users: ``(E,)`` user indices.
        returns: ``(E,)`` float64 episode returns.
        lengths: ``(E,)`` tracks played.
        tracks: ``(E, L)`` int64 track indices by position, ``-1`` after the end.
        artists: ``(E, L)`` int64 artist codes by position (``env.catalogue.artist_codes``: a
            track of unknown artist has a code of its own), ``-1`` after the end.
        responses: ``(E, L)`` int8 response codes by position, ``-1`` after the end.
        rewards: ``(E, L)`` float64 rewards by position, 0 after the end.
        terminated: ``(E,)`` bool, the listener left (rather than the playlist filling up).
    """

    agent: str
    world: str
    env_seeds: np.ndarray
    episode_numbers: np.ndarray
    users: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    tracks: np.ndarray
    artists: np.ndarray
    responses: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray

    def __len__(self) -> int:
        return len(self.returns)

    def paired_with(self, other: RolloutResult) -> bool:
        """True when ``other`` holds the same episodes, row for row (same keys and listeners)."""
        return (
            np.array_equal(self.env_seeds, other.env_seeds)
            and np.array_equal(self.episode_numbers, other.episode_numbers)
            and np.array_equal(self.users, other.users)
        )


def rollout(agent: Agent, env: Any, n_episodes: int, seed: int, world: str | None = None) -> RolloutResult:
    """Play ``n_episodes`` fixed episodes with ``agent`` and record each one.

    Args:
        agent: any :class:`~agents.base.Agent`; it is given ``env.oracle`` (None outside a
            ground-truth run).
        env: a :class:`~musicenv.vector_env.ListeningSessionVectorEnv`; it is reset with ``seed``.
        n_episodes: episodes to record. Sub-environment ``i`` contributes episodes
            ``0 .. quota_i - 1`` with quotas as equal as N allows (earlier ones get the remainder).
        seed: the vector env's seed (use :func:`evaluation_seed` for evaluation).
        world: label for the result (default: ``"groundtruth"`` when the env has an oracle,
            else ``"learned"``).

    Returns:
        The records, ordered by episode key (see :class:`RolloutResult`).
    """
    n, length = env.num_envs, env.playlist_length
    quotas = episode_quotas(n, n_episodes)
    done_count = np.zeros(n, dtype=np.int64)
    obs, _ = env.reset(seed=seed)
    rows = np.arange(n)
    tracks = np.full((n, length), -1, dtype=np.int64)
    artists = np.full((n, length), -1, dtype=np.int64)
    responses = np.full((n, length), -1, dtype=np.int8)
    rewards_by_position = np.zeros((n, length))
    records: list[tuple[int, int, int, float, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]] = []
    while (done_count < quotas).any():
        # Copies: the env updates its arrays in place when it steps and autoresets.
        users = env.users.copy()
        positions = env.lengths.copy()
        actions = agent.act(obs, env.oracle)
        obs, rewards, terminated, truncated, info = env.step(actions)
        tracks[rows, positions] = info["track_index"]
        artists[rows, positions] = env.catalogue.artist_codes[info["track_index"]]
        responses[rows, positions] = [RESPONSE_CODES.get(name, -1) for name in info["response"]]
        rewards_by_position[rows, positions] = rewards
        for row in np.flatnonzero(terminated | truncated):
            if done_count[row] < quotas[row]:
                records.append(
                    (
                        seed + int(row),
                        int(done_count[row]),
                        int(users[row]),
                        float(info["session"]["return"][row]),
                        int(info["session"]["length"][row]),
                        tracks[row].copy(),
                        artists[row].copy(),
                        responses[row].copy(),
                        rewards_by_position[row].copy(),
                        bool(terminated[row]),
                    )
                )
            done_count[row] += 1
            tracks[row], artists[row], responses[row], rewards_by_position[row] = -1, -1, -1, 0.0
    records.sort(key=lambda record: (record[0], record[1]))
    columns = list(zip(*records, strict=True)) if records else [[]] * 10
    return RolloutResult(
        agent=agent.name,
        world=world or ("groundtruth" if env.oracle is not None else "learned"),
        env_seeds=np.array(columns[0], dtype=np.int64),
        episode_numbers=np.array(columns[1], dtype=np.int64),
        users=np.array(columns[2], dtype=np.int64),
        returns=np.array(columns[3], dtype=np.float64),
        lengths=np.array(columns[4], dtype=np.int64),
        tracks=np.array(columns[5], dtype=np.int64).reshape(-1, length),
        artists=np.array(columns[6], dtype=np.int64).reshape(-1, length),
        responses=np.array(columns[7], dtype=np.int8).reshape(-1, length),
        rewards=np.array(columns[8], dtype=np.float64).reshape(-1, length),
        terminated=np.array(columns[9], dtype=bool),
    )
