"""Agents: the shared contract every agent passes, the AH-DQN's learning, the compact replay buffer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import FakeGroundTruth, FakeWorld, LayoutWorld, RowOracle

import agents
from agents.ahdqn import AHDQN, AHDQNLearner
from agents.base import AGENTS, Agent, agent_class, agent_names, load_agent, make_agent, masked_argmax
from agents.config import AHDQNConfig
from agents.metrics import paired_difference
from agents.networks import observation_tensors
from agents.replay import ReplayBatch, ReplayBuffer
from agents.rollout import evaluation_seed, rollout
from musicenv.artifacts import ArtifactError
from musicenv.env import ListeningSessionEnv
from musicenv.familiarity import RECENT_PLAYS
from musicenv.observation import N_LOGGED
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import FAMILIARITY_FEATURES, Contexts, SessionState

POOL, LENGTH = 24, 8


@pytest.fixture(scope="module")
def world() -> LayoutWorld:
    return LayoutWorld(seed=0)


def vector_env(world: Any, truth: Any, n: int = 6, split: str = "train") -> ListeningSessionVectorEnv:
    return ListeningSessionVectorEnv(
        n, world=world, responder=truth, split=split, playlist_length=LENGTH, pool_size=POOL
    )


def agent_kwargs(name: str) -> dict[str, Any]:
    """Small settings for the agents that have a network, so the contract runs fast."""
    if name == "ahdqn":
        return {"hidden_size": 16, "seed": 3}
    if name in ("maskable_ppo", "ppo", "dqn"):
        return {"net_arch": (16,), "playlist_length": LENGTH, "pool_size": POOL, "seed": 3}
    if name == "random":
        return {"seed": 3}
    return {}


ALL_AGENTS = agent_names()


def rows(obs: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    return {key: value[index : index + 1] for key, value in obs.items()}


@pytest.mark.parametrize("name", ALL_AGENTS)
class TestAgentContract:
    """What every registered agent promises (agents.base: "Contract")."""

    def test_valid_actions_under_any_mask(self, name: str, world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
        env = vector_env(world, groundtruth)
        obs, _ = env.reset(seed=0)
        agent = make_agent(name, world, **agent_kwargs(name))
        rng = np.random.default_rng(0)
        for _ in range(5):
            mask = (rng.random((env.num_envs, POOL)) < rng.uniform(0.02, 0.9)).astype(np.int8)
            mask[np.arange(env.num_envs), rng.integers(0, POOL, env.num_envs)] = 1  # at least one valid slot
            actions = agent.act({**obs, "action_mask": mask}, env.oracle)
            assert actions.shape == (env.num_envs,) and actions.dtype == np.int64
            assert mask[np.arange(env.num_envs), actions].all()

    def test_batch_equals_single_calls(self, name: str, world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
        env = vector_env(world, groundtruth)
        obs, _ = env.reset(seed=1)
        obs, *_ = env.step(np.argmax(obs["action_mask"], axis=1))  # a history of one play
        batched = make_agent(name, world, **agent_kwargs(name)).act(obs, env.oracle)
        single = make_agent(name, world, **agent_kwargs(name))
        one_by_one = [single.act(rows(obs, i), RowOracle(env.oracle, i))[0] for i in range(env.num_envs)]
        np.testing.assert_array_equal(batched, one_by_one)

    def test_deterministic_given_seed(self, name: str, world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
        first = rollout(make_agent(name, world, **agent_kwargs(name)), vector_env(world, groundtruth), 6, seed=5)
        second = rollout(make_agent(name, world, **agent_kwargs(name)), vector_env(world, groundtruth), 6, seed=5)
        np.testing.assert_array_equal(first.tracks, second.tracks)
        np.testing.assert_array_equal(first.returns, second.returns)

    def test_save_load_round_trip(self, name: str, world: LayoutWorld, groundtruth: FakeGroundTruth, tmp_path) -> None:
        env = vector_env(world, groundtruth)
        obs, _ = env.reset(seed=2)
        agent = make_agent(name, world, **agent_kwargs(name))
        agent.act(obs, env.oracle)  # move any random stream past its start
        agent.save(tmp_path / "agent")
        loaded = load_agent(tmp_path / "agent", world)
        assert type(loaded) is type(agent)
        for _ in range(3):
            np.testing.assert_array_equal(loaded.act(obs, env.oracle), agent.act(obs, env.oracle))
        assert type(agent).load(tmp_path / "agent", world).name == name

    def test_plays_full_episode_in_single_env(
        self, name: str, world: LayoutWorld, groundtruth: FakeGroundTruth
    ) -> None:
        env = ListeningSessionEnv(world=world, responder=groundtruth, playlist_length=LENGTH, pool_size=POOL)
        agent = make_agent(name, world, **agent_kwargs(name))
        obs, _ = env.reset(seed=4)
        done, steps = False, 0
        while not done:
            action = agent.act({key: value[None] for key, value in obs.items()}, env.oracle)[0]
            obs, reward, terminated, truncated, info = env.step(action)
            assert not info["invalid_action"] and np.isfinite(reward)
            done, steps = terminated or truncated, steps + 1
        assert 1 <= steps <= LENGTH and "session" in info


def test_registry_lists_every_agent() -> None:
    expected = {"ahdqn", "random", "popular", "als", "content", "greedy_learned", "greedy_truth", "sequence_rnn"}
    expected |= {"lcb_greedy"}
    expected |= {"planner_truth", "planner_learned", "maskable_ppo", "ppo", "dqn"}
    classics = {"user_cf", "likeability", "content_clusters", "discover_weekly", "shuffle", "smart_shuffle"}
    assert expected | classics == set(AGENTS)
    assert agents.agent_names() == agent_names() == tuple(sorted(AGENTS))
    for name in AGENTS:
        assert issubclass(agent_class(name), Agent) and agent_class(name).name == name
    with pytest.raises(KeyError, match="known agents"):
        make_agent("nope", FakeWorld())


FRESH_LOAD = """
import json, sys
from fakes import LayoutWorld
import agents
world = LayoutWorld(seed=0)
loaded = {name: type(agents.load_agent(folder, world)).name for name, folder in json.loads(sys.argv[1]).items()}
print(json.dumps(loaded))
"""


def test_every_agent_loads_in_a_fresh_interpreter(world: LayoutWorld, tmp_path: Path) -> None:
    # A registry filled by import side effects knows only what happened to be imported; a fresh
    # interpreter that imports nothing but the package must still load every saved agent.
    folders = {name: str(make_agent(name, world, **agent_kwargs(name)).save(tmp_path / name)) for name in AGENTS}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, json.dumps(folders)], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {name: name for name in AGENTS}


def test_the_package_exports_the_registry_without_importing_agents() -> None:
    code = "import sys, agents; agents.agent_names(); print(sorted(m for m in sys.modules if m.startswith('agents.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['agents.base']"
    assert agents.load_agent is load_agent and agents.make_agent is make_agent


def test_greedy_truth_needs_the_oracle(world: LayoutWorld) -> None:
    env = vector_env(world, None)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="ground-truth run"):
        make_agent("greedy_truth", world).act(obs, env.oracle)


def test_greedy_truth_is_the_best_myopic_agent(world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
    env = vector_env(world, groundtruth)
    obs, _ = env.reset(seed=0)
    probs = env.oracle.response_probs()
    expected = np.where(obs["action_mask"] > 0, probs @ np.array([0.0, 0.5, 1.0]), -np.inf).argmax(axis=1)
    np.testing.assert_array_equal(make_agent("greedy_truth", world).act(obs, env.oracle), expected)


def test_baselines_need_the_feature_blocks() -> None:
    with pytest.raises(ValueError, match=r"names no (user|track) feature blocks"):
        make_agent("als", FakeWorld())


def test_masked_argmax_rejects_a_mask_without_slots() -> None:
    with pytest.raises(ValueError, match="allows no slot"):
        masked_argmax(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 0, 0]]))


def test_load_agent_rejects_a_corrupted_save(world: LayoutWorld, tmp_path) -> None:
    folder = make_agent("ahdqn", world, hidden_size=8).save(tmp_path / "agent")
    (folder / "q_network.pt").write_bytes(b"corrupted")
    with pytest.raises(ArtifactError, match="checksum"):
        load_agent(folder, world)


# -- AH-DQN learns -------------------------------------------------------------------------------------


class OneGoodTrackModel:
    """A toy listener with a known best action: tracks whose first feature is positive are completed
    with probability 0.95; every other track is skipped with probability 0.95. Nobody leaves."""

    def __init__(self, good: np.ndarray) -> None:
        self.good = good

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        return {"users": np.asarray(users)}

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        good = self.good[np.maximum(tracks, 0)]
        return np.where(good[..., None], [0.025, 0.025, 0.95], [0.95, 0.025, 0.025])

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        return state

    def leave_probs(self, state: SessionState) -> np.ndarray:
        return np.zeros(len(state["users"]))


def test_ahdqn_beats_random_where_the_best_action_is_known() -> None:
    world = FakeWorld(seed=2, n_tracks=200)
    world.session_model = OneGoodTrackModel(world.track_features[:, 0] > 0.8)  # about one track in five
    config = AHDQNConfig(
        hidden_size=32,
        batch_size=64,
        learning_starts=300,
        train_frequency=8,
        target_update_interval=50,
        exploration_fraction=0.5,
        learning_rate=1e-3,
        buffer_size=5_000,
    )
    env = ListeningSessionVectorEnv(16, world=world, playlist_length=5, pool_size=20)
    agent = AHDQN(world, hidden_size=32, seed=0)
    AHDQNLearner(agent, env, config, total_steps=2_500, seed=0).run(2_500)
    evaluation = ListeningSessionVectorEnv(16, world=world, split="eval", playlist_length=5, pool_size=20)
    trained = rollout(agent, evaluation, 96, evaluation_seed())
    random = rollout(make_agent("random", world), evaluation, 96, evaluation_seed())
    difference = paired_difference(trained.returns, random.returns)
    assert difference.low > 1.0, difference  # random earns about 1.2 of at most 4.75


# -- replay buffer ------------------------------------------------------------------------------------


class RecordingEnv:
    """Wraps a vector env and keeps each step's observations before and after (final ones for ended rows)."""

    def __init__(self, env: ListeningSessionVectorEnv) -> None:
        self.env = env
        self.steps: list[tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, **kwargs: Any) -> Any:
        self.last, info = self.env.reset(**kwargs)
        return self.last, info

    def step(self, actions: np.ndarray) -> Any:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        after = {key: value.copy() for key, value in obs.items()}
        for row in np.flatnonzero(terminated | truncated):
            for key, value in info["final_obs"][row].items():
                after[key][row] = value
        self.steps.append((self.last, actions.copy(), after))
        self.last = obs
        return obs, rewards, terminated, truncated, info


