"""The :class:`~musicenv.world.SessionModel` contract, held by every implementation.

One mixin of checks (as ``implicit`` holds every recommender to one test mixin), and a subclass
per implementation that supplies it through the ``case`` fixture: the ground truth's model, the
learned world's model, the fakes the other tests run on (:class:`fakes.LayoutWorld` keeps
:class:`fakes.FakeWorld`'s model), and the responder that speaks the ground
truth in a learned world's indices. What each must give:

* ``response_probs``: finite probabilities in [0, 1] that sum to 1 over (skip, listen, complete)
  for every real track (padding rows need only be finite); ``leave_probs`` in [0, 1];
* a batch of sessions answers as the same sessions asked one at a time (``response_probs``,
  ``leave_probs``, and ``advance`` followed by either);
* the single-session kernel (:func:`musicenv.world.single_session`, a model's own fused one or
  the batched fallback) plays a session exactly as the batched calls do;
* an ensemble (:class:`musicenv.world.EnsembleSessionModel`) answers with its members' mean, and
  each member alone answers as that member over the ensemble's states; any other model is an
  ensemble of one.

The tensor models of :mod:`musicenv.torch_session` speak another protocol (torch tensors on a
device) and are held to the numpy models by ``tests/test_gpu_path.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fakes import FakeGroundTruth, FakeWorld, SequencingSessionModel

from musicenv.responders import GroundTruthResponder
from musicenv.world import (
    Contexts,
    EnsembleSessionModel,
    SessionModel,
    SessionState,
    ensemble_size,
    sample_responses,
    single_session,
    take_state,
)

SESSIONS, POOL, PLAYS = 6, 10, 3


@dataclass
class Case:
    """A session model under test and where its sessions and candidate tracks come from.

    Attributes:
        model: the :class:`SessionModel` under test.
        users: ``(SESSIONS,)`` user indices the model knows.
        contexts: their contexts.
        pools: ``(SESSIONS, POOL)`` track indices the model knows (``-1``: padding).
    """

    model: SessionModel
    users: np.ndarray
    contexts: Contexts
    pools: np.ndarray


def world_case(model: SessionModel, world: Any, seed: int = 0) -> Case:
    """Sessions and candidate pools drawn from ``world``, whose indices ``model`` speaks."""
    users, contexts = world.sample_sessions(np.random.default_rng(seed), SESSIONS, "all")
    return Case(model, users, contexts, world.candidate_pools(users, POOL))


def played(case: Case, plays: int, seed: int = 1) -> tuple[SessionState, np.ndarray]:
    """The sessions after ``plays`` plays of random pool tracks with drawn responses; and the tracks played.

    Returns:
        the batched state, and ``(SESSIONS, plays)`` tracks played.
    """
    rng = np.random.default_rng(seed)
    state = case.model.initial_state(case.users, case.contexts)
    tracks = np.empty((SESSIONS, plays), dtype=np.int64)
    for step in range(plays):
        tracks[:, step] = [rng.choice(pool[pool >= 0]) for pool in case.pools]
        probs = case.model.response_probs(state, tracks[:, step : step + 1])[:, 0]
        state = case.model.advance(state, tracks[:, step], sample_responses(probs, rng.random(SESSIONS)))
    return state, tracks


def row(state: SessionState, b: int) -> SessionState:
    return take_state(state, slice(b, b + 1))


class SessionModelContract:
    """The checks; a subclass defines the ``case`` fixture."""

    def test_implements_the_protocol(self, case: Case) -> None:
        assert isinstance(case.model, SessionModel)

    @pytest.mark.parametrize("plays", [0, PLAYS])
    def test_probabilities_are_distributions(self, case: Case, plays: int) -> None:
        state, _ = played(case, plays)
        probs = case.model.response_probs(state, case.pools)
        assert probs.shape == (SESSIONS, POOL, 3) and np.isfinite(probs).all()
        real = probs[case.pools >= 0]
        assert ((real >= 0) & (real <= 1)).all()
        np.testing.assert_allclose(real.sum(axis=-1), 1.0, rtol=0, atol=1e-6)
        leave = case.model.leave_probs(state)
        assert leave.shape == (SESSIONS,) and ((leave >= 0) & (leave <= 1)).all()

    def test_a_batch_answers_as_its_sessions_one_by_one(self, case: Case) -> None:
        state, _ = played(case, PLAYS)
        rng = np.random.default_rng(2)
        tracks = np.stack([rng.choice(pool[pool >= 0]) for pool in case.pools])
        responses = rng.integers(0, 3, SESSIONS).astype(np.int8)
        after = case.model.advance(state, tracks, responses)
        for b in range(SESSIONS):
            alone = row(state, b)
            alone_after = case.model.advance(alone, tracks[b : b + 1], responses[b : b + 1])
            # Before and after the play, the session alone answers as its row of the batch.
            for single, batch in ((alone, state), (alone_after, after)):
                np.testing.assert_allclose(
                    case.model.response_probs(single, case.pools[b : b + 1]),
                    case.model.response_probs(batch, case.pools)[b : b + 1],
                    rtol=1e-6,
                    atol=1e-9,
                )
                np.testing.assert_allclose(
                    case.model.leave_probs(single), case.model.leave_probs(batch)[b : b + 1], rtol=1e-9
                )

    def test_the_single_session_kernel_plays_as_the_batched_calls(self, case: Case) -> None:
        rng = np.random.default_rng(3)
        start = case.model.initial_state(case.users, case.contexts)
        for b in range(SESSIONS):
            kernel = single_session(case.model, row(start, b))
            batched = row(start, b)
            for _ in range(PLAYS + 2):
                track, uniform = int(rng.choice(case.pools[b][case.pools[b] >= 0])), float(rng.random())
                expected = case.model.response_probs(batched, np.array([[track]]))[0, 0]
                probs, response = kernel.play(track, uniform)
                np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-9)
                assert response == sample_responses(expected, np.array(uniform))
                batched = case.model.advance(batched, np.array([track]), np.array([response], dtype=np.int8))
                assert kernel.leave_prob() == pytest.approx(float(case.model.leave_probs(batched)[0]), rel=1e-9)
            # The kernel's state, handed back to the batched model, is the session it played.
            np.testing.assert_allclose(
                case.model.response_probs(kernel.state, case.pools[b : b + 1]),
                case.model.response_probs(batched, case.pools[b : b + 1]),
                rtol=1e-6,
                atol=1e-9,
            )

    def test_an_ensemble_answers_with_its_members_mean(self, case: Case) -> None:
        if not isinstance(case.model, EnsembleSessionModel):
            assert ensemble_size(case.model) == 1
            return
        size = ensemble_size(case.model)
        state, tracks = played(case, PLAYS)
        members = case.model.member_response_probs(state, case.pools)
        assert members.shape == (SESSIONS, POOL, size, 3) and members.dtype == np.float64
        np.testing.assert_allclose(members.mean(axis=-2), case.model.response_probs(state, case.pools), atol=1e-12)
        for index in range(size):
            alone = case.model.member(index)
            np.testing.assert_allclose(alone.response_probs(state, case.pools), members[:, :, index], atol=1e-6)
            np.testing.assert_array_equal(alone.leave_probs(state), case.model.leave_probs(state))
            # A state the member made serves the ensemble: the same sessions played from the start.
            again = alone.initial_state(case.users, case.contexts)
            responses = np.zeros(SESSIONS, np.int8)
            for step in range(PLAYS):
                again = alone.advance(again, tracks[:, step], responses)
            replayed = case.model.initial_state(case.users, case.contexts)
            for step in range(PLAYS):
                replayed = case.model.advance(replayed, tracks[:, step], responses)
            np.testing.assert_allclose(
                case.model.response_probs(again, case.pools), case.model.response_probs(replayed, case.pools)
            )


class TestFakeSessionModel(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls) -> Case:
        world = FakeWorld(seed=0, n_tracks=60)
        return world_case(world.session_model, world)


class TestSequencingSessionModel(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls) -> Case:
        model = SequencingSessionModel(n_tracks=12)
        rng = np.random.default_rng(0)
        contexts = Contexts(np.zeros(SESSIONS, np.int8), np.zeros(SESSIONS, np.int8), rng.normal(size=SESSIONS))
        return Case(
            model, np.arange(SESSIONS), contexts, np.stack([rng.permutation(12)[:POOL] for _ in range(SESSIONS)])
        )


class TestFakeResponder(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls) -> Case:
        world = FakeWorld(seed=0, n_tracks=60)
        return world_case(GroundTruthResponder(FakeGroundTruth(world, seed=1), world), world)


class TestGroundTruthSessionModel(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, real_worlds: tuple[Any, Any]) -> Case:
        world, truth = real_worlds
        # The truth's own indices: the learned world's sessions and pools, translated by id.
        learned = world_case(world.session_model, world)
        users = truth.user_index(np.asarray(world.user_ids)[learned.users])
        track_ids = world.tracks["track_id"].to_numpy()[np.maximum(learned.pools, 0)]
        pools = np.where(learned.pools >= 0, truth.track_index(track_ids.ravel()).reshape(learned.pools.shape), -1)
        return Case(truth.session_model, users, learned.contexts, pools)


class TestLearnedSessionModel(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, real_worlds: tuple[Any, Any]) -> Case:
        world, _ = real_worlds
        return world_case(world.session_model, world)


class TestGroundTruthResponder(SessionModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, real_worlds: tuple[Any, Any]) -> Case:
        world, truth = real_worlds
        return world_case(GroundTruthResponder(truth, world), world)
