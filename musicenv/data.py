"""Listening logs: the validated tables every stage of musicenv learns from.

A listening log records what listeners played and how they responded. Whatever it was read from
(the Spotify Music Streaming Sessions Dataset (MSSD), a generic CSV or Parquet file, or the
synthetic ground-truth world's own logs), it becomes one :class:`ListeningLog` holding up to three
pandas tables with explicit dtypes. Every constructor validates its input completely before it
returns, so a log that exists is a log that is valid.

Plays (:data:`PLAY_COLUMNS`), one row per play, sorted by ``session_id`` then ``position``
    ==================  =====================  ========================================================
    column              dtype                  meaning
    ==================  =====================  ========================================================
    ``session_id``      ``string``             the listening session (required)
    ``user_id``         ``string``, nullable   the listener; NA when unknown (the MSSD has no users)
    ``position``        ``int16``              1-based position in the session (required)
    ``session_length``  ``int16``              plays in the whole session; default: the session's
                                               number of plays in this log
    ``track_id``        ``string``             the track played (required)
    ``response``        ordered ``category``   ``skip`` < ``listen`` < ``complete`` (required)
    ``context_type``    ``category``           one of :data:`musicenv.world.CONTEXT_TYPES` (required)
    ``hour``            ``int8``               hour of day, 0..23 (required)
    ``premium``         ``bool``               premium subscriber; default False
    ``date``            ``datetime64[ns]``     day of the session, NaT when unknown; default NaT
    ``shuffled``        ``bool``               the play came from a uniformly shuffled session of the
                                               logging policy; default False
    ==================  =====================  ========================================================

    Partial sessions are valid: positions lie in ``1..session_length`` and may have gaps (real
    fragments of the MSSD do). A duplicate (session, position), and a ``session_length`` that
    differs within a session, are errors.

Tracks (:data:`TRACK_COLUMNS`), one row per track; row ``i`` is track index ``i``
    ``track_id`` (``string``, unique, required); ``artist_id`` (``string``, NA when unknown);
    ``explicit`` (``bool``, False when unknown); ``genre`` (``Int16``, NA unless a synthetic
    world knows it); and the float32 features of :data:`ACOUSTIC_FEATURES` under the MSSD's names,
    NaN when unknown. Without a tracks table the log builds one from the played (and blocked)
    track ids, sorted, with no artist and no features; then every track counts as its own artist
    (:meth:`ListeningLog.track_artist_codes`), so artist diversity becomes track diversity, and
    content features are all missing.

Blocks (:data:`BLOCK_COLUMNS`, optional), one row per block
    ``user_id`` (``string``, required) and exactly one of ``track_id`` or ``artist_id``
    (``string``): the listener never wants that track, or any track of that artist. Blocked track
    ids must be in the tracks table; artists are not checked (an artist nobody has a track of
    blocks nothing).

Responses
    The three of :data:`musicenv.world.RESPONSES`: **skip** (left within the first N seconds),
    **listen** (past N seconds, not to the end), **complete** (played to the end). Input may
    spell them as names (any case) or as their integer codes 0, 1, 2.

MSSD mapping (:func:`load_mssd`)
    The response is derived from ``skip_2`` and ``not_skipped``, in this order: ``skip_2`` true
    gives **skip** (also when ``not_skipped`` is true as well: such rows are counted in a
    warning); else ``not_skipped`` true gives **complete**; else **listen**. ``skip_2`` is the
    label of the MSSD challenge and of its published aggregates. ``premium`` is the log's column,
    ``shuffled`` is ``hist_user_behavior_is_shuffle``, ``user_id`` is NA (sessions stand in for
    listeners, see :meth:`ListeningLog.listener_ids`). Other MSSD columns (``skip_1``,
    ``hist_user_behavior_reason_start``, ...) are dropped.

Spellings accepted on input
    Column aliases: ``track_id_clean`` -> ``track_id``, ``session_position`` -> ``position``,
    ``hour_of_day`` -> ``hour``, ``hist_user_behavior_is_shuffle`` -> ``shuffled`` (plays);
    ``artist`` -> ``artist_id``, ``beat_strength`` -> ``beat``, ``us_popularity_estimate`` ->
    ``us_pop_estimate``, ``release_date_estimate`` (a date) -> ``release_year`` (tracks). A
    canonical column wins over its alias when a file has both. Columns of neither kind
    (``track_uri``, ``track_name``, ``skip_1``, ...) are dropped. Booleans: ``true``/``false`` in
    any case, ``1``/``0``. Dates: ISO (``2018-07-15``, with or without a time; time zones are
    converted to UTC) or day-first (``15-07-18``, ``15/07/2018``, ``15/07/18``, ``15-07-2018``,
    ``15.07.2018``). ``mode``: ``major``/``minor`` or 1/0. CSV files may start with a UTF-8
    byte-order mark. An empty text cell, in a file or a frame, is a missing value.

Ids
    Session, user, track and artist ids are text or integers (a Parquet integer column with nulls,
    read as whole floats, counts as integers), stored as text. Whitespace around an id is
    stripped, in every table alike, so ``"t1 "`` in the plays and ``"t1"`` in the tracks are one
    track and a padded cell does not split a session; spaces inside an id are kept. Exports pad
    cells by accident, never to tell two listeners apart, and every other column (numbers,
    booleans, categories, dates, header names) is read without surrounding whitespace too. An id
    that is empty after stripping is missing. Booleans, fractions and other values are errors.

Reading and writing
    :meth:`ListeningLog.from_frames` (in-memory frames), :func:`load_log` (generic CSV or
    Parquet), :func:`load_mssd` (MSSD CSV), and :meth:`ListeningLog.save` /
    :meth:`ListeningLog.load`: a folder with ``plays.parquet``, ``tracks.parquet``, optionally
    ``blocks.parquet``, and ``manifest.json`` (format, format version, package version, SHA-256
    of every file), written atomically (see :mod:`musicenv.artifacts`).

Files
    A name ending in ``.parquet`` or ``.pq`` is a Parquet file; a folder is a Parquet dataset
    (the folder of part files Spark writes); any other name is a CSV file, which may be
    compressed (``.gz``, ``.bz2``, ``.xz``). Every CSV row must have as many cells as the header
    (a cell missing or a line cut short would shift the cells after it into the wrong columns).
    A header may not name a column the log reads twice (``session_id`` twice: which one is
    meant?); repeated names of other columns are ignored like the columns. A plays (or tracks)
    file with a header but no rows is an error: an empty log would only fail later, when a world
    is built from it. (:meth:`ListeningLog.from_frames` accepts empty frames, for code that
    builds logs piecewise; a blocks file may be empty.) Cells of a Parquet file must hold single
    values: a list or struct column is an error, and a boolean column is not a number or an id.

Errors
    Bad input raises :class:`LogFormatError` (a ``ValueError``) naming the file (or
    ``<memory> plays`` and the like for frames), the rows (1-based data rows of a file, header
    not counted; index labels of a frame) and the column at fault. Nothing is partially loaded.
    Track features must fit a float32 (``1e300`` is an error, not ``inf``). A missing file
    raises ``FileNotFoundError``.

Every step is vectorised (a million plays construct in about a second): columns of few distinct
values (booleans, categories, dates) are parsed once per distinct value.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import errno
import gzip
import io
import lzma
import os
import sys
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from musicenv.artifacts import ArtifactError, atomic_folder, read_manifest, write_manifest
from musicenv.world import COMPLETE, CONTEXT_TYPES, LISTEN, RESPONSES, SKIP

__all__ = [
    "ACOUSTIC_FEATURES",
    "BLOCK_COLUMNS",
    "CONTEXT_TYPE_DTYPE",
    "PLAY_COLUMNS",
    "RESPONSE_DTYPE",
    "TRACK_COLUMNS",
    "ListeningLog",
    "LogFormatError",
    "load_log",
    "load_mssd",
]

RESPONSE_DTYPE = pd.CategoricalDtype(list(RESPONSES), ordered=True)
"""``skip < listen < complete``; the category codes are the response codes of :mod:`musicenv.world`."""
CONTEXT_TYPE_DTYPE = pd.CategoricalDtype(list(CONTEXT_TYPES))
"""The MSSD's context types; the category codes are the context codes of :mod:`musicenv.world`."""

