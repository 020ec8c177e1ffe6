"""The ground-truth response model: exact probabilities of skip, listen and complete, and of leaving.

:class:`GroundTruthSessionModel` implements :class:`musicenv.world.SessionModel` exactly: every
probability is a closed-form function of the listener, the context, the session so far (summed
up in a ``SessionState``) and the candidate track.

Utility
    The listener's utility of playing track ``t`` as the next play of session ``b`` is ::

        s = utility_level + user_bias[u] + attention_weight * attention[b]
            + taste_weight * cos(taste[u], taste[t]) + popularity_weight * popularity_z[t]
            + position term           (position_fatigue)  position_offsets[p], p = 1..20;
                                                          beyond 20: offsets[20] - fatigue_per_position * (p - 20)
            + context term            (context)           context_offsets[type] + hour_offsets[hour]
            - skip-run term           (skip_runs)         skip_after_skip * [run >= 1]
                                                          + skip_run_step * min(run - 1, skip_run_cap)
            - artist term             (artist_repetition, satiation)
                                      sum over the last artist_memory plays j = 1, 2, ... whose artist is t's:
                                      artist_repeat_penalty[j] + artist_satiation * satiation_decay^(j-1)
            - genre satiation         (satiation)         genre_satiation * exposure[genre[t]]
            - transition term         (acoustic_transitions) transition_weight * mean((sound[t] - sound[previous])^2)
            + familiarity term        (familiarity)       familiarity_bonus if u knows t (library)
            + mood term               (mood)              mood_openness * mood, if u does not know t
            - blocked_penalty if u blocked t or its artist

    where ``exposure[g]`` decays by ``satiation_decay`` per play and gains 1 for each play of
    genre ``g``, ``mood`` decays by ``mood_decay`` per play and gains +1 per completion and -1 per
    skip, and ``run`` is the number of consecutive skips that ended the session so far. A switch
    (in parentheses) turned off makes its term exactly zero.

Responses: an ordered logit
    ::

        P(skip)              = sigmoid(0 - s)                   (the skip threshold is pinned at 0)
        P(skip or listen)    = sigmoid(complete_threshold - s)
        P(complete)          = 1 - sigmoid(complete_threshold - s)

Leaving
    After the play at position ``p`` (``p >= 1``) the listener leaves with probability ::

        sigmoid(leave_offsets[min(p, 20)] + leave_after_skip * [last play skipped]
                 + leave_per_run * min(run - 1, skip_run_cap) + leave_mood * mood)

    (the mood term only with ``mood`` on); before the first play, never.

Why these effects pull against greedy choices
    In an ordered logit every response probability is monotone in ``s``, so a policy that only
    maximises the next response plays the track of highest ``s``, whatever the rewards. What it
    cannot see is how that choice changes the value of the others later. Satiation makes each
    play of a genre or artist cost utility on the following plays (space out the favourites);
    mood makes an unfamiliar track worth more once completions have raised the mood (earn the
    mood before offering discovery; the best unfamiliar track is worth more later than now); the
    transition penalty is quadratic in the change of sound, so two half steps cost half of one
    jump (bridge between distant sounds, as a DJ does).

Session state
    A ``dict`` of arrays with the batch first (see :mod:`musicenv.world`): ``user``,
    ``context_type``, ``hour``, ``attention``, ``position`` (plays so far), ``genre_exposure``
    ``(B, n_genres)``, ``recent_artists`` ``(B, artist_memory)`` newest first (-1 empty), ``mood``,
    ``skip_run``, ``last_response`` (-1 before the first play), ``last_sound``; and three
    quantities derived from those after every update, so that the hot path of
    :meth:`~GroundTruthSessionModel.response_probs` does not recompute them: ``session_utility``
    (every track-independent term of ``s``), ``track_weights`` ``(B, F)`` (the session's weights
    of the terms linear in a track's taste, sound and popularity), ``known_utility`` ``(B, 3)``
    (the utility of an unfamiliar, a familiar and a blocked track) and ``artist_penalty``
    ``(B, artist_memory)`` (the utility lost by a track of the artist in each ring slot).
"""

