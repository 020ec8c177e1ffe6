"""What an agent and the user-response model observe of tracks and users.

Tracks
    :func:`track_feature_matrix` gives one float32 row per track (row ``i`` is track index ``i``,
    the row order of ``log.tracks``), in this order (:func:`track_feature_names`):

    1. the track's ALS vector (collaborative filtering, from :mod:`world_model.embeddings`),
       divided by the root-mean-square of all track vectors so its entries are of order one
       whatever ALS's regularisation made of their scale;
    2. the content features of :data:`musicenv.data.ACOUSTIC_FEATURES` (the MSSD's track-feature
       file: popularity estimate, release year, acousticness, ..., ``acoustic_vector_0..7``),
       each standardised to mean 0 and standard deviation 1 over the catalogue, with
       ``duration`` replaced by its logarithm (durations are long-tailed);
    3. ``log_plays``: ``log(1 + plays in the log)``, standardised, the track's popularity in the
       logs the world is learned from (what a "most popular" recommender ranks by);
    4. ``explicit``: 1.0 or 0.0.

    A missing value (NaN) becomes 0 *after* standardisation, i.e. the catalogue mean, so logs
    without content features (the MSSD's log alone, a generic CSV of plays) work unchanged: their
    content columns are all zeros and the model learns from the ALS vector and popularity.

Users
    :func:`user_feature_matrix` gives one float32 row per listener: the ALS user vector divided
    by the root-mean-square of all user vectors, then ``premium`` (1.0 or 0.0). A learned world
    uses one exact ALS step against the fitted track vectors
    (:func:`~world_model.exact_als.exact_user_vectors`), and can train on each session with the
    vector *without* that session (:func:`~world_model.exact_als.held_out_user_vectors`).

The statistics of both (means, standard deviations, vector scales) are a
:class:`FeatureStats`, fitted once on the world's own catalogue and listeners and saved with it
(:meth:`FeatureStats.to_dict`), so a loaded world rebuilds exactly the features it was trained
on.

A listener's past with each track is :mod:`world_model.history`; the sessions the models read are
:mod:`world_model.sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musicenv.data import ACOUSTIC_FEATURES
from world_model.interactions import listener_codes

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

STANDARDISED_COLUMNS: tuple[str, ...] = (
    *("log_duration" if name == "duration" else name for name in ACOUSTIC_FEATURES),
    "log_plays",
)
"""Track columns that are standardised, in feature order (block 2 and 3 of the module docstring)."""


@dataclass(frozen=True)
class FeatureStats:
    """Standardisation statistics of the track and user features (see the module docstring).

    Attributes:
        mean: per :data:`STANDARDISED_COLUMNS` entry, the catalogue mean (0 where a column has
            no known value).
        std: per entry, the catalogue standard deviation (1 where it is 0 or unknown).
        track_vector_scale: root-mean-square entry of the ALS track vectors.
        user_vector_scale: root-mean-square entry of the ALS user vectors.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    track_vector_scale: float
    user_vector_scale: float

    @classmethod
    def fit(
        cls,
        tracks: pd.DataFrame,
        track_vectors: np.ndarray,
        user_vectors: np.ndarray,
        play_counts: np.ndarray,
    ) -> FeatureStats:
        """Statistics of a catalogue (``tracks`` with its ALS vectors and play counts) and its users."""
        raw = _raw_track_columns(tracks, play_counts)
        known = np.isfinite(raw)
        count = known.sum(axis=0)
        mean = np.where(count > 0, np.where(known, raw, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
        variance = np.where(known, (raw - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
        std = np.sqrt(variance)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            track_vector_scale=_rms(track_vectors),
            user_vector_scale=_rms(user_vectors),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` inverts it exactly (floats survive JSON round trips)."""
        return {
            "columns": list(STANDARDISED_COLUMNS),
            "mean": list(self.mean),
            "std": list(self.std),
            "track_vector_scale": self.track_vector_scale,
            "user_vector_scale": self.user_vector_scale,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> FeatureStats:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` when the columns differ from this version's."""
        if tuple(payload["columns"]) != STANDARDISED_COLUMNS:
            raise ValueError(
                f"feature statistics were saved for columns {payload['columns']}, this version uses "
                f"{list(STANDARDISED_COLUMNS)}"
            )
        return cls(
            mean=tuple(float(v) for v in payload["mean"]),
            std=tuple(float(v) for v in payload["std"]),
            track_vector_scale=float(payload["track_vector_scale"]),
            user_vector_scale=float(payload["user_vector_scale"]),
        )


def _rms(vectors: np.ndarray) -> float:
    value = float(np.sqrt(np.mean(np.square(np.asarray(vectors, dtype=np.float64))))) if np.size(vectors) else 0.0
    return value if value > 1e-12 else 1.0


def _raw_track_columns(tracks: pd.DataFrame, play_counts: np.ndarray) -> np.ndarray:
    """``(n_tracks, len(STANDARDISED_COLUMNS))`` float64 before standardisation, NaN where unknown."""
    play_counts = np.asarray(play_counts, dtype=np.float64)
    if play_counts.shape != (len(tracks),):
        raise ValueError(f"play_counts has shape {play_counts.shape}, expected ({len(tracks)},)")
    columns = []
    for name in ACOUSTIC_FEATURES:
        values = (
            tracks[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in tracks else np.full(len(tracks), np.nan)
        )
        if name == "duration":
            values = np.log(np.where(values > 0, values, np.nan))
        columns.append(values)
    columns.append(np.log1p(play_counts))
    return np.stack(columns, axis=1)


def track_play_counts(log: ListeningLog) -> np.ndarray:
    """``(n_tracks,)`` int64 number of plays of each track (row of ``log.tracks``) in the log."""
    return np.bincount(np.asarray(log.track_codes(), dtype=np.int64), minlength=len(log.tracks))


def track_feature_names(vector_dim: int) -> list[str]:
    """Names of the columns of :func:`track_feature_matrix` for ALS vectors of ``vector_dim``."""
    return [*(f"als_{i}" for i in range(vector_dim)), *STANDARDISED_COLUMNS, "explicit"]


def track_feature_layout(vector_dim: int) -> dict[str, tuple[int, int]]:
    """Column blocks of :func:`track_feature_matrix`: name -> ``(start, stop)``, for agents that read one."""
    acoustic = vector_dim + len(STANDARDISED_COLUMNS) - 1
    return {
        "als": (0, vector_dim),
        "acoustic": (vector_dim, acoustic),
        "popularity": (acoustic, acoustic + 1),
        "explicit": (acoustic + 1, acoustic + 2),
    }


def user_feature_layout(vector_dim: int) -> dict[str, tuple[int, int]]:
    """Column blocks of :func:`user_feature_matrix`: name -> ``(start, stop)``."""
    return {"als": (0, vector_dim), "premium": (vector_dim, vector_dim + 1)}


def track_feature_matrix(
    tracks: pd.DataFrame, track_vectors: np.ndarray, play_counts: np.ndarray, stats: FeatureStats
) -> np.ndarray:
    """What an agent and the user-response model observe of every track.

    Args:
        tracks: the track table (``log.tracks``: ``explicit`` and the columns of
            :data:`musicenv.data.ACOUSTIC_FEATURES`; absent columns count as unknown).
        track_vectors: ``(n_tracks, f)`` ALS track vectors aligned to ``tracks`` rows.
        play_counts: ``(n_tracks,)`` plays per track (:func:`track_play_counts`).
        stats: the world's :class:`FeatureStats`.

    Returns:
        ``(n_tracks, f + len(STANDARDISED_COLUMNS) + 1)`` float32, finite, columns named by
        :func:`track_feature_names`.
    """
    track_vectors = np.asarray(track_vectors, dtype=np.float64)
    if track_vectors.shape[0] != len(tracks):
        raise ValueError(f"{track_vectors.shape[0]} track vectors for {len(tracks)} tracks")
    standardised = (_raw_track_columns(tracks, play_counts) - np.asarray(stats.mean)) / np.asarray(stats.std)
    explicit = (
        tracks["explicit"].to_numpy(dtype=np.float64, na_value=0.0) if "explicit" in tracks else np.zeros(len(tracks))
    )
    out = np.concatenate(
        [track_vectors / stats.track_vector_scale, np.nan_to_num(standardised, nan=0.0), explicit[:, None]], axis=1
    )
    return out.astype(np.float32)


def user_feature_matrix(user_vectors: np.ndarray, premium: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """What an agent and the user-response model observe of every listener.

    Args:
        user_vectors: ``(n_users, f)`` ALS user vectors (rows aligned to sorted listener ids).
        premium: ``(n_users,)`` premium flags (:func:`listener_premium`).
        stats: the world's :class:`FeatureStats`.

    Returns:
        ``(n_users, f + 1)`` float32: the scaled vector, then premium.
    """
    user_vectors = np.asarray(user_vectors, dtype=np.float64)
    premium = np.asarray(premium, dtype=np.float64)
    if premium.shape != (user_vectors.shape[0],):
        raise ValueError(f"premium has shape {premium.shape}, expected ({user_vectors.shape[0]},)")
    return np.concatenate([user_vectors / stats.user_vector_scale, premium[:, None]], axis=1).astype(np.float32)


def listener_premium(log: ListeningLog) -> tuple[np.ndarray, np.ndarray]:
    """Sorted listener ids and whether each listener is premium (the majority of their plays are).

    The log records ``premium`` per play; a listener who upgraded mid-log counts as what most of
    their plays say.
    """
    ids, codes = listener_codes(log)
    premium_plays = np.bincount(codes, weights=log.plays["premium"].to_numpy(dtype=np.float64), minlength=len(ids))
    return ids, premium_plays * 2 > np.bincount(codes, minlength=len(ids))