def test_replay_rebuilds_the_observations_the_env_gave(world: LayoutWorld) -> None:
    env = RecordingEnv(vector_env(world, None, n=5))
    config = AHDQNConfig(learning_starts=10**9, buffer_size=10_000, n_step=1)
    learner = AHDQNLearner(AHDQN(world, hidden_size=8), env, config, total_steps=10**6, seed=0)
    learner.run(5 * 40)  # 40 vector steps, several sessions ended and reset
    batch = learner.replay.batch(np.arange(len(learner.replay)))
    before, after = batch.observations(), batch.next_observations
    for step, (obs, actions, next_obs) in enumerate(env.steps):
        index = slice(5 * step, 5 * step + 5)
        np.testing.assert_array_equal(batch.actions[index], actions)
        for key in obs:
            np.testing.assert_array_equal(before[key][index], obs[key], err_msg=f"{key} before step {step}")
            np.testing.assert_array_equal(after[key][index], next_obs[key], err_msg=f"{key} after step {step}")


def test_batch_tensors_gathered_from_indices_equal_the_rebuilt_observations() -> None:
    """What the learner gathers on its device is observation_tensors of the numpy observations, exactly."""
    world = FakeWorld(seed=3, n_tracks=30)  # pools of 40 slots: padded
    env = ListeningSessionVectorEnv(4, world=world, pool_size=40, playlist_length=6)
    config = AHDQNConfig(learning_starts=10**9, n_step=2)
    learner = AHDQNLearner(AHDQN(world, hidden_size=8), env, config, total_steps=10**6, seed=0)
    learner.run(4 * 20)
    batch = learner.replay.batch(np.arange(len(learner.replay)))
    assert (batch.next_state["pools"] < 0).any() and (batch.next_state["history_tracks"] < 0).any()
    expected = observation_tensors(batch.next_observations, "cpu")
    gathered = learner.tables.tensors(**batch.next_state)
    assert gathered.keys() == expected.keys() | {"pool_codes", "history_codes"}
    for key, value in expected.items():
        assert gathered[key].dtype == value.dtype and torch.equal(gathered[key], value), key


