"""Configuration of the ground-truth world: sizes, effect strengths, fitted parameters, switches.

Every field says where its default comes from:

* **fitted**: set by ``scripts/calibrate_groundtruth.py`` so that the logs of the worlds of
  several seeds, seen through the MSSD's filter and averaged, match the published MSSD
  aggregates in ``shared/calibration/mssd``; the defaults are read from
  ``musicenv/groundtruth/calibration.json`` (package data). They are the population's, not one
  seed's: each of seeds 0-9 meets the aggregates on its own.
* **MSSD**: taken directly from an MSSD aggregate.
* **assumption**: a structural constant the aggregates cannot identify (an effect's strength, a
  catalogue's shape), chosen by hand so that the world behaves plausibly. These are the knobs of
  experiments; changing one invalidates the calibration until the script is run again.

Scaling
    The defaults (2,000 users, 5,000 tracks, 500 artists) build with their logs in seconds. The
    same code builds a service-sized world; memory grows with users x library size, never with
    users x tracks::

        GroundTruthConfig(n_users=1_000_000, n_tracks=1_000_000, n_artists=100_000)

    (about 1 GB for the libraries at the default mean library size of 60 tracks).

Ablations
    Each sequential effect of the response model has a switch (:data:`EFFECTS`); turning it off
    makes its term exactly zero and leaves the others as fitted::

        GroundTruthConfig().ablate("satiation", "mood")
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicenv.configs import config_from_dict
from musicenv.world import CONTEXT_TYPES

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
"""Fitted parameters written by ``scripts/calibrate_groundtruth.py``."""

MAX_FITTED_POSITION = 20
"""Positions with a fitted offset: the MSSD's session-length cap."""

GENRES: tuple[str, ...] = (
    "pop",
    "rock",
    "hip_hop",
    "electronic",
    "rnb",
    "latin",
    "country",
    "indie",
    "metal",
    "jazz",
    "classical",
    "folk",
)
"""Genre names; a genre's position is the integer code in the ``genre`` column of the tracks."""

EFFECTS: tuple[str, ...] = (
    "position_fatigue",
    "skip_runs",
    "artist_repetition",
    "acoustic_transitions",
    "satiation",
    "mood",
    "familiarity",
    "context",
)
"""Names of the response model's switchable effects (boolean fields of :class:`GroundTruthConfig`)."""

FITTED: tuple[str, ...] = (
    "utility_level",
    "position_offsets",
    "complete_threshold",
    "context_offsets",
    "hour_offsets",
    "context_weights",
    "leave_offsets",
    "skip_after_skip",
)
"""Fields set by the calibration script (their defaults come from ``calibration.json``)."""

SOURCES: tuple[str, ...] = ("library", "genre", "popular", "artist")
"""Where the organic logging policy finds candidate tracks (columns of ``policy_source_bonus``)."""


@functools.lru_cache(maxsize=1)
def _calibration() -> dict[str, Any]:
    with open(CALIBRATION_FILE) as handle:
        return json.load(handle)["parameters"]


def _fitted(name: str) -> Any:
    """Default factory of a fitted field: its value in ``calibration.json``."""

    def read() -> Any:
        value = _calibration()[name]
        return tuple(value) if isinstance(value, list) else float(value)

    return field(default_factory=read)


