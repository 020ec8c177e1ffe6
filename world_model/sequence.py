"""Sequence-aware retrieval (De Boom et al., 2017): session track vectors, a GRU taste vector, Annoy.

The second way Spotify finds candidates, next to ALS (:mod:`world_model.retrieval`):

1. track vectors from listening sessions by word2vec's CBOW with negative sampling, each
   session an ordered document of tracks (:mod:`world_model.session_vectors`), centred and
   scaled to unit length (:func:`centred_unit_rows`) so that inner product is cosine
   similarity, as De Boom et al. compare vectors. Centring matters: on the default world the
   L2-trained GRU's ``next_track_hit_at_10`` is 0.045 on raw unit vectors (below the last-track
   baseline's 0.067) and 0.093 on centred ones;
2. a GRU that reads the vectors of a listener's plays in order and predicts the vector of the
   next play, trained with an L2 loss (:mod:`world_model.taste_model`);
3. an Annoy index over the track vectors (:class:`~world_model.ann_index.TrackIndex`, one band:
   unit vectors need no norm bands), queried with the predicted "taste vector".

What is a play here
    Documents and training sequences hold the *non-skipped* plays (listened or completed) unless
    ``keep_skips``: a skip says the track did not belong where it was played, so it is no
    evidence of which tracks go together nor of what the listener wants next.

The taste vector of a pool
    A pool is built at ``reset``, when the session is still empty, so the taste vector of a user
    is the GRU's prediction after the user's last ``history_plays`` non-skipped plays in the
    fitted log, in time order (date, then session, then position). The vectors are computed once
    at fit time (:attr:`SequenceStage.taste_vectors`). A user without such plays has a zero taste
    vector and gets the catalogue by popularity (:class:`~world_model.candidates.CandidatePool`).
    The ``sequence_rnn`` agent (:mod:`agents.baselines`) feeds the same history followed by the
    session so far.

Usage::

    stage = SequenceStage.fit(log, SequenceConfig(), seed=0)
    taste = stage.predict([[3, 17, 5]])                  # (1, dim) taste vector after three plays
    stage.save("runs/world/retrieval/sequence")
    stage = SequenceStage.load("runs/world/retrieval/sequence")
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from musicenv.artifacts import ArtifactError, atomic_folder, read_arrays, read_manifest, write_manifest
from musicenv.configs import config_from_dict
from world_model.ann_index import TrackIndex
from world_model.interactions import listener_codes
from world_model.session_vectors import Documents, SessionVectorConfig, fit_session_vectors
from world_model.taste_model import TasteModel, TasteModelConfig, fit_taste_model, padded

if TYPE_CHECKING:
    from musicenv.data import ListeningLog
    from musicenv.world import World

__all__ = [
    "SEQUENCE_FORMAT",
    "SEQUENCE_FORMAT_VERSION",
    "SequenceConfig",
    "SequenceStage",
    "centred_unit_rows",
    "listener_documents",
    "next_track_hit_rates",
    "session_documents",
    "simulate_world_log",
]

SEQUENCE_FORMAT = "musicenv.sequence"
SEQUENCE_FORMAT_VERSION = 1
_VECTORS = "vectors.npz"
_MODEL = "taste_model.pt"
_INDEX = "index"


@dataclass(frozen=True)
class SequenceConfig:
    """Settings of the sequence stage. Defaults are for the default ground-truth world.

    Attributes:
        dim: track vector dimension (:class:`~world_model.session_vectors.SessionVectorConfig`).
        window: CBOW context tracks on each side.
        negatives: CBOW noise tracks per target.
        vector_epochs: CBOW passes over the sessions.
        vector_learning_rate: CBOW SparseAdam step size.
        vector_batch_size: CBOW examples per step.
        hidden_size: GRU state size (:class:`~world_model.taste_model.TasteModelConfig`).
        max_length: plays per GRU training sequence.
        taste_epochs: GRU passes over the training sequences.
        taste_learning_rate: GRU Adam step size.
        taste_batch_size: GRU sequences per step.
        loss: ``"l2"`` (De Boom et al., the default) or ``"sampled_softmax"``; both are compared
            in ``benchmarks/RESULTS.md``, "Sequence-aware retrieval".
        softmax_negatives: noise tracks per batch of the sampled softmax.
        keep_skips: count skipped plays as plays (see the module docstring).
        history_plays: a user's last plays in the log that give the pool's taste vector.
        n_trees: Annoy trees of the sequence index.
        search_k: Annoy nodes inspected per query; -1 for Annoy's default ``n_trees * n``.
    """

    dim: int = 32
    window: int = 5
    negatives: int = 5
    vector_epochs: int = 5
    vector_learning_rate: float = 0.01
    vector_batch_size: int = 1024
    hidden_size: int = 64
    max_length: int = 30
    taste_epochs: int = 8
    taste_learning_rate: float = 3e-3
    taste_batch_size: int = 128
    loss: str = "l2"
    softmax_negatives: int = 256
    keep_skips: bool = False
    history_plays: int = 10
    n_trees: int = 10
    search_k: int = 4000

    def __post_init__(self) -> None:
        self.vector_config()  # validates
        self.taste_config()
        if self.history_plays < 0 or self.n_trees < 1:
            raise ValueError(f"SequenceConfig: history_plays must be >= 0 and n_trees >= 1, got {self}")

    def vector_config(self) -> SessionVectorConfig:
        return SessionVectorConfig(
            dim=self.dim,
            window=self.window,
            negatives=self.negatives,
            epochs=self.vector_epochs,
            learning_rate=self.vector_learning_rate,
            batch_size=self.vector_batch_size,
        )

    def taste_config(self) -> TasteModelConfig:
        return TasteModelConfig(
            hidden_size=self.hidden_size,
            max_length=self.max_length,
            epochs=self.taste_epochs,
            learning_rate=self.taste_learning_rate,
            batch_size=self.taste_batch_size,
            loss=self.loss,
            softmax_negatives=self.softmax_negatives,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SequenceConfig:
        return config_from_dict(cls, values)


def _kept_plays(log: ListeningLog, keep_skips: bool) -> np.ndarray:
    return np.ones(log.n_plays, dtype=bool) if keep_skips else np.asarray(log.response_codes()) != 0


def session_documents(log: ListeningLog, keep_skips: bool = False) -> Documents:
    """Each session's plays (non-skipped unless ``keep_skips``) in position order, as track indices.

    Sessions without a kept play give empty documents (they teach nothing and cost nothing).
    """
    keep = _kept_plays(log, keep_skips)
    sessions = np.asarray(log.session_codes())[keep]
    counts = np.bincount(sessions, minlength=log.n_sessions)
    # Plays are sorted by session then position, so the kept plays already are in document order.
    return Documents(np.asarray(log.track_codes())[keep].astype(np.int64), np.concatenate([[0], np.cumsum(counts)]))


def listener_documents(log: ListeningLog, codes: np.ndarray, n_listeners: int, keep_skips: bool = False) -> Documents:
    """Each listener's plays in time order (date, session, position): document ``u`` is listener ``u``.

    Args:
        log: the listening log.
        codes: ``(n_plays,)`` listener index of every play (:func:`~world_model.interactions.listener_codes`).
        n_listeners: number of listeners (documents).
        keep_skips: keep skipped plays.
    """
    keep = _kept_plays(log, keep_skips)
    dates = pd.to_datetime(log.plays["date"]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((log.plays["position"].to_numpy(), np.asarray(log.session_codes()), dates, codes))
    order = order[keep[order]]
    counts = np.bincount(codes[order], minlength=n_listeners)
    tokens = np.asarray(log.track_codes())[order].astype(np.int64)
    return Documents(tokens, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def centred_unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Non-zero rows minus their mean, then scaled to unit length; zero rows stay zero (float32).

    CBOW vectors share a common direction (on the default world the mean cosine of two random
    tracks is about 0.27); an L2-trained predictor regresses towards it and then ranks the
    "central" tracks first for everyone. Removing the mean (Mu & Viswanath, "All-but-the-top",
    ICLR 2018) leaves the directions that tell tracks apart.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    used = np.any(vectors != 0, axis=1)
    centred = np.where(used[:, None], vectors - vectors[used].mean(axis=0), 0.0) if used.any() else vectors
    return unit_rows(centred)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (float32)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


class SequenceStage:
    """Fitted sequence stage: unit track vectors, the GRU taste model, its index, users' taste vectors.

    Build one with :meth:`fit` or :meth:`load`.

    Attributes:
        config: the :class:`SequenceConfig` it was fitted with.
        seed: the seed it was fitted with.
        track_vectors: ``(n_tracks, dim)`` float32 unit CBOW vectors; zero for a track never played
            next to another in a kept session.
        model: the :class:`~world_model.taste_model.TasteModel` (eval mode, CPU).
        index: Annoy index over ``track_vectors``.
        history: :class:`~world_model.session_vectors.Documents`, row ``u`` = user ``u``'s last
            ``history_plays`` kept plays in time order.
        taste_vectors: ``(n_users, dim)`` float32, the model's prediction after ``history``; zero
            for a user without history.
        timings: seconds spent by :meth:`fit` (``sequence_vectors_seconds``,
            ``sequence_taste_seconds``, ``sequence_index_seconds``); empty after :meth:`load`.
        losses: the taste model's mean training loss per epoch (:meth:`fit` only).
    """

    def __init__(
        self,
        config: SequenceConfig,
        seed: int,
        track_vectors: np.ndarray,
        model: TasteModel,
        index: TrackIndex,
        history: Documents,
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self.track_vectors = np.ascontiguousarray(track_vectors, dtype=np.float32)
        self.model = model.eval()
        self.index = index
        self.history = history
        self.taste_vectors = self.predict([history[u] for u in range(history.n_documents)])
        self.timings: dict[str, float] = {}
        self.losses: list[float] = []

    @property
    def n_tracks(self) -> int:
        return len(self.track_vectors)

    @property
    def n_users(self) -> int:
        return self.history.n_documents

    @classmethod
    def fit(
        cls,
        log: ListeningLog,
        config: SequenceConfig | None = None,
        seed: int = 0,
        listeners: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> SequenceStage:
        """Learn track vectors from ``log``'s sessions, then the taste model from its listeners' plays.

        Args:
            log: a :class:`musicenv.data.ListeningLog`.
            config: settings; the defaults when None.
            seed: seeds CBOW, the GRU and the Annoy build.
            listeners: ``(ids, codes)`` of :func:`~world_model.interactions.listener_codes`, when the
                caller has them; user ``u`` of the stage is ``ids[u]``.
        """
        config = config or SequenceConfig()
        ids, codes = listeners if listeners is not None else listener_codes(log)
        started = time.perf_counter()
        raw = fit_session_vectors(session_documents(log, config.keep_skips), log.n_tracks, config.vector_config(), seed)
        vectors = centred_unit_rows(raw)
        vectors_seconds = time.perf_counter() - started
        started = time.perf_counter()
        streams = listener_documents(log, codes, len(ids), config.keep_skips)
        model, losses = fit_taste_model(streams, vectors, config.taste_config(), seed)
        taste_seconds = time.perf_counter() - started
        started = time.perf_counter()
        index = TrackIndex.build(vectors, config.n_trees, seed, config.search_k, n_bands=1)
        index_seconds = time.perf_counter() - started
        stage = cls(config, seed, vectors, model, index, last_plays(streams, config.history_plays))
        stage.timings = {
            "sequence_vectors_seconds": vectors_seconds,
            "sequence_taste_seconds": taste_seconds,
            "sequence_index_seconds": index_seconds,
        }
        stage.losses = losses
        return stage

    def predict(self, sequences: Sequence[Sequence[int] | np.ndarray], batch_size: int = 4096) -> np.ndarray:
        """Taste vectors after each sequence of track indices (in play order): ``(B, dim)`` float32.

        Only the last ``config.max_length`` plays of a sequence are read (what the model was trained
        on); an empty sequence gives the zero vector.
        """
        out = np.zeros((len(sequences), self.track_vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(sequences), batch_size):
            chunk = list(sequences[start : start + batch_size])
            longest = min(max((len(s) for s in chunk), default=0), self.config.max_length)
            inputs, lengths = padded(self.track_vectors, chunk, longest)
            with torch.no_grad():
                taste = self.model.taste(torch.as_tensor(inputs), torch.as_tensor(lengths))
            out[start : start + len(chunk)] = taste.numpy()
        return out

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the stage to ``folder`` atomically.

        The folder holds ``vectors.npz`` (track vectors, users' histories and taste vectors),
        ``taste_model.pt`` (the GRU's state dict), ``index/`` (Annoy) and ``manifest.json``
        (format, version, config, seed, shapes and the SHA-256 of each file).
        """
        with atomic_folder(folder, SEQUENCE_FORMAT) as staging:
            np.savez(
                staging / _VECTORS,
                track_vectors=self.track_vectors,
                taste_vectors=self.taste_vectors,
                history_tokens=self.history.tokens,
                history_offsets=self.history.offsets,
            )
            torch.save(self.model.state_dict(), staging / _MODEL)
            self.index.save(staging / _INDEX)
            shapes = {"n_users": self.n_users, "n_tracks": self.n_tracks, "dim": int(self.track_vectors.shape[1])}
            write_manifest(
                staging,
                SEQUENCE_FORMAT,
                SEQUENCE_FORMAT_VERSION,
                {"sequence": self.config.to_dict(), "seed": self.seed, **shapes},
            )

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> SequenceStage:
        """Read a folder written by :meth:`save`.

        Raises:
            ArtifactError: no manifest, another format or version, a missing or corrupted file
                (checksums are verified first), or contents whose shapes disagree with the manifest.
        """
        folder = Path(folder)
        settings = read_manifest(folder, SEQUENCE_FORMAT, SEQUENCE_FORMAT_VERSION)["config"]
        try:
            config = SequenceConfig.from_dict(settings["sequence"])
            n_users, n_tracks, dim = settings["n_users"], settings["n_tracks"], settings["dim"]
            data = read_arrays(folder / _VECTORS)
            state = torch.load(folder / _MODEL, weights_only=True, map_location="cpu")
            model = TasteModel(dim, config.hidden_size)
            model.load_state_dict(state)
            history = Documents(data["history_tokens"].astype(np.int64), data["history_offsets"].astype(np.int64))
        except (KeyError, TypeError, ValueError, RuntimeError, OSError) as error:
            raise ArtifactError(f"{folder}: unreadable sequence artifact ({error!r})") from error
        if data["track_vectors"].shape != (n_tracks, dim):
            raise ArtifactError(
                f"{folder / _VECTORS}: track_vectors has shape {data['track_vectors'].shape}, "
                f"expected {(n_tracks, dim)}"
            )
        if history.n_documents != n_users or history.offsets[-1] != len(history.tokens):
            raise ArtifactError(f"{folder / _VECTORS}: the histories do not describe {n_users} users")
        try:
            index = TrackIndex.load(folder / _INDEX, config.search_k, expected=(n_tracks, dim))
        except (KeyError, ValueError, OSError) as error:
            raise ArtifactError(f"{folder / _INDEX}: unreadable track index ({error})") from error
        stage = cls(config, settings["seed"], data["track_vectors"], model, index, history)
        if not np.allclose(stage.taste_vectors, data["taste_vectors"], atol=1e-5):
            raise ArtifactError(f"{folder}: the taste model does not reproduce the saved taste vectors")
        return stage


