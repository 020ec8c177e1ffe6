"""Small, fast stand-ins for the worlds, for the environment's tests and smoke benchmarks.

:class:`FakeWorld` implements :class:`musicenv.world.World` with random features, a ranked candidate
pool per user, per-user block lists and explicit flags, and a :class:`FakeSessionModel` whose
probabilities are deterministic functions of (user, track, session so far). :class:`FakeGroundTruth`
is the matching "ground truth": the same user and track ids in a *different* index order (so a
forgotten id translation shows up as wrong numbers) with its own model, and the ``user_index`` /
``track_index`` / ``session_model`` surface of :class:`musicenv.groundtruth.GroundTruthWorld`.

:class:`FakeEnsembleSessionModel` is an ensemble (:class:`musicenv.world.EnsembleSessionModel`) of
fake listeners that differ by a known shift of their drive and share one session state;
:func:`ensemble_world` is a :class:`FakeWorld` answered by one.

:class:`LayoutWorld` is the fake world the agents' tests run on (named feature blocks and an
untrained user-response model); :class:`RowOracle` is one session's view of a batched env's
oracle; :class:`SequencingSessionModel` is a small listener whose responses depend on the order
of the playlist (satiation, mood, skip runs), for the planner's tests; :func:`random_policy` picks random slots.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from musicenv.world import (
    CONTEXT_TYPES,
    BatchedSingleSession,
    Contexts,
    SessionState,
    Split,
    is_eval_user,
    take_state,
)


class FakeSessionModel:
    """Logistic listener: affinity, fatigue, skip runs and attention; leaves after runs of skips.

    Args:
        user_taste: ``(n_users, k)`` latent tastes.
        track_style: ``(n_tracks, k)`` latent styles.
        leave_scale: multiplies the leaving probability; 0 makes a listener who never leaves.
        drive: added to every track's drive (a more, or less, willing listener); leaving ignores it.
    """

    def __init__(
        self, user_taste: np.ndarray, track_style: np.ndarray, leave_scale: float = 1.0, drive: float = 0.0
    ) -> None:
        self.user_taste = user_taste
        self.track_style = track_style
        self.leave_scale = leave_scale
        self.drive = drive

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        n = len(users)
        return {
            "users": np.asarray(users, dtype=np.int64).copy(),
            "attention": np.asarray(contexts.attention, dtype=np.float64).copy(),
            "position": np.zeros(n, dtype=np.int64),
            "skip_run": np.zeros(n, dtype=np.int64),
        }

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        tracks = np.asarray(tracks)
        safe = np.where(tracks >= 0, tracks, 0)
        affinity = (self.user_taste[state["users"]][:, None, :] * self.track_style[safe]).sum(axis=-1)
        drive = (
            affinity
            + (self.drive + 0.4 * state["attention"] - 0.04 * state["position"] - 0.5 * state["skip_run"])[:, None]
        )
        # Softmax of logits (-drive, -0.7, drive), written out: this model sits on the env's hot path.
        weights = np.empty((*drive.shape, 3))
        weights[..., 0] = np.exp(-drive)
        weights[..., 1] = np.exp(-0.7)
        weights[..., 2] = np.exp(drive)
        return weights / weights.sum(axis=-1, keepdims=True)

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        skipped = np.asarray(responses) == 0
        return {
            "users": state["users"],
            "attention": state["attention"],
            "position": state["position"] + 1,
            "skip_run": np.where(skipped, state["skip_run"] + 1, 0),
        }

    def leave_probs(self, state: SessionState) -> np.ndarray:
        logit = -3.5 + 0.9 * state["skip_run"] + 0.05 * state["position"]
        return self.leave_scale / (1.0 + np.exp(-logit))


class FakeEnsembleSessionModel:
    """An ensemble of :class:`FakeSessionModel` listeners, member ``e``'s drive shifted by ``drives[e]``.

    The members share the base's tastes, styles and leaving, so one state serves them all; the
    ensemble's ``response_probs`` is the members' mean. With ``reports_members`` its
    single-session kernel reports the members' probabilities of each play (``last_member_probs``),
    as the learned world's does; without, the environment asks ``member_response_probs``.

    Args:
        base: the listener whose tastes, styles and leaving the members share.
        drives: each member's shift of the drive (len E).
        reports_members: offer a single-session kernel with ``last_member_probs``.
    """

    def __init__(
        self, base: FakeSessionModel, drives: tuple[float, ...] = (-1.0, 0.0, 1.0), reports_members: bool = False
    ) -> None:
        self.base = base
        self.members = [FakeSessionModel(base.user_taste, base.track_style, base.leave_scale, d) for d in drives]
        if reports_members:
            self.single_session = lambda state: FakeEnsembleSingleSession(self, state)

    @property
    def ensemble_size(self) -> int:
        return len(self.members)

    def member(self, index: int) -> FakeSessionModel:
        return self.members[index]

    def member_response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        return np.stack([member.response_probs(state, tracks) for member in self.members], axis=-2)

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        return self.base.initial_state(users, contexts)

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        return self.member_response_probs(state, tracks).mean(axis=-2)

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        return self.base.advance(state, tracks, responses)

    def leave_probs(self, state: SessionState) -> np.ndarray:
        return self.base.leave_probs(state)


class FakeEnsembleSingleSession(BatchedSingleSession):
    """The batched single session of a :class:`FakeEnsembleSessionModel` that keeps ``last_member_probs``."""

    def __init__(self, model: FakeEnsembleSessionModel, state: SessionState) -> None:
        super().__init__(model, state)
        self.last_member_probs: np.ndarray | None = None

    def play(self, track: int, uniform: float) -> tuple[list[float], int]:
        self.last_member_probs = self.model.member_response_probs(self.state, np.array([[track]]))[0, 0]
        return super().play(track, uniform)


def ensemble_world(
    seed: int = 0, drives: tuple[float, ...] = (-1.0, 0.0, 1.0), reports_members: bool = False
) -> FakeWorld:
    """A :class:`FakeWorld` answered by a :class:`FakeEnsembleSessionModel` over its own listener."""
    world = FakeWorld(seed=seed)
    world.session_model = FakeEnsembleSessionModel(world.session_model, drives, reports_members)  # type: ignore[assignment]
    return world


class FakeWorld:
    """A learned-world stand-in: random features, ranked pools, block lists, explicit tracks.

    Args:
        seed: seeds everything the world holds (not the episodes: those come from the env's rng).
        n_users, n_tracks, n_artists: catalogue sizes; ``n_tracks`` below the pool size gives
            padded pools.
        d_user, d_track: observed feature sizes.
        leave_scale: passed to the session model (0: listeners never leave).
        artists: False gives a catalogue without artists (``artist_id`` all missing), as MSSD logs.
    """

    name = "fake"

    def __init__(
        self,
        seed: int = 0,
        n_users: int = 40,
        n_tracks: int = 300,
        n_artists: int = 30,
        d_user: int = 5,
        d_track: int = 6,
        leave_scale: float = 1.0,
        artists: bool = True,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.user_ids = np.array([f"u{i:04d}" for i in range(n_users)], dtype=object)
        artist_of = rng.integers(0, n_artists, n_tracks)
        self.tracks = pd.DataFrame(
            {
                "track_id": [f"t{i:05d}" for i in range(n_tracks)],
                "artist_id": [f"a{a:03d}" for a in artist_of] if artists else [None] * n_tracks,
                "us_pop_estimate": rng.uniform(0.0, 100.0, n_tracks),
                "explicit": rng.random(n_tracks) < 0.15,
            }
        )
        self.track_features = rng.normal(size=(n_tracks, d_track)).astype(np.float32)
        self.user_features = rng.normal(size=(n_users, d_user)).astype(np.float32)
        self.eval_users = is_eval_user(self.user_ids)
        # A log of sessions to draw (user, context type, hour) from, three per user.
        self._session_users = np.repeat(np.arange(n_users), 3)
        self._session_context_types = rng.integers(0, len(CONTEXT_TYPES), len(self._session_users)).astype(np.int8)
        self._session_hours = rng.integers(0, 24, len(self._session_users)).astype(np.int8)
        eval_sessions = self.eval_users[self._session_users]
        self._split_sessions = {
            "all": np.arange(len(self._session_users)),
            "train": np.flatnonzero(~eval_sessions),
            "eval": np.flatnonzero(eval_sessions),
        }
        taste = rng.normal(size=(n_users, 3)) * 0.8
        style = rng.normal(size=(n_tracks, 3)) * 0.8
        self.session_model = FakeSessionModel(taste, style, leave_scale)
        # Ranking by the latent affinity plays the part of the ANN retrieval.
        self._ranking = np.argsort(-(taste @ style.T), axis=1, kind="stable")
        self.blocked_tracks = {u: set(rng.choice(n_tracks, 3, replace=False).tolist()) for u in range(n_users)}
        self.blocked_artists = {u: {f"a{rng.integers(n_artists):03d}"} for u in range(n_users)}
        self._artist_ids = self.tracks["artist_id"].to_numpy(dtype=object)
        self._explicit = self.tracks["explicit"].to_numpy(dtype=bool)
        # Pools of every user, per (size, explicit_filter), computed on first use as a retrieval
        # stage would precompute them.
        self._pools: dict[tuple[int, bool], np.ndarray] = {}

    def sample_sessions(self, rng: np.random.Generator, n: int, split: Split) -> tuple[np.ndarray, Contexts]:
        # As the learned world: a logged (user, context, hour) row, and a fresh attention.
        rows = self._split_sessions[split][rng.integers(0, len(self._split_sessions[split]), n)]
        attention = rng.standard_normal(n).astype(np.float32)
        contexts = Contexts(self._session_context_types[rows], self._session_hours[rows], attention)
        return self._session_users[rows], contexts

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        key = (size, explicit_filter)
        if key not in self._pools:
            self._pools[key] = np.stack([self._pool(user, size, explicit_filter) for user in range(len(self.user_ids))])
        return self._pools[key][np.asarray(users)]

    def _pool(self, user: int, size: int, explicit_filter: bool) -> np.ndarray:
        ranked = self._ranking[user]
        keep = ~np.isin(ranked, list(self.blocked_tracks[user]))
        keep &= ~np.isin(self._artist_ids[ranked], list(self.blocked_artists[user]))
        if explicit_filter:
            keep &= ~self._explicit[ranked]
        chosen = ranked[keep][:size]
        return np.concatenate([chosen, np.full(size - len(chosen), -1, dtype=np.int64)])


class FakeGroundTruth:
    """The ground truth behind a :class:`FakeWorld`: same ids, shuffled indices, its own listener.

    Args:
        learned: the fake learned world whose ids this truth shares.
        seed: seeds the shuffles and the truth's own (different) tastes.
        leave_scale: passed to the truth's session model.
    """

    name = "groundtruth"

    def __init__(self, learned: FakeWorld, seed: int = 1, leave_scale: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        user_order = rng.permutation(len(learned.user_ids))
        track_order = rng.permutation(len(learned.tracks))
        self.user_ids = learned.user_ids[user_order]
        self.tracks = learned.tracks.iloc[track_order].reset_index(drop=True)
        taste = learned.session_model.user_taste[user_order] + rng.normal(scale=0.3, size=(len(user_order), 3))
        style = learned.session_model.track_style[track_order]
        self.session_model = FakeSessionModel(taste, style, leave_scale)
        self._user_position = {uid: i for i, uid in enumerate(self.user_ids)}
        self._track_position = {tid: i for i, tid in enumerate(self.tracks["track_id"])}

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self._user_position[i] for i in ids], dtype=np.int64)

    def track_index(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self._track_position[i] for i in ids], dtype=np.int64)


class LayoutWorld(FakeWorld):
    """The fake learned world with named feature blocks and an (untrained) user-response model.

    Track features: ALS (3 columns), acoustic (2), popularity (1); user features: ALS (3),
    premium (1), one more. Enough for every baseline to find the columns it reads.
    """

    track_feature_layout: ClassVar = {"als": (0, 3), "acoustic": (3, 5), "popularity": (5, 6)}
    user_feature_layout: ClassVar = {"als": (0, 3), "premium": (3, 4)}

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed=seed, n_tracks=120, d_user=5, d_track=6)
        # Imported here: the env's tests and the benchmarks use the other fakes without torch.
        import torch

        from world_model.user_model import UserResponseModel

        torch.manual_seed(seed)
        self.session_model.response_model = UserResponseModel(user_dim=5, track_dim=6, hidden_size=8, mlp_size=16)


class RowOracle:
    """One session's view of a batched env's oracle: what a single env's oracle would give.

    Args:
        oracle: the vector env's ``oracle`` (N sessions).
        row: the session this view shows.
    """

    def __init__(self, oracle: Any, row: int) -> None:
        self.oracle, self.row = oracle, row

    def response_probs(self) -> np.ndarray:
        return self.oracle.response_probs()[self.row : self.row + 1]

    @property
    def session_model(self) -> Any:
        return self.oracle.session_model

    @property
    def state(self) -> SessionState:
        return take_state(self.oracle.state, slice(self.row, self.row + 1))

    @property
    def pools(self) -> np.ndarray:
        return self.oracle.pools[self.row : self.row + 1]


class SequencingSessionModel:
    """A small :class:`~musicenv.world.SessionModel` with the effects that make sequencing matter.

    Tracks have a genre and a quality. The utility of a track is its quality, minus
    ``satiation`` times the session's decaying exposure to its genre, plus ``mood`` times the
    session's mood (completions raise it, skips lower it); the listener leaves more often along a
    run of skips (``leave_per_skip``). With all three at zero, responses do not depend on the
    session and leaving is constant: greedy by expected reward is then optimal.
    """

    def __init__(
        self,
        n_tracks: int = 12,
        n_genres: int = 3,
        satiation: float = 1.2,
        mood: float = 0.4,
        leave_per_skip: float = 0.15,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.genre = rng.integers(0, n_genres, n_tracks)
        self.quality = rng.normal(0.3, 1.0, n_tracks)
        self.n_genres = n_genres
        self.satiation, self.mood, self.leave_per_skip = satiation, mood, leave_per_skip
        self.calls = 0

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        n = len(users)
        return {
            "user": np.asarray(users, dtype=np.int64),
            "exposure": np.zeros((n, self.n_genres)),
            "mood": np.asarray(contexts.attention, dtype=np.float64) * 0.5,
            "skip_run": np.zeros(n),
        }

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        self.calls += 1
        safe = np.maximum(tracks, 0)
        exposure = np.take_along_axis(state["exposure"], self.genre[safe], axis=1)
        utility = self.quality[safe] - self.satiation * exposure + self.mood * state["mood"][:, None]
        like = 1.0 / (1.0 + np.exp(-utility))
        complete = 0.8 * like
        skip = 0.9 * (1.0 - like)
        return np.stack([skip, 1.0 - skip - complete, complete], axis=-1)

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        exposure = 0.6 * state["exposure"]
        exposure[np.arange(len(tracks)), self.genre[tracks]] += 1.0
        return {
            "user": state["user"],
            "exposure": exposure,
            "mood": 0.7 * state["mood"] + (responses == 2) - (responses == 0),
            "skip_run": np.where(responses == 0, state["skip_run"] + 1, 0.0),
        }

    def leave_probs(self, state: SessionState) -> np.ndarray:
        return np.minimum(0.05 + self.leave_per_skip * state["skip_run"], 1.0)


def random_policy(rng: np.random.Generator, masks: np.ndarray, invalid_share: float = 0.0) -> np.ndarray:
    """Random valid slots of ``(N, M)`` action masks; with probability ``invalid_share`` any slot (maybe invalid)."""
    scores = rng.random(masks.shape) * masks
    actions = scores.argmax(axis=1)
    wild = rng.random(len(masks)) < invalid_share
    return np.where(wild, rng.integers(0, masks.shape[1], len(masks)), actions)
