"""Smart Shuffle: the pool is the listener's playlist then recommendations; the agents shuffle it."""

from __future__ import annotations

import numpy as np
import pytest
from test_agents import LayoutWorld

from agents.base import make_agent
from agents.rollout import rollout
from musicenv.env import ListeningSessionEnv
from musicenv.sessions import INJECTION_PERIOD, PLAYLIST_SHARE, SmartShuffleWorld, playlist_slots, session_world
from musicenv.vector_env import ListeningSessionVectorEnv

POOL = 60


def test_pool_is_the_most_played_tracks_then_the_worlds_pool(real_worlds) -> None:
    world = real_worlds[0]
    shuffle_world = session_world(world, "smart_shuffle")
    users = np.arange(0, world.retrieval.n_users, 97)
    pools = shuffle_world.candidate_pools(users, POOL)
    base = world.candidate_pools(users, POOL)
    heard, blocked = world.retrieval.heard, world.retrieval.blocked
    cap = int(round(PLAYLIST_SHARE * POOL))
    for user, pool, ranking in zip(users, pools, base):
        counts = heard[user].toarray().ravel()
        slots = playlist_slots(counts[pool][None] > 0, POOL)[0]
        allowed_played = np.setdiff1d(heard[user].indices, blocked[user].indices)
        assert slots == min(len(allowed_played), cap)
        playlist, recommended = pool[:slots], pool[slots:]
        assert np.all(np.diff(counts[playlist]) <= 0)  # most played first
        assert counts[playlist].min() >= np.sort(counts[allowed_played])[::-1][slots - 1]
        expected = ranking[~np.isin(ranking, playlist)][: POOL - slots]
        np.testing.assert_array_equal(recommended, expected)
        assert not np.isin(pool, blocked[user].indices).any() and len(np.unique(pool)) == POOL


def test_modes_are_checked() -> None:
    with pytest.raises(ValueError, match="session must be one of"):
        session_world(LayoutWorld(), "radio")
    with pytest.raises(ValueError, match="logged plays"):
        SmartShuffleWorld(LayoutWorld())


def test_smart_shuffle_injects_a_recommendation_every_third_play_and_shuffle_none(real_worlds) -> None:
    world, truth = real_worlds
    injected = np.arange(1, 7) % INJECTION_PERIOD == 0
    for name in ("shuffle", "smart_shuffle"):
        env = ListeningSessionVectorEnv(
            16, world=world, responder=truth, split="eval", pool_size=POOL, session="smart_shuffle"
        )
        agent = make_agent(name, world, seed=1)
        obs, _ = env.reset(seed=11)
        # Rows whose playlist outlasts six plays; a row is followed until its first session ends.
        going = agent.playlist_mask(obs).sum(axis=1) >= 6
        assert going.sum() >= 8
        for position in range(6):
            actions = agent.act(obs)
            from_playlist = agent.playlist_mask(obs)[np.arange(16), actions]
            expected = not (name == "smart_shuffle" and injected[position])
            assert np.all(from_playlist[going] == expected), (name, position + 1)
            obs, _, terminated, truncated, _ = env.step(actions)
            going &= ~(terminated | truncated)


def test_shuffle_is_seeded_and_plays_full_sessions_in_the_mode(real_worlds) -> None:
    world, _ = real_worlds
    env = ListeningSessionEnv(world=world, pool_size=POOL, session="smart_shuffle", split="eval")
    obs, _ = env.reset(seed=0)
    assert ListeningSessionEnv(world=world, pool_size=POOL, session="smart_shuffle").world.base is world
    first = rollout(make_agent("shuffle", world, seed=2), _vector(world), 8, seed=3)
    second = rollout(make_agent("shuffle", world, seed=2), _vector(world), 8, seed=3)
    np.testing.assert_array_equal(first.tracks, second.tracks)
    assert obs["action_mask"].sum() == POOL


def _vector(world) -> ListeningSessionVectorEnv:
    return ListeningSessionVectorEnv(4, world=world, pool_size=POOL, session="smart_shuffle", split="eval")
