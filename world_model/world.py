"""The learned world: everything musicenv learns from listening logs, in one saved folder.

A :class:`LearnedWorld` bundles the retrieval stage (implicit-ALS vectors, the Annoy index and the
candidate pools), the user-response model and the session-end model (together its
:class:`~world_model.learned_session.LearnedSessionModel`), the track table, the listeners, and
the empirical listening contexts of the logs. It implements :class:`musicenv.world.World`, so
``ListeningSession-v0`` runs on it, and it remembers the ground-truth world it was built from
(when it was), so the same agent can be judged against the truth (docs/design.md, "The two worlds").

Building::

    from musicenv.groundtruth import GroundTruthWorld
    from world_model.world import WorldConfig, build_world

    truth = GroundTruthWorld(seed=0)
    log = truth.simulate_logs(20_000, seed=0)
    world = build_world(log, WorldConfig(), provenance=GroundTruthProvenance.of(truth, 20_000, 0))
    world.save("worlds/default")
    same = load_world("worlds/default")

The embedded default world (:func:`default_world`) is built this way from the default
ground-truth world on first use and cached under ``$MUSICENV_HOME`` (default
``~/.cache/musicenv``), keyed by a hash of its configuration and the package version, written
atomically under a file lock so parallel test workers and processes never race.

Saved layout::

    world/
      manifest.json        format, version, config, provenance, checksums (musicenv.artifacts)
      retrieval/           ALS vectors, Annoy index, id maps (world_model.retrieval)
      models/              user-response model state dict + session-end model
      tracks.parquet       the track table (row i = track index i)
      sessions.npz         listeners, their premium flags, and the logged sessions' contexts
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from musicenv.artifacts import (
    ARTIFACT_SCHEMA,
    MANIFEST,
    ArtifactError,
    atomic_folder,
    package_version,
    read_manifest,
    write_manifest,
)
from musicenv.data import ListeningLog
from musicenv.world import CONTEXT_TYPES, Contexts, Split, is_eval_user
from world_model.exact_als import exact_track_vectors, exact_user_vectors, held_out_track_vectors, held_out_user_vectors
from world_model.features import (
    FeatureStats,
    listener_premium,
    track_feature_matrix,
    track_play_counts,
    user_feature_matrix,
)
from world_model.genres import track_genres
from world_model.history import ListeningHistory
from world_model.interactions import interaction_matrix, listener_codes
from world_model.learned_session import LearnedSessionModel, load_models, save_models
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.session_end import SessionEndModel
from world_model.sessions import SessionTable, session_folds
from world_model.user_model import TrainingReport, UserModelConfig, train_user_model

WORLD_FORMAT = "musicenv.world"
WORLD_FORMAT_VERSION = 1

_SESSION_ARRAYS = ("premium", "session_users", "session_context_types", "session_hours")
"""The arrays of ``sessions.npz``."""

DEFAULT_GROUNDTRUTH_SEED = 0
DEFAULT_LOG_SESSIONS = 20_000
DEFAULT_LOG_SEED = 0


@dataclass
class WorldConfig:
    """How to learn a world from logs.

    Attributes:
        retrieval: ALS, Annoy and candidate-pool settings.
        user_model: user-response model architecture and training settings.
        seed: seeds every learned stage (ALS ``random_state``, Annoy, torch).
        leave_session_out: train the user-response model on each session with its listener's
            ALS vector without that session (:func:`~world_model.exact_als.held_out_user_vectors`)
            instead of the whole log's, which holds the trained plays' own responses. Off by
            default: it made the learned world's verdict worse on both world seeds measured
            (``benchmarks/RESULTS.md``, "Learned world"), presumably because vectors from fewer
            sessions are shorter than the whole-log vectors the world answers with, so the model
            extrapolates at play time.
        track_folds: with ``leave_session_out``, also cross-fit the track vectors over this many
            folds of sessions (:func:`~world_model.exact_als.held_out_track_vectors`); below 2
            (default), the track vectors are read as fitted. 5 folds made the learned world
            *more* optimistic for every baseline (``benchmarks/RESULTS.md``, "Learned world"), so
            it is off.
        device: ``"cpu"`` (default) or ``"cuda"`` for ALS and the user-response model's training.
    """

    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    user_model: UserModelConfig = field(default_factory=UserModelConfig)
    seed: int = 0
    device: str = "cpu"
    leave_session_out: bool = False
    track_folds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> WorldConfig:
        return cls(
            retrieval=RetrievalConfig(**payload["retrieval"]),
            # Worlds saved before member holdout existed held out shared validation sessions.
            user_model=UserModelConfig(**{"member_holdout": False, **payload["user_model"]}),
            seed=payload["seed"],
            device=payload["device"],
            leave_session_out=payload.get("leave_session_out", False),
            track_folds=payload.get("track_folds", 0),
        )


@dataclass(frozen=True)
class GroundTruthProvenance:
    """Which ground-truth world (and which of its logs) a learned world was built from."""

    seed: int
    config: dict[str, Any]
    log_sessions: int
    log_seed: int

    @classmethod
    def of(cls, truth: Any, log_sessions: int, log_seed: int) -> GroundTruthProvenance:
        # JSON-ready (tuples as lists), so a saved and reloaded provenance equals the built one.
        return cls(truth.seed, json.loads(json.dumps(dataclasses.asdict(truth.config))), log_sessions, log_seed)


class LearnedWorld:
    """A world learned from logs; implements :class:`musicenv.world.World`.

    Attributes:
        name: ``"learned"``.
        tracks: the track table (row i = track index i).
        user_ids: listener ids (user ids, or session ids for logs without users), sorted.
        track_features, user_features: what agents observe (:mod:`world_model.features`).
        track_feature_layout, user_feature_layout: the named column blocks of those matrices
            (e.g. ``"als"``, ``"acoustic"``, ``"popularity"``) for agents that read one block.
        eval_users: the 20% of listeners held out for evaluation (:func:`is_eval_user`).
        session_model: the learned :class:`LearnedSessionModel`.
        retrieval: the ALS + Annoy stage that builds candidate pools.
        provenance: the ground-truth world the logs came from, or None (e.g. MSSD logs).
        training_report: how the user-response model's training went (:func:`build_world` only;
            None after :func:`load_world`).
    """

    name = "learned"

    def __init__(
        self,
        retrieval: Retrieval,
        session_model: LearnedSessionModel,
        tracks: pd.DataFrame,
        premium: np.ndarray,
        session_users: np.ndarray,
        session_context_types: np.ndarray,
        session_hours: np.ndarray,
        config: WorldConfig,
        provenance: GroundTruthProvenance | None,
    ) -> None:
        self.retrieval = retrieval
        self.session_model = session_model
        self.tracks = tracks
        self.user_ids = retrieval.listener_ids
        self.premium = premium
        self.session_users = session_users
        self.session_context_types = session_context_types
        self.session_hours = session_hours
        self.config = config
        self.provenance = provenance
        self.training_report: TrainingReport | None = None
        self.eval_users = is_eval_user(self.user_ids)
        self.track_features = session_model.track_features
        self.user_features = session_model.user_features
        self.track_feature_layout = session_model.track_feature_layout
        self.user_feature_layout = session_model.user_feature_layout
        self._split_sessions = {
            "all": np.arange(len(session_users)),
            "train": np.flatnonzero(~self.eval_users[session_users]),
            "eval": np.flatnonzero(self.eval_users[session_users]),
        }

    @property
    def familiarity(self) -> ListeningHistory | None:
        """The listeners' familiarity with tracks and artists the user model reads (None if it reads none).

        Its ``genre_source`` says where the genres of the in-session genre columns came from: the
        log's ``"genre column"``, or ``"ALS clusters"`` when the log has none (the MSSD).
        """
        return self.session_model.history

    def sample_sessions(self, rng: np.random.Generator, n: int, split: Split) -> tuple[np.ndarray, Contexts]:
        """Draw ``n`` logged (listener, context) pairs of ``split``'s listeners, uniformly over sessions.

        Drawing whole logged sessions keeps each listener's own mix of contexts and hours and
        weights listeners by how much they listen, as a service's traffic does. The latent
        attention is a fresh standard normal (only a ground-truth responder reads it).
        """
        candidates = self._sessions_of(split)
        if n == 1:
            return self.sample_session_each([rng], split)
        rows = candidates[rng.integers(0, len(candidates), size=n)]
        attention = rng.standard_normal(n).astype(np.float32)
        contexts = Contexts(self.session_context_types[rows], self.session_hours[rows], attention)
        return self.session_users[rows], contexts

    def sample_session_each(self, rngs: Sequence[np.random.Generator], split: Split) -> tuple[np.ndarray, Contexts]:
        """One session from each generator: the draws of ``sample_sessions(rng, 1, split)``, in one call.

        Numpy's scalar draws (the same stream as a draw of size 1) and one gather for all, for an
        environment's resets (:func:`musicenv.world.sample_session_each`).
        """
        candidates = self._sessions_of(split)
        picks = np.empty(len(rngs), dtype=np.int64)
        attention = np.empty(len(rngs), dtype=np.float32)
        for k, rng in enumerate(rngs):
            picks[k] = rng.integers(0, len(candidates))
            attention[k] = rng.standard_normal()
        rows = candidates[picks]
        contexts = Contexts(self.session_context_types[rows], self.session_hours[rows], attention)
        return self.session_users[rows], contexts

    def _sessions_of(self, split: Split) -> np.ndarray:
        """Rows of the logged sessions of ``split``'s listeners; a clear error for an unknown or empty split."""
        if split not in self._split_sessions:
            raise ValueError(f"split must be one of {sorted(self._split_sessions)}, got {split!r}")
        candidates = self._split_sessions[split]
        if len(candidates) == 0:
            raise ValueError(f"the world has no sessions of {split!r} listeners to draw from")
        return candidates

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """Each listener's pool from the Annoy index, minus their blocks (see :class:`Retrieval`)."""
        return self.retrieval.candidate_pools(users, size, explicit_filter=explicit_filter)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Save the world atomically to ``folder`` (replacing a previous save only when complete).

        Raises:
            ArtifactError: ``folder`` holds something other than an empty folder or an earlier
                saved world (nothing is written then).
        """
        folder = Path(folder)
        with atomic_folder(folder, WORLD_FORMAT) as staging:
            self.retrieval.save(staging / "retrieval")
            save_models(staging / "models", self.session_model)
            self.tracks.to_parquet(staging / "tracks.parquet", index=False)
            np.savez(
                staging / "sessions.npz",
                premium=self.premium,
                session_users=self.session_users,
                session_context_types=self.session_context_types,
                session_hours=self.session_hours,
            )
            write_manifest(
                staging,
                WORLD_FORMAT,
                WORLD_FORMAT_VERSION,
                {
                    "world": self.config.to_dict(),
                    "provenance": None if self.provenance is None else dataclasses.asdict(self.provenance),
                },
            )
        return folder


@dataclass(frozen=True)
class LearnedFeatures:
    """What the user-response model reads, as :func:`learn_features` makes it from a log.

    Attributes:
        stats: the standardisation statistics (saved with the world).
        track_features: ``(n_tracks, d_track)`` float32 (:func:`~world_model.features.track_feature_matrix`).
        user_features: ``(n_listeners, d_user)`` float32, what the world answers with and agents observe.
        session_user_features: ``(S, d_user)`` float32, each logged session's user row *without*
            that session (:func:`~world_model.exact_als.held_out_user_vectors`): the training input.
        premium: ``(n_listeners,)`` bool premium flags.
        session_track_features: ``(tables, fold)``, per-fold track feature tables
            ``(K, n_tracks, d_track)`` and each session's fold, or None (see
            :func:`~world_model.user_model.train_user_model`).
    """

    stats: FeatureStats
    track_features: np.ndarray
    user_features: np.ndarray
    session_user_features: np.ndarray
    premium: np.ndarray
    session_track_features: tuple[np.ndarray, np.ndarray] | None = None


def learn_features(
    log: ListeningLog,
    sessions: SessionTable,
    retrieval: Retrieval,
    config: RetrievalConfig,
    leave_session_out: bool = False,
    track_folds: int = 0,
    seed: int = 0,
) -> LearnedFeatures:
    """Track and user features of ``log`` for a world whose retrieval stage is ``retrieval``.

    User vectors are one exact ALS step against the fitted track vectors
    (:func:`~world_model.exact_als.exact_user_vectors`): implicit's own user vectors come from the
    sweep before its last track update and are only approximately that step, and reading the
    exact one made the learned world's verdict on agents closer to the ground truth's on two
    world seeds (``eval.py``, 300 episodes, mean |relative return gap| of random, popular, ALS and
    content: seed 0 0.51 to 0.32, seed 1 0.18 to 0.12; largest gap 1.15 to 1.13 and 0.83 to
    0.73). With ``leave_session_out`` training reads, per session, the same step without the
    session's own plays (:func:`~world_model.exact_als.held_out_user_vectors`). With a recency
    half-life a session's weights depend on its date; then the fitted vectors are used as they are.

    Args:
        log: the listening log; ``sessions``: its :class:`SessionTable`.
        retrieval: the fitted retrieval stage; ``config``: the settings it was fitted with.
        leave_session_out: as :attr:`WorldConfig.leave_session_out`; ``False`` gives each
            session its listener's whole-log vector.
        track_folds: as :attr:`WorldConfig.track_folds` (used with ``leave_session_out``); then
            the track vectors are one exact ALS step against the fitted user vectors, on all plays
            for the world and on the other folds' plays for training; ``seed`` deals the folds.
    """
    listener_ids, premium = listener_premium(log)
    if not np.array_equal(listener_ids, retrieval.listener_ids):
        raise AssertionError("retrieval and features disagree on the listeners")  # both sort log.listener_ids()
    play_counts = track_play_counts(log)
    track_vectors, fold_tables = retrieval.track_vectors, None
    if config.half_life_days is None:
        weights, _ = interaction_matrix(log, config.response_weights, None, (listener_ids, listener_codes(log)[1]))
        solve = (config.response_weights, config.alpha, config.regularization)
        if leave_session_out and track_folds >= 2:
            track_vectors = exact_track_vectors(weights, retrieval.user_vectors, config.alpha, config.regularization)
            fold = session_folds(len(sessions), track_folds, seed)
            fold_vectors = held_out_track_vectors(sessions, fold, weights, retrieval.user_vectors, *solve)
            mask = sessions.play_mask()
            fold_plays = np.stack(
                [
                    np.bincount(sessions.tracks[mask & (fold == k)[:, None]], minlength=len(log.tracks))
                    for k in range(track_folds)
                ]
            )
            # Plays of the other folds, scaled up to the whole log's size.
            fold_counts = (play_counts[None, :] - fold_plays) * track_folds / (track_folds - 1)
            fold_tables = (fold_vectors, fold_counts, fold)
        user_vectors = exact_user_vectors(weights, track_vectors, config.alpha, config.regularization)
        if leave_session_out:
            session_vectors = held_out_user_vectors(sessions, weights, track_vectors, *solve)
        else:
            session_vectors = user_vectors[sessions.listeners]
    else:
        user_vectors, session_vectors = retrieval.user_vectors, retrieval.user_vectors[sessions.listeners]
    stats = FeatureStats.fit(log.tracks, track_vectors, user_vectors, play_counts)
    session_track_features = None
    if fold_tables is not None:
        fold_vectors, fold_counts, fold = fold_tables
        tables = np.stack(
            [track_feature_matrix(log.tracks, v, c, stats) for v, c in zip(fold_vectors, fold_counts, strict=True)]
        )
        session_track_features = (tables, fold)
    return LearnedFeatures(
        stats=stats,
        track_features=track_feature_matrix(log.tracks, track_vectors, play_counts, stats),
        user_features=user_feature_matrix(user_vectors, premium, stats),
        session_user_features=user_feature_matrix(session_vectors, premium[sessions.listeners], stats),
        premium=premium,
        session_track_features=session_track_features,
    )


def build_world(
    log: ListeningLog,
    config: WorldConfig | None = None,
    provenance: GroundTruthProvenance | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> LearnedWorld:
    """Learn a world from ``log``: ALS + Annoy, then the user-response and session-end models.

    Args:
        log: the listening log to learn from.
        config: learning settings (defaults documented on :class:`WorldConfig`).
        provenance: the ground-truth world the log was simulated from, if any; it lets
            ``world="groundtruth"`` runs find their ground truth.
        log_dir: TensorBoard folder for the user-response model's training curves.
    """
    config = config or WorldConfig()
    retrieval = Retrieval.fit(log, dataclasses.replace(config.retrieval, seed=config.seed), device=config.device)
    user_model_config = dataclasses.replace(config.user_model, seed=config.seed)
    sessions = SessionTable.from_log(log, user_model_config.max_session_length)
    features = learn_features(
        log, sessions, retrieval, config.retrieval, config.leave_session_out, config.track_folds, config.seed
    )
    stats, track_features, user_features = features.stats, features.track_features, features.user_features
    track_artists = log.track_artist_codes()
    genres, genre_source = track_genres(log.tracks, retrieval.track_vectors, config.seed)
    session_user_features = features.session_user_features
    response_model, report = train_user_model(
        sessions,
        track_features,
        user_features,
        user_model_config,
        device=config.device,
        log_dir=None if log_dir is None else str(log_dir),
        session_user_features=session_user_features,
        session_track_features=features.session_track_features,
        track_artists=track_artists,
        track_genres=genres,
    )
    session_end = SessionEndModel.fit(sessions)
    history = (
        ListeningHistory.from_sessions(sessions, len(track_features), track_artists, genres, genre_source)
        if response_model.history_dim
        else None
    )
    session_model = LearnedSessionModel(
        response_model, session_end, track_features, user_features, stats, history=history
    )
    world = LearnedWorld(
        retrieval,
        session_model,
        log.tracks.reset_index(drop=True),
        features.premium,
        sessions.listeners,
        sessions.context_type,
        sessions.hour,
        config,
        provenance,
    )
    world.training_report = report
    return world


def load_world(folder: str | os.PathLike[str]) -> LearnedWorld:
    """Load a saved world, checking its format version and every file's checksum.

    Raises:
        ArtifactError: the folder is not a world, was written by another format version, or a
            file is missing or corrupted (the message names it).
    """
    folder = Path(folder)
    manifest = read_manifest(folder, WORLD_FORMAT, WORLD_FORMAT_VERSION)
    current = folder / MANIFEST
    try:
        config = WorldConfig.from_dict(manifest["config"]["world"])
        provenance_payload = manifest["config"]["provenance"]
        provenance = None if provenance_payload is None else GroundTruthProvenance(**provenance_payload)
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"{current}: its config is not a world's ({error!r})") from error
    retrieval = Retrieval.load(folder / "retrieval")
    session_model = load_models(folder / "models")
    try:
        current = folder / "tracks.parquet"
        tracks = pd.read_parquet(current)
        current = folder / "sessions.npz"
        with np.load(current, allow_pickle=False) as arrays:
            sessions = {key: arrays[key] for key in _SESSION_ARRAYS}
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(f"{current}: cannot be read ({error!r})") from error
    return LearnedWorld(
        retrieval,
        session_model,
        tracks,
        sessions["premium"],
        sessions["session_users"],
        sessions["session_context_types"],
        sessions["session_hours"],
        config,
        provenance,
    )


def musicenv_home() -> Path:
    """The cache folder: ``$MUSICENV_HOME``, default ``~/.cache/musicenv``."""
    return Path(os.environ.get("MUSICENV_HOME", Path.home() / ".cache" / "musicenv"))


def _cache_key(payload: dict[str, Any]) -> str:
    # The artifact schema too: an entry saved under an older schema is rebuilt, never trusted.
    text = json.dumps(
        {"payload": payload, "version": package_version(), "artifact_schema": ARTIFACT_SCHEMA}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_world(
    groundtruth_seed: int = DEFAULT_GROUNDTRUTH_SEED,
    log_sessions: int = DEFAULT_LOG_SESSIONS,
    log_seed: int = DEFAULT_LOG_SEED,
    config: WorldConfig | None = None,
    groundtruth_config: Any = None,
) -> LearnedWorld:
    """The embedded default world, built on first use from the default ground-truth world's logs.

    Deterministic and offline: the ground-truth world ships with the package, its logs are
    simulated from ``log_seed``, and the world is learned from them with ``config``. The result
    is cached under :func:`musicenv_home` keyed by all of that, the package version and the
    artifact schema (:data:`musicenv.artifacts.ARTIFACT_SCHEMA`, so entries saved before a change
    of how saves are checksummed are rebuilt, not trusted); the build
    runs under a file lock so concurrent callers build it once. A cache entry that cannot be read
    (a failed checksum, a damaged manifest, a missing file) is removed and rebuilt under the lock.
    """
    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld

    config = config or WorldConfig()
    groundtruth_config = groundtruth_config or GroundTruthConfig()
    key = _cache_key(
        {
            "groundtruth_seed": groundtruth_seed,
            "groundtruth_config": dataclasses.asdict(groundtruth_config),
            "log_sessions": log_sessions,
            "log_seed": log_seed,
            "world": config.to_dict(),
        }
    )
    folder = musicenv_home() / "worlds" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if folder.exists() or folder.is_symlink():
            try:
                return load_world(folder)
            except ArtifactError as error:
                # Damaged, half-deleted or unreadable: the entry is the cache's own (nobody else
                # writes under this key), so it goes, and the world is rebuilt in its place.
                print(f"musicenv: the cached default world cannot be read ({error}); rebuilding it", file=sys.stderr)
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder)
                else:
                    folder.unlink()
        print(f"musicenv: building the default world (cached in {folder}) ...", flush=True)
        truth = GroundTruthWorld(seed=groundtruth_seed, config=groundtruth_config)
        log = truth.simulate_logs(log_sessions, seed=log_seed)
        world = build_world(log, config, GroundTruthProvenance.of(truth, log_sessions, log_seed))
        world.save(folder)
        return world


def open_world(spec: str | os.PathLike[str], groundtruth_seed: int | None = None) -> LearnedWorld:
    """The learned world that a command line or an env argument names: the one way to open a world by name.

    Args:
        spec: ``"default"`` or ``"groundtruth"`` (both the embedded default world,
            :func:`default_world`; ``"groundtruth"`` says that a run is answered by its ground
            truth, which the caller takes from :func:`groundtruth_for`), or a saved world folder.
        groundtruth_seed: with ``"default"`` / ``"groundtruth"``, build the default world from the
            ground-truth world of this seed instead of the default one.

    Raises:
        ArtifactError: the folder is not a readable saved world (the message names the file).
        ValueError: ``groundtruth_seed`` was given with a saved world folder.
    """
    if isinstance(spec, str) and spec in ("default", "groundtruth"):
        if groundtruth_seed is None:
            return default_world()
        return default_world(groundtruth_seed=groundtruth_seed)
    if groundtruth_seed is not None:
        raise ValueError(f"groundtruth_seed picks the default world's ground truth; {spec} is a saved world")
    return load_world(spec)


def open_world_and_truth(spec: str | os.PathLike[str]) -> tuple[LearnedWorld, Any]:
    """:func:`open_world` of ``spec`` and the world's ground truth (None when it has none, e.g. MSSD logs).

    What ``train.py`` and ``eval.py`` do with their ``--world``.
    """
    world = open_world(spec)
    return world, None if world.provenance is None else groundtruth_for(world)


def groundtruth_for(world: LearnedWorld) -> Any:
    """The ground-truth world ``world`` was learned from (rebuilt from its seed and config).

    Raises:
        ValueError: the world was learned from logs without a ground truth (e.g. the MSSD).
    """
    if world.provenance is None:
        raise ValueError(
            "this world was learned from logs without a ground truth (e.g. MSSD logs); "
            "world='groundtruth' needs a world built from a GroundTruthWorld's logs"
        )
    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld

    config = GroundTruthConfig.from_dict(world.provenance.config)
    return GroundTruthWorld(seed=world.provenance.seed, config=config)


__all__ = [
    "CONTEXT_TYPES",
    "GroundTruthProvenance",
    "LearnedFeatures",
    "LearnedWorld",
    "WorldConfig",
    "build_world",
    "default_world",
    "groundtruth_for",
    "learn_features",
    "load_world",
    "musicenv_home",
    "open_world",
    "open_world_and_truth",
]
