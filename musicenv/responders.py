"""Who answers: the learned world's model, or the ground truth in a sim-to-real run.

docs/design.md, "Sim-to-real run": the observation, the pool and the (user, context) draw always come
from the *learned* world, because that is all a deployed recommender sees. What changes between a
learned run and a ground-truth run is only the *responder*: the :class:`~musicenv.world.SessionModel`
that gives the response probabilities and the probability of leaving. In a ground-truth run that
is the ground-truth world's exact model, asked about the same user, context, session so far and
track. The two worlds share ids, not indices, so :class:`GroundTruthResponder` translates the
learned world's user and track indices into the ground truth's, once, as arrays
(:func:`translate_ids`). :class:`TranslatedResponder` is that translation for any answering model:
the cross-fitted world (:mod:`world_model.cross_fit`) answers through it too.

:func:`resolve_world` turns the environment's ``world=`` / ``responder=`` arguments into a world
and a responder; :class:`Oracle` is the handle through which agents that are allowed to read the
truth (greedy by the true model, a lookahead planner) see it. No observation exposes it.

A responder may be an ensemble (:class:`~musicenv.world.EnsembleSessionModel`: the learned
world's model); the environment's ``responses=`` argument says how an ensemble answers
(:data:`RESPONSE_MODES`), and :func:`member_models` gives the models an episode can be answered by.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from musicenv.world import Contexts, SessionModel, SessionState, World, ensemble_size

ResponseMode = Literal["mean", "sample", "pessimistic"]
RESPONSE_MODES: tuple[str, ...] = ("mean", "sample", "pessimistic")
"""How an ensemble responder answers (the environments' ``responses=``; docs/design.md,
"Responses"): ``"mean"``, the members' mean probabilities; ``"sample"``, one member drawn per
episode (domain randomisation); ``"pessimistic"``, the mean, and a reward lowered by
``pessimism`` times the members' disagreement on the play (MOPO, Yu et al. 2020)."""

DEFAULT_PESSIMISM = 1.0
"""The default ``pessimism`` (lambda) of ``responses="pessimistic"``: a play's reward minus one
standard deviation of its expected value across the members, a one-sigma lower confidence bound
(MOPO's penalty is the same kind of spread times a lambda of about 1).

Measured by the rule: train the AH-DQN with each lambda of (0.25, 0.5, 1, 2) in the learned world
of ``groundtruth_seed=1`` (not the reported seed 0) and keep the lambda whose agent earns most in
that seed's ground truth, unless no lambda beats another beyond noise
(``benchmarks/pessimism.py``). Lambda 2 earned most (5.323 a session against 5.215 to 5.305 for
the others, 500 held-out episodes), but no lambda differed from another, nor from the AH-DQN
trained on the mean answers, beyond noise (lambda 2 against lambda 1: a paired difference of
0.094, 95% interval -0.014 to 0.202), so the one-sigma bound stands. The figures are in
``benchmarks/RESULTS.md`` ("Choosing the pessimism lambda")."""


@runtime_checkable
class GroundTruthLike(Protocol):
    """What a responder needs of a ground-truth world (``musicenv.groundtruth.GroundTruthWorld``)."""

    session_model: SessionModel

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        """Indices of user ids in this world."""
        ...

    def track_index(self, ids: np.ndarray) -> np.ndarray:
        """Indices of track ids in this world."""
        ...


class TranslatedResponder:
    """Another world's :class:`~musicenv.world.SessionModel`, spoken in a learned world's indices.

    The environment asks about the learned world's user and track indices; this responder hands
    the other model the same listeners and tracks in its own indices, through two lookup arrays
    made once (:func:`translate_ids`). The states it returns are the other model's own. Padding
    (track ``-1``) stays padding.

    Args:
        session_model: the model that answers.
        users: ``(n_users,)`` int64, the answering model's index of each learned-world user.
        tracks: ``(n_tracks,)`` int64, the answering model's index of each learned-world track.
    """

    def __init__(self, session_model: SessionModel, users: np.ndarray, tracks: np.ndarray) -> None:
        self.session_model = session_model
        self._users = np.asarray(users, dtype=np.int64)
        # One extra entry so that padding (-1) translates to padding.
        self._tracks = np.append(np.asarray(tracks, dtype=np.int64), -1)

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        return self.session_model.initial_state(self._users[users], contexts)

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        return self.session_model.response_probs(state, self._tracks[tracks])

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        return self.session_model.advance(state, self._tracks[tracks], responses)

    def leave_probs(self, state: SessionState) -> np.ndarray:
        return self.session_model.leave_probs(state)


