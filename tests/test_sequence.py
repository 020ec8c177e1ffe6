"""Tests of sequence-aware retrieval: CBOW session vectors, the GRU taste model, sequence pools, the RNN agent."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch

from musicenv.artifacts import ArtifactError
from musicenv.data import ListeningLog
from world_model.candidates import MixedPool
from world_model.interactions import listener_codes
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.sequence import (
    SequenceConfig,
    SequenceStage,
    centred_unit_rows,
    listener_documents,
    next_track_hit_rates,
    session_documents,
    simulate_world_log,
)
from world_model.session_vectors import Documents, SessionVectorConfig, cbow_examples, fit_session_vectors
from world_model.taste_model import TasteModelConfig, chunk_sequences, fit_taste_model

torch.set_num_threads(1)

SMALL_SEQUENCE = SequenceConfig(dim=16, window=3, vector_epochs=4, hidden_size=32, taste_epochs=4, n_trees=4)


def group_documents(n_groups: int = 8, group_size: int = 10, n_documents: int = 400, seed: int = 0) -> Documents:
    """Sessions of 8 tracks, each drawn from one group of tracks: tracks co-occur only within a group."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_documents)
    return Documents.from_sequences([g * group_size + rng.integers(0, group_size, 8) for g in groups])


def cosine(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return (unit[a] * unit[b]).sum(axis=1)


def test_cbow_examples_respect_window_and_document_bounds() -> None:
    contexts, targets = cbow_examples(Documents.from_sequences([[1, 2, 3], [4], [5, 6]]), window=1)
    # Track 4 is alone in its document: no example. Track 3's right neighbour would be 4: not its document.
    np.testing.assert_array_equal(targets, [1, 2, 3, 5, 6])
    np.testing.assert_array_equal(contexts, [[-1, 2], [1, 3], [2, -1], [-1, 6], [5, -1]])


def test_cbow_puts_co_occurring_tracks_nearer_than_random_pairs() -> None:
    documents = group_documents()
    vectors = fit_session_vectors(documents, 80, SessionVectorConfig(dim=16, window=3, epochs=10), seed=0)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 80, 2000), rng.integers(0, 80, 2000)
    same = (a // 10 == b // 10) & (a != b)
    together, apart = cosine(vectors, a[same], b[same]).mean(), cosine(vectors, a[~same], b[~same]).mean()
    assert together > apart, (together, apart)
    # Raw CBOW vectors share a common direction; without it (as the stage uses them) groups stand apart.
    centred = centred_unit_rows(vectors)
    together, apart = cosine(centred, a[same], b[same]).mean(), cosine(centred, a[~same], b[~same]).mean()
    assert together > 0.5 and apart < 0.0, (together, apart)


def test_cbow_is_deterministic_for_a_seed_and_zero_for_unseen_tracks() -> None:
    documents = group_documents(n_documents=100)
    config = SessionVectorConfig(dim=8, window=2, epochs=2)
    first = fit_session_vectors(documents, 90, config, seed=4)
    np.testing.assert_array_equal(first, fit_session_vectors(documents, 90, config, seed=4))
    assert not np.array_equal(first, fit_session_vectors(documents, 90, config, seed=5))
    assert np.all(first[80:] == 0) and np.all(np.any(first[:80] != 0, axis=1))
    with pytest.raises(ValueError, match="outside"):
        fit_session_vectors(documents, 50, config)


def test_chunks_overlap_by_one_play() -> None:
    chunks = chunk_sequences(Documents.from_sequences([np.arange(7), [9]]), length=3)
    assert [c.tolist() for c in chunks] == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]


def test_taste_model_learns_a_deterministic_successor() -> None:
    # Track i is always followed by track (i + 1) % 20: the model must predict the successor's vector.
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    starts = rng.integers(0, 20, 300)
    documents = Documents.from_sequences([(s + np.arange(10)) % 20 for s in starts])
    config = TasteModelConfig(hidden_size=32, epochs=30, max_length=10, learning_rate=1e-2)
    model, losses = fit_taste_model(documents, vectors, config, seed=0)
    assert losses[-1] < 0.2 * losses[0]
    again, _ = fit_taste_model(documents, vectors, config, seed=0)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, again.state_dict()[name], rtol=0, atol=0)
    with torch.no_grad():
        predicted = model(torch.as_tensor(vectors[(np.arange(5) + 3) % 20][None]))[0].numpy()
    nearest = np.argmax(predicted @ vectors.T, axis=1)
    np.testing.assert_array_equal(nearest[1:], (np.arange(1, 5) + 4) % 20)  # from the second play on


