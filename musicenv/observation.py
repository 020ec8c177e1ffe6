"""Observations of ``ListeningSession-v0``, built from compact indices.

An observation is a flat ``Dict`` of fixed-shape arrays (L = ``playlist_length``, M = ``pool_size``,
``d_user`` / ``d_track`` the widths of the world's feature tables):

==================  ======================  =========  ==============================================
key                 shape                   dtype      content
==================  ======================  =========  ==============================================
``user``            ``(d_user,)``           float32    ``world.user_features[u]``
``context``         ``(8,)``                float32    :func:`musicenv.world.context_features`
``history``         ``(L, d_track + 3)``    float32    played tracks' features, then the response
                                                       one-hot (skip, listen, complete); zero rows
                                                       after the last play
``history_mask``    ``(L,)``                float32    1.0 where a track was played
``candidates``      ``(M, d_track)``        float32    ``world.track_features[pool]``, zero rows for
                                                       padding (a catalogue smaller than M)
``action_mask``     ``(M,)``                int8       1 where the slot can be played: not padding
                                                       and not played yet
``familiarity``     ``(M, k)``              float32    the listener's familiarity with each candidate
                                                       (k = 12 :data:`~musicenv.world.FAMILIARITY_FEATURES`:
                                                       past plays, completions and skips of the track
                                                       and of its artist in the logs the world was
                                                       learned from, then whether its artist played
                                                       one or two plays ago and how often in the
                                                       last 8, whether its genre played last and
                                                       how much of it the last 8 held); zero rows
                                                       for padding
``history_familiarity`` ``(L, k)``          float32    the same for each played track, as it was
                                                       when it was played; zero rows after the last
                                                       play
==================  ======================  =========  ==============================================

``familiarity`` is exactly what the learned user model reads of each (listener, track) pair, so
an agent sees what the world sees (the world's own table, :func:`musicenv.world.world_familiarity`,
stored sparse; a world without one gives zeros). Its logged columns are fixed within a session;
its last five (:mod:`musicenv.familiarity`) follow the session's artists and genres and change after every
play. What the listener did with a track earlier in *this* session otherwise reaches the model,
and the agent, through the played history (``history``).

Every one of them is a function of a few integers per session: the user, the context, the pool's
track indices, the history's track indices and responses, and which slots were played. That is
what :func:`build_observations` takes, so a replay buffer stores those (docs/design.md, "Memory and
resume": a transition's candidate matrix alone is tens of KB) and rebuilds observations when it
samples; both environments build theirs with the same function, so the layouts cannot drift apart.

Compact observations
    ``observation="compact"`` (both environments) hands over those integers instead, for agents
    that read the world's feature tables themselves (docs/design.md, "Speed": candidate features are
    constant within an episode, so copying an ``(M, d_track)`` matrix every step is waste; at
    N = 256 sessions the full layout moves ~8 MB a step):

    =====================  ===========  =========  ============================================
    key                    shape        dtype      content
    =====================  ===========  =========  ============================================
    ``user``               ``()``       int64      the listener's user index
    ``context``            ``(8,)``     float32    as above
    ``pool``               ``(M,)``     int64      the pool's track indices, ``-1`` for padding
    ``history_tracks``     ``(L,)``     int64      tracks played, in order, ``-1`` after the last
    ``history_responses``  ``(L,)``     int8       their response codes (0 after the last)
    ``action_mask``        ``(M,)``     int8       as above
    =====================  ===========  =========  ============================================

    :func:`expand_observations` turns them into the full layout (equal to what the environment
    would have returned, tested). The familiarity columns are not copied into compact
    observations: an agent builds them from the world's sparse table and the history, for a batch
    of compact observations (``user`` ``(N,)``, ``pool`` ``(N, M)``, ``history_tracks`` ``(N, L)``):
    ``candidate_familiarity(world_familiarity(world), user, pool, history_tracks)`` for
    ``"familiarity"`` and ``played_familiarity(world_familiarity(world), user, history_tracks)`` for
    ``"history_familiarity"`` (one observation: add the batch axis, ``user[None]`` and so on).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from gymnasium import spaces

from musicenv.familiarity import (
    RECENT_PLAYS,
    SESSION_COLUMNS,
    played_session_familiarity,
    recent_codes,
    session_familiarity,
)
from musicenv.world import (
    CONTEXT_FEATURES_DIM,
    FAMILIARITY_FEATURES,
    LOGGED_FAMILIARITY_FEATURES,
    RESPONSES,
    Familiarity,
)

N_LOGGED = len(LOGGED_FAMILIARITY_FEATURES)
"""The first columns of a familiarity row come from the logs; the rest from the session so far."""

ObservationLayout = Literal["full", "compact"]
OBSERVATION_LAYOUTS: tuple[str, ...] = ("full", "compact")
"""The environments' ``observation`` argument: feature matrices, or the indices they come from."""