PLAY_COLUMNS: dict[str, Any] = {
    "session_id": pd.StringDtype(),
    "user_id": pd.StringDtype(),
    "position": np.dtype(np.int16),
    "session_length": np.dtype(np.int16),
    "track_id": pd.StringDtype(),
    "response": RESPONSE_DTYPE,
    "context_type": CONTEXT_TYPE_DTYPE,
    "hour": np.dtype(np.int8),
    "premium": np.dtype(bool),
    "date": np.dtype("datetime64[ns]"),
    "shuffled": np.dtype(bool),
}
"""Columns of :attr:`ListeningLog.plays` and their dtypes, in order."""

ACOUSTIC_FEATURES: list[str] = [
    "duration",
    "release_year",
    "us_pop_estimate",
    "acousticness",
    "beat",
    "bounciness",
    "danceability",
    "dyn_range_mean",
    "energy",
    "flatness",
    "instrumentalness",
    "key",
    "liveness",
    "loudness",
    "mechanism",
    "mode",
    "organism",
    "speechiness",
    "tempo",
    "time_signature",
    "valence",
    *(f"acoustic_vector_{i}" for i in range(8)),
]
"""Every float32 track feature, with the MSSD track-feature file's names and order (duration,
release year and US popularity included, though not strictly acoustic). A list, so that
``tracks[ACOUSTIC_FEATURES]`` selects them."""

TRACK_COLUMNS: dict[str, Any] = {
    "track_id": pd.StringDtype(),
    "artist_id": pd.StringDtype(),
    "explicit": np.dtype(bool),
    "genre": pd.Int16Dtype(),
    **{name: np.dtype(np.float32) for name in ACOUSTIC_FEATURES},
}
"""Columns of :attr:`ListeningLog.tracks` and their dtypes, in order."""

BLOCK_COLUMNS: dict[str, Any] = {
    "user_id": pd.StringDtype(),
    "track_id": pd.StringDtype(),
    "artist_id": pd.StringDtype(),
}
"""Columns of :attr:`ListeningLog.blocks` and their dtypes, in order."""

_REQUIRED_PLAY_COLUMNS = ("session_id", "position", "track_id", "response", "context_type", "hour")
_PLAY_ALIASES = {
    "track_id_clean": "track_id",
    "session_position": "position",
    "hour_of_day": "hour",
    "hist_user_behavior_is_shuffle": "shuffled",
}
# release_date_estimate is not a plain rename (a date becomes a year), so it is handled on its own.
_TRACK_ALIASES = {"artist": "artist_id", "beat_strength": "beat", "us_popularity_estimate": "us_pop_estimate"}
_MSSD_RESPONSE_COLUMNS = ("skip_2", "not_skipped")

