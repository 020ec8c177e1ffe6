"""Session models on torch tensors, for the vector environment's device path.

The vector environment's tensor path (:class:`musicenv.torch_vector_env.TorchListeningSessionVectorEnv`)
keeps every session's state as torch tensors on a ``device`` and asks its responder with tensors,
so that on a GPU a step of thousands of sessions runs without anything crossing to the host
(DESIGN.md, "Speed"). :func:`torch_session_model` gives it the right responder:

* :class:`TorchLearnedSessionModel`: the learned world's user-response and session-end models
  (:class:`world_model.learned_session.LearnedSessionModel`) computed in torch on ``device``:
  the same equations as that class's numpy path (per-track tables of the head's first layer and
  key, the listener's logged history of each track found by ``searchsorted`` in the sorted pair
  keys, one GRU step per play, the session-end logit read from its tables), agreeing with it
  within 1e-5 (tested).
* :class:`HostSessionModel`: any other :class:`~musicenv.world.SessionModel` (the ground truth
  in a sim-to-real run, a test's fake), called on the host with numpy arrays; its states are
  moved to and from ``device`` on every call. Correct everywhere, fast nowhere: it exists so the
  tensor path runs on every world, not to be quick.

Both speak the :class:`TorchSessionModel` protocol: the :class:`~musicenv.world.SessionModel`
methods with tensors in and out, a state being a ``dict[str, torch.Tensor]`` with the batch first.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from musicenv.world import CONTEXT_TYPES, Contexts, SessionModel

TorchSessionState = dict[str, torch.Tensor]


class TorchSessionModel(Protocol):
    """The :class:`~musicenv.world.SessionModel` methods on tensors on one ``device``."""

    device: torch.device

    def initial_state(self, users: torch.Tensor, contexts: Contexts) -> TorchSessionState:
        """State of B empty sessions; ``users`` ``(B,)`` int64, ``contexts`` numpy arrays of B (host draws)."""
        ...

    def response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        """``(B, K, 3)`` float64 probabilities for ``tracks`` ``(B, K)`` as the next play (padding is arbitrary)."""
        ...

    def advance(self, state: TorchSessionState, tracks: torch.Tensor, responses: torch.Tensor) -> TorchSessionState:
        """New state after each session played ``tracks`` ``(B,)`` with ``responses`` ``(B,)``."""
        ...

    def leave_probs(self, state: TorchSessionState) -> torch.Tensor:
        """``(B,)`` float64 probability that each listener leaves now."""
        ...


def context_feature_tensor(context_type: torch.Tensor, hour: torch.Tensor) -> torch.Tensor:
    """:func:`musicenv.world.context_features` on tensors: ``(B, 8)`` float32 on their device."""
    n = len(context_type)
    out = torch.zeros((n, len(CONTEXT_TYPES) + 2), dtype=torch.float32, device=context_type.device)
    out[torch.arange(n, device=out.device), context_type.long()] = 1.0
    # Python scalars are rounded to float32 as NumPy 2 rounds them: the same angle bits as the numpy path.
    angle = 2.0 * np.pi * hour.to(torch.float32) / 24.0
    out[:, len(CONTEXT_TYPES)] = torch.sin(angle)
    out[:, len(CONTEXT_TYPES) + 1] = torch.cos(angle)
    return out


class TorchLearnedSessionModel:
    """The learned world's session model in torch on ``device`` (see the module docstring).

    Args:
        model: the learned world's :class:`~world_model.learned_session.LearnedSessionModel`.
        device: where the state lives and the model runs.

    The state has the keys of the numpy model (``users``, ``hidden``, ``static_context``,
    ``context``, ``position``, ``skip_run``, ``last_response``, ``response_counts``), so
    :meth:`to_numpy` / :meth:`from_numpy` convert one into the other exactly.
    """

    _TABLES = (
        "_track_table",
        "_interaction",
        "_hidden_layer_w",
        "_hidden_layer_b",
        "_output_w",
        "_output_b",
        "_static_w",
        "_static_b",
        "_position_w",
    )
    """The numpy path's precomputed tables this class reads."""

    @classmethod
    def supports(cls, model: Any) -> bool:
        """Whether ``model`` is a learned model whose layout this class computes exactly."""
        network = model.response_model
        history = getattr(model, "history", None)
        if bool(getattr(network, "history_dim", 0)) != (history is not None):
            return False
        if history is not None and not all(hasattr(history, name) for name in ("keys", "counts", "n_tracks")):
            return False
        needed = cls._TABLES + (("_history_w",) if history is not None else ())
        if network.sequential:
            needed += ("_initial_w", "_initial_b", "_hidden_w", "_w_hh", "_b_hh")
        return all(hasattr(model, name) for name in needed)

    def __init__(self, model: Any, device: str | torch.device) -> None:
        if not self.supports(model):
            raise ValueError("this learned session model has a layout this class does not know: use HostSessionModel")
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
        self.interaction = tensor(model._interaction)
        self.hidden_layer_w, self.hidden_layer_b = tensor(model._hidden_layer_w), tensor(model._hidden_layer_b)
        self.output_w, self.output_b = tensor(model._output_w), tensor(model._output_b)
        self.static_w, self.static_b = tensor(model._static_w), tensor(model._static_b)
        self.position_w = tensor(model._position_w)
        history_dim = int(getattr(network, "history_dim", 0))
        # The listeners' logged history (world_model.history.ListeningHistory) as sorted pair keys.
        self.history_keys: torch.Tensor | None = None
        if getattr(model, "history", None) is not None:
            self.history_keys = torch.as_tensor(np.asarray(model.history.keys, np.int64), device=self.device)
            self.history_counts = torch.as_tensor(np.asarray(model.history.counts, np.float64), device=self.device)
            self.history_n_tracks = int(model.history.n_tracks)
            self.history_w = tensor(model._history_w)
        if self.sequential:
            self.initial_w, self.initial_b = tensor(model._initial_w), tensor(model._initial_b)
            self.hidden_w = tensor(model._hidden_w)
            self.w_hh, self.b_hh = tensor(model._w_hh), tensor(model._b_hh)
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
        }

    def response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        mlp = self.mlp_size
        tracks = tracks.clamp(min=0)
        rows = self.track_table[tracks]
        if self.history_keys is not None:
            rows = rows + self.history_features(state["users"][:, None], tracks) @ self.history_w
        context = state["context"][:, None, :]
        pre = rows[..., :mlp] + context[..., :mlp] + (rows[..., mlp:] * context[..., mlp:]) @ self.interaction
        hidden = torch.relu(torch.relu(pre) @ self.hidden_layer_w + self.hidden_layer_b)
        logits = hidden @ self.output_w + self.output_b
        return torch.softmax(logits.double(), dim=-1)

    def advance(self, state: TorchSessionState, tracks: torch.Tensor, responses: torch.Tensor) -> TorchSessionState:
        tracks = tracks.clamp(min=0)
        responses = responses.long()
        hidden = state["hidden"]
        if self.sequential:
            hidden = self._gru_step(hidden, tracks, responses, state["users"])
        position = state["position"] + 1
        skipped = responses == 0
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
        """``ListeningHistory.features`` on the device: ``(..., 4)`` float32 of (listener, track) pairs."""
        if self.history_keys is None:
            raise ValueError("this model reads no listening history")
        shape = torch.broadcast_shapes(users.shape, tracks.shape)
        keys = (users.long() * self.history_n_tracks + tracks.long()).expand(shape).contiguous()
        if len(self.history_keys) == 0:
            counts = torch.zeros((*shape, 3), dtype=torch.float64, device=self.device)
        else:
            where = torch.searchsorted(self.history_keys, keys).clamp(max=len(self.history_keys) - 1)
            found = self.history_keys[where] == keys
            counts = self.history_counts[where] * found[..., None]
        total = counts.sum(dim=-1)
        share = counts / total.clamp(min=1.0)[..., None]
        features = torch.stack([(total > 0).to(torch.float64), torch.log1p(total), share[..., 2], share[..., 0]], -1)
        return features.to(torch.float32)

    def _gru_step(
        self, hidden: torch.Tensor, tracks: torch.Tensor, responses: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """One GRU step (PyTorch's GRU equations, gates in its order: reset, update, new)."""
        size = self.hidden_size
        gate_input = self.track_gates[tracks] + self.response_gates[responses.clamp(min=0)]
        if self.history_keys is not None:
            gate_input = gate_input + self.history_features(users, tracks) @ self.history_gates
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


class HostSessionModel:
    """Any numpy :class:`~musicenv.world.SessionModel` behind the tensor interface (see the module docstring).

    Args:
        model: the session model (e.g. a :class:`~musicenv.responders.GroundTruthResponder`).
        device: where the returned tensors and states live.
    """

    def __init__(self, model: SessionModel, device: str | torch.device) -> None:
        self.model = model
        self.device = torch.device(device)

    def initial_state(self, users: torch.Tensor, contexts: Contexts) -> TorchSessionState:
        return self.from_numpy(self.model.initial_state(users.cpu().numpy(), contexts))

    def response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        probs = self.model.response_probs(self.to_numpy(state), tracks.cpu().numpy())
        return torch.as_tensor(np.asarray(probs, dtype=np.float64), device=self.device)

    def advance(self, state: TorchSessionState, tracks: torch.Tensor, responses: torch.Tensor) -> TorchSessionState:
        new = self.model.advance(self.to_numpy(state), tracks.cpu().numpy(), responses.cpu().numpy())
        return self.from_numpy(new)

    def leave_probs(self, state: TorchSessionState) -> torch.Tensor:
        probs = self.model.leave_probs(self.to_numpy(state))
        return torch.as_tensor(np.asarray(probs, dtype=np.float64), device=self.device)

    def to_numpy(self, state: TorchSessionState) -> dict[str, np.ndarray]:
        return {key: value.cpu().numpy() for key, value in state.items()}

    def from_numpy(self, state: dict[str, np.ndarray]) -> TorchSessionState:
        return {key: torch.as_tensor(np.array(value), device=self.device) for key, value in state.items()}


def torch_session_model(model: SessionModel, device: str | torch.device) -> TorchLearnedSessionModel | HostSessionModel:
    """The fastest tensor form of ``model``: in torch for the learned world's model, on the host otherwise.

    A learned model of a layout :class:`TorchLearnedSessionModel` does not know (a newer format)
    runs on the host, through :class:`HostSessionModel`.
    """
    from world_model.learned_session import LearnedSessionModel

    if isinstance(model, LearnedSessionModel) and TorchLearnedSessionModel.supports(model):
        return TorchLearnedSessionModel(model, device)
    return HostSessionModel(model, device)
