"""Tests of the retrieval stage: interactions, ALS, the Annoy index, candidate pools, artifacts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicenv.artifacts import MANIFEST_CHECKSUM, ArtifactError, manifest_digest
from musicenv.data import ListeningLog
from musicenv.groundtruth import GroundTruthWorld
from musicenv.world import Contexts
from world_model.ann_index import TrackIndex, exact_top_k, norm_bands, top_k
from world_model.candidates import PoolCache
from world_model.embeddings import fit_als
from world_model.interactions import confidence_matrix, interaction_matrix
from world_model.projector import METADATA_HEADER, export_projector
from world_model.retrieval import FORMAT_VERSION, Retrieval, RetrievalConfig

SMALL = RetrievalConfig(factors=8, iterations=10, n_bands=4, seed=3)
"""Small and fast; the test catalogues (300 tracks) are ranked exactly unless ``exact_max_tracks=0``."""


def taste_log(
    n_users: int = 120,
    n_tracks: int = 300,
    sessions: int = 3,
    length: int = 15,
    seed: int = 0,
    blocks: pd.DataFrame | None = None,
    unplayed: int = 0,
) -> ListeningLog:
    """Listeners who pick and complete tracks close to their latent taste (4 dimensions).

    ``unplayed`` tracks are added to the catalogue that nobody plays.
    """
    rng = np.random.default_rng(seed)
    users, tracks = rng.normal(size=(n_users, 4)), rng.normal(size=(n_tracks, 4))
    affinity = users @ tracks.T
    rows = []
    for u in range(n_users):
        weights = np.exp(affinity[u] - affinity[u].max())
        for s in range(sessions):
            chosen = rng.choice(n_tracks, size=length, replace=False, p=weights / weights.sum())
            complete = rng.random(length) < 1 / (1 + np.exp(1.0 - affinity[u, chosen]))
            response = np.where(complete, 2, np.where(rng.random(length) < 0.3, 1, 0))
            for position, (track, code) in enumerate(zip(chosen, response), start=1):
                rows.append((f"s{u}-{s}", f"u{u:03d}", position, f"t{track:03d}", int(code), f"2018-07-{s + 1:02d}"))
    plays = pd.DataFrame(rows, columns=["session_id", "user_id", "position", "track_id", "response", "date"])
    plays["context_type"], plays["hour"] = "radio", 12
    n_catalogue = n_tracks + unplayed
    catalogue = pd.DataFrame(
        {
            "track_id": [f"t{i:03d}" for i in range(n_catalogue)],
            "artist_id": [f"a{i % 30}" for i in range(n_catalogue)],
            "explicit": np.arange(n_catalogue) % 5 == 0,
            "genre": np.arange(n_catalogue) % 3,
        }
    )
    return ListeningLog.from_frames(plays, catalogue, blocks)


@pytest.fixture(scope="module")
def blocked_log() -> ListeningLog:
    blocks = pd.DataFrame(
        {
            "user_id": ["u000", "u000", "u001", "nobody"],
            "track_id": ["t007", None, "t001", "t002"],
            "artist_id": [None, "a4", None, None],
        }
    )
    return taste_log(blocks=blocks)


@pytest.fixture(scope="module", params=["annoy", "exact"])
def retrieval(blocked_log: ListeningLog, request: pytest.FixtureRequest) -> Retrieval:
    """The same fit with pools ranked through the Annoy index, and exactly."""
    return Retrieval.fit(
        blocked_log, dataclasses.replace(SMALL, exact_max_tracks=0 if request.param == "annoy" else 10**6)
    )


def tiny_log(plays: list[tuple[str, str, str, str]], n_tracks: int = 3) -> ListeningLog:
    """Plays as (session, user or None, track, response) on ``date`` 2018-07-15, in order."""
    frame = pd.DataFrame(plays, columns=["session_id", "user_id", "track_id", "response"])
    frame["position"] = frame.groupby("session_id").cumcount() + 1
    frame["context_type"], frame["hour"], frame["date"] = "radio", 9, "2018-07-15"
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(n_tracks)], "artist_id": "a", "explicit": False})
    return ListeningLog.from_frames(frame, tracks)


# --- interactions ---------------------------------------------------------------------------------


def test_interaction_weights_sum_by_response_and_sessions_stand_in_for_users() -> None:
    log = tiny_log(
        [
            ("s1", "u1", "t0", "complete"),
            ("s1", "u1", "t1", "skip"),
            ("s2", "u1", "t0", "listen"),
            ("s3", None, "t2", "complete"),
        ]
    )
    matrix, ids = interaction_matrix(log, response_weights=(-0.5, 0.5, 1.0))
    assert ids.tolist() == ["s3", "u1"]
    assert sp.issparse(matrix) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix.toarray(), [[0, 0, 1.0], [1.5, -0.5, 0]])
    matrix, _ = interaction_matrix(log, response_weights=(0.0, 0.5, 1.0))
    assert matrix.nnz == 2, "a pair whose plays weigh 0 is left unobserved, not stored as 0"


def test_confidence_follows_hu_et_al_signed_for_implicit() -> None:
    weights = sp.csr_matrix(np.array([[1.5, -0.5, 0.0]], dtype=np.float32))
    confidence = confidence_matrix(weights, alpha=10.0)
    # +(1 + alpha w) for liked pairs, -(1 + alpha |w|) for disliked ones (implicit: preference 0).
    np.testing.assert_allclose(confidence.toarray(), [[16.0, -6.0, 0.0]])


def test_recency_half_life_halves_weight_per_half_life() -> None:
    frame = pd.DataFrame(
        {
            "session_id": ["a", "b"],
            "user_id": ["u", "u"],
            "position": [1, 1],
            "track_id": ["t0", "t1"],
            "response": ["complete", "complete"],
            "context_type": "radio",
            "hour": 1,
            "date": ["2018-07-01", "2018-07-15"],
        }
    )
    log = ListeningLog.from_frames(frame)
    matrix, _ = interaction_matrix(log, (0.0, 0.5, 1.0), half_life_days=7.0)
    np.testing.assert_allclose(matrix.toarray(), [[0.25, 1.0]])


# --- ALS ------------------------------------------------------------------------------------------


def test_als_is_deterministic_for_a_seed_whatever_the_threads() -> None:
    matrix, _ = interaction_matrix(taste_log(n_users=60, n_tracks=100, sessions=2))
    confidence = confidence_matrix(matrix, alpha=10.0)
    first = fit_als(confidence, factors=8, regularization=0.05, iterations=5, seed=7, num_threads=1)
    second = fit_als(confidence, factors=8, regularization=0.05, iterations=5, seed=7, num_threads=2)
    other = fit_als(confidence, factors=8, regularization=0.05, iterations=5, seed=8, num_threads=2)
    for a, b in zip(first, second):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_unplayed_tracks_get_zero_vectors_and_fit_is_deterministic() -> None:
    log = taste_log(unplayed=100)
    first = Retrieval.fit(log, SMALL)
    assert np.all(first.track_vectors[300:] == 0), "tracks nobody played have zero vectors"
    second = Retrieval.fit(log, SMALL)
    np.testing.assert_array_equal(first.user_vectors, second.user_vectors)
    np.testing.assert_array_equal(first.track_vectors, second.track_vectors)
    np.testing.assert_array_equal(first.candidate_pools(np.arange(20), 50), second.candidate_pools(np.arange(20), 50))


def test_cuda_without_a_cuda_build_is_a_clear_error() -> None:
    import implicit.gpu

    if implicit.gpu.HAS_CUDA:
        pytest.skip("implicit has CUDA here; the GPU path is exercised by the benchmark")
    with pytest.raises(RuntimeError, match="CUDA"):
        Retrieval.fit(taste_log(n_users=10, n_tracks=20, sessions=1), SMALL, device="cuda")


# --- Annoy ----------------------------------------------------------------------------------------


def test_annoy_recall_against_exact_inner_product() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 16)).astype(np.float32) * rng.lognormal(0, 0.3, (2000, 1)).astype(np.float32)
    queries = rng.normal(size=(100, 16)).astype(np.float32)
    config = RetrievalConfig()
    index = TrackIndex.build(items, config.n_trees, seed=0, search_k=config.search_k, n_bands=config.n_bands)
    exact = exact_top_k(queries, items, 100)
    scores = queries @ items.T
    assert np.all(np.diff(np.take_along_axis(scores, exact, axis=1), axis=1) <= 0), "exact top-k is best first"
    recall = np.mean([len(np.intersect1d(index.query(q, 100), e)) / 100 for q, e in zip(queries, exact)])
    assert recall >= 0.95
    found = index.query(queries[0], 100)
    assert np.all(np.diff(scores[0, found]) <= 1e-5), "Annoy's 'dot' ranks by inner product"


def test_norm_bands_bound_size_and_norm_ratio() -> None:
    norms = np.concatenate([np.exp(np.random.default_rng(0).normal(0, 1.5, 1000)), np.zeros(7)])
    bands = norm_bands(norms, n_bands=4, band_ratio=2.0)
    members = np.concatenate(bands)
    assert sorted(members.tolist()) == list(range(1000)), "every non-zero track in exactly one band"
    assert all(len(band) <= 250 for band in bands)
    assert all(norms[band].max() <= 2.0 * norms[band].min() for band in bands)
    assert np.all(np.diff([norms[band].max() for band in bands]) < 0), "largest norms first"


def test_index_with_zero_vectors_ranks_the_whole_catalogue_exactly() -> None:
    rng = np.random.default_rng(1)
    items = rng.normal(size=(300, 8)).astype(np.float32) * rng.lognormal(0, 1, (300, 1)).astype(np.float32)
    items[::10] = 0  # never-played tracks: score 0 for every query
    index = TrackIndex.build(items, n_trees=5, seed=0, search_k=100_000, n_bands=4)
    assert len(index.zero_items) == 30 and len(index.bands) >= 4
    for query in rng.normal(size=(5, 8)).astype(np.float32):
        scores = items @ query
        np.testing.assert_array_equal(index.query(query, 300), top_k(scores, 300))
        found = index.query(query, 50)
        np.testing.assert_array_equal(found, top_k(scores, 50))


def test_top_k_is_a_total_order() -> None:
    scores = np.array([0.5, 0.0, 2.0, 0.0, 0.5, -1.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(top_k(scores, 7), [2, 0, 4, 1, 3, 6, 5])
    for k in range(1, 8):
        np.testing.assert_array_equal(top_k(scores, k), top_k(scores, 7)[:k])


# --- pools ----------------------------------------------------------------------------------------


def test_pools_exclude_blocks_and_explicit_and_refill(retrieval: Retrieval, blocked_log: ListeningLog) -> None:
    tracks = blocked_log.tracks
    u0, u1 = retrieval.user_index(["u000", "u001"])
    artist_a4 = np.flatnonzero(tracks["artist_id"].to_numpy() == "a4")
    blocked = {int(np.flatnonzero(tracks["track_id"].to_numpy() == "t007")[0]), *artist_a4.tolist()}
    assert set(retrieval.blocked[u0].indices) == blocked
    assert set(retrieval.blocked[u1].indices) == {1}

    pools = retrieval.candidate_pools(np.array([u0, u1]), 100, explicit_filter=True)
    assert pools.shape == (2, 100) and pools.dtype == np.int64
    assert np.all(pools >= 0), "refilled to M from further down the ranking"
    assert not set(pools[0]) & blocked
    assert 1 not in pools[1]
    assert not retrieval.explicit[pools].any()
    for pool in pools:
        assert len(np.unique(pool)) == 100

    # The pool is the unfiltered ranking minus the removed tracks, in the same order.
    ranked = retrieval.candidate_pools(np.array([u0]), 300)[0]
    allowed = [t for t in ranked if t not in blocked and not retrieval.explicit[t]]
    np.testing.assert_array_equal(pools[0], allowed[:100])


def test_pools_are_best_first_and_match_the_exact_ranking(retrieval: Retrieval) -> None:
    users = np.arange(30)
    pools = retrieval.candidate_pools(users, 50)
    scores = retrieval.scores(users, pools)
    assert np.all(np.diff(scores, axis=1) <= 1e-5)
    unblocked = np.diff(retrieval.blocked.indptr)[users] == 0
    exact = exact_top_k(retrieval.user_vectors[users], retrieval.track_vectors, 50)
    overlap = np.mean([len(np.intersect1d(p, e)) / 50 for p, e in zip(pools[unblocked], exact[unblocked])])
    assert overlap >= 0.95


def test_pools_pad_only_when_the_catalogue_runs_out(blocked_log: ListeningLog, retrieval: Retrieval) -> None:
    u0 = retrieval.user_index(["u000"])[0]
    n_allowed = retrieval.n_tracks - retrieval.blocked[u0].nnz
    pool = retrieval.candidate_pools(np.array([u0]), retrieval.n_tracks + 10)[0]
    assert (pool >= 0).sum() == n_allowed
    assert np.all(pool[n_allowed:] == -1) and np.all(pool[:n_allowed] >= 0)
    assert len(np.unique(pool[:n_allowed])) == n_allowed

    small = Retrieval.fit(taste_log(n_users=20, n_tracks=40, sessions=1, length=10), SMALL)
    pools = small.candidate_pools(np.arange(small.n_users), 100, explicit_filter=True)
    n_clean = int((~small.explicit).sum())
    assert np.all((pools >= 0).sum(axis=1) == n_clean)
    assert np.all(pools[:, n_clean:] == -1)


def test_batch_equals_one_by_one(retrieval: Retrieval) -> None:
    users = np.array([5, 0, 17, 5, 1, 99])
    for explicit_filter in (False, True):
        batch = retrieval.candidate_pools(users, 100, explicit_filter=explicit_filter)
        single = np.stack([retrieval.pool.pool(int(u), 100, explicit_filter) for u in users])
        np.testing.assert_array_equal(batch, single)
    assert retrieval.candidate_pools(np.array([], dtype=np.int64), 100).shape == (0, 100)
    with pytest.raises(IndexError):
        retrieval.candidate_pools(np.array([retrieval.n_users]), 10)


def test_exploration_share_adds_unheard_popular_tracks(retrieval: Retrieval) -> None:
    pool = retrieval.als_pool(exploration_share=0.2, seed=1)
    users = np.array([0, 1, 2, 3])
    pools = pool.pools(users, 50, explicit_filter=True)
    plain = retrieval.candidate_pools(users, 50, explicit_filter=True)
    np.testing.assert_array_equal(pools[:, :40], plain[:, :40])
    for user, row in zip(users, pools):
        explore = row[40:]
        assert np.all(explore >= 0) and len(np.unique(row)) == 50
        assert not set(explore) & set(retrieval.heard[user].indices)
        assert not set(explore) & set(retrieval.blocked[user].indices)
        assert not retrieval.explicit[explore].any()
        assert np.all(retrieval.popularity[explore] > 0)
    np.testing.assert_array_equal(pools, pool.pools(users, 50, explicit_filter=True))


def test_user_without_taste_gets_popular_tracks() -> None:
    log = tiny_log(
        [("s1", "u1", "t0", "complete"), ("s1", "u1", "t1", "complete"), ("s2", "u2", "t2", "skip")], n_tracks=5
    )
    retrieval = Retrieval.fit(log, dataclasses.replace(SMALL, skip_weight=0.0))
    u2 = retrieval.user_index(["u2"])[0]
    assert not retrieval.user_vectors[u2].any(), "with skips weighing 0, u2 has no evidence"
    pool = retrieval.candidate_pools(np.array([u2]), 5)[0]
    assert set(pool[:3]) == {0, 1, 2}, "played tracks first, by play count"
    with pytest.raises(KeyError, match="nobody"):
        retrieval.user_index(["nobody"])


def test_als_on_groundtruth_logs_recovers_taste() -> None:
    """Pools overlap the tracks the ground truth rates highest far more than chance or popularity."""
    world = GroundTruthWorld(seed=0)
    retrieval = Retrieval.fit(world.simulate_logs(10_000, seed=0), RetrievalConfig())
    users = retrieval.listener_ids[:: max(1, retrieval.n_users // 200)]
    n = len(users)
    contexts = Contexts(np.zeros(n, np.int8), np.full(n, 12, np.int8), np.zeros(n, np.float32))
    state = world.session_model.initial_state(world.user_index(users), contexts)
    candidates = np.tile(world.track_index(retrieval.track_ids), (n, 1))
    complete = world.session_model.response_probs(state, candidates)[:, :, 2]
    best = np.argsort(-complete, axis=1)[:, :100]
    pools = retrieval.candidate_pools(retrieval.user_index(users), 100)
    overlap = np.mean([len(np.intersect1d(pool, top)) / 100 for pool, top in zip(pools, best)])
    popular = np.argsort(-retrieval.popularity)[:100]
    popular_overlap = np.mean([len(np.intersect1d(popular, top)) / 100 for top in best])
    chance = 100 / retrieval.n_tracks
    assert overlap > 10 * chance and overlap > 1.5 * popular_overlap, (overlap, popular_overlap, chance)


# --- artifacts ------------------------------------------------------------------------------------


def test_save_load_round_trip(retrieval: Retrieval, tmp_path) -> None:
    retrieval.save(tmp_path / "retrieval")
    loaded = Retrieval.load(tmp_path / "retrieval")
    assert loaded.config == retrieval.config
    np.testing.assert_array_equal(loaded.listener_ids, retrieval.listener_ids)
    np.testing.assert_array_equal(loaded.track_ids, retrieval.track_ids)
    np.testing.assert_array_equal(loaded.user_vectors, retrieval.user_vectors)
    np.testing.assert_array_equal(loaded.track_vectors, retrieval.track_vectors)
    assert (loaded.blocked != retrieval.blocked).nnz == 0 and (loaded.heard != retrieval.heard).nnz == 0
    users = np.arange(retrieval.n_users)
    for explicit_filter in (False, True):
        np.testing.assert_array_equal(
            loaded.candidate_pools(users, 100, explicit_filter), retrieval.candidate_pools(users, 100, explicit_filter)
        )
    # Saving again over the same folder (the index is served from it) keeps both usable.
    loaded.save(tmp_path / "retrieval")
    np.testing.assert_array_equal(
        Retrieval.load(tmp_path / "retrieval").candidate_pools(users, 10), loaded.candidate_pools(users, 10)
    )


def test_an_index_of_another_shape_is_refused_on_load(tmp_path) -> None:
    items = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    TrackIndex.build(items, n_trees=2, seed=0).save(tmp_path / "index")
    assert TrackIndex.load(tmp_path / "index", expected=(40, 4)).n_items == 40
    for wrong in ((41, 4), (40, 5)):
        with pytest.raises(ValueError, match="indexes 40 tracks of 4 dimensions"):
            TrackIndex.load(tmp_path / "index", expected=wrong)


@pytest.mark.parametrize("name", ["vectors.npz", "index/bands.npz", "index/band_000.ann"])
def test_corrupted_file_is_an_artifact_error(retrieval: Retrieval, tmp_path, name: str) -> None:
    folder = tmp_path / "retrieval"
    retrieval.save(folder)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=name):
        Retrieval.load(folder)


def test_wrong_format_version_and_mismatched_shapes_are_artifact_errors(retrieval: Retrieval, tmp_path) -> None:
    folder = tmp_path / "retrieval"
    retrieval.save(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactError, match="format version"):
        Retrieval.load(folder)
    manifest["config"]["n_tracks"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"manifest\.json: damaged or edited"):  # its own checksum
        Retrieval.load(folder)
    # Re-signed (as a writer with a bug would): the shapes are still checked against the contents.
    manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="shape"):
        Retrieval.load(folder)


# --- projector ------------------------------------------------------------------------------------


def test_projector_export_has_vectors_and_metadata(retrieval: Retrieval, blocked_log: ListeningLog, tmp_path) -> None:
    logdir = export_projector(
        retrieval, blocked_log.tracks, tmp_path / "tb", max_tracks=50, genre_names=["x", "y", "z"]
    )
    metadata = list(logdir.rglob("metadata.tsv"))
    tensors = list(logdir.rglob("tensors.tsv"))
    assert len(metadata) == 1 and len(tensors) == 1 and (logdir / "projector_config.pbtxt").is_file()
    lines = metadata[0].read_text().splitlines()
    assert lines[0].split("\t") == METADATA_HEADER and len(lines) == 51
    most_played = int(np.argmax(retrieval.popularity))
    first = lines[1].split("\t")
    assert first[0] == retrieval.track_ids[most_played] and first[2] in {"x", "y", "z"}
    assert len(tensors[0].read_text().splitlines()) == 50
    with pytest.raises(ValueError, match="same row order"):
        export_projector(retrieval, blocked_log.tracks.iloc[::-1], tmp_path / "tb2")


def test_pool_cache_serves_what_the_pools_build_and_stays_bounded(retrieval: Retrieval) -> None:
    source = retrieval.pools
    cache = PoolCache(source, max_bytes=4 * 20 * 6)  # room for six pools of 20 tracks
    users = np.array([5, 0, 17, 5, 1, 99, 3, 8, 5])
    for explicit_filter in (False, True):
        for _ in range(2):  # cold, then (partly) warm
            np.testing.assert_array_equal(
                cache.pools(users, 20, explicit_filter), source.pools(users, 20, explicit_filter)
            )
            assert cache._bytes <= cache.max_bytes
    assert cache._bytes == sum(row.nbytes for row in cache._rows.values())
    np.testing.assert_array_equal(cache.pool(17, 20), source.pool(17, 20))
    cache.clear()
    assert cache._bytes == 0 and not cache._rows
    with pytest.raises(IndexError):
        cache.pools(np.array([retrieval.n_users]), 10)
    with pytest.raises(ValueError, match="size"):
        cache.pools(np.array([1]), -1)
    with pytest.raises(ValueError, match="max_bytes"):
        PoolCache(source, max_bytes=-1)
