"""What a play is worth: the reward of ``ListeningSession-v0``.

The reward of a valid step is

    ``reward = value[response] * (discovery_boost if the track is flagged for discovery else 1)
    + diversity_bonus * (the track's artist is new to the session)``

and an invalid step (a slot already played, or padding) earns ``invalid_action`` and changes
nothing else. With the defaults the optional terms are off and the reward is the listening value
of the response alone.

:func:`play_rewards` computes it for the single env, the vector env and the tensor env alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from musicenv.validation import check_number

DISCOVERY_COLUMN = "discovery_mode"
"""Optional bool column of a world's track table: the track is promoted in Discovery Mode."""


@dataclass(frozen=True)
class RewardConfig:
    """How responses map to rewards.

    Why these defaults: the reward is the *listening value* of a play. A completion is worth a full
    unit, a listen past N seconds (the MSSD's ``skip_2`` threshold: heard, not finished) half of it,
    and a skip nothing: a skip is a lost slot, not a harm. Skips are punished already, through the
    session-end model: skip runs make listeners leave, and a session that ends early earns no more
    rewards. A negative ``skip`` (e.g. ``-0.25``) models a product that also counts the annoyance
    of a bad pick; it is allowed.

    Attributes:
        skip: reward of a skip (left within N seconds).
        listen: reward of a listen past N seconds that did not reach the end.
        complete: reward of a completed track.
        invalid_action: reward of an invalid action (a slot already played, or padding). Default
            -1.0: below every response's value by the size of the largest, so stalling never pays;
            the action mask makes such actions avoidable, so any agent that reads it never pays
            this. Must be below the lowest response reward.
        diversity_bonus: added for a play whose artist is new to the session (Spotify's artist
            diversity). Where a track's artist is unknown (MSSD-style logs) the track stands for
            its artist, so every such play counts as new. Paid whatever the response, so keep it
            small next to the response values. 0 turns it off.
        discovery_boost: multiplies the response reward of tracks flagged for discovery
            (Spotify's Discovery Mode: promoted tracks count more when they land). A track is
            flagged by the world's ``discovery_mode`` column when its track table has one, else
            when its ``us_pop_estimate`` is in the lowest ``discovery_popularity_quantile`` of the
            catalogue. 1 turns it off.
        discovery_popularity_quantile: the popularity quantile below which a track counts as a
            discovery when the world has no ``discovery_mode`` column.

    Every field must be a finite real number (stored as a ``float``): ``TypeError`` for text,
    bools or None, ``ValueError`` for NaN or infinity, each naming the field.
    """

    skip: float = 0.0
    listen: float = 0.5
    complete: float = 1.0
    invalid_action: float = -1.0
    diversity_bonus: float = 0.0
    discovery_boost: float = 1.0
    discovery_popularity_quantile: float = 0.2

    def __post_init__(self) -> None:
        for field in fields(self):
            # Plain floats, so that arithmetic and JSON configs see the same values whatever was given.
            object.__setattr__(self, field.name, check_number(f"RewardConfig.{field.name}", getattr(self, field.name)))
        lowest = min(self.skip, self.listen, self.complete)
        if not self.invalid_action < lowest:
            raise ValueError(
                f"RewardConfig.invalid_action={self.invalid_action} must be below the lowest response reward "
                f"({lowest}); otherwise an agent can earn more by stalling on invalid slots than by playing"
            )
        if self.discovery_boost < 0:
            raise ValueError(f"RewardConfig.discovery_boost={self.discovery_boost} must be non-negative")
        if not 0.0 < self.discovery_popularity_quantile < 1.0:
            raise ValueError(
                f"RewardConfig.discovery_popularity_quantile={self.discovery_popularity_quantile} must lie in (0, 1)"
            )

    @property
    def response_values(self) -> np.ndarray:
        """``(3,)`` float64 rewards of (skip, listen, complete), indexed by response code."""
        return np.array([self.skip, self.listen, self.complete], dtype=np.float64)

    def track_boosts(self, tracks: pd.DataFrame) -> np.ndarray:
        """``(n_tracks,)`` float64 factor of each track's response reward: ``discovery_boost`` where the
        track is flagged for discovery (:meth:`discovery_flags`), else 1 (everywhere when the boost is off)."""
        flags = self.discovery_flags(tracks)
        if flags is None:
            return np.ones(len(tracks), dtype=np.float64)
        return np.where(flags, self.discovery_boost, 1.0)

    def discovery_flags(self, tracks: pd.DataFrame) -> np.ndarray | None:
        """Per-track bool flags for the discovery boost, or None when the boost is off.

        Raises:
            ValueError: the boost is on and the track table has neither a ``discovery_mode`` nor a
                ``us_pop_estimate`` column.
        """
        if self.discovery_boost == 1.0:
            return None
        if DISCOVERY_COLUMN in tracks.columns:
            return tracks[DISCOVERY_COLUMN].fillna(False).to_numpy(dtype=bool)
        if "us_pop_estimate" in tracks.columns:
            popularity = tracks["us_pop_estimate"].to_numpy(dtype=np.float64)
            known = ~np.isnan(popularity)
            threshold = np.quantile(popularity[known], self.discovery_popularity_quantile)
            return known & (popularity <= threshold)
        raise ValueError(
            f"discovery_boost={self.discovery_boost} needs a '{DISCOVERY_COLUMN}' or 'us_pop_estimate' "
            "column in the world's track table; this world has neither"
        )


def new_artists(artist_codes: Any, history: Any, tracks: Any) -> Any:
    """``(N,)`` bool: the artist of each played track is new to its session (the diversity bonus's test).

    Args:
        artist_codes: ``(n_tracks,)`` artist code of each track (an unknown artist is a code of its
            own), a numpy array or a torch tensor.
        history: ``(N, L)`` the sessions' tracks before this play, ``-1`` after the last one.
        tracks: ``(N,)`` the tracks played now.

    Written with indexing and operators only, so numpy arrays and torch tensors give the same
    answer (the single env passes a batch of one).
    """
    seen = (artist_codes[history.clip(0)] == artist_codes[tracks][:, None]) & (history >= 0)
    return ~seen.any(-1)


def play_rewards(
    response_values: Any, track_boosts: Any, responses: Any, tracks: Any, diversity_bonus: float, new_artist: Any
) -> Any:
    """The reward of valid plays (the module docstring's formula): the env's, the vector env's and the tensor env's.

    Written with indexing and operators only, so it takes one play (Python numbers, the single
    env), numpy arrays (the vector env) or torch tensors (the tensor env), and the three give the
    same rewards bit for bit.

    Args:
        response_values: :attr:`RewardConfig.response_values`, as a list, a numpy array or a
            float64 tensor (the caller's kind).
        track_boosts: :meth:`RewardConfig.track_boosts` in the caller's kind (float64).
        responses: the response codes of the plays; ``tracks``: the tracks played.
        diversity_bonus: :attr:`RewardConfig.diversity_bonus`.
        new_artist: where the track's artist is new to the session (:func:`new_artists`; bool, or
            float64 for tensors, whose bools a Python float would turn into float32), or None
            when the bonus is off.
    """
    rewards = response_values[responses] * track_boosts[tracks]
    if new_artist is not None:
        rewards = rewards + diversity_bonus * new_artist
    return rewards
