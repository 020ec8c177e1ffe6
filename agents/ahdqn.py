"""The Action-Head DQN (AH-DQN) of Tomasi et al., "Automatic Music Playlist Generation via
Simulation-based Reinforcement Learning" (KDD 2023), and its learner.

:class:`AHDQN` is the agent: an :class:`~agents.networks.ActionHeadQNetwork` and a masked
argmax. :class:`AHDQNLearner` trains it on a
:class:`~musicenv.vector_env.ListeningSessionVectorEnv`:

* **Collection**: N sessions side by side, one batched forward pass per step for all of them;
  epsilon-greedy over the *valid* slots only (a random action is a uniformly random unplayed
  track, never a wasted step).
* **Replay**: :class:`~agents.replay.ReplayBuffer` stores each transition as indices (user,
  context, pool, the session's plays) and rebuilds observations when it samples, so memory is
  bounded and independent of the feature width (docs/design.md, "Memory and resume"). With model
  features it also keeps the user-response model's probabilities of each transition's played
  slot and next pool (and a demonstrated state's pool), scored once when the state was played:
  the gradient steps never run the model (which was most of their time).
* **Targets**: double DQN (van Hasselt et al. 2016): the online network picks the next slot among
  the valid ones, the target network values it; optional n-step returns (Sutton 1988; Rainbow).
  The Huber loss and gradient clipping follow the Nature DQN (Mnih et al. 2015); the target
  network is copied every ``target_update_interval`` gradient steps (or Polyak-averaged with
  ``tau < 1``).
* **Model features** (``model_features``, off in the paper): the learned world's user-response
  model gives each candidate's (skip, listen, complete) probabilities as the next play; they are
  appended to the candidate's features, and the play's expected reward under them is added to
  the network's output, ``Q(s, a) = E[r | s, a] + f(s, a)``, with ``f``'s last layer starting at
  zero. So the agent starts as ``greedy_learned`` and ``f`` has to learn only the value of what
  comes after the play (satiation, mood, leaving), not the immediate response the learned world
  already knows. In the learned world ``E[r | s, a]`` is exact, so the TD targets are unchanged.
* **Response head** (``response_head``, with the model features): ``Q(s, a) = E[r | s, a] +
  p(a) · w(s) + f(s, a)``, where ``w(s)`` values each response of the next play for the rest of
  the session (:mod:`agents.networks`), and an L2 penalty (``action_value_penalty``) keeps the
  per-track correction ``f`` at zero unless the data insist. Why: trained freely, ``f`` has to
  learn the session's continuation value (about 4 on the default world, the same for every
  candidate) while its differences between candidates stay within the spread of ``E[r | s, a]``
  (about 0.09): its errors ranked the pool and the agent lost to its own starting point
  (measured: within-state spread of ``f`` 0.42, agreement with greedy 9%, -1.5 return in the
  learned world after 30k steps). Through ``p(a) · w(s)`` one state teaches the value of each
  response for the whole pool.
* **Demonstrations** (``demonstration_fraction``): the run starts by playing ``planner_learned``'s
  choices (model-predictive control on the learned world's model, :mod:`agents.planner`), and
  those transitions are replayed with DQfD's large-margin loss (Hester et al. 2018) besides the
  TD loss: the teacher's slot must lead every other by ``demonstration_margin``. TD learning
  alone could not find the small gains sequencing offers here; the teacher reads only the
  learned world, as the agent does.
* **Model selection** (``selection_interval``, off by default): the network is scored before
  training and periodically on fixed learned-world episodes of training users, and the run ends
  with the best one (:meth:`AHDQNLearner.finish`).
* **The end of a session is terminal**, whether the listener left (``terminated``) or the
  playlist reached its length (``truncated``): the length cap is part of the task, not a time
  limit imposed from outside, and the observation shows the position (``history_mask``), so
  nothing lies beyond the last slot to bootstrap from.

Every default and where it comes from is documented on :class:`~agents.config.AHDQNConfig`.

Exact resume: :meth:`AHDQNLearner.save` / :meth:`AHDQNLearner.load` hold everything the run
depends on (both networks, the optimiser, the replay buffer and its sampling stream, the
exploration stream, step counters, the partial n-step returns, and the vector env's own state
through its ``get_state`` / ``set_state``), so a run stopped and resumed reaches the same
weights as one that never stopped.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, Observation, masked_argmax
from agents.baselines import DEFAULT_RESPONSE_VALUES, response_probs_after
from agents.config import SELECTION_SEED, AHDQNConfig
from agents.networks import ActionHeadQNetwork, FeatureTables, observation_tensors
from agents.planner import LearnedPlanner
from agents.replay import ReplayBatch, ReplayBuffer
from agents.rollout import rollout
from musicenv.artifacts import read_arrays
from musicenv.configs import config_from_dict, config_to_dict
from musicenv.observation import build_observations
from musicenv.world import CONTEXT_FEATURES_DIM, RESPONSES, World, context_features, world_familiarity

RESPONSE_CODES = {name: code for code, name in enumerate(RESPONSES)}
MODEL_FEATURES_DIM = 3
"""Width of the model features appended to each candidate: P(skip), P(listen), P(complete)."""


class AHDQN(Agent):
    """Action-Head DQN: Q(s, a) for each candidate from a state and a candidate encoder; acts greedily.

    Args:
        world: the world whose observations it reads (their widths size the network).
        hidden_size: width of the network (:class:`~agents.config.AHDQNConfig`).
        seed: seeds the network's initialisation (through a private torch generator state, so
            building an agent never disturbs the caller's torch random stream).
        device: torch device of the network.
        model_features: build on the learned world's user-response model (see the module
            docstring and :class:`~agents.config.AHDQNConfig`); the world must have one.
    """

    name = "ahdqn"

    def __init__(
        self,
        world: World,
        hidden_size: int = 64,
        seed: int = 0,
        device: str = "cpu",
        model_features: bool = False,
        response_head: bool = False,
    ) -> None:
        super().__init__(world)
        if response_head and not model_features:
            raise ValueError("ahdqn's response_head weighs the model features' probabilities: set model_features")
        self.response_head = response_head
        self.hidden_size = hidden_size
        self.seed = seed
        self.device = torch.device(device)
        self.model_features = model_features
        self.response_model: Any = None
        if model_features:
            model = getattr(world.session_model, "response_model", None)
            if model is None:
                raise ValueError(
                    "ahdqn with model_features=True reads the learned world's user-response model "
                    f"(session_model.response_model); the {type(world).__name__} world has none"
                )
            # A copy on another device: moving the world's own model would move it under the env.
            same_device = next(model.parameters()).device == self.device
            self.response_model = (model if same_device else copy.deepcopy(model).to(self.device)).eval()
        self.response_values = torch.tensor(DEFAULT_RESPONSE_VALUES, dtype=torch.float32, device=self.device)
        track_dim = world.track_features.shape[1] + (MODEL_FEATURES_DIM if model_features else 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = ActionHeadQNetwork(
                user_dim=world.user_features.shape[1],
                track_dim=track_dim,
                context_dim=CONTEXT_FEATURES_DIM,
                hidden_size=hidden_size,
                history_dim=world.track_features.shape[1] + 3,
                response_head=response_head,
            )
            if model_features:
                # The network learns the correction to the myopic value; starting it at zero makes
                # the untrained agent exactly greedy_learned.
                nn.init.zeros_(network.output.weight)
                nn.init.zeros_(network.output.bias)
        self.q_network = network.to(self.device)

    @torch.no_grad()
    def response_probs(
        self, tensors: dict[str, torch.Tensor], lengths: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """The learned user-response model's ``(N, M, 3)`` probabilities of every candidate as the next play.

        Args:
            tensors: :func:`~agents.networks.observation_tensors` (or
                :meth:`~agents.networks.FeatureTables.tensors`) of the sessions.
            lengths: the session prefixes to score after, one ``(N,)`` tensor of plays each
                (default: the whole history, ``tensors["lengths"]``); one GRU pass serves them all.

        Raises:
            ValueError: the agent was built without ``model_features`` (it has no model to ask).
        """
        if not self.model_features:
            raise ValueError("response_probs needs an agent built with model_features=True")
        prefixes = [tensors["lengths"]] if lengths is None else lengths
        played = torch.arange(tensors["history"].shape[1], device=self.device) < tensors["lengths"][:, None]
        return response_probs_after(
            self.response_model,
            tensors["user"],
            tensors["context"],
            tensors["history"],
            played,
            tensors["candidates"],
            prefixes,
            tensors.get("familiarity"),
            tensors.get("history_familiarity"),
            pool_codes=tensors.get("pool_codes"),
            history_codes=tensors.get("history_codes"),
        )

    def with_probs(self, candidates: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate rows with the model's probabilities appended, and their myopic value ``probs · response_values``.

        ``candidates`` ``(..., d_track)`` and ``probs`` ``(..., 3)`` (:meth:`response_probs`, or
        probabilities stored when the state was played).
        """
        return torch.cat([candidates, probs], -1), probs @ self.response_values

    @torch.no_grad()
    def candidate_inputs(
        self, tensors: dict[str, torch.Tensor], lengths: list[torch.Tensor] | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The candidate rows the network scores, and the myopic value added to its output.

        Without ``model_features``: the observation's candidate features, and zeros. With them:
        the features followed by the learned user-response model's (skip, listen, complete)
        probabilities of each candidate as the session's next play (:meth:`response_probs`), and
        ``(N, M)`` the expected reward of that play, ``probs · response_values`` (what
        ``greedy_learned`` ranks by).

        Args:
            tensors: :func:`~agents.networks.observation_tensors` (or
                :meth:`~agents.networks.FeatureTables.tensors`) of the sessions.
            lengths: as for :meth:`response_probs`.

        Returns:
            One ``(candidates, myopic)`` pair per entry of ``lengths``.
        """
        candidates = tensors["candidates"]
        if not self.model_features:
            zeros = torch.zeros(candidates.shape[:2], device=self.device)
            return [(candidates, zeros) for _ in ([None] if lengths is None else lengths)]
        return [self.with_probs(candidates, probs) for probs in self.response_probs(tensors, lengths)]

    @torch.no_grad()
    def q_values(self, obs: Observation) -> np.ndarray:
        """``(N, M)`` float32 Q-values of every slot (masked slots included, unmasked)."""
        tensors = observation_tensors(obs, self.device)
        ((candidates, myopic),) = self.candidate_inputs(tensors)
        return self.q_values_of(tensors, candidates, myopic).float().cpu().numpy()

    @torch.no_grad()
    def q_values_of(
        self, tensors: dict[str, torch.Tensor], candidates: torch.Tensor, myopic: torch.Tensor
    ) -> torch.Tensor:
        """``(N, M)`` Q-values from observation ``tensors`` and :meth:`candidate_inputs`' pair."""
        return self.q_network({**tensors, "candidates": candidates}) + myopic

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        return masked_argmax(self.q_values(obs), obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "seed": self.seed,
            "device": str(self.device),
            "model_features": self.model_features,
            "response_head": self.response_head,
        }

    def _save_state(self, folder: Path) -> None:
        torch.save(self.q_network.state_dict(), folder / "q_network.pt")

    def _load_state(self, folder: Path) -> None:
        state = torch.load(folder / "q_network.pt", map_location=self.device, weights_only=True)
        self.q_network.load_state_dict(state)


@dataclass
class EpisodeStats:
    """Sums over the training sessions that ended since the last :meth:`AHDQNLearner.pop_stats`."""

    episodes: int = 0
    returns: float = 0.0
    lengths: int = 0
    completions: int = 0
    skips: int = 0

    def as_charts(self) -> dict[str, float]:
        """Means for the ``charts/`` tags (empty when no session ended)."""
        if self.episodes == 0:
            return {}
        plays = max(self.lengths, 1)
        return {
            "charts/episodic_return": self.returns / self.episodes,
            "charts/session_length": self.lengths / self.episodes,
            "charts/completion_rate": self.completions / plays,
            "charts/skip_rate": self.skips / plays,
        }


@dataclass
class TrainMetrics:
    """The last gradient step's figures (for ``losses/``) and its Q-values (for the histogram)."""

    td_loss: float = float("nan")
    q_mean: float = float("nan")
    q_values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class AHDQNLearner:
    """Trains an :class:`AHDQN` on a vector env; see the module docstring.

    Args:
        agent: the agent to train (its ``q_network`` is the online network).
        env: a :class:`~musicenv.vector_env.ListeningSessionVectorEnv` over ``agent.world``.
        config: hyperparameters.
        total_steps: the run's length in agent steps (transitions over all envs); the epsilon
            schedule is laid over it.
        seed: seeds the env's episodes (sub-env ``i`` gets ``seed + i``), the exploration stream
            and the replay sampling.
        selection_env: the vector env of the model-selection episodes (the learned world's
            training users; see :meth:`select`), or None for no selection.
    """

    def __init__(
        self,
        agent: AHDQN,
        env: Any,
        config: AHDQNConfig,
        total_steps: int,
        seed: int = 0,
        selection_env: Any = None,
    ) -> None:
        self.agent = agent
        self.selection_env = selection_env
        self.env = env
        self.config = config
        self.total_steps = total_steps
        self.seed = seed
        self.device = agent.device
        self.online = agent.q_network
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.tables = FeatureTables(
            agent.world.track_features, agent.world.user_features, self.device, world_familiarity(agent.world)
        )
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.learning_rate)
        world = agent.world
        # Agent steps at the start of the run played by the teacher.
        self.demonstration_steps = round(config.demonstration_fraction * total_steps)
        n, length = env.num_envs, env.playlist_length
        # Every play of a demonstrating vector step starts one demonstrated transition.
        demonstrations = -(-self.demonstration_steps // n) * n
        self.replay = ReplayBuffer(
            config.buffer_size,
            env.pool_size,
            env.playlist_length,
            CONTEXT_FEATURES_DIM,
            world.track_features,
            world.user_features,
            seed=seed + 1,
            familiarity=world_familiarity(world),
            model_probs=agent.model_features,
            demonstrations=demonstrations,
        )
        self.rng = np.random.default_rng(seed)
        self.global_step = 0
        self.gradient_steps = 0
        self.stats = EpisodeStats()
        self.metrics = TrainMetrics()
        # Rewards and slots of the current sessions by position: the makings of n-step returns.
        self.session_rewards = np.zeros((n, length), np.float32)
        self.session_actions = np.zeros((n, length), np.int64)
        self.session_demonstrated = np.zeros((n, length), np.bool_)
        # With model features: the model's probabilities of each played slot, as it was played.
        self.session_taken_probs = np.zeros((n, length, MODEL_FEATURES_DIM), np.float32)
        # ... and of each demonstrated state's whole pool (the demonstrations' margin loss ranks it).
        pool_size = env.pool_size if agent.model_features else 0
        self.session_state_probs = np.zeros((n, length, pool_size, MODEL_FEATURES_DIM), np.float32)
        self.teacher: Agent | None = None
        if self.demonstration_steps:
            self.teacher = LearnedPlanner(world)
        self.obs, _ = env.reset(seed=seed)
        self._observe()
        # Model selection: the network with the best mean return on the selection episodes so far.
        self.selection_scores: dict[int, float] = {}
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    # -- schedule ----------------------------------------------------------------------------------

    def epsilon(self) -> float:
        """The exploration rate now: linear from ``start_epsilon`` to ``end_epsilon`` over
        ``exploration_fraction * total_steps`` agent steps, then constant."""
        c = self.config
        span = max(c.exploration_fraction * self.total_steps, 1.0)
        progress = min(self.global_step / span, 1.0)
        return c.start_epsilon + progress * (c.end_epsilon - c.start_epsilon)

    # -- collection --------------------------------------------------------------------------------

    def explore(self, obs: Observation, epsilon: float) -> np.ndarray:
        """Epsilon-greedy slots: with probability epsilon a uniformly random valid slot.

        Both uniforms are drawn for every row whatever epsilon is, so the exploration stream
        advances the same way on every step (a resumed run stays in step).
        """
        mask = obs["action_mask"].astype(bool)
        coins = self.rng.random(len(mask))
        picks = np.floor(self.rng.random(len(mask)) * mask.sum(axis=1)).astype(np.int64)
        random_slots = (np.cumsum(mask, axis=1) <= picks[:, None]).sum(axis=1)
        greedy = self._greedy(obs) if (coins >= epsilon).any() else random_slots
        return np.where(coins < epsilon, random_slots, greedy).astype(np.int64)

    def _observe(self) -> None:
        """Read the current observations into tensors and, with model features, score their pools once.

        Why once: these probabilities serve the greedy action now, and are stored with the
        transitions as their states' model features, so the gradient steps never run the user
        model again (it was most of a gradient step's time: ``benchmarks/RESULTS.md``).
        """
        self.obs_tensors = observation_tensors(self.obs, self.device)
        self.probs = self.agent.response_probs(self.obs_tensors)[0] if self.agent.model_features else None

    def _greedy(self, obs: Observation) -> np.ndarray:
        """The agent's greedy slots on the current observations (``obs``), from the probabilities already scored."""
        if self.probs is None:
            return self.agent.act(obs)
        candidates, myopic = self.agent.with_probs(self.obs_tensors["candidates"], self.probs)
        q = self.agent.q_values_of(self.obs_tensors, candidates, myopic).float().cpu().numpy()
        return masked_argmax(q, obs["action_mask"])

    def collect(self) -> None:
        """One vector step: act on all N sessions, store the transitions, tally ended sessions."""
        env = self.env
        # Copies: the env updates these arrays in place when it steps and autoresets.
        users, pools = env.users.copy(), env.pools.copy()
        contexts = context_features(env.contexts)
        history_tracks, history_responses = env.history_tracks.copy(), env.history_responses.copy()
        positions = env.lengths.copy()
        demonstrating = self.global_step < self.demonstration_steps
        if demonstrating:
            assert self.teacher is not None
            actions = self.teacher.act(self.obs).astype(np.int64)
        else:
            actions = self.explore(self.obs, self.epsilon())
        rows = np.arange(env.num_envs)
        if self.probs is not None:
            state_probs = self.probs.cpu().numpy()
            self.session_taken_probs[rows, positions] = state_probs[rows, actions]
            if demonstrating:
                self.session_state_probs[rows, positions] = state_probs
        self.obs, rewards, terminated, truncated, info = env.step(actions)
        self._observe()
        if info["invalid_action"].any():
            raise RuntimeError("the learner played an invalid slot; the action mask and the env disagree")
        responses = np.array([RESPONSE_CODES[name] for name in info["response"]], dtype=np.int8)
        done = terminated | truncated
        # The state after this play: the plays before it, plus this one.
        next_tracks = history_tracks.copy()
        next_tracks[rows, positions] = pools[rows, actions]
        next_responses = history_responses.copy()
        next_responses[rows, positions] = responses
        self.session_rewards[rows, positions] = rewards
        self.session_actions[rows, positions] = actions
        self.session_demonstrated[rows, positions] = demonstrating
        self._store(users, contexts, pools, next_tracks, next_responses, positions, done)
        self.global_step += env.num_envs
        if done.any():
            session = info["session"]
            ended = info["_session"]
            self.stats.episodes += int(ended.sum())
            self.stats.returns += float(session["return"][ended].sum())
            self.stats.lengths += int(session["length"][ended].sum())
            self.stats.completions += int(session["completions"][ended].sum())
            self.stats.skips += int(session["skips"][ended].sum())

    def _store(
        self,
        users: np.ndarray,
        contexts: np.ndarray,
        pools: np.ndarray,
        next_tracks: np.ndarray,
        next_responses: np.ndarray,
        positions: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """Add the n-step transitions that this step completes.

        A transition starting at position ``s`` is complete once ``n`` plays are in (``s = t - n
        + 1`` for the play at ``t``) or when its session ends (every pending ``s`` in
        ``(t - n, t]``), with return ``sum_k gamma^k r_{s+k}`` and bootstrap weight ``gamma^(t+1-s)``
        (0 after the end). With model features the transition also keeps the model's
        probabilities of its played slot and of the next state's pool (where the session ended,
        those of the session that replaced it: the discount is 0, so they are never read), and a
        demonstrated one those of its state's pool.
        """
        gamma, n = self.config.gamma, self.config.n_step
        next_probs = None if self.probs is None else self.probs.cpu().numpy()
        for back in range(n):
            starts = positions - back
            emit = (starts >= 0) & (done | (back == n - 1))
            if not emit.any():
                continue
            rows = np.flatnonzero(emit)
            start = starts[rows]
            steps = back + 1
            powers = gamma ** np.arange(steps, dtype=np.float64)
            window = np.stack([self.session_rewards[rows, start + k] for k in range(steps)], axis=1)
            self.replay.add(
                users=users[rows],
                contexts=contexts[rows],
                pools=pools[rows],
                history_tracks=next_tracks[rows],
                history_responses=next_responses[rows],
                lengths=start,
                next_lengths=positions[rows] + 1,
                actions=self.session_actions[rows, start],
                rewards=window @ powers,
                discounts=np.where(done[rows], 0.0, gamma**steps),
                demonstrated=self.session_demonstrated[rows, start],
                taken_probs=None if next_probs is None else self.session_taken_probs[rows, start],
                next_probs=None if next_probs is None else next_probs[rows],
                state_probs=None if next_probs is None else self.session_state_probs[rows, start],
            )

    # -- learning ----------------------------------------------------------------------------------

    def train_step(self) -> None:
        """One gradient step of double DQN on a replay batch."""
        batch = self.replay.sample(self.config.batch_size)
        loss, q_taken = self.td_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.online.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.gradient_steps += 1
        if self.gradient_steps % self.config.target_update_interval == 0:
            self._update_target()
        self.metrics = TrainMetrics(
            td_loss=float(loss.detach()), q_mean=float(q_taken.mean()), q_values=q_taken.cpu().numpy()
        )

    def td_loss(self, batch: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Huber TD loss of a batch and the (detached) Q-values of the actions taken.

        The state's history is a prefix of the next state's, so one GRU pass per network serves
        both; the candidates are the same pool in both states. With model features, the model's
        probabilities are those stored with the transition (scored when its states were played),
        the whole pool of a demonstrated state's included (its margin loss ranks that pool).
        """
        # Gathered where the networks live: only the batch's indices cross from the host.
        obs = self.tables.tensors(**batch.next_state)
        lengths = torch.as_tensor(batch.lengths, device=self.device)
        next_lengths = obs["lengths"]
        actions = torch.as_tensor(batch.actions, device=self.device)
        rows = torch.arange(len(actions), device=self.device)
        if batch.next_probs is not None:
            candidates, myopic = self.agent.with_probs(
                obs["candidates"], torch.as_tensor(batch.next_probs, device=self.device)
            )
            taken, myopic_taken = self.agent.with_probs(
                obs["candidates"][rows, actions], torch.as_tensor(batch.taken_probs, device=self.device)
            )
        else:
            ((candidates, myopic),) = self.agent.candidate_inputs(obs, [next_lengths])
            taken, myopic_taken = candidates[rows, actions], myopic[rows, actions]
        state, next_state = self.online.states(obs["user"], obs["context"], obs["history"], lengths, next_lengths)
        taken = taken[:, None]
        action_value = self.online.action_values(state, taken)[:, 0]
        q_taken = action_value + self.online.response_term(state, taken)[:, 0] + myopic_taken
        with torch.no_grad():
            (target_state,) = self.target.states(obs["user"], obs["context"], obs["history"], next_lengths)
            chooser = (
                self.online.q_values(next_state.detach(), candidates)
                if self.config.double_dqn
                else self.target.q_values(target_state, candidates)
            ) + myopic
            # A session's last state has no valid slot; its discount is 0, any slot will do.
            next_actions = chooser.masked_fill(~obs["action_mask"], -torch.inf).argmax(dim=1)
            next_q = (
                self.target.q_values(target_state, candidates[rows, next_actions][:, None])[:, 0]
                + myopic[rows, next_actions]
            )
            discounts = torch.as_tensor(batch.discounts, device=self.device)
            targets = torch.as_tensor(batch.rewards, device=self.device) + discounts * next_q
        loss = F.smooth_l1_loss(q_taken, targets)
        if batch.demonstrated.any():
            demo = torch.as_tensor(batch.demonstrated, device=self.device)
            if batch.demonstration_probs is None:
                ((candidates_now, myopic_now),) = self.agent.candidate_inputs(
                    {key: value[demo] for key, value in obs.items()}, [lengths[demo]]
                )
            else:
                candidates_now, myopic_now = self.agent.with_probs(
                    obs["candidates"][demo], torch.as_tensor(batch.demonstration_probs, device=self.device)
                )
            q_all = self.online.q_values(state[demo], candidates_now) + myopic_now
            allowed = torch.as_tensor(batch.action_masks, device=self.device).bool()[demo]
            margins = torch.full_like(q_all, self.config.demonstration_margin)
            margins[torch.arange(len(q_all), device=self.device), actions[demo]] = 0.0
            best = (q_all + margins).masked_fill(~allowed, -torch.inf).max(dim=1).values
            loss = loss + self.config.demonstration_weight * (best - q_taken[demo]).sum() / len(q_taken)
        if self.config.action_value_penalty:
            loss = loss + self.config.action_value_penalty * action_value.square().mean()
        return loss, q_taken.detach()

    def _update_target(self) -> None:
        tau = self.config.tau
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.online.parameters(), strict=True):
                target.lerp_(online, tau)

    # -- the loop ----------------------------------------------------------------------------------

    def gradient_steps_due(self) -> int:
        """Gradient steps owed by now: one per ``train_frequency`` agent steps after ``learning_starts``."""
        c = self.config
        if self.global_step < c.learning_starts:
            return 0
        return (self.global_step - c.learning_starts) // c.train_frequency + 1 - self.gradient_steps

    def iteration(self) -> None:
        """Collect one vector step, then take the gradient steps it made due."""
        self.collect()
        for _ in range(self.gradient_steps_due()):
            self.train_step()

    def run(
        self,
        until_step: int,
        callback: Callable[[AHDQNLearner], bool] | None = None,
    ) -> None:
        """Iterate until ``global_step >= until_step``, or until ``callback(self)`` returns True.

        The callback runs after every iteration (logging, checkpoints, a stop request). With a
        selection env, the network is scored before the first iteration and each time
        ``global_step`` crosses a multiple of ``selection_interval``.
        """
        if self.selecting and not self.selection_scores:
            self.select()
        while self.global_step < until_step:
            before = self.global_step
            self.iteration()
            interval = self.config.selection_interval
            if self.selecting and self.global_step // interval > before // interval:
                self.select()
            if callback is not None and callback(self):
                return

    @property
    def selecting(self) -> bool:
        """Whether the run selects its final network (a selection env and a positive interval)."""
        return self.selection_env is not None and self.config.selection_interval > 0

    def select(self) -> float:
        """Score the online network on the selection episodes; keep it if it is the best so far.

        The episodes are the same at every call (the selection env is reset with
        :data:`~agents.config.SELECTION_SEED`), so the scores are paired; a tie keeps the earlier
        network. Returns the score (the mean return).
        """
        result = rollout(self.agent, self.selection_env, self.config.selection_episodes, SELECTION_SEED)
        score = float(result.returns.mean())
        if self.best_step is None or score > self.selection_scores[self.best_step]:
            self.best_step = self.global_step
            self.best_state = {key: value.detach().clone() for key, value in self.online.state_dict().items()}
        self.selection_scores[self.global_step] = score
        return score

    def finish(self) -> None:
        """End training: give the agent the selected network (when selecting).

        Scores the last network if it has not been, then loads the best one into
        ``agent.q_network``. The last online network stays the learner's ``online`` (a copy), so a
        checkpoint written after this still resumes training where it stopped; the optimiser no
        longer steps it, so continue a finished run only through a checkpoint.
        """
        if not self.selecting:
            return
        if self.global_step not in self.selection_scores:
            self.select()
        assert self.best_state is not None
        self.online = copy.deepcopy(self.agent.q_network)
        self.agent.q_network.load_state_dict(self.best_state)

    def pop_stats(self) -> EpisodeStats:
        """The ended-session sums since the last call (and reset them)."""
        stats, self.stats = self.stats, EpisodeStats()
        return stats

    # -- saving and resuming -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the learner's whole state into ``folder`` (inside a checkpoint being written atomically)."""
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.online.state_dict(), folder / "online.pt")
        torch.save(self.target.state_dict(), folder / "target.pt")
        if self.best_state is not None:
            torch.save(self.best_state, folder / "best.pt")
        torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        self.replay.save(folder)
        np.savez(folder / "env.npz", **self.env.get_state())
        np.savez(
            folder / "sessions.npz",
            rewards=self.session_rewards,
            actions=self.session_actions,
            demonstrated=self.session_demonstrated,
            taken_probs=self.session_taken_probs,
            state_probs=self.session_state_probs,
        )
        state = {
            "global_step": self.global_step,
            "gradient_steps": self.gradient_steps,
            "rng": self.rng.bit_generator.state,
            "stats": self.stats.__dict__,
            "selection_scores": [[step, score] for step, score in self.selection_scores.items()],
            "best_step": self.best_step,
            "config": config_to_dict(self.config),
            "saved_at": time.time(),
        }
        (folder / "state.json").write_text(json.dumps(state))

    def load(self, folder: Path) -> None:
        """Restore what :meth:`save` wrote (the agent's online network is loaded with the agent)."""
        state = json.loads((folder / "state.json").read_text())
        if config_from_dict(AHDQNConfig, state["config"]) != self.config:
            raise ValueError(f"{folder}: the checkpoint was written with another AH-DQN configuration")
        self.online.load_state_dict(torch.load(folder / "online.pt", map_location=self.device, weights_only=True))
        self.target.load_state_dict(torch.load(folder / "target.pt", map_location=self.device, weights_only=True))
        self.selection_scores = {int(step): float(score) for step, score in state["selection_scores"]}
        self.best_step = state["best_step"]
        self.best_state = (
            torch.load(folder / "best.pt", map_location=self.device, weights_only=True)
            if self.best_step is not None
            else None
        )
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=self.device, weights_only=True))
        self.replay.load(folder)
        self.env.set_state(read_arrays(folder / "env.npz"))
        with np.load(folder / "sessions.npz") as sessions:
            self.session_rewards = sessions["rewards"].copy()
            self.session_actions = sessions["actions"].copy()
            self.session_demonstrated = sessions["demonstrated"].copy()
            self.session_taken_probs = sessions["taken_probs"].copy()
            self.session_state_probs = sessions["state_probs"].copy()
        self.global_step = int(state["global_step"])
        self.gradient_steps = int(state["gradient_steps"])
        self.rng.bit_generator.state = state["rng"]
        self.stats = EpisodeStats(**state["stats"])
        self.obs = current_observations(self.env)
        self._observe()


def current_observations(env: Any) -> Observation:
    """The vector env's current observations, rebuilt from its compact state."""
    catalogue = env.catalogue
    return build_observations(
        catalogue.track_features,
        catalogue.user_features,
        env.users,
        context_features(env.contexts),
        env.pools,
        env.history_tracks,
        env.history_responses,
        env.played,
        catalogue.familiarity,
    )
