"""The ground-truth world's population: genres, artists, tracks, listeners, libraries, block lists.

Everything is drawn from one ``np.random.Generator`` in a fixed order, so a seed gives the same
catalogue bit for bit. Nothing here is ever users x tracks: a listener's knowledge of the
catalogue is their *library*, a sorted array of ``user * n_tracks + track`` keys (about
``library_size_mean`` per listener), queried with ``np.searchsorted``.

Taste
    Genres have random unit centroids in a ``taste_dim``-dimensional space. An artist sits near
    its genre's centroid; a track near its artist (10% of tracks stray into another genre). A
    listener likes one to three genres, weighted, and their taste is a unit vector near the
    weighted mix of those centroids. Taste match is the cosine of listener and track vectors.

Popularity
    Listeners' own choices and libraries draw tracks in proportion to ``exp(log popularity)``, so
    plays per track come out long-tailed. An artist's popularity is its share of that mass, the
    same whatever its number of tracks: its log share is a *stratified* normal draw (sd
    ``artist_popularity_sd``), and its tracks split it by lognormal weights (sd
    ``track_popularity_sd``). ``popularity_z`` is the standardized log popularity.

    Why stratified and per artist: the mass is exponential in the draw, so the world's few
    biggest artists decide who is heard. With independent normal draws, and an artist's mass
    growing with its number of tracks, the largest artist held 72% of the mass in seed 7, 44-46%
    in seeds 1 and 9, and 7-32% in the other seeds below 14; seed 7's logs went to that artist's
    poorly matched tracks (44% of plays) and skipped 0.59 of plays against 0.50-0.54. A stratified
    draw gives every world the same set of values, the normal quantiles at ``(rank + 0.5) / n``
    in a random order, so worlds differ in which artist is big, never in how big the biggest are
    (the largest holds 11% at the default sizes).

Listeners
    A listener's utility offset (sd ``user_bias_sd``), log activity (sd ``activity_sd``) and log
    preference for each context type (sd ``context_spread``) are stratified the same way, so no
    world's population is, on average, more inclined to skip, more dominated by a few heavy
    listeners, or fonder of a context than another's.

Track features
    The 21 features of the MSSD's track file (``duration`` ... ``valence``) follow the MSSD's
    marginals: a Gaussian copula (genre effects, artist effects, a shared "intensity" factor that
    ties energy, loudness and acousticness together, and noise) is rank-transformed to uniforms
    and mapped through a monotone quantile function through the MSSD's min, quartiles and max
    (:data:`MSSD_FEATURE_STATS`), whose two outer segments are power curves shaped to match the
    MSSD's mean and sd. ``us_pop_estimate`` is the quantile of the track's popularity rank, so it
    is exactly monotone in popularity. ``mode`` is 1 for the MSSD's share of tracks; ``key``,
    ``time_signature`` and ``release_year`` are rounded. ``acoustic_vector_0..7`` (the MSSD's
    learned audio embedding) are a fixed random linear image of the track's taste vector plus
    noise: content that carries some, not all, of the taste signal (assumption).

Libraries
    Each listener knows a lognormal number of tracks (mean ``library_size_mean``, at least 10):
    twice as many candidates are drawn (70% from their genres, 30% from the whole catalogue, both
    by popularity) and the best by taste match plus Gumbel noise are kept.

Block lists
    ``block_user_share`` of listeners block 1 to 3 popular tracks they dislike most (lowest taste
    match among 12 popular draws), and 30% of them also the artist of another such track. Blocked
    tracks (and every track of a blocked artist) are removed from their library.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.special import ndtri

from musicenv.groundtruth.config import GENRES, GroundTruthConfig

MSSD_FEATURE_FILE = Path(__file__).with_name("mssd_features.json")
"""The MSSD's per-feature marginals (package data): for each feature, its min, quartiles, max,
mean and sd over the MSSD's 3,604,454 tracks, in the order of the file's ``columns``."""
MSSD_FEATURE_STATS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    name: tuple(row) for name, row in json.loads(MSSD_FEATURE_FILE.read_text())["features"].items()
}
"""Feature -> ``(min, q25, median, q75, max, mean, sd)``, read from :data:`MSSD_FEATURE_FILE`."""

ACOUSTIC_VECTOR_DIM = 8
"""The MSSD's ``acoustic_vector_0..7``."""
FEATURE_NAMES: tuple[str, ...] = (
    *MSSD_FEATURE_STATS,
    *(f"acoustic_vector_{i}" for i in range(ACOUSTIC_VECTOR_DIM)),
)
"""Track feature columns, in the order of :data:`musicenv.data.ACOUSTIC_FEATURES`."""
INTEGER_FEATURES = ("release_year", "key", "time_signature")
SOUND_FEATURES: tuple[str, ...] = ("energy", "valence", "danceability", "acousticness", "tempo", "loudness")
"""Features whose standardized values make a track's "sound": the acoustic-transition effect
penalizes the distance between consecutive sounds."""

