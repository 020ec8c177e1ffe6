"""Approximate maximum-inner-product search (MIPS) over track vectors with Annoy.

The retrieval score of track ``i`` for user ``u`` is the ALS inner product ``x_u . y_i`` (the
predicted preference of Hu, Koren & Volinsky 2008), so the index must rank by inner product, not
by angle or distance.

Annoy's ``"dot"`` metric
    Annoy reduces inner-product search to angular search itself (Bachrach et al., "Speeding up
    the Xbox recommender system using a Euclidean transformation for inner-product spaces",
    RecSys 2014): every stored vector gets an extra coordinate ``sqrt(max_norm^2 - |y_i|^2)``, so
    all stored vectors have the same norm and their angle to a query (whose extra coordinate is
    0) orders them as the inner product does. Using the metric rather than augmenting by hand
    keeps the stored vectors equal to the track vectors, and Annoy's returned "distance" is then
    the inner product itself.

Norm bands
    ALS track norms are long-tailed (a track's norm grows with how much it is played; on the
    default ground-truth world their log-sd is about 1). After the augmentation the many
    small-norm tracks all sit near the extra axis, the trees spend their splits on them, and one
    index over all tracks reaches only ~0.8 recall at 100 on the default world even when it
    inspects as many nodes as there are tracks. Following Yan et al. ("Norm-Ranging LSH for
    Maximum Inner Product Search", NeurIPS 2018), :class:`TrackIndex` sorts tracks by norm into
    bands (:func:`norm_bands`: the bulk in ``n_bands`` bands of equal size, the tail of large
    norms in smaller bands whose norms differ by at most a factor ``band_ratio``), each with its
    own Annoy index, so each band's augmentation is relative to its own largest norm and small.
    A query visits bands from the largest norms down and stops as soon as no track of the next
    band can beat the current ``n``-th best score (Cauchy-Schwarz: ``x . y <= |x| max_norm``).
    Tracks with a zero vector (never played) form a last band of score 0 that needs no index.
    Results of all visited bands are merged by their exact inner products.

Trees split a band by random hyperplanes; more trees (``n_trees``) give better recall for a
larger index, and a larger ``search_k`` (nodes inspected per band query) gives better recall for
slower queries. Builds are seeded (``set_seed``) and single-threaded by default, so the same
vectors and seed give the same index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

METRIC = "dot"
_BANDS = "bands.npz"


def norm_bands(norms: np.ndarray, n_bands: int, band_ratio: float) -> list[np.ndarray]:
    """Split the tracks of non-zero norm into bands, largest norms first.

    Each band holds at most ``ceil(n / n_bands)`` tracks (``n`` of non-zero norm) whose norms lie
    within a factor ``band_ratio`` of the band's largest; a long tail of large norms therefore
    gets several small bands of its own, and the bulk ``n_bands`` bands of equal size.
    """
    nonzero = np.flatnonzero(norms > 0)
    order = nonzero[np.argsort(-norms[nonzero], kind="stable")]
    sorted_norms = norms[order]
    capacity = -(-len(order) // n_bands) if len(order) else 0
    bands, start = [], 0
    while start < len(order):
        # First position whose norm falls below the band's largest / band_ratio (norms descend).
        floor = sorted_norms[start] / band_ratio
        end = start + int(np.searchsorted(-sorted_norms[start:], -floor, side="right"))
        end = min(max(end, start + 1), start + capacity)
        bands.append(order[start:end])
        start = end
    return bands


def _band_file(band: int) -> str:
    return f"band_{band:03d}.ann"


class TrackIndex:
    """Norm-banded Annoy index of ``n_items`` track vectors; item id = track index.

    Build with :meth:`build` or :meth:`load`.

    Args:
        bands: one built ``"dot"`` AnnoyIndex per band, largest norms first; band-local item
            ``j`` of band ``b`` is track ``band_items[b][j]``.
        band_items: int64 track indices of each band.
        band_norms: largest track norm in each band (descending).
        zero_items: tracks whose vector is all zeros (score 0 for every query), ascending.
        n_items: tracks in the catalogue.
        factors: vector dimension.
        search_k: nodes inspected per band query; ``-1`` for Annoy's default ``n_trees * n``.
    """

    def __init__(
        self,
        bands: list[AnnoyIndex],
        band_items: list[np.ndarray],
        band_norms: np.ndarray,
        zero_items: np.ndarray,
        n_items: int,
        factors: int,
        search_k: int = -1,
    ) -> None:
        self.bands = bands
        self.band_items = [np.asarray(items, dtype=np.int64) for items in band_items]
        self.band_norms = np.asarray(band_norms, dtype=np.float64)
        self.zero_items = np.asarray(zero_items, dtype=np.int64)
        self.n_items = int(n_items)
        self.factors = int(factors)
        self.search_k = int(search_k)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        n_trees: int,
        seed: int,
        search_k: int = -1,
        n_bands: int = 16,
        band_ratio: float = 2.0,
        n_jobs: int = 1,
    ) -> TrackIndex:
        """Index ``vectors`` (row ``i`` is track ``i``) in norm bands of ``n_trees`` trees each.

        ``n_bands`` and ``band_ratio`` shape the bands (:func:`norm_bands`); the default ratio 2
        keeps each band's augmentation within ``sqrt(3)`` of its largest norm.
        ``n_jobs`` > 1 (or -1 for all cores) builds each band's trees in parallel: faster for a
        large catalogue, but each thread draws its own random numbers, so the index is
        reproducible only for the same ``n_jobs``.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"need a non-empty (n_items, factors) array, got shape {vectors.shape}")
        if n_bands < 1 or n_trees < 1 or band_ratio <= 1:
            raise ValueError(f"need n_bands, n_trees >= 1 and band_ratio > 1, got {n_bands}, {n_trees}, {band_ratio}")
        norms = np.linalg.norm(vectors, axis=1)
        band_items = norm_bands(norms, n_bands, band_ratio)
        bands = []
        for band, items in enumerate(band_items):
            index = AnnoyIndex(vectors.shape[1], METRIC)
            index.set_seed((int(seed) + band) % 2**31)
            for local, item in enumerate(items):
                index.add_item(local, vectors[item])
            index.build(int(n_trees), n_jobs=int(n_jobs))
            bands.append(index)
        band_norms = np.array([norms[items[0]] for items in band_items], dtype=np.float64)
        zero_items = np.flatnonzero(norms == 0)
        return cls(bands, band_items, band_norms, zero_items, len(vectors), vectors.shape[1], search_k)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the bands' Annoy files and ``bands.npz`` (band membership) into ``folder``.

        Annoy then serves queries from the files it saved (it memory-maps them), which stays
        valid when the folder is renamed, as :func:`musicenv.artifacts.atomic_folder` does.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sizes = np.array([len(items) for items in self.band_items], dtype=np.int64)
        np.savez(
            folder / _BANDS,
            band_sizes=sizes,
            band_items=np.concatenate([*self.band_items, np.empty(0, dtype=np.int64)]),
            band_norms=self.band_norms,
            zero_items=self.zero_items,
            shape=np.array([self.n_items, self.factors], dtype=np.int64),
        )
        for band, index in enumerate(self.bands):
            index.save(os.fspath(folder / _band_file(band)))

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], search_k: int = -1, expected: tuple[int, int] | None = None
    ) -> TrackIndex:
        """Memory-map an index saved by :meth:`save`.

        Args:
            folder: what :meth:`save` wrote.
            search_k: Annoy's search effort for queries.
            expected: ``(n_items, factors)`` the caller needs, or None for any.

        Raises:
            ValueError: the band files disagree with ``bands.npz``, or the index is not of the
                ``expected`` shape.
        """
        folder = Path(folder)
        with np.load(folder / _BANDS, allow_pickle=False) as arrays:
            sizes, items, norms = arrays["band_sizes"], arrays["band_items"], arrays["band_norms"]
            zero_items, (n_items, factors) = arrays["zero_items"], arrays["shape"]
        if expected is not None and (int(n_items), int(factors)) != tuple(expected):
            raise ValueError(
                f"{folder / _BANDS}: indexes {n_items} tracks of {factors} dimensions, "
                f"expected {expected[0]} of {expected[1]}"
            )
        if int(sizes.sum()) + len(zero_items) != n_items or len(norms) != len(sizes):
            raise ValueError(f"{folder / _BANDS}: band sizes do not add up to {n_items} tracks")
        band_items = np.split(items, np.cumsum(sizes)[:-1]) if len(sizes) else []
        bands = []
        for band, expected in enumerate(sizes):
            index = AnnoyIndex(int(factors), METRIC)
            index.load(os.fspath(folder / _band_file(band)))
            if index.get_n_items() != expected:
                raise ValueError(
                    f"{folder / _band_file(band)}: holds {index.get_n_items()} tracks, bands.npz says {expected}"
                )
            bands.append(index)
        return cls(bands, band_items, norms, zero_items, int(n_items), int(factors), search_k)

    def query(self, vector: np.ndarray, n: int) -> np.ndarray:
        """Up to ``n`` track indices by decreasing inner product with ``vector`` (int64).

        Fewer than ``n`` come back only when Annoy's ``search_k`` is too small to reach ``n``
        tracks in the bands it visits.
        """
        vector = np.asarray(vector, dtype=np.float32)
        query_norm = float(np.linalg.norm(vector))
        found: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        count, kth = 0, -np.inf
        for index, items, band_norm in zip(self.bands, self.band_items, self.band_norms):
            if count >= n and query_norm * band_norm <= kth:
                break
            local, dots = index.get_nns_by_vector(vector, int(n), search_k=self.search_k, include_distances=True)
            found.append(items[np.asarray(local, dtype=np.int64)])
            scores.append(np.asarray(dots, dtype=np.float64))
            count += len(local)
            if count >= n:
                merged = np.concatenate(scores)
                kth = float(np.partition(merged, count - n)[count - n])
        if len(self.zero_items) and (count < n or kth < 0):
            found.append(self.zero_items[:n])
            scores.append(np.zeros(min(n, len(self.zero_items))))
        if not found:
            return np.empty(0, dtype=np.int64)
        merged_items, merged_scores = np.concatenate(found), np.concatenate(scores)
        # Stable sort: equal scores keep band order, so results are the same on every call.
        return merged_items[np.argsort(-merged_scores, kind="stable")[:n]]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of ``scores`` (1-D), largest first, ties by lower index (int64).

    A total order, so the first ``j`` of ``top_k(scores, k)`` are ``top_k(scores, j)`` for any
    ``j <= k``: a pool refilled by asking for more is the same as one asked for at once.
    """
    n = len(scores)
    if k >= n:
        return np.argsort(-scores, kind="stable").astype(np.int64)
    kth = np.partition(scores, n - k)[n - k]
    # Every score tied with the k-th is a candidate, so the tie-break sees them all.
    candidates = np.flatnonzero(scores >= kth)
    return candidates[np.argsort(-scores[candidates], kind="stable")[:k]].astype(np.int64)


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` items by inner product for each query, best first: ``(n_queries, k)`` int64.

    The reference that :class:`TrackIndex` is measured against (``ann_recall_at_100``): one
    matrix product for the batch, then :func:`top_k` per query.
    """
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(items, dtype=np.float32).T
    k = min(k, scores.shape[1])
    return np.stack([top_k(row, k) for row in scores]) if len(scores) else np.empty((0, k), dtype=np.int64)