RESPONSE_ONE_HOT = np.eye(len(RESPONSES), dtype=np.float32)
"""Row ``r`` is the one-hot of response code ``r``, as written into ``history``."""


def observation_space(
    track_features: np.ndarray, user_features: np.ndarray, playlist_length: int, pool_size: int
) -> spaces.Dict:
    """The observation space of one session over a world's feature tables.

    The bounds of the feature boxes are the per-column extremes of the tables, widened to include
    0 (the padding rows), so an observation is always inside the space and the bounds tell a
    normalising wrapper the true range.
    """
    track_low = np.minimum(track_features.min(axis=0), 0.0).astype(np.float32)
    track_high = np.maximum(track_features.max(axis=0), 0.0).astype(np.float32)
    user_low = np.minimum(user_features.min(axis=0), 0.0).astype(np.float32)
    user_high = np.maximum(user_features.max(axis=0), 0.0).astype(np.float32)
    n_responses = len(RESPONSES)
    history_low = np.concatenate([track_low, np.zeros(n_responses, np.float32)])
    history_high = np.concatenate([track_high, np.ones(n_responses, np.float32)])
    d_track = track_features.shape[1]
    return spaces.Dict(
        {
            "user": spaces.Box(user_low, user_high, dtype=np.float32),
            "context": spaces.Box(-1.0, 1.0, (CONTEXT_FEATURES_DIM,), dtype=np.float32),
            "history": spaces.Box(
                np.broadcast_to(history_low, (playlist_length, d_track + n_responses)),
                np.broadcast_to(history_high, (playlist_length, d_track + n_responses)),
                dtype=np.float32,
            ),
            "history_mask": spaces.Box(0.0, 1.0, (playlist_length,), dtype=np.float32),
            "candidates": spaces.Box(
                np.broadcast_to(track_low, (pool_size, d_track)),
                np.broadcast_to(track_high, (pool_size, d_track)),
                dtype=np.float32,
            ),
            "action_mask": spaces.Box(0, 1, (pool_size,), dtype=np.int8),
            "familiarity": familiarity_space(pool_size),
            "history_familiarity": familiarity_space(playlist_length),
        }
    )


def familiarity_space(rows: int) -> spaces.Box:
    """The box of ``rows`` familiarity rows: flags and shares in [0, 1], log counts and the genre exposure >= 0."""
    high = np.ones(len(FAMILIARITY_FEATURES), dtype=np.float32)
    high[[FAMILIARITY_FEATURES.index("log_plays"), FAMILIARITY_FEATURES.index("artist_log_plays")]] = np.inf
    high[FAMILIARITY_FEATURES.index("artist_recent_plays")] = np.log1p(RECENT_PLAYS)
    high[FAMILIARITY_FEATURES.index("genre_exposure")] = SESSION_COLUMNS[:, -1].max()
    return spaces.Box(
        np.zeros((rows, len(high)), np.float32), np.broadcast_to(high, (rows, len(high))), dtype=np.float32
    )


def track_play_codes(familiarity: Familiarity | None, tracks: np.ndarray) -> np.ndarray:
    """Play codes (:func:`musicenv.familiarity.play_codes`) of ``tracks`` (any shape), ``-1`` for
    padding or without a familiarity table."""
    tracks = np.asarray(tracks)
    if familiarity is None:
        return np.full(tracks.shape, -1, dtype=np.int64)
    return np.where(tracks >= 0, familiarity.play_codes[np.maximum(tracks, 0)], -1)