from __future__ import annotations

import numpy as np

from musicenv.groundtruth.catalogue import Catalogue
from musicenv.groundtruth.config import MAX_FITTED_POSITION, GroundTruthConfig
from musicenv.groundtruth.keyset import KeyCodes
from musicenv.world import COMPLETE, SKIP, Contexts, SessionState

KNOWN_UNFAMILIAR, KNOWN_FAMILIAR, KNOWN_BLOCKED = 0, 1, 2
"""What a listener knows of a track: codes of the (listener, track) map."""


class GroundTruthSessionModel:
    """Exact, batched response and leaving probabilities of a ground-truth world.

    Args:
        config: the world's configuration (strengths, fitted parameters, switches).
        catalogue: the world's population.
    """

    def __init__(self, config: GroundTruthConfig, catalogue: Catalogue) -> None:
        self.config = config
        self.n_tracks = catalogue.n_tracks
        self.n_genres = catalogue.genre_centroids.shape[0]
        self._user_taste = config.taste_weight * catalogue.user_taste
        self._user_bias = config.utility_level + catalogue.user_bias
        self._track_genre = catalogue.track_genre.astype(np.int64)
        self._track_artist = catalogue.track_artist
        self._track_sound = catalogue.track_sound
        self._n_sound = catalogue.track_sound.shape[1]
        # Every term of s that is linear in something of the track is one dot product of a row of
        # this table with a per-session weight vector (``track_weights``): taste, sound (the
        # squared distance expanded as |a|^2 - 2 a.b + |b|^2, |b|^2 per session) and popularity.
        self._track_table = np.concatenate(
            [
                catalogue.track_taste,
                catalogue.track_sound,
                (catalogue.track_sound**2).mean(axis=1, keepdims=True),
                config.popularity_weight * catalogue.popularity_z[:, None],
            ],
            axis=1,
        )
        # Blocked tracks are never in a library, so one map holds both.
        self._known = KeyCodes(
            np.concatenate([catalogue.library_keys, catalogue.block_keys]),
            np.repeat([KNOWN_FAMILIAR, KNOWN_BLOCKED], [len(catalogue.library_keys), len(catalogue.block_keys)]),
        )

        offsets = np.asarray(config.position_offsets, dtype=np.float64)
        self._position_offsets = offsets if config.position_fatigue else np.zeros_like(offsets)
        self._context_offsets = np.asarray(config.context_offsets, dtype=np.float64) * config.context
        self._hour_offsets = np.asarray(config.hour_offsets, dtype=np.float64) * config.context
        self._leave_offsets = np.asarray(config.leave_offsets, dtype=np.float64)
        self._familiarity_bonus = config.familiarity_bonus * config.familiarity
        self._genre_satiation = config.genre_satiation * config.satiation
        self._transition_weight = config.transition_weight * config.acoustic_transitions
        memory = np.arange(config.artist_memory)
        repeat = np.zeros(config.artist_memory)
        n_repeat = min(len(config.artist_repeat_penalty), config.artist_memory)
        repeat[:n_repeat] = config.artist_repeat_penalty[:n_repeat]
        # Utility lost per earlier play of the artist, by how many plays ago (slot 0: the last).
        self._artist_weights = (
            repeat * config.artist_repetition
            + config.artist_satiation * config.satiation_decay**memory * config.satiation
        )
        self._complete_odds = np.exp(-config.complete_threshold)

    # --- SessionModel ----------------------------------------------------------------------------

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        """State of ``len(users)`` empty sessions."""
        users = np.asarray(users, dtype=np.int64)
        n = len(users)
        if len(contexts) != n:
            raise ValueError(f"{n} users but {len(contexts)} contexts")
        state: SessionState = {
            "user": users,
            "context_type": np.asarray(contexts.context_type, dtype=np.int8),
            "hour": np.asarray(contexts.hour, dtype=np.int8),
            "attention": np.asarray(contexts.attention, dtype=np.float64),
            "position": np.zeros(n, dtype=np.int16),
            "genre_exposure": np.zeros((n, self.n_genres)),
            "recent_artists": np.full((n, self.config.artist_memory), -1, dtype=np.int32),
            "mood": np.zeros(n),
            "skip_run": np.zeros(n, dtype=np.int16),
            "last_response": np.full(n, -1, dtype=np.int8),
            "last_sound": np.zeros((n, self._track_sound.shape[1])),
        }
        return self._derive(state)

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K, 3)`` float64 probabilities of (skip, listen, complete) for ``tracks`` ``(B, K)``.

        Entries of ``tracks`` below 0 are padding: they are scored as track 0.
        """
        tracks = np.maximum(tracks, 0)
        odds = np.exp(self.utility(state, tracks))
        skip = 1.0 / (1.0 + odds)
        at_most_listen = 1.0 / (1.0 + odds * self._complete_odds)
        probs = np.empty((*tracks.shape, 3))
        probs[..., 0] = skip
        probs[..., 1] = at_most_listen - skip
        probs[..., 2] = 1.0 - at_most_listen
        return probs

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        """The states after each session played ``tracks[b]`` with ``responses[b]`` (arrays of B)."""
        tracks = np.asarray(tracks, dtype=np.int64)
        responses = np.asarray(responses, dtype=np.int8)
        n = len(tracks)
        decay = self.config.satiation_decay
        exposure = state["genre_exposure"] * decay
        exposure[np.arange(n), self._track_genre[tracks]] += 1.0
        recent = np.empty_like(state["recent_artists"])
        recent[:, 0] = self._track_artist[tracks]
        recent[:, 1:] = state["recent_artists"][:, :-1]
        skipped = responses == SKIP
        new = dict(state)
        new.update(
            position=state["position"] + np.int16(1),
            genre_exposure=exposure,
            recent_artists=recent,
            mood=state["mood"] * self.config.mood_decay + (responses == COMPLETE) - skipped,
            skip_run=np.where(skipped, state["skip_run"] + 1, 0).astype(np.int16),
            last_response=responses.copy(),
            last_sound=self._track_sound[tracks],
        )
        return self._derive(new)

    def leave_probs(self, state: SessionState) -> np.ndarray:
        """``(B,)`` probability that each listener leaves now (0 before the first play)."""
        config = self.config
        position = state["position"].astype(np.int64)
        logit = self._leave_offsets[np.clip(position, 1, MAX_FITTED_POSITION) - 1]
        logit = logit + config.leave_after_skip * (state["last_response"] == SKIP)
        logit += config.leave_per_run * np.clip(state["skip_run"] - 1, 0, config.skip_run_cap)
        if config.mood:
            logit += config.leave_mood * state["mood"]
        return np.where(position > 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    # --- the pieces ----------------------------------------------------------------------------

    def utility(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K)`` utility ``s`` of playing each of ``tracks`` (non-negative indices) next."""
        users = state["user"]
        rows = np.arange(len(users))[:, None]
        linear = np.einsum("bkf,bf->bk", np.take(self._track_table, tracks, axis=0), state["track_weights"])
        utility = state["session_utility"][:, None] + linear
        # Familiar, unfamiliar (mood) or blocked: one lookup, then the session's utility of each.
        code = self.known_codes(users[:, None], tracks)
        utility += np.take(state["known_utility"], rows * 3 + code)
        if self._genre_satiation:
            utility -= self._genre_penalty(state, tracks)
        artist = self._artist_penalty(state, tracks)
        if artist is not None:
            utility -= artist
        return utility

    def satiation_penalties(self, state: SessionState, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The utility the session so far takes from each of ``tracks`` ``(B, K)`` (non-negative
        indices): ``(artist, genre)``, each ``(B, K)`` float64, the artist term (repetition and
        satiation) and the genre satiation term of :meth:`utility`, as non-negative numbers.

        What a learned world must infer from the plays it has seen; ``benchmarks/pick_bias.py``
        measures how its optimism grows with them.
        """
        artist = self._artist_penalty(state, tracks)
        genre = self._genre_penalty(state, tracks) if self._genre_satiation else np.zeros(tracks.shape)
        return (np.zeros(tracks.shape) if artist is None else artist), genre

    def _genre_penalty(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K)`` genre satiation term of ``s`` (non-negative)."""
        rows = np.arange(len(state["user"]))[:, None]
        exposure = np.take(state["genre_exposure"], rows * self.n_genres + np.take(self._track_genre, tracks))
        return self._genre_satiation * exposure

    def _artist_penalty(self, state: SessionState, tracks: np.ndarray) -> np.ndarray | None:
        """``(B, K)`` artist term of ``s`` (non-negative), or None before any session has played."""
        # Only ring slots that some session has filled can match. Each slot holds the whole
        # penalty of its artist, so any matching slot gives it exactly, however many candidates
        # are scored together (a sum over slots would not be exact across batch shapes).
        filled = min(int(state["position"].max(initial=0)), self.config.artist_memory)
        if not filled:
            return None
        artists = np.take(self._track_artist, tracks)
        recent, penalty = state["recent_artists"], state["artist_penalty"]
        if tracks.size < 64:  # few candidates: fewer, larger operations are faster
            same = artists[:, :, None] == recent[:, None, :filled]
            return (same * penalty[:, None, :filled]).max(axis=-1)
        lost = np.zeros(tracks.shape)
        for slot in range(filled):
            lost = np.where(artists == recent[:, slot : slot + 1], penalty[:, slot : slot + 1], lost)
        return lost

    def known_codes(self, users: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """What each listener knows of each track (broadcast shapes): :data:`KNOWN_UNFAMILIAR`,
        :data:`KNOWN_FAMILIAR` (in their library) or :data:`KNOWN_BLOCKED`."""
        return self._known.lookup(users * self.n_tracks + tracks)

    def _derive(self, state: SessionState) -> SessionState:
        """Add the derived, per-session quantities of the next play to ``state`` (in place)."""
        config = self.config
        nxt = state["position"].astype(np.int64) + 1
        position_term = self._position_offsets[np.minimum(nxt, MAX_FITTED_POSITION) - 1]
        if config.position_fatigue:
            position_term = position_term - config.fatigue_per_position * np.maximum(nxt - MAX_FITTED_POSITION, 0)
        users = state["user"]
        transition = np.where(state["position"] > 0, self._transition_weight, 0.0)
        last_sound = state["last_sound"]
        utility = self._user_bias[users] + config.attention_weight * state["attention"] + position_term
        utility += self._context_offsets[state["context_type"]] + self._hour_offsets[state["hour"]]
        utility -= transition * (last_sound**2).mean(axis=1)
        if config.skip_runs:
            run = state["skip_run"]
            utility -= config.skip_after_skip * (run >= 1)
            utility -= config.skip_run_step * np.clip(run - 1, 0, config.skip_run_cap)
        state["session_utility"] = utility

        n = len(users)
        weights = np.empty((n, self._track_table.shape[1]))
        taste_dim = self._user_taste.shape[1]
        weights[:, :taste_dim] = self._user_taste[users]
        weights[:, taste_dim : taste_dim + self._n_sound] = (2.0 / self._n_sound) * transition[:, None] * last_sound
        weights[:, -2] = -transition
        weights[:, -1] = 1.0
        state["track_weights"] = weights

        unfamiliar = config.mood_openness * state["mood"] * config.mood
        known = np.empty((n, 3))
        known[:, KNOWN_UNFAMILIAR] = unfamiliar
        known[:, KNOWN_FAMILIAR] = self._familiarity_bonus
        known[:, KNOWN_BLOCKED] = unfamiliar - config.blocked_penalty
        state["known_utility"] = known

        recent = state["recent_artists"]
        same = recent[:, :, None] == recent[:, None, :]
        state["artist_penalty"] = (same * self._artist_weights).sum(axis=2) * (recent >= 0)
        return state
