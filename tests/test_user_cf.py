"""User-user collaborative filtering: Pearson neighbours through Annoy, Resnick scores, the pool source."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_retrieval import SMALL, taste_log

from world_model.retrieval import Retrieval
from world_model.user_cf import UserCFPool, UserNeighbours


@pytest.fixture(scope="module")
def plays() -> sp.csr_matrix:
    """Play counts of 150 listeners in 3 taste groups over 400 tracks (each group favours its own third)."""
    rng = np.random.default_rng(0)
    group = np.arange(150) % 3
    favoured = (np.arange(400)[None, :] * 3 // 400) == group[:, None]
    counts = rng.poisson(np.where(favoured, 0.3, 0.03))
    return sp.csr_matrix(counts.astype(np.float32))


@pytest.fixture(scope="module")
def neighbours(plays: sp.csr_matrix) -> UserNeighbours:
    return UserNeighbours.fit(plays, n_neighbours=10, dim=64, seed=0)


def test_weights_are_exact_pearson_correlations(plays: sp.csr_matrix, neighbours: UserNeighbours) -> None:
    exact = np.corrcoef(plays.toarray())
    for user in range(0, 150, 17):
        found = neighbours.neighbours[user]
        np.testing.assert_allclose(neighbours.correlations[user], exact[user, found], rtol=1e-4, atol=1e-6)
        assert user not in found and np.all(np.diff(neighbours.correlations[user]) <= 0)


def test_annoy_finds_most_of_the_exact_pearson_neighbours(plays: sp.csr_matrix, neighbours: UserNeighbours) -> None:
    exact = np.corrcoef(plays.toarray())
    np.fill_diagonal(exact, -np.inf)
    best = np.argsort(-exact, axis=1)[:, :10]
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(neighbours.neighbours, best)])
    assert recall > 0.7
    group = np.arange(150) % 3
    assert np.mean(group[neighbours.neighbours] == group[:, None]) > 0.95


def test_scores_follow_resnicks_formula(plays: sp.csr_matrix, neighbours: UserNeighbours) -> None:
    dense = plays.toarray().astype(np.float64)
    means = dense.mean(axis=1)
    user = 4
    found, rho = neighbours.neighbours[user], neighbours.correlations[user].astype(np.float64)
    expected = (rho[:, None] * (dense[found] - means[found, None])).sum(axis=0) / np.abs(rho).sum()
    np.testing.assert_allclose(neighbours.scores(np.array([user]))[0], expected, rtol=1e-4, atol=1e-6)


def test_silent_listener_has_no_neighbours_and_scores_zero() -> None:
    counts = sp.csr_matrix(np.vstack([np.zeros(50), np.random.default_rng(1).poisson(0.5, size=(20, 50))]))
    fitted = UserNeighbours.fit(counts, n_neighbours=5, dim=16)
    assert np.all(fitted.neighbours[0] == -1)
    assert np.all(fitted.scores(np.array([0])) == 0)


def test_pool_ranks_by_score_without_blocked_or_explicit_tracks(neighbours: UserNeighbours) -> None:
    blocked = sp.lil_matrix((150, 400), dtype=np.int8)
    scores = neighbours.scores(np.array([0]))[0]
    best = int(np.argmax(scores))
    blocked[0, best] = 1
    explicit = np.arange(400) % 7 == 0
    pool = UserCFPool(neighbours, explicit, sp.csr_matrix(blocked), np.arange(400))
    plain, filtered = pool.pool(0, 30), pool.pool(0, 30, explicit_filter=True)
    assert best not in plain and len(np.unique(plain)) == 30
    assert np.all(np.diff(scores[plain]) <= 1e-6)
    assert not explicit[filtered].any()


def test_retrieval_serves_user_cf_pools_that_reach_later_plays() -> None:
    log = taste_log(sessions=4)
    als = Retrieval.fit(log, SMALL)
    user_cf = Retrieval.fit(log, dataclasses.replace(SMALL, source="user_cf"))
    assert user_cf.config.source == "user_cf"
    users = np.arange(user_cf.n_users)
    pools = user_cf.candidate_pools(users, 50)
    np.testing.assert_array_equal(pools, als.with_source("user_cf").candidate_pools(users, 50))
    # The listener's own completed plays (which a CF pool should reach through the neighbours).
    completed = log.plays[log.plays["response"] == "complete"]
    track_of = pd.Index(log.tracks["track_id"])
    hits = [
        np.isin(track_of.get_indexer(completed["track_id"][completed["user_id"] == uid]), pools[u]).mean()
        for u, uid in enumerate(user_cf.listener_ids)
    ]
    assert np.mean(hits) > 2 * 50 / log.n_tracks  # far above a random pool's share


def test_saved_user_cf_retrieval_loads_with_the_same_pools(tmp_path) -> None:
    fitted = Retrieval.fit(taste_log(n_users=40, sessions=2), dataclasses.replace(SMALL, source="user_cf"))
    fitted.save(tmp_path / "retrieval")
    loaded = Retrieval.load(tmp_path / "retrieval")
    users = np.arange(fitted.n_users)
    np.testing.assert_array_equal(loaded.candidate_pools(users, 30), fitted.candidate_pools(users, 30))