_BOOL_CODES = {"true": 1, "false": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
_MODE_WORDS = {"major": "1", "minor": "0"}
# ISO first: day-first formats cannot match an ISO date, and ISO cannot match a day-first one.
_DATE_FORMATS = ("ISO8601", "%d-%m-%y", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y")
_DATE_HINT = "expected ISO (2018-07-15) or day-first (15-07-18, 15/07/2018)"
# datetime64[ns] spans these years; a date outside would overflow instead of being stored.
_FIRST_DAY, _LAST_DAY = np.datetime64("1678-01-01", "us"), np.datetime64("2261-12-31", "us")

# infer_dtype kinds of object columns whose cells are all ids (text or integers) or missing.
_ID_KINDS = frozenset({"empty", "string", "integer", "mixed-integer"})
# infer_dtype kinds whose cells are all single values; any other kind is checked cell by cell.
_SINGLE_VALUE_KINDS = frozenset(
    {"empty", "string", "integer", "floating", "mixed-integer-float", "boolean", "datetime", "date", "decimal"}
)

_FORMAT = "musicenv.listening_log"
_FORMAT_VERSION = 1
_TABLE_FILES = {"plays": "plays.parquet", "tracks": "tracks.parquet", "blocks": "blocks.parquet"}


class LogFormatError(ValueError):
    """A listening log that cannot be read; the message names the file, the rows and the column."""


@dataclass(frozen=True, eq=False)
class ListeningLog:
    """A validated listening log: plays, tracks and optional block lists (see the module doc).

    Build one with :meth:`from_frames`, :func:`load_log`, :func:`load_mssd` or :meth:`load`; they
    validate. The constructor itself takes tables that are canonical already and checks nothing.
    Treat the tables as read-only: the code arrays below are computed once and cached.

    Attributes:
        plays: one row per play, columns :data:`PLAY_COLUMNS`, sorted by session then position.
        tracks: one row per track, columns :data:`TRACK_COLUMNS`; row ``i`` is track index ``i``.
        blocks: per-user block lists, columns :data:`BLOCK_COLUMNS`, or None.
        source: where the log came from (a path, or ``"<memory>"``), for messages.
    """

    plays: pd.DataFrame
    tracks: pd.DataFrame
    blocks: pd.DataFrame | None = None
    source: str = "<memory>"

    @classmethod
    def from_frames(
        cls,
        plays: pd.DataFrame,
        tracks: pd.DataFrame | None = None,
        blocks: pd.DataFrame | None = None,
        source: str = "<memory>",
    ) -> ListeningLog:
        """Validate in-memory tables and coerce them to the canonical dtypes.

        Args:
            plays: plays in any order, with the plays columns of the module doc (aliases and
                spellings accepted; ``response`` and ``context_type`` may be integer codes).
            tracks: the track catalogue; every played or blocked track must be in it. None builds
                one from the played and blocked track ids, sorted, with no artists and no
                features: artist diversity then counts tracks, and content features are NaN.
            blocks: per-user block lists, or None.
            source: a label for the log, used in error messages (``"<memory> plays: index 3, ..."``).

        Raises:
            LogFormatError: naming the table, the index labels and the column at fault.
        """
        return _build(
            (plays, _Rows.of_frame(f"{source} plays", plays)),
            None if tracks is None else (tracks, _Rows.of_frame(f"{source} tracks", tracks)),
            None if blocks is None else (blocks, _Rows.of_frame(f"{source} blocks", blocks)),
            source,
        )

    @property
    def n_plays(self) -> int:
        """Number of plays."""
        return len(self.plays)

    @property
    def n_sessions(self) -> int:
        """Number of sessions."""
        return int(self.session_codes()[-1]) + 1 if self.n_plays else 0

    @property
    def n_tracks(self) -> int:
        """Number of tracks in the catalogue (played or not)."""
        return len(self.tracks)

    def listener_ids(self) -> pd.Series:
        """Per play, who listened: ``user_id`` where known, else ``session_id`` (``string`` Series).

        Without users (the MSSD) each session stands in for a listener, so user-level stages
        (ALS, the train/evaluation split) treat sessions as users. Aligned with :attr:`plays`;
        ``.to_numpy(dtype=str)`` gives a numpy array.
        """
        return self.plays["user_id"].fillna(self.plays["session_id"]).rename("listener_id")

    def track_codes(self) -> np.ndarray:
        """Per play, the int64 row of its track in :attr:`tracks` (read-only)."""
        return self._track_codes

    def response_codes(self) -> np.ndarray:
        """Per play, the int8 response code: 0 skip, 1 listen, 2 complete."""
        return self.plays["response"].cat.codes.to_numpy(dtype=np.int8)

    def session_codes(self) -> np.ndarray:
        """Per play, the int64 session number, 0..n_sessions-1 in sorted order (read-only).

        Plays are sorted by session, so each session's plays are one contiguous run.
        """
        return self._session_codes

    def track_artist_codes(self) -> np.ndarray:
        """Per track, an int64 artist number; a track without a known artist is its own artist.

        This is the fallback for logs without artists (the MSSD): artist diversity and artist
        repetition then count tracks.
        """
        codes, artists = pd.factorize(self.tracks["artist_id"])
        unknown = codes < 0
        codes[unknown] = len(artists) + np.arange(unknown.sum())
        return codes.astype(np.int64)

    @cached_property
    def _track_codes(self) -> np.ndarray:
        codes = pd.Index(self.tracks["track_id"]).get_indexer(self.plays["track_id"]).astype(np.int64)
        codes.flags.writeable = False
        return codes

    @cached_property
    def _session_codes(self) -> np.ndarray:
        session_id = self.plays["session_id"].to_numpy(dtype=object)
        new_session = np.ones(self.n_plays, dtype=bool)
        new_session[1:] = session_id[1:] != session_id[:-1]
        codes = np.cumsum(new_session) - 1
        codes.flags.writeable = False
        return codes

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the log to the folder ``path``, atomically, replacing a previous save there.

        The folder holds ``plays.parquet``, ``tracks.parquet``, ``blocks.parquet`` (with block
        lists) and ``manifest.json`` (format version, package version, SHA-256 of each file). The
        files are written to a temporary sibling folder that replaces ``path`` only when complete,
        so a failed save leaves a previous one intact.

        Raises:
            musicenv.artifacts.ArtifactError: ``path`` holds something other than an empty folder
                or an earlier saved log (nothing is written then).
        """
        with atomic_folder(path, _FORMAT) as staging:
            tables = {"plays": self.plays, "tracks": self.tracks, "blocks": self.blocks}
            for table, frame in tables.items():
                if frame is not None:
                    frame.to_parquet(staging / _TABLE_FILES[table], index=False)
            config = {
                "source": self.source,
                "n_plays": self.n_plays,
                "n_sessions": self.n_sessions,
                "n_tracks": self.n_tracks,
                "n_blocks": None if self.blocks is None else len(self.blocks),
            }
            write_manifest(staging, _FORMAT, _FORMAT_VERSION, config)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ListeningLog:
        """Read a folder written by :meth:`save`, checking its format version and checksums first.

        Raises:
            LogFormatError: naming the file at fault: no manifest, another format version, a
                checksum mismatch, a missing table, or (for a file altered and re-checksummed)
                invalid content.
        """
        folder = Path(path)
        try:
            manifest = read_manifest(folder, _FORMAT, _FORMAT_VERSION)
        except ArtifactError as error:
            raise LogFormatError(str(error)) from error
        saved = {table: folder / name for table, name in _TABLE_FILES.items() if name in manifest["files"]}
        for table in ("plays", "tracks"):
            if table not in saved:
                raise LogFormatError(f"{folder / _TABLE_FILES[table]}: missing from {folder / 'manifest.json'}")
        return _build(
            _read_rows(saved["plays"]),
            _read_rows(saved["tracks"]),
            _read_rows(saved.get("blocks")),
            str(manifest["config"].get("source", folder)),
        )


def load_log(
    plays_path: str | os.PathLike[str],
    tracks_path: str | os.PathLike[str] | None = None,
    blocks_path: str | os.PathLike[str] | None = None,
) -> ListeningLog:
    """Read a log in the generic schema from CSV or Parquet files (see "Files" in the module doc).

    The schema is the canonical one of the module doc, with its aliases and spellings.

    - plays: required ``session_id``, ``position``, ``track_id``, ``response`` (skip / listen /
      complete, or 0 / 1 / 2), ``context_type``, ``hour``; optional ``user_id`` (default NA),
      ``session_length`` (default: the session's number of plays in the file), ``premium``
      (default False), ``date`` (default NaT), ``shuffled`` (default False).
    - tracks: required ``track_id``; optional ``artist_id`` (NA), ``explicit`` (False),
      ``genre`` (NA), and each of :data:`ACOUSTIC_FEATURES` (NaN). Without a tracks file the
      catalogue is the played tracks, with no artists or features.
    - blocks: ``user_id`` and one of ``track_id`` / ``artist_id`` per row.

    Other columns are ignored.

    Raises:
        LogFormatError: naming the file, the 1-based data rows and the column at fault; also for
            a plays or tracks file without rows.
        FileNotFoundError: a path that does not exist.
    """
    return _build(
        _read_rows(plays_path, "plays"), _read_rows(tracks_path, "tracks"), _read_rows(blocks_path), str(plays_path)
    )


def load_mssd(
    log_path: str | os.PathLike[str], track_features_path: str | os.PathLike[str] | None = None
) -> ListeningLog:
    """Read a log of the Music Streaming Sessions Dataset (MSSD) and, optionally, its track features.

    The log needs ``session_id``, ``session_position``, ``track_id_clean``, ``skip_2``,
    ``not_skipped``, ``context_type`` and ``hour_of_day``; it uses ``session_length``,
    ``premium``, ``date`` and ``hist_user_behavior_is_shuffle`` when present (defaults as in
    :func:`load_log`) and ignores the rest. The response follows the MSSD mapping of the module
    doc. The track-feature file is the MSSD's (``track_id``, ``artist``, ``beat_strength``,
    ``mode`` as major/minor, ``release_date_estimate``, ...); every played track must be in it.
    Without it the catalogue is the played tracks, with no artists or features: artist
    diversity then counts tracks.

    Warns:
        UserWarning: when some rows have both ``skip_2`` and ``not_skipped`` true (they count as
            skips), with their number and rows.

    Raises:
        LogFormatError: naming the file, the 1-based data rows and the column at fault; also for
            a log or track-feature file without rows.
        FileNotFoundError: a path that does not exist.
    """
    plays, rows = _read_rows(log_path, "plays")
    columns = _pick_columns(plays, _MSSD_RESPONSE_COLUMNS, {}, rows)
    _require(columns, _MSSD_RESPONSE_COLUMNS, rows.where, {})
    skipped = _parse_bools("skip_2", columns["skip_2"][1], rows)
    completed = _parse_bools("not_skipped", columns["not_skipped"][1], rows)
    response = np.where(skipped, SKIP, np.where(completed, COMPLETE, LISTEN)).astype(np.int8)
    tracks = _read_rows(track_features_path, "tracks")
    log = _build((plays.assign(response=response), rows), tracks, None, str(log_path))
    both = skipped & completed
    if both.any():
        warnings.warn(
            f"{log_path}: {both.sum()} play(s) have both skip_2 and not_skipped true "
            f"({rows.describe(both)}); they count as skips",
            stacklevel=2,
        )
    return log


# Validation: every check names the file (or frame), the rows and the column at fault.


@dataclass(frozen=True)
class _Rows:
    """How a table's rows are named in error messages: file rows, or a frame's index labels."""

    where: str
    labels: pd.Index
    in_file: bool

    @classmethod
    def of_file(cls, path: str | os.PathLike[str], n_rows: int) -> _Rows:
        return cls(str(path), pd.RangeIndex(1, n_rows + 1), in_file=True)

    @classmethod
    def of_frame(cls, where: str, frame: pd.DataFrame) -> _Rows:
        return cls(where, frame.index, in_file=False)

    def take(self, order: np.ndarray) -> _Rows:
        return _Rows(self.where, self.labels.take(order), self.in_file)

    def describe(self, bad: np.ndarray) -> str:
        """``"row 3"``, ``"rows 3, 7, 9, 10, 12 and 4 more"`` or ``"index 'a', 'b'"`` for a boolean mask."""
        positions = np.flatnonzero(bad)
        labels = self.labels.take(positions[:5]).tolist()
        shown = ", ".join(str(label) if self.in_file else repr(label) for label in labels)
        more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
        if self.in_file:
            return f"{'row' if len(positions) == 1 else 'rows'} {shown}{more}"
        return f"index {shown}{more}"

    def error(self, column: str, bad: np.ndarray, problem: str) -> LogFormatError:
        """An error for the rows where the boolean mask ``bad`` holds."""
        return LogFormatError(f"{self.where}: {self.describe(bad)}, column {column!r}: {problem}")


def _examples(values: pd.Series | np.ndarray, bad: np.ndarray) -> str:
    """Up to three distinct offending values, quoted, for an error message."""
    distinct = pd.unique(np.asarray(values, dtype=object)[bad])[:3]
    return ", ".join(repr(str(value)) for value in distinct)


def _pick_columns(
    frame: pd.DataFrame, names: Iterable[str], aliases: Mapping[str, str], rows: _Rows
) -> dict[str, tuple[str, pd.Series]]:
    """Canonical name -> (column name as the input spells it, column), for the columns present.

    Header names are compared without surrounding whitespace. A name the log reads that appears
    more than once is an error (which copy is meant?), as is a cell holding more than one value
    (a Parquet list or struct, bytes).
    """
    names = list(names)
    wanted = {*names, *aliases}
    positions: dict[str, list[int]] = {}
    for i, column in enumerate(frame.columns):
        name = str(column).strip()
        if name in wanted:
            positions.setdefault(name, []).append(i)
    for name, found in positions.items():
        if len(found) > 1:
            numbers = ", ".join(str(i + 1) for i in found)
            raise LogFormatError(
                f"{rows.where}: column {name!r} appears {len(found)} times in the header (columns {numbers}); keep one"
            )
    picked = {}
    for alias, name in aliases.items():
        if alias in positions and name not in positions:
            picked[name] = (alias, frame.iloc[:, positions[alias][0]])
    for name in names:
        if name in positions:
            picked[name] = (name, frame.iloc[:, positions[name][0]])
    for spelled, series in picked.values():
        _check_single_values(spelled, series, rows)
    return {name: (spelled, _blank_as_missing(series)) for name, (spelled, series) in picked.items()}


def _check_single_values(label: str, series: pd.Series, rows: _Rows) -> None:
    """Raise for cells that hold no single value: lists and arrays (Parquet list columns), dicts, bytes."""
    if not pd.api.types.is_object_dtype(series.dtype):
        return
    if pd.api.types.infer_dtype(series, skipna=True) in _SINGLE_VALUE_KINDS:
        return
    bad = np.fromiter(
        (isinstance(value, (bytes, bytearray)) or not pd.api.types.is_scalar(value) for value in series),
        dtype=bool,
        count=len(series),
    )
    if bad.any():
        shown = ", ".join(repr(value)[:40] for value in series[bad].iloc[:3])
        raise rows.error(label, bad, f"not a single value: {shown} (a list, a mapping or bytes)")


def _blank_as_missing(series: pd.Series) -> pd.Series:
    """An empty text cell is a missing value, in a frame as in a CSV file."""
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        return series.mask(series == "")
    return series


def _require(present: Collection[str], required: Iterable[str], where: str, aliases: Mapping[str, str]) -> None:
    missing = [name for name in required if name not in present]
    if missing:
        spelled = [
            " or ".join(repr(n) for n in (name, *(a for a, c in aliases.items() if c == name))) for name in missing
        ]
        raise LogFormatError(f"{where}: missing required column(s) {', '.join(spelled)}")


def _unknown_ids(n: int) -> pd.Series:
    return pd.Series(pd.array(np.full(n, None, dtype=object), dtype=pd.StringDtype()))


def _parse_ids(label: str, series: pd.Series, rows: _Rows, required: bool) -> pd.Series:
    """Ids as ``string``, surrounding whitespace stripped, NA where missing; see "Ids" in the module doc.

    Ids are text or integers. Whole floats count as integers (a Parquet integer column with nulls
    reads as floats); booleans, fractions and other types are errors.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise rows.error(label, series.notna().to_numpy(), f"a boolean column ({dtype}); ids must be text or integers")
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        fractional = ~np.isnan(values) & ~(np.isfinite(values) & (values == np.round(values)))
        if fractional.any():
            raise rows.error(label, fractional, f"not an id (text or an integer): {_examples(series, fractional)}")
        series = pd.Series(pd.array(values, dtype=pd.Float64Dtype()).astype(pd.Int64Dtype()))
    elif pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) not in _ID_KINDS:
        bad = np.fromiter((not _is_id_cell(value) for value in series), dtype=bool, count=len(series))
        if bad.any():
            raise rows.error(label, bad, f"not an id (text or an integer): {_examples(series, bad)}")
    elif not (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)):
        raise rows.error(label, series.notna().to_numpy(), f"a {dtype} column; ids must be text or integers")
    ids = series.astype(pd.StringDtype()).str.strip()
    ids = ids.mask(ids == "").reset_index(drop=True)
    if required:
        missing = ids.isna().to_numpy()
        if missing.any():
            raise rows.error(label, missing, "missing value (an id is required)")
    return ids


