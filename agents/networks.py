"""The Action-Head DQN's Q-network: Q(s, a) for every candidate of a session in one batched pass.

Tomasi et al. (KDD 2023) call it the *action head*: instead of one output per action (a DQN's
usual head, impossible when every listener has a different pool of tracks), the network takes
the state *and an action's features* and returns that action's value, so it generalises across
pools and scores any number of candidates.

Architecture (:class:`ActionHeadQNetwork`; sizes chosen here, the paper does not publish them)
    - *State encoder*: each history row (a played track's features, then its response one-hot)
      is embedded, ``e_j = ReLU(E x_j + b)``. The session so far is summarised by recency-weighted
      sums of the embeddings at three time scales, ``(1 - λ) Σ_j λ^(t-1-j) e_j`` for
      λ = 0.5, 0.8, 0.95 (a fixed-kernel attention over the rows the ``history_mask`` allows), and
      the last play's embedding. With the static input ``z = [user, context]`` and the position
      ``t / L`` that gives the state ``s = ReLU(U [z, sums, last, t / L] + c)``. Order matters to
      listeners (skips come in runs, satiation builds and decays, abrupt transitions cost), and
      sums that forget at several rates see all of that; they are computed for every row at once,
      where a GRU would take L sequential steps: on a CPU core that is the difference between
      about 2 and 35 ms a batch of 128 (measured here), which decides how many gradient steps a
      short run can afford.
    - *Action head*: for each candidate's features ``x``, a first layer
      ``A s + C x + D (Q s ⊙ K x)`` (the product lets listener-track affinity enter without the
      MLP learning multiplication, as in the learned world's user-response model), ReLU, a
      hidden layer of half the width, ReLU, one output. Only ``C x`` and ``K x`` are per
      candidate; everything computed from ``s`` is shared by the pool, so scoring M candidates
      costs about one small matrix product per candidate.
    - *Response head* (optional, ``response_head``; for candidates whose last three features are
      a user-response model's (skip, listen, complete) probabilities, the AH-DQN's model features):
      a small MLP of ``s`` gives three values ``w(s)``, one per response, and the Q-value gains
      ``p(a) · w(s)``: what each response of the next play is worth to the rest of the session
      (a skip raises the chance of leaving; a completion changes the listener's state), weighted
      by how likely the candidate is to get it. It is the Bellman equation's structure, ``Q = sum_r
      p(r | s, a) [R(r) + continuation(s, r)]``, with the continuation's dependence on *which* track
      was played left to the action head. Its last layer starts at zero.
    - Padded candidates and played slots get finite values; the policy masks them
      (:func:`agents.base.masked_argmax`).

The network reads observation arrays as torch tensors (:func:`observation_tensors`), so it runs
on anything that speaks ``ListeningSession-v0``: the vector env, a replay buffer's rebuilt
observations, a single env.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Observation
from musicenv.observation import candidate_familiarity, played_familiarity, track_play_codes
from musicenv.world import Familiarity

N_RESPONSES = 3
DECAYS = (0.5, 0.8, 0.95)
"""Forgetting rates of the history summaries: half-lives of about 1, 3 and 14 plays."""


def observation_tensors(obs: Observation, device: str | torch.device) -> dict[str, torch.Tensor]:
    """The arrays a Q-network reads, as float32 tensors (masks as bool) on ``device``."""
    out = {
        key: torch.as_tensor(obs[key], device=device, dtype=torch.float32)
        for key in ("user", "context", "history", "candidates")
    }
    for key in ("familiarity", "history_familiarity"):
        if key in obs:
            out[key] = torch.as_tensor(obs[key], device=device, dtype=torch.float32)
    out["lengths"] = torch.as_tensor(obs["history_mask"], device=device).sum(dim=1).long()
    out["action_mask"] = torch.as_tensor(obs["action_mask"], device=device).bool()
    return out


class FeatureTables:
    """The world's feature tables as tensors on ``device``, to build network inputs from indices there.

    :func:`observation_tensors` of :func:`musicenv.observation.build_observations`'s output, but
    gathered on the device from compact indices (a replay batch's): nothing but the indices (a few
    hundred bytes a transition) crosses from the host, instead of a ``(B, M, d_track)`` matrix.

    Args:
        track_features, user_features: the world's tables.
        device: where the tensors live.
        familiarity: the world's sparse familiarity table (:func:`musicenv.world.world_familiarity`);
            its rows are looked up on the host (sorted keys) and moved with the batch.
    """

    def __init__(
        self,
        track_features: np.ndarray,
        user_features: np.ndarray,
        device: str | torch.device,
        familiarity: Familiarity | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.familiarity = familiarity
        # A zero row at the end: padding (-1) reads it.
        self.tracks = torch.cat(
            [torch.as_tensor(track_features, dtype=torch.float32), torch.zeros(1, track_features.shape[1])]
        ).to(self.device)
        self.users = torch.as_tensor(user_features, dtype=torch.float32, device=self.device)
        self.one_hot = torch.eye(N_RESPONSES, device=self.device)

    def tensors(
        self,
        users: np.ndarray,
        context_features: np.ndarray,
        pools: np.ndarray,
        history_tracks: np.ndarray,
        history_responses: np.ndarray,
        played: np.ndarray,
    ) -> dict[str, torch.Tensor]:
        """What :func:`observation_tensors` gives for the same sessions (arguments as for ``build_observations``).

        Also ``"pool_codes"`` ``(N, M)`` and ``"history_codes"`` ``(N, L)``, the play codes
        (artist and genre, :func:`musicenv.familiarity.play_codes`; ``-1``: padding) with which
        :func:`~agents.baselines.response_probs_after` rescores the candidates after a shorter
        prefix than the history.
        """
        device = self.device
        pools_t = torch.as_tensor(pools, device=device)
        tracks_t = torch.as_tensor(history_tracks, device=device)
        in_history = tracks_t >= 0
        responses = torch.as_tensor(history_responses, device=device).long()
        padding = len(self.tracks) - 1
        history = torch.cat(
            [
                self.tracks[torch.where(in_history, tracks_t, padding)],
                self.one_hot[responses.clamp(0, N_RESPONSES - 1)] * in_history[..., None],
            ],
            dim=-1,
        )
        return {
            "user": self.users[torch.as_tensor(users, device=device)],
            "context": torch.as_tensor(context_features, dtype=torch.float32, device=device),
            "history": history,
            "candidates": self.tracks[torch.where(pools_t >= 0, pools_t, padding)],
            "lengths": in_history.sum(dim=1),
            "action_mask": (pools_t >= 0) & ~torch.as_tensor(played, device=device),
            "familiarity": torch.as_tensor(
                candidate_familiarity(self.familiarity, users, pools, history_tracks), device=device
            ),
            "history_familiarity": torch.as_tensor(
                played_familiarity(self.familiarity, users, history_tracks), device=device
            ),
            # Play codes (-1: padding), to rescore the candidates after a shorter prefix.
            "pool_codes": torch.as_tensor(track_play_codes(self.familiarity, pools), device=device),
            "history_codes": torch.as_tensor(track_play_codes(self.familiarity, history_tracks), device=device),
        }


class ActionHeadQNetwork(nn.Module):
    """Q-values of (session state, candidate track) pairs; see the module docstring.

    Args:
        user_dim: width of the ``"user"`` observation.
        track_dim: width of a candidate row: the ``"candidates"`` features, plus any per-candidate
            features the agent appends (the AH-DQN's ``model_features``).
        context_dim: width of the ``"context"`` observation.
        hidden_size: width of the row embeddings, the state and the action head's first layer.
        history_dim: width of a ``"history"`` row (default ``track_dim + 3``: the track's
            features and the response one-hot).
        response_head: add the response head (see the module docstring); the candidates' last
            three features must then be response probabilities.
    """

    def __init__(
        self,
        user_dim: int,
        track_dim: int,
        context_dim: int,
        hidden_size: int = 64,
        history_dim: int | None = None,
        response_head: bool = False,
    ) -> None:
        super().__init__()
        if response_head and track_dim < N_RESPONSES:
            raise ValueError(f"response_head reads the candidates' last {N_RESPONSES} features; track_dim={track_dim}")
        self.response_head = response_head
        self.user_dim, self.track_dim, self.context_dim, self.hidden_size = (
            user_dim,
            track_dim,
            context_dim,
            hidden_size,
        )
        self.history_dim = track_dim + N_RESPONSES if history_dim is None else history_dim
        static_dim = user_dim + context_dim
        interaction = hidden_size // 2
        self.row = nn.Linear(self.history_dim, hidden_size)
        self.register_buffer("decays", torch.tensor(DECAYS))
        self.state = nn.Linear(static_dim + (len(DECAYS) + 1) * hidden_size + 1, hidden_size)
        self.state_in = nn.Linear(hidden_size, hidden_size)
        self.state_query = nn.Linear(hidden_size, interaction, bias=False)
        # One matrix for both per-candidate projections: one matmul over the pool, not two.
        self.candidate_in = nn.Linear(track_dim, hidden_size + interaction, bias=False)
        self.interaction_in = nn.Linear(interaction, hidden_size, bias=False)
        self.hidden_layer = nn.Linear(hidden_size, hidden_size // 2)
        self.output = nn.Linear(hidden_size // 2, 1)
        if response_head:
            self.response_hidden = nn.Linear(hidden_size, hidden_size // 2)
            self.response_output = nn.Linear(hidden_size // 2, N_RESPONSES)
            nn.init.zeros_(self.response_output.weight)
            nn.init.zeros_(self.response_output.bias)

    def states(
        self, user: torch.Tensor, context: torch.Tensor, history: torch.Tensor, *lengths: torch.Tensor
    ) -> list[torch.Tensor]:
        """State embeddings ``(B, H)`` of the same sessions after each of several numbers of plays.

        The history rows are embedded once; a transition's state and next state (whose history
        extends the current one) differ only in the recency weights.

        Args:
            user, context: ``(B, d_user)``, ``(B, d_context)``.
            history: ``(B, L, history_dim)`` history rows, in play order.
            lengths: one or more ``(B,)`` int64 numbers of plays (0..L) to read the state after.
        """
        static = torch.cat([user, context], dim=-1)
        rows = F.relu(self.row(history))
        batch, length = history.shape[:2]
        positions = torch.arange(length, device=history.device)
        out = []
        for plays in lengths:
            age = (plays[:, None] - 1 - positions[None, :]).to(history.dtype)  # 0 for the last play
            played = (age >= 0).to(history.dtype)
            weights = (1.0 - self.decays) * self.decays ** age.clamp(min=0)[..., None] * played[..., None]
            sums = torch.einsum("blk,blh->bkh", weights, rows).reshape(batch, -1)
            last = rows[torch.arange(batch, device=history.device), (plays - 1).clamp(min=0)] * (plays > 0)[:, None]
            position = (plays.to(history.dtype) / length)[:, None]
            out.append(F.relu(self.state(torch.cat([static, sums, last, position], dim=-1))))
        return out

    def q_values(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, K)`` of candidates ``(B, K, track_dim)`` in states ``(B, H)``: the action
        head's output plus the response head's term (:meth:`response_term`)."""
        return self.action_values(state, candidates) + self.response_term(state, candidates)

    def response_term(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` the response head's ``p(a) · w(s)`` (zeros without a response head)."""
        if not self.response_head:
            return state.new_zeros(candidates.shape[:2])
        worth = self.response_output(F.relu(self.response_hidden(state)))
        return (candidates[..., -N_RESPONSES:] * worth[:, None, :]).sum(dim=-1)

    def action_values(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` the action head's output alone (the Q-values without the response head's term)."""
        projected = self.candidate_in(candidates)
        content, key = projected[..., : self.hidden_size], projected[..., self.hidden_size :]
        pre = self.state_in(state)[:, None] + content + self.interaction_in(self.state_query(state)[:, None] * key)
        return self.output(F.relu(self.hidden_layer(F.relu(pre)))).squeeze(-1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q-values ``(B, M)`` of every candidate slot of :func:`observation_tensors`' ``inputs``."""
        (state,) = self.states(inputs["user"], inputs["context"], inputs["history"], inputs["lengths"])
        return self.q_values(state, inputs["candidates"])

    def config(self) -> dict[str, int | bool]:
        """Constructor arguments (saved beside the state dict)."""
        return {
            "user_dim": self.user_dim,
            "track_dim": self.track_dim,
            "context_dim": self.context_dim,
            "hidden_size": self.hidden_size,
            "history_dim": self.history_dim,
            "response_head": self.response_head,
        }
