"""The baselines any playlist paper compares against, each an :class:`~agents.base.Agent`.

====================  =====================================================================
``random``            a uniformly random valid slot (seeded)
``popular``           the most played track (the ``"popularity"`` feature block)
``als``               collaborative filtering: user ALS vector · candidate ALS vector
``content``           cosine between the candidate's and the session's mean acoustic features
``greedy_learned``    highest expected reward of the next play under the world's learned
                      user-response model (myopic; the paper's strongest baseline)
``greedy_truth``      the same under the ground-truth model, read through ``oracle``
                      (ground-truth run only; the upper reference for myopic play)
====================  =====================================================================

All but the last two score candidates from the observation alone (the world's feature layouts
say which columns hold which block), so they run unchanged on any world whose features carry
those blocks. Ties go to the lowest slot, i.e. to the retrieval's ranking (pools are best first).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent, Observation, masked_argmax, read_json, register_agent, write_json
from musicenv.rewards import RewardConfig
from musicenv.world import World


def feature_block(world: World, name: str, of: str = "track") -> slice:
    """The columns of feature block ``name`` in the world's ``of`` (``"track"`` / ``"user"``) features.

    Raises:
        ValueError: the world's features have no such block (the message lists those it has).
    """
    layout = getattr(world, f"{of}_feature_layout", None)
    if layout is None:
        raise ValueError(f"the {type(world).__name__} world names no {of} feature blocks ({of}_feature_layout)")
    if name not in layout:
        raise ValueError(f"the world's {of} features have no {name!r} block; they have {sorted(layout)}")
    block = layout[name]
    return block if isinstance(block, slice) else slice(*block)


@register_agent
class RandomAgent(Agent):
    """A uniformly random valid slot per session, from its own seeded stream.

    One uniform is drawn per row, in row order, so a batch of N acts as N single calls would.
    """

    name = "random"

    def __init__(self, world: World, seed: int = 0) -> None:
        super().__init__(world)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        mask = obs["action_mask"].astype(bool)
        valid = mask.sum(axis=1)
        if not valid.all():
            raise ValueError("an observation's action_mask allows no slot (is the session already over?)")
        picks = np.floor(self.rng.random(len(mask)) * valid).astype(np.int64)
        # Slot of the pick-th allowed entry of each row.
        return (np.cumsum(mask, axis=1) <= picks[:, None]).sum(axis=1).astype(np.int64)

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _save_state(self, folder: Path) -> None:
        write_json(folder / "rng.json", self.rng.bit_generator.state)

    def _load_state(self, folder: Path) -> None:
        self.rng.bit_generator.state = read_json(folder / "rng.json")


@register_agent
class MostPopularAgent(Agent):
    """The candidate with the highest popularity feature (plays in the world's logs)."""

    name = "popular"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.popularity = feature_block(world, "popularity")

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        return masked_argmax(obs["candidates"][..., self.popularity].sum(axis=-1), obs["action_mask"])


def als_scores(obs: Observation, user_als: slice, track_als: slice) -> np.ndarray:
    """``(N, M)`` dot products of each user's ALS vector with their candidates' ALS vectors."""
    return np.einsum("nf,nmf->nm", obs["user"][:, user_als], obs["candidates"][..., track_als])


@register_agent
class ALSAgent(Agent):
    """Collaborative filtering: the candidate whose ALS vector best matches the listener's.

    This is the retrieval stage's own ranking signal (Hu, Koren & Volinsky 2008) used as a
    policy: it ignores the session so far.
    """

    name = "als"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.user_als = feature_block(world, "als", of="user")
        self.track_als = feature_block(world, "als")

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        return masked_argmax(als_scores(obs, self.user_als, self.track_als), obs["action_mask"])


@register_agent
class ContentSimilarityAgent(Agent):
    """The candidate that sounds most like the session so far.

    Score: cosine between the candidate's acoustic block and the mean acoustic block of the
    tracks played so far (all of them, whatever their response: a content recommender sees what
    it played). On a session's first pick there is nothing to compare with, and it falls back to
    the ALS score, the most personal signal the observation holds.
    """

    name = "content"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.acoustic = feature_block(world, "acoustic")
        self.user_als = feature_block(world, "als", of="user")
        self.track_als = feature_block(world, "als")

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        mask = obs["history_mask"].astype(np.float32)
        played = (obs["history"][..., self.acoustic] * mask[..., None]).sum(axis=1)
        count = mask.sum(axis=1)
        centroid = played / np.maximum(count, 1.0)[:, None]
        candidates = obs["candidates"][..., self.acoustic]
        cosine = np.einsum("nd,nmd->nm", centroid, candidates) / (
            np.linalg.norm(candidates, axis=-1) * np.linalg.norm(centroid, axis=-1, keepdims=True) + 1e-8
        )
        scores = np.where((count > 0)[:, None], cosine, als_scores(obs, self.user_als, self.track_als))
        return masked_argmax(scores, obs["action_mask"])


def learned_response_probs(model: Any, obs: Observation, device: str | torch.device = "cpu") -> np.ndarray:
    """``(N, M, 3)`` (skip, listen, complete) probabilities of every candidate under a learned
    :class:`~world_model.user_model.UserResponseModel`, computed from the observation's arrays.

    The model's GRU reads the ``"history"`` rows (track features, response one-hot) as the
    learned world's environment feeds it, from the state the user and context give it; each
    candidate is scored as the play at the next position.
    """
    tensors = {key: torch.as_tensor(obs[key], device=device) for key in ("user", "context", "history", "candidates")}
    history = tensors["history"].float()
    mask = torch.as_tensor(obs["history_mask"], device=device) > 0
    responses = torch.where(mask, history[..., -3:].argmax(dim=-1), -1)
    static = model.static_input(tensors["user"].float(), tensors["context"].float())
    lengths = mask.sum(dim=1)
    hidden = model.encode(static, history[..., :-3], responses)[torch.arange(len(lengths), device=device), lengths]
    logits = model(static, hidden, lengths + 1, tensors["candidates"].float())
    return torch.softmax(logits, dim=-1).double().cpu().numpy()


DEFAULT_RESPONSE_VALUES = tuple(float(v) for v in RewardConfig().response_values)
"""The env's default reward of (skip, listen, complete): what the greedy agents maximise."""


@register_agent
class GreedyLearnedAgent(Agent):
    """Myopic play by the learned world's user-response model: the highest expected reward now.

    The world's :class:`~world_model.user_model.UserResponseModel` is run on the observation's
    own arrays (:func:`learned_response_probs`), so this agent sees exactly what the AH-DQN sees
    and adds a perfect knowledge of the learned model's immediate probabilities. The score is the
    expected reward of the next play, ``probs · response_values``; with a reward that counts only
    completions it is the highest P(complete). It is the paper's strongest baseline: what the
    learned world rewards one step at a time, blind to what a play does to the rest of the
    session. Evaluated in the ground-truth world it pays the same sim-to-real gap as any agent
    trained in the learned world.

    Args:
        world: a learned world (``world.session_model.response_model``).
        response_values: reward of (skip, listen, complete); default the env's default reward.
        device: where the model runs.
    """

    name = "greedy_learned"

    def __init__(
        self,
        world: World,
        response_values: tuple[float, float, float] | list[float] = DEFAULT_RESPONSE_VALUES,
        device: str = "cpu",
    ) -> None:
        super().__init__(world)
        model = getattr(world.session_model, "response_model", None)
        if model is None:
            raise ValueError(
                f"greedy_learned needs a learned world (session_model.response_model); "
                f"the {type(world).__name__} world has none"
            )
        # A copy on another device: moving the world's own model would move it under the env.
        same_device = next(model.parameters()).device == torch.device(device)
        self.model = model if same_device else copy.deepcopy(model).to(device)
        self.response_values = tuple(float(v) for v in response_values)
        self.device = device

    @torch.no_grad()
    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        probs = learned_response_probs(self.model, obs, self.device)
        return masked_argmax(probs @ np.asarray(self.response_values), obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {"response_values": list(self.response_values), "device": self.device}


@register_agent
class GreedyTruthAgent(Agent):
    """Myopic play by the ground-truth model: the highest true expected reward now.

    Reads the truth through ``oracle`` (``env.oracle`` of a ground-truth run), never through the
    observation. It is the upper reference for any myopic policy: the gap between it and
    ``greedy_learned`` is what the learned world's errors cost a greedy ranker.

    Args:
        world: the (learned) world the observations come from.
        response_values: reward of (skip, listen, complete); default the env's default reward.
    """

    name = "greedy_truth"
    needs_oracle = True

    def __init__(
        self,
        world: World,
        response_values: tuple[float, float, float] | list[float] = DEFAULT_RESPONSE_VALUES,
    ) -> None:
        super().__init__(world)
        self.response_values = tuple(float(v) for v in response_values)

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        if oracle is None:
            raise ValueError(
                "greedy_truth reads the ground-truth model through the env's oracle, which only a "
                "ground-truth run has: make the env with world='groundtruth' (or responder='groundtruth') "
                "and pass env.oracle to act()"
            )
        return masked_argmax(oracle.response_probs() @ np.asarray(self.response_values), obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {"response_values": list(self.response_values)}