def replayed_model_features(real_worlds: Any, vector_steps: int) -> tuple[AHDQN, AHDQNLearner, ReplayBatch]:
    """An AH-DQN with model features and a response head, its learner run (no gradient step) for
    ``vector_steps`` steps of 8 real-world sessions, and the batch of every transition it stored."""
    world, _ = real_worlds
    env = ListeningSessionVectorEnv(8, world=world, copy=False)
    config = AHDQNConfig(learning_starts=10**9, n_step=2, demonstration_fraction=0.0)
    agent = AHDQN(world, hidden_size=16, model_features=True, response_head=True)
    learner = AHDQNLearner(agent, env, config, total_steps=10**6, seed=0)
    learner.run(8 * vector_steps)
    return agent, learner, learner.replay.batch(np.arange(len(learner.replay)))


def test_one_gru_pass_gives_both_states_model_features_exactly(real_worlds) -> None:
    """The learner scores the state before and after a play from one pass over the next state's history."""
    agent, learner, batch = replayed_model_features(real_worlds, vector_steps=12)
    tensors = learner.tables.tensors(**batch.next_state)
    both = agent.candidate_inputs(tensors, [torch.as_tensor(batch.lengths), tensors["lengths"]])
    ((before, before_myopic),) = agent.candidate_inputs(observation_tensors(batch.observations(), "cpu"))
    ((after, after_myopic),) = agent.candidate_inputs(observation_tensors(batch.next_observations, "cpu"))
    for got, expected in zip((*both[0], *both[1]), (before, before_myopic, after, after_myopic)):
        assert torch.equal(got, expected)