@dataclass(frozen=True)
class GroundTruthConfig:
    """Everything that defines a ground-truth world besides its seed.

    Response model (see :mod:`musicenv.groundtruth.response` for the formula): a latent utility
    ``s`` of playing a track now, and an ordered logit over (skip, listen, complete).
    """

    # --- sizes -----------------------------------------------------------------------------------
    n_users: int = 2000
    """Listeners (assumption: small enough to build in seconds, big enough for ALS)."""
    n_tracks: int = 5000
    """Tracks in the catalogue (assumption)."""
    n_artists: int = 500
    """Artists; every artist has at least one track (assumption: ~10 tracks per artist)."""
    taste_dim: int = 8
    """Dimension of the latent taste space shared by users and tracks (assumption)."""

    # --- catalogue shape (assumptions) ----------------------------------------------------------
    artist_popularity_sd: float = 1.8
    """Sd of an artist's log share of the popularity mass, a stratified normal draw (the same set
    of shares in every world, whatever the seed); with ``track_popularity_sd`` it sets how
    long-tailed plays per track are (assumption, checked against ``plays_per_track_histogram.csv``)."""
    track_popularity_sd: float = 0.8
    """Sd of the log weights by which an artist's tracks split its share (assumption)."""
    explicit_share: float = 0.10
    """Share of explicit tracks; hip-hop has four times the rate of other genres (assumption)."""
    library_size_mean: float = 60.0
    """Mean number of tracks a listener already knows (familiar tracks); lognormal, sd 0.6 in log
    space, at least 10 (assumption)."""
    block_user_share: float = 0.05
    """Share of listeners with a block list (assumption)."""
    premium_share: float = 136053 / 167880
    """Share of premium listeners (MSSD: ``premium_counts.csv``, premium plays / all plays)."""

    # --- response model: structural strengths (assumptions) ------------------------------------
    taste_weight: float = 2.0
    """Utility per unit of taste match, the cosine of user and track taste vectors (assumption)."""
    popularity_weight: float = 0.25
    """Utility per sd of a track's log popularity (assumption)."""
    attention_weight: float = 1.2
    """Utility per sd of the session's latent attention; with ``user_bias_sd`` it makes sessions
    differ in skip rate far more than chance (assumption, checked against the real rows: a
    per-session skip-rate dispersion of 5.7; 1.2 gives about 5.7, where 0.8 gave 4.8 once
    ``skip_after_skip`` was fitted to P(skip | previous skip) rather than to an odds ratio)."""
    user_bias_sd: float = 0.4
    """Sd of a listener's own utility offset, a stratified normal draw: some listeners skip more
    than others, and no world's listeners more than another's on average (assumption)."""
    blocked_penalty: float = 6.0
    """Utility lost by a track the listener blocked, or one of a blocked artist (assumption)."""
    fatigue_per_position: float = 0.02
    """Utility lost per position beyond the fitted ones, for playlists longer than 20 (assumption)."""
    skip_run_step: float = 0.15
    """Utility lost per further skip in the current run, beyond the first (assumption)."""
    skip_run_cap: int = 4
    """Skips in a run beyond which the run stops mattering more (assumption)."""
    artist_repeat_penalty: tuple[float, ...] = (0.8, 0.4)
    """Utility lost when the track's artist played 1, 2, ... plays ago (assumption)."""
    transition_weight: float = 0.3
    """Utility lost per unit of mean squared difference between the standardized sound of the
    track and of the previous track: about 0.6 for a jump between random tracks, half of it
    between tracks of one artist (assumption)."""
    genre_satiation: float = 0.3
    """Utility lost per unit of the session's exposure to the track's genre (assumption)."""
    artist_satiation: float = 0.3
    """Utility lost per unit of the session's exposure to the track's artist (assumption)."""
    satiation_decay: float = 0.8
    """Per-play decay of genre and artist exposure; each play adds 1 (assumption)."""
    artist_memory: int = 8
    """Recent plays whose artists the listener remembers (assumption)."""
    familiarity_bonus: float = 0.5
    """Utility of a track the listener already knows (assumption)."""
    mood_openness: float = 0.45
    """Utility of an *unfamiliar* track per unit of mood (assumption). Mood starts at 0 and
    approaches +5 after a run of completions (-5 after skips): past a mood of
    ``familiarity_bonus / mood_openness`` (one or two completions) an unfamiliar, well-matched
    track is worth more than a familiar one, and at low mood much less."""
    mood_decay: float = 0.8
    """Per-play decay of mood; a completion adds 1, a skip subtracts 1 (assumption)."""

    # --- response model: fitted ----------------------------------------------------------------
    utility_level: float = _fitted("utility_level")
    """Overall utility level (fitted; the skip threshold is pinned at 0)."""
    position_offsets: tuple[float, ...] = _fitted("position_offsets")
    """Utility offset of positions 1..20, centred (fitted to ``skip_rate_by_position.csv``)."""
    complete_threshold: float = _fitted("complete_threshold")
    """Ordered-logit threshold between listen and complete (fitted to the response mix of
    ``shared/README.md``: complete 0.344)."""
    context_offsets: tuple[float, ...] = _fitted("context_offsets")
    """Utility offset per context type, centred on the MSSD play mix (fitted to
    ``context_type.csv`` skip rates)."""
    hour_offsets: tuple[float, ...] = _fitted("hour_offsets")
    """Utility offset per hour 0..23, centred (fitted to ``skip_rate_by_hour.csv``)."""
    skip_after_skip: float = _fitted("skip_after_skip")
    """Utility lost right after a skip (fitted so that P(skip | previous skip) is 0.755, within
    the real rows' 0.72 +- 0.05; at the MSSD's skip rate of 0.52 P(skip | previous not skipped)
    then comes out about 0.29, inside the real rows' 0.20-0.30; why not both real values, see
    ``scripts/calibrate_groundtruth.py``)."""

    # --- session end ---------------------------------------------------------------------------
    leave_offsets: tuple[float, ...] = _fitted("leave_offsets")
    """Logit of leaving after the play at positions 1..20 (fitted at 10..19 to
    ``session_length_counts.csv``; 1..9 and 20 repeat the mean of the fitted ones: the MSSD shows
    no session shorter than 10 and none longer than 20)."""
    leave_after_skip: float = 0.5
    """Logit of leaving added right after a skip (assumption)."""
    leave_per_run: float = 0.35
    """Logit of leaving added per further skip in the run (assumption)."""
    leave_mood: float = -0.1
    """Logit of leaving per unit of mood (assumption: happy listeners stay)."""

    # --- switches: each effect's term is exactly zero when off ---------------------------------
    position_fatigue: bool = True
    """Per-position offsets and fatigue beyond position 20."""
    skip_runs: bool = True
    """Utility lost after a skip and along a run of skips. Only the response model's term: the
    session-end model's extra chance of leaving after skips has no switch; zero its strengths
    (``leave_after_skip``, ``leave_per_run``) to remove it too."""
    artist_repetition: bool = True
    """Utility lost when the artist played in the last plays."""
    acoustic_transitions: bool = True
    """Utility lost by abrupt changes of sound."""
    satiation: bool = True
    """Decaying exposure to a genre and an artist lowers the utility of more of the same."""
    mood: bool = True
    """Completions make unfamiliar tracks more welcome, skips less (and moods change leaving)."""
    familiarity: bool = True
    """Tracks the listener knows are worth ``familiarity_bonus`` more."""
    context: bool = True
    """Context-type and hour offsets."""

    # --- listening contexts --------------------------------------------------------------------
    context_weights: tuple[float, ...] = _fitted("context_weights")
    """Relative frequency of sessions per context type (fitted to ``context_type.csv`` plays)."""
    context_spread: float = 1.0
    """Sd of a listener's own log preference per context type, stratified per type (assumption)."""
    hour_spread: float = 2.5
    """Sd in hours of a listener's sessions around their favourite hour (assumption)."""

    # --- logging policy and logs ----------------------------------------------------------------
    n_sessions: int = 20000
    """Sessions in the default logs (assumption: ~10 per listener)."""
    max_session_length: int = 20
    """Plays after which a logged session stops (MSSD: its cap)."""
    shuffled_share: float = 0.2
    """Share of logged sessions whose tracks are drawn uniformly from the session's candidates
    instead of by the listener's preferences (assumption; the MSSD has a shuffled share too)."""
    n_days: int = 56
    """Days the logs span, starting at ``start_date`` (assumption: 8 weeks, so downstream code can
    hold out by time)."""
    start_date: str = "2018-07-15"
    """First day of the logs (the MSSD's summer of 2018)."""
    activity_sd: float = 1.0
    """Sd of a listener's log activity, a stratified normal draw: how many more sessions some
    listeners have (assumption)."""
    policy_candidates: tuple[int, ...] = (24, 16, 12, 12)
    """Candidates per session drawn from each of :data:`SOURCES` (assumption)."""
    policy_taste_weight: float = 2.0
    """Weight of taste match in the listener's own choice (assumption)."""
    policy_popularity_weight: float = 1.2
    """Weight of popularity in the listener's own choice (assumption)."""
    policy_source_bonus: tuple[tuple[float, ...], ...] = (
        (0.0, 1.0, 1.0, 0.0),  # editorial_playlist: genre and popular picks
        (2.0, 0.0, 0.0, 0.5),  # user_collection: the listener's own library
        (0.5, 0.0, 0.0, 2.0),  # catalog: browsing an artist
        (0.0, 1.5, 0.5, 0.5),  # radio: more of the genre
        (0.0, 0.0, 2.5, 0.0),  # charts: what is popular
        (0.5, 1.5, 0.0, 0.5),  # personalized_playlist: taste-matched discovery
    )
    """Preference of each context type (rows, :data:`CONTEXT_TYPES` order) for each source
    (columns, :data:`SOURCES` order) in the organic policy (assumption)."""

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_tracks, self.n_artists) < 1 or self.n_artists > self.n_tracks:
            raise ValueError("need n_users >= 1 and 1 <= n_artists <= n_tracks")
        lengths = {
            "position_offsets": (self.position_offsets, MAX_FITTED_POSITION),
            "leave_offsets": (self.leave_offsets, MAX_FITTED_POSITION),
            "context_offsets": (self.context_offsets, len(CONTEXT_TYPES)),
            "context_weights": (self.context_weights, len(CONTEXT_TYPES)),
            "hour_offsets": (self.hour_offsets, 24),
            "policy_source_bonus": (self.policy_source_bonus, len(CONTEXT_TYPES)),
            "policy_candidates": (self.policy_candidates, len(SOURCES)),
        }
        for name, (value, length) in lengths.items():
            if len(value) != length:
                raise ValueError(f"{name} needs {length} values, got {len(value)}")
        if not 0.0 <= self.shuffled_share <= 1.0:
            raise ValueError(f"shuffled_share must lie in [0, 1], got {self.shuffled_share}")
        if self.max_session_length < 1:
            raise ValueError("max_session_length must be at least 1")
        if sum(self.policy_candidates) < self.max_session_length:
            raise ValueError("policy_candidates must add up to at least max_session_length")

    def ablate(self, *effects: str) -> GroundTruthConfig:
        """A copy with the named effects (of :data:`EFFECTS`) switched off."""
        unknown = sorted(set(effects) - set(EFFECTS))
        if unknown:
            raise ValueError(f"unknown effects {unknown}; known: {list(EFFECTS)}")
        return dataclasses.replace(self, **dict.fromkeys(effects, False))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GroundTruthConfig:
        """The config of :meth:`to_dict` (unknown keys are an error)."""
        return config_from_dict(cls, values)
