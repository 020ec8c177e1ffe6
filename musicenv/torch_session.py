"""Session models on torch tensors, for the vector environment's device path.

The vector environment's tensor path (:class:`musicenv.torch_vector_env.TorchListeningSessionVectorEnv`)
keeps every session's state as torch tensors on a ``device`` and asks its responder with tensors,
so that on a GPU a step of thousands of sessions runs without anything crossing to the host
(docs/design.md, "Speed"). :func:`torch_session_model` gives it the right responder:

* the model's own tensor form, when it offers one: a hook ``torch_session_model(device)`` on the
  session model (as ``single_session`` is the hook of the single environment's kernel). The
  learned world's model offers it
  (:class:`world_model.learned_session.TorchLearnedSessionModel`).
* :class:`HostSessionModel`: any other :class:`~musicenv.world.SessionModel` (the ground truth
  in a sim-to-real run, a test's fake), called on the host with numpy arrays; its states are
  moved to and from ``device`` on every call. Correct everywhere, fast nowhere: it exists so the
  tensor path runs on every world, not to be quick.

Both speak the :class:`TorchSessionModel` protocol: the :class:`~musicenv.world.SessionModel`
methods with tensors in and out, a state being a ``dict[str, torch.Tensor]`` with the batch first.
The tensor form of an ensemble (:class:`~musicenv.world.EnsembleSessionModel`) also has its
``member_response_probs``, ``(B, K, E, 3)`` on the device, which the environment asks only of a
responder of more than one member (its ``responses=`` modes and ``info["disagreement"]``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from musicenv.world import CONTEXT_TYPES, Contexts, SessionModel

TorchSessionState = dict[str, torch.Tensor]


class TorchSessionModel(Protocol):
    """The :class:`~musicenv.world.SessionModel` methods on tensors on one ``device``."""

    device: torch.device

    def to_numpy(self, state: TorchSessionState) -> dict[str, np.ndarray]:
        """The state as the numpy model's (same keys and dtypes), on the host."""
        ...

    def from_numpy(self, state: dict[str, np.ndarray]) -> TorchSessionState:
        """A numpy model's state on the device."""
        ...

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

    def member_response_probs(self, state: TorchSessionState, tracks: torch.Tensor) -> torch.Tensor:
        """``(B, K, E, 3)``: an ensemble's :meth:`~musicenv.world.EnsembleSessionModel.member_response_probs`."""
        probs = self.model.member_response_probs(self.to_numpy(state), tracks.cpu().numpy())  # type: ignore[attr-defined]
        return torch.as_tensor(np.asarray(probs, dtype=np.float64), device=self.device)

    def leave_probs(self, state: TorchSessionState) -> torch.Tensor:
        probs = self.model.leave_probs(self.to_numpy(state))
        return torch.as_tensor(np.asarray(probs, dtype=np.float64), device=self.device)

    def to_numpy(self, state: TorchSessionState) -> dict[str, np.ndarray]:
        return {key: value.cpu().numpy() for key, value in state.items()}

    def from_numpy(self, state: dict[str, np.ndarray]) -> TorchSessionState:
        return {key: torch.as_tensor(np.array(value), device=self.device) for key, value in state.items()}


def torch_session_model(model: SessionModel, device: str | torch.device) -> TorchSessionModel:
    """``model`` on tensors on ``device``: its own tensor form (the hook ``model.torch_session_model``), else the host.

    The learned world's model has the hook and runs in torch on ``device``; any other model runs on
    the host through :class:`HostSessionModel`.
    """
    own = getattr(model, "torch_session_model", None)
    if own is not None:
        return own(device)
    return HostSessionModel(model, device)
