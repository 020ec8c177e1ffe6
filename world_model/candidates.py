"""Candidate pools: the M tracks an agent may choose from for one user's session.

A pool is the user's ``M`` best tracks by the retrieval score (ALS inner product, ranked by the
Annoy index), best first, after the removals of docs/design.md ("Pools and masks"):

- tracks the user blocked, and every track of an artist the user blocked;
- with ``explicit_filter=True``, explicit tracks.

Removed tracks are replaced from further down the ranking: the index is asked for more
neighbours (twice as many each time) until ``M`` tracks survive, and when the whole catalogue has
been asked for, the rest of the pool is ``-1`` (padding, only when the catalogue runs out).
Annoy may return fewer items than asked when ``search_k`` is small, so that last step ranks the
catalogue exactly instead, and the padding then really means "no allowed track left".

Exact ranking
    A catalogue of at most ``exact_max_tracks`` tracks (default 20,000) is ranked exactly: every
    inner product, one matrix-vector product per user, ties broken by track index. Below that
    size brute force is both exact and faster than Annoy at the same recall (on the default
    ground-truth world's 5,000 tracks, ~8,000 against ~1,500 pools/s on one core; see
    ``benchmarks/retrieval.py``), while Annoy's cost grows only logarithmically with the
    catalogue, so larger catalogues go through the index. The Annoy index is built either way,
    so a retrieval stage saved for one size of catalogue serves any setting.

Tracks the user has already heard are allowed: familiar tracks are legitimate, often the best,
recommendations (much of real listening is repeat listening), and the response models know the
user's history. A user whose vector is all zeros (no play with a non-zero weight) has no taste to
rank by and gets the catalogue by popularity (play count in the log) instead.

Exploration
    With ``exploration_share > 0``, ``round(exploration_share * M)`` slots at the end of the pool
    go to popular tracks the user has never played (in the log the retrieval was fitted on) and
    that the ranked part does not already hold: drawn without replacement, with probability
    proportional to their play count, from the ``EXPLORATION_UNIVERSE * M`` most played tracks.
    The draw is seeded by ``(seed, user)``, so a user's pool is the same in every batch and
    every run. The default share is 0: the pool is pure retrieval, as in Tomasi et al. (KDD
    2023); exploration is there for agents that should discover beyond the collaborative filter.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from world_model.ann_index import TrackIndex, top_k

EXPLORATION_UNIVERSE = 10
"""Exploration draws from the ``EXPLORATION_UNIVERSE * M`` most played tracks: popular enough to
be safe discoveries, many enough that users get different ones."""


def _row(matrix: sp.csr_matrix, row: int) -> np.ndarray:
    return matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]


class CandidatePool:
    """Builds candidate pools for users, one at a time or in batches.

    Args:
        user_vectors: ``(n_users, f)`` float32 ALS user factors.
        track_vectors: ``(n_tracks, f)`` float32 ALS track factors, row = track index.
        index: the Annoy index over ``track_vectors``.
        explicit: ``(n_tracks,)`` bool explicit flags.
        blocked: ``(n_users, n_tracks)`` CSR whose row ``u`` lists the tracks user ``u`` must never
            be offered (blocked tracks and the tracks of blocked artists).
        heard: ``(n_users, n_tracks)`` CSR whose row ``u`` lists the tracks ``u`` played.
        popularity: ``(n_tracks,)`` play counts.
        exploration_share: share of each pool given to exploration (see the module docstring).
        seed: seeds the exploration draws.
        exact_max_tracks: catalogues up to this size are ranked exactly instead of through
            ``index`` (see the module docstring, "Exact ranking"); 0 always uses the index.
    """

    def __init__(
        self,
        user_vectors: np.ndarray,
        track_vectors: np.ndarray,
        index: TrackIndex,
        explicit: np.ndarray,
        blocked: sp.csr_matrix,
        heard: sp.csr_matrix,
        popularity: np.ndarray,
        exploration_share: float = 0.0,
        seed: int = 0,
        exact_max_tracks: int = 20_000,
    ) -> None:
        n_users, n_tracks = len(user_vectors), len(track_vectors)
        if index.n_items != n_tracks:
            raise ValueError(f"index holds {index.n_items} items, expected {n_tracks} tracks")
        for name, matrix in (("blocked", blocked), ("heard", heard)):
            if matrix.shape != (n_users, n_tracks):
                raise ValueError(f"{name} has shape {matrix.shape}, expected {(n_users, n_tracks)}")
        if not 0.0 <= exploration_share <= 1.0:
            raise ValueError(f"exploration_share must lie in [0, 1], got {exploration_share}")
        self.user_vectors = user_vectors
        self.track_vectors = track_vectors
        self.index = index
        self.explicit = np.asarray(explicit, dtype=bool)
        self.blocked = blocked
        self.heard = heard
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self.exploration_share = float(exploration_share)
        self.seed = int(seed)
        self.n_tracks = n_tracks
        self.exact = n_tracks <= exact_max_tracks
        self._by_popularity = np.argsort(-self.popularity, kind="stable")
        self._has_taste = np.any(user_vectors != 0, axis=1)
        # The expected share of explicit tracks sizes the first index query under the filter,
        # so that one query usually suffices.
        self._explicit_share = float(self.explicit.mean()) if n_tracks else 0.0

    @property
    def n_users(self) -> int:
        return len(self.user_vectors)

    def pools(self, user_indices: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """Pools of ``size`` track indices for each user: ``(len(user_indices), size)`` int64.

        Row ``b`` is exactly :meth:`pool` of ``user_indices[b]``; ``-1`` pads a pool only when
        the catalogue has fewer allowed tracks than ``size``.
        """
        users = np.asarray(user_indices, dtype=np.int64).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            raise IndexError(f"user indices must lie in [0, {self.n_users}), got {users.min()}..{users.max()}")
        out = np.full((len(users), size), -1, dtype=np.int64)
        for row, user in enumerate(users):
            pool = self._pool(int(user), size, explicit_filter)
            out[row, : len(pool)] = pool
        return out

    def pool(self, user: int, size: int, explicit_filter: bool = False) -> np.ndarray:
        """One user's pool, ``(size,)`` int64, best first, ``-1`` padded."""
        return self.pools(np.array([user]), size, explicit_filter)[0]

    def _pool(self, user: int, size: int, explicit_filter: bool) -> np.ndarray:
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        ranked = self._ranked(user, size, explicit_filter)
        n_explore = int(round(self.exploration_share * size))
        if n_explore == 0:
            return ranked
        explore = self._explore(user, n_explore, size, explicit_filter, ranked)
        return np.concatenate([ranked[: size - len(explore)], explore])

    def _allowed(self, tracks: np.ndarray, user: int, explicit_filter: bool) -> np.ndarray:
        keep = ~self.explicit[tracks] if explicit_filter else np.ones(len(tracks), dtype=bool)
        blocked = _row(self.blocked, user)
        if len(blocked):
            keep &= ~np.isin(tracks, blocked)
        return tracks[keep]

    def _ranked(self, user: int, n: int, explicit_filter: bool) -> np.ndarray:
        """Up to ``n`` allowed tracks by decreasing score (fewer only if the catalogue runs out)."""
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if not self._has_taste[user]:
            return self._allowed(self._by_popularity, user, explicit_filter)[:n]
        vector = self.user_vectors[user]
        if self.exact:
            scores = self.track_vectors @ vector

            def ranking(k: int) -> np.ndarray:
                return top_k(scores, k)

        else:

            def ranking(k: int) -> np.ndarray:
                return self.index.query(vector, k)

        wanted = n + len(_row(self.blocked, user))
        if explicit_filter:
            wanted = wanted / max(1.0 - self._explicit_share, 0.05)
        k = min(int(wanted * 1.1) + 10, self.n_tracks)
        while True:
            candidates = ranking(k)
            allowed = self._allowed(candidates, user, explicit_filter)
            if len(allowed) >= n:
                return allowed[:n]
            if k == self.n_tracks:
                break
            k = min(2 * k, self.n_tracks)
        if len(candidates) == self.n_tracks:
            return allowed
        # Annoy returned less than the catalogue it was asked for; rank it exactly instead.
        return self._allowed(top_k(self.track_vectors @ vector, self.n_tracks), user, explicit_filter)[:n]

    def _explore(self, user: int, n: int, size: int, explicit_filter: bool, ranked: np.ndarray) -> np.ndarray:
        """Up to ``n`` popular tracks ``user`` never played, outside ``ranked``, drawn ∝ plays."""
        universe = self._by_popularity[: EXPLORATION_UNIVERSE * size]
        universe = universe[self.popularity[universe] > 0]
        rng = np.random.default_rng([self.seed, user])
        # Gumbel-top-k: sorting log-weights plus Gumbel noise draws without replacement ∝ weight.
        keys = np.log(self.popularity[universe]) + rng.gumbel(size=len(universe))
        drawn = universe[np.argsort(-keys, kind="stable")]
        drawn = drawn[~np.isin(drawn, _row(self.heard, user)) & ~np.isin(drawn, ranked)]
        return self._allowed(drawn, user, explicit_filter)[:n]