def last_plays(streams: Documents, n: int) -> Documents:
    """The last ``n`` plays of each document."""
    lasts = [streams[d][max(len(streams[d]) - n, 0) :] if n else [] for d in range(streams.n_documents)]
    return Documents.from_sequences(lasts)


def next_track_hit_rates(
    stage: SequenceStage,
    sessions: Documents,
    users: np.ndarray | None = None,
    k: int = 10,
    batch_size: int = 2048,
) -> dict[str, float]:
    """Share of next plays found in the top ``k``, for the taste model and for "most similar to last track".

    For each session and each position ``t >= 1``, the play at ``t`` is predicted from the plays
    before it: by the taste model after (the user's history in the stage, when ``users`` is
    given, then) the session's first ``t`` plays, and by the baseline from the vector of play
    ``t - 1`` alone. Both rank the catalogue by inner product with their query, without the
    session's first ``t`` tracks and without tracks that have no vector; a next play whose track
    has no vector counts as a miss for both.

    Args:
        stage: a fitted stage.
        sessions: held-out sessions as track indices (kept plays, in order).
        users: ``(n_sessions,)`` user index of each session in ``stage`` (``-1``: a listener without
            history there), or None (no history for any).
        k: cut-off.
        batch_size: predictions per matrix product.

    Returns:
        ``{"rnn": ..., "last_track": ..., "predictions": n}``.
    """
    prefixes, targets, lasts = [], [], []
    for d in range(sessions.n_documents):
        session = sessions[d]
        past = stage.history[int(users[d])] if users is not None and users[d] >= 0 else np.empty(0, np.int64)
        for t in range(1, len(session)):
            prefixes.append((past, session[:t]))
            targets.append(session[t])
            lasts.append(session[t - 1])
    if not targets:
        raise ValueError("no held-out session has two plays to predict from")
    usable = np.any(stage.track_vectors != 0, axis=1)
    hits = {"rnn": 0, "last_track": 0}
    for start in range(0, len(targets), batch_size):
        chunk = prefixes[start : start + batch_size]
        queries = {
            "rnn": stage.predict([np.concatenate([past, now]) for past, now in chunk]),
            "last_track": stage.track_vectors[np.asarray(lasts[start : start + batch_size])],
        }
        wanted = np.asarray(targets[start : start + batch_size])
        for name, query in queries.items():
            scores = query @ stage.track_vectors.T
            scores[:, ~usable] = -np.inf
            for row, (_, now) in enumerate(chunk):
                scores[row, now] = -np.inf
            top = np.argpartition(-scores, k, axis=1)[:, :k]
            hits[name] += int(((top == wanted[:, None]).any(axis=1) & usable[wanted]).sum())
    n = len(targets)
    return {"rnn": hits["rnn"] / n, "last_track": hits["last_track"] / n, "predictions": float(n)}