class GroundTruthResponder(TranslatedResponder):
    """The ground-truth :class:`~musicenv.world.SessionModel`, spoken in a learned world's indices.

    Every method takes and returns what the learned world's own model would (user and track
    indices of ``learned``); the states it returns are the ground truth's own.

    Args:
        groundtruth: the ground-truth world the learned world was built from.
        learned: the learned world whose indices the environment uses.

    Raises:
        ValueError: a user or track of the learned world is unknown to the ground truth (the
            learned world was built from other logs).
    """

    def __init__(self, groundtruth: GroundTruthLike, learned: World) -> None:
        self.groundtruth = groundtruth
        track_ids = learned.tracks["track_id"].to_numpy()
        super().__init__(
            groundtruth.session_model,
            translate_ids(groundtruth.user_index, np.asarray(learned.user_ids), "user"),
            translate_ids(groundtruth.track_index, track_ids, "track"),
        )


def member_models(model: SessionModel, responses: ResponseMode) -> list[SessionModel]:
    """The models that may answer an episode: with ``responses="sample"``, each member of ``model``'s
    ensemble (``model.member(i)``); otherwise, or for a model that is not an ensemble of more than
    one, ``model`` alone (an ensemble of one whose member 0 is the model)."""
    size = ensemble_size(model)
    if responses != "sample" or size == 1:
        return [model]
    return [model.member(index) for index in range(size)]  # type: ignore[attr-defined]


def translate_ids(
    index: Callable[[np.ndarray], np.ndarray], ids: np.ndarray, what: str, unknown: np.ndarray | None = None
) -> np.ndarray:
    """The answering world's indices of ``ids`` (``index`` is its id lookup, e.g. ``user_index``).

    Args:
        index: maps ids to indices; for an id it does not know it raises ``KeyError`` (the
            ground truth) or gives ``-1``.
        ids: the learned world's ids.
        what: ``"user"`` or ``"track"``, for messages.
        unknown: where ids that ``index`` gives ``-1`` go, one index per id (read only at those),
            or None to raise (a ground truth must know every id).

    Raises:
        ValueError: ``index`` raised, or with ``unknown=None`` gave ``-1`` for an id.
    """
    try:
        translated = np.asarray(index(ids), dtype=np.int64)
    except KeyError as error:
        raise ValueError(
            f"the ground truth does not know {what} {error}: the learned world was not built from its logs"
        ) from error
    missing = translated < 0
    if unknown is not None:
        return np.where(missing, np.asarray(unknown, dtype=np.int64), translated)
    if missing.any():
        first = np.flatnonzero(missing)
        raise ValueError(
            f"the ground truth does not know {first.size} of the learned world's {what}s "
            f"(e.g. {ids[first[0]]!r}): the learned world was not built from its logs"
        )
    return translated


class Oracle:
    """Read access to the truth in a ground-truth run (``env.oracle``; None in a learned run).

    For agents that are allowed to read the truth: greedy by the true model, the lookahead planner.
    Everything is in the learned world's indices and batched over the environment's sessions
    (B = 1 for :class:`~musicenv.env.ListeningSessionEnv`, N for the vector env). States are
    values: branch them with :func:`musicenv.world.take_state` and ``session_model.advance``;
    nothing here changes the environment.

    Attributes:
        session_model: the ground-truth :class:`~musicenv.world.SessionModel` in learned-world
            indices (a :class:`GroundTruthResponder`).
    """

    def __init__(
        self,
        session_model: SessionModel,
        state: Callable[[], SessionState],
        pools: Callable[[], np.ndarray],
        action_mask: Callable[[], np.ndarray],
    ) -> None:
        self.session_model = session_model
        self._state = state
        self._pools = pools
        self._action_mask = action_mask

    @property
    def state(self) -> SessionState:
        """The ground-truth states of the current sessions (B rows)."""
        return dict(self._state())

    @property
    def pools(self) -> np.ndarray:
        """``(B, M)`` track indices of the current pools, ``-1`` for padding."""
        return self._pools().copy()

    @property
    def action_mask(self) -> np.ndarray:
        """``(B, M)`` bool, the slots that can be played now."""
        return self._action_mask().copy()

    def response_probs(self, pool_slots: np.ndarray | None = None) -> np.ndarray:
        """True (skip, listen, complete) probabilities of pool slots as the next play.

        Args:
            pool_slots: ``(B, K)`` slots of each session's pool; default every slot, ``(B, M)``.

        Returns:
            ``(B, K, 3)`` float64. Padded slots get ``(1, 0, 0)``, a certain skip, so that a greedy
            argmax over completions never picks them.
        """
        pools = self._pools()
        tracks = pools if pool_slots is None else np.take_along_axis(pools, np.asarray(pool_slots), axis=1)
        probs = np.array(self.session_model.response_probs(self._state(), tracks), dtype=np.float64)
        probs[tracks < 0] = (1.0, 0.0, 0.0)
        return probs

    def leave_probs(self) -> np.ndarray:
        """``(B,)`` true probability that each listener leaves now."""
        return self.session_model.leave_probs(self._state())


