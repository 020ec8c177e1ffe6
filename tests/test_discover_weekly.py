"""Discover Weekly: unheard tracks by ALS, at most N per artist, played in order."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from test_agents import LayoutWorld, vector_env

from agents.discover_weekly import DiscoverWeeklyAgent
from world_model.discover_weekly import weekly_playlist, weekly_playlists


def test_weekly_playlist_skips_heard_tracks_and_caps_each_artist() -> None:
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0])
    artists = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    playlist = weekly_playlist(scores, heard=np.array([1]), artists=artists, length=5, per_artist=2)
    # Track 1 was heard, so artist 0 keeps tracks 0 and 2 under the cap of two.
    np.testing.assert_array_equal(playlist, [0, 2, 3, 4, 5])
    capped = weekly_playlist(scores, heard=np.array([], dtype=np.int64), artists=artists, length=8, per_artist=1)
    np.testing.assert_array_equal(capped, [0, 3, 5, 6])


def test_weekly_playlists_rank_by_als_and_pad() -> None:
    rng = np.random.default_rng(0)
    users, tracks = rng.normal(size=(3, 4)), rng.normal(size=(50, 4))
    heard = sp.csr_matrix((np.ones(3), ([0, 0, 2], [5, 7, 9])), shape=(3, 50))
    playlists = weekly_playlists(users, tracks, heard, np.arange(50), np.arange(3), length=10, per_artist=2)
    for user in range(3):
        expected = [t for t in np.argsort(-(tracks @ users[user]), kind="stable") if t not in heard[user].indices]
        np.testing.assert_array_equal(playlists[user], expected[:10])
    short = weekly_playlists(users, tracks, heard, np.zeros(50, dtype=np.int64), np.arange(1), length=4)
    assert (short[0] >= 0).sum() == 2 and np.all(short[0, 2:] == -1)  # one artist: two tracks at most


def test_agent_plays_its_playlist_in_order() -> None:
    world = LayoutWorld(seed=0)
    agent = DiscoverWeeklyAgent(world, length=30)
    env = vector_env(world, None, n=4)
    obs, _ = env.reset(seed=0)
    users = agent.users(obs["user"])
    pools = env.pools.copy()
    played: list[list[int]] = [[] for _ in users]
    going = np.ones(len(users), dtype=bool)  # sessions that ended restart with another listener
    for _ in range(4):
        actions = agent.act(obs)
        for row in np.flatnonzero(going):
            played[row].append(int(agent.tracks(obs["candidates"][row, actions[row]])))
        obs, _, terminated, truncated, _ = env.step(actions)
        going &= ~(terminated | truncated)
    checked = 0
    for row, user in enumerate(users):
        # The playlist's tracks in this session's pool, in playlist order, come first; after them
        # (a fake listener has heard most of the small catalogue) the pool's best remaining slots.
        pool = set(pools[row].tolist())
        in_pool = [int(t) for t in agent.playlist(int(user)) if t in pool]
        first = min(len(in_pool), len(played[row]))
        assert played[row][:first] == in_pool[:first]
        assert not np.isin(played[row][:first], agent.excluded[int(user)].indices).any()
        checked += first
    assert checked > 0