def _is_id_cell(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (str, int, np.integer)) or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _numbers(label: str, series: pd.Series, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and the mask of missing ones; raises on values that are not finite numbers.

    Booleans are not numbers here (a Parquet boolean column is not an hour or a position).
    """
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(series.dtype):
        raise rows.error(label, ~missing, f"a boolean column ({series.dtype}) where numbers are expected")
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        # Text is converted once per distinct value: positions and hours repeat a million times.
        codes, uniques = pd.factorize(series)
        distinct = pd.Series(uniques, dtype=object)
        numbers = pd.to_numeric(distinct, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        if pd.api.types.infer_dtype(distinct, skipna=True) not in ("string", "empty", "integer", "floating"):
            # to_numeric reads True as 1 and a timestamp as nanoseconds: neither is a number here.
            numbers[[not _is_number_cell(value) for value in uniques]] = np.nan
        values = np.append(numbers, np.nan)[codes]
    bad = ~np.isfinite(values) & ~missing
    if bad.any():
        raise rows.error(label, bad, f"not a number: {_examples(series, bad)}")
    return values, missing


def _is_number_cell(value: Any) -> bool:
    return isinstance(value, (str, int, float, np.number)) and not isinstance(value, bool)


def _parse_ints(
    label: str, series: pd.Series, rows: _Rows, low: int, high: int, dtype: type, nullable: bool = False
) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """Integers in ``low..high`` as ``dtype``; with ``nullable`` a pandas masked array keeping NA."""
    values, missing = _numbers(label, series, rows)
    if missing.any() and not nullable:
        raise rows.error(label, missing, "missing value (an integer is required)")
    present = ~missing
    fractional = present & (values != np.round(values))
    if fractional.any():
        raise rows.error(label, fractional, f"not an integer: {_examples(series, fractional)}")
    outside = present & ((values < low) | (values > high))
    if outside.any():
        raise rows.error(label, outside, f"{_examples(series, outside)} outside {low}..{high}")
    integers = np.where(missing, 0, values).astype(dtype)
    return pd.arrays.IntegerArray(integers, missing) if nullable else integers


def _parse_floats(label: str, series: pd.Series, rows: _Rows, words: Mapping[str, str] | None = None) -> np.ndarray:
    """float32 values, NaN where missing; ``words`` spells some numbers as words (``major`` -> 1)."""
    if words and not pd.api.types.is_numeric_dtype(series.dtype):
        series = series.astype(pd.StringDtype()).str.strip().str.lower().replace(words)
    values, _ = _numbers(label, series, rows)
    # float32 would turn 1e300 into inf, and the failure would come much later, far from the file.
    overflow = np.abs(values) > np.finfo(np.float32).max
    if overflow.any():
        raise rows.error(label, overflow, f"too large for float32 (beyond ±3.4e38): {_examples(series, overflow)}")
    return values.astype(np.float32)


def _parse_bools(label: str, series: pd.Series, rows: _Rows, missing_as: bool | None = None) -> np.ndarray:
    """Booleans from bools, 1/0 or true/false in any case; missing values are ``missing_as``, or an error."""
    if series.dtype == bool:
        return series.to_numpy()
    # Parsed once per distinct value: a million rows hold two or three.
    codes, uniques = pd.factorize(series)
    table = np.array([_BOOL_CODES.get(str(value).strip().lower(), -1) for value in uniques] + [-2], np.int8)
    parsed = table[codes]
    missing = parsed == -2
    if missing.any():
        if missing_as is None:
            raise rows.error(label, missing, "missing value (true or false is required)")
        parsed[missing] = int(missing_as)
    bad = parsed == -1
    if bad.any():
        raise rows.error(label, bad, f"not a boolean: {_examples(series, bad)} (expected true/false or 1/0)")
    return parsed == 1


def _category_code(value: Any, names: Mapping[str, int]) -> int:
    if isinstance(value, str):
        text = value.strip().lower()
        # Codes written as text ("2" in a CSV) are codes too.
        return int(text) if text.isdigit() and int(text) < len(names) else names.get(text, -1)
    if isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return int(value) if value in range(len(names)) else -1
    return -1


def _parse_category(label: str, series: pd.Series, rows: _Rows, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """A categorical of ``dtype`` from category names (any case) or their integer codes."""
    codes, uniques = pd.factorize(series)
    names = {str(name): code for code, name in enumerate(dtype.categories)}
    table = np.array([_category_code(value, names) for value in uniques] + [-2], np.int8)
    parsed = table[codes]
    missing = parsed == -2
    if missing.any():
        raise rows.error(label, missing, "missing value")
    unknown = parsed == -1
    if unknown.any():
        expected = ", ".join(names)
        raise rows.error(label, unknown, f"unknown {label}: {_examples(series, unknown)} (expected one of {expected})")
    return pd.Categorical.from_codes(parsed, dtype=dtype)


def _parse_dates(label: str, series: pd.Series, rows: _Rows) -> np.ndarray:
    """datetime64[us] values, NaT where missing, from dates or ISO / day-first text; see the module doc."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert(None)
        return series.to_numpy(dtype="datetime64[us]")
    codes, uniques = pd.factorize(series)
    texts = pd.Index([str(value).strip() for value in uniques], dtype=object)
    parsed = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[us]")
    for date_format in _DATE_FORMATS:
        todo = np.isnat(parsed)
        if not todo.any():
            break
        found = pd.to_datetime(texts[todo], format=date_format, errors="coerce", utc=True)
        parsed[todo] = found.tz_convert(None).to_numpy(dtype="datetime64[us]")
    dates = np.append(parsed, np.datetime64("NaT"))[codes]
    bad = np.isnat(dates) & (codes >= 0)
    if bad.any():
        raise rows.error(label, bad, f"not a date: {_examples(series, bad)} ({_DATE_HINT})")
    return dates


def _plays_table(frame: pd.DataFrame, rows: _Rows, catalogue: pd.Index | None) -> pd.DataFrame:
    """The canonical plays table of ``frame``, sorted by session and position; see the module doc."""
    columns = _pick_columns(frame, PLAY_COLUMNS, _PLAY_ALIASES, rows)
    _require(columns, _REQUIRED_PLAY_COLUMNS, rows.where, _PLAY_ALIASES)
    label = {name: spelled for name, (spelled, _) in columns.items()}
    given = {name: series.reset_index(drop=True) for name, (_, series) in columns.items()}
    n = len(frame)
    int16_max = int(np.iinfo(np.int16).max)

    session_id = _parse_ids(label["session_id"], given["session_id"], rows, required=True)
    if "user_id" in given:
        user_id = _parse_ids(label["user_id"], given["user_id"], rows, required=False)
    else:
        user_id = _unknown_ids(n)
    position = _parse_ints(label["position"], given["position"], rows, 1, int16_max, np.int16)
    track_id = _parse_ids(label["track_id"], given["track_id"], rows, required=True)
    response = _parse_category(label["response"], given["response"], rows, RESPONSE_DTYPE)
    context_type = _parse_category(label["context_type"], given["context_type"], rows, CONTEXT_TYPE_DTYPE)
    hour = _parse_ints(label["hour"], given["hour"], rows, 0, 23, np.int8)
    premium = _parse_bools(label["premium"], given["premium"], rows) if "premium" in given else np.zeros(n, bool)
    if "shuffled" in given:
        shuffled = _parse_bools(label["shuffled"], given["shuffled"], rows)
    else:
        shuffled = np.zeros(n, bool)
    if "date" in given:
        date = _parse_dates(label["date"], given["date"], rows)
        outside = (date < _FIRST_DAY) | (date > _LAST_DAY)
        if outside.any():
            raise rows.error(label["date"], outside, f"date outside 1678..2261: {_examples(given['date'], outside)}")
        date = date.astype("datetime64[ns]")
    else:
        date = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")

    if catalogue is not None:
        absent = catalogue.get_indexer(track_id) < 0
        if absent.any():
            raise rows.error(label["track_id"], absent, f"not in the tracks table: {_examples(track_id, absent)}")

    session_codes, _ = pd.factorize(session_id, sort=True)
    if "session_length" in given:
        session_length = _parse_ints(label["session_length"], given["session_length"], rows, 1, int16_max, np.int16)
    else:
        plays_per_session = np.bincount(session_codes, minlength=1)
        too_long = plays_per_session[session_codes] > int16_max
        if too_long.any():
            raise rows.error(label["session_id"], too_long, f"a session has more than {int16_max} plays")
        session_length = plays_per_session[session_codes].astype(np.int16)

    plays = pd.DataFrame(
        {
            "session_id": session_id,
            "user_id": user_id,
            "position": position,
            "session_length": session_length,
            "track_id": track_id,
            "response": response,
            "context_type": context_type,
            "hour": hour,
            "premium": premium,
            "date": date,
            "shuffled": shuffled,
        }
    )
    order = np.lexsort((position, session_codes))
    if not np.array_equal(order, np.arange(n)):
        plays = plays.take(order).reset_index(drop=True)
        rows = rows.take(order)
        session_codes = session_codes[order]
    _check_sessions(plays, session_codes, rows, label)
    return plays


def _check_sessions(plays: pd.DataFrame, session_codes: np.ndarray, rows: _Rows, label: Mapping[str, str]) -> None:
    """Session-level rules on sorted plays: one length per session, positions in range and unique."""
    n = len(plays)
    position = plays["position"].to_numpy()
    length = plays["session_length"].to_numpy()
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = session_codes[1:] != session_codes[:-1]
    session_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))

    varies = length != length[session_start]
    if varies.any():
        in_session = np.isin(session_codes, session_codes[varies])
        first = np.flatnonzero(in_session)[0]
        session = plays["session_id"].iat[first]
        values = sorted(set(length[in_session & (session_codes == session_codes[first])].tolist()))
        problem = f"session {session!r} has more than one session_length: {values}"
        raise rows.error(label["session_length"], in_session, problem)

    beyond = position > length
    if beyond.any():
        first = np.flatnonzero(beyond)[0]
        problem = f"position beyond session_length ({position[first]} > {length[first]})"
        raise rows.error(label["position"], beyond, problem)

    repeated = ~new_session[1:] & (position[1:] == position[:-1])
    if repeated.any():
        duplicate = np.zeros(n, dtype=bool)
        duplicate[1:] |= repeated
        duplicate[:-1] |= repeated
        first = np.flatnonzero(duplicate)[0]
        problem = f"session {plays['session_id'].iat[first]!r} has position {position[first]} more than once"
        raise rows.error(label["position"], duplicate, problem)


