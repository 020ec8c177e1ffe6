"""Tests of the ground-truth world: structure, determinism, exact probabilities, calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicenv.data import ACOUSTIC_FEATURES, ListeningLog
from musicenv.groundtruth import EFFECTS, GroundTruthConfig, GroundTruthWorld
from musicenv.groundtruth.calibration import compare, log_figures, mssd_filter, mssd_targets
from musicenv.groundtruth.response import KNOWN_BLOCKED, KNOWN_FAMILIAR, KNOWN_UNFAMILIAR
from musicenv.world import COMPLETE, CONTEXT_TYPES, SKIP, Contexts, SessionModel, World, is_eval_user, take_state

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def world() -> GroundTruthWorld:
    return GroundTruthWorld(seed=0)


@pytest.fixture(scope="module")
def log(world: GroundTruthWorld) -> ListeningLog:
    """The default logs: 20,000 sessions."""
    return world.simulate_logs()


@pytest.fixture(scope="module")
def sessions(world: GroundTruthWorld):
    return world.simulate(600, seed=3)


@pytest.fixture(scope="module")
def shared() -> Path:
    if not (SHARED / "calibration" / "mssd").is_dir():
        pytest.skip(f"{SHARED} is absent: the MSSD aggregates live beside the project root")
    return SHARED


@pytest.fixture(scope="module")
def figures(log: ListeningLog, shared: Path) -> dict[str, float]:
    return compare(log_figures(log), mssd_targets(shared))


def some_states(world: GroundTruthWorld, n: int, plays: int, seed: int = 0):
    """States of ``n`` sessions after ``plays`` random plays, and the rng."""
    rng = np.random.default_rng(seed)
    model = world.session_model
    users, contexts = world.sample_sessions(rng, n, "all")
    state = model.initial_state(users, contexts)
    for _ in range(plays):
        state = model.advance(state, rng.integers(0, len(world.track_ids), n), rng.integers(0, 3, n))
    return state, rng


# --- structure -----------------------------------------------------------------------------------


def test_world_implements_the_protocols(world: GroundTruthWorld) -> None:
    assert isinstance(world, World)
    assert isinstance(world.session_model, SessionModel)
    assert world.name == "groundtruth"
    np.testing.assert_array_equal(world.eval_users, is_eval_user(world.user_ids))
    assert 0.1 < world.eval_users.mean() < 0.3
    assert world.track_features.shape[0] == len(world.tracks) and world.track_features.dtype == np.float32
    assert world.user_features.shape[0] == len(world.user_ids) and world.user_features.dtype == np.float32
    with pytest.raises(NotImplementedError, match="learned world"):
        world.candidate_pools(np.arange(3), 10)


def test_ids_are_zero_padded_in_index_order(world: GroundTruthWorld) -> None:
    assert world.user_ids[0] == "u0000000" and world.track_ids[0] == "t0000000" and world.artist_ids[0] == "a00000"
    for ids in (world.user_ids, world.track_ids, world.artist_ids):
        assert list(ids) == sorted(ids) and len(set(map(len, ids))) == 1
    assert (world.tracks["track_id"].to_numpy() == world.track_ids).all()
    np.testing.assert_array_equal(world.user_index(world.user_ids[[5, 0, 7]]), [5, 0, 7])
    np.testing.assert_array_equal(world.track_index(pd.Series(world.track_ids[[42, 1]])), [42, 1])
    with pytest.raises(KeyError, match="u9999999"):
        world.user_index(["u0000001", "u9999999"])
    with pytest.raises(KeyError, match="t00000011"):
        world.track_index(["t00000011"])


def test_tracks_table_has_explicit_flags_genres_and_features(world: GroundTruthWorld) -> None:
    tracks = world.tracks
    assert {"track_id", "artist_id", "explicit", "genre", *ACOUSTIC_FEATURES} <= set(tracks.columns)
    assert 0.06 < tracks["explicit"].mean() < 0.14
    assert tracks["genre"].notna().all() and tracks["artist_id"].nunique() == world.config.n_artists
    assert not tracks[ACOUSTIC_FEATURES].isna().any().any()


def test_track_features_follow_the_mssd_marginals(world: GroundTruthWorld, shared: Path) -> None:
    stats = pd.read_csv(shared / "calibration" / "mssd" / "track_feature_stats.csv").set_index("feature")
    for feature, row in stats.iterrows():
        values = world.tracks[feature].to_numpy(dtype=np.float64)
        spread = max(row["q75"] - row["q25"], row["std"])
        assert row["min"] - 1e-3 <= values.min() and values.max() <= row["max"] + 1e-3, feature
        for q, name in ((0.25, "q25"), (0.5, "median"), (0.75, "q75")):
            assert abs(np.quantile(values, q) - row[name]) <= 0.1 * spread, (feature, name)
        assert abs(values.mean() - row["mean"]) <= 0.15 * row["std"], feature


def test_block_lists_exist_and_are_never_played(world: GroundTruthWorld, log: ListeningLog) -> None:
    blocks = world.blocks
    assert len(blocks) > 0 and blocks["user_id"].nunique() >= 0.02 * len(world.user_ids)
    assert (blocks["track_id"].notna() ^ blocks["artist_id"].notna()).all()
    assert blocks["artist_id"].notna().any()
    model = world.session_model
    users = world.user_index(log.plays["user_id"].to_numpy())
    tracks = world.track_index(log.plays["track_id"].to_numpy())
    assert not (model.known_codes(users, tracks) == KNOWN_BLOCKED).any()
    blocked = blocks[blocks["track_id"].notna()]
    codes = model.known_codes(world.user_index(blocked["user_id"]), world.track_index(blocked["track_id"]))
    assert (codes == KNOWN_BLOCKED).all()


def test_logs_cover_every_user_dates_and_shuffled_share(world: GroundTruthWorld, log: ListeningLog) -> None:
    plays = log.plays
    assert plays["user_id"].nunique() == len(world.user_ids)
    assert plays["session_id"].nunique() == world.config.n_sessions
    dates = plays["date"]
    assert (dates.max() - dates.min()).days == world.config.n_days - 1
    first_date = plays.groupby("session_id", observed=True)["date"].first()
    assert first_date.is_monotonic_increasing  # session ids are chronological
    shuffled = plays.groupby("session_id", observed=True)["shuffled"].first()
    assert abs(shuffled.mean() - world.config.shuffled_share) < 0.02
    assert plays["position"].max() == world.config.max_session_length
    assert (plays["session_length"] == plays.groupby("session_id", observed=True)["position"].transform("size")).all()


def test_sample_sessions_respects_the_split(world: GroundTruthWorld) -> None:
    rng = np.random.default_rng(0)
    users, contexts = world.sample_sessions(rng, 500, "eval")
    assert world.eval_users[users].all() and len(contexts) == 500
    users, contexts = world.sample_sessions(rng, 500, "train")
    assert not world.eval_users[users].any()
    assert contexts.hour.min() >= 0 and contexts.hour.max() <= 23
    assert abs(float(contexts.attention.mean())) < 0.2
    with pytest.raises(ValueError, match="split"):
        world.sample_sessions(rng, 1, "test")  # type: ignore[arg-type]


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_world_and_logs(world: GroundTruthWorld) -> None:
    again = GroundTruthWorld(seed=0)
    for field in dataclasses.fields(world.catalogue):
        np.testing.assert_array_equal(getattr(world.catalogue, field.name), getattr(again.catalogue, field.name))
    pd.testing.assert_frame_equal(world.tracks, again.tracks)
    first, second = world.simulate_logs(800, seed=5), again.simulate_logs(800, seed=5)
    pd.testing.assert_frame_equal(first.plays, second.plays)
    other_logs = world.simulate_logs(800, seed=6)
    assert not first.plays["track_id"].equals(other_logs.plays["track_id"])
    other_world = GroundTruthWorld(seed=1)
    assert not np.array_equal(other_world.catalogue.track_taste, world.catalogue.track_taste)


# --- the response model --------------------------------------------------------------------------


def test_probabilities_are_valid_including_padding(world: GroundTruthWorld) -> None:
    state, rng = some_states(world, 64, plays=7)
    tracks = rng.integers(-1, len(world.track_ids), (64, 50))
    probs = world.session_model.response_probs(state, tracks)
    assert probs.shape == (64, 50, 3) and probs.dtype == np.float64
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-12)
    leave = world.session_model.leave_probs(state)
    assert leave.shape == (64,) and ((leave > 0) & (leave < 1)).all()


def test_replaying_a_logged_session_reaches_the_same_probabilities(world: GroundTruthWorld, sessions) -> None:
    """The state reached by replaying a history gives exactly the probabilities the simulation used,
    whether the played track is scored alone or among other candidates."""
    model = world.session_model
    rows = np.flatnonzero(sessions.lengths >= 5)[:40]
    state = model.initial_state(sessions.users[rows], sessions.contexts.take(rows))
    rng = np.random.default_rng(0)
    for position in range(5):
        played = sessions.tracks[rows, position]
        others = rng.integers(0, len(world.track_ids), (len(rows), 30))
        candidates = np.concatenate([others[:, :11], played[:, None], others[:, 11:]], axis=1)
        alone = model.response_probs(state, played[:, None])[:, 0]
        among = model.response_probs(state, candidates)[:, 11]
        np.testing.assert_array_equal(alone, sessions.probs[rows, position])
        np.testing.assert_array_equal(among, sessions.probs[rows, position])
        state = model.advance(state, played, sessions.responses[rows, position])
    # Row by row gives the same as the batch.
    single = take_state(state, slice(3, 4))
    tracks = rng.integers(0, len(world.track_ids), (len(rows), 9))
    np.testing.assert_array_equal(model.response_probs(single, tracks[3:4]), model.response_probs(state, tracks)[3:4])


def test_advance_is_pure_and_updates_the_session(world: GroundTruthWorld) -> None:
    model = world.session_model
    state, _ = some_states(world, 4, plays=2)
    before = {key: value.copy() for key, value in state.items()}
    tracks = np.array([10, 11, 12, 13])
    new = model.advance(state, tracks, np.array([SKIP, SKIP, COMPLETE, 1]))
    for key, value in before.items():
        np.testing.assert_array_equal(state[key], value)
    np.testing.assert_array_equal(new["position"], state["position"] + 1)
    np.testing.assert_array_equal(new["recent_artists"][:, 0], world.catalogue.track_artist[tracks])
    np.testing.assert_array_equal(new["skip_run"][:2], state["skip_run"][:2] + 1)
    assert (new["skip_run"][2:] == 0).all()
    assert new["mood"][2] > state["mood"][2] * world.config.mood_decay


def test_leaving_is_zero_before_the_first_play_and_rises_with_skip_runs(world: GroundTruthWorld) -> None:
    model = world.session_model
    users = np.zeros(6, dtype=np.int64)
    contexts = Contexts(np.zeros(6, np.int8), np.full(6, 12, np.int8), np.zeros(6, np.float32))
    state = model.initial_state(users, contexts)
    assert (model.leave_probs(state) == 0).all()
    leave = []
    for _ in range(5):
        state = model.advance(state, np.full(6, 7), np.full(6, SKIP))
        leave.append(model.leave_probs(state)[0])
    assert np.all(np.diff(leave) > 0)


def test_mood_moves_unfamiliar_tracks_only(world: GroundTruthWorld) -> None:
    """Completions instead of listens raise the mood: unfamiliar tracks gain, known ones do not."""
    model, cat = world.session_model, world.catalogue
    user = np.array([0])
    familiar = cat.library_keys[0]  # user 0's first known track
    unfamiliar = next(t for t in range(cat.n_tracks) if model.known_codes(user, np.array([t]))[0] == 0)
    assert model.known_codes(user, np.array([familiar, unfamiliar])).tolist() == [KNOWN_FAMILIAR, KNOWN_UNFAMILIAR]
    contexts = Contexts(np.zeros(1, np.int8), np.full(1, 12, np.int8), np.zeros(1, np.float32))
    states = [model.initial_state(user, contexts) for _ in range(2)]
    for _ in range(3):
        states = [model.advance(s, np.array([5]), np.array([r])) for s, r in zip(states, (1, COMPLETE))]
    candidates = np.array([[familiar, unfamiliar]])
    gain = model.utility(states[1], candidates)[0] - model.utility(states[0], candidates)[0]
    mood = states[1]["mood"][0] - states[0]["mood"][0]
    assert mood > 2
    assert gain[0] == 0.0 and gain[1] == pytest.approx(mood * world.config.mood_openness)


def test_satiation_penalties_are_the_artist_and_genre_terms_of_the_utility(world: GroundTruthWorld) -> None:
    """One play of an artist: its other tracks lose the last-play artist weight, tracks of its genre
    the genre satiation of one exposure; the utility without those terms is the ablated world's."""
    model, cat, config = world.session_model, world.catalogue, world.config
    users = np.zeros(1, dtype=np.int64)
    contexts = Contexts(np.zeros(1, np.int8), np.full(1, 12, np.int8), np.zeros(1, np.float32))
    state = model.initial_state(users, contexts)
    artist, genre = model.satiation_penalties(state, np.array([[0, 1]]))
    assert (artist == 0).all() and (genre == 0).all()  # nothing played yet
    played = int(cat.artist_start[0])
    state = model.advance(state, np.array([played]), np.array([COMPLETE]))
    same_artist = played + 1
    assert cat.track_artist[same_artist] == cat.track_artist[played]
    other_genre = int(np.flatnonzero(cat.track_genre != cat.track_genre[played])[0])
    candidates = np.array([[same_artist, other_genre]])
    artist, genre = model.satiation_penalties(state, candidates)
    weight = config.artist_repeat_penalty[0] + config.artist_satiation
    assert artist[0].tolist() == pytest.approx([weight, 0.0])
    assert genre[0].tolist() == pytest.approx(
        [config.genre_satiation * (cat.track_genre[same_artist] == cat.track_genre[played]), 0.0]
    )
    ablated = GroundTruthWorld(seed=0, config=config.ablate("satiation", "artist_repetition")).session_model
    bare = ablated.advance(ablated.initial_state(users, contexts), np.array([played]), np.array([COMPLETE]))
    np.testing.assert_allclose(model.utility(state, candidates) + artist + genre, ablated.utility(bare, candidates))


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_ablation_switch_changes_probabilities(world: GroundTruthWorld, effect: str) -> None:
    ablated = GroundTruthWorld(seed=0, config=world.config.ablate(effect)).session_model
    model = world.session_model
    rng = np.random.default_rng(1)
    n = 32
    users, contexts = world.sample_sessions(rng, n, "all")
    states = [model.initial_state(users, contexts), ablated.initial_state(users, contexts)]
    # Repeat one artist and skip a few times so that every effect has something to act on.
    tracks = np.full(n, world.catalogue.artist_start[0])
    for response in (COMPLETE, COMPLETE, SKIP, SKIP):
        states = [m.advance(s, tracks, np.full(n, response)) for m, s in zip((model, ablated), states)]
    candidates = np.concatenate([rng.integers(0, len(world.track_ids), (n, 40)), np.tile(tracks[:, None], 2)], axis=1)
    library = world.catalogue.library_keys[world.catalogue.library_indptr()[users]] - users * world.catalogue.n_tracks
    candidates[:, 0] = library
    full, without = model.response_probs(states[0], candidates), ablated.response_probs(states[1], candidates)
    assert not np.allclose(full, without), effect
    with pytest.raises(ValueError, match="unknown effects"):
        world.config.ablate("gravity")


