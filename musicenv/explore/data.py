"""What the explore app shows, computed without Streamlit: worlds, listeners, sessions, sound, results.

Every page of the app is a thin view over the functions here, so the tests and
``benchmarks/explore_pages.py`` exercise the same code. Anything the user can get wrong (a folder
that is not a world, a corrupt checkpoint, an empty evaluation folder, an unknown listener) raises
:class:`ExploreError` with a message meant for the page.

Worlds
    :func:`open_world` loads a learned world (``"default"``: the embedded one) and, when it was
    built from the synthetic ground truth's logs, that ground truth, as a :class:`WorldBundle`.

Listeners
    :func:`listener_profile` reads a listener's taste from the world's logs (plays per track,
    sessions with their contexts, blocks); :func:`pool_predictions` scores their candidate pool as
    the first play of a session in a given context, by the learned model and by the truth.

Sessions
    :class:`SessionRun` plays one episode of ``ListeningSession-v0`` for up to two players, each in
    the learned world and (where there is one) in the ground truth: one :class:`Lane` per player and
    world, all reset with the same seed, so they meet the same listener, pool and uniforms (common
    random numbers) and differ only through their choices and who answers.

Sound
    :func:`rank_by_sound` ranks the catalogue by cosine similarity of standardised audio features
    to a target profile (from :func:`listener_sound` or sliders).

Results
    :func:`read_eval_output` reads an ``eval.py`` output folder (``results.csv``, ``fidelity.csv``,
    the PNG figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicenv.artifacts import MANIFEST, ArtifactError
from musicenv.data import ACOUSTIC_FEATURES
from musicenv.env import ListeningSessionEnv
from musicenv.responders import GroundTruthResponder
from musicenv.world import CONTEXT_TYPES, RESPONSES, Contexts, SessionModel, SessionState

DEFAULT_WORLD = "default"
"""The ``--world`` value that names the embedded default world."""

WORLD_ENV = "MUSICENV_EXPLORE_WORLD"
CHECKPOINT_DIR_ENV = "MUSICENV_EXPLORE_CHECKPOINT_DIR"
"""Environment variables through which ``musicenv explore`` hands its options to the app."""

LEARNED, GROUNDTRUTH = "learned", "groundtruth"
WORLD_TITLES = {LEARNED: "learned world", GROUNDTRUTH: "ground truth"}

MANUAL = "you (pick tracks)"
"""The player name of a person choosing the tracks themselves."""

SOUND_EXCLUDED = ("duration", "release_year", "us_pop_estimate")
"""Track features that are not sounds (metadata), left off the sliders."""
SOUND_DEFAULTS = ("energy", "valence", "danceability", "tempo", "acousticness")
"""The sliders shown first, where the world has them (the audio features Spotify's API made familiar)."""


class ExploreError(Exception):
    """Bad input from the user of the app; the message is shown on the page as it is."""


@dataclass(frozen=True)
class Settings:
    """The app's options, as ``musicenv explore`` passes them (through environment variables).

    Attributes:
        world: ``"default"`` or a saved world folder.
        checkpoint_dir: the folder whose saved agents the Session page offers.
    """

    world: str = DEFAULT_WORLD
    checkpoint_dir: str = "checkpoints"

    @classmethod
    def from_environment(cls) -> Settings:
        """The settings in :data:`WORLD_ENV` and :data:`CHECKPOINT_DIR_ENV` (defaults where unset)."""
        return cls(
            world=os.environ.get(WORLD_ENV) or DEFAULT_WORLD,
            checkpoint_dir=os.environ.get(CHECKPOINT_DIR_ENV) or "checkpoints",
        )


# -- worlds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldBundle:
    """A learned world and what the app needs beside it.

    Attributes:
        source: what was asked for (``"default"`` or the folder).
        world: the :class:`~world_model.world.LearnedWorld`.
        groundtruth: the ground-truth world it was learned from, or None (e.g. MSSD logs).
        truth: the ground truth's session model in the learned world's indices, or None.
    """

    source: str
    world: Any
    groundtruth: Any
    truth: SessionModel | None

    @property
    def worlds(self) -> tuple[str, ...]:
        """``("learned", "groundtruth")``, or ``("learned",)`` without a ground truth."""
        return (LEARNED, GROUNDTRUTH) if self.groundtruth is not None else (LEARNED,)


def open_world(source: str) -> WorldBundle:
    """Load the world ``source`` names (``"default"`` or a saved world folder) and its ground truth.

    Raises:
        ExploreError: the folder does not exist or holds no musicenv world (the message says why).
    """
    from world_model.world import default_world, groundtruth_for, load_world

    source = source.strip() or DEFAULT_WORLD
    if source == DEFAULT_WORLD:
        world = default_world()
    else:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ExploreError(f"{source} is not a folder: give a saved world folder (world.save(...)) or 'default'")
        try:
            world = load_world(folder)
        except (ArtifactError, OSError, KeyError, ValueError) as error:
            raise ExploreError(f"{source} is not a musicenv world: {error}") from error
    try:
        groundtruth = groundtruth_for(world)
    except ValueError:
        groundtruth = None
    truth = GroundTruthResponder(groundtruth, world) if groundtruth is not None else None
    return WorldBundle(source, world, groundtruth, truth)


def user_index(world: Any, user_id: str) -> int:
    """The index of listener ``user_id`` in ``world``.

    Raises:
        ExploreError: no listener has that id.
    """
    matches = np.flatnonzero(np.asarray(world.user_ids) == user_id)
    if len(matches) == 0:
        raise ExploreError(f"no listener {user_id!r} in this world (ids look like {world.user_ids[0]!r})")
    return int(matches[0])


# -- listeners ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerProfile:
    """A listener's taste as the world's logs show it.

    Attributes:
        user: the user index; ``user_id`` its id.
        premium: premium subscriber; ``held_out``: one of the 20% evaluation listeners.
        sessions, plays: logged sessions and plays.
        distinct_tracks, distinct_artists: how many different tracks and artists they played
            (their familiarity with the catalogue).
        blocked_tracks: tracks never to be offered to them (blocked tracks and blocked artists' tracks).
        top_artists: ``artist_id``, ``plays``, most played first.
        top_tracks: ``track_id``, ``artist_id``, ``plays``, most played first.
        contexts: ``context``, ``sessions``, ``share``: the contexts of their sessions, most usual first.
        usual_context: the code of their most usual context type; ``usual_hour`` the most usual hour.
    """

    user: int
    user_id: str
    premium: bool
    held_out: bool
    sessions: int
    plays: int
    distinct_tracks: int
    distinct_artists: int
    blocked_tracks: int
    top_artists: pd.DataFrame
    top_tracks: pd.DataFrame
    contexts: pd.DataFrame
    usual_context: int
    usual_hour: int


def listener_profile(world: Any, user: int, top: int = 10) -> ListenerProfile:
    """The taste profile of listener ``user`` (an index) from ``world``'s logs."""
    heard = world.retrieval.heard[user]
    tracks, counts = heard.indices, heard.data.astype(np.int64)
    order = np.lexsort((tracks, -counts))
    tracks, counts = tracks[order], counts[order]
    artist_ids = world.tracks["artist_id"].to_numpy(dtype=object)
    track_ids = world.tracks["track_id"].to_numpy(dtype=object)
    by_track = pd.DataFrame({"track_id": track_ids[tracks], "artist_id": artist_ids[tracks], "plays": counts})
    top_artists = (
        by_track.groupby("artist_id", dropna=True)["plays"]
        .sum()
        .reset_index()
        .sort_values(["plays", "artist_id"], ascending=[False, True], kind="stable")
        .head(top)
        .reset_index(drop=True)
    )
    own = world.session_users == user
    types = np.bincount(world.session_context_types[own].astype(np.int64), minlength=len(CONTEXT_TYPES))
    hours = np.bincount(world.session_hours[own].astype(np.int64), minlength=24)
    contexts = pd.DataFrame({"context": CONTEXT_TYPES, "sessions": types})
    contexts["share"] = contexts["sessions"] / max(int(types.sum()), 1)
    contexts = contexts[contexts["sessions"] > 0].sort_values("sessions", ascending=False, kind="stable")
    return ListenerProfile(
        user=user,
        user_id=str(world.user_ids[user]),
        premium=bool(world.premium[user]),
        held_out=bool(world.eval_users[user]),
        sessions=int(own.sum()),
        plays=int(counts.sum()),
        distinct_tracks=len(tracks),
        distinct_artists=int(by_track["artist_id"].nunique()),
        blocked_tracks=int(world.retrieval.blocked[user].nnz),
        top_artists=top_artists,
        top_tracks=by_track.head(top).reset_index(drop=True),
        contexts=contexts.reset_index(drop=True),
        usual_context=int(types.argmax()),
        usual_hour=int(hours.argmax()),
    )


def first_play_probs(model: SessionModel, user: int, context_type: int, hour: int, tracks: np.ndarray) -> np.ndarray:
    """``(K, 3)`` probabilities of (skip, listen, complete) for ``tracks`` as the first play of a session.

    The session's hidden mood (``attention``, which only the ground truth reads) is its average, 0.
    """
    contexts = Contexts(np.array([context_type], np.int8), np.array([hour], np.int8), np.zeros(1, np.float32))
    state = model.initial_state(np.array([user]), contexts)
    return np.asarray(model.response_probs(state, np.asarray(tracks, dtype=np.int64)[None]), dtype=np.float64)[0]


def pool_predictions(
    bundle: WorldBundle,
    user: int,
    context_type: int,
    hour: int,
    pool_size: int = 100,
    explicit_filter: bool = False,
) -> pd.DataFrame:
    """The listener's candidate pool, best first, with predicted and (where known) true probabilities.

    Columns: ``rank``, ``track_id``, ``artist_id``, ``genre``, ``explicit``, ``plays_before`` (the
    listener's plays of the track in the logs), ``learned_skip``, ``learned_listen``,
    ``learned_complete`` and, with a ground truth, ``true_skip``, ``true_listen``, ``true_complete``
    and ``optimism`` (learned minus true completion probability).
    """
    world = bundle.world
    pool = world.candidate_pools(np.array([user]), pool_size, explicit_filter)[0]
    pool = pool[pool >= 0]
    table = world.tracks.iloc[pool]
    heard = world.retrieval.heard[user].toarray()[0]
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, len(pool) + 1),
            "track_id": table["track_id"].to_numpy(),
            "artist_id": table["artist_id"].to_numpy() if "artist_id" in table else None,
            "genre": table["genre"].to_numpy() if "genre" in table else None,
            "explicit": table["explicit"].to_numpy(dtype=bool),
            "plays_before": heard[pool].astype(np.int64),
        }
    )
    learned = first_play_probs(world.session_model, user, context_type, hour, pool)
    for k, name in enumerate(RESPONSES):
        frame[f"learned_{name}"] = learned[:, k]
    if bundle.truth is not None:
        true = first_play_probs(bundle.truth, user, context_type, hour, pool)
        for k, name in enumerate(RESPONSES):
            frame[f"true_{name}"] = true[:, k]
        frame["optimism"] = frame["learned_complete"] - frame["true_complete"]
    return frame