def _tracks_table(frame: pd.DataFrame, rows: _Rows) -> pd.DataFrame:
    """The canonical tracks table of ``frame``, in its order; see the module doc."""
    columns = _pick_columns(frame, [*TRACK_COLUMNS, "release_date_estimate"], _TRACK_ALIASES, rows)
    _require(columns, ["track_id"], rows.where, _TRACK_ALIASES)
    label = {name: spelled for name, (spelled, _) in columns.items()}
    given = {name: series.reset_index(drop=True) for name, (_, series) in columns.items()}
    n = len(frame)

    track_id = _parse_ids(label["track_id"], given["track_id"], rows, required=True)
    repeated = track_id.duplicated(keep=False).to_numpy()
    if repeated.any():
        raise rows.error(label["track_id"], repeated, f"duplicate track id: {_examples(track_id, repeated)}")
    table: dict[str, Any] = {"track_id": track_id}
    if "artist_id" in given:
        table["artist_id"] = _parse_ids(label["artist_id"], given["artist_id"], rows, required=False)
    else:
        table["artist_id"] = _unknown_ids(n)
    if "explicit" in given:
        table["explicit"] = _parse_bools(label["explicit"], given["explicit"], rows, missing_as=False)
    else:
        table["explicit"] = np.zeros(n, dtype=bool)
    if "genre" in given:
        int16_max = int(np.iinfo(np.int16).max)
        table["genre"] = _parse_ints(label["genre"], given["genre"], rows, 0, int16_max, np.int16, nullable=True)
    else:
        table["genre"] = pd.arrays.IntegerArray(np.zeros(n, np.int16), np.ones(n, dtype=bool))
    for name in ACOUSTIC_FEATURES:
        if name in given:
            words = _MODE_WORDS if name == "mode" else None
            table[name] = _parse_floats(label[name], given[name], rows, words)
        elif name == "release_year" and "release_date_estimate" in given:
            dates = _parse_dates(label["release_date_estimate"], given["release_date_estimate"], rows)
            table[name] = pd.DatetimeIndex(dates).year.to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            table[name] = np.full(n, np.nan, dtype=np.float32)
    return pd.DataFrame(table)