# Loadings of the shared "intensity" factor on the copula's latent scores (assumption: loud,
# energetic tracks are rarely acoustic or organic).
_INTENSITY = {
    "energy": 0.9,
    "loudness": 0.8,
    "acousticness": -0.8,
    "danceability": 0.4,
    "valence": 0.4,
    "beat": 0.4,
    "bounciness": 0.4,
    "tempo": 0.3,
    "mechanism": 0.5,
    "organism": -0.5,
    "dyn_range_mean": -0.4,
}
_GENRE_FEATURE_SD = 0.8  # sd of a genre's shift of each latent feature score (assumption)
_ARTIST_FEATURE_SD = 0.8  # sd of an artist's shift (assumption)
_STRAY_SHARE = 0.1  # share of tracks outside their artist's genre (assumption)
_HIP_HOP_EXPLICIT_FACTOR = 4.0  # hip-hop's explicit rate relative to other genres (assumption)
_LIBRARY_MIN = 10
_LIBRARY_LOG_SD = 0.6
_LIBRARY_GENRE_SHARE = 0.7
_LIBRARY_CHUNK = 20_000  # listeners per chunk when drawing libraries (bounds memory at scale)
# Diurnal weight of favourite listening hours 0..23 (assumption: quiet nights, peaks at commute,
# lunch and evening).
_HOUR_WEIGHTS = np.array(
    [2, 1.2, 0.8, 0.5, 0.4, 0.6, 1.5, 3, 4, 3.5, 3.2, 3.4, 4, 3.8, 3.6, 3.8, 4.2, 4.8, 5, 5, 4.8, 4.4, 3.8, 3]
)


@dataclass(frozen=True)
class Catalogue:
    """The arrays of a ground-truth world's population (all indexed by integer ids).

    Tracks are ordered by artist: artist ``a`` has tracks ``artist_start[a]:artist_start[a+1]``.
    """

    genre_centroids: np.ndarray  # (G, D) unit taste centroids
    artist_genre: np.ndarray  # (A,) int16
    artist_start: np.ndarray  # (A + 1,) int64
    track_artist: np.ndarray  # (T,) int32
    track_genre: np.ndarray  # (T,) int16
    track_taste: np.ndarray  # (T, D) float64, unit vectors
    log_popularity: np.ndarray  # (T,) float64
    popularity_z: np.ndarray  # (T,) float64, standardized log popularity
    track_sound: np.ndarray  # (T, len(SOUND_FEATURES)) float64, standardized
    explicit: np.ndarray  # (T,) bool
    features: np.ndarray  # (T, len(FEATURE_NAMES)) float32, MSSD-like features
    user_taste: np.ndarray  # (U, D) float64, unit vectors
    user_bias: np.ndarray  # (U,) float64
    premium: np.ndarray  # (U,) bool
    activity: np.ndarray  # (U,) float64, relative session rate
    context_logits: np.ndarray  # (U, n_contexts) float64, the listener's own preference
    peak_hour: np.ndarray  # (U,) int64
    user_genres: np.ndarray  # (U, 3) int64 favourite genres (repeats pad short lists)
    user_genre_weights: np.ndarray  # (U, 3) float64, rows sum to 1
    library_keys: np.ndarray  # sorted int64 user * T + track: tracks the listener knows
    block_keys: np.ndarray  # sorted int64 user * T + track: blocked tracks, artists expanded
    block_user: np.ndarray  # (n_blocks,) int64
    block_track: np.ndarray  # (n_blocks,) int64, -1 for an artist block
    block_artist: np.ndarray  # (n_blocks,) int64, -1 for a track block

    @property
    def n_tracks(self) -> int:
        return len(self.track_artist)

    def library_indptr(self) -> np.ndarray:
        """``(U + 1,)`` offsets: listener ``u``'s library is ``library_keys[indptr[u]:indptr[u+1]]``."""
        n_users = len(self.user_taste)
        bounds = np.arange(n_users + 1, dtype=np.int64) * self.n_tracks
        return np.searchsorted(self.library_keys, bounds)


