"""The user-response model: how a listener responds to a track, given the session so far.

Tomasi et al. ("Automatic Music Playlist Generation via Simulation-based Reinforcement
Learning", KDD 2023) learn from logs a model that predicts, for a track played at a point of a
listening session, whether the listener skips it, listens past the first seconds, or completes
it, and use it as the simulator RL agents are trained in. They found a sequential model (one
that reads the session so far) more accurate than a non-sequential one. This module is that
model and its training; :mod:`world_model.learned_session` wraps it as the learned world's
:class:`~musicenv.world.SessionModel`.

Architecture (:class:`UserResponseModel`)
    - *Static input* ``s``: the user's features (ALS vector and premium,
      :func:`~world_model.features.user_feature_matrix`), the context
      (:func:`musicenv.world.context_features`: context type one-hot, hour sin/cos) and, with
      ``shuffled_handling="flag"``, a flag for "this session was shuffled uniformly" (1 at
      inference, see below).
    - *Session so far*: a GRU reads one play at a time, the track's feature row
      (:func:`~world_model.features.track_feature_matrix`) and the response one-hot; its hidden
      state ``h`` starts at ``tanh(W s + b)``. :meth:`UserResponseModel.step` advances it by one
      play, so an environment updates it incrementally.
    - *Head*: for a candidate track ``c`` at 1-based position ``p``, a first layer
      ``A s + B h + w p / 20 + C c + D (q ⊙ k)`` with the query ``q = Q s + R h`` and the key
      ``k = K c`` (the product lets affinity between listener, session and track enter without
      the MLP having to learn multiplication), then ReLU, a hidden layer of half the width,
      ReLU, and three logits (skip, listen, complete). Everything left of ``C c`` and ``q`` is
      the same for every candidate of a session, so one call scores ``(B, K)`` candidates at
      the price of ``B`` states.
    - *Familiarity* (``history=True``, the default, see :class:`UserModelConfig`): for the
      candidate, and for each played track read by the GRU, the listener's logged plays of that
      track and of its artist
      (:class:`~world_model.history.ListeningHistory`: played before, how often, how they ended)
      enter beside the track's features (``+ G g`` in the first layer, ``+ J g`` in the key).
      Listeners answer tracks they know differently from new ones, ALS vectors cannot tell the
      two apart, and a candidate pool holds far more new tracks than the logs did
      (``benchmarks/user_model.py``'s ``no_history_*`` figures). Five more columns say how
      recently the session itself played the track's artist and genre (:mod:`musicenv.familiarity`:
      the artist's last play, the one before, how many of the last eight; the genre's last play,
      and its decayed count over the last eight); the session state keeps the recent plays' codes
      (``"recent_codes"``) to compute them. The environments put the same rows in the
      observation (``"familiarity"``, ``"history_familiarity"``).
    - ``sequential=False`` drops the GRU (no ``B h``, no ``R h``): the non-sequential baseline.
    - *Ensemble* (``ensemble_size`` ``E``, :class:`UserModelConfig`): ``E`` members, and the
      model's answer is their mean probability (:func:`ensemble_logits`). By default
      (``shared_trunk=False``) the members are independent networks computed side by side: every
      layer above is ``E`` times as wide, and each layer that reads a member's own units (the
      GRU's recurrence, ``B``, ``R``, ``D``, the hidden layer) is block-diagonal, one block per
      member (:func:`member_blocks`), so no member reads another's units. With
      ``shared_trunk=True`` everything up to the head's first layer is one trunk the members
      share, and only the hidden layer and the output are each member's. ``E = 1`` is exactly
      the single model either way.

    ``P(listen past N seconds) = P(listen) + P(complete)``.

Training (:func:`train_user_model`)
    Users are split by :func:`musicenv.world.is_eval_user`: evaluation users' sessions are never
    trained on. The train users' sessions are split by a seeded permutation into train,
    validation and test sessions; with an ensemble of independent members each member holds out
    validation sessions of its own instead (``member_holdout``, :func:`member_validation`).
    Minibatches are whole sessions, padded to the length cap, with teacher forcing (the GRU reads
    the logged plays; every play is a training example of the response to its track given the
    plays before it). A play's listening history (with ``history=True``) counts the listener's
    *other* sessions only, as the environment's sessions are in no log either; with
    ``WorldConfig.leave_session_out``
    :func:`~world_model.world.build_world` does the same for the listener's ALS vector
    (:func:`~world_model.exact_als.held_out_user_vectors`). Adam, cross-entropy, early stopping on
    the validation log-loss (of each member on its own held-out sessions, averaged over the
    members; of the single model with one member) and the best epoch's weights are kept. Each
    member's loss weighs a play by its listener's bootstrap count (:func:`listener_bootstrap`),
    zero on the member's held-out sessions, and the loss is the members' mean (a shared trunk
    learns from every member; independent members' off-block weights get no gradient and stay
    zero). The same seed gives identical weights on the CPU.

The logging policy's shuffled share
    A log's organic sessions were chosen by a recommender that knew something about the
    listener, so in them the response is confounded with the choice: the tracks it played were
    the ones it expected to go well. The learned world must answer for arbitrary choices, which
    is what the uniformly shuffled sessions show. ``shuffled_handling`` says what to do:
    ``"flag"`` (default) gives the model the shuffled flag as an input and sets it to 1 at
    inference, so organic sessions still teach it about listeners and tracks while the flag
    absorbs the selection effect; ``"weight"`` up-weights shuffled sessions so that both kinds
    carry equal total weight in the loss; ``"pooled"`` ignores the distinction.
    ``benchmarks/user_model.py`` measures the three against the ground truth: on held-out
    shuffled plays they are within noise of each other (log-loss 0.678 flag, 0.678 weight,
    0.681 pooled). What decides is the learned world's verdict on agents (``eval.py``, 300
    episodes, relative return gap to the ground truth): with ``"weight"`` it was more optimistic
    for every baseline (random +0.21, ALS +0.46, content +0.62) than with ``"flag"`` (+0.13,
    +0.25, +0.31), so ``"flag"`` is the default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from musicenv.world import CONTEXT_FEATURES_DIM, context_features
from world_model.history import HISTORY_FEATURES, ListeningHistory
from world_model.metrics import response_metrics
from world_model.sessions import POSITION_SCALE, SessionTable

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

N_RESPONSES = 3
SCORING_CHUNK_ROWS = 1024
"""Candidates (sessions x candidates) scored at once by independent members without gradients
on a CPU (:meth:`UserResponseModel.score`): small enough that a chunk's activations stay in cache."""
ShuffledHandling = Literal["flag", "weight", "pooled"]