def test_stored_model_probabilities_are_the_models_own(real_worlds) -> None:
    """The probabilities the learner stores when a state is played equal the model's on the replayed states.

    Equal within 1e-6, not bit for bit: they were scored in a batch of the vector env's sessions,
    the check scores them in a batch of replayed ones (another matrix shape, another summation
    order). Where the session ended the next state's probabilities are never read (discount 0).
    """
    agent, learner, batch = replayed_model_features(real_worlds, vector_steps=30)
    assert batch.taken_probs is not None and batch.next_probs is not None
    tensors = learner.tables.tensors(**batch.next_state)
    now, after = agent.response_probs(tensors, [torch.as_tensor(batch.lengths), tensors["lengths"]])
    rows = np.arange(len(batch.actions))
    np.testing.assert_allclose(batch.taken_probs, now.numpy()[rows, batch.actions], atol=1e-6)
    going_on = batch.discounts > 0
    assert going_on.any() and not going_on.all()
    np.testing.assert_allclose(batch.next_probs[going_on], after.numpy()[going_on], atol=1e-6)


def test_demonstrated_states_keep_their_pools_probabilities(real_worlds) -> None:
    """A demonstrated transition keeps the model's probabilities of its state's whole pool (the
    margin loss ranks it), within 1e-6 of the model's on the replayed state; the others keep none."""
    world, _ = real_worlds
    env = ListeningSessionVectorEnv(8, world=world, copy=False)
    config = AHDQNConfig(learning_starts=10**9, n_step=2, demonstration_fraction=0.5)
    agent = AHDQN(world, hidden_size=16, model_features=True, response_head=True)
    learner = AHDQNLearner(agent, env, config, total_steps=8 * 20, seed=0)
    learner.run(8 * 20)
    assert len(learner.replay.demonstration_probs) == 8 * 10
    batch = learner.replay.batch(np.arange(len(learner.replay)))
    assert batch.demonstrated.any() and not batch.demonstrated.all()
    assert batch.demonstration_probs is not None and len(batch.demonstration_probs) == batch.demonstrated.sum()
    tensors = learner.tables.tensors(**batch.next_state)
    (now,) = agent.response_probs(tensors, [torch.as_tensor(batch.lengths)])
    np.testing.assert_allclose(batch.demonstration_probs, now.numpy()[batch.demonstrated], atol=1e-6)