def learned_vs_true(pool: pd.DataFrame) -> pd.DataFrame:
    """The pool's probabilities in long form for a scatter plot: ``track_id``, ``response``, ``true``, ``learned``."""
    parts = [
        pd.DataFrame(
            {
                "track_id": pool["track_id"],
                "response": name,
                "true": pool[f"true_{name}"],
                "learned": pool[f"learned_{name}"],
            }
        )
        for name in RESPONSES
    ]
    return pd.concat(parts, ignore_index=True)


# -- agents and checkpoints ------------------------------------------------------------------------------


def agent_names() -> list[str]:
    """Every registered agent name (:func:`agents.base.agent_names`; nothing is imported to list them)."""
    from agents.base import agent_names as registered

    return list(registered())


def checkpoints_in(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """The saved agents under ``checkpoint_dir``: the folder itself, or the runs directly under it, by name.

    A run counts when it holds a saved agent (:func:`agents.evaluate.agent_folder`); folders whose
    name starts with a dot (unfinished atomic writes) are skipped. A missing folder has none.
    """
    from agents.evaluate import agent_folder

    root = Path(checkpoint_dir).expanduser()
    if not root.is_dir():
        return []
    if (root / MANIFEST).is_file():
        return [root]
    found = []
    for run in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        try:
            agent_folder(run)
        except FileNotFoundError:
            continue
        found.append(run)
    return found


@dataclass(frozen=True)
class Player:
    """Who chooses the tracks of a lane: a person (:data:`MANUAL`), a registered agent, or a checkpoint.

    Attributes:
        label: the name shown on the page.
        agent: the registered agent name, or None for a person or a checkpoint.
        checkpoint: a saved agent (or ``train.py`` run) folder, or None.
    """

    label: str
    agent: str | None = None
    checkpoint: Path | None = None

    @property
    def manual(self) -> bool:
        """True when a person picks the tracks."""
        return self.agent is None and self.checkpoint is None

    def build(self, world: Any) -> Any:
        """A fresh agent for ``world`` (None for a person).

        Raises:
            ExploreError: the checkpoint holds no agent, is corrupt, or does not fit this world.
        """
        from agents.base import load_agent, make_agent
        from agents.evaluate import agent_folder

        if self.manual:
            return None
        if self.checkpoint is None:
            return make_agent(str(self.agent), world)
        try:
            return load_agent(agent_folder(self.checkpoint), world)
        except (ArtifactError, FileNotFoundError, KeyError, TypeError, ValueError, RuntimeError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            raise ExploreError(f"cannot load the checkpoint {self.checkpoint}: {message}") from error


def player_named(label: str, checkpoints: Sequence[Path] = ()) -> Player:
    """The :class:`Player` a page's choice names: :data:`MANUAL`, an agent name, or ``checkpoint: <folder>``."""
    if label == MANUAL:
        return Player(label)
    for folder in checkpoints:
        if label == checkpoint_label(folder):
            return Player(label, checkpoint=folder)
    return Player(label, agent=label)


def checkpoint_label(folder: Path) -> str:
    """How a checkpoint is offered on the page: ``checkpoint: <folder name>``."""
    return f"checkpoint: {folder.name}"


# -- sessions ------------------------------------------------------------------------------------------


PLAYLIST_COLUMNS = ("position", "track_id", "artist_id", "response", "p_skip", "p_listen", "p_complete", "p_leave")
"""Columns of a lane's playlist, before ``reward`` and ``return``."""


@dataclass
class Lane:
    """One player's session in one world: the environment, the agent, and the playlist so far.

    Attributes:
        player: who chooses; ``world``: ``"learned"`` or ``"groundtruth"``.
        env: the lane's ``ListeningSessionEnv``, reset with the run's seed.
        agent: the agent (None for a person, or when it cannot play in this world).
        note: why the lane does not play, if it does not (e.g. an agent that reads the truth, in
            the learned world).
        rows: one dict per play (:data:`PLAYLIST_COLUMNS`, ``reward``, ``return``).
        done: the session ended; ``ending``: how (``"the listener left"``, ``"playlist full"``).
    """

    player: Player
    world: str
    env: ListeningSessionEnv
    agent: Any
    note: str = ""
    obs: dict[str, np.ndarray] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    ending: str = ""

    @property
    def playing(self) -> bool:
        """True while the lane can take another step."""
        return not self.done and not self.note

    @property
    def total(self) -> float:
        """The return so far."""
        return self.rows[-1]["return"] if self.rows else 0.0

    def table(self) -> pd.DataFrame:
        """The playlist so far, one row per play."""
        return pd.DataFrame(self.rows, columns=[*PLAYLIST_COLUMNS, "reward", "return"])

    def choose(self) -> int:
        """The agent's slot for the next play."""
        oracle = self.env.oracle
        return int(self.agent.act({key: value[None] for key, value in self.obs.items()}, oracle)[0])

    def play(self, slot: int) -> None:
        """Play pool slot ``slot``: record the response, its probabilities, the chance of leaving, the return."""
        self.obs, reward, terminated, truncated, info = self.env.step(slot)
        if info["invalid_action"]:
            raise ExploreError(f"slot {slot} cannot be played now (already played, or padding)")
        return_so_far = self.total + reward
        self.rows.append(
            {
                "position": info["position"],
                "track_id": info["track_id"],
                "artist_id": info["artist_id"],
                "response": info["response"],
                "p_skip": float(info["response_probs"][0]),
                "p_listen": float(info["response_probs"][1]),
                "p_complete": float(info["response_probs"][2]),
                "p_leave": self.leave_prob(),
                "reward": float(reward),
                "return": float(return_so_far),
            }
        )
        if terminated or truncated:
            self.done = True
            self.ending = "the listener left" if terminated else "the playlist is full"

    def leave_prob(self) -> float:
        """The responder's probability that the listener leaves now (after the plays so far)."""
        responder: SessionModel = (
            self.env.oracle.session_model if self.env.oracle is not None else self.env.world.session_model
        )
        return float(responder.leave_probs(_responder_state(self.env))[0])


def _responder_state(env: ListeningSessionEnv) -> SessionState:
    """The responder's state of the env's session (a batch of one), from ``get_state``."""
    prefix = "session_model/"
    return {key[len(prefix) :]: value for key, value in env.get_state().items() if key.startswith(prefix)}


@dataclass
class SessionRun:
    """One episode played by up to two players, each in the learned world and in the ground truth.

    Every lane's environment is reset with ``seed``: the same listener, context, pool and
    response and leaving uniforms (common random numbers), so their returns differ only through
    the tracks chosen and who answers.

    Attributes:
        seed: the episode seed; ``lanes``: one :class:`Lane` per player and world, players first.
        user, user_id, context_type, hour, pool: the episode's listener, context and pool (track
            indices, ``-1`` for padding).
    """

    seed: int
    lanes: list[Lane]
    user: int
    user_id: str
    context_type: str
    hour: int
    pool: np.ndarray

    @property
    def finished(self) -> bool:
        """True when no lane can take another step."""
        return not any(lane.playing for lane in self.lanes)

    @property
    def needs_pick(self) -> bool:
        """True when a person plays in a lane that is still going: a step then needs their track."""
        return any(lane.playing and lane.player.manual for lane in self.lanes)

    def manual_lane(self) -> Lane | None:
        """The person's lane that has played longest and is still going (learned world first), or None."""
        lanes = [lane for lane in self.lanes if lane.player.manual and lane.playing]
        return max(lanes, key=lambda lane: len(lane.rows)) if lanes else None

    def choices(self, bundle: WorldBundle) -> pd.DataFrame:
        """The tracks a person can pick next, with the learned world's prediction for each as the next play.

        Columns: ``slot``, ``track_id``, ``artist_id``, ``p_skip``, ``p_listen``, ``p_complete``,
        best predicted completion first. Empty when no person plays.
        """
        lane = self.manual_lane()
        if lane is None:
            return pd.DataFrame(columns=["slot", "track_id", "artist_id", "p_skip", "p_listen", "p_complete"])
        slots = np.flatnonzero(lane.env.action_masks())
        tracks = self.pool[slots]
        # The learned world's prediction, as a recommender would see it, whoever answers in this lane.
        state = _learned_state_after(bundle, self, lane)
        probs = np.asarray(bundle.world.session_model.response_probs(state, tracks[None]))[0]
        table = bundle.world.tracks.iloc[tracks]
        frame = pd.DataFrame(
            {
                "slot": slots,
                "track_id": table["track_id"].to_numpy(),
                "artist_id": table["artist_id"].to_numpy() if "artist_id" in table else None,
                "p_skip": probs[:, 0],
                "p_listen": probs[:, 1],
                "p_complete": probs[:, 2],
            }
        )
        return frame.sort_values("p_complete", ascending=False, kind="stable").reset_index(drop=True)

    def step(self, slot: int | None = None) -> None:
        """One play in every lane still going: agents choose their own slot, a person's lanes play ``slot``.

        Raises:
            ExploreError: a person plays and ``slot`` is None or cannot be played.
        """
        if self.needs_pick and slot is None:
            raise ExploreError("pick the next track first")
        for lane in self.lanes:
            if lane.playing:
                lane.play(slot if lane.player.manual else lane.choose())


def _learned_state_after(bundle: WorldBundle, run: SessionRun, lane: Lane) -> SessionState:
    """The learned model's state after ``lane``'s plays (whichever world answered them)."""
    model = bundle.world.session_model
    env = lane.env
    contexts = Contexts(
        np.array([CONTEXT_TYPES.index(run.context_type)], np.int8), np.array([run.hour], np.int8), np.zeros(1)
    )
    state = model.initial_state(np.array([run.user]), contexts)
    index = {track_id: i for i, track_id in enumerate(env.catalogue.track_ids)}
    for row in lane.rows:
        state = model.advance(
            state, np.array([index[row["track_id"]]]), np.array([RESPONSES.index(row["response"])], np.int8)
        )
    return state


def start_session(
    bundle: WorldBundle,
    players: Sequence[Player],
    seed: int,
    split: str = "eval",
    playlist_length: int = 20,
    pool_size: int = 100,
    explicit_filter: bool = False,
) -> SessionRun:
    """A new :class:`SessionRun`: one lane per player and world, every environment reset with ``seed``.

    Args:
        bundle: the world (and its ground truth, which adds a lane per player).
        players: one or two players (:func:`player_named`).
        seed: the episode seed.
        split, playlist_length, pool_size, explicit_filter: ``ListeningSession-v0``'s arguments.

    Raises:
        ExploreError: no player, or a checkpoint that cannot be loaded.
    """
    if not players:
        raise ExploreError("choose at least one player")
    lanes = []
    for player in players:
        for world_name in bundle.worlds:
            env = ListeningSessionEnv(
                world=bundle.world,
                playlist_length=playlist_length,
                pool_size=pool_size,
                explicit_filter=explicit_filter,
                split=split,  # type: ignore[arg-type]
                responder=bundle.groundtruth if world_name == GROUNDTRUTH else None,
            )
            obs, _ = env.reset(seed=seed)
            agent = player.build(bundle.world)  # a fresh agent per world: its own random draws are paired too
            note = ""
            if agent is not None and agent.needs_oracle and env.oracle is None:
                note, agent = "reads the ground truth: it plays in the ground-truth world only", None
            lanes.append(Lane(player, world_name, env, agent, note=note, obs=obs))
    first = lanes[0].env
    state = first.get_state()
    return SessionRun(
        seed=seed,
        lanes=lanes,
        user=first.user,
        user_id=str(bundle.world.user_ids[first.user]),
        context_type=CONTEXT_TYPES[int(state["context_type"][0])],
        hour=int(state["hour"][0]),
        pool=first.pool,
    )


# -- sound ---------------------------------------------------------------------------------------------


def sound_features(world: Any) -> list[str]:
    """The world's audio features that sliders can set: numeric track columns of
    :data:`~musicenv.data.ACOUSTIC_FEATURES` with values, less metadata and the unnamed acoustic vector."""
    tracks = world.tracks
    return [
        name
        for name in ACOUSTIC_FEATURES
        if name in tracks.columns
        and name not in SOUND_EXCLUDED
        and not name.startswith("acoustic_vector_")
        and pd.api.types.is_numeric_dtype(tracks[name])
        and tracks[name].notna().any()
    ]


def feature_ranges(world: Any, features: Sequence[str]) -> pd.DataFrame:
    """Per feature (rows): the catalogue's ``min``, ``max``, ``mean`` and ``std``, for sliders and standardising."""
    values = world.tracks[list(features)].astype(np.float64)
    return pd.DataFrame({"min": values.min(), "max": values.max(), "mean": values.mean(), "std": values.std(ddof=0)})


def listener_sound(world: Any, user: int, features: Sequence[str]) -> dict[str, float]:
    """The listener's sound: the play-weighted mean of each feature over the tracks they played.

    A listener without plays gets the catalogue's mean.
    """
    heard = world.retrieval.heard[user]
    values = world.tracks[list(features)].astype(np.float64)
    if heard.nnz == 0:
        means = values.mean()
    else:
        rows = values.iloc[heard.indices].fillna(values.mean())
        means = rows.mul(heard.data, axis=0).sum() / float(heard.data.sum())
    return {name: float(means[name]) for name in features}


def rank_by_sound(
    world: Any,
    target: dict[str, float],
    user: int | None = None,
    explicit_filter: bool = False,
    top: int = 25,
) -> pd.DataFrame:
    """The ``top`` tracks whose sound is closest to ``target``, by cosine similarity of standardised features.

    Each feature is standardised by the catalogue's mean and standard deviation (else tempo, in
    beats per minute, would outweigh every feature in [0, 1]); a track's missing value counts as
    the mean. The listener's blocked tracks (and tracks of blocked artists) and, with
    ``explicit_filter``, explicit tracks are left out.

    Returns:
        ``rank``, ``track_id``, ``artist_id``, ``similarity``, then the target's features.

    Raises:
        ExploreError: no feature given.
    """
    features = list(target)
    if not features:
        raise ExploreError("choose at least one audio feature to match")
    ranges = feature_ranges(world, features)
    scale = ranges["std"].replace(0.0, 1.0)
    values = ((world.tracks[features].astype(np.float64) - ranges["mean"]) / scale).fillna(0.0).to_numpy()
    goal = ((pd.Series(target, dtype=np.float64) - ranges["mean"]) / scale).to_numpy()
    norms = np.linalg.norm(values, axis=1) * np.linalg.norm(goal)
    similarity = np.divide(values @ goal, norms, out=np.zeros(len(values)), where=norms > 0)
    allowed = np.ones(len(values), dtype=bool)
    if user is not None:
        allowed[world.retrieval.blocked[user].indices] = False
    if explicit_filter:
        allowed &= ~world.tracks["explicit"].to_numpy(dtype=bool)
    candidates = np.flatnonzero(allowed)
    best = candidates[np.lexsort((candidates, -similarity[candidates]))][:top]
    table = world.tracks.iloc[best]
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, len(best) + 1),
            "track_id": table["track_id"].to_numpy(),
            "artist_id": table["artist_id"].to_numpy() if "artist_id" in table else None,
            "similarity": similarity[best],
        }
    )
    for name in features:
        frame[name] = table[name].to_numpy()
    return frame


