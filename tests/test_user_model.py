"""The user-response model, its features, the session-end model and the learned session model.

Everything runs on a small ground-truth world (200 listeners, 500 tracks, 800 logged sessions)
with a small network and two epochs, so the file takes seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from musicenv.artifacts import ArtifactError, write_manifest
from musicenv.data import ListeningLog
from musicenv.familiarity import GENRE_MASK, RECENT_PLAYS
from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
from musicenv.torch_session import HostSessionModel, torch_session_model
from musicenv.world import (
    BatchedSingleSession,
    Contexts,
    context_features,
    draw_response,
    leave_probs_after,
    sample_responses,
)
from world_model.exact_als import exact_track_vectors, exact_user_vectors, held_out_track_vectors, held_out_user_vectors
from world_model.history import HISTORY_FEATURES, ListeningHistory
from world_model.interactions import interaction_matrix, listener_codes
from world_model.learned_session import (
    MODELS_FORMAT,
    LearnedSessionModel,
    MemberBlocks,
    TorchLearnedSessionModel,
    load_models,
    save_models,
)
from world_model.metrics import auc, expected_calibration_error, log_loss, response_metrics
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.session_end import SESSION_END_FEATURES, SessionEndModel, session_end_features
from world_model.sessions import SessionTable, session_folds
from world_model.user_model import (
    SessionSplit,
    UserModelConfig,
    UserResponseModel,
    listener_bootstrap,
    logged_response_probs,
    member_blocks,
    member_validation,
    train_user_model,
)
from world_model.world import WorldConfig, learn_features

torch.set_num_threads(1)

SMALL_TRUTH = GroundTruthConfig(n_users=200, n_tracks=500, n_artists=50)
SMALL_RETRIEVAL = RetrievalConfig(factors=8, iterations=5, n_trees=2, n_bands=1, pool_size=30)
SMALL_MODEL = UserModelConfig(
    hidden_size=16, mlp_size=32, interaction_size=8, max_epochs=2, batch_size=64, history=True, ensemble_size=3
)


@pytest.fixture(scope="module")
def log() -> ListeningLog:
    return GroundTruthWorld(seed=0, config=SMALL_TRUTH).simulate_logs(800, seed=0)


@pytest.fixture(scope="module")
def sessions(log: ListeningLog) -> SessionTable:
    return SessionTable.from_log(log, 20)


@pytest.fixture(scope="module")
def retrieval(log: ListeningLog) -> Retrieval:
    return Retrieval.fit(log, SMALL_RETRIEVAL)


@pytest.fixture(scope="module")
def features(log: ListeningLog, sessions: SessionTable, retrieval: Retrieval):
    return learn_features(log, sessions, retrieval, SMALL_RETRIEVAL)


@pytest.fixture(scope="module")
def trained(sessions: SessionTable, features):
    return train_user_model(
        sessions,
        features.track_features,
        features.user_features,
        SMALL_MODEL,
        progress=False,
        session_user_features=features.session_user_features,
    )


@pytest.fixture(scope="module")
def session_model(trained, sessions: SessionTable, features) -> LearnedSessionModel:
    model, _ = trained
    history = ListeningHistory.from_sessions(sessions, len(features.track_features))
    return LearnedSessionModel(
        model,
        SessionEndModel.fit(sessions),
        features.track_features,
        features.user_features,
        features.stats,
        history=history,
    )


H = len(HISTORY_FEATURES)


def random_model(seed: int = 0, history_dim: int = len(HISTORY_FEATURES), sequential: bool = True):
    torch.manual_seed(seed)
    return UserResponseModel(
        6, 5, hidden_size=8, mlp_size=16, interaction_size=4, history_dim=history_dim, sequential=sequential
    ).eval()


# --- the torch module ------------------------------------------------------------------------------


@pytest.mark.parametrize("sequential", [True, False])
def test_output_shapes(sequential: bool) -> None:
    model = random_model(sequential=sequential)
    b, k, t = 3, 7, 4
    static = model.static_input(torch.randn(b, 6), torch.randn(b, 8))
    assert static.shape == (b, model.static_dim)
    hidden = model.encode(static, torch.randn(b, t, 5), torch.randint(0, 3, (b, t)), torch.randn(b, t, H))
    assert hidden.shape == (b, t + 1, 8)
    logits = model(static, hidden[:, -1], torch.full((b,), t + 1), torch.randn(b, k, 5), torch.randn(b, k, H))
    assert logits.shape == (b, k, 3)
    tracks = torch.tensor([[0, 1, 2, -1], [3, -1, -1, -1], [4, 5, 6, 7]])
    responses = torch.where(tracks >= 0, torch.randint(0, 3, tracks.shape), -1)
    positions = torch.where(tracks >= 0, torch.arange(1, 5).expand(3, -1), 0)
    played = model.played_logits(static, torch.randn(10, 5), tracks, responses, positions, torch.randn(3, 4, H))
    assert played.shape == (int((tracks >= 0).sum()), 3)


def test_scoring_many_candidates_at_once_equals_one_by_one() -> None:
    model = random_model()
    b, k = 4, 9
    static = model.static_input(torch.randn(b, 6), torch.randn(b, 8))
    hidden = model.initial_hidden(static)
    position = torch.tensor([1, 3, 5, 20])
    candidates, history = torch.randn(b, k, 5), torch.rand(b, k, H)
    together = model(static, hidden, position, candidates, history)
    for j in range(k):
        alone = model(static, hidden, position, candidates[:, j : j + 1], history[:, j : j + 1])
        torch.testing.assert_close(together[:, j : j + 1], alone, atol=1e-6, rtol=1e-5)


def test_many_sessions_at_once_equal_one_by_one() -> None:
    model = random_model()
    table = torch.randn(12, 5)
    tracks = torch.tensor([[0, 1, 2, 3, -1], [4, 5, -1, -1, -1], [6, 7, 8, 9, 10]])
    mask = tracks >= 0
    responses = torch.where(mask, torch.randint(0, 3, tracks.shape), -1)
    positions = torch.where(mask, torch.arange(1, 6).expand(3, -1), 0)
    history = torch.rand(3, 5, H) * mask[..., None]
    static = model.static_input(torch.randn(3, 6), torch.randn(3, 8), torch.tensor([1.0, 0.0, 1.0]))
    together = model.played_logits(static, table, tracks, responses, positions, history)
    start = 0
    for s in range(3):
        n = int(mask[s].sum())
        # Alone and unpadded: the padding of the batch changes nothing before it.
        alone = model.played_logits(
            static[s : s + 1],
            table,
            tracks[s : s + 1, :n],
            responses[s : s + 1, :n],
            positions[s : s + 1, :n],
            history[s : s + 1, :n],
        )
        torch.testing.assert_close(together[start : start + n], alone, atol=1e-6, rtol=1e-5)
        start += n


def test_history_changes_the_answer_and_none_means_never_played() -> None:
    model = random_model()
    static = model.static_input(torch.randn(2, 6), torch.randn(2, 8))
    hidden, position, candidates = model.initial_hidden(static), torch.tensor([1, 1]), torch.randn(2, 3, 5)
    never = model(static, hidden, position, candidates, None)
    torch.testing.assert_close(never, model(static, hidden, position, candidates, torch.zeros(2, 3, H)))
    assert not torch.allclose(never, model(static, hidden, position, candidates, torch.ones(2, 3, H)))


# --- features ----------------------------------------------------------------------------------------


def _tiny_log() -> ListeningLog:
    plays = [
        ("s1", "u1", "t0", "complete"),
        ("s1", "u1", "t1", "skip"),
        ("s2", "u1", "t0", "skip"),
        ("s2", "u1", "t2", "listen"),
        ("s3", "u2", "t1", "complete"),
    ]
    frame = pd.DataFrame(plays, columns=["session_id", "user_id", "track_id", "response"])
    frame["position"] = frame.groupby("session_id").cumcount() + 1
    frame["context_type"], frame["hour"], frame["date"] = "radio", 9, "2018-07-15"
    tracks = pd.DataFrame({"track_id": ["t0", "t1", "t2"], "artist_id": "a", "explicit": False})
    return ListeningLog.from_frames(frame, tracks)


def test_listening_history_counts_and_leaves_out_the_own_session() -> None:
    """The familiarity features against the tiny log counted by hand (t0 and t1 by artist a, t2 by
    b; t0 and t2 of genre 0, t1 of genre 1)."""
    table = SessionTable.from_log(_tiny_log(), 20)
    history = ListeningHistory.from_sessions(table, 3, np.array([0, 0, 1]), np.array([0, 1, 0]))
    u1 = int(np.searchsorted(table.listener_ids, "u1"))
    # u1 played t0 twice: completed once, skipped once.
    np.testing.assert_allclose(history.pair_counts(np.array([u1]), np.array([0]))[0], [1.0, 0.0, 1.0])
    # u1's plays of artist a: t0 complete, t1 skip, t0 skip.
    np.testing.assert_allclose(history.artist_pair_counts(np.array([u1]), np.array([1]))[0], [2.0, 0.0, 1.0])
    features = history.features(np.array([u1, u1, u1]), np.array([0, 2, 1]))
    third, two_thirds = 1.0 / 3.0, 2.0 / 3.0
    np.testing.assert_allclose(features[0], [1.0, np.log(3.0), 0.5, 0.5, np.log(4.0), third, two_thirds], rtol=1e-6)
    # t2 (artist b): one listen, the only play of b.
    np.testing.assert_allclose(features[1], [1.0, np.log(2.0), 0.0, 0.0, np.log(2.0), 0.0, 0.0], rtol=1e-6)
    # t1: one skip; its artist is a's three plays.
    np.testing.assert_allclose(features[2], [1.0, np.log(2.0), 0.0, 1.0, np.log(4.0), third, two_thirds], rtol=1e-6)
    # The single-session kernel's scalar form gives the same numbers once float32, bit for bit.
    for listener in range(len(table.listener_ids)):
        for track in range(3):
            expected = history.features(np.array([listener]), np.array([track]))[0]
            np.testing.assert_array_equal(np.float32(history.pair_features(listener, track)), expected)
    held_out = history.session_features(table)
    s1 = int(np.flatnonzero(table.session_ids == "s1")[0])
    s2 = int(np.flatnonzero(table.session_ids == "s2")[0])
    s3 = int(np.flatnonzero(table.session_ids == "s3")[0])
    # In s1, t0's history is s2's skip only (and of artist a, that skip); t1 was never played by
    # u1 elsewhere, but its artist was (s2's skip of t0).
    # The last five columns are the session's own: s1's second play (t1) follows t0, also by a
    # but of another genre.
    nothing_before, a_just_played = [0.0] * 5, [1.0, 0.0, np.log(2.0), 0.0, 0.0]
    np.testing.assert_allclose(
        held_out[s1, 0], [1.0, np.log(2.0), 0.0, 1.0, np.log(2.0), 0.0, 1.0, *nothing_before], rtol=1e-6
    )
    np.testing.assert_allclose(held_out[s1, 1], [0.0, 0.0, 0.0, 0.0, np.log(2.0), 0.0, 1.0, *a_just_played], rtol=1e-6)
    # In s2, t2 (artist b) was never played elsewhere; t0's history is s1's complete, a's is s1's two plays.
    np.testing.assert_allclose(
        held_out[s2, 0], [1.0, np.log(2.0), 1.0, 0.0, np.log(3.0), 0.5, 0.5, *nothing_before], rtol=1e-6
    )
    # t2 (artist b, genre 0) follows t0 (artist a, genre 0): only the genre columns are set.
    np.testing.assert_allclose(held_out[s2, 1], [0.0] * 10 + [1.0, 1.0])
    np.testing.assert_allclose(held_out[s3], 0.0)
    # Without artists every track is its own artist: the artist columns repeat the track's.
    own = ListeningHistory.from_sessions(table, 3).features(np.array([u1]), np.array([0]))[0]
    np.testing.assert_allclose(own[4:], own[1:4], rtol=1e-6)


def test_history_round_trips_through_arrays(sessions: SessionTable) -> None:
    genres = np.arange(500) % 7
    history = ListeningHistory.from_sessions(sessions, 500, track_genres=genres)
    again = ListeningHistory.from_arrays(history.to_arrays())
    np.testing.assert_array_equal(again.keys, history.keys)
    np.testing.assert_array_equal(again.counts, history.counts)
    np.testing.assert_array_equal(again.play_codes, history.play_codes)
    np.testing.assert_array_equal(again.play_codes & GENRE_MASK, genres)
    assert again.n_tracks == history.n_tracks
    with pytest.raises(ValueError, match=r"track_genres has shape \(3,\), expected \(500,\)"):
        ListeningHistory.from_sessions(sessions, 500, track_genres=np.zeros(3))


def test_held_out_user_vectors(log: ListeningLog, sessions: SessionTable, retrieval: Retrieval) -> None:
    config = SMALL_RETRIEVAL
    weights, _ = interaction_matrix(log, config.response_weights, None, listener_codes(log))
    full = exact_user_vectors(weights, retrieval.track_vectors, config.alpha, config.regularization)
    # Leaving nothing out gives the exact step on the whole row.
    nothing = dataclasses.replace(sessions, n_plays=np.zeros_like(sessions.n_plays))
    args = (retrieval.track_vectors, config.response_weights, config.alpha, config.regularization)
    np.testing.assert_allclose(held_out_user_vectors(nothing, weights, *args), full[sessions.listeners], atol=1e-5)
    held_out = held_out_user_vectors(sessions, weights, *args)
    assert held_out.shape == (len(sessions), retrieval.factors)
    per_listener = np.bincount(sessions.listeners, minlength=len(sessions.listener_ids))
    alone = per_listener[sessions.listeners] == 1
    assert alone.any() and (~alone).any()
    np.testing.assert_array_equal(held_out[alone], 0.0)  # no other session: nothing known
    assert not np.allclose(held_out[~alone], full[sessions.listeners[~alone]], atol=1e-4)
    # The exact step agrees in direction with implicit's own (approximate) vectors.
    cosine = (full * retrieval.user_vectors).sum(1) / (
        np.linalg.norm(full, axis=1) * np.linalg.norm(retrieval.user_vectors, axis=1) + 1e-12
    )
    assert np.median(cosine) > 0.95


def test_held_out_user_vectors_reject_a_foreign_matrix(sessions: SessionTable, retrieval: Retrieval) -> None:
    with pytest.raises(ValueError, match="rows"):
        held_out_user_vectors(sessions, sp.csr_matrix((3, 500)), retrieval.track_vectors, (0.25, 0.5, 1.0), 10, 10)


def test_session_folds() -> None:
    fold = session_folds(103, 5, seed=0)
    np.testing.assert_array_equal(fold, session_folds(103, 5, seed=0))
    assert set(np.bincount(fold).tolist()) <= {20, 21}
    assert not np.array_equal(fold, session_folds(103, 5, seed=1))
    with pytest.raises(ValueError, match="folds"):
        session_folds(10, 1, seed=0)


def test_held_out_track_vectors(log: ListeningLog, sessions: SessionTable, retrieval: Retrieval) -> None:
    config = SMALL_RETRIEVAL
    weights, _ = interaction_matrix(log, config.response_weights, None, listener_codes(log))
    solve = (config.response_weights, config.alpha, config.regularization)
    full = exact_track_vectors(weights, retrieval.user_vectors, config.alpha, config.regularization)
    assert full.shape == retrieval.track_vectors.shape
    # Fold 0 holds no session, so its vectors are the whole log's; fold 1 holds them all.
    fold = np.ones(len(sessions), dtype=np.int64)
    tables = held_out_track_vectors(sessions, fold, weights, retrieval.user_vectors, *solve)
    assert tables.shape == (2, *full.shape)
    np.testing.assert_allclose(tables[0], full, atol=1e-5)
    np.testing.assert_array_equal(tables[1], 0.0)  # every play left out: nothing known of any track
    fold = session_folds(len(sessions), 3, seed=0)
    tables = held_out_track_vectors(sessions, fold, weights, retrieval.user_vectors, *solve)
    assert tables.shape == (3, *full.shape) and np.isfinite(tables).all()
    assert not np.allclose(tables[0], full, atol=1e-4)


# --- training ----------------------------------------------------------------------------------------


def test_training_reports_and_learns(trained, sessions: SessionTable) -> None:
    model, report = trained
    assert not model.training and model.history_dim == len(HISTORY_FEATURES)
    assert 1 <= report.best_epoch <= report.epochs <= SMALL_MODEL.max_epochs
    counts = report.sessions  # with member holdout, validation sessions are some members' training sessions
    assert counts["train"] + counts["test"] + counts["evaluation"] == len(sessions)
    assert 0 < counts["validation"] < counts["train"]
    assert np.isfinite(report.validation["logloss"]) and report.validation["logloss"] < np.log(3)
    assert set(report.to_dict()) >= {"history", "validation", "test", "evaluation"}
    assert report.test == {} and counts["test"] == 0, "the default holds out no test sessions"
    assert counts["evaluation"] > 0 and report.evaluation["logloss"] < np.log(3)


def test_training_is_deterministic(sessions: SessionTable, features) -> None:
    small = dataclasses.replace(SMALL_MODEL, max_epochs=1)
    args = (sessions.take(np.arange(300)), features.track_features, features.user_features)

    def state(config: UserModelConfig, threads: int = 1) -> dict[str, torch.Tensor]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            model, _ = train_user_model(*args, config, progress=False)
            assert torch.get_num_threads() == threads  # the caller's setting is restored
        finally:
            torch.set_num_threads(before)
        return model.state_dict()

    # The caller's thread count does not reach the training (it runs on one thread).
    first, second = state(small, threads=1), state(small, threads=2)
    for name, value in first.items():
        torch.testing.assert_close(value, second[name], rtol=0, atol=0)
    other = state(dataclasses.replace(small, seed=1))
    assert any(not torch.equal(value, other[name]) for name, value in first.items())


def test_per_fold_track_tables_are_read_by_fold(sessions: SessionTable, features) -> None:
    """Identical per-fold tables train exactly the model one table trains; wrong shapes are refused."""
    small = dataclasses.replace(SMALL_MODEL, max_epochs=1)
    some = sessions.take(np.arange(300))
    args = (some, features.track_features, features.user_features, small)
    plain, _ = train_user_model(*args, progress=False)
    tables = np.stack([features.track_features] * 3)
    folded, _ = train_user_model(
        *args, progress=False, session_track_features=(tables, session_folds(len(some), 3, seed=0))
    )
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(value, folded.state_dict()[name], rtol=0, atol=0)
    with pytest.raises(ValueError, match="session_track_features"):
        train_user_model(*args, progress=False, session_track_features=(tables, np.zeros(3, dtype=np.int64)))


def test_training_rejects_misaligned_inputs(sessions: SessionTable, features) -> None:
    with pytest.raises(ValueError, match="user feature rows"):
        train_user_model(sessions, features.track_features, features.user_features[:-1], SMALL_MODEL, progress=False)
    with pytest.raises(ValueError, match="session_user_features"):
        train_user_model(
            sessions,
            features.track_features,
            features.user_features,
            SMALL_MODEL,
            progress=False,
            session_user_features=features.session_user_features[:-1],
        )


def test_logged_probabilities_are_distributions(trained, sessions: SessionTable, features) -> None:
    model, _ = trained
    history = ListeningHistory.from_sessions(sessions, len(features.track_features)).session_features(sessions)
    probs = logged_response_probs(
        model, sessions, features.track_features, features.user_features, session_history=history
    )
    assert probs.shape == (len(sessions), 20, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-9)
    assert np.isfinite(response_metrics(probs[sessions.play_mask()], sessions.responses[sessions.play_mask()])["ece"])


# --- the learned session model: numpy and torch paths, batching, save/load ---------------------------------


def _states(session_model: LearnedSessionModel, n: int, plays: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, len(session_model.user_features), n)
    contexts = Contexts(
        rng.integers(0, 6, n).astype(np.int8), rng.integers(0, 24, n).astype(np.int8), np.zeros(n, np.float32)
    )
    state = session_model.initial_state(users, contexts)
    for _ in range(plays):
        tracks = rng.integers(0, len(session_model.track_features), n)
        state = session_model.advance(state, tracks, rng.integers(0, 3, n))
    return state, rng


LEARNED_PATHS = ("numpy", "torch_module", "single_session", "torch_session")
"""Every way the learned session model computes (world_model.learned_session's module docstring)."""


def _script(session_model: LearnedSessionModel, n: int = 6, plays: int = 25, seed: int = 3):
    """Listeners, contexts, the tracks they play (every other one heard before, every fourth one by the
    artist just played) and the response uniforms.

    25 plays run past the MSSD's cap of 20, where the session-end tables clamp.
    """
    rng = np.random.default_rng(seed)
    history = session_model.history
    known = history.keys[rng.integers(0, len(history.keys), n)]
    users = known // history.n_tracks
    contexts = Contexts(
        rng.integers(0, 6, n).astype(np.int8), rng.integers(0, 24, n).astype(np.int8), np.zeros(n, np.float32)
    )
    tracks = rng.integers(0, history.n_tracks, (n, plays))
    for b, user in enumerate(users):
        heard = history.keys[history.keys // history.n_tracks == user] % history.n_tracks
        tracks[b, ::2] = heard[np.arange(len(tracks[b, ::2])) % len(heard)]
        # Every fourth play repeats the one before: its artist just played (the in-session columns).
        repeats = tracks[b, 3::4]
        tracks[b, 3::4] = tracks[b, 2::4][: len(repeats)]
    return users, contexts, tracks, rng.random((n, plays))


def _module_trace(session_model: LearnedSessionModel, users, contexts, tracks, uniforms):
    """The reference: the trained module on raw features, and the session-end model's own batched form.

    Returns each played track's members' probabilities ``(n, plays, E, 3)``, the responses drawn
    from their mean, and the leaving probabilities.
    """
    model, history = session_model.response_model, session_model.history
    n, plays = tracks.shape
    members = np.zeros((n, plays, model.ensemble_size, 3))
    probs, responses, leave = np.zeros((n, plays, 3)), np.zeros((n, plays), np.int64), np.zeros((n, plays))
    counts, skip_run, last = np.zeros((n, 3), np.int64), np.zeros(n, np.int64), np.full(n, -1)
    with torch.no_grad():
        static = model.static_input(
            torch.as_tensor(session_model.user_features[users]), torch.as_tensor(context_features(contexts))
        )
        hidden = model.initial_hidden(static)
        static_base, static_query = model.static_context(static)
        recent = np.full((n, RECENT_PLAYS), -1)  # the sessions' play codes, newest first
        for t in range(plays):
            base, query = model.session_context(static_base, static_query, hidden, torch.full((n,), t + 1))
            played = torch.as_tensor(session_model.track_features[tracks[:, t]])
            heard = torch.as_tensor(history.familiarity(users, tracks[:, t], recent))
            recent = np.concatenate([history.play_codes[tracks[:, t]][:, None], recent[:, :-1]], axis=1)
            logits = model.score(base, query, played[:, None], heard[:, None], members=True)
            members[:, t] = torch.softmax(logits.double(), -1)[:, 0].numpy()
            probs[:, t] = members[:, t].mean(axis=-2)
            responses[:, t] = sample_responses(probs[:, t], uniforms[:, t])
            hidden = model.step(hidden, played, torch.as_tensor(responses[:, t]), heard)
            counts[np.arange(n), responses[:, t]] += 1
            skip_run = (skip_run + 1) * (responses[:, t] == 0)
            last = responses[:, t]
            leave[:, t] = session_model.session_end.leave_probs(np.full(n, t + 1), skip_run, last, counts)
    return members, probs, responses, leave


def _path_trace(session_model: LearnedSessionModel, path: str, users, contexts, tracks, uniforms):
    """The played tracks' members' and mean probabilities, the responses and the leaving probabilities, by ``path``."""
    n, plays = tracks.shape
    members = np.zeros((n, plays, session_model.ensemble_size, 3))
    probs, responses, leave = np.zeros((n, plays, 3)), np.zeros((n, plays), np.int64), np.zeros((n, plays))
    if path == "single_session":
        for b in range(n):
            one = Contexts(contexts.context_type[b : b + 1], contexts.hour[b : b + 1], contexts.attention[b : b + 1])
            kernel = session_model.single_session(session_model.initial_state(users[b : b + 1], one))
            for t in range(plays):
                probs[b, t], responses[b, t] = kernel.play(int(tracks[b, t]), float(uniforms[b, t]))
                members[b, t] = kernel.last_member_probs
                leave[b, t] = kernel.leave_prob()
        return members, probs, responses, leave
    if path == "torch_session":
        device_model = session_model.torch_session_model("cpu")
        state = device_model.initial_state(torch.as_tensor(users), contexts)
        for t in range(plays):
            played = torch.as_tensor(tracks[:, t])
            p = device_model.response_probs(state, played[:, None])[:, 0]
            members[:, t] = device_model.member_response_probs(state, played[:, None])[:, 0].numpy()
            r = draw_response(p[:, 0], p[:, 1], torch.as_tensor(uniforms[:, t]))
            state = device_model.advance(state, played, r)
            probs[:, t], responses[:, t], leave[:, t] = p.numpy(), r.numpy(), device_model.leave_probs(state).numpy()
        return members, probs, responses, leave
    model = session_model
    if path == "torch_module":  # every batch above the threshold: the module on ``device``
        model = copy.copy(session_model)
        model.numpy_threshold = 0
    state = model.initial_state(users, contexts)
    for t in range(plays):
        members[:, t] = model.member_response_probs(state, tracks[:, t : t + 1])[:, 0]
        probs[:, t] = model.response_probs(state, tracks[:, t : t + 1])[:, 0]
        responses[:, t] = sample_responses(probs[:, t], uniforms[:, t])
        state = model.advance(state, tracks[:, t], responses[:, t])
        leave[:, t] = model.leave_probs(state)
    return members, probs, responses, leave


@pytest.mark.parametrize("path", LEARNED_PATHS)
def test_every_path_of_the_learned_model_equals_the_module(session_model: LearnedSessionModel, path: str) -> None:
    """Each twin of the trained module (numpy tables, the single-session kernel, the device model) gives its
    members' probabilities, their mean and the leaving probabilities within 1e-5 and draws the same responses,
    over whole sessions."""
    assert session_model.ensemble_size > 1, "the members are held to the module too"
    script = _script(session_model)
    expected = _module_trace(session_model, *script)
    members, probs, responses, leave = _path_trace(session_model, path, *script)
    np.testing.assert_allclose(members, expected[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(probs, expected[1], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(responses, expected[2])
    np.testing.assert_allclose(leave, expected[3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(probs, members.mean(axis=-2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("path", LEARNED_PATHS)
def test_a_member_alone_answers_as_that_member_on_every_path(session_model: LearnedSessionModel, path: str) -> None:
    """``member(i)`` is a session model of one member over the ensemble's states, with the fast paths of its own."""
    script = _script(session_model, n=4, plays=6)
    expected, *_ = _module_trace(session_model, *script)
    for index in range(session_model.ensemble_size):
        alone = session_model.member(index)
        assert alone.ensemble_size == 1 and alone.member(0).members == alone.members
        if path == "torch_session":  # the device model's own member, sharing the ensemble's device tables
            device_model = session_model.torch_session_model("cpu")
            device_member = device_model.member(index)
            assert device_member.track_table is device_model.track_table and device_member.ensemble_size == 1
            users, contexts, tracks, _ = script
            first = device_member.response_probs(
                device_member.initial_state(torch.as_tensor(users), contexts), torch.as_tensor(tracks[:, :1])
            )
            np.testing.assert_allclose(first[:, 0].numpy(), expected[:, 0, index], rtol=0, atol=1e-5)
        members, probs, *_ = _path_trace(alone, path, *script)
        # The responses (and so the sessions) follow the member, so compare where the sessions agree: the first play.
        np.testing.assert_allclose(probs[:, 0], expected[:, 0, index], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(members[..., 0, :], probs)
    with pytest.raises(IndexError, match="member"):
        session_model.member(session_model.ensemble_size)


def test_a_member_shares_the_ensembles_states(session_model: LearnedSessionModel) -> None:
    state, rng = _states(session_model, 5, 3, seed=4)
    tracks = rng.integers(0, len(session_model.track_features), (5, 7))
    members = session_model.member_response_probs(state, tracks)
    assert members.shape == (5, 7, session_model.ensemble_size, 3)
    np.testing.assert_array_equal(session_model.response_probs(state, tracks), members.mean(axis=-2))
    for index in range(session_model.ensemble_size):
        alone = session_model.member(index)
        np.testing.assert_allclose(alone.response_probs(state, tracks), members[:, :, index], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(alone.leave_probs(state), session_model.leave_probs(state))
        responses = rng.integers(0, 3, 5)
        for key, value in alone.advance(state, tracks[:, 0], responses).items():
            np.testing.assert_array_equal(value, session_model.advance(state, tracks[:, 0], responses)[key])


def test_an_ensemble_of_identical_members_is_the_single_model() -> None:
    """E copies of one model's head answer what that model answers, on the module and the learned session model."""
    single = random_model(seed=2, history_dim=0)
    torch.manual_seed(2)
    ensemble = UserResponseModel(6, 5, hidden_size=8, mlp_size=16, interaction_size=4, ensemble_size=3).eval()
    trunk = {k: v for k, v in single.state_dict().items() if not k.startswith(("hidden_layer", "output"))}
    ensemble.load_state_dict(trunk, strict=False)
    with torch.no_grad():
        ensemble.hidden_layer.weight.copy_(single.hidden_layer.weight.repeat(3, 1))
        ensemble.hidden_layer.bias.copy_(single.hidden_layer.bias.repeat(3))
        for output in ensemble.output:
            output.load_state_dict(single.output[0].state_dict())
    static = single.static_input(torch.randn(4, 6), torch.randn(4, 8))
    hidden, position = single.initial_hidden(static), torch.tensor([1, 2, 3, 4])
    candidates = torch.randn(4, 9, 5)
    with torch.no_grad():
        expected = torch.softmax(single(static, hidden, position, candidates).double(), -1)
        members = torch.softmax(ensemble(static, hidden, position, candidates, members=True).double(), -1)
        mean = torch.softmax(ensemble(static, hidden, position, candidates).double(), -1)
    torch.testing.assert_close(members, expected[..., None, :].expand_as(members), atol=1e-6, rtol=0)
    torch.testing.assert_close(mean, expected, atol=1e-6, rtol=0)
    rng = np.random.default_rng(0)
    tracks, users = rng.normal(size=(30, 5)).astype(np.float32), rng.normal(size=(10, 6)).astype(np.float32)
    end = SessionEndModel(np.zeros(len(SESSION_END_FEATURES)))
    one, three = (LearnedSessionModel(m, end, tracks, users) for m in (single, ensemble))
    contexts = Contexts(np.zeros(10, np.int8), np.arange(10, dtype=np.int8), np.zeros(10, np.float32))
    candidates = rng.integers(0, 30, (10, 6))
    np.testing.assert_allclose(
        three.response_probs(three.initial_state(np.arange(10), contexts), candidates),
        one.response_probs(one.initial_state(np.arange(10), contexts), candidates),
        rtol=0,
        atol=1e-6,
    )


def independent_ensemble(members: list[UserResponseModel]) -> UserResponseModel:
    """The ensemble of independent members whose member ``e`` is ``members[e]`` (single models of one
    architecture): each member's weights placed in its block of the wider layers."""
    first = members[0]
    size = len(members)
    ensemble = UserResponseModel(
        first.user_dim,
        first.track_dim,
        *first.member_sizes,
        sequential=first.sequential,
        history_dim=first.history_dim,
        ensemble_size=size,
        shared_trunk=False,
    ).eval()
    gate_rows = first.hidden_size  # one gate's rows in a member's GRU
    with torch.no_grad():
        for name, wide in ensemble.named_parameters():
            if name.startswith("output."):
                continue
            wide.zero_()
            for e, member in enumerate(members):
                own = dict(member.named_parameters())[name]
                if name.startswith("gru."):  # gates stacked: member e's rows in each of the three
                    for gate in range(3):
                        rows = own[gate * gate_rows : (gate + 1) * gate_rows]
                        start = gate * ensemble.hidden_size + e * gate_rows
                        target = wide[start : start + gate_rows]
                        if own.dim() == 2 and name.startswith("gru.weight_hh"):
                            target[:, e * gate_rows : (e + 1) * gate_rows] = rows
                        else:
                            target.copy_(rows)
                    continue
                out = own.shape[0]
                if own.dim() == 1:
                    wide[e * out : (e + 1) * out] = own
                elif wide.shape[1] == own.shape[1]:  # reads inputs all members share
                    wide[e * out : (e + 1) * out] = own
                else:  # reads the member's own units
                    width = own.shape[1]
                    wide[e * out : (e + 1) * out, e * width : (e + 1) * width] = own
            for e, member in enumerate(members):
                ensemble.output[e].load_state_dict(member.output[0].state_dict())
    return ensemble


@pytest.mark.parametrize("sequential", [True, False])
def test_independent_members_answer_as_the_single_models_they_are_made_of(sequential: bool) -> None:
    """Member e of an independent ensemble is exactly a single model: on the module (scoring,
    teacher-forced plays), on the numpy session model and on its torch path."""
    singles = [random_model(seed=seed, sequential=sequential) for seed in (3, 4, 5)]
    ensemble = independent_ensemble(singles)
    for parameter, blocks in member_blocks(ensemble):
        assert ((parameter != 0) <= (blocks > 0)).all(), "the assembly keeps every block-crossing weight zero"
    b, k, t = 4, 9, 3
    static = singles[0].static_input(torch.randn(b, 6), torch.randn(b, 8))
    features, responses, history = torch.randn(b, t, 5), torch.randint(0, 3, (b, t)), torch.randn(b, t, H)
    candidates, familiarity, position = torch.randn(b, k, 5), torch.randn(b, k, H), torch.full((b,), t + 1)
    with torch.no_grad():
        wide = ensemble.encode(static, features, responses, history)[:, -1]
        members = torch.softmax(ensemble(static, wide, position, candidates, familiarity, members=True), -1)
        for e, single in enumerate(singles):
            hidden = single.encode(static, features, responses, history)[:, -1]
            expected = torch.softmax(single(static, hidden, position, candidates, familiarity), -1)
            torch.testing.assert_close(members[:, :, e], expected, atol=1e-6, rtol=0)

    rng = np.random.default_rng(1)
    n_tracks = SMALL_TRUTH.n_tracks
    track_table, users = rng.normal(size=(n_tracks, 5)).astype(np.float32), rng.normal(size=(20, 6)).astype(np.float32)
    end = SessionEndModel(np.zeros(len(SESSION_END_FEATURES)))
    history_table = ListeningHistory.from_sessions(
        SessionTable.from_log(GroundTruthWorld(seed=0, config=SMALL_TRUTH).simulate_logs(50, seed=1), 20), n_tracks
    )
    contexts = Contexts(np.zeros(20, np.int8), np.arange(20, dtype=np.int8) % 24, np.zeros(20, np.float32))
    pools = rng.integers(0, n_tracks, (20, 6))  # 20 sessions: the kernels' block products (MemberBlocks)
    wide_model = LearnedSessionModel(ensemble, end, track_table, users, history=history_table)
    for e, single in enumerate(singles):
        one = LearnedSessionModel(single, end, track_table, users, history=history_table)
        state, wide_state = (
            one.initial_state(np.arange(20), contexts),
            wide_model.initial_state(np.arange(20), contexts),
        )
        for _ in range(3):
            played = rng.integers(0, n_tracks, 20)
            answers = rng.integers(0, 3, 20)
            state, wide_state = one.advance(state, played, answers), wide_model.advance(wide_state, played, answers)
        np.testing.assert_allclose(
            wide_model.member_response_probs(wide_state, pools)[:, :, e], one.response_probs(state, pools), atol=1e-6
        )
        np.testing.assert_allclose(
            wide_model.torch_member_response_probs(wide_state, pools)[:, :, e],
            one.torch_response_probs(state, pools),
            atol=1e-6,
        )


def test_independent_members_score_empty_and_broadcast_batches_as_the_wide_layers() -> None:
    """No sessions, no candidates, and one session's base, query and history serving many: the
    members-first route answers as the single models do."""
    singles = [random_model(seed=seed) for seed in (3, 4)]
    ensemble = independent_ensemble(singles)
    static = singles[0].static_input(torch.randn(1, 6), torch.randn(1, 8))
    with torch.no_grad():
        for b, k in [(0, 4), (3, 0), (0, 0)]:
            base, query = ensemble.static_context(static.expand(b, -1))
            logits = ensemble.score(base, query, torch.randn(b, k, 5), torch.randn(b, k, H), members=True)
            assert logits.shape == (b, k, 2, 3)
        candidates, history = torch.randn(3, 4, 5), torch.randn(1, 1, H)
        base, query = ensemble.static_context(static)  # one session's, for all three
        members = ensemble.score(base, query, candidates, history, members=True)
        for e, single in enumerate(singles):
            own_base, own_query = single.static_context(static)
            expected = single.score(own_base, own_query, candidates, history)
            torch.testing.assert_close(members[:, :, e], expected, atol=1e-6, rtol=0)


def test_independent_members_score_in_chunks_as_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gradients the sessions are scored a few at a time, with them in one batch; every
    logit is the one batch's up to float32 rounding (a product may be rounded differently at
    another row count), whether the chunks divide the sessions or not, with one session's base,
    query, candidates or history broadcast over all, and with no candidates at all."""
    import world_model.user_model as user_model

    ensemble = independent_ensemble([random_model(seed=seed) for seed in (3, 4, 5)])
    generator = torch.Generator().manual_seed(0)
    b, k = 23, 7
    base, query = ensemble.static_context(ensemble.static_input(torch.randn(b, 6), torch.randn(b, 8)))
    candidates, history = torch.randn(b, k, 5, generator=generator), torch.randn(b, k, H, generator=generator)
    cases = [
        (base, query, candidates, history),
        (base[:1], query[:1], candidates, history[:1]),  # one session's context and history for all
        (base, query, candidates[:1], history),  # one pool for all
        (base, query, candidates, None),
        (base, query, candidates[:, :0], history[:, :0]),  # no candidates
    ]
    chunks: list[int] = []
    member_logits = UserResponseModel._member_logits

    def counted(self: UserResponseModel, *args: torch.Tensor | None) -> torch.Tensor:
        chunks.append(1)
        return member_logits(self, *args)

    monkeypatch.setattr(UserResponseModel, "_member_logits", counted)
    monkeypatch.setattr(user_model, "SCORING_CHUNK_ROWS", 3 * k)  # chunks of 3 sessions: 8 of them
    for case in cases:
        chunks.clear()
        one_batch = ensemble.score(*case, members=True).detach()  # with gradients: one batch
        assert len(chunks) == 1
        chunks.clear()
        with torch.no_grad():
            chunked = ensemble.score(*case, members=True)
        assert len(chunks) == (8 if case[2].shape[1] else 1)
        assert chunked.shape == one_batch.shape == (b, case[2].shape[1], 3, 3)
        torch.testing.assert_close(chunked, one_batch, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rows", [0, 1, 3, 40])
def test_member_blocks_multiply_as_the_dense_weight(rows: int) -> None:
    """One row and many, on numpy arrays and on tensors, 1-D, batched and with two leading axes."""
    rng = np.random.default_rng(rows)
    members, width, groups = 3, 4, [5, 2]
    dense = np.zeros((members * width, members * sum(groups)), dtype=np.float32)
    start = 0
    for group in groups:  # member e's block of each group
        for e in range(members):
            dense[e * width : (e + 1) * width, start + e * group : start + (e + 1) * group] = rng.normal(
                size=(width, group)
            )
        start += members * group
    blocks = MemberBlocks(dense, members, groups)
    inputs = rng.normal(size=(rows, members * width)).astype(np.float32)
    np.testing.assert_allclose(inputs @ blocks, inputs @ dense, atol=1e-6)
    if rows:
        np.testing.assert_allclose(inputs[0] @ blocks, inputs[0] @ dense, atol=1e-6)
    np.testing.assert_allclose(inputs[:, None, :] @ blocks, inputs[:, None, :] @ dense, atol=1e-6)
    on_torch = torch.as_tensor(inputs) @ blocks.to("cpu")
    np.testing.assert_allclose(on_torch.numpy(), inputs @ dense, atol=1e-6)


def test_training_keeps_independent_members_apart(log: ListeningLog, features) -> None:
    """Off-block weights start and stay exactly zero; members differ; one shared-trunk config still trains."""
    model, _ = train_user_model(
        log, features.track_features, features.user_features, SMALL_MODEL, progress=False, track_artists=None
    )
    assert not model.shared_trunk and model.hidden_size == 3 * SMALL_MODEL.hidden_size
    masked = member_blocks(model)
    assert len(masked) == 5
    for parameter, blocks in masked:
        assert (parameter[blocks == 0] == 0).all()
        assert (parameter[blocks > 0] != 0).any()
    heads = [output.weight for output in model.output]
    assert not torch.equal(heads[0], heads[1])
    shared, _ = train_user_model(
        log,
        features.track_features,
        features.user_features,
        dataclasses.replace(SMALL_MODEL, shared_trunk=True),
        progress=False,
    )
    assert shared.shared_trunk and shared.hidden_size == SMALL_MODEL.hidden_size and member_blocks(shared) == []


def test_a_shared_trunk_holds_out_the_same_sessions_for_every_member(sessions: SessionTable, features) -> None:
    """The trunk learns from every member's sessions, so member holdout would leak: a shared trunk
    keeps the shared split."""
    config = dataclasses.replace(SMALL_MODEL, shared_trunk=True, max_epochs=1)
    _, report = train_user_model(sessions, features.track_features, features.user_features, config, progress=False)
    split = SessionSplit.of(sessions, config.validation_share, config.test_share, config.seed)
    assert report.sessions["train"] == len(split.train) and report.sessions["validation"] == len(split.validation)


def test_each_member_holds_out_sessions_of_its_own() -> None:
    held_out = member_validation(500, 50, 4, seed=3)
    assert held_out.shape == (500, 4) and held_out.dtype == bool
    np.testing.assert_array_equal(held_out.sum(axis=0), 50)
    assert len({tuple(np.flatnonzero(column)) for column in held_out.T}) == 4, "members hold out different sessions"
    np.testing.assert_array_equal(held_out, member_validation(500, 50, 4, seed=3))
    assert not np.array_equal(held_out, member_validation(500, 50, 4, seed=4))


def test_a_member_learns_nothing_from_its_held_out_sessions(sessions: SessionTable, features) -> None:
    """Rewriting the responses of sessions member 0 holds out leaves member 0's weights as they were
    (one epoch, so that early stopping cannot pick another), while a member that trains on them changes."""
    config = dataclasses.replace(SMALL_MODEL, history=False, max_epochs=1)
    split = SessionSplit.of(sessions, config.validation_share, config.test_share, config.seed)
    pool = np.sort(np.concatenate([split.train, split.validation]))
    held_out = member_validation(len(pool), len(split.validation), config.ensemble_size, config.seed)
    only_first = pool[held_out[:, 0] & ~held_out[:, 1]]
    responses = sessions.responses.copy()
    rewritten = responses[only_first]
    responses[only_first] = np.where(rewritten >= 0, (rewritten + 1) % 3, rewritten)
    changed = dataclasses.replace(sessions, responses=responses)

    def members(table: SessionTable) -> list[torch.Tensor]:
        model, report = train_user_model(table, features.track_features, features.user_features, config, progress=False)
        assert report.best_epoch == 1
        return [output.weight.detach().clone() for output in model.output]

    before, after = members(sessions), members(changed)
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    assert not torch.equal(after[1], before[1])


def test_members_are_validated_on_their_own_held_out_sessions(sessions: SessionTable, features) -> None:
    """The report's validation log-loss is each member's on the sessions it held out, averaged; the
    ensemble's mean on the same sessions (which other members trained on) reads lower."""
    config = dataclasses.replace(SMALL_MODEL, history=False, max_epochs=1)
    model, report = train_user_model(sessions, features.track_features, features.user_features, config, progress=False)
    split = SessionSplit.of(sessions, config.validation_share, config.test_share, config.seed)
    pool = np.sort(np.concatenate([split.train, split.validation]))
    held_out = member_validation(len(pool), len(split.validation), config.ensemble_size, config.seed)
    validation = sessions.take(pool[held_out.any(axis=1)])
    own = held_out[held_out.any(axis=1)]
    probs = logged_response_probs(
        model, validation, features.track_features, features.user_features, shuffled=None, members=True
    )
    mask = validation.play_mask()
    losses = [
        log_loss(probs[rows][mask[rows]][:, member], validation.responses[rows][mask[rows]])
        for member, rows in enumerate(own.T)
    ]
    assert report.validation["logloss"] == pytest.approx(np.mean(losses), rel=1e-9)
    leaked = log_loss(probs.mean(axis=2)[mask], validation.responses[mask])
    assert leaked < report.validation["logloss"]


def test_member_holdout_does_not_touch_an_ensemble_of_one(sessions: SessionTable, features) -> None:
    single = dataclasses.replace(SMALL_MODEL, ensemble_size=1, max_epochs=1)
    models = [
        train_user_model(
            sessions,
            features.track_features,
            features.user_features,
            dataclasses.replace(single, member_holdout=holdout),
            progress=False,
        )
        for holdout in (True, False)
    ]
    (one, one_report), (two, two_report) = models
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert one_report.sessions == two_report.sessions and one_report.validation == two_report.validation


def test_worlds_saved_before_member_holdout_read_as_shared_holdout() -> None:
    payload = WorldConfig().to_dict()
    assert payload["user_model"]["member_holdout"] is True
    del payload["user_model"]["member_holdout"]
    assert WorldConfig.from_dict(payload).user_model.member_holdout is False


def test_an_ensemble_of_one_draws_no_bootstrap() -> None:
    np.testing.assert_array_equal(listener_bootstrap(50, 1, seed=3), np.ones((50, 1), np.float32))
    weights = listener_bootstrap(2000, 5, seed=3)
    assert weights.shape == (2000, 5) and (weights >= 0).all() and weights.mean() == pytest.approx(1.0, abs=0.05)
    assert (weights == 0).mean() == pytest.approx(np.exp(-1.0), abs=0.02), "each member leaves out ~37% of listeners"
    np.testing.assert_array_equal(weights, listener_bootstrap(2000, 5, seed=3))
    assert not np.array_equal(weights[:, 0], weights[:, 1])


def test_the_tensor_path_reaches_the_device_model_through_its_hook(session_model: LearnedSessionModel) -> None:
    assert type(torch_session_model(session_model, "cpu")) is TorchLearnedSessionModel
    no_hook = object()  # any session model without the hook runs on the host
    assert type(torch_session_model(no_hook, "cpu")) is HostSessionModel  # type: ignore[arg-type]


def test_many_candidates_and_sessions_at_once_equal_one_by_one(session_model: LearnedSessionModel) -> None:
    state, rng = _states(session_model, 5, 2, seed=1)
    tracks = rng.integers(0, len(session_model.track_features), (5, 8))
    together = session_model.response_probs(state, tracks)
    for b in range(5):
        single = {key: value[b : b + 1] for key, value in state.items()}
        for k in range(8):
            np.testing.assert_allclose(
                session_model.response_probs(single, tracks[b : b + 1, k : k + 1])[0, 0], together[b, k], atol=1e-9
            )
    np.testing.assert_allclose(together.sum(-1), 1.0, atol=1e-9)
    leave = session_model.leave_probs(state)
    assert leave.shape == (5,) and ((leave >= 0) & (leave <= 1)).all()


def test_models_round_trip(session_model: LearnedSessionModel, tmp_path: Path) -> None:
    save_models(tmp_path / "models", session_model)
    loaded = load_models(tmp_path / "models")
    state, rng = _states(session_model, 4, 2, seed=2)
    loaded_state, _ = _states(loaded, 4, 2, seed=2)
    tracks = rng.integers(0, len(session_model.track_features), (4, 10))
    np.testing.assert_array_equal(
        loaded.member_response_probs(loaded_state, tracks), session_model.member_response_probs(state, tracks)
    )
    assert loaded.ensemble_size == session_model.ensemble_size > 1
    np.testing.assert_array_equal(loaded.leave_probs(loaded_state), session_model.leave_probs(state))
    np.testing.assert_array_equal(loaded.session_end.weights, session_model.session_end.weights)
    assert loaded.feature_stats == session_model.feature_stats


def test_models_errors_name_the_file(session_model: LearnedSessionModel, tmp_path: Path) -> None:
    folder = save_models(tmp_path / "models", session_model)
    with pytest.raises(ArtifactError, match=r"manifest\.json"):
        load_models(tmp_path / "nowhere")
    (folder / "session_end.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"session_end\.json"):
        load_models(folder)
    folder = save_models(tmp_path / "models", session_model)
    (folder / "features.npz").unlink()
    with pytest.raises(ArtifactError, match=r"features\.npz"):
        load_models(folder)
    folder = save_models(tmp_path / "models", session_model)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 999
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version"):
        load_models(folder)


@pytest.mark.parametrize("version", [1, 2])
def test_models_of_earlier_formats_are_refused(
    session_model: LearnedSessionModel, tmp_path: Path, version: int
) -> None:
    """A version-1 (one model) or version-2 (shared-trunk ensemble) save is refused with a message
    to rebuild, not misread."""
    folder = save_models(tmp_path / "models", session_model)
    config = json.loads((folder / "manifest.json").read_text())["config"]
    write_manifest(folder, MODELS_FORMAT, version, config)
    with pytest.raises(ArtifactError, match=rf"format version {version}, this musicenv reads version 5; rebuild"):
        load_models(folder)


def test_a_history_model_needs_its_history(session_model: LearnedSessionModel) -> None:
    with pytest.raises(ValueError, match="history"):
        LearnedSessionModel(
            session_model.response_model,
            session_model.session_end,
            session_model.track_features,
            session_model.user_features,
        )


# --- session end ---------------------------------------------------------------------------------------


def test_session_end_model(sessions: SessionTable, tmp_path: Path) -> None:
    model = SessionEndModel.fit(sessions)
    assert model.weights.shape == (len(SESSION_END_FEATURES),)
    rng = np.random.default_rng(0)
    n = 50
    counts = rng.integers(0, 5, (n, 3))
    position = counts.sum(1)
    skip_run = np.minimum(rng.integers(0, 8, n), counts[:, 0])
    last = np.where(skip_run > 0, 0, rng.integers(1, 3, n))
    expected = 1 / (1 + np.exp(-(session_end_features(position, skip_run, last, counts) @ model.weights)))
    np.testing.assert_allclose(model.leave_probs(position, skip_run, last, counts), expected, atol=1e-12)
    model.save(tmp_path / "end.json")
    np.testing.assert_array_equal(SessionEndModel.load(tmp_path / "end.json").weights, model.weights)
    # Runs of skips make leaving likelier (the ground truth's hazard rises with them).
    base = dict(position=np.array([8, 8]), last_response=np.array([0, 0]), response_counts=np.array([[4, 2, 2]] * 2))
    run = model.leave_probs(skip_run=np.array([1, 4]), **base)
    assert run[1] > run[0]
    with pytest.raises(ValueError, match="features"):
        SessionEndModel.from_dict({"features": ["x"], "weights": [0.0]})


# --- metrics ----------------------------------------------------------------------------------------------


def test_metrics() -> None:
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 20_000)
    responses = (rng.random(20_000)[:, None] >= probs.cumsum(1)[:, :2]).sum(1)
    assert expected_calibration_error(probs, responses) < 0.02
    assert expected_calibration_error(np.roll(probs, 1, axis=1), responses) > 0.1
    assert log_loss(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0])) == pytest.approx(np.log(3))


def test_leave_probs_after_a_play_skip_the_gru_step_bit_for_bit(session_model: LearnedSessionModel) -> None:
    """The learned model's leaving after a play, read from the counters alone, is that of the advanced state;
    a model without the shortcut is advanced."""
    state, rng = _states(session_model, 300, 7)
    tracks, responses = rng.integers(0, len(session_model.track_features), 300), rng.integers(0, 3, 300)
    expected = session_model.leave_probs(session_model.advance(state, tracks, responses))
    assert np.array_equal(session_model.leave_probs_after(state, tracks, responses), expected)
    assert np.array_equal(leave_probs_after(session_model, state, tracks, responses), expected)
    without = SimpleNamespace(advance=session_model.advance, leave_probs=session_model.leave_probs)
    assert np.array_equal(leave_probs_after(without, state, tracks, responses), expected)


def test_single_session_kernel_replays_the_batched_calls_bit_for_bit(session_model: LearnedSessionModel) -> None:
    """The single env's fused kernel gives exactly response_probs + advance + leave_probs on a batch of one."""
    rng = np.random.default_rng(7)
    history = session_model.history
    for session in range(12):
        user = int(history.keys[rng.integers(0, len(history.keys))] // history.n_tracks)
        contexts = Contexts(
            np.array([rng.integers(0, 6)], np.int8), np.array([rng.integers(0, 24)], np.int8), np.zeros(1, np.float32)
        )
        state = session_model.initial_state(np.array([user]), contexts)
        kernel, batched = session_model.single_session(state), BatchedSingleSession(session_model, state)
        played = history.keys[history.keys // history.n_tracks == user] % history.n_tracks
        # Past the MSSD's cap (positions the session-end tables clamp), once past the kernel's position table.
        for position in range(260 if session == 0 else 25):
            # Half the plays are tracks the listener heard before, so the history term is exercised.
            track = int(played[position % len(played)] if position % 2 else rng.integers(0, history.n_tracks))
            uniform = float(rng.random())
            assert kernel.play(track, uniform) == batched.play(track, uniform), (session, position)
            assert kernel.leave_prob() == batched.leave_prob(), (session, position)
        for key, value in batched.state.items():
            np.testing.assert_array_equal(kernel.state[key], value, err_msg=key)
    with pytest.raises(ValueError, match="one session"):
        session_model.single_session(session_model.initial_state(np.array([0, 1]), Contexts(*(np.zeros(2),) * 3)))


def test_scalar_leave_probability_equals_the_batched_one(sessions: SessionTable) -> None:
    model = SessionEndModel.fit(sessions)
    rng = np.random.default_rng(0)
    position, skip_run = rng.integers(0, 40, 200), rng.integers(0, 40, 200)
    last, counts = rng.integers(-1, 3, 200), rng.integers(0, 15, (200, 3))
    batched = model.leave_probs(position, skip_run, last, counts)
    scalar = [
        model.leave_prob(*map(int, (p, s, r)), c.tolist()) for p, s, r, c in zip(position, skip_run, last, counts)
    ]
    assert scalar == batched.tolist()  # bit for bit
    extreme = SessionEndModel(np.full(len(SESSION_END_FEATURES), -1e3))
    assert extreme.leave_prob(5, 0, 2, [0, 0, 5]) == 0.0  # exp overflow reads as probability 0, as expit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("member_holdout", "no"),
        ("member_holdout", 1),
        ("validation_share", float("nan")),
        ("validation_share", -0.1),
        ("test_share", float("inf")),
        ("test_share", 1.0),
        ("test_share", "0.1"),
        ("test_share", 0.95),
    ],
)
def test_holdout_settings_out_of_range_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        UserModelConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "5"])
def test_an_ensemble_size_that_is_not_a_positive_whole_number_is_refused(size: object) -> None:
    with pytest.raises(ValueError, match="ensemble_size"):
        UserModelConfig(ensemble_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (lambda: UserModelConfig(learning_rate=float("nan")), "UserModelConfig.learning_rate"),
        (lambda: UserModelConfig(learning_rate=0.0), "UserModelConfig.learning_rate"),
        (lambda: UserModelConfig(weight_decay=-1e-4), "UserModelConfig.weight_decay"),
        (lambda: UserModelConfig(max_epochs=2.5), "UserModelConfig.max_epochs"),
        (lambda: UserModelConfig(hidden_size=0), "UserModelConfig.hidden_size"),
        (lambda: UserModelConfig(patience=-1), "UserModelConfig.patience"),
        (lambda: RetrievalConfig(alpha=float("inf")), "RetrievalConfig.alpha"),
        (lambda: RetrievalConfig(regularization=-1.0), "RetrievalConfig.regularization"),
        (lambda: RetrievalConfig(skip_weight=float("nan")), "weights must be finite"),
        (lambda: RetrievalConfig(exploration_share=1.5), "RetrievalConfig.exploration_share"),
    ],
)
def test_world_settings_out_of_range_are_refused_by_name(config, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        config()
    assert RetrievalConfig(skip_weight=-0.5).skip_weight == -0.5  # a skip as a confident dislike is allowed