class PoolCache:
    """Remembers pools already built, so that a listener's next session does not rank the catalogue again.

    A pool is a deterministic function of (user, size, explicit filter): the ranking, the blocks
    and the seeded exploration draw never change once the retrieval stage is fitted (whoever
    changes the source's vectors, blocks or settings afterwards must :meth:`clear` the cache). An
    environment starts a session for a listener it has very likely seen before (the default
    world has a few thousand listeners; a vector env starts a dozen sessions a step), so the
    environments ask through this cache and rank each listener once. Rows are stored as int32;
    when they would exceed ``max_bytes`` the oldest half is forgotten (first in, first out), so
    memory stays bounded on a catalogue-scale world while a working set of listeners stays warm.

    Args:
        source: what builds pools on a miss (:class:`CandidatePool` or :class:`MixedPool`).
        max_bytes: the bound on the cached rows (default 64 MiB: ~160,000 pools of 100 tracks).
    """

    def __init__(self, source: CandidatePool | MixedPool, max_bytes: int = 64 << 20) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be non-negative, got {max_bytes}")
        self.source = source
        self.max_bytes = int(max_bytes)
        self._rows: dict[tuple[int, int, bool], np.ndarray] = {}
        self._bytes = 0

    @property
    def n_users(self) -> int:
        return self.source.n_users

    @property
    def n_tracks(self) -> int:
        return self.source.n_tracks

    def pools(self, user_indices: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(len(user_indices), size)`` int64 pools, equal to ``source.pools`` of the same arguments."""
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        users = np.asarray(user_indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(users), size), dtype=np.int64)
        missing = []
        for row, user in enumerate(users.tolist()):
            cached = self._rows.get((user, size, explicit_filter))
            if cached is None:
                missing.append(row)
            else:
                out[row] = cached
        if missing:
            fresh = self.source.pools(users[missing], size, explicit_filter)
            out[missing] = fresh
            self._remember(users[missing].tolist(), size, explicit_filter, fresh)
        return out

    def pool(self, user: int, size: int, explicit_filter: bool = False) -> np.ndarray:
        """One user's pool, ``(size,)`` int64."""
        return self.pools(np.array([user]), size, explicit_filter)[0]

    def clear(self) -> None:
        """Forget every cached pool."""
        self._rows.clear()
        self._bytes = 0

    def _remember(self, users: list[int], size: int, explicit_filter: bool, pools: np.ndarray) -> None:
        row_bytes = 4 * size
        for user, pool in zip(users, pools.astype(np.int32)):
            key = (user, size, explicit_filter)
            if key in self._rows:  # the same user twice in one batch
                continue
            if self._bytes + row_bytes > self.max_bytes:
                self._forget_oldest_half()
                if row_bytes > self.max_bytes:
                    return
            self._rows[key] = pool
            self._bytes += row_bytes

    def _forget_oldest_half(self) -> None:
        keys = list(self._rows)[: (len(self._rows) + 1) // 2]
        for key in keys:
            self._bytes -= self._rows.pop(key).nbytes


def _quantiles(n: int) -> np.ndarray:
    """Rank quantiles ``(i + 0.5) / n`` of ``n`` ranked items."""
    return (np.arange(n) + 0.5) / max(n, 1)


class MixedPool:
    """Pools that take a share of their tracks from one ranking and the rest from another.

    Each pool of size ``M`` takes the best ``round(first_share * M)`` tracks of ``first``'s pool,
    then the best tracks of ``second``'s pool that are not among them, until ``M``; both are
    interleaved by rank quantile (the ``i``-th of ``k`` tracks of a part sits at ``(i + 0.5) / k``),
    so neither part is pushed to the end of the pool, where agents that break ties by slot would
    never reach it. When the parts overlap so much that ``M`` distinct tracks are not reached, the
    rest of ``first``'s pool, then of ``second``'s, fills in; ``-1`` pads only when both run out.
    Blocks and the explicit filter apply through both parts.

    Args:
        first: the pool whose share is ``first_share`` (the sequence source, in the retrieval stage).
        second: the pool that fills the rest (ALS).
        first_share: share of ``first``'s tracks in each pool, in ``[0, 1]``.
    """

    def __init__(self, first: CandidatePool, second: CandidatePool, first_share: float) -> None:
        if not 0.0 <= first_share <= 1.0:
            raise ValueError(f"first_share must lie in [0, 1], got {first_share}")
        if first.n_users != second.n_users or first.n_tracks != second.n_tracks:
            raise ValueError("the two pools of a MixedPool must have the same users and tracks")
        self.first, self.second, self.first_share = first, second, float(first_share)
        self.n_tracks = first.n_tracks

    @property
    def n_users(self) -> int:
        return self.first.n_users

    def pools(self, user_indices: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """``(len(user_indices), size)`` int64 mixed pools, ``-1`` padded (see the class docstring)."""
        first = self.first.pools(user_indices, size, explicit_filter)
        second = self.second.pools(user_indices, size, explicit_filter)
        n_first = int(round(self.first_share * size))
        out = np.full_like(first, -1)
        for row, (a, b) in enumerate(zip(first, second)):
            a, b = a[a >= 0], b[b >= 0]
            head_a = a[:n_first]
            head_b = b[~np.isin(b, head_a)][: size - len(head_a)]
            keys = np.concatenate([_quantiles(len(head_a)), _quantiles(len(head_b))])
            merged = np.concatenate([head_a, head_b])[np.argsort(keys, kind="stable")]
            if len(merged) < size:
                rest = np.concatenate([a[n_first:], b])
                rest = rest[~np.isin(rest, merged)]
                _, first_seen = np.unique(rest, return_index=True)
                merged = np.concatenate([merged, rest[np.sort(first_seen)]])[:size]
            out[row, : len(merged)] = merged
        return out

    def pool(self, user: int, size: int, explicit_filter: bool = False) -> np.ndarray:
        """One user's mixed pool, ``(size,)`` int64."""
        return self.pools(np.array([user]), size, explicit_filter)[0]
