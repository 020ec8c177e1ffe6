"""A replay buffer that stores sessions as indices; a sampled batch's inputs are rebuilt from them.

An observation of ``ListeningSession-v0`` carries the pool's feature matrix, ``(M, d_track)``
float32: tens of kilobytes, the same for every step of a session. Storing it per transition
would make a DQN's replay gigabytes. Everything in an observation is a function of a few
integers (docs/design.md, "Memory and resume"), so this buffer stores only those. A sampled batch
hands them over as they are (:attr:`ReplayBatch.next_state`): the AH-DQN's learner gathers its
network's inputs from them where the network lives (:class:`~agents.networks.FeatureTables`, on
the GPU with ``--device cuda``), and :attr:`ReplayBatch.next_observations` rebuilds the numpy
observations with :func:`musicenv.observation.build_observations` (the function the environments
build theirs with) for anyone who asks.

What a transition stores (bytes at M = 100, L = 20; :meth:`ReplayBuffer.bytes_per_transition`)
    ==================  ===========  =================================================
    ``users``           4            the listener's user index
    ``contexts``        32           the context features (8 float32)
    ``pools``           4 M          the pool's track indices (int32, ``-1`` padding)
    ``history_tracks``  4 L          track indices played, up to and including the
                                     transition's last play (the *next* state's history)
    ``history_responses`` L          their responses (int8)
    ``lengths``         1            plays before the action (the state's history length)
    ``next_lengths``    1            plays in the next state
    ``actions``         2            the slot played
    ``rewards``         4            the (n-step, discounted) reward
    ``discounts``       4            gamma^k for the bootstrap, 0 where the session ended
    ``demonstrated``    1            the action was a teacher's (the AH-DQN's demonstrations)
    ``taken_probs``     12           with ``model_probs``: the user-response model's
                                     (skip, listen, complete) of the slot played
    ``next_probs``      12 M         with ``model_probs``: the same for every slot of
                                     the next state's pool (float32)
    ``demonstration_row`` 4          with ``model_probs``: the row of the demonstrated
                                     transition's pool probabilities (-1: none)
    ==================  ===========  =================================================

    About 549 bytes at M = 100 and L = 20, whatever the feature width, and 1,765 with
    ``model_probs``; memory is fixed at construction (``capacity`` rows of each array) and
    never grows. With ``model_probs`` a demonstrated transition also keeps the model's
    probabilities of its *state's* pool (before the play), 12 M bytes in a store of
    ``demonstrations`` rows: the demonstrations' large-margin loss ranks that whole pool.

Why the model's probabilities are stored
    They are the AH-DQN's model features, a function of the state that the learner would
    otherwise compute again for every replayed transition, twice (before and after the play):
    scoring a pool with the user-response model was most of a gradient step's time. They are
    scored once, when the state is played, and cost 1.2 KB a transition (120 MB at the default
    capacity of 100,000); they are outputs of a fixed model, not observations.

One history serves both states
    A session's history only grows, so the state's history is the first ``lengths`` plays of the
    next state's. The pool, user and context do not change within a session. A slot counts as
    played when its track is among a state's plays (pools hold each track once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from musicenv.observation import build_observations
from musicenv.world import RESPONSES, Familiarity

Observation = dict[str, np.ndarray]


@dataclass
class ReplayBatch:
    """A sampled batch: the next states as indices (:attr:`next_state`), observations rebuilt on demand.

    Attributes:
        next_state: the next states' compact arrays, the arguments of
            :func:`~musicenv.observation.build_observations` after the feature tables: ``users``,
            ``contexts``, ``pools``, ``history_tracks`` (``-1`` after ``next_lengths``),
            ``history_responses`` and ``played`` (the slots played by then). A learner gathers its
            inputs from them where its network lives (:class:`~agents.networks.FeatureTables`).
        lengths: ``(B,)`` plays before the action: the state's history is the first ``lengths``
            rows of the next state's (see :meth:`observations`).
        next_lengths: ``(B,)`` plays in the next state.
        actions: ``(B,)`` int64 slots played.
        rewards: ``(B,)`` float32 (n-step discounted sums).
        discounts: ``(B,)`` float32 bootstrap weights: gamma^k, or 0 where the session ended.
        action_masks: ``(B, M)`` int8 ``action_mask`` of the states before the actions.
        indices: ``(B,)`` rows of the buffer the batch came from.
        demonstrated: ``(B,)`` bool, the action was a teacher's demonstration.
        track_features, user_features: the world's tables the observations are built from.
        taken_probs: ``(B, 3)`` float32 the model's probabilities of the slot played (None when
            the buffer stores none).
        next_probs: ``(B, M, 3)`` float32 the model's probabilities of the next state's pool
            (None when the buffer stores none).
        demonstration_probs: ``(D, M, 3)`` float32 the model's probabilities of the pool of the
            state before the play, for the batch's D demonstrated transitions in batch order
            (None when the buffer stores none).
    """

    next_state: dict[str, np.ndarray]
    lengths: np.ndarray
    next_lengths: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    discounts: np.ndarray
    action_masks: np.ndarray
    indices: np.ndarray
    demonstrated: np.ndarray
    track_features: np.ndarray
    user_features: np.ndarray
    familiarity: Familiarity | None = None
    taken_probs: np.ndarray | None = None
    next_probs: np.ndarray | None = None
    demonstration_probs: np.ndarray | None = None

    @cached_property
    def next_observations(self) -> Observation:
        """The observations after the transitions (B rows), built from :attr:`next_state` when first read."""
        return build_observations(
            self.track_features, self.user_features, **self.next_state, familiarity=self.familiarity
        )

    def observations(self) -> Observation:
        """The observations before the actions (materialised; the learner reads ``lengths`` instead)."""
        positions = np.arange(self.next_state["history_tracks"].shape[1])
        keep = positions[None, :] < self.lengths[:, None]
        before = {**self.next_state, "history_tracks": np.where(keep, self.next_state["history_tracks"], -1)}
        obs = build_observations(self.track_features, self.user_features, **before, familiarity=self.familiarity)
        obs["action_mask"] = self.action_masks
        return obs


class ReplayBuffer:
    """A ring buffer of compact transitions (see the module docstring).

    Args:
        capacity: transitions kept; the oldest are overwritten first.
        pool_size: M.
        playlist_length: L.
        context_dim: width of the context features.
        track_features, user_features: the world's feature tables, read when sampling.
        seed: seeds the sampling stream.
        familiarity: the world's familiarity table (:func:`musicenv.world.world_familiarity`), read
            when sampling.
        model_probs: also store the user-response model's probabilities of each transition's
            played slot and next pool (``taken_probs``, ``next_probs``; see the module docstring).
        demonstrations: with ``model_probs``, how many demonstrated transitions' state pools to
            keep (``demonstration_probs``): at most ``capacity`` are ever needed, and a run's
            demonstrations, when fewer, suffice.
    """

    def __init__(
        self,
        capacity: int,
        pool_size: int,
        playlist_length: int,
        context_dim: int,
        track_features: np.ndarray,
        user_features: np.ndarray,
        seed: int = 0,
        familiarity: Familiarity | None = None,
        model_probs: bool = False,
        demonstrations: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if playlist_length > np.iinfo(np.int8).max:
            raise ValueError(f"playlist_length {playlist_length} does not fit the int8 lengths")
        self.capacity = capacity
        self.track_features = track_features
        self.user_features = user_features
        self.familiarity = familiarity
        self.arrays: dict[str, np.ndarray] = {
            "users": np.zeros(capacity, np.int32),
            "contexts": np.zeros((capacity, context_dim), np.float32),
            "pools": np.full((capacity, pool_size), -1, np.int32),
            "history_tracks": np.full((capacity, playlist_length), -1, np.int32),
            "history_responses": np.zeros((capacity, playlist_length), np.int8),
            "lengths": np.zeros(capacity, np.int8),
            "next_lengths": np.zeros(capacity, np.int8),
            "actions": np.zeros(capacity, np.int16),
            "rewards": np.zeros(capacity, np.float32),
            "discounts": np.zeros(capacity, np.float32),
            "demonstrated": np.zeros(capacity, np.bool_),
        }
        self.model_probs = model_probs
        if model_probs:
            self.arrays["taken_probs"] = np.zeros((capacity, len(RESPONSES)), np.float32)
            self.arrays["next_probs"] = np.zeros((capacity, pool_size, len(RESPONSES)), np.float32)
            self.arrays["demonstration_row"] = np.full(capacity, -1, np.int32)
        kept = min(demonstrations, capacity) if model_probs else 0
        self.demonstration_probs = np.zeros((kept, pool_size, len(RESPONSES)), np.float32)
        self.demonstrations_added = 0
        self.position = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (fixed at construction), the demonstrations' pools included."""
        return sum(array.nbytes for array in self.arrays.values()) + self.demonstration_probs.nbytes

    def bytes_per_transition(self) -> int:
        """Bytes one transition takes (the demonstrations' pools left out)."""
        return sum(array.nbytes for array in self.arrays.values()) // self.capacity

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        users: np.ndarray,
        contexts: np.ndarray,
        pools: np.ndarray,
        history_tracks: np.ndarray,
        history_responses: np.ndarray,
        lengths: np.ndarray,
        next_lengths: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        discounts: np.ndarray,
        demonstrated: np.ndarray | None = None,
        taken_probs: np.ndarray | None = None,
        next_probs: np.ndarray | None = None,
        state_probs: np.ndarray | None = None,
    ) -> None:
        """Store K transitions (every argument has K rows; see the module docstring for each).

        ``demonstrated``: the action was the teacher's (default: none was). ``taken_probs``,
        ``next_probs`` and ``state_probs`` (``(K, M, 3)``, the model's probabilities of the pool of
        the state before the play; only the demonstrated rows' are kept): required when the buffer
        stores the model's probabilities, refused when not.

        Raises:
            ValueError: the probabilities are missing (or given to a buffer without them), or a
                demonstration comes to a buffer that keeps no demonstrated pools.
        """
        if self.model_probs != all(probs is not None for probs in (taken_probs, next_probs, state_probs)):
            raise ValueError(
                "taken_probs, next_probs and state_probs are required with model_probs=True and refused without: "
                f"this buffer has model_probs={self.model_probs}"
            )
        count = len(users)
        rows = (self.position + np.arange(count)) % self.capacity
        demonstrated = np.zeros(count, np.bool_) if demonstrated is None else np.asarray(demonstrated, np.bool_)
        values = {
            "users": users,
            "contexts": contexts,
            "pools": pools,
            "history_tracks": history_tracks,
            "history_responses": history_responses,
            "lengths": lengths,
            "next_lengths": next_lengths,
            "actions": actions,
            "rewards": rewards,
            "discounts": discounts,
            "demonstrated": demonstrated,
        }
        if self.model_probs:
            assert state_probs is not None
            kept = self._keep_demonstrations(state_probs[demonstrated], demonstrated)
            values.update(taken_probs=taken_probs, next_probs=next_probs, demonstration_row=kept)
        for key, value in values.items():
            self.arrays[key][rows] = value
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def _keep_demonstrations(self, state_probs: np.ndarray, demonstrated: np.ndarray) -> np.ndarray:
        """Store the demonstrated rows' ``state_probs`` ``(D, M, 3)``; each row's store index (-1: none).

        The store is a ring too: once full, the oldest demonstration's pool is overwritten, which
        is safe when the store holds at least ``capacity`` pools (that transition is gone from the
        buffer by then) or every demonstration of the run (it never fills).
        """
        store = len(self.demonstration_probs)
        if len(state_probs) and not store:
            raise ValueError("this buffer keeps no demonstrated pools (demonstrations=0)")
        index = np.full(len(demonstrated), -1, np.int32)
        if len(state_probs):
            slots = (self.demonstrations_added + np.arange(len(state_probs))) % store
            self.demonstration_probs[slots] = state_probs
            index[demonstrated] = slots
            self.demonstrations_added += len(state_probs)
        return index

    def sample(self, batch_size: int) -> ReplayBatch:
        """A uniform batch (with replacement) of stored transitions."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.batch(self.rng.integers(0, self.size, batch_size))

    def batch(self, indices: np.ndarray) -> ReplayBatch:
        """The transitions at ``indices`` (observations are rebuilt when the batch is asked for them)."""
        a = {key: value[indices] for key, value in self.arrays.items()}
        pools = a["pools"].astype(np.int64)
        tracks = a["history_tracks"].astype(np.int64)
        positions = np.arange(tracks.shape[1])
        lengths = a["lengths"].astype(np.int64)
        next_lengths = a["next_lengths"].astype(np.int64)
        tracks = np.where(positions[None, :] < next_lengths[:, None], tracks, -1)
        # Slot m was played before step t when its track is among the first t plays.
        same = (pools[:, :, None] == tracks[:, None, :]) & (pools[:, :, None] >= 0)
        played_before = (same & (positions < lengths[:, None])[:, None, :]).any(axis=2)
        played_next = same.any(axis=2)
        return ReplayBatch(
            next_state={
                "users": a["users"],
                "context_features": a["contexts"],
                "pools": pools,
                "history_tracks": tracks,
                "history_responses": a["history_responses"],
                "played": played_next,
            },
            lengths=lengths,
            next_lengths=next_lengths,
            actions=a["actions"].astype(np.int64),
            rewards=a["rewards"],
            discounts=a["discounts"],
            action_masks=((pools >= 0) & ~played_before).astype(np.int8),
            indices=np.asarray(indices),
            demonstrated=a["demonstrated"],
            track_features=self.track_features,
            user_features=self.user_features,
            familiarity=self.familiarity,
            taken_probs=a.get("taken_probs"),
            next_probs=a.get("next_probs"),
            demonstration_probs=(
                self.demonstration_probs[a["demonstration_row"][a["demonstrated"]]] if self.model_probs else None
            ),
        )

    def save(self, folder: Path) -> None:
        """Write the stored transitions and the sampling stream into ``folder`` (``replay.npz``, ``replay.json``)."""
        np.savez(
            folder / "replay.npz",
            **{key: value[: self.size] for key, value in self.arrays.items()},
            demonstration_probs=self.demonstration_probs[: self.demonstrations_added],
        )
        meta = {"position": self.position, "size": self.size, "demonstrations_added": self.demonstrations_added}
        (folder / "replay.json").write_text(json.dumps({**meta, "rng": self.rng.bit_generator.state}))

    def load(self, folder: Path) -> None:
        """Read what :meth:`save` wrote (into a buffer of the same capacity and shapes)."""
        meta = json.loads((folder / "replay.json").read_text())
        with np.load(folder / "replay.npz") as stored:
            for key, array in {**self.arrays, "demonstration_probs": self.demonstration_probs}.items():
                if stored[key].shape[1:] != array.shape[1:] or len(stored[key]) > len(array):
                    raise ValueError(f"saved replay array {key!r} has shape {stored[key].shape}, buffer {array.shape}")
                array[: len(stored[key])] = stored[key]
        self.position, self.size = int(meta["position"]), int(meta["size"])
        self.demonstrations_added = int(meta["demonstrations_added"])
        self.rng.bit_generator.state = meta["rng"]