@dataclass
class UserModelConfig:
    """Architecture and training of the user-response model.

    The sizes are small on purpose: the default world (about 20,000 sessions, 200,000 plays)
    must be learned, ALS included, in under two minutes on a two-core CPU (docs/design.md, "Speed").
    """

    hidden_size: int = 64
    """GRU hidden size: enough for the run-length, position and mood effects of a 20-play session."""
    mlp_size: int = 128
    """Width of the head's first layer (its second has half)."""
    interaction_size: int = 32
    """Dimension of the query/key product of listener and session with the candidate."""
    sequential: bool = True
    """Read the session so far through the GRU; ``False`` is the non-sequential baseline."""
    history: bool = True
    """Read the listener's familiarity with each track and its artist (:class:`~world_model.history.ListeningHistory`).

    Without it the model cannot tell a track the listener knows from a new one near their taste
    (in the default ground truth a known track is skipped less: 0.541 against 0.641), and a
    candidate pool holds far more new tracks than the logs did, so the world was optimistic for
    the agents that exploit it. The same switch adds how recently the session played the
    candidate's artist (:mod:`musicenv.familiarity`: in the default ground truth's logs a play
    whose artist made the previous play is skipped 70% of the time against 57%, which no logged
    count can show). The environments put the same features in the observation
    (``"familiarity"``, ``"history_familiarity"``), so agents that compute the learned model's
    probabilities from their observations (``greedy_learned``, AH-DQN's model features) see what
    the world answers."""
    shuffled_handling: ShuffledHandling = "flag"
    """How the logging policy's shuffled share is used (module docstring); chosen by the benchmark."""
    max_session_length: int = 20
    """Length cap: plays beyond it are not read (the MSSD's and the default playlist length)."""
    batch_size: int = 256
    """Sessions per minibatch."""
    learning_rate: float = 3e-3
    """Adam step size."""
    weight_decay: float = 0.0
    """Adam L2 penalty (early stopping is the regulariser)."""
    max_epochs: int = 40
    """Upper bound on passes over the training sessions."""
    patience: int = 3
    """Stop after this many epochs without a better validation log-loss."""
    validation_share: float = 0.1
    """Share of the train users' sessions held out for early stopping (each member's own share
    with ``member_holdout``)."""
    test_share: float = 0.0
    """Share of the train users' sessions held out for the report's test metrics.

    0 by default: the evaluation users' sessions, which no member trains on, give the report's
    held-out metrics (:attr:`TrainingReport.evaluation`). Test sessions held out of the train
    users' are data no member learns from and, like a shared validation split, the same for every
    member: dropping the 10% share the model used to hold out, on top of
    ``member_holdout``, lowered ``greedy_pick_bias`` on two builds of the default world from 0.031
    and 0.029 to 0.017 and 0.024, greedy_learned's relative return gap from +0.30 and +0.21 to
    +0.23 and +0.17, and the largest gap from 0.45 and 0.38 to 0.30 and 0.35
    (``benchmarks/RESULTS.md``, "Each member holds out its own sessions")."""
    ensemble_size: int = 5
    """Members of the ensemble (``E``; 1: the single model, trained exactly as without an ensemble).

    Each member trains on its own bootstrap of the train listeners (a Poisson(1) weight per
    listener and member, :func:`listener_bootstrap`) from its own initial weights, as a deep
    ensemble (Lakshminarayanan et al., 2017). Where the logs pin a response down the members
    agree; where they do not (tracks new to a listener, rare contexts) they disagree, and the
    environments report or penalise that (:class:`musicenv.world.EnsembleSessionModel`). Their
    mean is a better model than any one of them: greedy ranking by five independent members'
    mean earns clearly more in the ground truth than by one model or by five heads on a shared
    trunk (``benchmarks/RESULTS.md``, "The ensemble user-response model")."""
    shared_trunk: bool = False
    """Members share everything up to the head's first layer, each owning only the last two
    layers (the heads of bootstrapped DQN, Osband et al., 2016); the default ``False`` makes them
    independent networks (:class:`UserResponseModel`). A shared trunk costs about one model to
    train and run, but its members' mean is no better than one model and their disagreement is a
    fraction of the mean's error (the trunk's errors are common to all of them); independent
    members cost more (``benchmarks/RESULTS.md``)."""
    member_holdout: bool = True
    """Each member holds out validation sessions of its own (with more than one independent member).

    As many sessions as ``validation_share`` of the train users' sessions, drawn from the
    non-test ones for each member apart
    (:func:`member_validation`); the member trains on all the others and is validated on its own,
    and early stopping reads the members' mean of those log-losses. ``False``, and always with
    ``shared_trunk`` (the trunk learns from every member's sessions, so no member's are held out
    from it): every member holds out the same sessions, which none trains on.

    Held-out sessions the members share are a common perturbation of all of them, and the
    ensemble's mean cannot average it away. Rebuilding the default world with one seed changed at
    a time (a script not kept), the rebuild rated the first build's ``greedy_learned`` picks over
    the truth's P(complete) by +0.026 with only the split reseeded, against that build's own
    +0.066: every source carried a share of the noise the agent selects on (the ALS seed +0.040,
    the bootstraps +0.046, the initial weights with the minibatch order +0.041), the split the
    largest. Holding out per member made the default world on two builds (world seeds 0 and 1)
    clearly less optimistic (``benchmarks/fidelity.py``; ``benchmarks/RESULTS.md``, "Each member
    holds out its own sessions"): ``greedy_pick_bias`` 0.059 to 0.031 and 0.051 to 0.029, the
    largest relative return gap 0.72 to 0.45 and 0.64 to 0.38, at the same AUC, for about one
    more validation pass per epoch."""
    seed: int = 0
    """Seeds the initial weights, the minibatch order, the members' bootstraps and their held-out sessions."""

    def __post_init__(self) -> None:
        size = self.ensemble_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"UserModelConfig.ensemble_size must be a whole number of at least 1, got {size!r}")
        if not isinstance(self.member_holdout, (bool, np.bool_)):
            raise ValueError(f"UserModelConfig.member_holdout must be True or False, got {self.member_holdout!r}")
        for name in ("validation_share", "test_share"):
            share = getattr(self, name)
            if isinstance(share, bool) or not isinstance(share, (int, float, np.number)) or not 0 <= share < 1:
                raise ValueError(f"UserModelConfig.{name} must be a number in [0, 1), got {share!r}")
        for name in ("hidden_size", "mlp_size", "interaction_size", "max_session_length", "batch_size", "max_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"UserModelConfig.{name} must be a whole number of at least 1, got {value!r}")
        if not (isinstance(self.patience, (int, np.integer)) and self.patience >= 0):
            raise ValueError(f"UserModelConfig.patience must be a whole number of at least 0, got {self.patience!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"UserModelConfig.learning_rate must be finite and positive, got {self.learning_rate!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"UserModelConfig.weight_decay must be finite and at least 0, got {self.weight_decay!r}")
        if self.validation_share + self.test_share >= 1:
            raise ValueError(
                f"UserModelConfig.validation_share + test_share must be below 1 (some sessions must be trained on), "
                f"got {self.validation_share} + {self.test_share}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class UserResponseModel(nn.Module):
    """Logits of (skip, listen, complete) for candidate tracks given the listener and the session so far.

    See the module docstring for the architecture. Shapes: ``B`` sessions, ``K`` candidates per
    session, ``T`` plays so far; ``d_user``, ``d_track`` the feature widths.

    Args:
        user_dim: ``d_user``.
        track_dim: ``d_track``.
        hidden_size, mlp_size, interaction_size, sequential: as in :class:`UserModelConfig`.
        shuffled_flag: the static input ends with the shuffled flag.
        history_dim: width of the listener-track history input
            (:data:`~world_model.history.HISTORY_FEATURES`), 0 for none. It enters the head's
            first layer and the key beside the candidate's features, and the GRU beside each
            played track's.
        ensemble_size: ``E``, the members of the ensemble (:class:`UserModelConfig`). The
            logits the methods return are the ensemble's (:func:`ensemble_logits`) unless they
            are asked for the members' (``members=True``: an ``E`` axis before the last).
        shared_trunk: the members share everything up to the head's first layer and each owns
            the hidden layer and the output; ``False``: they are independent networks side by
            side. Then ``hidden_size``, ``mlp_size`` and ``interaction_size`` are a member's,
            and the attributes of the same names the model's, ``E`` times as wide: member ``e``
            owns units ``e * n .. (e + 1) * n - 1`` of each, and the layers from members' units
            to members' units are block-diagonal (:func:`member_blocks`). The per-session
            computations are the same as a shared trunk's, only wider, so every path that runs
            the model runs either; :meth:`score` computes independent members members first,
            by their own blocks.
    """

    def __init__(
        self,
        user_dim: int,
        track_dim: int,
        hidden_size: int = 64,
        mlp_size: int = 128,
        interaction_size: int = 32,
        sequential: bool = True,
        shuffled_flag: bool = True,
        history_dim: int = 0,
        ensemble_size: int = 1,
        shared_trunk: bool = True,
    ) -> None:
        super().__init__()
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be at least 1, got {ensemble_size}")
        self.ensemble_size = ensemble_size
        self.shared_trunk = shared_trunk
        self.member_sizes = (hidden_size, mlp_size, interaction_size)
        width = 1 if shared_trunk else ensemble_size
        self.history_dim = history_dim
        self.user_dim = user_dim
        self.track_dim = track_dim
        self.hidden_size = width * hidden_size
        self.mlp_size = width * mlp_size
        self.interaction_size = width * interaction_size
        self.sequential = sequential
        self.shuffled_flag = shuffled_flag
        self.static_dim = user_dim + CONTEXT_FEATURES_DIM + int(shuffled_flag)
        hidden, mlp, interaction = self.hidden_size, self.mlp_size, self.interaction_size
        if sequential:
            self.initial = nn.Linear(self.static_dim, hidden)
            self.gru = nn.GRU(track_dim + history_dim + N_RESPONSES, hidden, batch_first=True)
            self.hidden_in = nn.Linear(hidden, mlp, bias=False)
            self.hidden_query = nn.Linear(hidden, interaction, bias=False)
        self.static_in = nn.Linear(self.static_dim, mlp)
        self.static_query = nn.Linear(self.static_dim, interaction)
        self.position_in = nn.Linear(1, mlp, bias=False)
        self.track_in = nn.Linear(track_dim, mlp, bias=False)
        self.track_key = nn.Linear(track_dim, interaction, bias=False)
        self.interaction_in = nn.Linear(interaction, mlp, bias=False)
        if history_dim:
            self.history_in = nn.Linear(history_dim, mlp, bias=False)
            self.history_key = nn.Linear(history_dim, interaction, bias=False)
        # The members' hidden layers side by side (one product), then each member's own output.
        self.hidden_layer = nn.Linear(mlp, ensemble_size * (mlp_size // 2))
        self.output = nn.ModuleList(nn.Linear(mlp_size // 2, N_RESPONSES) for _ in range(ensemble_size))
        if width > 1:
            self._initialise_members()
            # A member-sized GRU without weights of its own (on the meta device, kept out of the
            # state dict): _run_gru runs it on each member's blocks of the wide GRU's weights.
            template = nn.GRU(track_dim + history_dim + N_RESPONSES, hidden_size, batch_first=True, device="meta")
            object.__setattr__(self, "_member_gru", template)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready (saved beside the state dict)."""
        return {
            "user_dim": self.user_dim,
            "track_dim": self.track_dim,
            "hidden_size": self.member_sizes[0],
            "mlp_size": self.member_sizes[1],
            "interaction_size": self.member_sizes[2],
            "sequential": self.sequential,
            "shuffled_flag": self.shuffled_flag,
            "history_dim": self.history_dim,
            "ensemble_size": self.ensemble_size,
            "shared_trunk": self.shared_trunk,
        }

    def _initialise_members(self) -> None:
        """Give independent members a single model's initial weights: each block drawn as torch
        draws a layer of the member's own width (uniform within ``1 / sqrt(fan in)``), zero off
        the blocks."""
        hidden = self.member_sizes[0]
        with torch.no_grad():
            for parameter in self.gru.parameters() if self.sequential else ():
                parameter.uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
            for parameter, blocks in member_blocks(self):
                fan_in = parameter.shape[1] // self.ensemble_size
                parameter.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)).mul_(blocks)
            bound = 1 / math.sqrt(self.mlp_size // self.ensemble_size)
            self.hidden_layer.bias.uniform_(-bound, bound)

    def mask_member_gradients(self) -> None:
        """Zero the gradients off the members' blocks (:func:`member_blocks`), so that training
        keeps independent members independent; nothing to do for a shared trunk."""
        for parameter, blocks in member_blocks(self):
            if parameter.grad is not None:
                parameter.grad.mul_(blocks)

    def static_input(
        self, user_features: torch.Tensor, context: torch.Tensor, shuffled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, static_dim)``: user features, context features and (with the flag) ``shuffled``.

        ``shuffled`` ``(B,)`` defaults to all ones, the setting for responses to arbitrary choices.
        """
        parts = [user_features, context]
        if self.shuffled_flag:
            if shuffled is None:
                shuffled = torch.ones(len(user_features), device=user_features.device)
            parts.append(shuffled.to(user_features.dtype)[:, None])
        return torch.cat(parts, dim=-1)

    def initial_hidden(self, static: torch.Tensor) -> torch.Tensor:
        """``(B, H)`` hidden state of an empty session (zeros for the non-sequential model)."""
        if not self.sequential:
            return static.new_zeros(len(static), self.hidden_size)
        return torch.tanh(self.initial(static))

    def _with_history(self, track_features: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        """``track_features`` with the history columns appended (zeros, "never played", when None)."""
        if not self.history_dim:
            return track_features
        if history is None:
            history = track_features.new_zeros((*track_features.shape[:-1], self.history_dim))
        return torch.cat([track_features, history.to(track_features.dtype)], dim=-1)

    def step(
        self,
        hidden: torch.Tensor,
        track_features: torch.Tensor,
        responses: torch.Tensor,
        history: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, H)`` hidden state after one more play: ``track_features`` ``(B, d)``, ``responses`` ``(B,)``,
        ``history`` ``(B, history_dim)`` the listener's history with the played track."""
        if not self.sequential:
            return hidden
        track_features = self._with_history(track_features, history)
        x = torch.cat([track_features, F.one_hot(responses.long(), N_RESPONSES).to(track_features.dtype)], dim=-1)
        return self._run_gru(x[:, None, :], hidden)[:, -1]

    def encode(
        self,
        static: torch.Tensor,
        track_features: torch.Tensor,
        responses: torch.Tensor,
        history: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states over whole sessions: ``(B, T + 1, H)``, entry ``t`` after the first ``t`` plays.

        ``track_features`` ``(B, T, d_track)`` and ``responses`` ``(B, T)`` are the plays in order;
        padding after a session's last play changes only the states after it (the GRU is causal),
        so padded sessions need no packing. Negative responses (padding) read as an all-zero one-hot.
        ``history`` ``(B, T, history_dim)``: the listener's history with each played track.
        """
        h0 = self.initial_hidden(static)
        if not self.sequential or track_features.shape[1] == 0:
            return h0[:, None, :].expand(-1, track_features.shape[1] + 1, -1)
        track_features = self._with_history(track_features, history)
        onehot = F.one_hot(responses.long().clamp(min=0), N_RESPONSES) * (responses >= 0)[..., None]
        x = torch.cat([track_features, onehot.to(track_features.dtype)], dim=-1)
        return torch.cat([h0[:, None, :], self._run_gru(x, h0)], dim=1)

    def _run_gru(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The GRU's states ``(B, T, H)`` after each of the plays ``inputs`` ``(B, T, ·)`` from ``hidden``
        ``(B, H)``. Independent members run one member-sized GRU each on their own weights (the
        diagonal blocks of the wide GRU's), which costs ``E`` member GRUs instead of one ``E``
        times as wide."""
        size = self.ensemble_size
        if self.shared_trunk or size == 1:
            return self.gru(inputs, hidden[None])[0]
        width = self.member_sizes[0]
        gru = self.gru
        states = []
        for member, start in enumerate(range(0, self.hidden_size, width)):
            weights = {
                "weight_ih_l0": gru.weight_ih_l0.view(3, size, width, -1)[:, member].reshape(3 * width, -1),
                "weight_hh_l0": gru.weight_hh_l0.view(3, size, width, size, width)[:, member, :, member].reshape(
                    3 * width, width
                ),
                "bias_ih_l0": gru.bias_ih_l0.view(3, size, width)[:, member].reshape(-1),
                "bias_hh_l0": gru.bias_hh_l0.view(3, size, width)[:, member].reshape(-1),
            }
            own = hidden[:, start : start + width].contiguous()
            states.append(torch.func.functional_call(self._member_gru, weights, (inputs, own[None]))[0])
        return torch.cat(states, dim=-1)

    def static_context(self, static: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The static input's share of the head's first layer ``(B, M)`` and of the query ``(B, E)``."""
        return self.static_in(static), self.static_query(static)

    def session_context(
        self,
        static_base: torch.Tensor,
        static_query: torch.Tensor,
        hidden: torch.Tensor,
        position: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """First-layer pre-activation shared by all candidates ``(..., M)`` and the query ``(..., E)``.

        Args:
            static_base, static_query: from :meth:`static_context` (broadcast against ``hidden``).
            hidden: GRU state ``(..., H)`` before the play being scored.
            position: 1-based position of that play ``(...)``.
        """
        base = static_base + self.position_in((position.to(static_base.dtype) / POSITION_SCALE)[..., None])
        query = static_query
        if self.sequential:
            base = base + self.hidden_in(hidden)
            query = query + self.hidden_query(hidden)
        return base, query

    def score(
        self,
        base: torch.Tensor,
        query: torch.Tensor,
        candidates: torch.Tensor,
        history: torch.Tensor | None = None,
        members: bool = False,
    ) -> torch.Tensor:
        """Logits ``(B, K, 3)`` of candidates ``(B, K, d_track)`` given :meth:`session_context`'s base and query.

        ``history`` ``(B, K, history_dim)``: the listener's history with each candidate (None:
        never played). ``members=True``: the members' logits ``(B, K, E, 3)`` instead of the
        ensemble's.
        """
        if not self.shared_trunk and self.ensemble_size > 1:
            logits = self._independent_logits(base, query, candidates, history)
            return logits if members else ensemble_logits(logits)
        track = self.track_in(candidates)
        key = self.track_key(candidates)
        if self.history_dim and history is not None:
            history = history.to(candidates.dtype)
            track = track + self.history_in(history)
            key = key + self.history_key(history)
        pre = base[:, None, :] + track + self.interaction_in(query[:, None, :] * key)
        hidden = F.relu(self.hidden_layer(F.relu(pre)))
        if self.ensemble_size == 1:  # exactly a single model's operations
            logits = self.output[0](hidden)[..., None, :]
        else:
            weight = torch.stack([output.weight for output in self.output])
            bias = torch.stack([output.bias for output in self.output])
            logits = torch.einsum("...eh,eoh->...eo", hidden.unflatten(-1, (self.ensemble_size, -1)), weight) + bias
        return logits if members else ensemble_logits(logits)

    def _independent_logits(
        self, base: torch.Tensor, query: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`score`'s members' logits ``(B, K, E, 3)`` for independent members, computed member by member.

        The same equations as the wide layers, arranged members first: each member's units form
        one matrix ``(E, B * K, units)``, so every layer is one batched product by the members'
        own blocks (:func:`diagonal_blocks`; nothing multiplies the zeros off them) with its
        additions fused in, and no activation is reshuffled between member-minor and
        member-major layouts. It costs about two thirds of the wide layers' route on a CPU.

        Without gradients the sessions are scored a few at a time, about
        :data:`SCORING_CHUNK_ROWS` candidates at once: the elementwise steps between the products
        (adds, ReLUs, the query's product) then work on activations that stay in the CPU's cache
        instead of streaming megabytes through memory (``benchmarks/RESULTS.md``, "AH-DQN training
        speed"). Each row's arithmetic is unchanged; the logits agree with one batch's up to
        float32 rounding (a product may round differently at another row count; tested).
        """
        # The sessions broadcast as in the wide layers (one session's base, query, candidates or
        # history may serve all).
        (batch,) = torch.broadcast_shapes(base.shape[:1], query.shape[:1], candidates.shape[:1])
        count = candidates.shape[1]
        base, query = base.expand(batch, -1), query.expand(batch, -1)
        candidates = candidates.expand(batch, -1, -1)
        history = history.expand(batch, count, -1) if self.history_dim and history is not None else None
        step = max(1, SCORING_CHUNK_ROWS // max(count, 1))
        if batch <= step or count == 0 or torch.is_grad_enabled() or candidates.device.type != "cpu":
            return self._member_logits(base, query, candidates, history)
        logits = candidates.new_empty(batch, count, self.ensemble_size, N_RESPONSES)
        for start in range(0, batch, step):
            rows = slice(start, start + step)
            logits[rows] = self._member_logits(
                base[rows], query[rows], candidates[rows], None if history is None else history[rows]
            )
        return logits

    def _member_logits(
        self, base: torch.Tensor, query: torch.Tensor, candidates: torch.Tensor, history: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`_independent_logits` of one chunk of sessions, their shapes already broadcast."""
        size = self.ensemble_size
        _, mlp, interaction = self.member_sizes
        batch, count, width = candidates.shape
        inputs = candidates.reshape(batch * count, width)
        track_w, key_w = self.track_in.weight, self.track_key.weight
        if self.history_dim and history is not None:
            history = history.to(inputs.dtype)
            inputs = torch.cat([inputs, history.reshape(batch * count, history.shape[-1])], dim=1)
            track_w = torch.cat([track_w, self.history_in.weight], dim=1)
            key_w = torch.cat([key_w, self.history_key.weight], dim=1)
        inputs = inputs.expand(size, -1, -1)
        key = torch.bmm(inputs, key_w.view(size, interaction, -1).transpose(1, 2))
        member_query = query.reshape(batch, size, 1, interaction).transpose(0, 1)
        key = (key.view(size, batch, count, interaction) * member_query).view(size, batch * count, interaction)
        start = base.reshape(batch, size, 1, mlp).transpose(0, 1).expand(-1, -1, count, -1)
        pre = torch.baddbmm(
            start.reshape(size, batch * count, mlp), inputs, track_w.view(size, mlp, -1).transpose(1, 2)
        )
        pre = torch.baddbmm(pre, key, diagonal_blocks(self.interaction_in.weight, size))
        hidden_bias = self.hidden_layer.bias.view(size, 1, -1)
        hidden = torch.baddbmm(hidden_bias, F.relu(pre), diagonal_blocks(self.hidden_layer.weight, size))
        output_w = torch.stack([output.weight.T for output in self.output])
        output_b = torch.stack([output.bias for output in self.output])[:, None, :]
        logits = torch.baddbmm(output_b, F.relu(hidden), output_w)
        return logits.transpose(0, 1).reshape(batch, count, size, N_RESPONSES)

    def forward(
        self,
        static: torch.Tensor,
        hidden: torch.Tensor,
        position: torch.Tensor,
        candidates: torch.Tensor,
        history: torch.Tensor | None = None,
        members: bool = False,
    ) -> torch.Tensor:
        """Logits ``(B, K, 3)`` for candidates ``(B, K, d_track)`` as the play at ``position`` ``(B,)``;
        ``history`` ``(B, K, history_dim)`` and ``members`` as in :meth:`score`."""
        base, query = self.session_context(*self.static_context(static), hidden, position)
        return self.score(base, query, candidates, history, members)

    def played_logits(
        self,
        static: torch.Tensor,
        track_table: torch.Tensor,
        tracks: torch.Tensor,
        responses: torch.Tensor,
        positions: torch.Tensor,
        history: torch.Tensor | None = None,
        members: bool = False,
    ) -> torch.Tensor:
        """Teacher-forced logits ``(P, 3)`` (``(P, E, 3)`` with ``members``) of the P logged plays of B padded sessions.

        Each play is scored given the plays before it in its session. The rows follow the
        plays in row-major order of ``tracks >= 0`` (session by session, in position order);
        the head runs on those rows only (about half of a padded batch).

        Args:
            static: ``(B, static_dim)``.
            track_table: ``(n_tracks, d_track)`` track features.
            tracks, responses, positions: ``(B, L)`` as in :class:`~world_model.sessions.SessionTable`
                (padding ``-1``, ``-1``, ``0``).
            history: ``(B, L, history_dim)`` the listener's history with each played track
                (:meth:`~world_model.history.ListeningHistory.session_features`), or None.
        """
        played = tracks >= 0
        features = track_table[tracks.clamp(min=0)]
        hidden = self.encode(static, features, responses, history)[:, :-1]
        static_base, static_query = self.static_context(static)
        session = played.nonzero(as_tuple=True)[0]
        base, query = self.session_context(
            static_base[session], static_query[session], hidden[played], positions[played]
        )
        played_history = None if history is None else history[played][:, None, :]
        return self.score(base, query, features[played][:, None, :], played_history, members)[:, 0]


def diagonal_blocks(weight: torch.Tensor, members: int) -> torch.Tensor:
    """``(E, in, out)``: the diagonal blocks of a block-diagonal ``nn.Linear`` weight ``(E * out, E * in)``,
    transposed for ``x @ block`` (a view: gradients flow into the wide weight's blocks)."""
    return weight.unflatten(0, (members, -1)).unflatten(-1, (members, -1)).diagonal(dim1=0, dim2=2).permute(2, 1, 0)


def member_blocks(model: UserResponseModel) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """The weights of ``model`` that map members' units to members' units, each with its
    block-diagonal 0/1 mask (one block per member), or ``[]`` for a shared trunk or one member.

    Independent members (``shared_trunk=False``) keep these weights zero off the blocks: the
    GRU's recurrent weights (per gate), the hidden state's share of the first layer and of the
    query, the interaction's share of the first layer and the hidden layer. Every other layer
    reads inputs all members share (features, context, position) and needs no mask: member
    ``e``'s units of it are simply its own rows.
    """
    size = model.ensemble_size
    if model.shared_trunk or size == 1:
        return []

    def blocks(rows: int, columns: int, device: torch.device) -> torch.Tensor:
        return torch.block_diag(*[torch.ones(rows // size, columns // size, device=device)] * size)

    layers = [model.interaction_in.weight, model.hidden_layer.weight]
    if model.sequential:
        layers += [model.hidden_in.weight, model.hidden_query.weight]
    masked = [(weight, blocks(*weight.shape, weight.device)) for weight in layers]
    if model.sequential:
        recurrent = model.gru.weight_hh_l0  # the three gates' (H, H) blocks stacked
        gate = blocks(model.hidden_size, model.hidden_size, recurrent.device)
        masked.append((recurrent, gate.repeat(3, 1)))
    return masked


def ensemble_logits(member_logits: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` logits whose softmax is the members' mean probability, from ``(..., E, 3)`` members' logits.

    ``log mean_e softmax(member_logits[..., e, :])``; one member's logits are returned as they
    are, so an ensemble of one computes exactly what a single model does.
    """
    if member_logits.shape[-2] == 1:
        return member_logits[..., 0, :]
    return torch.logsumexp(F.log_softmax(member_logits, dim=-1), dim=-2) - math.log(member_logits.shape[-2])


@dataclass(frozen=True)
class SessionSplit:
    """Session indices into a :class:`SessionTable` by role.

    Attributes:
        train, validation, test: train users' sessions, split by a seeded permutation.
        evaluation: evaluation users' sessions (never trained on).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    evaluation: np.ndarray

    @classmethod
    def of(cls, sessions: SessionTable, validation_share: float, test_share: float, seed: int) -> SessionSplit:
        """Split ``sessions``: evaluation users out, then a permutation seeded by ``seed``."""
        evaluation = sessions.eval_sessions()
        train_users = np.flatnonzero(~evaluation)
        order = train_users[np.random.default_rng(seed).permutation(len(train_users))]
        n_validation = int(round(validation_share * len(order)))
        n_test = int(round(test_share * len(order)))
        return cls(
            train=np.sort(order[n_validation + n_test :]),
            validation=np.sort(order[:n_validation]),
            test=np.sort(order[n_validation : n_validation + n_test]),
            evaluation=np.flatnonzero(evaluation),
        )


@dataclass
class TrainingReport:
    """What :func:`train_user_model` did.

    Attributes:
        train_seconds: wall time of the epochs (data preparation excluded).
        epochs: epochs run; ``best_epoch``: the one whose weights were kept (1-based).
        sessions: sessions per role (train, validation, test, evaluation). With member holdout
            (:attr:`UserModelConfig.member_holdout`) ``train`` counts every session some member
            trains on and ``validation`` every session some member holds out.
        history: per epoch, ``train_loss``, ``validation_loss`` and the validation metrics.
        validation, test: metrics of the kept weights on those sessions (shuffled flag as logged);
            with member holdout the validation metrics are each member's on its own held-out
            sessions, averaged over the members; ``test`` is empty without test sessions.
        evaluation: metrics of the kept weights on the evaluation users' sessions, which no
            member trains on (empty if there are none).
    """

    train_seconds: float
    epochs: int
    best_epoch: int
    sessions: dict[str, int]
    history: list[dict[str, float]]
    validation: dict[str, float]
    test: dict[str, float]
    evaluation: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def static_inputs(
    model: UserResponseModel,
    sessions: SessionTable,
    user_features: np.ndarray,
    shuffled: bool | None = None,
    device: str | torch.device = "cpu",
    session_user_features: np.ndarray | None = None,
) -> torch.Tensor:
    """``(S, static_dim)`` static input of every session; ``shuffled=None`` uses the logged flags.

    ``session_user_features`` ``(S, d_user)``, when given, is each session's own user row (e.g.
    :func:`~world_model.exact_als.held_out_user_vectors`'s) instead of ``user_features[listener]``.
    """
    flags = sessions.shuffled if shuffled is None else np.full(len(sessions), shuffled)
    users = user_features[sessions.listeners] if session_user_features is None else session_user_features
    return model.static_input(
        torch.as_tensor(np.asarray(users, dtype=np.float32), device=device),
        torch.as_tensor(context_features(sessions.contexts()), device=device),
        torch.as_tensor(flags, dtype=torch.float32, device=device),
    )


@torch.inference_mode()
def logged_response_probs(
    model: UserResponseModel,
    sessions: SessionTable,
    track_features: np.ndarray,
    user_features: np.ndarray,
    shuffled: bool | None = True,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    session_user_features: np.ndarray | None = None,
    session_history: np.ndarray | None = None,
    members: bool = False,
) -> np.ndarray:
    """Teacher-forced probabilities ``(S, L, 3)`` float64 of every logged play of ``sessions``.

    ``shuffled=True`` (default) asks what the learned world answers (flag set as at inference);
    ``None`` uses each session's logged flag. Padded entries are uniform.
    ``session_user_features`` ``(S, d_user)`` replaces ``user_features[listener]`` per session
    (:func:`static_inputs`). ``session_history`` ``(S, L, history_dim)`` is each play's
    listener-track history (None: never played). The probabilities are the members' mean, or
    with ``members=True`` each member's, ``(S, L, E, 3)``.
    """
    was_training = model.training
    model.eval()
    table = torch.as_tensor(track_features, device=device)
    probs = np.full((len(sessions), sessions.max_session_length, model.ensemble_size, N_RESPONSES), 1.0 / N_RESPONSES)
    for start in range(0, len(sessions), batch_size):
        rows = slice(start, min(start + batch_size, len(sessions)))
        part = sessions.take(rows)
        part_users = None if session_user_features is None else session_user_features[rows]
        logits = model.played_logits(
            static_inputs(model, part, user_features, shuffled, device, part_users),
            table,
            torch.as_tensor(part.tracks, device=device),
            torch.as_tensor(part.responses, device=device),
            torch.as_tensor(part.positions, device=device),
            None if session_history is None else torch.as_tensor(session_history[rows], device=device),
            members=True,
        )
        # probs[rows] is a view, so the masked assignment fills probs itself.
        probs[rows][part.play_mask()] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
    model.train(was_training)
    return probs if members else probs.mean(axis=-2)


def _session_weights(sessions: SessionTable, handling: ShuffledHandling) -> np.ndarray:
    """Per-session loss weights: with ``"weight"``, shuffled and organic sessions weigh the same in total."""
    weights = np.ones(len(sessions))
    if handling == "weight":
        plays = sessions.n_plays.astype(np.float64)
        shuffled_plays = plays[sessions.shuffled].sum()
        organic_plays = plays[~sessions.shuffled].sum()
        if shuffled_plays > 0 and organic_plays > 0:
            weights[sessions.shuffled] = organic_plays / shuffled_plays
    return weights


BOOTSTRAP_STREAM = 1
"""The members' bootstraps are drawn from ``default_rng((seed, BOOTSTRAP_STREAM))``, a stream apart
from the minibatch order's ``default_rng(seed)``, so an ensemble of one trains as a single model."""
VALIDATION_STREAM = 2
"""The members' held-out sessions are drawn from ``default_rng((seed, VALIDATION_STREAM))``
(:func:`member_validation`)."""


def listener_bootstrap(n_listeners: int, ensemble_size: int, seed: int) -> np.ndarray:
    """``(n_listeners, E)`` float32 weights of each listener's plays in each member's loss.

    Poisson(1) counts, the online bootstrap (Oza & Russell 2001, used by bootstrapped DQN):
    each member sees about 63% of the listeners, some of them several times over. Listeners,
    not plays, are resampled because plays of one listener are not independent. An ensemble of
    one has no bootstrap (all ones), and then nothing is drawn.
    """
    if ensemble_size == 1:
        return np.ones((n_listeners, 1), dtype=np.float32)
    rng = np.random.default_rng((seed, BOOTSTRAP_STREAM))
    return rng.poisson(1.0, (n_listeners, ensemble_size)).astype(np.float32)


def member_validation(n_sessions: int, n_validation: int, ensemble_size: int, seed: int) -> np.ndarray:
    """``(n_sessions, E)`` bool: the sessions each member holds out for validation.

    ``n_validation`` sessions per member, drawn without replacement for each member apart from
    ``default_rng((seed, VALIDATION_STREAM))`` (:attr:`UserModelConfig.member_holdout`).
    """
    rng = np.random.default_rng((seed, VALIDATION_STREAM))
    held_out = np.zeros((n_sessions, ensemble_size), dtype=bool)
    for member in range(ensemble_size):
        held_out[rng.choice(n_sessions, n_validation, replace=False), member] = True
    return held_out


def _metrics(probs: np.ndarray, sessions: SessionTable, held_out: np.ndarray | None = None) -> dict[str, float]:
    """Response metrics of ``probs`` on ``sessions``' plays: ``(S, L, 3)`` the model's; with
    ``held_out`` (``(S, E)`` bool), ``(S, L, E, 3)`` the members', each member scored on its own
    held-out sessions and the metrics averaged over the members."""
    mask = sessions.play_mask()
    if held_out is None:
        return response_metrics(probs[mask], sessions.responses[mask])
    members = [
        response_metrics(probs[own][mask[own]][:, member], sessions.responses[own][mask[own]])
        for member, own in enumerate(held_out.T)
    ]
    # A member whose few held-out plays show one response class has no AUC; the others still count.
    return {name: float(np.nanmean([metrics[name] for metrics in members])) for name in members[0]}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one thread inside the block (or the decorated function), then restore.

    Training on several threads sums in an order that depends on how the work was split, so the
    same seed could give a different model from one process to the next (a world built under a
    test runner's thread count differed from one built by ``train.py``). One thread makes a
    build a function of its inputs alone; the user model's batches are small, so it costs little.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@one_torch_thread()
def train_user_model(
    log: ListeningLog | SessionTable,
    track_features: np.ndarray,
    user_features: np.ndarray,
    config: UserModelConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    log_dir: str | None = None,
    progress: bool = True,
    session_user_features: np.ndarray | None = None,
    session_track_features: tuple[np.ndarray, np.ndarray] | None = None,
    track_artists: np.ndarray | None = None,
    track_genres: np.ndarray | None = None,
) -> tuple[UserResponseModel, TrainingReport]:
    """Train a :class:`UserResponseModel` on the train users' sessions of ``log``.

    Args:
        log: the listening log (or its :class:`SessionTable`, for callers that reuse one).
        track_features: ``(n_tracks, d_track)`` float32, rows aligned to ``log.tracks``.
        user_features: ``(n_listeners, d_user)`` float32, rows aligned to sorted listener ids.
        config: defaults documented on :class:`UserModelConfig`.
        device: where training runs (``"cpu"``, or ``"cuda"`` when available); the returned
            model is on the CPU.
        log_dir: TensorBoard folder for ``losses/train``, ``losses/val``, ``metrics/val_*`` and
            ``charts/plays_per_second``; ``None`` writes nothing.
        progress: show a tqdm bar over the epochs.
        session_user_features: ``(S, d_user)`` float32, each session's own user row, used in
            training and in the report instead of ``user_features[listener]``:
            :func:`~world_model.world.build_world` passes, with ``WorldConfig.leave_session_out``,
            the listener's ALS vector without the session
            (:func:`~world_model.exact_als.held_out_user_vectors`). Default: ``user_features[listener]``.
        session_track_features: ``(tables, fold)``: ``(K, n_tracks, d_track)`` track feature
            tables and each session's ``(S,)`` fold; a session of fold ``k`` is read with table
            ``k`` (cross-fitted track vectors, :func:`~world_model.exact_als.held_out_track_vectors`).
            Default: ``track_features`` for every session.
        track_artists: ``(n_tracks,)`` artist code of every track, for the history's artist
            columns (:class:`~world_model.history.ListeningHistory`); None: every track is its own
            artist.
        track_genres: ``(n_tracks,)`` genre code of every track, for the history's genre columns
            (:func:`~world_model.genres.track_genres`); None: one genre for every track.

    Torch runs on one CPU thread while it trains (:func:`one_torch_thread`): the same inputs and
    seed give the same model bit for bit, whatever thread count the caller set.

    Returns:
        The model with the best validation log-loss's weights, in eval mode, and a
        :class:`TrainingReport`.
    """
    config = config or UserModelConfig()
    sessions = log if isinstance(log, SessionTable) else SessionTable.from_log(log, config.max_session_length)
    track_features = np.asarray(track_features, dtype=np.float32)
    user_features = np.asarray(user_features, dtype=np.float32)
    if user_features.shape[0] != len(sessions.listener_ids):
        raise ValueError(f"{user_features.shape[0]} user feature rows for {len(sessions.listener_ids)} listeners")
    if session_user_features is None:
        session_users = user_features[sessions.listeners]
    else:
        session_users = np.asarray(session_user_features, dtype=np.float32)
        if session_users.shape != (len(sessions), user_features.shape[1]):
            raise ValueError(
                f"session_user_features has shape {session_users.shape}, expected "
                f"({len(sessions)}, {user_features.shape[1]})"
            )
    split = SessionSplit.of(sessions, config.validation_share, config.test_share, config.seed)
    if len(split.train) == 0 or len(split.validation) == 0:
        raise ValueError(
            f"too few train users' sessions to train on ({len(split.train)} train, {len(split.validation)} validation)"
        )
    # With member holdout every member trains on the train and validation sessions but its own
    # held-out ones; validation reads the sessions some member holds out, each by its holders.
    held_out: np.ndarray | None = None
    train_held_out = np.zeros((len(split.train), config.ensemble_size), dtype=bool)
    if config.member_holdout and config.ensemble_size > 1 and not config.shared_trunk:
        pool = np.sort(np.concatenate([split.train, split.validation]))
        train_held_out = member_validation(len(pool), len(split.validation), config.ensemble_size, config.seed)
        some_member = train_held_out.any(axis=1)
        held_out = train_held_out[some_member]
        split = dataclasses.replace(split, train=pool, validation=pool[some_member])
    if config.history:
        # Every play's history with its track, from all logged sessions but its own.
        history_table = ListeningHistory.from_sessions(sessions, len(track_features), track_artists, track_genres)
        session_history = history_table.session_features(sessions)
    else:
        session_history = None
    # The table the training reads: with per-fold tables, fold k's tracks are rows k * n_tracks + track.
    read_table = track_features
    if session_track_features is not None:
        tables, fold = (np.asarray(a) for a in session_track_features)
        if tables.ndim != 3 or tables.shape[1:] != track_features.shape or fold.shape != (len(sessions),):
            raise ValueError(
                f"session_track_features: tables {tables.shape} and folds {fold.shape} do not fit "
                f"{track_features.shape} track features and {len(sessions)} sessions"
            )
        read_table = np.ascontiguousarray(tables.reshape(-1, tables.shape[2]), dtype=np.float32)
        shifted = np.where(sessions.tracks >= 0, sessions.tracks + fold[:, None] * tables.shape[1], -1)
        sessions = dataclasses.replace(sessions, tracks=shifted)
    train, validation, test = (sessions.take(split.train), sessions.take(split.validation), sessions.take(split.test))

    def history_of(rows: np.ndarray) -> np.ndarray | None:
        return None if session_history is None else session_history[rows]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = UserResponseModel(
            user_features.shape[1],
            track_features.shape[1],
            hidden_size=config.hidden_size,
            mlp_size=config.mlp_size,
            interaction_size=config.interaction_size,
            sequential=config.sequential,
            shuffled_flag=config.shuffled_handling == "flag",
            history_dim=len(HISTORY_FEATURES) if config.history else 0,
            ensemble_size=config.ensemble_size,
            shared_trunk=config.shared_trunk,
        )
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    table = torch.as_tensor(read_table, device=device)
    users = torch.as_tensor(session_users[split.train], device=device)
    context = torch.as_tensor(context_features(train.contexts()), device=device)
    shuffled = torch.as_tensor(train.shuffled, dtype=torch.float32, device=device)
    tracks = torch.as_tensor(train.tracks, device=device)
    responses = torch.as_tensor(train.responses, device=device)
    positions = torch.as_tensor(train.positions, device=device)
    train_history = history_of(split.train)
    history_t = None if train_history is None else torch.as_tensor(train_history, device=device)
    weights = torch.as_tensor(_session_weights(train, config.shuffled_handling), dtype=torch.float32, device=device)
    bootstrap = listener_bootstrap(len(sessions.listener_ids), config.ensemble_size, config.seed)
    member_weights = torch.as_tensor(bootstrap[train.listeners] * ~train_held_out, device=device)
    rng = np.random.default_rng(config.seed)

    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir)
        writer.add_text("hyperparameters", "\n".join(f"{k}: {v}" for k, v in config.to_dict().items()))

    best_loss, best_epoch, best_state = float("inf"), 0, None
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), desc="user model", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        epoch_start = time.perf_counter()
        loss_sum, weight_sum = 0.0, 0.0
        for batch in np.array_split(rng.permutation(len(train)), max(1, -(-len(train) // config.batch_size))):
            index = torch.as_tensor(batch, device=device)
            batch_responses = responses[index]
            static = model.static_input(users[index], context[index], shuffled[index])
            logits = model.played_logits(
                static,
                table,
                tracks[index],
                batch_responses,
                positions[index],
                None if history_t is None else history_t[index],
                members=True,
            )
            mask = batch_responses >= 0
            play_weights = weights[index][:, None].expand_as(batch_responses)[mask]
            # Each member's loss weighs a play by its session's weight times its listener's bootstrap count.
            resampled = play_weights[:, None] * member_weights[index][:, None, :].expand(*mask.shape, -1)[mask]
            targets = batch_responses[mask].repeat_interleave(model.ensemble_size)
            losses = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none").view_as(resampled)
            loss = ((losses * resampled).sum(dim=0) / resampled.sum(dim=0).clamp(min=1e-12)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            model.mask_member_gradients()
            optimizer.step()
            batch_weight = float(play_weights.sum())
            loss_sum += float(loss.detach()) * batch_weight
            weight_sum += batch_weight
        plays_per_second = int(train.n_plays.sum()) / (time.perf_counter() - epoch_start)
        val_metrics = _metrics(
            logged_response_probs(
                model,
                validation,
                read_table,
                user_features,
                shuffled=None,
                device=device,
                session_user_features=session_users[split.validation],
                session_history=history_of(split.validation),
                members=held_out is not None,
            ),
            validation,
            held_out,
        )
        record = {"epoch": epoch, "train_loss": loss_sum / weight_sum, "validation_loss": val_metrics["logloss"]}
        record.update({f"validation_{k}": v for k, v in val_metrics.items()})
        history.append(record)
        if writer is not None:
            writer.add_scalar("losses/train", record["train_loss"], epoch)
            writer.add_scalar("losses/val", val_metrics["logloss"], epoch)
            for name in ("auc_skip", "auc_complete", "ece"):
                writer.add_scalar(f"metrics/val_{name}", val_metrics[name], epoch)
            writer.add_scalar("charts/plays_per_second", plays_per_second, epoch)
        bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{val_metrics['logloss']:.4f}")
        if val_metrics["logloss"] < best_loss:
            best_loss, best_epoch = val_metrics["logloss"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    train_seconds = time.perf_counter() - start
    if writer is not None:
        writer.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    model.to("cpu").eval()

    def held_out_metrics(
        sessions: SessionTable, rows: np.ndarray, members_held_out: np.ndarray | None = None
    ) -> dict[str, float]:
        """The trained model's metrics on held-out ``sessions`` (rows ``rows`` of the table;
        ``members_held_out``: each member's own, as :func:`_metrics`)."""
        probs = logged_response_probs(
            model,
            sessions,
            read_table,
            user_features,
            None,
            session_user_features=session_users[rows],
            session_history=history_of(rows),
            members=members_held_out is not None,
        )
        return _metrics(probs, sessions, members_held_out)

    report = TrainingReport(
        train_seconds=train_seconds,
        epochs=len(history),
        best_epoch=best_epoch,
        sessions={
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
            "evaluation": len(split.evaluation),
        },
        history=history,
        validation=held_out_metrics(validation, split.validation, held_out),
        test=held_out_metrics(test, split.test) if len(test) else {},
        evaluation=(
            held_out_metrics(sessions.take(split.evaluation), split.evaluation) if len(split.evaluation) else {}
        ),
    )
    return model, report
