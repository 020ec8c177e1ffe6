"""``ListeningSession-v0``: build a listening session one track at a time."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import error, spaces

from musicenv.familiarity import advance_session_familiarity, match_masks, recent_codes
from musicenv.observation import (
    N_LOGGED,
    OBSERVATION_LAYOUTS,
    ObservationLayout,
    build_observations,
    compact_observation_space,
    observation_space,
    track_play_codes,
)
from musicenv.responders import (
    DEFAULT_PESSIMISM,
    RESPONSE_MODES,
    GroundTruthLike,
    Oracle,
    ResponseMode,
    member_models,
    resolve_world,
)
from musicenv.rewards import RewardConfig, new_artists, play_rewards
from musicenv.sessions import session_world
from musicenv.validation import check_action, check_choice, check_count, check_flag, check_seed, check_weight
from musicenv.world import (
    CONTEXT_TYPES,
    RESPONSES,
    Contexts,
    SessionModel,
    SessionState,
    SingleSession,
    Split,
    World,
    context_features,
    ensemble_size,
    member_disagreement,
    single_session,
    world_familiarity,
)

SESSION_STATS = ("return", "length", "completions", "listens", "skips", "invalid_actions")
"""Keys of ``info["session"]``, the statistics of an episode that just ended."""

COUNTS = ("completions", "listens", "skips", "invalid_actions")
"""The counts among the session statistics."""
RESPONSE_COUNTS = ("skips", "listens", "completions")
"""The count each response code adds to, by code."""

SPLITS = ("train", "eval", "all")


class CatalogueArrays:
    """A world's tables as the environments read them on every step: plain arrays, made once.

    Attributes:
        track_features: ``(n_tracks, d_track)`` float32.
        candidate_features: ``(n_tracks + 1, d_track)`` float32, ``track_features`` and a last row
            of zeros, so that a pool's padding (track -1) reads as the observation's zero rows.
        user_features: ``(n_users, d_user)`` float32.
        track_ids: ``(n_tracks,)`` object array of str.
        artist_ids: ``(n_tracks,)`` object array of str, None where the artist is unknown.
        artist_codes: ``(n_tracks,)`` int64 artist codes for the diversity bonus; a track whose
            artist is unknown gets a code of its own, so it counts as its own artist.
        track_boosts: ``(n_tracks,)`` float64 factor of each track's response reward
            (:meth:`~musicenv.rewards.RewardConfig.track_boosts`: the discovery boost, or 1).
        user_ids: ``(n_users,)`` object array of str.
        familiarity: the world's sparse (listener, track) familiarity table
            (:func:`musicenv.world.world_familiarity`), or None (zero ``familiarity`` rows).
    """

    def __init__(self, world: World, reward: RewardConfig) -> None:
        tracks = world.tracks
        n_tracks = len(tracks)
        self.track_features = np.ascontiguousarray(world.track_features, dtype=np.float32)
        self.candidate_features = np.concatenate(
            [self.track_features, np.zeros((1, self.track_features.shape[1]), np.float32)]
        )
        self.user_features = np.ascontiguousarray(world.user_features, dtype=np.float32)
        self.track_ids = tracks["track_id"].to_numpy(dtype=object)
        self.user_ids = np.asarray(world.user_ids, dtype=object)
        if "artist_id" in tracks.columns:
            artists = tracks["artist_id"]
            self.artist_ids = artists.astype(object).where(artists.notna(), None).to_numpy(dtype=object)
            codes, uniques = pd.factorize(artists)
        else:
            self.artist_ids = np.full(n_tracks, None, dtype=object)
            codes, uniques = np.full(n_tracks, -1), []
        self.artist_codes = np.where(codes >= 0, codes, len(uniques) + np.arange(n_tracks)).astype(np.int64)
        self.track_boosts = reward.track_boosts(tracks)
        self.familiarity = world_familiarity(world)


@dataclass(frozen=True)
class SessionSettings:
    """The settings of the sessions an environment plays: the arguments every environment shares, checked once.

    Attributes are the constructor arguments of the same names (:class:`ListeningSessionEnv`),
    as checked values: ``reward`` is a :class:`~musicenv.rewards.RewardConfig` (the defaults for
    None) and ``pessimism`` a float.
    """

    playlist_length: int
    pool_size: int
    reward: RewardConfig
    explicit_filter: bool
    strict: bool
    split: Split
    observation: ObservationLayout
    responses: ResponseMode
    pessimism: float

    @classmethod
    def check(
        cls,
        playlist_length: Any,
        pool_size: Any,
        reward: Any,
        explicit_filter: Any,
        strict: Any,
        split: Any,
        observation: Any,
        responses: Any,
        pessimism: Any,
    ) -> SessionSettings:
        """The settings of an environment's arguments, after checking each (:mod:`musicenv.validation`).

        Raises:
            TypeError: an argument of the wrong type (``playlist_length=2.5``, ``"20"``, ``None``,
                ``strict="no"``, ``pessimism="1"``, a ``reward`` that is not a RewardConfig), naming it.
            ValueError: a value out of range or not among the choices (``responses="median"``,
                ``pessimism=-1``), naming it.
        """
        if reward is not None and not isinstance(reward, RewardConfig):
            raise TypeError(f"reward must be a RewardConfig or None, got {type(reward).__name__}")
        return cls(
            playlist_length=check_count("playlist_length", playlist_length),
            pool_size=check_count("pool_size", pool_size),
            reward=reward if reward is not None else RewardConfig(),
            explicit_filter=check_flag("explicit_filter", explicit_filter),
            strict=check_flag("strict", strict),
            split=check_choice("split", split, SPLITS),  # type: ignore[arg-type]
            observation=check_choice("observation", observation, OBSERVATION_LAYOUTS),  # type: ignore[arg-type]
            responses=check_choice("responses", responses, RESPONSE_MODES),  # type: ignore[arg-type]
            pessimism=check_weight("pessimism", pessimism),
        )


class SessionEnvSetup:
    """What every ``ListeningSession-v0`` environment sets up from its arguments (the single and the vector envs' base).

    :meth:`_set_up` resolves the world and the responder, keeps the settings as public attributes
    (``playlist_length``, ``pool_size``, ``reward_config``, ``explicit_filter``, ``strict``,
    ``split``, ``observation``, ``responses``, ``pessimism``, ``render_mode``) and builds the
    catalogue arrays and the models that answer episodes.
    """

    def _set_up(
        self,
        settings: SessionSettings,
        world: str | os.PathLike[str] | World,
        responder: str | SessionModel | GroundTruthLike | None,
        groundtruth_seed: Any,
        session: str,
        render_mode: str | None,
    ) -> bool:
        """Set the environment up as the class docstring says; whether its responder is the ground truth.

        Raises:
            TypeError, ValueError: a bad ``groundtruth_seed``, world, responder or session.
        """
        check_seed("groundtruth_seed", groundtruth_seed)
        world, self._responder, groundtruth = resolve_world(world, responder, groundtruth_seed)
        self.world = session_world(world, session)
        self.playlist_length = settings.playlist_length
        self.pool_size = settings.pool_size
        self.reward_config = settings.reward
        self.explicit_filter = settings.explicit_filter
        self.strict = settings.strict
        self.split = settings.split
        self.observation = settings.observation
        self.responses = settings.responses
        self.pessimism = settings.pessimism
        self.render_mode = render_mode
        self.catalogue = CatalogueArrays(self.world, self.reward_config)
        self._ensemble_size = ensemble_size(self._responder)
        # The models an episode may be answered by: the members in "sample" mode, else the responder.
        self._member_models = member_models(self._responder, self.responses)
        # The weight of the disagreement in a play's reward: 0 but in "pessimistic" mode.
        self._penalty = self.pessimism if self.responses == "pessimistic" else 0.0
        return groundtruth

    def _session_observation_space(self) -> spaces.Dict:
        """The observation space of one session, in the layout ``observation`` asks for."""
        catalogue = self.catalogue
        if self.observation == "full":
            return observation_space(
                catalogue.track_features, catalogue.user_features, self.playlist_length, self.pool_size
            )
        return compact_observation_space(
            len(catalogue.user_features), len(catalogue.track_features), self.playlist_length, self.pool_size
        )

    def _known_members(self, members: np.ndarray) -> np.ndarray:
        """``members`` (a snapshot's), after checking this env has a model for each.

        Raises:
            ValueError: a member this env's ``responses`` mode has no model for (a snapshot of a
                "sample" env restored into a "mean" one, or of another ensemble).
        """
        if members.min() < 0 or members.max() >= len(self._member_models):
            raise ValueError(
                f"the state's episodes are answered by members up to {members.max()}; this env's "
                f"responses={self.responses!r} has {len(self._member_models)} model(s) to answer with"
            )
        return members

    def _draw_member(self, rng: np.random.Generator) -> int:
        """The member that answers a new episode: drawn from ``rng`` in "sample" mode with more than one member
        (one integer, after the episode's other draws), else 0 without a draw."""
        return int(rng.integers(len(self._member_models))) if len(self._member_models) > 1 else 0


class ListeningSessionEnv(SessionEnvSetup, gym.Env[dict[str, np.ndarray], np.int64]):
    """
    ## Description

    A music streaming service builds a listening session for one listener, one track at a time,
    after Tomasi et al., "Automatic Music Playlist Generation via Simulation-based Reinforcement
    Learning" (KDD 2023). At the start of an episode a listener and a listening context (context
    type, hour) are drawn, and the listener's candidate pool of M tracks is retrieved (an
    approximate-nearest-neighbour search over ALS embeddings in a learned world). At each step the
    agent picks one track of the pool; the simulated listener **skips** it, **listens** past N
    seconds, or **completes** it, and may **leave** the session. The listener's responses depend
    on the whole session so far (position and fatigue, skip runs, artist repetition, satiation,
    mood), so building a good session is a sequential problem, not a ranking one.

    The listener is a *world* (:mod:`musicenv.world`): by default the embedded learned world, whose
    user-response and session-end models were trained on listening logs. With
    ``world="groundtruth"`` the same observations and pools come from the learned world (all a
    deployed recommender sees) but the responses and leaving come from the exact ground-truth
    model the logs were drawn from: the sim-to-real run. The difference of an agent's returns in
    the two is its sim-to-real gap.

    ## Action Space

    `Discrete(M)` (M = `pool_size`, default 100): the slot of the candidate pool to play next.
    Slots are ordered best first by the retrieval score. A slot is **invalid** if its track was
    already played in this session or if it is padding (the pool of a catalogue smaller than M);
    `observation["action_mask"]` and `action_masks()` (for sb3-contrib's `MaskablePPO`) mark the
    valid ones. An invalid action does not crash: see Rewards. An action must be an integer (a
    Python `int` or a numpy integer, as `action_space.sample()` gives); a float (`2.7`), a bool or
    text (`"3"`) raises `ValueError`, and so does a slot outside `[0, M)`.

    ## Observation Space

    A `Dict` of fixed-shape arrays (L = `playlist_length`), built by
    :func:`musicenv.observation.build_observations`:

    | Key            | Shape              | Dtype   | Content                                              |
    |----------------|--------------------|---------|------------------------------------------------------|
    | `user`         | `(d_user,)`        | float32 | the listener's features (`world.user_features[u]`)   |
    | `context`      | `(8,)`             | float32 | one-hot context type (6), sin and cos of the hour    |
    | `history`      | `(L, d_track + 3)` | float32 | played tracks' features + response one-hot (skip,    |
    |                |                    |         | listen, complete), in order; zero rows after the last|
    | `history_mask` | `(L,)`             | float32 | 1.0 where a track was played                         |
    | `candidates`   | `(M, d_track)`     | float32 | the pool's track features, zero rows for padding     |
    | `action_mask`  | `(M,)`             | int8    | 1 where the slot can be played                       |
    | `familiarity`  | `(M, 12)`          | float32 | the listener's past plays, completions and skips of  |
    |                |                    |         | each candidate and of its artist in the world's logs |
    |                |                    |         | (7 columns), then whether its artist made the last   |
    |                |                    |         | play, the one before, and how many of the last 8,    |
    |                |                    |         | whether its genre made the last play and how much of |
    |                |                    |         | it the last 8 held (5, :mod:`musicenv.familiarity`,  |
    |                |                    |         | refreshed after each play): what the learned user    |
    |                |                    |         | model reads                                          |
    |                |                    |         | (:data:`musicenv.world.FAMILIARITY_FEATURES`); zero  |
    |                |                    |         | rows for padding                                     |
    | `history_familiarity` | `(L, 12)`   | float32 | the same for each played track, in order, as it was  |
    |                |                    |         | when the track was picked                            |

    The feature boxes are bounded by the world's feature tables (and 0). Every call returns new
    arrays. With `observation="compact"` the observation holds indices instead (the user, the
    pool's and the history's track indices, the responses; see :mod:`musicenv.observation`), for
    agents that read the world's feature tables themselves;
    :func:`musicenv.observation.expand_observations` turns it into the layout above.

    ## Rewards

    From :class:`musicenv.rewards.RewardConfig` (its docstring justifies the defaults): complete
    1.0, listen 0.5, skip 0.0 — the reward is the listening value of a play; a skip is a lost slot,
    and the session-end model already punishes skips by ending sessions early. Optional terms, off
    by default: a diversity bonus for a play whose artist is new to the session, and a
    multiplier for tracks flagged for discovery (Spotify's Discovery Mode).

    An invalid action earns `reward.invalid_action` (default -1.0, below any play), sets
    `info["invalid_action"] = True` and changes nothing but the step counter: it counts toward
    `playlist_length`, so an agent cannot stall forever. With `strict=True` it raises
    `ValueError` naming the slot instead.

    With `responses="pessimistic"` a play's reward is lowered by `pessimism` times the members'
    disagreement on it (see Responses); an invalid action earns `reward.invalid_action` alone.

    ## Responses

    The learned world's user-response model may be an ensemble
    (:class:`musicenv.world.EnsembleSessionModel`): members trained alike that share one session
    state and agree where the logs pinned the answer down. `responses` says how it answers:

    * `"mean"` (default): the members' mean probabilities. Exactly the environment as it was
      before ensembles: the same draws, the same episodes.
    * `"sample"`: each episode is answered by one member, drawn at reset from `self.np_random`
      (domain randomisation: an agent must do well for every member the logs allow). The member
      is drawn *after* the listener, context and uniforms, as one more integer, and only when the
      responder has more than one member: the first episode after `reset(seed=s)` meets the same
      listener, pool and uniforms as in `"mean"` mode, but, unseeded, later episodes differ from
      `"mean"`'s, since each reset drew one more number. The same seed replays the same members.
    * `"pessimistic"`: the mean probabilities, and the reward of a play minus `pessimism` times
      the members' disagreement on it: a lower-confidence reward that keeps an agent where the
      model knows the answer (MOPO, Yu et al. 2020). The draws are those of `"mean"`.

    The disagreement of a play is the standard deviation over the members of its expected
    response value (`reward.response_values`, before any discovery boost or diversity bonus;
    :func:`musicenv.world.member_disagreement`), in reward units, for the state before the play.
    A responder that is not an ensemble (the ground truth of `world="groundtruth"`, any
    `SessionModel`) is an ensemble of one: its disagreement is 0 and the three modes are the same
    environment, draw for draw. `pessimism` defaults to
    :data:`musicenv.responders.DEFAULT_PESSIMISM` (1.0: one standard deviation; its docstring
    says how it is chosen).

    ## Starting State

    `reset(seed=...)` draws, from `self.np_random` only: the listener and the context
    (`world.sample_sessions`, from the users of `split`), then one uniform per position for the
    response and one for leaving (and, with `responses="sample"` and an ensemble, the member that
    answers the episode: see Responses). Responses are the inverse CDF of (skip, listen, complete) at the
    position's uniform, and the listener leaves when the position's leaving uniform is below the
    leaving probability: **common random numbers**, so two agents that meet the same seed meet
    the same listener, pool and luck, and their returns differ only through their choices. The
    pool is `world.candidate_pools(user, M, explicit_filter)`, with the tracks and artists the
    listener blocked (and, with `explicit_filter`, explicit tracks) already removed and refilled
    from further down the ranking. The session is empty.

    ## Episode End

    1. Termination: the listener leaves (the session-end model), after the play that was just
       rewarded.
    2. Truncation: `playlist_length` steps were taken (invalid ones included), or no valid slot is
       left in the pool. The environment truncates by itself, so the registered id carries no
       `TimeLimit` (`max_episode_steps=None`) and `gymnasium.make("ListeningSession-v0",
       playlist_length=30)` gives 30-track sessions. When the listener leaves on the last step
       only `terminated` is set.

    Stepping after the end raises `gymnasium.error.ResetNeeded`.

    ## Info

    Every step: `response` (`"skip"`, `"listen"` or `"complete"`; None for an invalid action),
    `response_probs` (3,) float64 (zeros for an invalid action), `track_id`, `artist_id` (None when
    unknown), `track_index` (the world's track index of the slot, -1 for padding), `p_complete`
    (the responder's completion probability of the chosen track; 0.0 for an invalid action),
    `invalid_action`, `position` (the 1-based session position of the play), `disagreement`
    (float: the members' disagreement on the play, in every `responses` mode; 0.0 for a
    responder that is not an ensemble and for an invalid action; see Responses). At the end,
    `session`: a dict of `return`, `length` (tracks played), `completions`, `listens`, `skips`,
    `invalid_actions`. (Not `episode`: that key belongs to `RecordEpisodeStatistics` and SB3's
    `Monitor`, which would otherwise collide with it.)

    ## Arguments

    ```python
    >>> import gymnasium as gym, musicenv
    >>> env = gym.make("ListeningSession-v0", playlist_length=30, render_mode="ansi")
    >>> obs, info = env.reset(seed=7)
    >>> obs, reward, terminated, truncated, info = env.step(int(obs["action_mask"].argmax()))
    >>> print(env.render())
    ```

    | Parameter          | Type                 | Default     | Description                                  |
    |--------------------|----------------------|-------------|----------------------------------------------|
    | `world`            | str, path or World   | `"default"` | `"default"` (the embedded learned world), a  |
    |                    |                      |             | saved world folder, `"groundtruth"` (the     |
    |                    |                      |             | default world answered by its ground truth), |
    |                    |                      |             | or a `World`                                 |
    | `playlist_length`  | int                  | `20`        | L: the cap on steps (the MSSD's 20; 30 for a |
    |                    |                      |             | Discover-Weekly-length playlist)             |
    | `pool_size`        | int                  | `100`       | M: candidate pool size and number of actions |
    | `reward`           | RewardConfig or None | `None`      | the reward mapping (None: the defaults)      |
    | `explicit_filter`  | bool                 | `False`     | remove explicit tracks from pools            |
    | `strict`           | bool                 | `False`     | raise on invalid actions instead of          |
    |                    |                      |             | penalising                                   |
    | `split`            | str                  | `"train"`   | listeners from `"train"`, `"eval"` (the      |
    |                    |                      |             | held-out 20%) or `"all"` users               |
    | `render_mode`      | str or None          | `None`      | `"ansi"`: `render()` returns the playlist so |
    |                    |                      |             | far as a table                               |
    | `responder`        | str, object or None  | `None`      | who answers: None (the world's own model),   |
    |                    |                      |             | `"groundtruth"` or a ground-truth world      |
    |                    |                      |             | object (sim-to-real run), or any             |
    |                    |                      |             | `SessionModel`                               |
    | `observation`      | str                  | `"full"`    | `"full"` (the table above) or `"compact"`    |
    |                    |                      |             | (indices into the world's feature tables)    |
    | `groundtruth_seed` | int or None          | `None`      | with `world="groundtruth"`: the seed of the  |
    |                    |                      |             | ground truth (and of the learned world built |
    |                    |                      |             | from its logs)                               |
    | `session`          | str                  | `"default"` | the listening mode, i.e. what the pool holds:|
    |                    |                      |             | `"default"` or `"smart_shuffle"` (the        |
    |                    |                      |             | listener's playlist + recommendations; see   |
    |                    |                      |             | :mod:`musicenv.sessions`)                    |
    | `responses`        | str                  | `"mean"`    | how an ensemble responder answers: `"mean"`, |
    |                    |                      |             | `"sample"` or `"pessimistic"` (Responses)    |
    | `pessimism`        | float                | `1.0`       | lambda of `"pessimistic"`: the weight of the |
    |                    |                      |             | disagreement in a play's reward (finite,     |
    |                    |                      |             | >= 0)                                        |

    Types are checked at construction (:mod:`musicenv.validation`): an int is a Python or numpy
    integer, never a bool, float or text (`playlist_length=2.5` or `"20"` raises `TypeError`
    naming the argument), a bool is `True` or `False`, a weight (`pessimism`) a finite real
    number, and a value out of range or a text not among the choices raises `ValueError`.

    In a ground-truth run `env.oracle` is an :class:`musicenv.responders.Oracle`: the true
    `session_model` (in the learned world's indices), the current `state`, and
    `response_probs(pool_slots)` / `leave_probs()`, for agents allowed to read the truth; it is
    None otherwise, and no observation exposes it. `get_state()` / `set_state()` save and restore
    the whole environment, random generator and the episode's member included, as a flat dict of
    arrays (`np.savez`-able without pickle), for an exact resume. `env.user` and `env.pool` give
    the current listener's user index and the pool's track indices, for baselines that rank by
    the world's tables.

    ## Vectorized environment

    :class:`musicenv.vector_env.ListeningSessionVectorEnv` steps N sessions with one batched model
    call (same-step autoreset):

    ```python
    >>> envs = gym.make_vec("ListeningSession-v0", num_envs=256, vectorization_mode="vector_entry_point")
    ```

    ## Version History

    * v0: Initial version; `responses` and `pessimism` (with `info["disagreement"]`) added
      later, their default the environment as it was.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  (Gymnasium's convention)

    def __init__(
        self,
        world: str | os.PathLike[str] | World = "default",
        playlist_length: int = 20,
        pool_size: int = 100,
        reward: RewardConfig | None = None,
        explicit_filter: bool = False,
        strict: bool = False,
        split: Split = "train",
        render_mode: str | None = None,
        responder: str | SessionModel | GroundTruthLike | None = None,
        groundtruth_seed: int | None = None,
        observation: ObservationLayout = "full",
        session: str = "default",
        responses: ResponseMode = "mean",
        pessimism: float = DEFAULT_PESSIMISM,
    ) -> None:
        settings = SessionSettings.check(
            playlist_length, pool_size, reward, explicit_filter, strict, split, observation, responses, pessimism
        )
        groundtruth = self._set_up(settings, world, responder, groundtruth_seed, session, render_mode)
        self._response_values = self.reward_config.response_values.tolist()
        self._d_track = self.catalogue.track_features.shape[1]
        self._no_history = np.full(self.playlist_length, -1, dtype=np.int64)
        self.observation_space = self._session_observation_space()
        self.action_space = spaces.Discrete(self.pool_size)
        self.oracle = (
            Oracle(
                self._responder,
                state=lambda: self._session(),
                pools=lambda: self._session_pool()[None],
                action_mask=lambda: self.action_masks()[None],
            )
            if groundtruth
            else None
        )
        self._started = False
        self._done = True

    # -- episode ------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # Gymnasium takes True for 1 and calls a numpy integer no seed: one rule (musicenv.validation).
        super().reset(seed=check_seed("seed", seed))
        users, contexts = self.world.sample_sessions(self.np_random, 1, self.split)
        uniforms = self.np_random.random((2, self.playlist_length))
        member = self._draw_member(self.np_random)
        pool = self.world.candidate_pools(users, self.pool_size, self.explicit_filter)[0]
        self._begin(int(users[0]), contexts, np.asarray(pool, dtype=np.int64), uniforms, member)
        return self._observation(), {}

    def _begin(self, user: int, contexts: Contexts, pool: np.ndarray, uniforms: np.ndarray, member: int) -> None:
        length = self.playlist_length
        self._user = user
        self._contexts = contexts
        self._pool = pool
        self._pool_list = pool.tolist()
        self._pool_tracks = self.pool_size - self._pool_list.count(-1)
        self._played = np.zeros(self.pool_size, dtype=bool)
        self._history_tracks = self._no_history.copy()
        self._history_responses = np.zeros(length, dtype=np.int8)
        self._history_p_complete = np.zeros(length, dtype=np.float64)
        self._response_uniforms, self._leave_uniforms = uniforms[0].tolist(), uniforms[1].tolist()
        self._uniforms = uniforms
        self._steps = 0
        self._length = 0
        self._return = 0.0
        self._counts = dict.fromkeys(COUNTS, 0)
        self._start_kernel(member, self._responder.initial_state(np.array([user]), contexts))
        self._done = False
        self._started = True
        self._obs = self._rebuild_observation()

    def _start_kernel(self, member: int, state: SessionState) -> None:
        """Answer the session from ``state`` on with member ``member``'s single-session kernel."""
        self._member = member
        model = self._member_models[member]
        self._session_kernel = single_session(model, state)
        # The ensemble's own kernel may report its members' probabilities of each play; a member's never does.
        self._kernel_reports_members = model is self._responder and hasattr(self._session_kernel, "last_member_probs")

    def _rebuild_observation(self) -> dict[str, np.ndarray]:
        if self.observation == "compact":
            return {
                "user": np.array(self._user, dtype=np.int64),
                "context": context_features(self._contexts)[0],
                "pool": self._pool.copy(),
                "history_tracks": self._history_tracks.copy(),
                "history_responses": self._history_responses.copy(),
                "action_mask": ((self._pool >= 0) & ~self._played).astype(np.int8),
            }
        batch = build_observations(
            self.catalogue.track_features,
            self.catalogue.user_features,
            np.array([self._user]),
            context_features(self._contexts),
            self._pool[None],
            self._history_tracks[None],
            self._history_responses[None],
            self._played[None],
            self.catalogue.familiarity,
        )
        if self.catalogue.familiarity is not None:
            # What advance_session_familiarity updates play by play.
            self._pool_codes = track_play_codes(self.catalogue.familiarity, self._pool)
            recent = recent_codes(track_play_codes(self.catalogue.familiarity, self._history_tracks[None]))[0]
            self._match_masks = match_masks(self._pool_codes, recent)
        return {key: value[0] for key, value in batch.items()}

    def step(self, action: np.int64 | int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise error.ResetNeeded(
                "ListeningSession-v0: the episode is over (or never began); call reset() before step()"
            )
        slot = check_action(action, self.pool_size)
        track = self._pool_list[slot]
        if track < 0 or self._played[slot]:
            return self._invalid_step(slot, track)

        # This path is the single env's speed (docs/design.md, "Speed"): one fused call to the
        # responder's single-session kernel per play, scalars as Python numbers, and no rebuilt
        # matrices. The response is the inverse CDF at the position's uniform (common random numbers).
        self._steps += 1
        position = self._length
        kernel = self._session_kernel
        if self._ensemble_size > 1:
            probs, response, disagreement = self._ensemble_play(kernel, track, self._response_uniforms[position])
        else:
            probs, response = kernel.play(track, self._response_uniforms[position])
            disagreement = 0.0
        p_complete = probs[2]
        terminated = self._leave_uniforms[position] < kernel.leave_prob()

        reward = self._play_reward(track, response, position) - self._penalty * disagreement
        self._history_tracks[position] = track
        self._history_responses[position] = response
        self._history_p_complete[position] = p_complete
        self._played[slot] = True
        self._length = position + 1
        self._return += reward
        self._counts[RESPONSE_COUNTS[response]] += 1

        obs = self._obs
        if self.observation == "compact":
            obs["history_tracks"][position] = track
            obs["history_responses"][position] = response
        else:
            # The history row of build_observations, written in place: features, then the one-hot.
            row = obs["history"][position]
            row[: self._d_track] = self.catalogue.track_features[track]
            row[self._d_track + response] = 1.0
            obs["history_mask"][position] = 1.0
            obs["history_familiarity"][position] = obs["familiarity"][slot]
            if self.catalogue.familiarity is not None:
                # The candidates' in-session columns (a view, updated in place) follow the track just played.
                columns, played = obs["familiarity"][:, N_LOGGED:], self.catalogue.familiarity.play_codes[track]
                advance_session_familiarity(columns, self._match_masks, self._pool_codes, played)
        obs["action_mask"][slot] = 0

        info = {
            "response": RESPONSES[response],
            "response_probs": np.array(probs),
            "track_id": self.catalogue.track_ids[track],
            "artist_id": self.catalogue.artist_ids[track],
            "track_index": track,
            "p_complete": p_complete,
            "invalid_action": False,
            "position": position + 1,
            "disagreement": disagreement,
        }
        return self._observation(), reward, terminated, self._end(terminated, info), info

    def _ensemble_play(self, kernel: SingleSession, track: int, uniform: float) -> tuple[list[float], int, float]:
        """``kernel.play`` on an ensemble responder, and the members' disagreement on the track (reward units)."""
        before = None if self._kernel_reports_members else kernel.state
        probs, response = kernel.play(track, uniform)
        if before is None:
            member_probs = kernel.last_member_probs  # type: ignore[attr-defined]
        else:
            member_probs = self._responder.member_response_probs(before, np.array([[track]]))[0, 0]  # type: ignore[attr-defined]
        return probs, response, float(member_disagreement(member_probs, self.reward_config.response_values))

    def _play_reward(self, track: int, response: int, position: int) -> float:
        config, catalogue = self.reward_config, self.catalogue
        new_artist = None
        if config.diversity_bonus != 0.0:
            history = self._history_tracks[None, :position]
            new_artist = bool(new_artists(catalogue.artist_codes, history, np.array([track]))[0])
        return float(
            play_rewards(
                self._response_values, catalogue.track_boosts, response, track, config.diversity_bonus, new_artist
            )
        )

    def _invalid_step(self, slot: int, track: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        reason = "padding (the pool has fewer tracks)" if track < 0 else "already played in this session"
        if self.strict:
            raise ValueError(f"slot {slot} is invalid: {reason}")
        self._steps += 1
        reward = self.reward_config.invalid_action
        self._return += reward
        self._counts["invalid_actions"] += 1
        info = {
            "response": None,
            "response_probs": np.zeros(len(RESPONSES)),
            "track_id": self.catalogue.track_ids[track] if track >= 0 else None,
            "artist_id": self.catalogue.artist_ids[track] if track >= 0 else None,
            "track_index": track,
            "p_complete": 0.0,
            "invalid_action": True,
            "position": self._length + 1,
            "disagreement": 0.0,
        }
        return self._observation(), reward, False, self._end(False, info), info

    def _end(self, terminated: bool, info: dict[str, Any]) -> bool:
        """Whether the step truncates the episode; on any end, add the session's statistics."""
        truncated = not terminated and (self._steps >= self.playlist_length or self._length >= self._pool_tracks)
        if terminated or truncated:
            self._done = True
            info["session"] = {"return": self._return, "length": self._length, **self._counts}
        return truncated

    def _observation(self) -> dict[str, np.ndarray]:
        # New arrays on every call: callers keep observations, and must not see later steps in them.
        return {key: value.copy() for key, value in self._obs.items()}

    def replace_pool(self, pool: np.ndarray) -> dict[str, np.ndarray]:
        """Start the current session again on another ``(M,)`` pool (listener controls, :mod:`musicenv.controls`).

        Same listener, context and random numbers; only before the first play. Returns the new
        first observation.
        """
        self._require_started()
        if self._steps:
            raise ValueError("replace_pool: the session has already begun")
        self._begin(self._user, self._contexts, np.asarray(pool, dtype=np.int64), self._uniforms, self._member)
        return self._observation()

    def withdraw(self, slots: np.ndarray) -> None:
        """Make pool ``slots`` unplayable for the rest of the session (listener controls, :mod:`musicenv.controls`).

        They leave the mask as played slots do, and the session truncates when no slot is left.
        Padding and slots already played or withdrawn are ignored.
        """
        self._require_started()
        slots = np.asarray(slots, dtype=np.int64)
        fresh = slots[(self._pool[slots] >= 0) & ~self._played[slots]]
        self._played[fresh] = True
        self._pool_tracks -= len(np.unique(fresh))
        self._obs["action_mask"][fresh] = 0

    def action_masks(self) -> np.ndarray:
        """``(M,)`` bool, the slots that can be played now (for sb3-contrib's ``MaskablePPO``)."""
        self._require_started()
        return (self._pool >= 0) & ~self._played

    # -- views for agents and the oracle ---------------------------------------------------------

    @property
    def user(self) -> int:
        """The current listener's user index in the world."""
        self._require_started()
        return self._user

    @property
    def pool(self) -> np.ndarray:
        """``(M,)`` track indices of the current pool, ``-1`` for padding (a copy)."""
        return self._session_pool().copy()

    def _session_pool(self) -> np.ndarray:
        self._require_started()
        return self._pool

    def _session(self) -> SessionState:
        self._require_started()
        return self._session_kernel.state

    def _require_started(self) -> None:
        if not self._started:
            raise error.ResetNeeded("ListeningSession-v0: call reset() first")

    # -- rendering ---------------------------------------------------------------------------------

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the playlist so far as a table; otherwise None.

        Other render modes are accepted at construction (SB3's ``make_vec_env`` asks for
        ``"rgb_array"`` by default) and render nothing.
        """
        if self.render_mode != "ansi":
            gym.logger.warn(
                f"render() with render_mode={self.render_mode!r} renders nothing; "
                "create the env with render_mode='ansi' to get a table"
            )
            return None
        self._require_started()
        return render_playlist(
            self.catalogue,
            user=self._user,
            context_type=int(self._contexts.context_type[0]),
            hour=int(self._contexts.hour[0]),
            tracks=self._history_tracks[: self._length],
            responses=self._history_responses[: self._length],
            p_complete=self._history_p_complete[: self._length],
            playlist_length=self.playlist_length,
        )

    # -- saving and restoring --------------------------------------------------------------------

    def get_state(self) -> dict[str, np.ndarray]:
        """The whole environment state as a flat dict of arrays, for an exact resume.

        It holds the random generator (as JSON text), the episode's draws (the answering
        ``member`` too), the session so far and the responder's state (keys
        ``session_model/...``), so ``set_state`` on a new env over the
        same world continues step for step, and later resets draw the same episodes.
        ``np.savez(path, **state)`` saves it without pickle.
        """
        self._require_started()
        state = {
            "rng": np.array(json.dumps(self.np_random.bit_generator.state)),
            "user": np.array(self._user, dtype=np.int64),
            "context_type": self._contexts.context_type.copy(),
            "hour": self._contexts.hour.copy(),
            "attention": self._contexts.attention.copy(),
            "pool": self._pool.copy(),
            "played": self._played.copy(),
            "history_tracks": self._history_tracks.copy(),
            "history_responses": self._history_responses.copy(),
            "history_p_complete": self._history_p_complete.copy(),
            "uniforms": self._uniforms.copy(),
            "steps": np.array(self._steps, dtype=np.int64),
            "done": np.array(self._done),
            "return": np.array(self._return, dtype=np.float64),
            "counts": np.array(list(self._counts.values()), dtype=np.int64),
            "member": np.array(self._member, dtype=np.int64),
        }
        state.update({f"session_model/{key}": np.array(value) for key, value in self._session_kernel.state.items()})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`get_state` snapshot (taken on an env over the same world and settings)."""
        pool = np.asarray(state["pool"], dtype=np.int64)
        history_tracks = np.asarray(state["history_tracks"], dtype=np.int64)
        if pool.shape != (self.pool_size,) or history_tracks.shape != (self.playlist_length,):
            raise ValueError(
                f"state has pool {pool.shape} and history {history_tracks.shape}; this env has "
                f"pool_size={self.pool_size}, playlist_length={self.playlist_length}"
            )
        self.np_random.bit_generator.state = json.loads(str(state["rng"]))
        contexts = Contexts(np.array(state["context_type"]), np.array(state["hour"]), np.array(state["attention"]))
        # A snapshot from before responses= has no member: its episode was answered by the responder.
        member = int(self._known_members(np.array([state.get("member", 0)], dtype=np.int64))[0])
        self._begin(int(state["user"]), contexts, pool.copy(), np.array(state["uniforms"], dtype=np.float64), member)
        self._played = np.array(state["played"], dtype=bool)
        self._history_tracks = history_tracks.copy()
        self._history_responses = np.array(state["history_responses"], dtype=np.int8)
        self._history_p_complete = np.array(state["history_p_complete"], dtype=np.float64)
        self._length = int((history_tracks >= 0).sum())
        self._steps = int(state["steps"])
        self._done = bool(state["done"])
        self._return = float(state["return"])
        self._counts = dict(zip(self._counts, np.asarray(state["counts"]).tolist(), strict=True))
        prefix = "session_model/"
        session = {key[len(prefix) :]: np.array(value) for key, value in state.items() if key.startswith(prefix)}
        self._start_kernel(member, session)
        self._obs = self._rebuild_observation()


def render_playlist(
    catalogue: CatalogueArrays,
    user: int,
    context_type: int,
    hour: int,
    tracks: np.ndarray,
    responses: np.ndarray,
    p_complete: np.ndarray,
    playlist_length: int,
) -> str:
    """The playlist of one session as a text table (position, track, artist, response, p(complete))."""
    lines = [
        f"listener {catalogue.user_ids[user]} · {CONTEXT_TYPES[context_type]} · {hour:02d}:00 · "
        f"{len(tracks)} of {playlist_length} played",
        f"{'pos':>4}  {'track':<24} {'artist':<20} {'response':<9} {'p(complete)':>11}",
    ]
    for position, (track, response, p) in enumerate(zip(tracks, responses, p_complete, strict=True), start=1):
        artist = catalogue.artist_ids[track] or "?"
        track_id = catalogue.track_ids[track]
        lines.append(f"{position:>4}  {track_id!s:<24.24} {artist!s:<20.20} {RESPONSES[response]:<9} {p:>11.2f}")
    return "\n".join(lines) + "\n"
