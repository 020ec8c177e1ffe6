"""What an evaluation measures: per-episode metrics, confidence intervals and the learned world's fidelity.

Every function here works on plain arrays of a batch of finished episodes, so it is tested against
hand-computed values and reused by :mod:`agents.evaluate` for any agent and either world.

Episodes as arrays
    ``tracks`` ``(N, L)``: the world's track indices of the plays of N sessions, in order, ``-1``
    after a session's last play (and for an invalid action, which plays nothing). ``responses``
    ``(N, L)``: their response codes (0 skip, 1 listen, 2 complete, :data:`musicenv.world.RESPONSES`),
    ``-1`` where ``tracks`` is ``-1``. ``returns`` ``(N,)``: each episode's return.

Definitions (the evaluation table's columns)
    ===================  ====================================================================
    mean return          mean of the episodes' returns, with a 95% t interval
                         (:func:`mean_interval`)
    completion rate      completed plays / plays, pooled over all episodes
    skip rate            skipped plays / plays, pooled over all episodes
    session length       mean plays per session; listeners who leave early shorten it
    artist diversity     per session, distinct artists / tracks played, averaged over sessions
                         with at least one play (1.0: no artist twice). A track whose artist is
                         unknown counts as its own artist (the env's convention), so on logs
                         without artists (the MSSD) it counts tracks and is 1.0 by construction
    novelty              mean popularity percentile of the played tracks, pooled over plays
                         (:func:`popularity_percentiles`): 50 is a typical track of the
                         catalogue, lower is more novel (less popular), higher more mainstream
    catalogue coverage   distinct tracks played over all episodes / catalogue size
    ===================  ====================================================================

Paired comparisons
    Under common random numbers (docs/design.md) episode ``i`` of every agent meets the same listener,
    context, pool and response uniforms, so two agents are compared by the mean of their per-episode
    return differences (:func:`paired_difference`), whose interval is far tighter than either
    agent's own. "A beats B" means that interval lies above zero (:attr:`Interval.excludes_zero`).

Fidelity of the learned world
    :func:`fidelity`: for each agent evaluated in both worlds, the relative return gap
    ``(learned - truth) / truth``, the largest of their absolute values, and Kendall's tau between
    the two worlds' rankings of the agents (1.0: the learned world orders the agents exactly as the
    ground truth does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from musicenv.world import COMPLETE, SKIP

CONFIDENCE = 0.95
"""Level of every confidence interval of the evaluation."""


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided t confidence interval.

    Attributes:
        mean: the sample mean.
        low, high: the interval's bounds; NaN when it is undefined (fewer than two values).
        n: the number of values.
        confidence: the interval's level (0.95 by default).
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN when undefined)."""
        return (self.high - self.low) / 2.0

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (a paired difference is significant)."""
        return bool(self.low > 0.0 or self.high < 0.0)


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with its Student-t confidence interval.

    ``mean ± t_{(1 + confidence) / 2, n - 1} · s / √n`` with ``s`` the sample standard deviation
    (``ddof=1``). Episode returns are bounded and N is in the hundreds, so the t interval is
    accurate; it is also exactly zero-width when all values are equal (a paired difference of an
    agent with itself), which a bootstrap would only approach.

    Raises:
        ValueError: ``values`` is empty or not one-dimensional.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty 1-D array of values, got shape {values.shape}")
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence)
    spread = float(values.std(ddof=1))
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * spread / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def paired_difference(returns: np.ndarray, reference: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Mean per-episode difference ``returns - reference`` with its t interval (a paired comparison).

    Both arrays must hold the same episodes in the same order (the same episode seeds: common
    random numbers); then the difference removes what the two runs share (the listener, the pool,
    the luck) and keeps what the agents' choices changed.

    Raises:
        ValueError: the arrays differ in length.
    """
    returns, reference = np.asarray(returns, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if returns.shape != reference.shape:
        raise ValueError(
            f"paired episodes must match one to one: {returns.shape} vs {reference.shape} "
            "(evaluate both agents on the same episode seeds)"
        )
    return mean_interval(returns - reference, confidence)


def _plays(responses: np.ndarray) -> np.ndarray:
    return np.asarray(responses) >= 0


def response_rate(responses: np.ndarray, response: int) -> float:
    """Share of all plays (pooled over episodes) that got ``response``; NaN when nothing was played."""
    responses = np.asarray(responses)
    plays = int(_plays(responses).sum())
    return float((responses == response).sum() / plays) if plays else math.nan


def completion_rate(responses: np.ndarray) -> float:
    """Completed plays / plays, pooled over episodes."""
    return response_rate(responses, COMPLETE)


def skip_rate(responses: np.ndarray) -> float:
    """Skipped plays / plays, pooled over episodes."""
    return response_rate(responses, SKIP)


def skip_rate_by_position(responses: np.ndarray) -> np.ndarray:
    """``(L,)`` skip rate at each session position (index 0 is position 1); NaN where no session got that far.

    Sessions that ended earlier do not count at later positions, so the curve shows how the
    listeners still there respond, not how many are left.
    """
    responses = np.asarray(responses)
    plays = _plays(responses).sum(axis=0)
    skips = (responses == SKIP).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(plays > 0, skips / np.maximum(plays, 1), np.nan)


def session_lengths(tracks: np.ndarray) -> np.ndarray:
    """``(N,)`` plays per session."""
    return (np.asarray(tracks) >= 0).sum(axis=1)


def artist_diversity(artists: np.ndarray) -> float:
    """Mean over sessions (with at least one play) of distinct artists / tracks played.

    Args:
        artists: ``(N, L)`` artist codes of the plays, ``-1`` for no play. A track whose artist is
            unknown must carry a code of its own (as ``musicenv.env.CatalogueArrays.artist_codes``
            gives, and so :class:`agents.rollout.RolloutResult`'s ``artists``), so that it counts as
            its own artist.

    Returns:
        The mean ratio in (0, 1]; NaN when no session played anything.
    """
    artists = np.asarray(artists)
    counts = (artists >= 0).sum(axis=1)
    # Distinct codes per row: sort, then count the plays whose code differs from the one before.
    ordered = np.sort(artists, axis=1)
    repeats = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).sum(axis=1)
    active = counts > 0
    if not active.any():
        return math.nan
    return float(((counts - repeats)[active] / counts[active]).mean())