def candidate_familiarity(
    familiarity: Familiarity | None, users: np.ndarray, pools: np.ndarray, history_tracks: np.ndarray
) -> np.ndarray:
    """``(N, M, k)`` float32 ``"familiarity"`` of ``users`` ``(N,)`` with ``pools`` ``(N, M)`` (``-1``: zero rows).

    The logged columns, then the in-session ones against the plays in ``history_tracks``
    ``(N, L)`` (in order, ``-1`` after the last). ``familiarity`` is the world's table
    (:func:`musicenv.world.world_familiarity`); None gives zeros.
    """
    pools = np.asarray(pools)
    valid = pools >= 0
    out = np.zeros((*pools.shape, len(FAMILIARITY_FEATURES)), dtype=np.float32)
    if familiarity is None or not valid.any():
        return out
    out[..., :N_LOGGED] = familiarity.features(np.asarray(users)[:, None], np.where(valid, pools, 0))
    out[~valid] = 0.0
    # Before the first play (every reset) the in-session columns are zeros.
    if (np.asarray(history_tracks) >= 0).any():
        out[..., N_LOGGED:] = candidate_session_familiarity(familiarity, pools, history_tracks)
    return out


def played_familiarity(familiarity: Familiarity | None, users: np.ndarray, history_tracks: np.ndarray) -> np.ndarray:
    """``(N, L, k)`` float32 ``"history_familiarity"``: each played track's row as it was played (``-1``: zero rows)."""
    history_tracks = np.asarray(history_tracks)
    valid = history_tracks >= 0
    # A new session's empty history, the common case at a reset, needs no lookup.
    if familiarity is None or not valid.any():
        return np.zeros((*history_tracks.shape, len(FAMILIARITY_FEATURES)), dtype=np.float32)
    logged = familiarity.features(np.asarray(users)[:, None], np.where(valid, history_tracks, 0))
    out = np.concatenate([logged, played_session_familiarity(track_play_codes(familiarity, history_tracks))], axis=-1)
    out[~valid] = 0.0
    return out


def candidate_session_familiarity(
    familiarity: Familiarity | None, pools: np.ndarray, history_tracks: np.ndarray
) -> np.ndarray:
    """``(N, M, 5)`` float32: the candidates' in-session familiarity after the plays in ``history_tracks``.

    ``pools`` ``(N, M)`` (``-1``: zeros) and ``history_tracks`` ``(N, L)`` (in order, ``-1`` after
    the last). The logged columns do not change within a session, so the environments rewrite
    only these after each play.
    """
    recent = recent_codes(track_play_codes(familiarity, history_tracks))
    return session_familiarity(track_play_codes(familiarity, pools), recent[:, None, :])


def compact_observation_space(n_users: int, n_tracks: int, playlist_length: int, pool_size: int) -> spaces.Dict:
    """The space of one session's compact observation (see the module docstring)."""
    return spaces.Dict(
        {
            "user": spaces.Box(0, max(n_users - 1, 0), (), dtype=np.int64),
            "context": spaces.Box(-1.0, 1.0, (CONTEXT_FEATURES_DIM,), dtype=np.float32),
            "pool": spaces.Box(-1, n_tracks - 1, (pool_size,), dtype=np.int64),
            "history_tracks": spaces.Box(-1, n_tracks - 1, (playlist_length,), dtype=np.int64),
            "history_responses": spaces.Box(0, len(RESPONSES) - 1, (playlist_length,), dtype=np.int8),
            "action_mask": spaces.Box(0, 1, (pool_size,), dtype=np.int8),
        }
    )


