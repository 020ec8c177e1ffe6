"""How closely listening logs match the MSSD: the figures the calibration script fits and the tests check.

The MSSD kept only sessions of 10 to 20 plays and cut longer ones at 20 (the dataset's documentation),
so every figure is computed through that filter (:func:`mssd_filter`): sessions under 10 plays
are dropped, the rest cut at 20. Then, from the MSSD aggregates in a calibration folder
(``shared/calibration/mssd``) and the real rows (``shared/data/mssd/log_real_11_sessions.csv``):

==========================  ==================================================================
figure                      comparison
==========================  ==================================================================
``position_error``          max over positions 1..20 of |skip rate - MSSD skip rate|
``length_tv``               total-variation distance of the session-length mix (10..20)
``context_share_error``     max over context types of |share of plays - MSSD share|
``context_skip_error``      max over context types of |skip rate - MSSD skip rate|
``hour_skip_error``         max over hours of |skip rate - MSSD skip rate| (noisy at few plays)
``response_mix_error``      max over (skip, listen, complete) of |share - MSSD share|; MSSD:
                            skip 0.517 (play-weighted ``context_type.csv``), complete 0.344
                            (``reason_end`` trackdone / all plays), listen the rest
``premium_share``           share of plays by premium listeners; MSSD 136053 / 167880
``plays_per_track_slope``   slope of log(tracks per unit of plays) against log(plays), over
                            log-spaced bins from the median to the 99th percentile of plays per
                            played track: scale-free, so a world of 5,000 tracks can be compared
                            with the MSSD's 3.6 million; MSSD about -1.4
``skip_after_skip``         P(skip | previous play skipped); real rows 0.73
``skip_after_other``        P(skip | previous play not skipped); real rows 0.20
``skip_dispersion``         variance of per-session skip rates over the binomial variance the
                            sessions' lengths and the overall skip rate imply; real rows ~6
==========================  ==================================================================

"Skip" is the MSSD's ``skip_2``, the aggregates' "skipped" and musicenv's skip response.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musicenv.world import CONTEXT_TYPES

if TYPE_CHECKING:
    from musicenv.data import ListeningLog

MIN_LENGTH, MAX_LENGTH = 10, 20
"""The MSSD's session filter: sessions of 10 to 20 plays, longer ones cut at 20."""


def mssd_filter(plays: pd.DataFrame) -> pd.DataFrame:
    """Plays of sessions with at least 10 plays, cut at position 20, as the MSSD kept them."""
    plays_per_session = plays.groupby("session_id", sort=False, observed=True)["position"].transform("size")
    kept = plays[(plays_per_session.to_numpy() >= MIN_LENGTH) & (plays["position"].to_numpy() <= MAX_LENGTH)]
    return kept.assign(session_length=np.minimum(plays_per_session[kept.index], MAX_LENGTH).astype(np.int16))


def mssd_targets(shared: str | Path) -> dict[str, Any]:
    """The MSSD's figures, from ``shared`` (the folder with ``calibration/mssd`` and ``data/mssd``)."""
    folder = Path(shared) / "calibration" / "mssd"
    by_position = pd.read_csv(folder / "skip_rate_by_position.csv").sort_values("session_position")
    lengths = pd.read_csv(folder / "session_length_counts.csv").set_index("session_length")["sessions"]
    lengths = lengths.reindex(range(MIN_LENGTH, MAX_LENGTH + 1), fill_value=0).to_numpy(dtype=np.float64)
    contexts = pd.read_csv(folder / "context_type.csv").set_index("context_type").loc[list(CONTEXT_TYPES)]
    hours = pd.read_csv(folder / "skip_rate_by_hour.csv").sort_values("hour_of_day")
    premium = pd.read_csv(folder / "premium_counts.csv").set_index("premium")["plays"]
    reason_end = pd.read_csv(folder / "reason_end_counts.csv").set_index("reason_end")["plays"]
    histogram = pd.read_csv(folder / "plays_per_track_histogram.csv")

    context_plays = contexts["plays"].to_numpy(dtype=np.float64)
    skip = float(context_plays @ contexts["skip_rate"].to_numpy() / context_plays.sum())
    complete = float(reason_end["trackdone"] / reason_end.sum())
    targets: dict[str, Any] = {
        "skip_by_position": by_position["skipped"].to_numpy(dtype=np.float64),
        "length_share": lengths / lengths.sum(),
        "context_share": context_plays / context_plays.sum(),
        "context_skip": contexts["skip_rate"].to_numpy(dtype=np.float64),
        "hour_skip": hours["skipped"].to_numpy(dtype=np.float64),
        "response_mix": np.array([skip, 1.0 - skip - complete, complete]),
        "premium_share": float(premium["premium"] / premium.sum()),
        "plays_per_track_slope": plays_per_track_slope(
            histogram["plays"].to_numpy(dtype=np.float64), histogram["tracks"].to_numpy(dtype=np.float64)
        ),
    }
    real_rows = Path(shared) / "data" / "mssd" / "log_real_11_sessions.csv"
    if real_rows.exists():
        real = pd.read_csv(real_rows)
        skipped = real["skip_2"].astype(str).str.lower().eq("true")
        targets.update(
            _skip_dynamics(real["session_id"].to_numpy(), real["session_position"].to_numpy(), skipped.to_numpy())
        )
    return targets