# --- scale ---------------------------------------------------------------------------------------


def test_a_big_catalogue_builds_without_dense_users_by_tracks_memory() -> None:
    config = GroundTruthConfig(n_users=20_000, n_tracks=100_000, n_artists=10_000, n_sessions=2000)
    world = GroundTruthWorld(seed=0, config=config)
    dense = config.n_users * config.n_tracks
    for field in dataclasses.fields(world.catalogue):
        assert getattr(world.catalogue, field.name).size < dense / 50, field.name
    library = len(world.catalogue.library_keys) / config.n_users
    assert 0.7 * config.library_size_mean < library < 1.3 * config.library_size_mean
    sessions = world.simulate(500)
    assert sessions.lengths.min() >= 1


# --- calibration against the MSSD (through its 10-to-20-plays filter) ----------------------------


def test_mssd_filter_keeps_sessions_of_ten_or_more_cut_at_twenty(log: ListeningLog) -> None:
    kept = mssd_filter(log.plays)
    lengths = kept.groupby("session_id", observed=True)["position"].size()
    assert lengths.min() == 10 and lengths.max() == 20
    assert (kept["session_length"] <= 20).all()


def test_skip_rate_by_position_matches_the_mssd(figures: dict[str, float]) -> None:
    assert figures["position_error"] <= 0.03


