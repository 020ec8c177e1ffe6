"""Each track's genre, for the in-session genre columns: the logged genre, or a cluster of its ALS vector.

The learned world's ``genre_just_played`` and ``genre_exposure`` columns
(:mod:`musicenv.familiarity`) compare a candidate's genre with the session's recent plays. A log
whose tracks table gives every track a ``genre`` (a synthetic ground truth's, a service's own
catalogue) is taken at its word; one without (the MSSD has no genres) gets clusters of the
tracks' ALS vectors instead, which group tracks the same listeners play, as genres do.

The clusters are scikit-learn's :class:`~sklearn.cluster.MiniBatchKMeans` on the unit-length
vectors (so the clustering follows the cosine similarity the candidate pools rank by), seeded,
so the same log and seed give the same genres.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from musicenv.familiarity import GENRE_BITS

GENRE_CLUSTERS = 16
"""Clusters of ALS vectors that stand in for genres when the log has none (about the number of
genres a catalogue is browsed by)."""

MAX_GENRES = (1 << GENRE_BITS) - 1
"""Distinct genres a tracks table may have (what a play code holds)."""


def track_genres(
    tracks: pd.DataFrame, track_vectors: np.ndarray, seed: int = 0, n_clusters: int = GENRE_CLUSTERS
) -> tuple[np.ndarray, str]:
    """``(n_tracks,)`` int64 genre codes in ``[0, MAX_GENRES)``, and where they came from.

    Args:
        tracks: the log's track table, one row per track index; its ``genre`` column is used when
            it exists and no track's is missing (codes renumbered ``0, 1, ...`` in sorted order).
        track_vectors: ``(n_tracks, f)`` ALS vectors, clustered otherwise.
        seed: the clustering's seed.
        n_clusters: clusters to form (fewer when there are fewer tracks).

    Returns:
        ``(codes, source)``; ``source`` is ``"genre column"`` or ``"ALS clusters"``.

    Raises:
        ValueError: when the ``genre`` column has :data:`MAX_GENRES` or more distinct values, or
            ``track_vectors`` does not have one row per track.
    """
    n_tracks = len(tracks)
    if "genre" in tracks and n_tracks and not tracks["genre"].isna().any():
        distinct, codes = np.unique(tracks["genre"].to_numpy(dtype=np.int64), return_inverse=True)
        if len(distinct) >= MAX_GENRES:
            raise ValueError(f"tracks column 'genre' has {len(distinct)} distinct values; at most {MAX_GENRES - 1}")
        return codes.astype(np.int64), "genre column"
    vectors = np.asarray(track_vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != n_tracks:
        raise ValueError(f"track_vectors has shape {vectors.shape}, expected ({n_tracks}, f)")
    k = min(n_clusters, n_tracks)
    if k <= 1:
        return np.zeros(n_tracks, dtype=np.int64), "ALS clusters"
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    return kmeans.fit_predict(unit).astype(np.int64), "ALS clusters"
