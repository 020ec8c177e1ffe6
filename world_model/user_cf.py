"""User-user collaborative filtering: neighbours by Pearson correlation of play vectors, found through Annoy.

The "socially similar" recommender (Resnick et al., "GroupLens", CSCW 1994; Herlocker et al.,
SIGIR 1999): listener ``u``'s play vector ``r_u`` holds, per track of the catalogue, how often
``u`` played it (the retrieval stage's ``heard`` counts; 0 for a track never played). Two
listeners are similar by the Pearson correlation of their play vectors over the whole catalogue,
and a track scores, for ``u``, by its neighbours' mean-centred plays weighted by their correlation
with ``u`` (Resnick's prediction formula)::

    score(u, t) = sum_v rho(u, v) * (r_vt - mean_v) / sum_v |rho(u, v)|

Finding the neighbours without a users x users matrix
    Pearson's correlation is the cosine of the centred vectors ``r_u - mean_u``. Centring makes a
    sparse vector dense (every unplayed track becomes ``-mean_u``), so the centred vectors are
    never formed: a Gaussian random projection ``P`` (``n_tracks x dim``, scikit-learn's
    :class:`~sklearn.random_projection.GaussianRandomProjection`) is linear, so
    ``(r_u - mean_u 1) P = r_u P - mean_u (1 P)``, one sparse product and a rank-one correction.
    By the Johnson-Lindenstrauss lemma the projection keeps inner products and norms to within
    ``O(1 / sqrt(dim))``, so the cosine of two projected centred vectors approximates their
    Pearson correlation. The unit-normalised projections go into an Annoy index
    (:class:`~world_model.ann_index.TrackIndex`, whose inner product on unit vectors is the
    cosine), which proposes ``OVERSAMPLE`` times the wanted neighbours per listener; their
    correlation is then computed **exactly** from the sparse vectors
    (``cov = r_u . r_v / n - mean_u mean_v``) and the best ``n_neighbours`` with a positive
    correlation are kept. The projection only chooses whom to compare: the weights are Pearson's.

ALS factors would not do: they are fitted to a confidence-weighted loss and regularised, so the
cosine of two users' factors is not the correlation of their plays.

As a pool source (``RetrievalConfig(source="user_cf")``), :class:`UserCFPool` ranks the whole
catalogue by the score for each listener (5,000 tracks in the default world: one sparse product
per listener), removes blocked and (on request) explicit tracks, and breaks ties (tracks no
neighbour played) by popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.random_projection import GaussianRandomProjection

from world_model.ann_index import TrackIndex, top_k

OVERSAMPLE = 3
"""Annoy proposes this many times ``n_neighbours`` per listener before the exact correlations decide."""


class UserNeighbours:
    """Each listener's nearest listeners by Pearson correlation of play vectors (module docstring).

    Build with :meth:`fit`.

    Attributes:
        plays: ``(n_users, n_tracks)`` float32 CSR play vectors.
        means: ``(n_users,)`` each play vector's mean over the catalogue.
        neighbours: ``(n_users, n_neighbours)`` int64 listener indices, best first, ``-1`` padded.
        correlations: ``(n_users, n_neighbours)`` float32 Pearson correlations, 0 where padded.
    """

    def __init__(self, plays: sp.csr_matrix, neighbours: np.ndarray, correlations: np.ndarray) -> None:
        self.plays = sp.csr_matrix(plays, dtype=np.float32)
        self.means = np.asarray(self.plays.sum(axis=1)).ravel() / max(self.plays.shape[1], 1)
        self.neighbours = np.asarray(neighbours, dtype=np.int64)
        self.correlations = np.asarray(correlations, dtype=np.float32)

    @property
    def n_users(self) -> int:
        return self.plays.shape[0]

    @property
    def n_tracks(self) -> int:
        return self.plays.shape[1]

    @classmethod
    def fit(
        cls, plays: sp.csr_matrix, n_neighbours: int = 50, dim: int = 64, n_trees: int = 10, seed: int = 0
    ) -> UserNeighbours:
        """Find every listener's ``n_neighbours`` most correlated listeners.

        Args:
            plays: ``(n_users, n_tracks)`` play counts (or any non-negative play values).
            n_neighbours: neighbours kept per listener (only positively correlated ones).
            dim: dimension of the random projection the Annoy index searches.
            n_trees: Annoy trees.
            seed: seeds the projection and the index.
        """
        plays = sp.csr_matrix(plays, dtype=np.float64)
        n_users, n_tracks = plays.shape
        means = np.asarray(plays.sum(axis=1)).ravel() / n_tracks
        projection = GaussianRandomProjection(n_components=dim, random_state=seed).fit(plays)
        centred = projection.transform(plays) - means[:, None] * projection.transform(np.ones((1, n_tracks)))
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
        index = TrackIndex.build(unit.astype(np.float32), n_trees, seed, search_k=-1, n_bands=1)
        squares = np.asarray(plays.multiply(plays).sum(axis=1)).ravel() / n_tracks - means**2
        spread = np.sqrt(np.maximum(squares, 0.0))
        neighbours = np.full((n_users, n_neighbours), -1, dtype=np.int64)
        correlations = np.zeros((n_users, n_neighbours), dtype=np.float32)
        for user in np.flatnonzero(spread > 0):
            proposed = index.query(unit[user], OVERSAMPLE * n_neighbours + 1)
            proposed = proposed[(proposed != user) & (spread[proposed] > 0)]
            covariance = (plays[proposed] @ plays[user].T).toarray().ravel() / n_tracks - means[user] * means[proposed]
            rho = covariance / (spread[user] * spread[proposed])
            best = np.argsort(-rho, kind="stable")[:n_neighbours]
            best = best[rho[best] > 0]
            neighbours[user, : len(best)] = proposed[best]
            correlations[user, : len(best)] = rho[best]
        return cls(plays, neighbours, correlations)

    def scores(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), n_tracks)`` float32 Resnick scores of every track for each listener.

        A listener without neighbours scores every track 0.
        """
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        neighbours, weights = self.neighbours[users], self.correlations[users].astype(np.float64)
        rows = np.repeat(np.arange(len(users)), neighbours.shape[1])
        kept = neighbours.ravel() >= 0
        mixing = sp.csr_matrix(
            (weights.ravel()[kept], (rows[kept], neighbours.ravel()[kept])), shape=(len(users), self.n_users)
        )
        total = np.abs(weights).sum(axis=1)
        weighted = (mixing @ self.plays).toarray() - (mixing @ self.means)[:, None]
        return (weighted / np.maximum(total, 1e-12)[:, None]).astype(np.float32)


