"""The in-session familiarity columns: counted by hand, the same in numpy and torch, and in every environment."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

from musicenv.env import ListeningSessionEnv
from musicenv.familiarity import (
    GENRE_BITS,
    GENRE_DECAY,
    RECENT_PLAYS,
    advance_recent_codes,
    advance_session_familiarity,
    match_masks,
    play_codes,
    played_session_familiarity,
    recent_codes,
    session_familiarity,
    torch_advance_recent_codes,
    torch_recent_codes,
    torch_session_familiarity,
)
from musicenv.observation import build_observations
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import FAMILIARITY_FEATURES, context_features

# One session in play order, as (artist, genre): (5, 1), (5, 1), (7, 2), (6, 1), then a padded slot.
HISTORY = np.array([[*play_codes([5, 5, 7, 6], [1, 1, 2, 1]), -1]])


def test_the_columns_against_a_session_counted_by_hand() -> None:
    """After the plays above: artist 5 two and three plays ago, 6 just played; genre 1 just
    played, one play ago not, then twice; genre 2 one play ago; artist 9 and genre 3 never."""
    recent = recent_codes(HISTORY)
    np.testing.assert_array_equal(
        recent, [[HISTORY[0, 3], HISTORY[0, 2], HISTORY[0, 1], HISTORY[0, 0], -1, -1, -1, -1]]
    )
    candidates = play_codes([[5, 7, 6, 9]], [[1, 1, 2, 3]])
    got = session_familiarity(candidates, recent[:, None, :])
    d = GENRE_DECAY
    expected = [
        [0, 0, np.log(3), 1, 1 + d**2 + d**3],  # artist 5 (two and three ago), genre 1
        [0, 1, np.log(2), 1, 1 + d**2 + d**3],  # artist 7 one play before the last, genre 1
        [1, 0, np.log(2), 0, d],  # artist 6 just played, genre 2 one play before the last
        [0, 0, 0, 0, 0],
    ]
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    # Artist 5's mask: artist bits 2 and 3, genre bits 0, 2 and 3 (from bit 8).
    assert match_masks(candidates, recent[:, None, :])[0, 0] == 0b1101 << RECENT_PLAYS | 0b1100
    # Each play against the plays before it; the padded slot is zeros.
    played = played_session_familiarity(HISTORY)[0]
    np.testing.assert_allclose(
        played,
        [[0, 0, 0, 0, 0], [1, 0, np.log(2), 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, d + d**2], [0, 0, 0, 0, 0]],
        rtol=1e-6,
    )
    # Only the last RECENT_PLAYS plays count.
    long = play_codes([[3] + [4] * RECENT_PLAYS], [[2] + [1] * RECENT_PLAYS])
    assert not session_familiarity(play_codes([[3]], [[2]]), recent_codes(long)[:, None, :])[0, 0].any()


def test_play_codes_refuse_codes_they_cannot_hold() -> None:
    with pytest.raises(ValueError, match="artist codes must be >= 0"):
        play_codes([-1], [0])
    with pytest.raises(ValueError, match="genre codes must lie in"):
        play_codes([0], [(1 << GENRE_BITS) - 1])


def test_a_state_advanced_play_by_play_equals_the_one_read_from_the_history() -> None:
    state = np.full((1, RECENT_PLAYS), -1)
    for length, code in enumerate(HISTORY[0, :4], start=1):
        state = advance_recent_codes(state, np.array([code]))
        np.testing.assert_array_equal(state, recent_codes(HISTORY, np.array([length])))
    torch_state = torch.full((1, RECENT_PLAYS), -1)
    for code in HISTORY[0, :4]:
        torch_state = torch_advance_recent_codes(torch_state, torch.tensor([code]))
    np.testing.assert_array_equal(torch_state.numpy(), state)


def test_torch_twins_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    history = play_codes(rng.integers(0, 4, (30, 12)), rng.integers(0, 3, (30, 12)))
    lengths = rng.integers(0, 13, 30)
    history[np.arange(12)[None, :] >= lengths[:, None]] = -1
    candidates = play_codes(rng.integers(0, 4, (30, 9)), rng.integers(0, 3, (30, 9)))
    candidates[:, -1] = -1
    recent = recent_codes(history, lengths)
    np.testing.assert_array_equal(
        torch_recent_codes(torch.as_tensor(history), torch.as_tensor(lengths)).numpy(), recent
    )
    expected = session_familiarity(candidates, recent[:, None, :])
    got = torch_session_familiarity(torch.as_tensor(candidates), torch.as_tensor(recent)[:, None, :])
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)


def repeat_artist_policy(artists: np.ndarray, pools: np.ndarray, history: np.ndarray, masks: np.ndarray, rng):
    """Per session, a slot by the artist just played when the pool has one, else a random valid slot."""
    actions = []
    for pool, played, mask in zip(pools, history, masks, strict=True):
        valid = np.flatnonzero(mask)
        last = played[played >= 0]
        again = valid[artists[pool[valid]] == artists[last[-1]]] if len(last) else valid[:0]
        actions.append(int(again[0]) if len(again) else int(rng.choice(valid)))
    return np.array(actions)


def test_the_vector_env_updates_the_columns_as_build_observations_would(real_worlds) -> None:
    """On the default learned world, sessions that play one artist again whenever they can: the
    vector env's observations after every step equal those rebuilt from its compact state, and the
    single env's equal a vector env of one (whose columns it updates play by play, past the
    window of recent artists and across a snapshot restored mid-session)."""
    world, _ = real_worlds
    artists = world.familiarity.track_artists
    envs = ListeningSessionVectorEnv(4, world=world)
    single = ListeningSessionEnv(world=world)
    lone = ListeningSessionVectorEnv(1, world=world)
    obs, _ = envs.reset(seed=1)
    single_obs, _ = single.reset(seed=2)
    lone_obs, _ = lone.reset(seed=2)
    rng = np.random.default_rng(0)
    repeats, longest, restored = 0, 0, False
    for step in range(60):
        actions = repeat_artist_policy(artists, envs.pools, envs.history_tracks, obs["action_mask"], rng)
        obs, *_ = envs.step(actions)
        longest = max(longest, int(envs.lengths.max()))
        if step == 12:
            vector_state = envs.get_state()
            envs = ListeningSessionVectorEnv(4, world=world)
            envs.set_state(vector_state)
        rebuilt = build_observations(
            world.track_features,
            world.user_features,
            envs.users,
            context_features(envs.contexts),
            envs.pools,
            envs.history_tracks,
            envs.history_responses,
            envs.played,
            world.familiarity,
        )
        assert data_equivalence(rebuilt, obs, exact=True)
        repeats += int(obs["history_familiarity"][..., FAMILIARITY_FEATURES.index("artist_just_played")].sum())
        assert data_equivalence({key: value[0] for key, value in lone_obs.items()}, single_obs, exact=True)
        action = repeat_artist_policy(
            artists, single.pool[None], single._history_tracks[None], single_obs["action_mask"][None], rng
        )
        single_obs, _, terminated, truncated, info = single.step(int(action[0]))
        lone_obs, *_ = lone.step(action)
        longest = max(longest, info["position"])
        if not restored and info["position"] == RECENT_PLAYS // 2 and not (terminated or truncated):
            single_state = single.get_state()
            single = ListeningSessionEnv(world=world)
            single.set_state(single_state)
            restored = True
        if terminated or truncated:
            single_obs, _ = single.reset()
    assert repeats > 0, "some plays followed their artist"
    assert restored and longest > RECENT_PLAYS + 1, "a session was restored and one ran past the window"


def test_the_environment_modules_load_without_torch() -> None:
    """The numpy environment and its observations never import torch (only the torch twins do, when called)."""
    code = "import sys, musicenv.env, musicenv.vector_env, musicenv.familiarity; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_the_incremental_update_equals_the_columns_recomputed_after_every_play() -> None:
    """advance_session_familiarity, play after play past the window, on pools with padding: what
    session_familiarity gives against the recent plays after each play, bit for bit."""
    rng = np.random.default_rng(3)
    pools = play_codes(rng.integers(0, 4, size=(3, 6)), rng.integers(0, 3, size=(3, 6)))
    pools[:, -1] = -1  # padding
    plays = play_codes(rng.integers(0, 4, size=(3, 2 * RECENT_PLAYS)), rng.integers(0, 3, size=(3, 2 * RECENT_PLAYS)))
    recent = np.full((3, RECENT_PLAYS), -1)
    columns = session_familiarity(pools, recent[:, None, :])
    masks = match_masks(pools, recent[:, None, :])
    for t in range(plays.shape[1]):
        advance_session_familiarity(columns, masks, pools, plays[:, t])
        recent = advance_recent_codes(recent, plays[:, t])
        np.testing.assert_array_equal(columns, session_familiarity(pools, recent[:, None, :]))
        np.testing.assert_array_equal(masks, match_masks(pools, recent[:, None, :]))
    assert not columns[:, -1].any(), "padding stays zeros"