def simulate_world_log(world: World, n_sessions: int, length: int, seed: int = 0, pool_size: int = 100) -> ListeningLog:
    """Logs of ``world`` under a uniformly random logging policy, for worlds that keep no logs.

    Sessions draw a train user and context (``world.sample_sessions``), the user's candidate
    pool, and then play uniformly random unplayed tracks of the pool; responses and leaving come
    from ``world.session_model``, as the ground-truth world's shuffled share of logs is made.
    All randomness is from ``seed``.

    Args:
        world: any :class:`musicenv.world.World` with ``user_ids`` and a ``tracks`` table.
        n_sessions: sessions to simulate.
        length: most plays per session.
        seed: seeds the whole simulation.
        pool_size: candidates per session.
    """
    from musicenv.data import ListeningLog
    from musicenv.world import CONTEXT_TYPES, RESPONSES, sample_responses

    rng = np.random.default_rng(seed)
    users, contexts = world.sample_sessions(rng, n_sessions, "train")
    pools = world.candidate_pools(users, pool_size)
    model = world.session_model
    state = model.initial_state(users, contexts)
    order = np.argsort(rng.random(pools.shape) + (pools < 0), axis=1, kind="stable")  # padding last
    active = np.ones(n_sessions, dtype=bool)
    columns: dict[str, list[np.ndarray]] = {"session": [], "position": [], "track": [], "response": []}
    for position in range(min(length, pools.shape[1])):
        tracks = pools[np.arange(n_sessions), order[:, position]]
        active &= tracks >= 0
        probs = model.response_probs(state, np.maximum(tracks, 0)[:, None])[:, 0]
        responses = sample_responses(probs, rng.random(n_sessions))
        for name, values in zip(columns, (np.arange(n_sessions), np.full(n_sessions, position + 1), tracks, responses)):
            columns[name].append(values[active])
        state = model.advance(state, np.maximum(tracks, 0), responses)
        active &= rng.random(n_sessions) >= model.leave_probs(state)
    session = np.concatenate(columns["session"])
    user_ids = np.asarray(world.user_ids, dtype=str)
    track_ids = world.tracks["track_id"].to_numpy(dtype=str)
    plays = pd.DataFrame(
        {
            "session_id": np.char.add("sim", session.astype(str)),
            "user_id": user_ids[users[session]],
            "position": np.concatenate(columns["position"]),
            "track_id": track_ids[np.concatenate(columns["track"])],
            "response": np.asarray(RESPONSES)[np.concatenate(columns["response"])],
            "context_type": np.asarray(CONTEXT_TYPES)[contexts.context_type[session]],
            "hour": contexts.hour[session],
            "premium": True,
            "date": "2018-07-15",
        }
    )
    return ListeningLog.from_frames(plays, world.tracks)