@pytest.fixture(scope="module")
def truth_logs() -> tuple[ListeningLog, ListeningLog]:
    """A small ground-truth world's logs, cut by time into the first 80% of plays and the rest."""
    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld

    truth = GroundTruthWorld(seed=3, config=GroundTruthConfig(n_users=150, n_tracks=300, n_artists=40))
    log = truth.simulate_logs(1500, seed=0)
    dates = log.plays["date"]
    cutoff = dates.quantile(0.8)
    parts = [log.plays[dates < cutoff], log.plays[dates >= cutoff]]
    return tuple(ListeningLog(part.reset_index(drop=True), log.tracks, log.blocks) for part in parts)


@pytest.fixture(scope="module")
def stage(truth_logs: tuple[ListeningLog, ListeningLog]) -> SequenceStage:
    return SequenceStage.fit(truth_logs[0], SMALL_SEQUENCE, seed=0)


def test_documents_hold_non_skipped_plays_in_order(truth_logs: tuple[ListeningLog, ListeningLog]) -> None:
    log = truth_logs[0]
    documents = session_documents(log)
    kept = log.plays[log.plays["response"] != "skip"]
    assert documents.n_documents == log.n_sessions and len(documents.tokens) == len(kept)
    first = log.plays["session_id"].iloc[0]
    expected = kept[kept["session_id"] == first].sort_values("position")["track_id"]
    np.testing.assert_array_equal(log.tracks["track_id"].to_numpy()[documents[0]], expected.to_numpy())
    ids, codes = listener_codes(log)
    streams = listener_documents(log, codes, len(ids), keep_skips=True)
    assert streams.n_documents == len(ids) and len(streams.tokens) == log.n_plays
    user = log.plays[log.plays["user_id"] == ids[0]]
    order = user.assign(date=pd.to_datetime(user["date"])).sort_values(["date", "session_id", "position"])
    np.testing.assert_array_equal(log.tracks["track_id"].to_numpy()[streams[0]], order["track_id"].to_numpy())


def test_gru_beats_the_last_track_baseline_on_held_out_sessions(
    stage: SequenceStage, truth_logs: tuple[ListeningLog, ListeningLog]
) -> None:
    later = truth_logs[1]
    sessions = session_documents(later)
    first_play = np.r_[0, np.flatnonzero(np.diff(later.session_codes())) + 1]
    users = np.searchsorted(listener_codes(truth_logs[0])[0], later.plays["user_id"].to_numpy(dtype=str)[first_play])
    rates = next_track_hit_rates(stage, sessions, users, k=10)
    assert rates["predictions"] > 500
    assert rates["rnn"] > rates["last_track"] + 0.02, rates


def test_stage_fit_is_deterministic(stage: SequenceStage, truth_logs: tuple[ListeningLog, ListeningLog]) -> None:
    again = SequenceStage.fit(truth_logs[0], SMALL_SEQUENCE, seed=0)
    np.testing.assert_array_equal(again.track_vectors, stage.track_vectors)
    np.testing.assert_array_equal(again.taste_vectors, stage.taste_vectors)
    query = stage.taste_vectors[1]
    np.testing.assert_array_equal(again.index.query(query, 30), stage.index.query(query, 30))