# -- evaluation results -----------------------------------------------------------------------------------


RESULTS_REQUIRED = ("agent", "world", "mean_return")
"""Columns without which ``results.csv`` is not an ``eval.py`` table."""


@dataclass(frozen=True)
class EvalOutput:
    """An ``eval.py`` output folder as the Results page shows it.

    Attributes:
        folder: the folder.
        results: ``results.csv`` (one row per agent and world; NaN where ``n/a``).
        fidelity: ``fidelity.csv`` (``agent``, ``relative_gap``), or None when absent.
        figures: the PNG files, by name.
        run: ``run.json`` (how the run was made), or None.
    """

    folder: Path
    results: pd.DataFrame
    fidelity: pd.DataFrame | None
    figures: list[Path]
    run: dict[str, Any] | None

    def filtered(self, agents: Sequence[str], worlds: Sequence[str]) -> pd.DataFrame:
        """The rows of ``results`` for the given agents and worlds."""
        results = self.results
        return results[results["agent"].isin(agents) & results["world"].isin(worlds)].reset_index(drop=True)


def read_eval_output(folder: str | os.PathLike[str]) -> EvalOutput:
    """Read an ``eval.py`` output folder (``results.csv`` required; ``fidelity.csv``, PNGs, ``run.json`` optional).

    Raises:
        ExploreError: not a folder, no or an empty or unreadable ``results.csv``, or one without the
            columns ``eval.py`` writes.
    """
    from agents.report import CSV_NAME, FIDELITY_CSV_NAME, NOT_AVAILABLE

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ExploreError(f"{folder} is not a folder: give an eval.py output folder (python eval.py --out FOLDER)")
    csv = path / CSV_NAME
    if not csv.is_file():
        raise ExploreError(f"{folder} holds no {CSV_NAME}: it is not an eval.py output folder (or the run did not end)")
    try:
        results = pd.read_csv(csv, na_values=[NOT_AVAILABLE])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ExploreError(f"{csv} cannot be read as a table: {error}") from error
    missing = [name for name in RESULTS_REQUIRED if name not in results.columns]
    if missing:
        raise ExploreError(f"{csv} is not an eval.py results table: it lacks the columns {', '.join(missing)}")
    if results.empty:
        raise ExploreError(f"{csv} has no rows: the evaluation evaluated no agent")
    fidelity = None
    if (path / FIDELITY_CSV_NAME).is_file():
        try:
            fidelity = pd.read_csv(path / FIDELITY_CSV_NAME, na_values=[NOT_AVAILABLE])
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            fidelity = None
    run = None
    if (path / "run.json").is_file():
        try:
            run = json.loads((path / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            run = None
    return EvalOutput(path, results, fidelity, sorted(path.glob("*.png")), run)


def latest_eval_output(root: str | os.PathLike[str] = "eval_out") -> Path | None:
    """The most recent folder under ``root`` that holds a ``results.csv``, or None."""
    folders = [csv.parent for csv in Path(root).glob("*/results.csv")]
    return max(folders, key=lambda folder: (folder / "results.csv").stat().st_mtime) if folders else None