def _blocks_table(frame: pd.DataFrame, rows: _Rows, catalogue: pd.Index | None) -> pd.DataFrame:
    """The canonical blocks table of ``frame``; see the module doc."""
    columns = _pick_columns(frame, BLOCK_COLUMNS, {}, rows)
    _require(columns, ["user_id"], rows.where, {})
    if "track_id" not in columns and "artist_id" not in columns:
        raise LogFormatError(f"{rows.where}: missing column 'track_id' or 'artist_id' (each block names one)")
    n = len(frame)
    table = {}
    for name in BLOCK_COLUMNS:
        if name in columns:
            table[name] = _parse_ids(name, columns[name][1].reset_index(drop=True), rows, name == "user_id")
        else:
            table[name] = _unknown_ids(n)
    blocks = pd.DataFrame(table)
    named = blocks["track_id"].notna().to_numpy().astype(int) + blocks["artist_id"].notna().to_numpy()
    if (named != 1).any():
        raise rows.error("track_id/artist_id", named != 1, "exactly one of track_id and artist_id must be set")
    if catalogue is not None:
        absent = blocks["track_id"].notna().to_numpy() & (catalogue.get_indexer(blocks["track_id"]) < 0)
        if absent.any():
            problem = f"not in the tracks table: {_examples(blocks['track_id'], absent)}"
            raise rows.error("track_id", absent, problem)
    return blocks


