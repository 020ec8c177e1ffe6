"""The retrieval stage: ALS factors, an Annoy index and per-user candidate pools, as one object.

Tomasi et al. (KDD 2023) give every user a pool of candidate tracks before the agent sequences a
session from it; the pool comes from collaborative filtering. Here that is:

1. an interaction matrix of listeners x tracks from the log, weighted by response
   (:mod:`world_model.interactions`);
2. implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008) through ``implicit``
   (:mod:`world_model.embeddings`);
3. an Annoy index that ranks tracks by their inner product with a user's vector
   (:mod:`world_model.ann_index`);
4. pools of ``M`` tracks per user without blocked tracks, blocked artists and (on request)
   explicit tracks, refilled from further down the ranking (:mod:`world_model.candidates`).

Pool sources
    ``RetrievalConfig(source=...)`` chooses where pools come from: ``"als"`` (default, the steps
    above), ``"sequence"`` (session track vectors and a GRU taste vector, De Boom et al. 2017:
    :mod:`world_model.sequence`), or ``"mix"`` (a ``sequence_share`` of each pool from the
    sequence source, the rest from ALS, interleaved by rank: :class:`~world_model.candidates.MixedPool`),
    or ``"user_cf"`` (user-user collaborative filtering: neighbours by Pearson correlation of play
    vectors through Annoy, :mod:`world_model.user_cf`; rebuilt from ``heard`` when loaded).
    The ALS stage is fitted in every case (the world's features and the ALS agent read its
    vectors); the sequence stage only when a pool needs it, and it is saved inside the retrieval
    folder (``sequence/``, with its own manifest, and covered by the retrieval's checksums).
    Blocks and the explicit filter apply to every source.

Usage::

    from world_model.retrieval import Retrieval, RetrievalConfig

    retrieval = Retrieval.fit(log, RetrievalConfig(seed=0))
    pools = retrieval.candidate_pools(np.arange(8), size=100)   # (8, 100) int64, best first
    retrieval.save("runs/world/retrieval")
    retrieval = Retrieval.load("runs/world/retrieval")

The learned world delegates its ``candidate_pools`` (:class:`musicenv.world.World`) here. Users
are the log's listeners (``log.listener_ids()``: user ids, or sessions where a log has none) in
sorted order; tracks are the rows of ``log.tracks``. ALS is fitted on every listener's history:
a service has a vector for every listener (docs/design.md, "Users").

Skips as evidence
    The default skip weight is 0.25, half a listen's 0.5 and a quarter of a completion's: a skip
    is a play the logging policy chose for the user, so it carries a little evidence that the
    track was plausible for them; calling it a confident dislike (a negative weight) removes
    that, and a weight of 0 makes a track a user only ever skipped an unobserved pair.
    ``benchmarks/retrieval.py`` measures the alternatives on the ground-truth world in one run
    (``pool_recall_at_100_skip_weight_<w>`` for -0.5, 0, 0.25 and 0.5).
    See :class:`RetrievalConfig` for the figures behind the defaults.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicenv.artifacts import ArtifactError, atomic_folder, read_arrays, read_manifest, write_manifest
from musicenv.configs import config_from_dict
from world_model.ann_index import TrackIndex
from world_model.candidates import CandidatePool, MixedPool, PoolCache
from world_model.embeddings import DEVICES, fit_als
from world_model.interactions import confidence_matrix, interaction_matrix, listener_codes
from world_model.sequence import SequenceConfig, SequenceStage
from world_model.user_cf import UserCFPool, UserNeighbours

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

__all__ = ["FORMAT", "FORMAT_VERSION", "Retrieval", "RetrievalConfig"]

FORMAT = "musicenv.retrieval"
FORMAT_VERSION = 1
_VECTORS = "vectors.npz"
_INDEX = "index"
_SEQUENCE = "sequence"
SOURCES = ("als", "sequence", "mix", "user_cf")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalConfig:
    """Settings of the retrieval stage. Defaults are for the default ground-truth world.

    Attributes:
        factors: ALS latent dimension. 32 suffices for the default world's taste structure (its
            users and tracks live in a low-dimensional taste space); larger catalogues of real
            listening use 64 to 256.
        regularization: L2 penalty ``lambda`` on the factors (Hu et al.'s eq. 3).
        alpha: confidence slope, ``c = 1 + alpha * w`` for summed play weight ``w`` (Hu et al.
            used 40 on raw watch counts; our weights are ~1 per play).
        iterations: ALS sweeps; implicit's default 15, after which the factors barely move.
        skip_weight: weight of a skipped play (see the module docstring, "Skips as evidence").
        listen_weight: weight of a play listened past the first seconds, not to the end.
        complete_weight: weight of a play listened to the end.
        half_life_days: recency decay of play weights on ``date``; None (default) weighs all
            plays alike, right for logs spanning weeks where taste does not drift.
        n_trees: Annoy trees per norm band. With ``n_bands`` and ``search_k`` it sets recall
            against speed; the defaults reach ``ann_recall_at_100`` >= 0.95 on the default world
            (``benchmarks/retrieval.py``). At a fixed ``search_k`` more trees *lower* recall (the
            inspected nodes are spread over more trees); raise both together for big catalogues.
        n_bands: norm bands of the index (:mod:`world_model.ann_index`); ALS norms are long-tailed
            and one band reaches only ~0.8 recall at 100 on the default world.
        search_k: Annoy nodes inspected per band and query; -1 for Annoy's default ``n_trees * n``.
        exact_max_tracks: catalogues up to this size are ranked exactly for pools, faster than
            Annoy there (:mod:`world_model.candidates`); 0 always ranks through Annoy.
        pool_size: M, tracks per candidate pool (Tomasi et al. use 100 per user).
        exploration_share: share of each pool given to popular tracks the user never played
            (:mod:`world_model.candidates`); 0 keeps the pool pure retrieval.
        seed: seeds ALS's initial factors, the Annoy build and the exploration draws.
        device: ``"cpu"``, or ``"cuda"`` for implicit's GPU ALS (needs implicit built with CUDA).
            The sequence stage always trains on the CPU, where it is bit-for-bit reproducible
            (about 30 s on the default world, one core).
        num_threads: ALS threads on the CPU, 0 for all cores; results do not depend on it.
        show_progress: implicit's progress bar over the ALS sweeps.
        source: where candidate pools come from, ``"als"``, ``"sequence"``, ``"mix"`` or ``"user_cf"`` (see the
            module docstring, "Pool sources").
        sequence_share: with ``source="mix"``, the share of each pool from the sequence source.
        sequence: settings of the sequence stage (:class:`~world_model.sequence.SequenceConfig`;
            a dict is accepted and converted, as JSON configs give it).
    """

    factors: int = 32
    regularization: float = 10.0
    alpha: float = 10.0
    iterations: int = 15
    skip_weight: float = 0.25
    listen_weight: float = 0.5
    complete_weight: float = 1.0
    half_life_days: float | None = None
    n_trees: int = 10
    n_bands: int = 16
    search_k: int = 1000
    exact_max_tracks: int = 20_000
    pool_size: int = 100
    exploration_share: float = 0.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 0
    show_progress: bool = False
    source: str = "als"
    sequence_share: float = 0.5
    sequence: SequenceConfig = dataclasses.field(default_factory=SequenceConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sequence, dict):
            object.__setattr__(self, "sequence", SequenceConfig.from_dict(self.sequence))
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not 0.0 <= self.sequence_share <= 1.0:
            raise ValueError(f"sequence_share must lie in [0, 1], got {self.sequence_share}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if min(self.factors, self.iterations, self.n_trees, self.n_bands) < 1 or self.pool_size < 0:
            raise ValueError("factors, iterations, n_trees and n_bands must be positive, pool_size non-negative")
        for name in ("regularization", "alpha"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"RetrievalConfig.{name} must be finite and at least 0, got {getattr(self, name)!r}")
        if not all(math.isfinite(weight) for weight in self.response_weights):
            weights = self.response_weights
            raise ValueError(f"RetrievalConfig's skip, listen and complete weights must be finite, got {weights}")
        if not 0.0 <= self.exploration_share <= 1.0:
            raise ValueError(f"RetrievalConfig.exploration_share must lie in [0, 1], got {self.exploration_share!r}")

    @property
    def response_weights(self) -> tuple[float, float, float]:
        """Weights of (skip, listen, complete), in response-code order."""
        return (self.skip_weight, self.listen_weight, self.complete_weight)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetrievalConfig:
        return config_from_dict(cls, values)


class Retrieval:
    """Fitted retrieval stage: ids, ALS vectors, the Annoy index, block lists and pools.

    Build one with :meth:`fit` or :meth:`load`; the constructor takes fitted parts as they are.

    Attributes:
        config: the :class:`RetrievalConfig` it was fitted with.
        listener_ids: ``(n_users,)`` str, sorted; index ``u`` is user ``u``: ``log.listener_ids()``,
            i.e. user ids, or session ids for plays without a user (the MSSD).
        track_ids: ``(n_tracks,)`` str, ``log.tracks.track_id`` in row order.
        user_vectors: ``(n_users, factors)`` float32.
        track_vectors: ``(n_tracks, factors)`` float32, row = track index; all zeros for a track
            no listener played with a non-zero weight.
        index: :class:`~world_model.ann_index.TrackIndex` over ``track_vectors``.
        explicit: ``(n_tracks,)`` bool.
        blocked: ``(n_users, n_tracks)`` CSR, the tracks each user must never be offered (blocked
            tracks and tracks of blocked artists).
        heard: ``(n_users, n_tracks)`` CSR of play counts in the fitted log.
        popularity: ``(n_tracks,)`` int64 play counts in the fitted log.
        pool: the :class:`~world_model.candidates.CandidatePool` of the ALS vectors.
        sequence: the :class:`~world_model.sequence.SequenceStage`, or None when the config's
            source is ``"als"``.
        sequence_pool: the :class:`~world_model.candidates.CandidatePool` of the sequence stage's
            taste vectors, or None.
        pools: what builds :meth:`candidate_pools`, by the config's ``source``.
        pool_cache: the :class:`~world_model.candidates.PoolCache` in front of ``pools``.
        timings: seconds spent by :meth:`fit` (``als_seconds``, ``index_build_seconds``, and the
            sequence stage's when fitted); empty after :meth:`load`.
    """

    def __init__(
        self,
        config: RetrievalConfig,
        listener_ids: np.ndarray,
        track_ids: np.ndarray,
        user_vectors: np.ndarray,
        track_vectors: np.ndarray,
        index: TrackIndex,
        explicit: np.ndarray,
        blocked: sp.csr_matrix,
        heard: sp.csr_matrix,
        popularity: np.ndarray,
        sequence: SequenceStage | None = None,
    ) -> None:
        if config.source in ("sequence", "mix") and sequence is None:
            raise ValueError(f"source={config.source!r} needs a fitted sequence stage")
        self.config = config
        self.listener_ids = np.asarray(listener_ids, dtype=str)
        self.track_ids = np.asarray(track_ids, dtype=str)
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.track_vectors = np.ascontiguousarray(track_vectors, dtype=np.float32)
        self.index = index
        self.explicit = np.asarray(explicit, dtype=bool)
        self.blocked = sp.csr_matrix(blocked)
        self.heard = sp.csr_matrix(heard)
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self.timings: dict[str, float] = {}
        settings = {
            "exploration_share": config.exploration_share,
            "seed": config.seed,
            "exact_max_tracks": config.exact_max_tracks,
        }
        self.pool = self._candidate_pool(self.user_vectors, self.track_vectors, index, **settings)
        self.sequence = sequence
        self.sequence_pool: CandidatePool | None = None
        if sequence is not None:
            if (sequence.n_users, sequence.n_tracks) != (self.n_users, self.n_tracks):
                raise ValueError(
                    f"the sequence stage has {sequence.n_users} users x {sequence.n_tracks} tracks, "
                    f"the retrieval {self.n_users} x {self.n_tracks}"
                )
            self.sequence_pool = self._candidate_pool(
                sequence.taste_vectors, sequence.track_vectors, sequence.index, **settings
            )
        self.pools: CandidatePool | MixedPool | UserCFPool
        if config.source == "als":
            self.pools = self.pool
        elif config.source == "sequence":
            self.pools = self.sequence_pool
        elif config.source == "mix":
            self.pools = MixedPool(self.sequence_pool, self.pool, config.sequence_share)
        else:
            neighbours = UserNeighbours.fit(self.heard, seed=config.seed)
            self.pools = UserCFPool(neighbours, self.explicit, self.blocked, self.popularity)
        self.pool_cache = PoolCache(self.pools)

    def als_pool(self, **options: Any) -> CandidatePool:
        """A :class:`CandidatePool` over this stage's ALS vectors and index, for measuring a variant.

        It has this stage's blocks, explicit flags, heard tracks and popularity; ``options``
        (``exploration_share``, ``seed``, ``exact_max_tracks``) are passed as given and the others
        keep :class:`CandidatePool`'s defaults, not the config's (:attr:`pool` is the configured one).
        """
        return self._candidate_pool(self.user_vectors, self.track_vectors, self.index, **options)

    def _candidate_pool(
        self, user_vectors: np.ndarray, track_vectors: np.ndarray, index: TrackIndex, **options: Any
    ) -> CandidatePool:
        """Pools ranked by ``user . track`` through ``index``, with this stage's blocks, filter and popularity."""
        return CandidatePool(
            user_vectors, track_vectors, index, self.explicit, self.blocked, self.heard, self.popularity, **options
        )

    @property
    def n_users(self) -> int:
        return len(self.listener_ids)

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    @property
    def factors(self) -> int:
        return self.user_vectors.shape[1]

    @classmethod
    def fit(cls, log: ListeningLog, config: RetrievalConfig | None = None, device: str | None = None) -> Retrieval:
        """Fit ALS on ``log``, index its track vectors, and gather block lists.

        Args:
            log: a :class:`musicenv.data.ListeningLog`.
            config: settings; the defaults when None.
            device: overrides ``config.device`` when given (a world passes its own device).
        """
        config = config or RetrievalConfig()
        if device is not None:
            config = dataclasses.replace(config, device=device)
        listeners = listener_codes(log)
        weights, user_ids = interaction_matrix(log, config.response_weights, config.half_life_days, listeners)
        started = time.perf_counter()
        user_vectors, track_vectors = fit_als(
            confidence_matrix(weights, config.alpha),
            factors=config.factors,
            regularization=config.regularization,
            iterations=config.iterations,
            seed=config.seed,
            device=config.device,
            num_threads=config.num_threads,
            show_progress=config.show_progress,
        )
        als_seconds = time.perf_counter() - started
        logger.info(
            "ALS on %d listeners x %d tracks (%d pairs): %.2fs", len(user_ids), log.n_tracks, weights.nnz, als_seconds
        )
        started = time.perf_counter()
        index = TrackIndex.build(track_vectors, config.n_trees, config.seed, config.search_k, config.n_bands)
        index_seconds = time.perf_counter() - started
        logger.info("Annoy index of %d trees: %.2fs", config.n_trees, index_seconds)

        _, codes = listeners
        tracks = np.asarray(log.track_codes(), dtype=np.int64)
        shape = (len(user_ids), log.n_tracks)
        heard = sp.csr_matrix((np.ones(len(codes), dtype=np.int32), (codes, tracks)), shape=shape)
        heard.sum_duplicates()
        sequence = None
        if config.source in ("sequence", "mix"):
            sequence = SequenceStage.fit(log, config.sequence, config.seed, listeners)
            logger.info("sequence stage: %s", sequence.timings)
        retrieval = cls(
            config=config,
            listener_ids=user_ids,
            track_ids=log.tracks["track_id"].to_numpy(dtype=str),
            user_vectors=user_vectors,
            track_vectors=track_vectors,
            index=index,
            explicit=log.tracks["explicit"].to_numpy(dtype=bool),
            blocked=_block_matrix(log, user_ids),
            heard=heard,
            popularity=np.bincount(tracks, minlength=log.n_tracks),
            sequence=sequence,
        )
        retrieval.timings = {"als_seconds": als_seconds, "index_build_seconds": index_seconds}
        if sequence is not None:
            retrieval.timings.update(sequence.timings)
        return retrieval

    def with_source(
        self, source: str, sequence: SequenceStage | None = None, sequence_share: float | None = None
    ) -> Retrieval:
        """The same fitted stage serving pools from another ``source`` (arrays are shared, not copied).

        Args:
            source: ``"als"``, ``"sequence"`` or ``"mix"``.
            sequence: a sequence stage fitted on the same log (default: this stage's own).
            sequence_share: the mix share (default: the config's).
        """
        config = dataclasses.replace(
            self.config,
            source=source,
            sequence_share=self.config.sequence_share if sequence_share is None else sequence_share,
            sequence=self.config.sequence if sequence is None else sequence.config,
        )
        other = type(self)(
            config,
            self.listener_ids,
            self.track_ids,
            self.user_vectors,
            self.track_vectors,
            self.index,
            self.explicit,
            self.blocked,
            self.heard,
            self.popularity,
            sequence=self.sequence if sequence is None else sequence,
        )
        other.timings = dict(self.timings)
        return other

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(len(users), size)`` int64 track indices, best first, ``-1`` where the catalogue runs out.

        The contract of :meth:`musicenv.world.World.candidate_pools`: blocked tracks, tracks of
        blocked artists and, with ``explicit_filter``, explicit tracks are removed and the pool
        refilled from further down the ranking. The config's ``source`` picks the ranking. Pools
        already built are served from :attr:`pool_cache` (a pool never changes once the stage is
        fitted).
        """
        return self.pool_cache.pools(users, size, explicit_filter)

    def scores(self, users: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """ALS scores ``user . track`` for ``(B,)`` users and ``(B, K)`` tracks: ``(B, K)`` float32.

        Entries of ``tracks`` below 0 (pool padding) score ``-inf``.
        """
        users = np.asarray(users, dtype=np.int64)
        tracks = np.asarray(tracks, dtype=np.int64)
        out = np.einsum("bf,bkf->bk", self.user_vectors[users], self.track_vectors[np.maximum(tracks, 0)])
        out[tracks < 0] = -np.inf
        return out

    def user_index(self, user_ids: np.ndarray | list[str]) -> np.ndarray:
        """User indices of ``user_ids`` (int64); a KeyError names ids this retrieval does not know."""
        ids = np.asarray(user_ids, dtype=str)
        found = np.searchsorted(self.listener_ids, ids)
        found = np.minimum(found, max(self.n_users - 1, 0))
        missing = (self.n_users == 0) | (self.listener_ids[found] != ids)
        if np.any(missing):
            raise KeyError(f"unknown user ids: {ids[missing][:5].tolist()}")
        return found.astype(np.int64)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the retrieval stage to ``folder`` atomically.

        The folder holds ``vectors.npz`` (ids, vectors, flags, block and play lists as plain
        arrays, no pickle), ``index/`` (one Annoy file per norm band and ``bands.npz``) and
        ``manifest.json`` (format, version, the config as JSON, shapes, and the SHA-256 of each
        file), and with a sequence stage ``sequence/`` (:meth:`SequenceStage.save
        <world_model.sequence.SequenceStage.save>`).
        """
        with atomic_folder(folder, FORMAT) as staging:
            np.savez(
                staging / _VECTORS,
                listener_ids=self.listener_ids,
                track_ids=self.track_ids,
                user_vectors=self.user_vectors,
                track_vectors=self.track_vectors,
                explicit=self.explicit,
                popularity=self.popularity,
                blocked_indptr=self.blocked.indptr,
                blocked_indices=self.blocked.indices,
                heard_indptr=self.heard.indptr,
                heard_indices=self.heard.indices,
                heard_counts=self.heard.data.astype(np.int32),
            )
            self.index.save(staging / _INDEX)
            if self.sequence is not None:
                self.sequence.save(staging / _SEQUENCE)
            shapes = {"n_users": self.n_users, "n_tracks": self.n_tracks, "factors": self.factors}
            write_manifest(staging, FORMAT, FORMAT_VERSION, {"retrieval": self.config.to_dict(), **shapes})

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Retrieval:
        """Read a folder written by :meth:`save`.

        Raises:
            ArtifactError: no manifest, another format or format version, a missing or corrupted
                file (checksums are verified before anything is read), or contents whose shapes
                disagree with the manifest.
        """
        folder = Path(folder)
        settings = read_manifest(folder, FORMAT, FORMAT_VERSION)["config"]
        try:
            config = RetrievalConfig.from_dict(settings["retrieval"])
            n_users, n_tracks, factors = settings["n_users"], settings["n_tracks"], settings["factors"]
            data = read_arrays(folder / _VECTORS)
            blocked = sp.csr_matrix(
                (np.ones(len(data["blocked_indices"]), dtype=np.int8), data["blocked_indices"], data["blocked_indptr"]),
                shape=(n_users, n_tracks),
            )
            heard = sp.csr_matrix(
                (data["heard_counts"], data["heard_indices"], data["heard_indptr"]), shape=(n_users, n_tracks)
            )
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise ArtifactError(f"{folder}: unreadable retrieval artifact ({error!r})") from error
        expected = {
            "user_vectors": (n_users, factors),
            "track_vectors": (n_tracks, factors),
            "listener_ids": (n_users,),
            "track_ids": (n_tracks,),
            "explicit": (n_tracks,),
            "popularity": (n_tracks,),
        }
        for name, shape in expected.items():
            if name not in data:
                raise ArtifactError(f"{folder / _VECTORS}: no {name} array")
            if data[name].shape != shape:
                raise ArtifactError(f"{folder / _VECTORS}: {name} has shape {data[name].shape}, expected {shape}")
        try:
            index = TrackIndex.load(folder / _INDEX, config.search_k, expected=(n_tracks, factors))
        except (KeyError, ValueError, OSError) as error:
            raise ArtifactError(f"{folder / _INDEX}: unreadable track index ({error})") from error
        sequence = None
        if config.source in ("sequence", "mix"):
            sequence = SequenceStage.load(folder / _SEQUENCE)
            if (sequence.n_users, sequence.n_tracks) != (n_users, n_tracks):
                raise ArtifactError(
                    f"{folder / _SEQUENCE}: holds {sequence.n_users} users x {sequence.n_tracks} tracks, "
                    f"expected {n_users} x {n_tracks}"
                )
        return cls(
            config=config,
            listener_ids=data["listener_ids"],
            track_ids=data["track_ids"],
            user_vectors=data["user_vectors"],
            track_vectors=data["track_vectors"],
            index=index,
            explicit=data["explicit"],
            blocked=blocked,
            heard=heard,
            popularity=data["popularity"],
            sequence=sequence,
        )


def _block_matrix(log: ListeningLog, user_ids: np.ndarray) -> sp.csr_matrix:
    """Per user, the tracks never to offer: blocked tracks and every track of a blocked artist.

    Blocks of users the log has no plays of are dropped (they have no user index here).
    """
    shape = (len(user_ids), log.n_tracks)
    blocks = log.blocks
    if blocks is None or len(blocks) == 0:
        return sp.csr_matrix(shape, dtype=np.int8)
    users = pd.Index(user_ids).get_indexer(blocks["user_id"].astype(str))
    track_rows = pd.Index(log.tracks["track_id"]).get_indexer(blocks["track_id"].astype(object))
    by_track = (users >= 0) & blocks["track_id"].notna().to_numpy() & (track_rows >= 0)
    rows, cols = [users[by_track]], [track_rows[by_track]]
    by_artist = (users >= 0) & blocks["artist_id"].notna().to_numpy()
    if by_artist.any():
        artist_of = pd.DataFrame({"artist_id": log.tracks["artist_id"], "track": np.arange(log.n_tracks)})
        wanted = pd.DataFrame({"user": users[by_artist], "artist_id": blocks["artist_id"][by_artist].to_numpy()})
        pairs = wanted.merge(artist_of.dropna(subset=["artist_id"]), on="artist_id")
        rows.append(pairs["user"].to_numpy())
        cols.append(pairs["track"].to_numpy())
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(rows_all), dtype=np.int8), (rows_all, cols_all)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix
