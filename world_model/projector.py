"""TensorBoard projector export of the track vectors: the retrieval stage's world, seen.

``tensorboard --logdir runs/`` then the *Projector* tab shows every exported track as a point
(PCA, t-SNE or UMAP of its ALS vector) with its metadata: colour by genre to see whether taste
clusters follow genres, search an artist to see whether their tracks sit together, colour by
popularity to see the popular core and the long tail. Tracks near each other are tracks the same
listeners complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from world_model.retrieval import Retrieval

METADATA_HEADER = ["track_id", "artist_id", "genre", "plays", "us_pop_estimate", "explicit"]
"""Columns of the exported metadata, in order."""


def _cell(value: object) -> str:
    # The metadata file is tab-separated, one point per line; NA prints as "unknown".
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    return " ".join(str(value).split())


def export_projector(
    retrieval: Retrieval,
    tracks: pd.DataFrame,
    logdir: str | os.PathLike[str],
    *,
    max_tracks: int | None = 10_000,
    genre_names: Sequence[str] | None = None,
    tag: str = "retrieval/tracks",
    vectors: str = "als",
) -> Path:
    """Write the track vectors and their metadata for TensorBoard's projector.

    Args:
        retrieval: a fitted :class:`~world_model.retrieval.Retrieval`.
        tracks: the track table it was fitted on (``log.tracks``), row = track index; its
            ``artist_id``, ``genre`` and ``us_pop_estimate`` columns are used where present.
        logdir: TensorBoard log directory (created if needed).
        max_tracks: export only this many tracks, the most played first (the projector slows
            down beyond some 10,000 points); None for all.
        genre_names: names of the genre codes (e.g. ``musicenv.groundtruth.config.GENRES``);
            codes are written as numbers without it.
        tag: the embedding's name in the projector.
        vectors: ``"als"`` (the ALS track factors) or ``"sequence"`` (the sequence stage's session
            vectors, :mod:`world_model.sequence`; the retrieval must have one).

    Returns:
        ``logdir`` as a Path.
    """
    from torch.utils.tensorboard import SummaryWriter

    if len(tracks) != retrieval.n_tracks or not np.array_equal(
        tracks["track_id"].to_numpy(dtype=str), retrieval.track_ids
    ):
        raise ValueError("tracks must be the table the retrieval was fitted on, in the same row order")
    if vectors == "als":
        points = retrieval.track_vectors
    elif vectors == "sequence":
        if retrieval.sequence is None:
            raise ValueError("vectors='sequence' needs a retrieval fitted with source 'sequence' or 'mix'")
        points = retrieval.sequence.track_vectors
    else:
        raise ValueError(f"vectors must be 'als' or 'sequence', got {vectors!r}")
    chosen = np.argsort(-retrieval.popularity, kind="stable")
    if max_tracks is not None:
        chosen = chosen[:max_tracks]

    def column(name: str) -> np.ndarray:
        if name not in tracks:
            return np.full(len(chosen), None, dtype=object)
        return tracks[name].to_numpy(dtype=object)[chosen]

    genres = column("genre")
    if genre_names is not None:
        genres = np.array(
            [genre_names[g] if g is not None and g is not pd.NA and 0 <= g < len(genre_names) else g for g in genres],
            dtype=object,
        )
    columns = [
        retrieval.track_ids[chosen],
        column("artist_id"),
        genres,
        retrieval.popularity[chosen],
        column("us_pop_estimate"),
        retrieval.explicit[chosen],
    ]
    metadata = [[_cell(value) for value in row] for row in zip(*columns)]
    logdir = Path(logdir)
    with SummaryWriter(log_dir=str(logdir)) as writer:
        writer.add_embedding(points[chosen], metadata=metadata, metadata_header=METADATA_HEADER, tag=tag)
    return logdir