def build_catalogue(config: GroundTruthConfig, rng: np.random.Generator) -> Catalogue:
    """Draw the whole population of a world from ``rng``."""
    n_genres, dim = len(GENRES), config.taste_dim
    genre_share = rng.dirichlet(np.full(n_genres, 4.0))
    genre_centroids = _unit(rng.standard_normal((n_genres, dim)))

    # Artists and their tracks (tracks grouped by artist).
    artist_genre = rng.choice(n_genres, size=config.n_artists, p=genre_share).astype(np.int16)
    artist_offset = rng.standard_normal((config.n_artists, dim)) * (0.6 / np.sqrt(dim))
    artist_log_share = stratified_normal(rng, config.n_artists) * config.artist_popularity_sd
    artist_size_weight = rng.lognormal(0.0, 0.8, config.n_artists)
    extra = rng.multinomial(config.n_tracks - config.n_artists, artist_size_weight / artist_size_weight.sum())
    artist_counts = 1 + extra
    artist_start = np.concatenate([[0], np.cumsum(artist_counts)]).astype(np.int64)
    track_artist = np.repeat(np.arange(config.n_artists, dtype=np.int32), artist_counts)
    n_tracks = config.n_tracks

    stray = rng.random(n_tracks) < _STRAY_SHARE
    track_genre = np.where(stray, rng.choice(n_genres, size=n_tracks, p=genre_share), artist_genre[track_artist])
    track_genre = track_genre.astype(np.int16)
    track_taste = _unit(
        genre_centroids[track_genre]
        + artist_offset[track_artist]
        + rng.standard_normal((n_tracks, dim)) * (0.4 / np.sqrt(dim))
    )
    # Tracks split their artist's mass: the artist's share stays what was drawn, however many
    # tracks it has (a prolific artist's tracks are each less popular, not the artist more).
    track_weight = np.exp(rng.standard_normal(n_tracks) * config.track_popularity_sd)
    within_artist = track_weight / np.bincount(track_artist, weights=track_weight)[track_artist]
    log_pop = artist_log_share[track_artist] + np.log(within_artist)
    popularity_z = (log_pop - log_pop.mean()) / max(log_pop.std(), 1e-12)

    features = _track_features(rng, track_genre, track_artist, track_taste, log_pop, config.n_artists)
    sound_columns = [FEATURE_NAMES.index(name) for name in SOUND_FEATURES]
    sound = features[:, sound_columns].astype(np.float64)
    track_sound = (sound - sound.mean(axis=0)) / np.maximum(sound.std(axis=0), 1e-12)

    explicit_rate = np.where(np.arange(n_genres) == GENRES.index("hip_hop"), _HIP_HOP_EXPLICIT_FACTOR, 1.0)
    explicit_rate *= config.explicit_share / float(explicit_rate @ genre_share)
    explicit = rng.random(n_tracks) < explicit_rate[track_genre]

    # Listeners.
    n_users = config.n_users
    n_favourites = rng.choice([1, 2, 3], size=n_users, p=[0.3, 0.4, 0.3])
    genre_keys = np.log(genre_share) + rng.gumbel(size=(n_users, n_genres))
    ranked_genres = np.argsort(-genre_keys, axis=1)[:, :3]
    # A listener with fewer than three genres repeats their first (weight 0) to keep arrays square.
    slot = np.arange(3)[None, :]
    user_genres = np.where(slot < n_favourites[:, None], ranked_genres, ranked_genres[:, :1])
    raw_weights = rng.dirichlet(np.ones(3), size=n_users) * (slot < n_favourites[:, None])
    user_genre_weights = raw_weights / raw_weights.sum(axis=1, keepdims=True)
    user_taste = _unit(
        np.einsum("uk,ukd->ud", user_genre_weights, genre_centroids[user_genres])
        + rng.standard_normal((n_users, dim)) * (0.35 / np.sqrt(dim))
    )
    user_bias = stratified_normal(rng, n_users) * config.user_bias_sd
    premium = rng.random(n_users) < config.premium_share
    activity = np.exp(stratified_normal(rng, n_users) * config.activity_sd)
    n_contexts = len(config.context_weights)
    context_logits = np.log(np.asarray(config.context_weights)) + config.context_spread * np.stack(
        [stratified_normal(rng, n_users) for _ in range(n_contexts)], axis=1
    )
    peak_hour = rng.choice(24, size=n_users, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())

    sampler = PopularitySampler(log_pop, track_genre, n_genres)
    block_user, block_track, block_artist = _block_lists(config, rng, user_taste, track_taste, track_artist, sampler)
    block_keys = _block_keys(block_user, block_track, block_artist, artist_start, n_tracks)
    library_keys = _libraries(
        config, rng, user_taste, track_taste, user_genres, user_genre_weights, sampler, block_keys
    )
    return Catalogue(
        genre_centroids=genre_centroids,
        artist_genre=artist_genre,
        artist_start=artist_start,
        track_artist=track_artist,
        track_genre=track_genre,
        track_taste=track_taste,
        log_popularity=log_pop,
        popularity_z=popularity_z,
        track_sound=track_sound,
        explicit=explicit,
        features=features,
        user_taste=user_taste,
        user_bias=user_bias,
        premium=premium,
        activity=activity,
        context_logits=context_logits,
        peak_hour=peak_hour,
        user_genres=user_genres,
        user_genre_weights=user_genre_weights,
        library_keys=library_keys,
        block_keys=block_keys,
        block_user=block_user,
        block_track=block_track,
        block_artist=block_artist,
    )