def test_stage_taste_vectors_follow_user_histories(stage: SequenceStage) -> None:
    users = np.flatnonzero(stage.history.lengths > 0)[:5]
    np.testing.assert_allclose(
        stage.taste_vectors[users], stage.predict([stage.history[u] for u in users]), rtol=1e-5, atol=1e-6
    )
    assert np.all(stage.history.lengths <= SMALL_SEQUENCE.history_plays)
    norms = np.linalg.norm(stage.track_vectors, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(stage.predict([[]]), np.zeros((1, SMALL_SEQUENCE.dim), np.float32))


def test_stage_save_load_round_trip_and_corruption(stage: SequenceStage, tmp_path: Path) -> None:
    stage.save(tmp_path / "sequence")
    loaded = SequenceStage.load(tmp_path / "sequence")
    np.testing.assert_array_equal(loaded.track_vectors, stage.track_vectors)
    np.testing.assert_array_equal(loaded.taste_vectors, stage.taste_vectors)
    np.testing.assert_array_equal(loaded.history.tokens, stage.history.tokens)
    assert loaded.config == stage.config and loaded.seed == stage.seed
    query = stage.taste_vectors[0]
    np.testing.assert_array_equal(loaded.index.query(query, 20), stage.index.query(query, 20))
    (tmp_path / "sequence" / "taste_model.pt").write_bytes(b"corrupted")
    with pytest.raises(ArtifactError, match="checksum"):
        SequenceStage.load(tmp_path / "sequence")


@pytest.fixture(scope="module")
def sequence_retrieval(truth_logs: tuple[ListeningLog, ListeningLog]) -> Retrieval:
    config = RetrievalConfig(factors=8, iterations=5, n_bands=4, seed=3, source="sequence", sequence=SMALL_SEQUENCE)
    return Retrieval.fit(truth_logs[0], config)


def test_sequence_pools_rank_by_taste_vector_and_honour_blocks(sequence_retrieval: Retrieval) -> None:
    retrieval = sequence_retrieval
    assert retrieval.sequence is not None and "sequence_vectors_seconds" in retrieval.timings
    blocked_users = np.unique(retrieval.blocked.nonzero()[0])
    assert len(blocked_users) > 0
    users = np.concatenate([blocked_users, np.arange(10)])
    pools = retrieval.candidate_pools(users, 50, explicit_filter=True)
    for user, pool in zip(users, pools):
        assert len(np.unique(pool)) == 50 and np.all(pool >= 0)
        assert not np.isin(pool, retrieval.blocked[user].indices).any()
        assert not retrieval.explicit[pool].any()
    user = 0
    scores = retrieval.sequence.track_vectors @ retrieval.sequence.taste_vectors[user]
    unfiltered = retrieval.candidate_pools(np.array([user]), 20)[0]
    allowed = np.setdiff1d(np.arange(retrieval.n_tracks), retrieval.blocked[user].indices)
    np.testing.assert_array_equal(unfiltered, allowed[np.argsort(-scores[allowed], kind="stable")][:20])


def test_mixed_pools_take_their_share_from_each_source(sequence_retrieval: Retrieval) -> None:
    retrieval = sequence_retrieval
    users = np.arange(12)
    mixed = MixedPool(retrieval.sequence_pool, retrieval.pool, 0.3).pools(users, 40)
    sequence = retrieval.sequence_pool.pools(users, 40)
    als = retrieval.pool.pools(users, 40)
    for m, s, a in zip(mixed, sequence, als):
        assert len(np.unique(m)) == 40 and np.all(m >= 0)
        assert np.isin(s[:12], m).all()
        assert np.isin(m, np.concatenate([s, a])).all()
        rest = a[~np.isin(a, s[:12])][:28]
        assert np.isin(rest, m).all()
        # Each part keeps its own order; the ALS part (28 of 40) leads, the sequence part follows at its pace.
        np.testing.assert_array_equal(m[np.isin(m, s[:12])], s[:12])
        np.testing.assert_array_equal(m[~np.isin(m, s[:12])], rest)
        assert m[0] == rest[0] and m[1] == s[0]
    mix = retrieval.with_source("mix", sequence_share=0.3)
    assert mix.config.source == "mix" and mix.sequence is retrieval.sequence
    np.testing.assert_array_equal(mix.candidate_pools(users, 40), mixed)


def test_retrieval_with_a_sequence_source_saves_and_loads(sequence_retrieval: Retrieval, tmp_path: Path) -> None:
    sequence_retrieval.save(tmp_path / "retrieval")
    manifest = json.loads((tmp_path / "retrieval" / "manifest.json").read_text())
    assert "sequence/taste_model.pt" in manifest["files"] and manifest["config"]["retrieval"]["source"] == "sequence"
    loaded = Retrieval.load(tmp_path / "retrieval")
    users = np.arange(20)
    np.testing.assert_array_equal(loaded.candidate_pools(users, 30), sequence_retrieval.candidate_pools(users, 30))
    assert loaded.config == sequence_retrieval.config
    (tmp_path / "retrieval" / "sequence" / "vectors.npz").write_bytes(b"corrupted")
    with pytest.raises(ArtifactError, match="checksum"):
        Retrieval.load(tmp_path / "retrieval")


def test_projector_exports_the_session_vectors(
    sequence_retrieval: Retrieval, truth_logs: tuple[ListeningLog, ListeningLog], tmp_path: Path
) -> None:
    from world_model.projector import export_projector

    tracks = truth_logs[0].tracks
    folder = export_projector(sequence_retrieval, tracks, tmp_path / "tb", max_tracks=50, vectors="sequence")
    tensors = next(folder.rglob("tensors.tsv")).read_text().splitlines()
    assert len(tensors) == 50 and len(tensors[0].split("\t")) == SMALL_SEQUENCE.dim
    with pytest.raises(ValueError, match="vectors must be"):
        export_projector(sequence_retrieval, tracks, tmp_path / "tb2", vectors="gru")


def test_config_rejects_unknown_source_and_accepts_json_sequence_settings() -> None:
    with pytest.raises(ValueError, match="source"):
        RetrievalConfig(source="lstm")
    config = RetrievalConfig.from_dict(json.loads(json.dumps(RetrievalConfig(source="mix").to_dict())))
    assert isinstance(config.sequence, SequenceConfig) and config == RetrievalConfig(source="mix")
    with pytest.raises(ValueError, match="needs a fitted sequence stage"):
        Retrieval(RetrievalConfig(source="sequence"), *([None] * 9))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sequence_world_dir(truth_logs: tuple[ListeningLog, ListeningLog], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
    from world_model.user_model import UserModelConfig
    from world_model.world import GroundTruthProvenance, WorldConfig, build_world

    truth = GroundTruthWorld(seed=3, config=GroundTruthConfig(n_users=150, n_tracks=300, n_artists=40))
    config = WorldConfig(
        retrieval=RetrievalConfig(factors=8, iterations=3, n_trees=5, source="sequence", sequence=SMALL_SEQUENCE),
        user_model=UserModelConfig(hidden_size=8, mlp_size=16, interaction_size=8, max_epochs=1),
    )
    world = build_world(truth_logs[0], config, GroundTruthProvenance.of(truth, 1500, 0))
    return world.save(tmp_path_factory.mktemp("worlds") / "sequence")


def test_env_runs_on_a_world_whose_pools_come_from_the_sequence_source(sequence_world_dir: Path) -> None:
    import musicenv  # noqa: F401  (registers the env)
    from world_model.world import load_world

    world = load_world(sequence_world_dir)
    assert world.retrieval.config.source == "sequence"
    env = gymnasium.make("ListeningSession-v0", world=str(sequence_world_dir), pool_size=30)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(int(np.argmax(obs["action_mask"])))
        assert not info["invalid_action"]
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    base = env.unwrapped
    users = np.arange(5)
    np.testing.assert_array_equal(base.world.candidate_pools(users, 30), world.retrieval.sequence_pool.pools(users, 30))


def test_rnn_agent_plays_the_candidate_nearest_its_prediction(sequence_world_dir: Path) -> None:
    from agents.base import make_agent
    from musicenv.vector_env import ListeningSessionVectorEnv
    from world_model.world import load_world

    world = load_world(sequence_world_dir)
    agent = make_agent("sequence_rnn", world)
    assert agent.stage is world.retrieval.sequence  # the world's own stage, nothing fitted
    env = ListeningSessionVectorEnv(4, world=world, playlist_length=8, pool_size=30)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        actions = agent.act(obs)
        stage = world.retrieval.sequence
        for row in range(4):
            played = env.history_tracks[row][: env.lengths[row]]
            kept = played[env.history_responses[row][: env.lengths[row]] != 0]
            taste = stage.predict([np.concatenate([stage.history[env.users[row]], kept])])[0]
            pool = env.pools[row]
            scores = np.where(obs["action_mask"][row] > 0, stage.track_vectors[pool] @ taste, -np.inf)
            assert actions[row] == int(np.argmax(scores))
        obs, *_ = env.step(actions)


def test_simulated_world_log_is_a_valid_log_of_the_world() -> None:
    from fakes import FakeWorld

    world = FakeWorld(seed=0, n_tracks=80)
    log = simulate_world_log(world, 50, length=6, seed=1)
    assert log.n_sessions == 50 and log.plays.groupby("session_id", observed=True).size().max() <= 6
    assert set(log.plays["user_id"]) <= set(world.user_ids[~world.eval_users])
    again = simulate_world_log(world, 50, length=6, seed=1)
    pd.testing.assert_frame_equal(log.plays, again.plays)
