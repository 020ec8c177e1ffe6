"""Listening logs of the ground-truth world: who listens when, what the logging policy plays, and
how listeners respond.

Sessions
    Every listener gets one session, the rest go to listeners in proportion to their activity
    (lognormal). A session's context type is drawn from the listener's own preference
    (``softmax(context_logits)``), its hour near the listener's favourite hour, its day uniformly
    over ``n_days``, and its latent attention from a standard normal. Session ids are in
    chronological order (day, hour).

Logging policy
    Each session draws candidate tracks from four sources (:data:`~musicenv.groundtruth.config.SOURCES`,
    ``policy_candidates`` of each): its listener's library, popular tracks of their favourite
    genres, popular tracks overall, and tracks of artists in their library. Tracks the listener
    blocked, and repeats, are dropped. An *organic* session (the listener's own choice) plays the
    candidates in the order of a Gumbel-top-k over ``policy_taste_weight * taste match +
    policy_popularity_weight * popularity_z + policy_source_bonus[context, source]``, i.e. it
    samples without replacement with those logits; a *shuffled* session (``shuffled_share`` of
    them, flagged in the ``shuffled`` column) plays them in a uniformly random order. The
    playlist is fixed at the start, as a context played through is.

Play
    All sessions of a batch advance one position at a time together: one
    :meth:`~musicenv.groundtruth.response.GroundTruthSessionModel.response_probs`, one
    :func:`~musicenv.world.sample_responses` with that position's uniform, one ``advance`` and
    one ``leave_probs`` per position. A session ends when its listener leaves (uniform below the
    leaving probability), at ``max_session_length`` plays, or when its candidates run out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicenv.groundtruth.catalogue import Catalogue, PopularitySampler
from musicenv.groundtruth.config import GENRES, SOURCES, GroundTruthConfig
from musicenv.groundtruth.response import KNOWN_BLOCKED, GroundTruthSessionModel
from musicenv.world import CONTEXT_TYPES, RESPONSES, Contexts, sample_responses, take_state

BATCH_SESSIONS = 16384
"""Sessions simulated together (bounds the memory of the candidate matrices)."""


@dataclass(frozen=True)
class SimulatedSessions:
    """Sessions as arrays, row ``i`` is session ``i`` (in chronological order).

    Attributes:
        users: ``(N,)`` user indices.
        contexts: the sessions' contexts.
        day: ``(N,)`` day of the session, 0-based from ``start_date``.
        shuffled: ``(N,)`` True for sessions of the shuffled logging policy.
        tracks: ``(N, L)`` track indices played, ``-1`` after the session's end.
        responses: ``(N, L)`` int8 response codes, ``-1`` after the end.
        probs: ``(N, L, 3)`` the exact response probabilities of each play, NaN after the end.
        lengths: ``(N,)`` plays per session.
    """

    users: np.ndarray
    contexts: Contexts
    day: np.ndarray
    shuffled: np.ndarray
    tracks: np.ndarray
    responses: np.ndarray
    probs: np.ndarray
    lengths: np.ndarray


def draw_contexts(
    catalogue: Catalogue, config: GroundTruthConfig, rng: np.random.Generator, users: np.ndarray
) -> Contexts:
    """Contexts of sessions of ``users``: each listener's own context and hour preferences."""
    logits = catalogue.context_logits[users]
    context_type = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int8)
    jitter = np.round(rng.standard_normal(len(users)) * config.hour_spread).astype(np.int64)
    hour = ((catalogue.peak_hour[users] + jitter) % 24).astype(np.int8)
    attention = rng.standard_normal(len(users)).astype(np.float32)
    return Contexts(context_type=context_type, hour=hour, attention=attention)