_DECOMPRESSORS = {".gz": ("gzip", gzip.open), ".bz2": ("bzip2", bz2.open), ".xz": ("xz", lzma.open)}
"""CSV compressions, by file suffix: the name, and an opener giving the decompressed bytes."""
# What a damaged compressed file raises while being read (gzip's BadGzipFile is an OSError).
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError)


def _read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table as read: a Parquet file (``.parquet``, ``.pq``) or folder of Parquet files, else a CSV file.

    CSV files may be compressed (``.gz``, ``.bz2``, ``.xz``); their cells stay text, so that every
    value is parsed, and reported, by this module's rules. A missing file raises
    ``FileNotFoundError``; anything that cannot be read as such a table, :class:`LogFormatError`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(path))
    if path.is_dir():
        if not any(part.suffix.lower() in (".parquet", ".pq") for part in path.rglob("*") if part.is_file()):
            raise LogFormatError(
                f"{path}: a folder without Parquet files (expected a CSV or Parquet file, or a folder of "
                "Parquet files such as Spark writes)"
            )
        return _read_parquet(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    return _read_csv(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
        if isinstance(error, PermissionError):
            raise
        raise LogFormatError(f"{path}: not a readable Parquet file ({error})") from error


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file's cells as text (NA where empty), under the names its header spells, duplicates kept.

    Every row must have as many cells as the header: a row with a cell missing or extra (a dropped
    cell, a line cut short) is an error naming it, not a row padded with missing values, whose
    cells would silently land in the wrong columns.
    """
    compression, opener = _DECOMPRESSORS.get(path.suffix.lower(), (None, open))
    what = "CSV file" if compression is None else f"{compression}-compressed CSV file"
    ragged: list[Any] = []

    def stop_at_ragged(row: Any) -> str:
        ragged.append(row)
        return "error"  # pyarrow then raises ArrowInvalid

    try:
        with _undecodable_rows() as undecodable, opener(path, "rb") as stream:
            table = _read_csv_cells(stream, stop_at_ragged, threads=True)
    except (pa.ArrowInvalid, *_DECOMPRESSION_ERRORS) as error:
        if isinstance(error, PermissionError):
            raise
        if not ragged and not undecodable:
            raise LogFormatError(f"{path}: not a readable {what} ({error})") from error
        # The fast threaded read cannot say where the row was; a single-threaded one numbers them all.
        # A ragged row that is not UTF-8 never reaches the handler (pyarrow fails decoding it for
        # the handler): then Python's reader numbers the rows instead.
        if not undecodable:
            with _undecodable_rows() as undecodable, opener(path, "rb") as stream:
                invalid = [
                    (row.number - 1, row.actual_columns, row.expected_columns, row.text) for row in _ragged_rows(stream)
                ]
        if undecodable or not invalid:
            with opener(path, "rb") as stream:
                invalid = _ragged_rows_python(stream)
        if not invalid:
            raise LogFormatError(f"{path}: not a readable {what} ({error})") from error
        numbers = [number for number, *_ in invalid]  # data rows from 1: pyarrow counts the header as row 1
        shown = ", ".join(map(str, numbers[:5])) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
        _, actual, expected, text = invalid[0]
        raise LogFormatError(
            f"{path}: row{'s' if len(numbers) > 1 else ''} {shown}: {actual} cells where the header "
            f"has {expected} (a cell missing or extra, or a line cut short): {text[:80]!r}"
        ) from None
    header = ["" if name is None else name for name in table.slice(0, 1).to_pylist()[0].values()]
    frame = table.slice(1).to_pandas()
    frame.columns = header
    return frame


def _read_csv_cells(stream: Any, on_ragged: Callable[[Any], str], threads: bool) -> pa.Table:
    """Every cell of a CSV stream as text, null where empty; the header is the first row."""
    # The header is read as a row, so that its names come back exactly as spelled (pandas would
    # rename a second "a" to "a.1"). The header's first line bounds the number of columns from
    # above (a quoted comma counts twice); types given for columns that do not exist are ignored.
    n_columns = stream.readline().count(b",") + 1
    stream.seek(0)
    return pa_csv.read_csv(
        stream,
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=threads),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged),
        convert_options=pa_csv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(n_columns)},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


@contextlib.contextmanager
def _undecodable_rows() -> Any:
    """Collect the decoding errors pyarrow meets while handing a row that is not UTF-8 to the
    ragged-row handler, instead of letting them print "Exception ignored" tracebacks."""
    caught: list[BaseException] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError):
            caught.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def _ragged_rows_python(stream: Any) -> list[tuple[int, int, int, str]]:
    """``(data row from 1, cells, header cells, text)`` of every ragged row, by Python's CSV reader
    (undecodable bytes shown as U+FFFD); blank lines are skipped and not counted, as pyarrow does."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    records = (record for record in csv.reader(text) if record)
    header = next(records, [])
    return [
        (number, len(record), len(header), ",".join(record))
        for number, record in enumerate(records, start=1)
        if len(record) != len(header)
    ]


def _ragged_rows(stream: Any) -> list[Any]:
    """pyarrow's ``InvalidRow`` for every row whose number of cells differs from the header's, in order."""
    invalid: list[Any] = []

    def collect(row: Any) -> str:
        invalid.append(row)
        return "skip"

    _read_csv_cells(stream, collect, threads=False)
    return invalid


def _read_rows(path: str | os.PathLike[str] | None, holding: str | None = None) -> tuple[pd.DataFrame, _Rows] | None:
    """A file's table and the names of its rows, or None without a file.

    Args:
        holding: what the rows are (``"plays"``): a file without rows is then an error, since a log
            without plays (or a catalogue without tracks) only fails later, far from the file.
    """
    if path is None:
        return None
    frame = _read_table(path)
    if holding is not None and frame.empty:
        raise LogFormatError(f"{path}: no {holding}: the table has its columns but no rows")
    return frame, _Rows.of_file(path, len(frame))


def _build(
    plays: tuple[pd.DataFrame, _Rows],
    tracks: tuple[pd.DataFrame, _Rows] | None,
    blocks: tuple[pd.DataFrame, _Rows] | None,
    source: str,
) -> ListeningLog:
    """Validate and assemble the three tables; tracks first when given, to check plays against them."""
    if tracks is None:
        plays_table = _plays_table(*plays, None)
        blocks_table = None if blocks is None else _blocks_table(*blocks, None)
        played = [plays_table["track_id"]]
        if blocks_table is not None:
            played.append(blocks_table["track_id"].dropna())
        _, track_ids = pd.factorize(pd.concat(played, ignore_index=True), sort=True)
        derived = pd.DataFrame({"track_id": track_ids})
        tracks_table = _tracks_table(derived, _Rows.of_frame(f"{source} tracks", derived))
    else:
        tracks_table = _tracks_table(*tracks)
        catalogue = pd.Index(tracks_table["track_id"])
        plays_table = _plays_table(*plays, catalogue)
        blocks_table = None if blocks is None else _blocks_table(*blocks, catalogue)
    return ListeningLog(plays_table, tracks_table, blocks_table, source)