def popularity_percentiles(popularity: np.ndarray) -> np.ndarray:
    """Each track's popularity percentile within the catalogue, in (0, 100).

    The mid-rank percentile: ``100 · (#tracks less popular + ½ · #tracks as popular, itself
    included) / #tracks with a known popularity``. Ties share one value, a catalogue whose tracks
    are all equally popular sits at 50, and the mean percentile of the whole catalogue is exactly 50,
    so "novelty 30" reads as "what was played is, on average, less popular than 70% of the
    catalogue". Tracks with unknown (NaN) popularity get NaN and are left out of the novelty.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    known = ~np.isnan(popularity)
    out = np.full(len(popularity), np.nan)
    if known.any():
        ranks = stats.rankdata(popularity[known], method="average")  # 1-based mid-ranks
        out[known] = 100.0 * (ranks - 0.5) / known.sum()
    return out


def novelty(tracks: np.ndarray, percentiles: np.ndarray) -> float:
    """Mean popularity percentile of all plays (pooled over episodes); lower is more novel.

    Args:
        tracks: ``(N, L)`` played track indices, ``-1`` for no play.
        percentiles: ``(n_tracks,)`` from :func:`popularity_percentiles`.

    Returns:
        The mean over plays of tracks with a known popularity; NaN when there are none.
    """
    tracks = np.asarray(tracks)
    values = np.asarray(percentiles)[tracks[tracks >= 0]]
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else math.nan


def catalogue_coverage(tracks: np.ndarray, n_tracks: int) -> float:
    """Distinct tracks played over all episodes / catalogue size."""
    tracks = np.asarray(tracks)
    return float(len(np.unique(tracks[tracks >= 0])) / n_tracks)


def relative_gap(learned: float, truth: float) -> float:
    """``(learned - truth) / truth``: how far the learned world's verdict is from the truth's.

    Positive when the learned world is more optimistic than the ground truth. NaN when the truth's
    value is zero (the ratio has no meaning then).
    """
    return (learned - truth) / truth if truth != 0 else math.nan


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b between two scorings of the same items (ties handled); NaN for fewer than two items."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"need two scorings of the same items, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


@dataclass(frozen=True)
class Fidelity:
    """How well the learned world's verdict on a set of agents matches the ground truth's.

    Attributes:
        agents: the agents evaluated in both worlds, in the order of the other fields.
        relative_gaps: per agent, ``(learned - truth) / truth`` of the mean returns.
        kendall_tau: Kendall's tau-b between the two worlds' mean returns over those agents
            (1.0: the same ranking; NaN for fewer than two agents).
        max_relative_return_gap: the largest absolute relative gap (NaN when there is none).
    """

    agents: tuple[str, ...]
    relative_gaps: tuple[float, ...]
    kendall_tau: float
    max_relative_return_gap: float


def fidelity(learned: Mapping[str, float], truth: Mapping[str, float]) -> Fidelity:
    """The learned world's fidelity over the agents that have a mean return in both worlds.

    Args:
        learned: mean return per agent in the learned world.
        truth: mean return per agent in the ground-truth world.
    """
    agents = tuple(name for name in learned if name in truth)
    gaps = tuple(relative_gap(learned[name], truth[name]) for name in agents)
    finite = [abs(gap) for gap in gaps if not math.isnan(gap)]
    tau = kendall_tau(np.array([learned[a] for a in agents]), np.array([truth[a] for a in agents]))
    return Fidelity(agents, gaps, tau, max(finite) if finite else math.nan)


@dataclass(frozen=True)
class EpisodeMetrics:
    """The evaluation table's columns for one agent in one world (definitions: module docstring).

    Attributes:
        episodes: N, the number of episodes.
        mean_return: mean return with its t interval.
        completion_rate, skip_rate: pooled shares of plays.
        session_length: mean plays per session.
        left_rate: share of sessions that ended because the listener left (terminated), not
            because the playlist was full or the pool ran out (truncated).
        artist_diversity: mean distinct artists / tracks per session.
        novelty: mean popularity percentile of the plays (lower: more novel).
        catalogue_coverage: distinct tracks played / catalogue size.
        skip_rate_by_position: ``(L,)`` skip rate at positions 1..L (NaN past every session's end).
    """

    episodes: int
    mean_return: Interval
    completion_rate: float
    skip_rate: float
    session_length: float
    left_rate: float
    artist_diversity: float
    novelty: float
    catalogue_coverage: float
    skip_rate_by_position: np.ndarray


def episode_metrics(
    returns: np.ndarray,
    tracks: np.ndarray,
    responses: np.ndarray,
    artists: np.ndarray,
    left: np.ndarray,
    percentiles: np.ndarray,
    confidence: float = CONFIDENCE,
) -> EpisodeMetrics:
    """All of an agent's metrics from its episodes in one world.

    Args:
        returns: ``(N,)`` episode returns.
        tracks: ``(N, L)`` played track indices, ``-1`` for no play.
        responses: ``(N, L)`` response codes, ``-1`` for no play; a position without a response
            (an invalid action leaves one) counts as no play, whatever ``tracks`` holds there.
        artists: ``(N, L)`` artist codes of the plays (see :func:`artist_diversity`).
        left: ``(N,)`` bool, the listener left (the episode was terminated, not truncated).
        percentiles: ``(n_tracks,)`` popularity percentiles (:func:`popularity_percentiles`);
            its length is the catalogue size.
        confidence: level of the return's interval.
    """
    played = np.asarray(responses) >= 0
    tracks = np.where(played, tracks, -1)
    artists = np.where(played, artists, -1)
    lengths = session_lengths(tracks)
    return EpisodeMetrics(
        episodes=len(returns),
        mean_return=mean_interval(returns, confidence),
        completion_rate=completion_rate(responses),
        skip_rate=skip_rate(responses),
        session_length=float(lengths.mean()),
        left_rate=float(np.asarray(left, dtype=bool).mean()),
        artist_diversity=artist_diversity(artists),
        novelty=novelty(tracks, percentiles),
        catalogue_coverage=catalogue_coverage(tracks, len(percentiles)),
        skip_rate_by_position=skip_rate_by_position(responses),
    )


@dataclass(frozen=True)
class AgentResult:
    """One agent in one world: its metrics and its paired comparison, or why it has none.

    Attributes:
        agent: the agent's label in tables (its registry name, or name and checkpoint).
        world: ``"learned"`` or ``"groundtruth"``.
        metrics: the agent's metrics; None when it was not evaluated in this world (n/a).
        vs_reference: mean paired return difference against the reference agent in this world,
            with its t interval; None when either was not evaluated here (or it is the reference).
        seconds: wall time of the agent's episodes in this world.
        note: why the cells are n/a (e.g. the agent reads the ground truth).
    """

    agent: str
    world: str
    metrics: EpisodeMetrics | None
    vs_reference: Interval | None = None
    seconds: float = 0.0
    note: str = ""
