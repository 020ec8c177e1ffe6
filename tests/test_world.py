"""The learned world: building, the World protocol, save/load round trips, errors, the cache, MSSD input.

Small ground-truth worlds and tiny configurations keep the file to seconds; the default world's
figures are measured by ``benchmarks/user_model.py`` and ``eval.py``, not here.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from musicenv.artifacts import ArtifactError
from musicenv.data import load_mssd
from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
from musicenv.world import World, sample_session_each
from world_model.retrieval import RetrievalConfig
from world_model.user_model import UserModelConfig
from world_model.world import (
    GroundTruthProvenance,
    LearnedWorld,
    WorldConfig,
    build_world,
    default_world,
    groundtruth_for,
    load_world,
)

torch.set_num_threads(1)

SMALL_TRUTH = GroundTruthConfig(n_users=150, n_tracks=400, n_artists=40)
TINY = WorldConfig(
    leave_session_out=True,
    retrieval=RetrievalConfig(factors=8, iterations=5, n_trees=2, n_bands=1, pool_size=20),
    user_model=UserModelConfig(
        hidden_size=16, mlp_size=32, interaction_size=8, max_epochs=2, batch_size=64, history=True
    ),
)


@pytest.fixture(scope="module")
def truth() -> GroundTruthWorld:
    return GroundTruthWorld(seed=1, config=SMALL_TRUTH)


@pytest.fixture(scope="module")
def world(truth: GroundTruthWorld) -> LearnedWorld:
    log = truth.simulate_logs(600, seed=2)
    return build_world(log, TINY, GroundTruthProvenance.of(truth, 600, 2))


@pytest.fixture(scope="module")
def saved(world: LearnedWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return world.save(tmp_path_factory.mktemp("worlds") / "world")


def episode_probabilities(world: LearnedWorld, seed: int = 0, plays: int = 3):
    """Pools, response and leaving probabilities along a fixed random walk through ``world``."""
    rng = np.random.default_rng(seed)
    users, contexts = world.sample_sessions(rng, 6, "eval")
    pools = world.candidate_pools(users, 20)
    model = world.session_model
    state = model.initial_state(users, contexts)
    out = []
    for step in range(plays):
        out.append(model.response_probs(state, pools))
        state = model.advance(state, pools[:, step], rng.integers(0, 3, len(users)))
        out.append(model.leave_probs(state))
    return users, pools, out


def test_world_implements_the_protocol(world: LearnedWorld, truth: GroundTruthWorld) -> None:
    assert isinstance(world, World)
    assert world.training_report is not None and world.training_report.epochs >= 1
    assert world.track_features.shape[0] == len(world.tracks) and world.user_features.shape[0] == len(world.user_ids)
    assert np.isfinite(world.track_features).all() and np.isfinite(world.user_features).all()
    rng = np.random.default_rng(0)
    users, contexts = world.sample_sessions(rng, 40, "eval")
    assert len(contexts) == 40 and world.eval_users[users].all()
    users, _ = world.sample_sessions(rng, 40, "train")
    assert not world.eval_users[users].any()
    pools = world.candidate_pools(users[:5], 20)
    assert pools.shape == (5, 20) and (pools < len(world.tracks)).all()
    _, _, probabilities = episode_probabilities(world)
    for values in probabilities:
        assert np.isfinite(values).all()
    # The same ids as the ground truth it came from.
    again = groundtruth_for(world)
    np.testing.assert_array_equal(again.user_index(world.user_ids), truth.user_index(world.user_ids))


def test_world_round_trip(world: LearnedWorld, saved: Path) -> None:
    loaded = load_world(saved)
    assert loaded.config == world.config and loaded.provenance == world.provenance
    np.testing.assert_array_equal(loaded.user_ids, world.user_ids)
    np.testing.assert_array_equal(loaded.track_features, world.track_features)
    np.testing.assert_array_equal(loaded.user_features, world.user_features)
    assert loaded.tracks["track_id"].tolist() == world.tracks["track_id"].tolist()
    # The ground truth's log names every track's genre: the genre columns read it.
    assert world.familiarity.genre_source == loaded.familiarity.genre_source == "genre column"
    np.testing.assert_array_equal(loaded.familiarity.play_codes, world.familiarity.play_codes)
    users, pools, probabilities = episode_probabilities(world)
    loaded_users, loaded_pools, loaded_probabilities = episode_probabilities(loaded)
    np.testing.assert_array_equal(loaded_users, users)
    np.testing.assert_array_equal(loaded_pools, pools)
    for got, expected in zip(loaded_probabilities, probabilities, strict=True):
        np.testing.assert_array_equal(got, expected)


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "copy"))


def test_missing_folder_and_a_folder_that_is_not_a_world(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"manifest\.json"):
        load_world(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="empty"):
        load_world(tmp_path / "empty")
    # The models sub-folder is an artifact of another format.
    with pytest.raises(ArtifactError, match="format"):
        load_world(saved / "models")


def test_corrupted_file_is_named(saved: Path, tmp_path: Path) -> None:
    folder = _copy(saved, tmp_path)
    target = folder / "models" / "response_model.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"response_model\.pt.*checksum"):
        load_world(folder)


def test_missing_file_is_named(saved: Path, tmp_path: Path) -> None:
    folder = _copy(saved, tmp_path)
    (folder / "sessions.npz").unlink()
    with pytest.raises(ArtifactError, match=r"sessions\.npz"):
        load_world(folder)


def test_wrong_format_version(saved: Path, tmp_path: Path) -> None:
    folder = _copy(saved, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = manifest["format_version"] + 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"manifest\.json.*format version"):
        load_world(folder)


def test_build_is_deterministic(truth: GroundTruthWorld, world: LearnedWorld) -> None:
    again = build_world(truth.simulate_logs(600, seed=2), TINY, GroundTruthProvenance.of(truth, 600, 2))
    for name, value in world.session_model.response_model.state_dict().items():
        assert torch.equal(value, again.session_model.response_model.state_dict()[name]), name
    np.testing.assert_array_equal(again.session_model.session_end.weights, world.session_model.session_end.weights)


def test_default_world_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MUSICENV_HOME", str(tmp_path))
    small = dataclasses.replace(SMALL_TRUTH, n_users=100, n_tracks=300, n_artists=30)
    config = WorldConfig(retrieval=TINY.retrieval, user_model=TINY.user_model)  # the default feature path
    first = default_world(log_sessions=300, config=config, groundtruth_config=small)
    assert len(list((tmp_path / "worlds").iterdir())) >= 1
    second = default_world(log_sessions=300, config=config, groundtruth_config=small)
    assert second.training_report is None  # loaded from the cache, not rebuilt
    _, pools, probabilities = episode_probabilities(first)
    _, again_pools, again = episode_probabilities(second)
    np.testing.assert_array_equal(again_pools, pools)
    for got, expected in zip(again, probabilities, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_world_from_mssd_rows(shared_dir: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log = load_mssd(shared_dir / "data/mssd/log_real_11_sessions.csv")
    config = dataclasses.replace(
        TINY,
        track_folds=2,  # the cross-fitted track vectors' path too
        retrieval=dataclasses.replace(TINY.retrieval, factors=4, pool_size=10),
        user_model=dataclasses.replace(TINY.user_model, validation_share=0.2, test_share=0.0),
    )
    world = build_world(log, config)
    assert world.provenance is None
    with pytest.raises(ValueError, match="ground truth"):
        groundtruth_for(world)
    rng = np.random.default_rng(0)
    users, contexts = world.sample_sessions(rng, 4, "all")
    pools = world.candidate_pools(users, 10)
    state = world.session_model.initial_state(users, contexts)
    probs = world.session_model.response_probs(state, pools)
    assert probs.shape == (4, 10, 3) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-9)
    state = world.session_model.advance(state, np.maximum(pools[:, 0], 0), np.zeros(4, dtype=np.int64))
    assert np.isfinite(world.session_model.leave_probs(state)).all()
    loaded = load_world(world.save(tmp_path / "mssd"))
    # The MSSD has no genres: the genre columns read clusters of the ALS vectors.
    assert world.familiarity.genre_source == loaded.familiarity.genre_source == "ALS clusters"
    np.testing.assert_array_equal(
        loaded.session_model.response_probs(loaded.session_model.initial_state(users, contexts), pools),
        world.session_model.response_probs(world.session_model.initial_state(users, contexts), pools),
    )


def test_one_session_draw_is_the_batched_draw_of_one(world: LearnedWorld) -> None:
    """An env's reset draws one session through numpy's scalar calls; the draws are those of ``size=1``."""
    for seed in range(50):
        users, contexts = world.sample_sessions(np.random.default_rng(seed), 1, "train")
        rng = np.random.default_rng(seed)
        candidates = world._split_sessions["train"]
        rows = candidates[rng.integers(0, len(candidates), size=1)]
        np.testing.assert_array_equal(users, world.session_users[rows])
        np.testing.assert_array_equal(contexts.context_type, world.session_context_types[rows])
        np.testing.assert_array_equal(contexts.hour, world.session_hours[rows])
        np.testing.assert_array_equal(contexts.attention, rng.standard_normal(1).astype(np.float32))
        assert users.dtype == world.session_users.dtype and contexts.attention.dtype == np.float32


@pytest.mark.parametrize("which", ["learned", "groundtruth"])
def test_one_session_from_each_generator_is_each_generators_own_draw(
    world: LearnedWorld, truth: GroundTruthWorld, which: str
) -> None:
    """A vector env's resets draw one session per generator in one call (the learned world's own
    method, or the fallback for the ground truth): the draws of ``sample_sessions(rng, 1)`` on each,
    leaving every generator where that call leaves it."""
    source = world if which == "learned" else truth
    assert hasattr(source, "sample_session_each") == (which == "learned")
    users, contexts = sample_session_each(source, [np.random.default_rng(seed) for seed in range(12)], "eval")
    for seed in range(12):
        rng = np.random.default_rng(seed)
        one_user, one = source.sample_sessions(rng, 1, "eval")
        assert users[seed] == one_user[0]
        assert (contexts.context_type[seed], contexts.hour[seed]) == (one.context_type[0], one.hour[0])
        assert contexts.attention[seed] == one.attention[0] and contexts.attention.dtype == np.float32
    rngs = [np.random.default_rng(seed) for seed in range(3)]
    sample_session_each(source, rngs, "train")
    for seed, rng in enumerate(rngs):
        after = np.random.default_rng(seed)
        source.sample_sessions(after, 1, "train")
        assert rng.random() == after.random()
    with pytest.raises(ValueError, match="split must be"):
        sample_session_each(source, rngs, "test")  # type: ignore[arg-type]
