"""Each track's genre for the in-session genre columns: the logged column, else clusters of ALS vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from world_model.genres import MAX_GENRES, track_genres


def _tracks(genres: list | None) -> pd.DataFrame:
    n = 6 if genres is None else len(genres)
    table = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)]})
    if genres is not None:
        table["genre"] = pd.array(genres, dtype=pd.Int16Dtype())
    return table


def test_the_logged_genre_column_is_taken_and_renumbered() -> None:
    codes, source = track_genres(_tracks([7, 3, 7, 11]), np.zeros((4, 2)))
    assert source == "genre column"
    np.testing.assert_array_equal(codes, [1, 0, 1, 2])


def test_without_a_full_genre_column_the_als_vectors_are_clustered_by_direction() -> None:
    """Two tight bundles of directions, at different lengths: two clusters, whatever the length."""
    rng = np.random.default_rng(0)
    directions = np.array([[1.0, 0.0], [0.0, 1.0]])[np.repeat([0, 1], 20)]
    vectors = (directions + rng.normal(0, 0.01, directions.shape)) * rng.uniform(0.5, 5.0, (40, 1))
    for table in (_tracks(None), _tracks([1] * 39 + [None])):
        codes, source = track_genres(table.reindex(range(40)), vectors, seed=0, n_clusters=2)
        assert source == "ALS clusters"
        assert len(set(codes[:20])) == 1 and len(set(codes[20:])) == 1 and codes[0] != codes[20]
        again, _ = track_genres(table.reindex(range(40)), vectors, seed=0, n_clusters=2)
        np.testing.assert_array_equal(again, codes)


def test_bad_genres_and_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="track_vectors has shape"):
        track_genres(_tracks(None), np.zeros((5, 2)))
    many = pd.DataFrame({"track_id": np.arange(MAX_GENRES).astype(str), "genre": np.arange(MAX_GENRES)})
    with pytest.raises(ValueError, match="tracks column 'genre' has 65535 distinct values"):
        track_genres(many, np.zeros((MAX_GENRES, 2)))