def expand_observations(
    track_features: np.ndarray,
    user_features: np.ndarray,
    compact: dict[str, np.ndarray],
    familiarity: Familiarity | None = None,
) -> dict[str, np.ndarray]:
    """The full observations of compact ones (one session's, or a batch with a leading axis).

    Args:
        track_features: the world's ``track_features``.
        user_features: the world's ``user_features``.
        compact: a compact observation of either environment (``observation="compact"``).
        familiarity: the world's familiarity table (:func:`musicenv.world.world_familiarity`).

    Returns:
        What the environment returns with the default ``observation="full"`` in the same state.
    """
    single = np.ndim(compact["user"]) == 0
    batch = {key: np.asarray(value)[None] if single else np.asarray(value) for key, value in compact.items()}
    pools = batch["pool"]
    full = build_observations(
        track_features,
        user_features,
        batch["user"],
        batch["context"],
        pools,
        batch["history_tracks"],
        batch["history_responses"],
        (pools >= 0) & (batch["action_mask"] == 0),
        familiarity,
    )
    return {key: value[0] for key, value in full.items()} if single else full


def write_history_plays(
    history: np.ndarray, at: np.ndarray, track_features: np.ndarray, tracks: np.ndarray, responses: np.ndarray
) -> None:
    """Write plays into a batch's ``history`` in place: track features, then the response one-hot.

    The environments call this for one new play per session on each step instead of rebuilding
    the whole history.

    Args:
        history: ``(N, L, d_track + 3)`` C-contiguous float32, the observations' ``history``.
        at: flat (session, position) indices, ``session * L + position``, one per play.
        track_features: ``(n_tracks, d_track)``, the world's track features.
        tracks: valid track indices (no padding), one per play.
        responses: response codes, one per play.
    """
    if not history.flags.c_contiguous:
        raise ValueError("history must be C-contiguous: the plays are written through a flat view")
    rows = history.reshape(-1, history.shape[-1])
    width = track_features.shape[1]
    rows[at, :width] = track_features.take(tracks, axis=0)
    rows[at, width:] = RESPONSE_ONE_HOT.take(responses, axis=0)


def build_observations(
    track_features: np.ndarray,
    user_features: np.ndarray,
    users: np.ndarray,
    context_features: np.ndarray,
    pools: np.ndarray,
    history_tracks: np.ndarray,
    history_responses: np.ndarray,
    played: np.ndarray,
    familiarity: Familiarity | None = None,
) -> dict[str, np.ndarray]:
    """A batch of N observations from compact indices.

    Args:
        track_features: ``(n_tracks, d_track)`` float32, the world's ``track_features``.
        user_features: ``(n_users, d_user)`` float32, the world's ``user_features``.
        users: ``(N,)`` user indices.
        context_features: ``(N, 8)`` float32, :func:`musicenv.world.context_features`.
        pools: ``(N, M)`` track indices of the candidate pools, ``-1`` for padding.
        history_tracks: ``(N, L)`` track indices played so far in order, ``-1`` after the last.
        history_responses: ``(N, L)`` response codes of those plays (ignored where padded).
        played: ``(N, M)`` bool, which pool slots were played.
        familiarity: the world's familiarity table (:func:`musicenv.world.world_familiarity`);
            None gives zero ``familiarity`` rows.

    Returns:
        The observation keys of this module's table, each with a leading batch axis N, in freshly
        allocated arrays.
    """
    n, length = history_tracks.shape
    in_history = history_tracks >= 0
    if in_history.any():
        history = np.concatenate(
            [
                track_features[np.where(in_history, history_tracks, 0)],
                RESPONSE_ONE_HOT[np.where(in_history, history_responses, 0)],
            ],
            axis=-1,
        )
        history[~in_history] = 0.0
    else:  # new sessions, the common case of a reset
        history = np.zeros((n, length, track_features.shape[1] + len(RESPONSES)), dtype=track_features.dtype)
    in_pool = pools >= 0
    candidates = track_features[np.where(in_pool, pools, 0)]
    if not in_pool.all():
        candidates[~in_pool] = 0.0
    return {
        "user": user_features[users].astype(np.float32, copy=True),
        "context": np.asarray(context_features, dtype=np.float32).copy(),
        "history": history,
        "history_mask": in_history.astype(np.float32),
        "candidates": candidates,
        "action_mask": (in_pool & ~played).astype(np.int8),
        "familiarity": candidate_familiarity(familiarity, users, pools, history_tracks),
        "history_familiarity": played_familiarity(familiarity, users, history_tracks),
    }
