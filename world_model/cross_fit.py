"""The cross-fitted world: a second learned world, from sessions the training world never saw.

Why
    A learned world's verdict on an agent (its mean return there) can only be checked against
    listeners who were not in its logs. With the synthetic ground truth that check is exact
    (``eval.py``'s ground-truth run). With real logs (the MSSD) there is no ground truth, and the
    only honest check left is another world learned the same way from *other* sessions: the
    **cross world**. An agent that exploits the training world's errors (overfitted listeners,
    tracks the model is wrongly fond of) meets different errors there, so the return it gets in
    the cross world, beside the training world's, estimates the sim-to-real gap
    (``eval.py --cross-world``; the benchmark ``benchmarks/fidelity.py`` measures how well).

Where its sessions come from
    * **A world learned from a ground truth's log** (the default world): a fresh log of the same
      ground truth, the same number of sessions and the same logging policy, simulated from
      :func:`cross_log_seed` of the training log's seed, and learned with the same
      :class:`~world_model.world.WorldConfig` (:func:`cross_world_for`; cached like the default
      world, :func:`~world_model.world.default_world`).
    * **A user's own logs** (the MSSD's rows, a CSV): :func:`split_sessions` deals the log's
      sessions into two halves at build time and :func:`build_cross_fitted_worlds` learns the
      training world from one and the cross world from the other. The rule: each listener's
      sessions are ranked by a salted hash of their session id, and alternate between the halves
      in that order, starting with the half a salted hash of the listener id picks. So every
      listener with two or more sessions has half of them (one more, for an odd count) in each
      half, a listener with one session lands in either half with even odds, and logs without
      user ids (the MSSD: each session is its own listener) are split by the session's hash. The
      split depends only on the ids and ``seed``: the same log gives the same halves, on any
      machine. Both halves keep the whole track catalogue.

How the cross world answers the training world's episodes
    The episodes (listeners, contexts, pools, observations, uniforms) come from the training
    world; the cross world's session model only answers, exactly as the ground truth does in a
    sim-to-real run: :func:`cross_responder` translates the training world's listener and track
    indices to the cross world's by id (:class:`musicenv.responders.TranslatedResponder`, the
    ground-truth run's translation). A listener or track the cross world never saw in its own
    log is answered as the cross world would answer a newcomer: a listener with a zero ALS vector
    (what ALS gives a listener without plays) and their premium flag, a track with its catalogue
    row's features, a zero ALS vector and no plays, and no listening history with either. With
    the ground truth's fresh log most listeners are known to both worlds; with the MSSD's
    session-listeners none is, so there the cross world judges every episode as a newcomer's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicenv.data import ListeningLog
from musicenv.responders import TranslatedResponder, translate_ids
from world_model.features import track_feature_matrix, user_feature_matrix
from world_model.history import ListeningHistory
from world_model.learned_session import LearnedSessionModel
from world_model.world import (
    GroundTruthProvenance,
    LearnedWorld,
    WorldConfig,
    build_world,
    default_world,
    load_world,
)

CROSS_LOG_SEED_OFFSET = 1_000_003
""":func:`cross_log_seed` adds this to the training log's seed: far from the small seeds that
benchmarks give their own logs (``log_seed + 1`` is ``benchmarks/user_model.py``'s held-out log)."""

DEFAULT_CROSS = "default"
"""``eval.py --cross-world default``: the cross world of the evaluated world (:func:`cross_world_for`)."""


def cross_log_seed(log_seed: int) -> int:
    """The seed of the fresh ground-truth log the cross world of a world learned from ``log_seed``'s log reads."""
    return log_seed + CROSS_LOG_SEED_OFFSET


def _hash_rank(values: np.ndarray, salt: str) -> np.ndarray:
    """A salted 64-bit hash of each id (as is_eval_user hashes listeners)."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{salt}:{value}".encode(), digest_size=8).digest(), "little")
            for value in values
        ],
        dtype=np.uint64,
    )


def session_halves(log: ListeningLog, seed: int = 0) -> np.ndarray:
    """``(n_sessions,)`` int8, the half (0: training world, 1: cross world) of each session (module doc's rule).

    Sessions are numbered as :meth:`~musicenv.data.ListeningLog.session_codes` numbers them.
    """
    codes = log.session_codes()
    first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    session_ids = log.plays["session_id"].to_numpy(dtype=str)[first]
    listeners = log.listener_ids().to_numpy(dtype=str)[first]
    session_hash = _hash_rank(session_ids, f"musicenv-cross-fit-{seed}:session")
    listener_codes, unique_listeners = pd.factorize(listeners)
    listener_hash = _hash_rank(np.asarray(unique_listeners, dtype=str), f"musicenv-cross-fit-{seed}:listener")
    # Within each listener, sessions in hash order; rank counts from 0 per listener.
    order = np.lexsort((session_ids, session_hash, listener_codes))
    sorted_listeners = listener_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_listeners[1:] != sorted_listeners[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    halves = np.empty(len(order), dtype=np.int8)
    halves[order] = (rank + (listener_hash[sorted_listeners] & np.uint64(1)).astype(np.int64)) % 2
    return halves


def split_sessions(log: ListeningLog, seed: int = 0) -> tuple[ListeningLog, ListeningLog]:
    """The two halves of ``log`` (:func:`session_halves`): the training world's and the cross world's.

    Each half keeps whole sessions, the whole track catalogue and the block lists; together they
    hold every play exactly once.

    Raises:
        ValueError: one half would be empty (a log of a single session).
    """
    halves = session_halves(log, seed)[log.session_codes()]
    parts = []
    for half in (0, 1):
        plays = log.plays[halves == half].reset_index(drop=True)
        if plays.empty:
            raise ValueError(f"{log.source}: a log of {log.n_sessions} session(s) cannot be split into two worlds")
        parts.append(ListeningLog(plays, log.tracks, log.blocks, f"{log.source} (cross-fit half {half})"))
    return parts[0], parts[1]


def build_cross_fitted_worlds(
    log: ListeningLog,
    config: WorldConfig | None = None,
    provenance: GroundTruthProvenance | None = None,
    seed: int = 0,
) -> tuple[LearnedWorld, LearnedWorld]:
    """The training world and its cross world, each learned from one half of ``log`` (:func:`split_sessions`).

    Both with ``config``; save them side by side (``world.save("worlds/mine")``,
    ``cross.save("worlds/mine-cross")``) and evaluate with
    ``eval.py --world worlds/mine --cross-world worlds/mine-cross``. ``seed`` salts the split.
    A plain :func:`~world_model.world.build_world` of the whole log is unchanged by this option.
    """
    training, cross = split_sessions(log, seed)
    return build_world(training, config, provenance), build_world(cross, config, provenance)


def cross_world_for(world: LearnedWorld) -> LearnedWorld:
    """The cross world of a world learned from a ground truth's log: a fresh log of it, learned alike.

    The ground truth, its configuration, the log's size and the world's configuration are the
    world's own (its provenance); the log's seed is :func:`cross_log_seed` of the world's. Built
    and cached as :func:`~world_model.world.default_world` builds and caches.

    Raises:
        ValueError: the world was learned from logs without a ground truth: build its cross
            world at build time (:func:`build_cross_fitted_worlds`) and name the folder.
    """
    provenance = world.provenance
    if provenance is None:
        raise ValueError(
            "this world was learned from logs without a ground truth (e.g. the MSSD's): its cross world "
            "must come from a split at build time (world_model.cross_fit.build_cross_fitted_worlds); "
            "name the saved cross world's folder"
        )
    from musicenv.groundtruth import GroundTruthConfig

    return default_world(
        groundtruth_seed=provenance.seed,
        log_sessions=provenance.log_sessions,
        log_seed=cross_log_seed(provenance.log_seed),
        config=world.config,
        groundtruth_config=GroundTruthConfig.from_dict(provenance.config),
    )


def open_cross_world(spec: str | os.PathLike[str], world: LearnedWorld) -> LearnedWorld:
    """The cross world ``eval.py --cross-world`` names: ``default`` (:func:`cross_world_for`) or a saved folder."""
    if isinstance(spec, str) and spec == DEFAULT_CROSS:
        return cross_world_for(world)
    return load_world(Path(spec))


def _lookup(known: Any) -> Any:
    """An id lookup into ``known`` ids that gives ``-1`` for ids it does not hold."""
    index = pd.Index(np.asarray(known, dtype=str))
    return lambda ids: index.get_indexer(np.asarray(ids, dtype=str))


def cross_responder(cross: LearnedWorld, learned: LearnedWorld) -> TranslatedResponder:
    """The cross world's session model, answering in ``learned``'s indices (module doc: newcomers included).

    Listeners and tracks the cross world does not know get rows of their own, appended to the
    cross world's feature tables in a copy of its session model (the cross world is unchanged).
    """
    model = cross.session_model
    stats = model.feature_stats
    if stats is None:
        raise ValueError("the cross world's session model has no feature statistics to featurise newcomers with")
    user_ids = np.asarray(learned.user_ids, dtype=str)
    track_ids = learned.tracks["track_id"].to_numpy(dtype=str)
    user_index, track_index = _lookup(cross.user_ids), _lookup(cross.tracks["track_id"])
    users, tracks = user_index(user_ids), track_index(track_ids)
    new_users, new_tracks = np.flatnonzero(users < 0), np.flatnonzero(tracks < 0)
    n_users, n_tracks = len(model.user_features), len(model.track_features)
    user_rows = user_feature_matrix(
        np.zeros((len(new_users), model.user_features.shape[1] - 1)), learned.premium[new_users], stats
    )
    vector_dim = model.track_feature_layout["als"][1] - model.track_feature_layout["als"][0]
    track_rows = track_feature_matrix(
        learned.tracks.iloc[new_tracks].reset_index(drop=True),
        np.zeros((len(new_tracks), vector_dim)),
        np.zeros(len(new_tracks)),
        stats,
    )
    extended = LearnedSessionModel(
        model.response_model,
        model.session_end,
        np.concatenate([model.track_features, track_rows]),
        np.concatenate([model.user_features, user_rows]),
        stats,
        numpy_threshold=model.numpy_threshold,
        device=model.device,
        history=None if model.history is None else _with_new_tracks(model.history, len(new_tracks)),
    )
    unknown_users = np.full(len(users), -1, dtype=np.int64)
    unknown_users[new_users] = n_users + np.arange(len(new_users))
    unknown_tracks = np.full(len(tracks), -1, dtype=np.int64)
    unknown_tracks[new_tracks] = n_tracks + np.arange(len(new_tracks))
    return TranslatedResponder(
        extended,
        translate_ids(user_index, user_ids, "user", unknown_users),
        translate_ids(track_index, track_ids, "track", unknown_tracks),
    )


def _with_new_tracks(history: ListeningHistory, n_new: int) -> ListeningHistory:
    """``history`` over a catalogue with ``n_new`` more tracks, of one new artist and genre, that nobody played.

    Listeners appended after the history's own have no keys, so they need nothing; appended
    tracks change the key stride, so the keys are rewritten.
    """
    n_tracks, n_artists = history.n_tracks, history.n_artists
    keys = history.keys // n_tracks * (n_tracks + n_new) + history.keys % n_tracks
    artist_keys = history.artist_keys // n_artists * (n_artists + 1) + history.artist_keys % n_artists
    return dataclasses.replace(
        history,
        keys=keys,
        n_tracks=n_tracks + n_new,
        track_artists=np.append(history.track_artists, np.full(n_new, n_artists, dtype=np.int64)),
        artist_keys=artist_keys,
        n_artists=n_artists + 1,
        track_genres=np.append(history.track_genres, np.full(n_new, history.track_genres.max(initial=-1) + 1)),
    )


__all__ = [
    "CROSS_LOG_SEED_OFFSET",
    "DEFAULT_CROSS",
    "build_cross_fitted_worlds",
    "cross_log_seed",
    "cross_responder",
    "cross_world_for",
    "open_cross_world",
    "session_halves",
    "split_sessions",
]