def stratified_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` standard normal values, one in each of ``n`` equal-probability strata, in random order.

    The values are the normal quantiles at ``(k + 0.5) / n``, ``k = 0 .. n-1``, permuted by
    ``rng``: marginally each is a standard normal draw, but their mean is exactly 0 and their
    extremes are the same in every world (3.1 sd for ``n = 500``), where independent draws put
    the largest of 500 anywhere from about 2.5 to 4.2 sd: at ``artist_popularity_sd`` 1.8,
    ``exp`` turns that gap into a factor of 20 in the biggest artist's mass.
    """
    return ndtri((rng.permutation(n) + 0.5) / n)


class PopularitySampler:
    """Draws tracks with probability proportional to popularity, overall or within a genre.

    One cumulative sum over the tracks ordered by genre serves both: a genre's tracks are a
    contiguous range of it, so a draw is a uniform in that range's mass and one searchsorted.
    """

    def __init__(self, log_popularity: np.ndarray, track_genre: np.ndarray, n_genres: int) -> None:
        self.order = np.argsort(track_genre, kind="stable")
        weight = np.exp(log_popularity[self.order] - log_popularity.max())
        self.cumulative = np.cumsum(weight)
        ends = np.searchsorted(track_genre[self.order], np.arange(n_genres), side="right")
        self.genre_mass_end = self.cumulative[np.maximum(ends - 1, 0)] * (ends > 0)
        self.genre_mass_start = np.concatenate([[0.0], self.genre_mass_end[:-1]])

    def overall(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Track indices drawn by popularity from the whole catalogue."""
        return self._at(rng.random(size) * self.cumulative[-1])

    def in_genres(self, rng: np.random.Generator, genres: np.ndarray) -> np.ndarray:
        """One track per entry of ``genres``, drawn by popularity within that genre."""
        start, end = self.genre_mass_start[genres], self.genre_mass_end[genres]
        return self._at(start + rng.random(genres.shape) * (end - start))

    def _at(self, mass: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.cumulative, mass, side="right")
        return self.order[np.minimum(index, len(self.order) - 1)]


def quantile_curve(stats: tuple[float, ...], u: np.ndarray) -> np.ndarray:
    """The monotone quantile function of a feature at uniforms ``u``.

    Linear between the quartiles; the outer quarters are power curves
    ``q25 - (q25 - min) (1 - v)^a`` and ``q75 + (max - q75) w^b`` whose exponents match the
    MSSD's mean and sd (see :func:`tail_exponents`).
    """
    low, q25, median, q75, high = stats[:5]
    a, b = tail_exponents(stats)
    v = np.clip(u / 0.25, 0.0, 1.0)
    w = np.clip((u - 0.75) / 0.25, 0.0, 1.0)
    middle = np.interp(u, [0.25, 0.5, 0.75], [q25, median, q75])
    return np.where(u < 0.25, q25 - (q25 - low) * (1.0 - v) ** a, np.where(u > 0.75, q75 + (high - q75) * w**b, middle))


@functools.cache
def tail_exponents(stats: tuple[float, ...]) -> tuple[float, float]:
    """Exponents ``(a, b)`` of the outer quarters that match the mean and sd in ``stats``."""
    low, q25, median, q75, high, mean, sd = stats

    def moments(log_ab: np.ndarray) -> np.ndarray:
        a, b = np.exp(log_ab)
        below, above = q25 - low, high - q75
        first = [q25 - below / (a + 1), (q25 + median) / 2, (median + q75) / 2, q75 + above / (b + 1)]
        second = [
            q25**2 - 2 * q25 * below / (a + 1) + below**2 / (2 * a + 1),
            (q25**2 + q25 * median + median**2) / 3,
            (median**2 + median * q75 + q75**2) / 3,
            q75**2 + 2 * q75 * above / (b + 1) + above**2 / (2 * b + 1),
        ]
        m, e2 = np.mean(first), np.mean(second)
        return np.array([m - mean, np.sqrt(max(e2 - m * m, 0.0)) - sd]) / sd

    bound = np.log([0.2, 500.0])
    fit = least_squares(moments, np.zeros(2), bounds=([bound[0]] * 2, [bound[1]] * 2))
    return float(np.exp(fit.x[0])), float(np.exp(fit.x[1]))


def _track_features(
    rng: np.random.Generator,
    track_genre: np.ndarray,
    track_artist: np.ndarray,
    track_taste: np.ndarray,
    log_pop: np.ndarray,
    n_artists: int,
) -> np.ndarray:
    n_tracks, n_stats = len(track_genre), len(MSSD_FEATURE_STATS)
    names = list(MSSD_FEATURE_STATS)
    loadings = np.array([_INTENSITY.get(name, 0.0) for name in names], dtype=np.float32)
    genre_shift = (rng.standard_normal((len(GENRES), n_stats)) * _GENRE_FEATURE_SD).astype(np.float32)
    artist_shift = (rng.standard_normal((n_artists, n_stats)) * _ARTIST_FEATURE_SD).astype(np.float32)
    intensity = (genre_shift[:, names.index("energy")][track_genre] + rng.standard_normal(n_tracks)).astype(np.float32)
    latent = genre_shift[track_genre] + artist_shift[track_artist] + intensity[:, None] * loadings
    latent += rng.standard_normal((n_tracks, n_stats), dtype=np.float32)
    latent[:, names.index("us_pop_estimate")] = log_pop

    features = np.empty((n_tracks, len(FEATURE_NAMES)), dtype=np.float32)
    for column, (name, stats) in enumerate(MSSD_FEATURE_STATS.items()):
        # Ranks make the copula's marginals exactly uniform whatever the mixture of genres.
        ranks = np.empty(n_tracks, dtype=np.float64)
        ranks[np.argsort(latent[:, column], kind="stable")] = np.arange(n_tracks)
        u = (ranks + 0.5) / n_tracks
        if name == "mode":
            values = (u > 1.0 - stats[5]).astype(np.float64)
        else:
            values = quantile_curve(stats, u)
            if name in INTEGER_FEATURES:
                values = np.round(values)
        features[:, column] = values

    dim = track_taste.shape[1]
    projection = rng.standard_normal((dim, ACOUSTIC_VECTOR_DIM)) / np.sqrt(dim)
    acoustic = 0.8 * track_taste @ projection + 0.2 * rng.standard_normal((n_tracks, ACOUSTIC_VECTOR_DIM))
    features[:, n_stats:] = acoustic
    return features


def _block_lists(
    config: GroundTruthConfig,
    rng: np.random.Generator,
    user_taste: np.ndarray,
    track_taste: np.ndarray,
    track_artist: np.ndarray,
    sampler: PopularitySampler,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users = np.flatnonzero(rng.random(len(user_taste)) < config.block_user_share)
    n_draws = 12
    drawn = sampler.overall(rng, (len(users), n_draws))
    match = np.einsum("ud,ukd->uk", user_taste[users], track_taste[drawn])
    # Sort each listener's popular draws from most to least disliked; duplicates are dropped later.
    disliked = np.take_along_axis(drawn, np.argsort(match, axis=1), axis=1)
    n_track_blocks = rng.integers(1, 4, size=len(users))
    track_rows = np.repeat(np.arange(len(users)), n_track_blocks)
    track_slots = np.arange(len(track_rows)) - np.repeat(np.cumsum(n_track_blocks) - n_track_blocks, n_track_blocks)
    blocks_artist = rng.random(len(users)) < 0.3
    artist_rows = np.flatnonzero(blocks_artist)
    block_user = np.concatenate([users[track_rows], users[artist_rows]]).astype(np.int64)
    block_track = np.concatenate([disliked[track_rows, track_slots], np.full(len(artist_rows), -1)]).astype(np.int64)
    block_artist = np.concatenate([np.full(len(track_rows), -1), track_artist[disliked[artist_rows, 3]]]).astype(
        np.int64
    )
    # One row per distinct block, ordered by listener.
    key = np.stack([block_user, block_track, block_artist], axis=1)
    key = np.unique(key, axis=0)
    return key[:, 0].copy(), key[:, 1].copy(), key[:, 2].copy()


def _block_keys(
    block_user: np.ndarray,
    block_track: np.ndarray,
    block_artist: np.ndarray,
    artist_start: np.ndarray,
    n_tracks: int,
) -> np.ndarray:
    """Sorted ``user * n_tracks + track`` keys of every blocked track, artist blocks expanded."""
    by_track = block_track >= 0
    artists = block_artist[~by_track]
    counts = artist_start[artists + 1] - artist_start[artists]
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    artist_tracks = np.repeat(artist_start[artists], counts) + offsets
    users = np.concatenate([block_user[by_track], np.repeat(block_user[~by_track], counts)])
    tracks = np.concatenate([block_track[by_track], artist_tracks])
    return np.unique(users * n_tracks + tracks)


def _libraries(
    config: GroundTruthConfig,
    rng: np.random.Generator,
    user_taste: np.ndarray,
    track_taste: np.ndarray,
    user_genres: np.ndarray,
    user_genre_weights: np.ndarray,
    sampler: PopularitySampler,
    block_keys: np.ndarray,
) -> np.ndarray:
    n_users, n_tracks = len(user_taste), len(track_taste)
    log_mean = np.log(config.library_size_mean) - _LIBRARY_LOG_SD**2 / 2
    sizes = np.maximum(_LIBRARY_MIN, np.round(rng.lognormal(log_mean, _LIBRARY_LOG_SD, n_users))).astype(np.int64)
    sizes = np.minimum(sizes, n_tracks)
    genre_cdf = np.cumsum(user_genre_weights, axis=1)
    chunks = []
    for start in range(0, n_users, _LIBRARY_CHUNK):
        users = np.arange(start, min(start + _LIBRARY_CHUNK, n_users))
        n_candidates = 2 * sizes[users]
        owner = np.repeat(users, n_candidates)
        from_genre = rng.random(len(owner)) < _LIBRARY_GENRE_SHARE
        slot = (rng.random(len(owner))[:, None] > genre_cdf[owner]).sum(axis=1).clip(max=2)
        genre_tracks = sampler.in_genres(rng, user_genres[owner, slot])
        tracks = np.where(from_genre, genre_tracks, sampler.overall(rng, len(owner)))
        match = np.einsum("nd,nd->n", user_taste[owner], track_taste[tracks])
        score = config.taste_weight * match + rng.gumbel(size=len(owner))
        order = np.lexsort((-score, owner))
        rank = np.arange(len(owner)) - np.repeat(np.cumsum(n_candidates) - n_candidates, n_candidates)
        kept = order[rank < np.repeat(sizes[users], n_candidates)]
        chunks.append(np.unique(owner[kept] * n_tracks + tracks[kept]))
    keys = np.concatenate(chunks)
    return keys[~np.isin(keys, block_keys)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