class UserCFPool:
    """Candidate pools ranked by user-user CF scores; the interface of :class:`~world_model.candidates.CandidatePool`.

    Args:
        neighbours: the fitted :class:`UserNeighbours`.
        explicit: ``(n_tracks,)`` bool explicit flags.
        blocked: ``(n_users, n_tracks)`` CSR of tracks each listener must never be offered.
        popularity: ``(n_tracks,)`` play counts, which break ties (tracks no neighbour played).
    """

    def __init__(
        self, neighbours: UserNeighbours, explicit: np.ndarray, blocked: sp.csr_matrix, popularity: np.ndarray
    ) -> None:
        self.neighbours = neighbours
        self.explicit = np.asarray(explicit, dtype=bool)
        self.blocked = sp.csr_matrix(blocked)
        popularity = np.asarray(popularity, dtype=np.float64)
        # A tie-break below any score difference: popularity ranks, scaled into [0, 1e-6).
        self._tie_break = np.argsort(np.argsort(popularity, kind="stable"), kind="stable") * (1e-6 / len(popularity))

    @property
    def n_users(self) -> int:
        return self.neighbours.n_users

    @property
    def n_tracks(self) -> int:
        return self.neighbours.n_tracks

    def pools(self, user_indices: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(len(user_indices), size)`` int64 track indices, best first, ``-1`` padded."""
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        users = np.asarray(user_indices, dtype=np.int64).reshape(-1)
        out = np.full((len(users), size), -1, dtype=np.int64)
        for row, (user, scores) in enumerate(zip(users, self.neighbours.scores(users))):
            allowed = np.ones(self.n_tracks, dtype=bool)
            allowed[self.blocked.indices[self.blocked.indptr[user] : self.blocked.indptr[user + 1]]] = False
            if explicit_filter:
                allowed &= ~self.explicit
            ranked = top_k(np.where(allowed, scores.astype(np.float64) + self._tie_break, -np.inf), size)
            ranked = ranked[allowed[ranked]]
            out[row, : len(ranked)] = ranked
        return out

    def pool(self, user: int, size: int, explicit_filter: bool = False) -> np.ndarray:
        """One listener's pool, ``(size,)`` int64."""
        return self.pools(np.array([user]), size, explicit_filter)[0]
