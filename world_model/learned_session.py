"""The learned world's :class:`~musicenv.world.SessionModel`: the user-response and session-end models together.

:class:`LearnedSessionModel` answers what the environment asks of a world (docs/design.md, "One World
protocol"): the probabilities of (skip, listen, complete) for candidate tracks as the next play,
the new state after a play, and the probability that the listener leaves now. It reads the
trained :class:`~world_model.user_model.UserResponseModel` and
:class:`~world_model.session_end.SessionEndModel` and the world's feature tables.

Four ways to compute, one answer
    The trained :class:`~world_model.user_model.UserResponseModel` is the reference; each other
    path exists for a measured speed reason, and all four agree within 1e-5 (one parametrised
    test holds them to the module).

    * **numpy, batched** (:meth:`LearnedSessionModel.response_probs` and ``advance`` for ``B * K``
      at most ``numpy_threshold`` rows). A batch-1 torch call costs 40 to 60 µs on a CPU, more
      than everything else a single environment step does (docs/design.md, "Speed"). So for small
      batches the trained weights run in numpy, reading per-track tables precomputed once (each
      track's share of the head's first layer, of the key and of the GRU's input), so that scoring
      a candidate is a few gathers and two small matrix products (plus, with a listening history,
      one sorted-key lookup of each (listener, track) pair and a product with the history's 4
      columns). ``benchmarks/user_model.py`` measures where torch overtakes it.
    * **the torch module** on ``device`` for larger batches (a vector environment, an agent
      scoring whole pools).
    * **one session at a time** (:class:`LearnedSingleSession`, below): the single environment's
      fused kernel, about half the cost of the batched calls on a batch of one
      (``benchmarks/env_throughput.py``, ``kernel_vs_cartpole``).
    * **on a device** (:class:`TorchLearnedSessionModel`, reached through
      :meth:`LearnedSessionModel.torch_session_model`): the numpy path's tables on torch tensors,
      for the vector environment whose sessions live on a GPU (``benchmarks/gpu.py``).

An ensemble (:class:`~musicenv.world.EnsembleSessionModel`)
    The response model computes its members side by side (independent members in wider,
    block-diagonal layers, or one shared trunk; :class:`~world_model.user_model.UserResponseModel`),
    so one session state holds every member's: the GRU state is the members' states end to end.
    Every path scores all members with the same products a single model needs (the members'
    hidden layers side by side, their outputs one block-diagonal matrix) and answers with their
    mean (:meth:`LearnedSessionModel.response_probs`);
    :meth:`~LearnedSessionModel.member_response_probs` gives each member's, and
    :meth:`~LearnedSessionModel.member` one member alone, with its own single-session kernel and
    device model.

Session state
    A ``dict[str, np.ndarray]`` with the batch first (see :mod:`musicenv.world`):

    ==================  ============  =============================================================
    key                 shape/dtype   meaning
    ==================  ============  =============================================================
    ``users``           (B,) int64    user indices
    ``hidden``          (B, H) f32    GRU state after the plays so far
    ``static_context``  (B, M+E) f32  the user's and context's share of the head's first layer (M
                                      columns) and of the interaction query (E columns)
    ``context``         (B, M+E) f32  the same for the next play: plus the position's and the GRU
                                      state's shares (what scoring reads)
    ``position``        (B,) int64    plays so far
    ``skip_run``        (B,) int64    consecutive skips ending at the last play
    ``last_response``   (B,) int64    the last response, -1 before any play
    ``response_counts`` (B, 3) int64  plays so far per response
    ``recent_codes``    (B, R) int64  the last ``R`` plays' play codes (artist and genre), newest
                                      first, ``-1`` for none (:data:`musicenv.familiarity.RECENT_PLAYS`;
                                      what the in-session familiarity columns compare)
    ==================  ============  =============================================================

    ``context`` is a cache of the others (recomputed by :meth:`advance`), kept in the state so that
    scoring reads it instead of recomputing it for every call.

One session at a time
    A single environment plays one session: :meth:`LearnedSessionModel.single_session` gives a
    :class:`LearnedSingleSession`, one fused call per play (score, draw, advance) that keeps the
    state in its own form and gives the batched calls' numbers bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from musicenv.artifacts import ArtifactError, atomic_folder, read_manifest, write_manifest
from musicenv.familiarity import (
    GENRE_BITS,
    GENRE_MASK,
    RECENT_PLAYS,
    SESSION_COLUMNS,
    advance_recent_codes,
    torch_advance_recent_codes,
    torch_session_familiarity,
)
from musicenv.torch_session import TorchSessionState, context_feature_tensor
from musicenv.world import SKIP, Contexts, SessionState, context_features, draw_response
from world_model.features import STANDARDISED_COLUMNS, FeatureStats, track_feature_layout, user_feature_layout
from world_model.history import ListeningHistory
from world_model.session_end import SessionEndModel
from world_model.sessions import POSITION_SCALE
from world_model.user_model import UserResponseModel

DEFAULT_NUMPY_THRESHOLD = 256
"""Largest ``B * K`` scored in numpy; above it torch is faster (measured by
``benchmarks/user_model.py`` on a 2-core CPU)."""

MODELS_FORMAT = "musicenv.user_models"
MODELS_FORMAT_VERSION = 5
"""5: the in-session columns include the genre's (``genre_just_played``, ``genre_exposure``) and
the history keeps each track's genre; 4: the familiarity the response model reads ends with the
in-session artist columns (:mod:`musicenv.familiarity`); 3: the ensemble's members may be independent (``shared_trunk``
in ``response_model.json``, the members side by side in wider layers); 2: every ensemble shared
its trunk; 1: a single model. Earlier versions are refused (rebuild the world)."""


class LearnedSessionModel:
    """The learned world's session model (protocol :class:`musicenv.world.EnsembleSessionModel`).

    Args:
        response_model: a trained :class:`UserResponseModel` (with the shuffled flag, the flag
            is set to 1: responses to arbitrary choices).
        session_end: a fitted :class:`SessionEndModel`.
        track_features: ``(n_tracks, d_track)`` float32, the world's track features.
        user_features: ``(n_users, d_user)`` float32, the world's user features.
        feature_stats: the statistics the features were made with (saved with the models so a
            loaded world can featurise new tracks the same way), or None.
        numpy_threshold: largest ``B * K`` computed in numpy (:data:`DEFAULT_NUMPY_THRESHOLD`).
        device: where the torch path runs.
        history: the listeners' logged plays (:class:`~world_model.history.ListeningHistory`);
            required when the model reads history (``response_model.history_dim > 0``).

    Attributes:
        members: the response model's members this model answers with (all of them; one for
            :meth:`member`).
    """

    def __init__(
        self,
        response_model: UserResponseModel,
        session_end: SessionEndModel,
        track_features: np.ndarray,
        user_features: np.ndarray,
        feature_stats: FeatureStats | None = None,
        numpy_threshold: int = DEFAULT_NUMPY_THRESHOLD,
        device: str | torch.device = "cpu",
        history: ListeningHistory | None = None,
    ) -> None:
        if response_model.history_dim and history is None:
            raise ValueError("the response model reads the listeners' history: pass history=ListeningHistory(...)")
        self.history = history if response_model.history_dim else None
        self.response_model = response_model.to(device).eval()
        self.session_end = session_end
        self.track_features = np.ascontiguousarray(track_features, dtype=np.float32)
        self.user_features = np.ascontiguousarray(user_features, dtype=np.float32)
        self.feature_stats = feature_stats
        self.numpy_threshold = numpy_threshold
        self.device = torch.device(device)
        if self.track_features.shape[1] != response_model.track_dim:
            raise ValueError(
                f"track features have {self.track_features.shape[1]} columns, the model {response_model.track_dim}"
            )
        if self.user_features.shape[1] != response_model.user_dim:
            raise ValueError(
                f"user features have {self.user_features.shape[1]} columns, the model {response_model.user_dim}"
            )
        self._compile()

    @property
    def track_feature_layout(self) -> dict[str, tuple[int, int]]:
        """Named column blocks of :attr:`track_features` (:func:`~world_model.features.track_feature_layout`)."""
        return track_feature_layout(self.track_features.shape[1] - len(STANDARDISED_COLUMNS) - 1)

    @property
    def user_feature_layout(self) -> dict[str, tuple[int, int]]:
        """Named column blocks of :attr:`user_features`."""
        return user_feature_layout(self.user_features.shape[1] - 1)

    def _compile(self) -> None:
        """Precompute the numpy path's per-track tables and transposed weights."""
        model = self.response_model

        def weight(layer: torch.nn.Linear) -> np.ndarray:
            return layer.weight.detach().cpu().numpy().astype(np.float32)

        def bias(layer: torch.nn.Linear) -> np.ndarray:
            return layer.bias.detach().cpu().numpy().astype(np.float32)

        features = self.track_features
        mlp = model.mlp_size
        # Each track's share of the head's first layer and its interaction key, side by side, so
        # that scoring a candidate gathers one row.
        self._track_table = np.ascontiguousarray(
            np.concatenate([features @ weight(model.track_in).T, features @ weight(model.track_key).T], axis=1)
        )
        size = model.ensemble_size
        # Independent members (UserResponseModel's shared_trunk=False): the weights between members'
        # units are block-diagonal, and the kernels multiply by their blocks alone (MemberBlocks).
        self._blocks = 1 if model.shared_trunk else size
        member_mlp = model.member_sizes[1]
        self._interaction = _member_weight(weight(model.interaction_in).T, self._blocks, [member_mlp])
        # Each member's hidden layer (E, mlp, h2) and output (E, h2, 3) and their biases.
        self._member_hidden_w = weight(model.hidden_layer).T.reshape(mlp, size, -1).transpose(1, 0, 2)
        self._member_hidden_b = bias(model.hidden_layer).reshape(size, -1)
        self._member_output_w = np.stack([weight(output).T for output in model.output])
        self._member_output_b = np.stack([bias(output) for output in model.output])
        self._select_members(tuple(range(size)))
        self._static_w = np.concatenate([weight(model.static_in), weight(model.static_query)], axis=0).T
        self._static_b = np.concatenate([bias(model.static_in), bias(model.static_query)])
        self._position_w = np.zeros(mlp + model.interaction_size, dtype=np.float32)
        self._position_w[:mlp] = weight(model.position_in)[:, 0] / np.float32(POSITION_SCALE)
        # Row p: the position's share of the context before play p + 1 (the single session's lookup).
        self._position_rows = np.arange(1, 257, dtype=np.float32)[:, None] * self._position_w
        if model.sequential:
            gru = model.gru
            w_ih = gru.weight_ih_l0.detach().cpu().numpy()
            d, h = model.track_dim, model.history_dim
            track_gate = features @ w_ih[:, :d].T + gru.bias_ih_l0.detach().cpu().numpy()
            # The GRU's input gates for every (track, response) pair: one gather per step.
            self._gate_table = np.ascontiguousarray(track_gate[:, None, :] + w_ih[:, d + h :].T[None, :, :])
            self._history_gates = np.ascontiguousarray(w_ih[:, d : d + h].T)
            hidden_size = model.member_sizes[0]
            self._w_hh = _member_weight(gru.weight_hh_l0.detach().cpu().numpy().T, self._blocks, [hidden_size] * 3)
            self._b_hh = gru.bias_hh_l0.detach().cpu().numpy()
            self._initial_w, self._initial_b = weight(model.initial).T, bias(model.initial)
            # The hidden state's share of the head and of the query, in one product.
            self._hidden_w = _member_weight(
                np.concatenate([weight(model.hidden_in), weight(model.hidden_query)], axis=0).T,
                self._blocks,
                list(model.member_sizes[1:]),
            )
        if model.history_dim:
            # The history's share of the head's first layer and of the key, as the track table's.
            self._history_w = np.ascontiguousarray(
                np.concatenate([weight(model.history_in), weight(model.history_key)], axis=0).T
            )
        self._response_one_hot = np.eye(3, dtype=np.int64)
        self._torch_tracks = torch.as_tensor(self.track_features, device=self.device)

    def _select_members(self, members: tuple[int, ...]) -> None:
        """Answer with the response model's ``members``: the head tables scoring reads.

        The members' hidden layers sit side by side, ``(mlp, E * h2)``, and their outputs form one
        block-diagonal ``(E * h2, E * 3)`` matrix, so that every member is scored by the same two
        products as a single model (for one member they are exactly that model's).
        """
        self.members = members
        h2, n = self._member_hidden_w.shape[2], len(members)
        hidden_layer = np.concatenate(self._member_hidden_w[list(members)], axis=1)
        whole = self._blocks > 1 and members == tuple(range(self._blocks))
        self._hidden_layer_w = _member_weight(hidden_layer, self._blocks if whole else 1, [h2])
        self._hidden_layer_b = np.ascontiguousarray(self._member_hidden_b[list(members)].ravel())
        self._output_w = np.zeros((n * h2, n * 3), dtype=np.float32)
        for slot, member in enumerate(members):
            self._output_w[slot * h2 : (slot + 1) * h2, slot * 3 : (slot + 1) * 3] = self._member_output_w[member]
        self._output_b = np.ascontiguousarray(self._member_output_b[list(members)].ravel())

    # --- SessionModel protocol -------------------------------------------------------------

    def initial_state(self, users: np.ndarray, contexts: Contexts) -> SessionState:
        """State of B empty sessions for ``users`` in ``contexts`` (the latent attention is ignored)."""
        users = np.asarray(users, dtype=np.int64)
        n = len(users)
        parts = [self.user_features[users], context_features(contexts)]
        if self.response_model.shuffled_flag:
            parts.append(np.ones((n, 1), dtype=np.float32))
        static = np.concatenate(parts, axis=1)
        if self.response_model.sequential:
            hidden = np.tanh(static @ self._initial_w + self._initial_b).astype(np.float32)
        else:
            hidden = np.zeros((n, self.response_model.hidden_size), dtype=np.float32)
        position = np.zeros(n, dtype=np.int64)
        static_context = (static @ self._static_w + self._static_b).astype(np.float32)
        return {
            "users": users,
            "hidden": hidden,
            "static_context": static_context,
            "context": self._context(static_context, hidden, position),
            "position": position,
            "skip_run": np.zeros(n, dtype=np.int64),
            "last_response": np.full(n, -1, dtype=np.int64),
            "response_counts": np.zeros((n, 3), dtype=np.int64),
            "recent_codes": np.full((n, RECENT_PLAYS), -1, dtype=np.int64),
        }

    def response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K, 3)`` float64 probabilities of (skip, listen, complete) for ``tracks`` ``(B, K)`` next.

        The members' mean (:meth:`member_response_probs`). Padding (``tracks < 0``) is scored as
        track 0: finite, and to be ignored by the caller.
        """
        return _members_mean(self.member_response_probs(state, tracks))

    def member_response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """``(B, K, E, 3)`` float64: each member's probabilities for ``tracks`` ``(B, K)`` next (:attr:`members`)."""
        tracks = np.maximum(tracks, 0)
        if tracks.size > self.numpy_threshold:
            return self.torch_member_response_probs(state, tracks)
        mlp = self.response_model.mlp_size
        rows = self._track_table.take(tracks, axis=0)
        if self.history is not None:
            familiarity = self.history.familiarity(state["users"][:, None], tracks, state["recent_codes"][:, None])
            rows += familiarity @ self._history_w
        context = state["context"][:, None, :]
        pre = rows[..., :mlp] + context[..., :mlp]
        pre += (rows[..., mlp:] * context[..., mlp:]) @ self._interaction
        np.maximum(pre, 0.0, out=pre)
        hidden = pre @ self._hidden_layer_w
        hidden += self._hidden_layer_b
        np.maximum(hidden, 0.0, out=hidden)
        logits = (hidden @ self._output_w + self._output_b).astype(np.float64)
        return _softmax(logits.reshape(*tracks.shape, len(self.members), 3))

    def advance(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> SessionState:
        """New state after each session played ``tracks`` ``(B,)`` with ``responses`` ``(B,)``."""
        tracks = np.maximum(tracks, 0)
        responses = np.asarray(responses, dtype=np.int64)
        hidden = state["hidden"]
        if self.response_model.sequential:
            step = self._numpy_step if len(tracks) <= self.numpy_threshold else self._torch_step
            hidden = step(hidden, tracks, responses, state["users"], state["recent_codes"])
        position = state["position"] + 1
        return {
            "users": state["users"],
            "hidden": hidden,
            "static_context": state["static_context"],
            "context": self._context(state["static_context"], hidden, position),
            "position": position,
            "skip_run": (state["skip_run"] + 1) * (responses == SKIP),
            "last_response": responses,
            "response_counts": state["response_counts"] + self._response_one_hot[responses],
            "recent_codes": advance_recent_codes(state["recent_codes"], self._played_codes(tracks)),
        }

    def _played_codes(self, tracks: np.ndarray) -> np.ndarray:
        """Play codes of played ``tracks`` (``-1``, never matching, for a model without a history)."""
        if self.history is None:
            return np.full(len(tracks), -1, dtype=np.int64)
        return self.history.play_codes[tracks]

    def leave_probs(self, state: SessionState) -> np.ndarray:
        """``(B,)`` float64 probability that each listener leaves now (the session-end model)."""
        return self.session_end.leave_probs(
            state["position"], state["skip_run"], state["last_response"], state["response_counts"]
        )

    def leave_probs_after(self, state: SessionState, tracks: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """:meth:`leave_probs` of the state :meth:`advance` would return, bit for bit, without computing it.

        Leaving reads only the session's counters (position, skip run, last response, response
        counts), so the GRU step and the next play's context are skipped
        (:func:`musicenv.world.leave_probs_after`: a planner's leaves).
        """
        responses = np.asarray(responses, dtype=np.int64)
        return self.session_end.leave_probs(
            state["position"] + 1,
            (state["skip_run"] + 1) * (responses == SKIP),
            responses,
            state["response_counts"] + self._response_one_hot[responses],
        )

    @property
    def ensemble_size(self) -> int:
        """How many members answer (:class:`musicenv.world.EnsembleSessionModel`): ``len(members)``."""
        return len(self.members)

    def member(self, index: int) -> LearnedSessionModel:
        """Member ``index`` alone: this model answering with that member's head (``0 <= index < E``).

        It shares every table, the session-end model and the states with the ensemble (a state
        made by one serves the other), and has the ensemble's fast paths of its own:
        :meth:`single_session` and :meth:`torch_session_model` (the environments' ``"sample"``
        responses play an episode with one member).

        Raises:
            IndexError: ``index`` is not a member.
        """
        if not 0 <= index < self.ensemble_size:
            raise IndexError(f"member {index} of an ensemble of {self.ensemble_size}")
        alone = copy.copy(self)
        alone._select_members((self.members[index],))
        return alone

    def single_session(self, state: SessionState) -> LearnedSingleSession:
        """The fused one-session kernel for ``state`` (a batch of one; see :class:`LearnedSingleSession`)."""
        return LearnedSingleSession(self, state)

    def torch_session_model(self, device: str | torch.device) -> TorchLearnedSessionModel:
        """This model on torch tensors on ``device`` for the tensor path (:class:`TorchLearnedSessionModel`)."""
        return TorchLearnedSessionModel(self, device)

    @property
    def context_layout(self) -> dict[str, tuple[int, int]]:
        """Column blocks of the state's ``context`` and ``static_context``."""
        mlp = self.response_model.mlp_size
        return {"head_base": (0, mlp), "query": (mlp, mlp + self.response_model.interaction_size)}

    # --- the two paths ----------------------------------------------------------------------

    def _context(self, static_context: np.ndarray, hidden: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Head base and query for the play at ``position + 1`` (numpy twin of ``session_context``)."""
        context = static_context + (position + 1).astype(np.float32)[:, None] * self._position_w
        if self.response_model.sequential:
            context += hidden @ self._hidden_w
        return context

    def _numpy_step(
        self,
        hidden: np.ndarray,
        tracks: np.ndarray,
        responses: np.ndarray,
        users: np.ndarray | None = None,
        recent_codes: np.ndarray | None = None,
    ) -> np.ndarray:
        """One GRU step in numpy (PyTorch's GRU equations, gates in its order: reset, update, new).

        ``users`` and ``recent_codes`` (needed with a history) are the sessions' listeners and
        their recent plays' codes before the play.
        """
        size = self.response_model.hidden_size
        gate_input = self._gate_table[tracks, responses]
        if self.history is not None:
            gate_input = gate_input + self.history.familiarity(users, tracks, recent_codes) @ self._history_gates
        gate_hidden = hidden @ self._w_hh
        gate_hidden += self._b_hh
        reset_update = expit(gate_input[:, : 2 * size] + gate_hidden[:, : 2 * size])
        candidate = np.tanh(gate_input[:, 2 * size :] + reset_update[:, :size] * gate_hidden[:, 2 * size :])
        return candidate + reset_update[:, size:] * (hidden - candidate)

    def torch_response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """:meth:`response_probs` through the torch module on ``device``, whatever the batch size."""
        return _members_mean(self.torch_member_response_probs(state, tracks))

    @torch.inference_mode()
    def torch_member_response_probs(self, state: SessionState, tracks: np.ndarray) -> np.ndarray:
        """:meth:`member_response_probs` through the torch module on ``device``, whatever the batch size."""
        mlp = self.response_model.mlp_size
        context = torch.as_tensor(state["context"], device=self.device)
        tracks = np.maximum(tracks, 0)
        tracks_t = torch.as_tensor(tracks, device=self.device)
        history = None
        if self.history is not None:
            familiarity = self.history.familiarity(state["users"][:, None], tracks, state["recent_codes"][:, None])
            history = torch.as_tensor(familiarity, device=self.device)
        logits = self.response_model.score(
            context[:, :mlp], context[:, mlp:], self._torch_tracks[tracks_t], history, members=True
        )
        return torch.softmax(logits[..., list(self.members), :].double(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def _torch_step(
        self,
        hidden: np.ndarray,
        tracks: np.ndarray,
        responses: np.ndarray,
        users: np.ndarray | None = None,
        recent_codes: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`_numpy_step` through the torch module (``users`` and ``recent_codes`` needed with a history)."""
        tracks_t = torch.as_tensor(tracks, device=self.device)
        history = None
        if self.history is not None:
            history = torch.as_tensor(self.history.familiarity(users, tracks, recent_codes), device=self.device)
        out = self.response_model.step(
            torch.as_tensor(hidden, device=self.device),
            self._torch_tracks[tracks_t],
            torch.as_tensor(responses, device=self.device),
            history,
        )
        return out.cpu().numpy()


class MemberBlocks:
    """A weight from the members' units to the members' units, kept as its diagonal blocks.

    Independent members (:func:`~world_model.user_model.member_blocks`) have block-diagonal
    weights whose off-block entries are zero; multiplying by the blocks alone gives the same
    numbers (within float rounding) at a fraction of the cost, at any number of rows (a single
    session's play too: at one row the GRU's recurrent product takes 4 µs by its blocks against
    15 µs dense). ``x @ blocks`` works as ``x @ dense`` does (numpy arrays and torch tensors defer
    to :meth:`__rmatmul__`), so the kernels read the same either way.

    The dense weight's columns come in groups (e.g. the GRU's three gates), each holding every
    member's units in member order; ``groups`` gives one member's width in each.

    Args:
        dense: ``(E * a, sum_g E * groups[g])`` the block-diagonal weight (rows: members' units).
        members: ``E``.
        groups: one member's number of columns in each group.
    """

    __array_ufunc__ = None  # numpy defers ``array @ self`` to __rmatmul__

    def __init__(self, dense: np.ndarray, members: int, groups: list[int]) -> None:
        rows = dense.shape[0] // members
        starts = np.cumsum([0] + [members * width for width in groups])[:-1]
        self.blocks = np.ascontiguousarray(
            np.stack(
                [
                    np.concatenate(
                        [
                            dense[e * rows : (e + 1) * rows, start + e * width : start + (e + 1) * width]
                            for start, width in zip(starts, groups, strict=True)
                        ],
                        axis=1,
                    )
                    for e in range(members)
                ]
            )
        )
        self.groups = groups

    def __rmatmul__(self, inputs: Any) -> Any:
        members, rows, _ = self.blocks.shape
        lead = inputs.shape[:-1]
        count = math.prod(lead)
        # Each member's product, (E, n, sum(groups)): member by member, each member's groups side
        # by side; each group is then written to its columns of the dense product's order.
        by_member = inputs.reshape(count, members, rows).swapaxes(0, 1) @ self.blocks
        shape = (count, members * by_member.shape[2])
        if isinstance(by_member, torch.Tensor):
            out = by_member.new_empty(shape)
        else:
            out = np.empty(shape, dtype=by_member.dtype)
        start = 0
        for width in self.groups:
            columns = out[:, members * start : members * (start + width)]
            # A view (its last axis split in two; ``view`` would refuse to copy), so the assignment lands in ``out``.
            split = (count, members, width)
            target = columns.view(split) if isinstance(columns, torch.Tensor) else columns.reshape(split)
            target[...] = by_member[:, :, start : start + width].swapaxes(0, 1)
            start += width
        return out.reshape(*lead, out.shape[1])

    def to(self, device: str | torch.device) -> MemberBlocks:
        """A copy whose blocks are a float32 tensor on ``device`` (for torch inputs)."""
        moved = copy.copy(self)
        moved.blocks = torch.as_tensor(self.blocks, dtype=torch.float32, device=device)
        return moved


def _member_weight(dense: np.ndarray, members: int, groups: list[int]) -> np.ndarray | MemberBlocks:
    """``dense`` as the kernels multiply by it: contiguous, or its :class:`MemberBlocks` for independent members."""
    return np.ascontiguousarray(dense) if members == 1 else MemberBlocks(dense, members, groups)


def _on_device(weight: np.ndarray | MemberBlocks, device: str | torch.device) -> torch.Tensor | MemberBlocks:
    """A numpy kernel's weight for the device model."""
    if isinstance(weight, MemberBlocks):
        return weight.to(device)
    return torch.as_tensor(np.ascontiguousarray(weight), dtype=torch.float32, device=device)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of float64 ``logits``, in place: every numpy path's (they agree bit for bit)."""
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def _members_mean(member_probs: np.ndarray) -> np.ndarray:
    """``(..., 3)``: the mean over the member axis of ``(..., E, 3)`` probabilities (one member: its own, exactly)."""
    return np.add.reduce(member_probs, axis=-2) / member_probs.shape[-2]


class LearnedSingleSession:
    """One session of the learned world, stepped by one fused call per play (:class:`musicenv.world.SingleSession`).

    :meth:`play` scores the track, draws the response and advances the GRU in one go, on the
    session's own rows (1-D arrays) with the batched path's operations in the same order, so the
    numbers are bit for bit those of ``response_probs`` + ``advance`` on a batch of one (tested;
    that is what lets the single environment and a vector environment of one replay each other
    exactly) at about half their cost; the
    counters the session-end model reads are Python numbers, and :meth:`leave_prob` asks its scalar
    form. The batched state is assembled only when :attr:`state` is read.

    Args:
        model: the :class:`LearnedSessionModel` whose tables it reads.
        state: the session so far, a batch of one (``initial_state`` or a restored snapshot).

    """

    def __init__(self, model: LearnedSessionModel, state: SessionState) -> None:
        if len(state["users"]) != 1:
            raise ValueError(f"a single session needs a state of one session, got {len(state['users'])}")
        self.model = model
        self._users = state["users"]
        self._user = int(self._users[0])
        self._hidden = state["hidden"][0]
        self._static_context = state["static_context"][0]
        self._context = state["context"][0]
        self._position = int(state["position"][0])
        self._skip_run = int(state["skip_run"][0])
        self._last_response = int(state["last_response"][0])
        self._counts = [int(count) for count in state["response_counts"][0]]
        self._recent = [int(code) for code in state["recent_codes"][0]]
        self._member_probs: np.ndarray | list[float] = np.full((model.ensemble_size, 3), np.nan)

    def play(self, track: int, uniform: float) -> tuple[list[float], int]:
        """Score ``track`` (a track index, not padding), draw the response at ``uniform`` (inverse CDF), advance.

        Returns the members' mean probabilities, from which the response is drawn; each member's
        are in :attr:`last_member_probs`.
        """
        if track < 0:
            raise ValueError(f"track must be a track index, got {track} (padding is never played)")
        model = self.model
        mlp = model.response_model.mlp_size
        row = model._track_table[track]
        familiarity = None
        if model.history is not None:
            # One lookup serves the head and the GRU step.
            familiarity = self._familiarity(track)
            row = row + familiarity @ model._history_w
        context = self._context
        pre = row[:mlp] + context[:mlp]
        pre += (row[mlp:] * context[mlp:]) @ model._interaction
        np.maximum(pre, 0.0, out=pre)
        hidden = pre @ model._hidden_layer_w
        hidden += model._hidden_layer_b
        np.maximum(hidden, 0.0, out=hidden)
        logits = (hidden @ model._output_w + model._output_b).astype(np.float64)
        if len(logits) == 3:
            # One member: the softmax as the batched path computes it (numpy's exp, sums left to
            # right) on Python numbers, a third of the cost of numpy's reductions on three numbers.
            exps = np.exp(logits - max(logits.tolist())).tolist()
            total = exps[0] + exps[1] + exps[2]
            probs = [exps[0] / total, exps[1] / total, exps[2] / total]
            self._member_probs = probs
        else:
            self._member_probs = _softmax(logits.reshape(-1, 3))
            probs = _members_mean(self._member_probs).tolist()
        response = draw_response(probs[0], probs[1], uniform)

        self._position += 1
        # The next play's head base and query (LearnedSessionModel._context, for one session).
        position_rows = model._position_rows
        position = self._position
        context = self._static_context + (
            position_rows[position] if position < len(position_rows) else np.float32(position + 1) * model._position_w
        )
        if model.response_model.sequential:
            self._hidden = self._gru_step(track, response, familiarity)
            context += self._hidden @ model._hidden_w
        self._context = context
        self._skip_run = self._skip_run + 1 if response == SKIP else 0
        self._last_response = response
        self._counts[response] += 1
        self._recent = [self._played_code(track), *self._recent[:-1]]
        return probs, response

    def _played_code(self, track: int) -> int:
        """The play code of ``track`` (``-1`` for a model without a history)."""
        history = self.model.history
        return -1 if history is None else int(history.play_codes[track])

    def _familiarity(self, track: int) -> np.ndarray:
        """``ListeningHistory.familiarity`` of the listener with ``track`` now, bit for bit, on Python numbers."""
        history = self.model.history
        code = int(history.play_codes[track])  # a code >= 0: never the -1 of an empty slot
        artist, genre = code >> GENRE_BITS, code & GENRE_MASK
        mask = 0  # musicenv.familiarity.match_masks, on Python numbers
        for j, played in enumerate(self._recent):
            if played >= 0:
                mask |= ((played >> GENRE_BITS) == artist) << j | ((played & GENRE_MASK) == genre) << (RECENT_PLAYS + j)
        return np.array(history.pair_features(self._user, track) + SESSION_COLUMNS[mask].tolist(), dtype=np.float32)

    def _gru_step(self, track: int, response: int, familiarity: np.ndarray | None) -> np.ndarray:
        """LearnedSessionModel._numpy_step for one session (``familiarity``: the played track's history row)."""
        model = self.model
        size = model.response_model.hidden_size
        gate_input = model._gate_table[track, response]
        if model.history is not None:
            gate_input = gate_input + familiarity @ model._history_gates
        gate_hidden = self._hidden @ model._w_hh
        gate_hidden += model._b_hh
        reset_update = expit(gate_input[: 2 * size] + gate_hidden[: 2 * size])
        candidate = np.tanh(gate_input[2 * size :] + reset_update[:size] * gate_hidden[2 * size :])
        return candidate + reset_update[size:] * (self._hidden - candidate)

    def leave_prob(self) -> float:
        """The session-end model's probability that the listener leaves now."""
        return self.model.session_end.leave_prob(self._position, self._skip_run, self._last_response, self._counts)

    @property
    def last_member_probs(self) -> np.ndarray:
        """``(E, 3)`` float64: each member's probabilities of the last play (NaN before the first),
        for the environments' disagreement; their mean is what :meth:`play` returned."""
        return np.asarray(self._member_probs, dtype=np.float64).reshape(-1, 3)

    @property
    def state(self) -> SessionState:
        """The batched state of this session (a batch of one), as ``advance`` would have returned it."""
        return {
            "users": self._users,
            "hidden": self._hidden[None],
            "static_context": self._static_context[None],
            "context": self._context[None],
            "position": np.array([self._position]),
            "skip_run": np.array([self._skip_run]),
            "last_response": np.array([self._last_response]),
            "response_counts": np.array([self._counts]),
            "recent_codes": np.array([self._recent], dtype=np.int64),
        }


class TorchLearnedSessionModel:
    """The learned world's session model on tensors on ``device`` (:class:`~musicenv.torch_session.TorchSessionModel`).

    What the vector env's tensor path asks of the learned world
    (:meth:`LearnedSessionModel.torch_session_model`): the numpy path's equations on its
    precomputed tables, moved to ``device`` (per-track tables of the head's first layer and key,
    the listener's logged history of each track found by ``searchsorted`` in the sorted pair keys,
    one GRU step per play, the session-end logit read from its tables), so that a step of
    thousands of sessions runs on a GPU with nothing crossing to the host. It agrees with the
    other paths within 1e-5 (tested).

    Args:
        model: the learned world's :class:`LearnedSessionModel`.
        device: where the state lives and the model runs.

    The state has the keys of the numpy model (``users``, ``hidden``, ``static_context``,
    ``context``, ``position``, ``skip_run``, ``last_response``, ``response_counts``,
    ``recent_codes``), so
    :meth:`to_numpy` / :meth:`from_numpy` convert one into the other exactly.

    Like the numpy model it is an ensemble: :meth:`response_probs` is the members' mean,
    :meth:`member_response_probs` each member's ``(B, K, E, 3)`` tensor, and :meth:`member` a
    member alone (an object, not an argument of the calls, so that the tensor environment's
    ``"sample"`` responses hold one per episode as the other environments do).
    """

    def __init__(self, model: LearnedSessionModel, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.model = model
        network = model.response_model
        self.sequential = bool(network.sequential)
        self.shuffled_flag = bool(network.shuffled_flag)
        self.mlp_size = int(network.mlp_size)

        def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=self.device)

        # The numpy path's precomputed tables (LearnedSessionModel._compile), on the device.
        self.user_features = tensor(model.user_features)
        self.track_table = tensor(model._track_table)
        self.interaction = _on_device(model._interaction, self.device)
        self._head_tensors()
        self.static_w, self.static_b = tensor(model._static_w), tensor(model._static_b)
        self.position_w = tensor(model._position_w)
        history_dim = int(network.history_dim)
        # The listeners' logged history (world_model.history.ListeningHistory) as sorted pair keys.
        self.history_keys: torch.Tensor | None = None
        if model.history is not None:
            self.history_keys = torch.as_tensor(np.asarray(model.history.keys, np.int64), device=self.device)
            self.history_counts = torch.as_tensor(np.asarray(model.history.counts, np.float64), device=self.device)
            self.history_n_tracks = int(model.history.n_tracks)
            self.history_n_artists = int(model.history.n_artists)
            self.history_track_artists = torch.as_tensor(model.history.track_artists, device=self.device)
            self.history_play_codes = torch.as_tensor(model.history.play_codes, device=self.device)
            self.history_artist_keys = torch.as_tensor(model.history.artist_keys, device=self.device)
            self.history_artist_counts = torch.as_tensor(
                np.asarray(model.history.artist_counts, np.float64), device=self.device
            )
            self.history_w = tensor(model._history_w)
        else:
            self.history_play_codes = torch.full((len(model.track_features),), -1, device=self.device)
        if self.sequential:
            self.initial_w, self.initial_b = tensor(model._initial_w), tensor(model._initial_b)
            self.hidden_w = _on_device(model._hidden_w, self.device)
            self.w_hh, self.b_hh = _on_device(model._w_hh, self.device), tensor(model._b_hh)
            gru = network.gru
            d = network.track_dim
            w_ih = gru.weight_ih_l0.detach().cpu().numpy()
            # Each track's share of the GRU's input gates (n_tracks, 3H) and each response's (3, 3H):
            # the numpy path's (n_tracks, 3, 3H) table without the factor of 3 in memory.
            self.track_gates = tensor(model.track_features @ w_ih[:, :d].T + gru.bias_ih_l0.detach().cpu().numpy())
            self.history_gates = tensor(w_ih[:, d : d + history_dim].T)
            self.response_gates = tensor(w_ih[:, d + history_dim :].T)
            self.hidden_size = int(network.hidden_size)
        session_end = model.session_end
        self.run_table = tensor(session_end._run_table, torch.float64)
        self.position_table = tensor(session_end._position_table, torch.float64)
        self.last_table = tensor(session_end._last_table, torch.float64)
        self.share_weights = tensor(session_end._share_weights, torch.float64)
        self.table_last = len(session_end._run_table) - 1

    def _head_tensors(self) -> None:
        """The model's head tables (its members', :meth:`LearnedSessionModel._select_members`) on the device."""
        model = self.model
        self.hidden_layer_w = _on_device(model._hidden_layer_w, self.device)
        self.hidden_layer_b = torch.as_tensor(model._hidden_layer_b, device=self.device)
        self.output_w = torch.as_tensor(model._output_w, device=self.device)
        self.output_b = torch.as_tensor(model._output_b, device=self.device)

    def initial_state(self, users: torch.Tensor, contexts: Contexts) -> TorchSessionState:
        users = users.to(self.device, torch.int64)
        n = len(users)
        context = context_feature_tensor(
            torch.as_tensor(contexts.context_type, device=self.device),
            torch.as_tensor(contexts.hour, device=self.device),
        )
        parts = [self.user_features[users], context]
        if self.shuffled_flag:
            parts.append(torch.ones((n, 1), dtype=torch.float32, device=self.device))
        static = torch.cat(parts, dim=1)
        if self.sequential:
            hidden = torch.tanh(static @ self.initial_w + self.initial_b)
        else:
            hidden = torch.zeros((n, int(self.model.response_model.hidden_size)), device=self.device)
        position = torch.zeros(n, dtype=torch.int64, device=self.device)
        static_context = static @ self.static_w + self.static_b
        return {
            "users": users,
            "hidden": hidden,
            "static_context": static_context,
            "context": self._context(static_context, hidden, position),
            "position": position,
            "skip_run": torch.zeros(n, dtype=torch.int64, device=self.device),
            "last_response": torch.full((n,), -1, dtype=torch.int64, device=self.device),
            "response_counts": torch.zeros((n, 3), dtype=torch.int64, device=self.device),
            "recent_codes": torch.full((n, RECENT_PLAYS), -1, dtype=torch.int64, device=self.device),
        }

    @property
    def ensemble_size(self) -> int:
        """How many members answer (:attr:`LearnedSessionModel.ensemble_size`)."""
        return self.model.ensemble_size

    def member(self, index: int) -> TorchLearnedSessionModel:
        """Member ``index`` alone on the same device, sharing every table but the head's
        (:meth:`LearnedSessionModel.member`; the tensor environment's ``"sample"`` responses).

        Raises:
            IndexError: ``index`` is not a member.
        """
        alone = copy.copy(self)
        alone.model = self.model.member(index)
        alone._head_tensors()
        return alone

    def response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        """``(B, K, 3)`` float64 probabilities of ``tracks`` ``(B, K)`` next: the members' mean."""
        return self.member_response_probs(state, tracks).mean(dim=-2)

    def member_response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        """``(B, K, E, 3)`` float64: each member's probabilities of ``tracks`` ``(B, K)`` next."""
        mlp = self.mlp_size
        tracks = tracks.clamp(min=0)
        rows = self.track_table[tracks]
        if self.history_keys is not None:
            familiarity = self.familiarity(state["users"][:, None], tracks, state["recent_codes"][:, None])
            rows = rows + familiarity @ self.history_w
        context = state["context"][:, None, :]
        pre = rows[..., :mlp] + context[..., :mlp] + (rows[..., mlp:] * context[..., mlp:]) @ self.interaction
        hidden = torch.relu(torch.relu(pre) @ self.hidden_layer_w + self.hidden_layer_b)
        logits = hidden @ self.output_w + self.output_b
        return torch.softmax(logits.double().unflatten(-1, (-1, 3)), dim=-1)

    def advance(self, state: TorchSessionState, tracks: torch.Tensor, responses: torch.Tensor) -> TorchSessionState:
        tracks = tracks.clamp(min=0)
        responses = responses.long()
        hidden = state["hidden"]
        if self.sequential:
            hidden = self._gru_step(hidden, tracks, responses, state["users"], state["recent_codes"])
        position = state["position"] + 1
        skipped = responses == SKIP
        return {
            "users": state["users"],
            "hidden": hidden,
            "static_context": state["static_context"],
            "context": self._context(state["static_context"], hidden, position),
            "position": position,
            "skip_run": (state["skip_run"] + 1) * skipped,
            "last_response": responses,
            "response_counts": state["response_counts"]
            + torch.nn.functional.one_hot(responses.clamp(min=0), 3) * (responses >= 0)[:, None],
            "recent_codes": torch_advance_recent_codes(state["recent_codes"], self.history_play_codes[tracks]),
        }

    def leave_probs(self, state: TorchSessionState) -> torch.Tensor:
        last = self.table_last
        counts = state["response_counts"].to(torch.float64)
        weights = self.share_weights
        logits = (
            self.run_table[state["skip_run"].clamp(max=last)]
            + self.position_table[state["position"].clamp(max=last)]
            + self.last_table[state["last_response"] + 1]
            + (counts[:, 0] * weights[0] + counts[:, 1] * weights[1] + counts[:, 2] * weights[2])
            / counts.sum(dim=1).clamp(min=1.0)
        )
        return torch.sigmoid(logits)

    def _context(self, static_context: torch.Tensor, hidden: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        context = static_context + (position + 1).to(torch.float32)[:, None] * self.position_w
        if self.sequential:
            context = context + hidden @ self.hidden_w
        return context

    def history_features(self, users: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
        """``ListeningHistory.features`` on the device: ``(..., N_LOGGED)`` float32 of (listener, track) pairs."""
        if self.history_keys is None:
            raise ValueError("this model reads no listening history")
        shape = torch.broadcast_shapes(users.shape, tracks.shape)
        users, tracks = users.long().expand(shape), tracks.long().expand(shape)
        counts = _lookup(self.history_keys, self.history_counts, users * self.history_n_tracks + tracks)
        artist_keys = users * self.history_n_artists + self.history_track_artists[tracks]
        artist_counts = _lookup(self.history_artist_keys, self.history_artist_counts, artist_keys)
        total, artist_total = counts.sum(dim=-1), artist_counts.sum(dim=-1)
        share = counts / total.clamp(min=1.0)[..., None]
        artist_share = artist_counts / artist_total.clamp(min=1.0)[..., None]
        features = torch.stack(
            [
                (total > 0).to(torch.float64),
                torch.log1p(total),
                share[..., 2],
                share[..., 0],
                torch.log1p(artist_total),
                artist_share[..., 2],
                artist_share[..., 0],
            ],
            -1,
        )
        return features.to(torch.float32)

    def familiarity(self, users: torch.Tensor, tracks: torch.Tensor, recent_codes: torch.Tensor) -> torch.Tensor:
        """``ListeningHistory.familiarity`` on the device: :meth:`history_features`, then the in-session columns."""
        in_session = torch_session_familiarity(self.history_play_codes[tracks.long()], recent_codes)
        return torch.cat([self.history_features(users, tracks), in_session], dim=-1)

    def _gru_step(
        self,
        hidden: torch.Tensor,
        tracks: torch.Tensor,
        responses: torch.Tensor,
        users: torch.Tensor,
        recent_codes: torch.Tensor,
    ) -> torch.Tensor:
        """One GRU step (PyTorch's GRU equations, gates in its order: reset, update, new)."""
        size = self.hidden_size
        gate_input = self.track_gates[tracks] + self.response_gates[responses.clamp(min=0)]
        if self.history_keys is not None:
            gate_input = gate_input + self.familiarity(users, tracks, recent_codes) @ self.history_gates
        gate_hidden = hidden @ self.w_hh + self.b_hh
        reset_update = torch.sigmoid(gate_input[:, : 2 * size] + gate_hidden[:, : 2 * size])
        candidate = torch.tanh(gate_input[:, 2 * size :] + reset_update[:, :size] * gate_hidden[:, 2 * size :])
        return candidate + reset_update[:, size:] * (hidden - candidate)

    def to_numpy(self, state: TorchSessionState) -> dict[str, np.ndarray]:
        """The state as the numpy model's (same keys and dtypes)."""
        return {key: value.cpu().numpy() for key, value in state.items()}

    def from_numpy(self, state: dict[str, np.ndarray]) -> TorchSessionState:
        """A numpy model's state on the device."""
        return {key: torch.as_tensor(np.asarray(value), device=self.device) for key, value in state.items()}


def _lookup(sorted_keys: torch.Tensor, counts: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` float64 counts of ``keys`` in ``sorted_keys`` (zeros where absent), found on the device."""
    if len(sorted_keys) == 0:
        return torch.zeros((*keys.shape, 3), dtype=torch.float64, device=keys.device)
    where = torch.searchsorted(sorted_keys, keys.contiguous()).clamp(max=len(sorted_keys) - 1)
    return counts[where] * (sorted_keys[where] == keys)[..., None]


def save_models(folder: str | os.PathLike[str], session_model: LearnedSessionModel) -> Path:
    """Save a :class:`LearnedSessionModel` atomically to ``folder``.

    Layout: ``response_model.pt`` (the torch state dict), ``response_model.json`` (its
    constructor arguments), ``session_end.json``, ``features.npz`` (the track and user feature
    tables and, when the model reads it, the listening history), ``feature_stats.json`` (when
    known) and ``manifest.json`` with every file's
    checksum (:mod:`musicenv.artifacts`). No pickled objects: :func:`load_models` reads the state
    dict with ``weights_only=True``.
    """
    folder = Path(folder)
    with atomic_folder(folder, MODELS_FORMAT) as staging:
        model = session_model.response_model
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, staging / "response_model.pt")
        (staging / "response_model.json").write_text(json.dumps(model.config, indent=2))
        session_model.session_end.save(staging / "session_end.json")
        history = {} if session_model.history is None else session_model.history.to_arrays()
        np.savez(
            staging / "features.npz",
            track_features=session_model.track_features,
            user_features=session_model.user_features,
            **history,
        )
        if session_model.feature_stats is not None:
            (staging / "feature_stats.json").write_text(json.dumps(session_model.feature_stats.to_dict(), indent=2))
        write_manifest(
            staging,
            MODELS_FORMAT,
            MODELS_FORMAT_VERSION,
            {"response_model": model.config, "numpy_threshold": session_model.numpy_threshold},
        )
    return folder


def load_models(folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> LearnedSessionModel:
    """Load what :func:`save_models` wrote, checking the manifest and every checksum first.

    Raises:
        ArtifactError: the folder is not a saved model set, was written by another format
            version, or a file is missing, corrupted or unreadable (the message names it).
    """
    folder = Path(folder)
    manifest = read_manifest(folder, MODELS_FORMAT, MODELS_FORMAT_VERSION)
    current = "response_model.json"
    try:
        model = UserResponseModel(**json.loads((folder / current).read_text()))
        current = "response_model.pt"
        model.load_state_dict(torch.load(folder / current, map_location="cpu", weights_only=True))
        current = "session_end.json"
        session_end = SessionEndModel.load(folder / current)
        current = "features.npz"
        with np.load(folder / current) as arrays:
            track_features, user_features = arrays["track_features"], arrays["user_features"]
            history = ListeningHistory.from_arrays(arrays) if "history_keys" in arrays.files else None
        if model.history_dim and history is None:
            raise ValueError("the response model reads listening history but the file has none")
        current = "feature_stats.json"
        stats = (
            FeatureStats.from_dict(json.loads((folder / current).read_text())) if (folder / current).is_file() else None
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{folder / current}: cannot be read ({error})") from error
    return LearnedSessionModel(
        model,
        session_end,
        track_features,
        user_features,
        feature_stats=stats,
        numpy_threshold=manifest["config"].get("numpy_threshold", DEFAULT_NUMPY_THRESHOLD),
        device=device,
        history=history,
    )