def simulate_sessions(
    model: GroundTruthSessionModel,
    catalogue: Catalogue,
    config: GroundTruthConfig,
    n_sessions: int,
    rng: np.random.Generator,
) -> SimulatedSessions:
    """Simulate ``n_sessions`` logged sessions (see the module's docstring)."""
    n_users = len(catalogue.user_taste)
    first = rng.permutation(n_users)[:n_sessions]
    activity = catalogue.activity / catalogue.activity.sum()
    more = rng.choice(n_users, size=max(n_sessions - n_users, 0), p=activity)
    users = np.concatenate([first, more])
    contexts = draw_contexts(catalogue, config, rng, users)
    day = rng.integers(0, config.n_days, size=n_sessions)
    order = np.lexsort((users, contexts.hour, day))
    users, contexts, day = users[order], contexts.take(order), day[order]
    shuffled = rng.random(n_sessions) < config.shuffled_share

    length = config.max_session_length
    tracks = np.full((n_sessions, length), -1, dtype=np.int64)
    responses = np.full((n_sessions, length), -1, dtype=np.int8)
    probs = np.full((n_sessions, length, 3), np.nan)
    lengths = np.zeros(n_sessions, dtype=np.int64)
    policy = LoggingPolicy(model, catalogue, config)
    for start in range(0, n_sessions, BATCH_SESSIONS):
        rows = slice(start, min(start + BATCH_SESSIONS, n_sessions))
        playlists = policy.playlists(rng, users[rows], contexts.take(rows), shuffled[rows])
        uniforms = rng.random((2, len(playlists), length))
        played = play_sessions(model, users[rows], contexts.take(rows), playlists, uniforms[0], uniforms[1])
        tracks[rows], responses[rows], probs[rows], lengths[rows] = played
    return SimulatedSessions(users, contexts, day, shuffled, tracks, responses, probs, lengths)