def log_figures(log: ListeningLog | pd.DataFrame) -> dict[str, Any]:
    """The figures of a log (a :class:`~musicenv.data.ListeningLog` or its plays table) through
    the MSSD's filter."""
    plays = mssd_filter(log.plays if hasattr(log, "plays") else log)
    skipped = (plays["response"].cat.codes.to_numpy() == 0).astype(np.float64)
    position = plays["position"].to_numpy(dtype=np.int64)
    context = plays["context_type"].cat.codes.to_numpy().astype(np.int64)
    hour = plays["hour"].to_numpy(dtype=np.int64)
    per_session = plays.drop_duplicates("session_id")["session_length"].to_numpy(dtype=np.int64)

    def rates(groups: np.ndarray, n: int) -> np.ndarray:
        count = np.bincount(groups, minlength=n)
        return np.bincount(groups, weights=skipped, minlength=n) / np.maximum(count, 1)

    context_plays = np.bincount(context, minlength=len(CONTEXT_TYPES)).astype(np.float64)
    lengths = np.bincount(per_session - MIN_LENGTH, minlength=MAX_LENGTH - MIN_LENGTH + 1).astype(np.float64)
    responses = np.bincount(plays["response"].cat.codes.to_numpy(), minlength=3).astype(np.float64)
    track_plays = plays["track_id"].value_counts().to_numpy()
    histogram = np.bincount(track_plays)
    values = np.flatnonzero(histogram)
    figures: dict[str, Any] = {
        "plays": len(plays),
        "sessions": len(per_session),
        "skip_by_position": rates(position - 1, MAX_LENGTH),
        "length_share": lengths / max(lengths.sum(), 1.0),
        "context_share": context_plays / max(context_plays.sum(), 1.0),
        "context_skip": rates(context, len(CONTEXT_TYPES)),
        "hour_skip": rates(hour, 24),
        "response_mix": responses / max(responses.sum(), 1.0),
        "premium_share": float(plays["premium"].mean()),
        "plays_per_track_slope": plays_per_track_slope(values.astype(np.float64), histogram[values].astype(np.float64)),
    }
    figures.update(_skip_dynamics(plays["session_id"].to_numpy(), position, skipped.astype(bool)))
    return figures


def compare(figures: dict[str, Any], targets: dict[str, Any]) -> dict[str, float]:
    """The comparison figures of the module's table (errors, distances, and the plain values)."""
    out = {
        "position_error": _max_error(figures, targets, "skip_by_position"),
        "length_tv": 0.5 * float(np.abs(figures["length_share"] - targets["length_share"]).sum()),
        "context_share_error": _max_error(figures, targets, "context_share"),
        "context_skip_error": _max_error(figures, targets, "context_skip"),
        "hour_skip_error": _max_error(figures, targets, "hour_skip"),
        "response_mix_error": _max_error(figures, targets, "response_mix"),
    }
    for name in ("premium_share", "plays_per_track_slope", "skip_after_skip", "skip_after_other", "skip_dispersion"):
        out[name] = float(figures[name])
    return out


def plays_per_track_slope(plays: np.ndarray, tracks: np.ndarray) -> float:
    """Log-log slope of a plays-per-track histogram (``tracks[i]`` tracks had ``plays[i]`` plays)
    between its median and 99th percentile of plays, over log-spaced bins."""
    order = np.argsort(plays)
    plays, tracks = plays[order], tracks[order]
    share = np.cumsum(tracks) / tracks.sum()
    low, high = plays[np.searchsorted(share, 0.5)], plays[np.searchsorted(share, 0.99)]
    edges = np.unique(np.round(np.geomspace(low, high + 1, 9)))
    counts = np.array([tracks[(plays >= a) & (plays < b)].sum() for a, b in zip(edges[:-1], edges[1:])])
    density = counts / np.diff(edges)
    centres = np.sqrt(edges[:-1] * np.maximum(edges[1:] - 1, edges[:-1]))
    kept = density > 0
    if kept.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(centres[kept]), np.log(density[kept]), 1)[0])


def _skip_dynamics(session: np.ndarray, position: np.ndarray, skipped: np.ndarray) -> dict[str, float]:
    """P(skip | previous skipped), P(skip | previous not skipped), and per-session over-dispersion."""
    order = np.lexsort((position, session))
    session, position, skipped = session[order], position[order], skipped[order]
    follows = (session[1:] == session[:-1]) & (position[1:] == position[:-1] + 1)
    before, after = skipped[:-1][follows], skipped[1:][follows]
    _, codes, sizes = np.unique(session, return_inverse=True, return_counts=True)
    rate = np.bincount(codes, weights=skipped.astype(np.float64)) / sizes
    overall = skipped.mean()
    binomial = np.mean(overall * (1.0 - overall) / sizes)
    return {
        "skip_after_skip": float(after[before].mean()),
        "skip_after_other": float(after[~before].mean()),
        "skip_dispersion": float(rate.var() / binomial),
    }


def _max_error(figures: dict[str, Any], targets: dict[str, Any], name: str) -> float:
    return float(np.max(np.abs(np.asarray(figures[name]) - np.asarray(targets[name]))))
