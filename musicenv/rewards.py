"""What a play is worth: the reward of ``ListeningSession-v0``.

The reward of a valid step is

    ``reward = value[response] * (discovery_boost if the track is flagged for discovery else 1)
    + diversity_bonus * (the track's artist is new to the session)``

and an invalid step (a slot already played, or padding) earns ``invalid_action`` and changes
nothing else. With the defaults the optional terms are off and the reward is the listening value
of the response alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

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
            value = getattr(self, field.name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"RewardConfig.{field.name} must be a number, got {value!r} ({type(value).__name__})")
            # A NaN or infinite value would turn every return into NaN (or inf) mid-episode.
            if not math.isfinite(value):
                raise ValueError(f"RewardConfig.{field.name} must be a finite number, got {value!r}")
            # Plain floats, so that arithmetic and JSON configs see the same values whatever was given.
            object.__setattr__(self, field.name, float(value))
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

    def play_rewards(
        self, responses: np.ndarray, discovery: np.ndarray | None, new_artist: np.ndarray | None
    ) -> np.ndarray:
        """Rewards of valid plays, ``(N,)`` float64.

        Args:
            responses: ``(N,)`` response codes.
            discovery: ``(N,)`` bool, the played track is flagged for discovery; None when the
                boost is off.
            new_artist: ``(N,)`` bool, the played track's artist is new to the session; None when
                the bonus is off.
        """
        rewards = self.response_values[responses]
        if discovery is not None:
            rewards = rewards * np.where(discovery, self.discovery_boost, 1.0)
        if new_artist is not None:
            rewards = rewards + self.diversity_bonus * new_artist
        return rewards

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