def play_sessions(
    model: GroundTruthSessionModel,
    users: np.ndarray,
    contexts: Contexts,
    playlists: np.ndarray,
    response_uniforms: np.ndarray,
    leave_uniforms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Play ``playlists`` ``(B, L)`` (``-1`` = no more candidates) to the sessions' ends.

    Returns:
        tracks ``(B, L)`` and responses ``(B, L)`` (``-1`` after the end), probabilities
        ``(B, L, 3)`` (NaN after the end) and lengths ``(B,)``.
    """
    n, length = playlists.shape
    tracks = np.full((n, length), -1, dtype=np.int64)
    responses = np.full((n, length), -1, dtype=np.int8)
    probs = np.full((n, length, 3), np.nan)
    active = np.flatnonzero(playlists[:, 0] >= 0)
    state = model.initial_state(users[active], contexts.take(active))
    for position in range(length):
        chosen = playlists[active, position]
        p = model.response_probs(state, chosen[:, None])[:, 0]
        response = sample_responses(p, response_uniforms[active, position])
        tracks[active, position], responses[active, position], probs[active, position] = chosen, response, p
        state = model.advance(state, chosen, response)
        if position + 1 == length:
            break
        stays = leave_uniforms[active, position] >= model.leave_probs(state)
        stays &= playlists[active, position + 1] >= 0
        active = active[stays]
        state = take_state(state, stays)
    lengths = (tracks >= 0).sum(axis=1)
    return tracks, responses, probs, lengths


class LoggingPolicy:
    """The listeners' own choices, and the shuffled share (see the module's docstring)."""

    def __init__(self, model: GroundTruthSessionModel, catalogue: Catalogue, config: GroundTruthConfig) -> None:
        self.model = model
        self.catalogue = catalogue
        self.config = config
        self.sampler = PopularitySampler(catalogue.log_popularity, catalogue.track_genre, len(GENRES))
        self.library_indptr = catalogue.library_indptr()
        self.source_of_column = np.repeat(np.arange(len(SOURCES)), config.policy_candidates)
        self.source_bonus = np.asarray(config.policy_source_bonus, dtype=np.float64)

    def candidates(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """``(B, C)`` candidate tracks, ``C = sum(policy_candidates)``, in :data:`SOURCES` order."""
        cat, n_tracks = self.catalogue, self.catalogue.n_tracks
        n = len(users)
        n_library, n_genre, n_popular, n_artist = self.config.policy_candidates
        start = self.library_indptr[users][:, None]
        size = (self.library_indptr[users + 1] - self.library_indptr[users])[:, None]

        def library_tracks(count: int) -> np.ndarray:
            pick = start + (rng.random((n, count)) * size).astype(np.int64)
            known = cat.library_keys[np.minimum(pick, len(cat.library_keys) - 1)] - users[:, None] * n_tracks
            # A listener whose whole library is blocked draws popular tracks instead.
            return np.where(size > 0, known, self.sampler.overall(rng, (n, count)))

        weights_cdf = np.cumsum(cat.user_genre_weights[users], axis=1)
        slot = (rng.random((n, n_genre, 1)) > weights_cdf[:, None, :]).sum(axis=2).clip(max=2)
        genre_tracks = self.sampler.in_genres(rng, np.take_along_axis(cat.user_genres[users], slot, axis=1))
        artists = cat.track_artist[library_tracks(n_artist)]
        first, count = cat.artist_start[artists], np.diff(cat.artist_start)[artists]
        artist_tracks = first + (rng.random(artists.shape) * count).astype(np.int64)
        return np.concatenate(
            [library_tracks(n_library), genre_tracks, self.sampler.overall(rng, (n, n_popular)), artist_tracks],
            axis=1,
        )

    def playlists(
        self, rng: np.random.Generator, users: np.ndarray, contexts: Contexts, shuffled: np.ndarray
    ) -> np.ndarray:
        """``(B, max_session_length)`` tracks in play order, ``-1`` where candidates run out."""
        cat, config = self.catalogue, self.config
        candidates = self.candidates(rng, users)
        n, n_candidates = candidates.shape
        match = (cat.user_taste[users][:, None, :] * cat.track_taste[candidates]).sum(axis=-1)
        preference = (
            config.policy_taste_weight * match
            + config.policy_popularity_weight * cat.popularity_z[candidates]
            + self.source_bonus[contexts.context_type.astype(np.int64)][:, self.source_of_column]
        )
        score = np.where(shuffled[:, None], 0.0, preference) + rng.gumbel(size=(n, n_candidates))

        excluded = self.model.known_codes(users[:, None], candidates) == KNOWN_BLOCKED
        order = np.argsort(candidates, axis=1, kind="stable")
        ordered = np.take_along_axis(candidates, order, axis=1)
        repeat = np.zeros((n, n_candidates), dtype=bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        np.put_along_axis(excluded, order, excluded[np.arange(n)[:, None], order] | repeat, axis=1)
        score[excluded] = -np.inf

        length = config.max_session_length
        top = np.argpartition(-score, length - 1, axis=1)[:, :length]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, axis=1), axis=1), axis=1)
        playlists = np.take_along_axis(candidates, top, axis=1)
        playlists[np.take_along_axis(score, top, axis=1) == -np.inf] = -1
        return playlists


def log_frames(
    sessions: SimulatedSessions,
    config: GroundTruthConfig,
    user_ids: np.ndarray,
    track_ids: np.ndarray,
    premium: np.ndarray,
) -> pd.DataFrame:
    """The plays table (canonical columns of :mod:`musicenv.data`) of ``sessions``."""
    played = sessions.tracks >= 0
    session_index, position = np.nonzero(played)
    width = max(7, len(str(max(len(sessions.users) - 1, 0))))
    session_ids = np.char.add("s", np.char.zfill(np.arange(len(sessions.users)).astype(str), width))
    users = sessions.users[session_index]
    dates = np.datetime64(config.start_date, "D") + sessions.day.astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "session_id": session_ids[session_index],
            "user_id": user_ids[users],
            "position": (position + 1).astype(np.int16),
            "session_length": sessions.lengths[session_index].astype(np.int16),
            "track_id": track_ids[sessions.tracks[played]],
            "response": pd.Categorical.from_codes(sessions.responses[played], categories=list(RESPONSES)),
            "context_type": pd.Categorical.from_codes(
                sessions.contexts.context_type[session_index], categories=list(CONTEXT_TYPES)
            ),
            "hour": sessions.contexts.hour[session_index],
            "premium": premium[users],
            "date": dates[session_index].astype("datetime64[ns]"),
            "shuffled": sessions.shuffled[session_index],
        }
    )
