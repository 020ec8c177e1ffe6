"""The AH-DQN's training aids: the response head, the action-value penalty, the planner's
demonstrations with their large-margin loss, and model selection on learned-world episodes.

Everything runs on the tiny layout world of ``fakes`` (pools of 24, 8-track playlists).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import FakeGroundTruth, LayoutWorld

from agents.ahdqn import AHDQN, AHDQNLearner
from agents.base import make_agent
from agents.config import SELECTION_SEED, AHDQNConfig, TrainConfig
from agents.networks import ActionHeadQNetwork
from agents.rollout import rollout
from musicenv.vector_env import ListeningSessionVectorEnv

torch.set_num_threads(1)

POOL, LENGTH = 24, 8


@pytest.fixture(scope="module")
def world() -> LayoutWorld:
    return LayoutWorld(seed=0)


def env(world: LayoutWorld, n: int = 4, split: str = "train", responder: object = None) -> ListeningSessionVectorEnv:
    return ListeningSessionVectorEnv(
        n, world=world, responder=responder, split=split, playlist_length=LENGTH, pool_size=POOL
    )


def learner(world: LayoutWorld, selection_env: object = None, **overrides: object) -> AHDQNLearner:
    settings: dict[str, object] = {
        "hidden_size": 8,
        "batch_size": 16,
        "learning_starts": 32,
        "train_frequency": 8,
        "target_update_interval": 5,
        "buffer_size": 500,
        "demonstration_fraction": 0.0,
        "selection_interval": 0,
        **overrides,
    }
    config = AHDQNConfig(**settings)  # type: ignore[arg-type]
    agent = AHDQN(world, hidden_size=8, seed=1, model_features=True, response_head=config.response_head)
    return AHDQNLearner(agent, env(world), config, total_steps=200, seed=3, selection_env=selection_env)


def test_response_head_weighs_the_response_probabilities() -> None:
    network = ActionHeadQNetwork(user_dim=2, track_dim=5, context_dim=2, hidden_size=8, response_head=True)
    state = torch.randn(3, 8)
    candidates = torch.rand(3, 4, 5)
    # It starts at zero, so the agent built on it starts as greedy_learned.
    assert torch.equal(network.response_term(state, candidates), torch.zeros(3, 4))
    with torch.no_grad():
        network.response_output.bias.copy_(torch.tensor([-1.0, 0.0, 2.0]))
    expected = 2.0 * candidates[..., -1] - candidates[..., -3]
    torch.testing.assert_close(network.response_term(state, candidates), expected)
    torch.testing.assert_close(network.q_values(state, candidates), network.action_values(state, candidates) + expected)
    plain = ActionHeadQNetwork(user_dim=2, track_dim=5, context_dim=2, hidden_size=8)
    assert torch.equal(plain.response_term(state, candidates), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="track_dim"):
        ActionHeadQNetwork(user_dim=2, track_dim=2, context_dim=2, response_head=True)


def test_response_head_agent_starts_as_greedy_and_needs_model_features(world: LayoutWorld) -> None:
    vector = env(world, n=6)
    obs, _ = vector.reset(seed=0)
    agent = AHDQN(world, hidden_size=8, seed=1, model_features=True, response_head=True)
    greedy = make_agent("greedy_learned", world)
    for _ in range(3):
        np.testing.assert_array_equal(agent.act(obs), greedy.act(obs))
        obs, *_ = vector.step(greedy.act(obs))
    with pytest.raises(ValueError, match="model_features"):
        AHDQN(world, response_head=True)
    with pytest.raises(ValueError, match="response_head"):
        TrainConfig(ahdqn=AHDQNConfig(model_features=False))


def test_action_value_penalty_is_the_mean_square_of_the_action_head(world: LayoutWorld) -> None:
    plain, penalised = learner(world, action_value_penalty=0.0), learner(world, action_value_penalty=3.0)
    for item in (plain, penalised):
        item.run(40)
        with torch.no_grad():  # a nonzero action head, the same in both
            torch.manual_seed(0)
            item.online.output.weight.normal_()
    batch = plain.replay.batch(np.arange(16))
    loss, _ = plain.td_loss(batch)
    penalised_loss, _ = penalised.td_loss(batch)
    tensors = plain.tables.tensors(**batch.next_state)  # with the artist codes a shorter prefix needs
    lengths = torch.as_tensor(batch.lengths)
    ((candidates, _),) = plain.agent.candidate_inputs(tensors, [lengths])
    (state,) = plain.online.states(tensors["user"], tensors["context"], tensors["history"], lengths)
    taken = candidates[torch.arange(16), torch.as_tensor(batch.actions)][:, None]
    penalty = 3.0 * plain.online.action_values(state, taken).square().mean()
    assert float(penalty.detach()) > 0
    torch.testing.assert_close(penalised_loss, loss + penalty)


def test_demonstrations_play_the_teacher_and_are_flagged(world: LayoutWorld) -> None:
    taught = learner(world, demonstration_fraction=0.04)  # 8 of 200 steps: two vector steps
    teacher = make_agent("planner_learned", world)
    for _ in range(2):
        expected = teacher.act(taught.obs)
        before = taught.env.lengths.copy()
        taught.collect()
        np.testing.assert_array_equal(taught.session_actions[np.arange(4), before], expected)
    assert taught.session_demonstrated[:, :2].all()
    taught.collect()  # the third step explores
    assert not taught.session_demonstrated[np.arange(4), taught.env.lengths - 1].any()
    # Every stored transition is flagged by whether its own first action was the teacher's.
    stored = taught.replay.batch(np.arange(len(taught.replay)))
    np.testing.assert_array_equal(stored.demonstrated, stored.lengths < 2)


def test_margin_loss_pushes_the_demonstration_above_the_rest(world: LayoutWorld) -> None:
    weighted = learner(world, demonstration_fraction=0.2, demonstration_weight=1.0, demonstration_margin=0.05)
    unweighted = learner(world, demonstration_fraction=0.2, demonstration_weight=0.0, demonstration_margin=0.05)
    for item in (weighted, unweighted):
        item.run(40)
    batch = weighted.replay.batch(np.arange(16))
    assert batch.demonstrated.all()
    loss, _ = weighted.td_loss(batch)
    td_only, _ = unweighted.td_loss(batch)
    # The untrained agent ranks by greedy's score; where the teacher's slot does not lead the
    # pool by the margin, the margin loss is positive.
    q = weighted.agent.q_values(batch.observations())
    q = np.where(batch.action_masks > 0, q, -np.inf)
    rows = np.arange(16)
    margins = np.where(np.arange(q.shape[1])[None, :] == batch.actions[:, None], 0.0, 0.05)
    expected = ((q + margins).max(axis=1) - q[rows, batch.actions]).mean()
    assert expected > 0
    assert float((loss - td_only).detach()) == pytest.approx(expected, rel=1e-4)


def test_selection_scores_the_untrained_agent_and_ends_with_the_best(world: LayoutWorld) -> None:
    selection = env(world, n=4)
    trained = learner(world, selection_env=selection, selection_interval=64, selection_episodes=8)
    trained.run(200)
    assert sorted(trained.selection_scores) == [0, 64, 128, 192]
    trained.finish()
    assert set(trained.selection_scores) == {0, 64, 128, 192, 200}
    best = max(trained.selection_scores, key=lambda step: trained.selection_scores[step])
    assert trained.best_step == best
    # The agent now holds the best network, and scores on the selection episodes what it scored then.
    replayed = rollout(trained.agent, selection, 8, SELECTION_SEED).returns.mean()
    assert replayed == pytest.approx(trained.selection_scores[best])
    # The learner keeps the last network apart from the agent's, for a checkpoint to resume from.
    assert trained.online is not trained.agent.q_network
    for key, value in trained.agent.q_network.state_dict().items():
        assert torch.equal(value, trained.best_state[key])


def test_selection_never_reads_the_ground_truth(world: LayoutWorld) -> None:
    truth = FakeGroundTruth(world, seed=1)
    config = TrainConfig(world="groundtruth", ahdqn=AHDQNConfig(selection_interval=100, selection_episodes=8))
    from agents.train import make_learner

    built = make_learner(config, world, responder=truth)
    assert built.env.oracle is not None, "the training env answers from the truth in this run"
    assert built.selection_env is not None and built.selection_env.oracle is None


def test_config_rejects_bad_training_aids() -> None:
    with pytest.raises(ValueError, match="demonstration_fraction"):
        TrainConfig(ahdqn=AHDQNConfig(demonstration_fraction=1.5))
    with pytest.raises(ValueError, match="selection_episodes"):
        TrainConfig(ahdqn=AHDQNConfig(selection_episodes=-1))
    # The default run's teacher plays the first 30% of its steps.
    taught = AHDQNLearner(
        AHDQN(LayoutWorld(seed=0), hidden_size=8, model_features=True),
        env(LayoutWorld(seed=0)),
        AHDQNConfig(),
        total_steps=1_000,
    )
    assert taught.demonstration_steps == 300 and taught.teacher is not None
