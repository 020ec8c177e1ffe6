"""``user_cf``: user-user collaborative filtering as a policy (the "socially similar" recommender).

The candidate that the listener's most correlated listeners played most, by Resnick's
correlation-weighted, mean-centred prediction; neighbours by Pearson correlation of play vectors,
found through an Annoy index over random projections of the centred vectors
(:mod:`world_model.user_cf` explains the method and why it is Pearson's). It ignores the session
so far, as the ALS agent does.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from agents.base import Agent, Observation, masked_argmax
from agents.baselines import RowLookup
from agents.world_logs import play_counts
from musicenv.world import World
from world_model.user_cf import UserNeighbours

_FITTED: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], UserNeighbours]] = weakref.WeakKeyDictionary()
"""Neighbours per world and (n_neighbours, seed): a deterministic fit, never modified, so shared."""


class UserCFAgent(Agent):
    """The valid candidate with the highest user-user CF score for the listener.

    Play vectors are the world's play counts (:func:`agents.world_logs.play_counts`: the
    retrieval stage's ``heard`` matrix of a learned world). The agent finds the listener and the
    candidates in the world's feature tables (:class:`~agents.baselines.RowLookup`); a listener
    or a track it cannot find scores 0, and ties go to the lowest slot (the retrieval's ranking).

    Args:
        world: the world whose observations the agent reads.
        n_neighbours: neighbours per listener.
        seed: seeds the projection and the Annoy index (and a simulated log, for a world without logs).
    """

    name = "user_cf"

    def __init__(self, world: World, n_neighbours: int = 50, seed: int = 0) -> None:
        super().__init__(world)
        self.n_neighbours = int(n_neighbours)
        self.seed = int(seed)
        self.tracks = RowLookup(world.track_features)
        self.users = RowLookup(world.user_features)
        fitted = _FITTED.setdefault(world, {})
        key = (self.n_neighbours, self.seed)
        if key not in fitted:
            fitted[key] = UserNeighbours.fit(play_counts(world, seed=self.seed), self.n_neighbours, seed=self.seed)
        self.neighbours = fitted[key]

    def act(self, obs: Observation, oracle: Any = None) -> np.ndarray:
        users = self.users(obs["user"])
        candidates = self.tracks(obs["candidates"])
        scores = self.neighbours.scores(np.maximum(users, 0))
        rows = np.arange(len(users))[:, None]
        picked = np.where((candidates >= 0) & (users >= 0)[:, None], scores[rows, np.maximum(candidates, 0)], 0.0)
        return masked_argmax(picked, obs["action_mask"])

    def config(self) -> dict[str, Any]:
        return {"n_neighbours": self.n_neighbours, "seed": self.seed}