def test_session_lengths_match_the_mssd(figures: dict[str, float]) -> None:
    assert figures["length_tv"] <= 0.05


def test_context_mix_and_skip_rates_match_the_mssd(figures: dict[str, float], log: ListeningLog, shared: Path) -> None:
    """Each context's skip rate within 0.03 of the MSSD's, or within three standard errors where
    its sessions are too few for that: charts and personalized playlists have 1.5-2% of plays,
    about 170 sessions of the 20,000, and sessions differ so much in skip rate (dispersion about
    6) that their skip rates have a standard error of about 0.025."""
    assert figures["context_share_error"] <= 0.03
    plays = mssd_filter(log.plays)
    skipped = (plays["response"].cat.codes == SKIP).astype(np.float64)
    per_session = skipped.groupby([plays["context_type"], plays["session_id"]], observed=True).agg(["sum", "size"])
    target = pd.Series(mssd_targets(shared)["context_skip"], index=pd.Index(CONTEXT_TYPES, name="context_type"))
    for context, sessions in per_session.groupby(level="context_type", observed=True):
        rate = sessions["sum"].sum() / sessions["size"].sum()
        # The standard error of a ratio of sums over independent sessions (the plays of one
        # session are not independent).
        residual = sessions["sum"] - rate * sessions["size"]
        n = len(sessions)
        se = np.sqrt(n / (n - 1) * (residual**2).sum()) / sessions["size"].sum()
        assert abs(rate - target[context]) <= max(0.03, 3 * se), (context, rate, target[context], se)


def test_response_mix_and_premium_share_match_the_mssd(figures: dict[str, float]) -> None:
    assert figures["response_mix_error"] <= 0.03
    assert abs(figures["premium_share"] - 136053 / 167880) <= 0.03


def test_plays_per_track_are_long_tailed_like_the_mssd(figures: dict[str, float], shared: Path) -> None:
    """Slope of the log-log plays-per-track histogram between its median and 99th percentile."""
    assert abs(figures["plays_per_track_slope"] - mssd_targets(shared)["plays_per_track_slope"]) <= 0.25


def test_skips_come_in_runs_and_sessions_differ_beyond_chance(figures: dict[str, float]) -> None:
    """docs/design.md, "Realism the real rows show": P(skip | previous skip) about 0.7, P(skip |
    previous not skipped) 0.2 to 0.3, and per-session skip rates far more dispersed than binomial
    (the real rows: 0.73, 0.20, 5.7)."""
    assert 0.65 <= figures["skip_after_skip"] <= 0.85
    assert 0.2 <= figures["skip_after_other"] <= 0.3
    assert figures["skip_dispersion"] >= 2.5