def demonstrated_transition(state_value: float) -> dict[str, np.ndarray]:
    """A demonstrated transition for a buffer of M = 3, L = 2; its state's pool probabilities are ``state_value``."""
    return {
        "users": np.zeros(1, np.int64),
        "contexts": np.zeros((1, 1), np.float32),
        "pools": np.array([[0, 1, 2]]),
        "history_tracks": np.array([[0, -1]]),
        "history_responses": np.zeros((1, 2), np.int8),
        "lengths": np.zeros(1, np.int64),
        "next_lengths": np.ones(1, np.int64),
        "actions": np.zeros(1, np.int64),
        "rewards": np.zeros(1),
        "discounts": np.zeros(1),
        "demonstrated": np.ones(1, bool),
        "taken_probs": np.zeros((1, 3)),
        "next_probs": np.zeros((1, 3, 3)),
        "state_probs": np.full((1, 3, 3), state_value),
    }


def test_demonstrated_pools_wrap_with_the_buffer() -> None:
    """A store of demonstrated pools no larger than the buffer overwrites its oldest as the buffer does."""
    tables = (np.zeros((5, 2), np.float32), np.zeros((2, 2), np.float32))
    replay = ReplayBuffer(4, 3, 2, 1, *tables, model_probs=True, demonstrations=10)
    assert len(replay.demonstration_probs) == 4
    for step in range(6):
        replay.add(**demonstrated_transition(float(step)))
    batch = replay.batch(np.arange(4))
    assert batch.demonstration_probs is not None
    assert sorted(batch.demonstration_probs[:, 0, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    plain = ReplayBuffer(4, 3, 2, 1, *tables, model_probs=True)
    with pytest.raises(ValueError, match="keeps no demonstrated pools"):
        plain.add(**demonstrated_transition(0.0))


def test_replay_n_step_returns_and_discounts(world: LayoutWorld) -> None:
    env = vector_env(world, None, n=1)
    config = AHDQNConfig(learning_starts=10**9, n_step=3, gamma=0.5)
    learner = AHDQNLearner(AHDQN(world, hidden_size=8), env, config, total_steps=10**6, seed=0)
    rewards = []
    while True:
        learner.collect()
        rewards.append(learner.session_rewards[0, len(rewards)])
        if learner.stats.episodes:
            break
    stored = learner.replay.batch(np.arange(len(learner.replay)))
    assert len(learner.replay) == len(rewards)  # one transition per play, the last ones truncated by the end
    order = np.argsort(stored.lengths)
    for start, row in enumerate(order):
        window = rewards[start : start + 3]
        assert stored.rewards[row] == pytest.approx(sum(r * 0.5**k for k, r in enumerate(window)))
        ends = start + 3 >= len(rewards)
        assert stored.discounts[row] == (0.0 if ends else 0.125)
        assert stored.next_lengths[row] == min(start + 3, len(rewards))


def test_replay_memory_is_bounded_and_independent_of_feature_width() -> None:
    def buffer(d_track: int) -> ReplayBuffer:
        features = np.zeros((50, d_track), np.float32)
        return ReplayBuffer(1_000, 100, 20, 8, features, np.zeros((5, 4), np.float32))

    narrow, wide = buffer(6), buffer(600)
    assert narrow.nbytes == wide.nbytes == 1_000 * narrow.bytes_per_transition()
    assert narrow.bytes_per_transition() < 600  # an (M, d) observation at d = 48 would be 19,200 bytes
    before = narrow.nbytes
    k = 64
    for _ in range(40):  # 2,560 transitions into 1,000 slots
        narrow.add(
            users=np.zeros(k, int), contexts=np.zeros((k, 8)), pools=np.zeros((k, 100), int),
            history_tracks=np.zeros((k, 20), int), history_responses=np.zeros((k, 20), int),
            lengths=np.zeros(k, int), next_lengths=np.ones(k, int), actions=np.zeros(k, int),
            rewards=np.zeros(k), discounts=np.zeros(k),
        )  # fmt: skip
    assert len(narrow) == 1_000 and narrow.nbytes == before


def test_agent_interface_is_small() -> None:
    public = {name for name in vars(Agent) if not name.startswith("_")}
    assert public == {"act", "config", "save", "load", "needs_oracle"}


def test_the_observation_carries_the_familiarity_the_learned_world_reads(real_worlds) -> None:
    """``familiarity`` rows are the world's table for the pool with the session's artists so far,
    ``history_familiarity`` the played tracks' rows as they were played, and greedy_learned's
    probabilities from the observation are the world's own, along a session that plays one
    artist again whenever it can (the in-session columns are exercised)."""
    from agents.baselines import learned_response_probs

    world, _ = real_worlds
    table = world.familiarity
    model = world.session_model
    assert table is not None and model.response_model.history_dim == len(FAMILIARITY_FEATURES)
    env = ListeningSessionEnv(world=world)
    obs, _ = env.reset(seed=4)
    pool = env.pool
    artists, codes = table.track_artists, table.play_codes

    def recent_before(plays: list[int]) -> np.ndarray:
        """The play codes of ``plays`` newest first, padded with -1 (counted here, not by the library)."""
        newest_first = [int(codes[track]) for track in reversed(plays)][:RECENT_PLAYS]
        return np.array(newest_first + [-1] * (RECENT_PLAYS - len(newest_first)))

    users = np.full(len(pool), env.user)
    np.testing.assert_array_equal(obs["familiarity"], table.familiarity(users, pool, recent_before([])))
    assert obs["familiarity"][:, 0].any(), "some pool tracks were played in the logs"
    rng = np.random.default_rng(0)
    plays: list[int] = []
    for _ in range(10):
        expected = model.response_probs(env._session(), pool[None])[0]
        got = learned_response_probs(model.response_model, {key: value[None] for key, value in obs.items()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        valid = np.flatnonzero(obs["action_mask"])
        again = valid[artists[pool[valid]] == artists[plays[-1]]] if plays else valid[:0]
        obs, _, terminated, _, _ = env.step(int(again[0] if len(again) else rng.choice(valid)))
        plays.append(int(env._history_tracks[len(plays)]))
        np.testing.assert_array_equal(obs["familiarity"], table.familiarity(users, pool, recent_before(plays)))
        for t, track in enumerate(plays):
            row = table.familiarity(np.array([env.user]), np.array([track]), recent_before(plays[:t]))[0]
            np.testing.assert_array_equal(obs["history_familiarity"][t], row)
        if terminated:
            break
    in_session = obs["history_familiarity"][: len(plays), FAMILIARITY_FEATURES.index("artist_just_played")]
    assert in_session.any(), "the session played an artist twice in a row"


def test_response_probs_after_each_prefix_read_only_the_plays_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """One call scores after several prefixes (none, some, all plays): each equals the model run on
    the whole history and read at that prefix. The GRU runs only over the plays the longest
    prefix needs (none when every prefix is empty), so what lies after them changes nothing."""
    from agents.baselines import response_probs_after
    from world_model.history import HISTORY_FEATURES
    from world_model.user_model import UserResponseModel

    h = len(HISTORY_FEATURES)
    torch.manual_seed(0)
    model = UserResponseModel(6, 5, hidden_size=8, mlp_size=16, interaction_size=4, history_dim=h).eval()
    n, length, k = 4, 6, 3
    user, context = torch.randn(n, 6), torch.randn(n, 8)
    history = torch.cat([torch.randn(n, length, 5), torch.eye(3)[torch.randint(0, 3, (n, length))]], dim=-1)
    history_familiarity, candidates, familiarity = torch.randn(n, length, h), torch.randn(n, k, 5), torch.randn(n, k, h)
    # No artist codes: every prefix's in-session columns are recomputed as zeros.
    familiarity[..., N_LOGGED:] = 0.0
    artists = {"pool_codes": torch.full((n, k), -1), "history_codes": torch.full((n, length), -1)}
    played = torch.ones(n, length, dtype=torch.bool)
    with torch.no_grad():
        static = model.static_input(user, context)
        hidden = model.encode(static, history[..., :-3], history[..., -3:].argmax(dim=-1), history_familiarity)
    encoded: list[int] = []
    encode = model.encode

    def recorded(*args: torch.Tensor | None) -> torch.Tensor:
        encoded.append(args[1].shape[1])
        return encode(*args)

    monkeypatch.setattr(model, "encode", recorded)
    noisy, noisy_familiarity = history.clone(), history_familiarity.clone()
    noisy[:, 3:] = torch.randn(n, length - 3, history.shape[-1])  # after the longest prefix (3 plays)
    noisy_familiarity[:, 3:] = torch.randn(n, length - 3, h)
    for prefixes, runs in [
        ([torch.tensor([0, 1, 2, 3]), torch.tensor([2, 0, 3, 1])], 3),
        ([torch.zeros(n, dtype=torch.long)], 0),
    ]:
        encoded.clear()
        with torch.no_grad():
            got = response_probs_after(
                model, user, context, history, played, candidates, prefixes, familiarity, history_familiarity, **artists
            )
            again = response_probs_after(
                model, user, context, noisy, played, candidates, prefixes, familiarity, noisy_familiarity, **artists
            )
            assert encoded == [runs, runs]
            for prefix, probs, probs_again in zip(prefixes, got, again, strict=True):
                logits = model(static, hidden[torch.arange(n), prefix], prefix + 1, candidates, familiarity)
                torch.testing.assert_close(probs, torch.softmax(logits, dim=-1), atol=1e-6, rtol=0)
                assert torch.equal(probs, probs_again)
    # Without the artists the observation's in-session columns hold for the whole history only.
    with pytest.raises(ValueError, match="pool_codes and history_codes"):
        response_probs_after(model, user, context, history, played, candidates, [prefixes[0]], familiarity)


@pytest.fixture(scope="module")
def ensemble_world() -> LayoutWorld:
    """The layout world whose (untrained) user-response model is an ensemble of four, which disagree."""
    from world_model.user_model import UserResponseModel

    world = LayoutWorld(seed=0)
    torch.manual_seed(1)
    world.session_model.response_model = UserResponseModel(
        user_dim=5, track_dim=6, hidden_size=8, mlp_size=16, ensemble_size=4
    ).eval()
    return world


def ensemble_observations(world: LayoutWorld, truth: FakeGroundTruth) -> list[dict[str, np.ndarray]]:
    """Observations of six sessions before their first play and after each of their first three plays."""
    env = vector_env(world, truth)
    obs, _ = env.reset(seed=7)
    seen = [obs]
    for _ in range(3):
        obs, *_ = env.step(np.argmax(obs["action_mask"], axis=1))
        seen.append(obs)
    return seen


def test_learned_response_probs_are_the_members_mean(ensemble_world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
    from agents.baselines import learned_response_probs

    model = ensemble_world.session_model.response_model
    for obs in ensemble_observations(ensemble_world, groundtruth):
        members = learned_response_probs(model, obs, members=True)
        assert members.shape == (*obs["action_mask"].shape, 4, 3)
        np.testing.assert_array_equal(learned_response_probs(model, obs), members.mean(axis=-2))
        assert members.std(axis=-2).max() > 1e-3, "untrained members disagree"


def test_lcb_greedy_with_kappa_zero_plays_as_greedy_learned(
    ensemble_world: LayoutWorld, groundtruth: FakeGroundTruth
) -> None:
    greedy = make_agent("greedy_learned", ensemble_world)
    lcb = make_agent("lcb_greedy", ensemble_world, kappa=0.0)
    for obs in ensemble_observations(ensemble_world, groundtruth):
        np.testing.assert_array_equal(lcb.act(obs), greedy.act(obs))


def test_lcb_greedy_with_a_large_kappa_plays_the_candidate_the_members_agree_on(
    ensemble_world: LayoutWorld, groundtruth: FakeGroundTruth
) -> None:
    from agents.baselines import DEFAULT_RESPONSE_VALUES, learned_response_probs
    from musicenv.world import member_disagreement

    model = ensemble_world.session_model.response_model
    lcb = make_agent("lcb_greedy", ensemble_world, kappa=1e6)
    greedy = make_agent("greedy_learned", ensemble_world)
    differs = 0
    for obs in ensemble_observations(ensemble_world, groundtruth):
        disagreement = member_disagreement(learned_response_probs(model, obs, members=True), DEFAULT_RESPONSE_VALUES)
        disagreement = np.where(obs["action_mask"] > 0, disagreement, np.inf)
        actions = lcb.act(obs)
        np.testing.assert_array_equal(actions, disagreement.argmin(axis=1))
        differs += int((actions != greedy.act(obs)).sum())
    assert differs > 0, "the bound changes some picks"
    with pytest.raises(ValueError, match="kappa"):
        make_agent("lcb_greedy", ensemble_world, kappa=-1.0)


def obs_width(table: Any) -> int:
    """Columns of a familiarity table's rows."""
    return table.features(np.array([0]), np.array([0])).shape[-1]