def resolve_world(
    world: str | os.PathLike[str] | World,
    responder: str | SessionModel | GroundTruthLike | None = None,
    groundtruth_seed: int | None = None,
) -> tuple[World, SessionModel, bool]:
    """The world, the responder and whether it is the ground truth, from the env's arguments.

    Args:
        world: ``"default"`` (the embedded default learned world), ``"groundtruth"`` (the default
            learned world answered by its ground truth), a path to a saved world folder, or a
            :class:`~musicenv.world.World`.
        responder: None (the world's own ``session_model``), ``"groundtruth"`` (the ground truth
            the learned world was built from), a ground-truth world object (anything with
            ``session_model``, ``user_index`` and ``track_index``, e.g.
            ``musicenv.groundtruth.GroundTruthWorld``), or any
            :class:`~musicenv.world.SessionModel` in the world's indices (no oracle then).
        groundtruth_seed: only with ``world="groundtruth"``: the seed of the ground-truth world
            whose logs the learned world is built from (default: the default ground truth).

    Raises:
        ValueError: the arguments contradict each other, or a ground-truth run was asked of a
            world that has no ground truth (e.g. one learned from MSSD logs).
    """
    if isinstance(world, str) and world == "groundtruth":
        if responder not in (None, "groundtruth"):
            raise ValueError(f"world='groundtruth' already names the responder; got responder={responder!r}")
        responder = "groundtruth"
        world = _open_world(world, groundtruth_seed)
    elif groundtruth_seed is not None:
        raise ValueError(
            "groundtruth_seed picks the ground truth of world='groundtruth'; with any other world the "
            "ground truth is the one that world was built from"
        )
    elif isinstance(world, (str, os.PathLike)):
        world = _open_world(world)
    if not isinstance(world, World):
        raise TypeError(f"world must be 'default', 'groundtruth', a saved world folder or a World, not {world!r}")

    if responder is None:
        return world, world.session_model, False
    if isinstance(responder, str):
        if responder != "groundtruth":
            raise ValueError(f"responder must be None, 'groundtruth' or an object, not {responder!r}")
        return world, GroundTruthResponder(_groundtruth_for(world), world), True
    if isinstance(responder, GroundTruthLike):
        return world, GroundTruthResponder(responder, world), True
    if isinstance(responder, SessionModel):
        return world, responder, False
    raise TypeError(f"responder {responder!r} is neither a ground-truth world nor a SessionModel")


def _open_world(spec: str | os.PathLike[str], groundtruth_seed: int | None = None) -> World:
    # Imported on use: musicenv's core does not import the world-learning package.
    from world_model.world import open_world

    return open_world(spec, groundtruth_seed)


def _groundtruth_for(world: World) -> Any:
    from world_model.world import groundtruth_for

    groundtruth = groundtruth_for(world)
    if groundtruth is None:
        raise ValueError(
            f"world {getattr(world, 'name', world)!r} has no ground truth (it was learned from logs such as "
            "the MSSD's, whose listeners cannot be asked again); a ground-truth run needs a world built "
            "from the synthetic ground-truth world's logs"
        )
    return groundtruth
