"""The catalogue of bad input to the log loader (musicenv.data): each case, the error and what it names.

Every case asserts the error type and that the message names the file (or frame), and where there
is one, the row and the column. Cases the loader already handled before are in the same tables
(marked "held"), so the whole catalogue reads in one place. Last, a property test: randomly damaged
real MSSD files either load as exactly the rows that survived intact or raise ``LogFormatError``.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from musicenv.data import ListeningLog, LogFormatError, load_log, load_mssd

PLAYS_CSV = (
    "session_id,user_id,position,session_length,track_id,response,context_type,hour,premium,date\n"
    "s1,u1,1,2,t1,skip,radio,8,true,2018-07-15\n"
    "s1,u1,2,2,t2,complete,radio,8,true,2018-07-15\n"
    "s2,,1,1,t1,listen,catalog,23,false,\n"
)
TRACKS_CSV = "track_id,artist_id,energy,mode\nt1,a1,0.5,major\nt2,,0.25,minor\n"
BLOCKS_CSV = "user_id,track_id,artist_id\nu1,t2,\n"
MSSD_CSV = (
    "session_id,session_position,session_length,track_id_clean,skip_2,not_skipped,hour_of_day,date,premium,"
    "context_type\n"
    "a,1,2,t1,true,false,1,15-07-18,true,catalog\n"
    "a,2,2,t2,false,true,1,15-07-18,true,catalog\n"
)


def edit(text: str, old: str, new: str) -> str:
    """``text`` with its one occurrence of ``old`` replaced (the case fails if ``old`` is not unique)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def assert_names(message: str, path: Path | str, row: str | None = None, column: str | None = None) -> None:
    """The message starts with the file and names the row(s) and the column."""
    assert message.startswith(f"{path}: "), message
    if row is not None:
        assert f": {row}" in message, message
    if column is not None:
        assert f"column {column!r}" in message, message


# Generic CSV files: (case, file edited, old text, new text, rows named, column named, problem) --------

PLAYS, TRACKS, BLOCKS = "plays.csv", "tracks.csv", "blocks.csv"
CSV_CASES = [
    # New cases (not handled before this catalogue).
    ("feature overflows float32", TRACKS, "t2,,0.25", "t2,,1e300", "row 2", "energy", "too large for float32"),
    ("negative overflow", TRACKS, "t1,a1,0.5", "t1,a1,-1e39", "row 1", "energy", "too large for float32"),
    ("header-only plays", PLAYS, PLAYS_CSV[PLAYS_CSV.index("\n") + 1 :], "", None, None, "no plays"),
    ("header-only tracks", TRACKS, TRACKS_CSV[TRACKS_CSV.index("\n") + 1 :], "", None, None, "no tracks"),
    ("duplicated header column", PLAYS, "premium,date", "premium,hour", None, "hour", "appears 2 times"),
    ("duplicate after stripping", PLAYS, "premium,date", "premium, hour ", None, "hour", "columns 8, 10"),
    ("dropped cell", PLAYS, "t2,complete,radio", "t2,radio", "row 2", None, "9 cells where the header has 10"),
    ("extra cell", PLAYS, "23,false,\n", "23,false,,x\n", "row 3", None, "11 cells where the header has 10"),
    ("line cut short", PLAYS, "23,false,\n", "23,fa", "row 3", None, "cells where the header has 10"),
    ("two lines run together", PLAYS, "2018-07-15\ns1", "2018-07-15s1", "row 1", None, "cells where the header"),
    # Held: the loader handled these before.
    ("missing required column", PLAYS, ",response,", ",answer,", None, None, "missing required column(s) 'response'"),
    ("missing id", PLAYS, "s2,,1", ",,1", "row 3", "session_id", "missing value"),
    ("blank id", PLAYS, "s2,,1", "  ,,1", "row 3", "session_id", "missing value"),
    ("position 0", PLAYS, "s2,,1,1", "s2,,0,1", "row 3", "position", "outside 1..32767"),
    ("fractional position", PLAYS, "s2,,1,1", "s2,,1.5,1", "row 3", "position", "not an integer"),
    ("hour out of range", PLAYS, "catalog,23", "catalog,24", "row 3", "hour", "outside 0..23"),
    ("hour as text", PLAYS, "catalog,23", "catalog,noon", "row 3", "hour", "not a number: 'noon'"),
    ("hour inf", PLAYS, "catalog,23", "catalog,inf", "row 3", "hour", "not a number"),
    ("unknown response", PLAYS, "listen", "maybe", "row 3", "response", "unknown response"),
    ("unknown context", PLAYS, "catalog", "podcast", "row 3", "context_type", "unknown context_type"),
    ("bad boolean", PLAYS, "23,false", "23,yes", "row 3", "premium", "not a boolean"),
    ("bad date", PLAYS, "skip,radio,8,true,2018-07-15", "skip,radio,8,true,2018-14-07", "row 1", "date", "not a date"),
    ("date beyond ns range", PLAYS, "skip,radio,8,true,2018-07-15", "skip,radio,8,true,3000-01-01", "row 1", "date",
     "outside 1678..2261"),
    ("duplicate session position", PLAYS, "s1,u1,2,2", "s1,u1,1,2", "rows 1, 2", "position", "more than once"),
    ("varying session_length", PLAYS, "s1,u1,2,2", "s1,u1,2,3", "rows 1, 2", "session_length", "more than one"),
    ("position beyond length", PLAYS, "s2,,1,1", "s2,,2,1", "row 3", "position", "beyond session_length"),
    ("unknown track", PLAYS, "s2,,1,1,t1", "s2,,1,1,t9", "row 3", "track_id", "not in the tracks table"),
    ("duplicate track id", TRACKS, "t2,,", "t1,,", "rows 1, 2", "track_id", "duplicate track id"),
    ("feature as text", TRACKS, "0.25", "loud", "row 2", "energy", "not a number: 'loud'"),
    ("unknown mode word", TRACKS, "minor", "lydian", "row 2", "mode", "not a number"),
    ("block of both kinds", BLOCKS, "u1,t2,", "u1,t2,a1", "row 1", "track_id/artist_id", "exactly one"),
    ("block of neither kind", BLOCKS, "u1,t2,", "u1,,", "row 1", "track_id/artist_id", "exactly one"),
    ("block of an unknown track", BLOCKS, "u1,t2,", "u1,t7,", "row 1", "track_id", "not in the tracks table"),
    ("blocks without a user", BLOCKS, "user_id,", "listener,", None, None, "missing required column(s) 'user_id'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "file", "old", "new", "row", "column", "problem"), CSV_CASES, ids=[case[0] for case in CSV_CASES]
)
def test_bad_csv_raises_naming_file_row_and_column(
    tmp_path: Path, case: str, file: str, old: str, new: str, row: str | None, column: str | None, problem: str | None
) -> None:
    texts = {PLAYS: PLAYS_CSV, TRACKS: TRACKS_CSV, BLOCKS: BLOCKS_CSV}
    texts[file] = edit(texts[file], old, new)
    paths = {name: tmp_path / name for name in texts}
    for name, text in texts.items():
        paths[name].write_text(text, encoding="utf-8")
    with pytest.raises(LogFormatError) as caught:
        load_log(paths[PLAYS], paths[TRACKS], paths[BLOCKS])
    message = str(caught.value)
    assert_names(message, paths[file], row, column)
    if problem is not None:
        assert problem in message, message


@pytest.mark.parametrize(
    ("old", "new", "row", "problem"),
    [
        ("t2,complete,radio", b"t2,\xff\xfe,radio", "row 2", "10 cells where the header has 10"),  # not ragged
        ("t2,complete,radio", b"t2,\xff\xferadio", "row 2", "9 cells where the header has 10"),
        ("23,false,\n", b"23,\xe9t\xe9,,x\n", "row 3", "11 cells where the header has 10"),
        ("s1,u1,1,2,t1", b"s1,u1,1,\xff", "row 1", "9 cells where the header has 10"),
    ],
    ids=["bad bytes in a whole row", "ragged row", "extra cell", "cells cut"],
)
def test_a_row_that_is_not_utf8_is_named_without_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], old: str, new: bytes, row: str, problem: str
) -> None:
    """pyarrow cannot hand a ragged row that is not UTF-8 to its handler: no "Exception ignored"
    traceback on stderr, and the row is still named."""
    texts = {PLAYS: PLAYS_CSV, TRACKS: TRACKS_CSV, BLOCKS: BLOCKS_CSV}
    paths = {name: tmp_path / name for name in texts}
    for name, text in texts.items():
        paths[name].write_text(text, encoding="utf-8")
    head, tail = PLAYS_CSV.encode().split(old.encode())
    paths[PLAYS].write_bytes(head + new + tail)
    capfd.readouterr()
    with pytest.raises(LogFormatError) as caught:
        load_log(paths[PLAYS], paths[TRACKS], paths[BLOCKS])
    message = str(caught.value)
    assert "Exception ignored" not in capfd.readouterr().err
    if "not a readable" in message or "UTF-8" in message:  # a whole row of bad bytes is no ragged row
        assert message.startswith(f"{paths[PLAYS]}: "), message
        return
    assert_names(message, paths[PLAYS], row)
    assert problem in message, message


def test_the_valid_files_of_the_catalogue_load(tmp_path: Path) -> None:
    """The catalogue's starting files are valid, so each case's error comes from its one edit."""
    paths = [tmp_path / name for name in (PLAYS, TRACKS, BLOCKS)]
    for path, text in zip(paths, (PLAYS_CSV, TRACKS_CSV, BLOCKS_CSV), strict=True):
        path.write_text(text, encoding="utf-8")
    log = load_log(*paths)
    assert (log.n_plays, log.n_tracks, len(log.blocks)) == (3, 2, 1)


# MSSD files ---------------------------------------------------------------------------------------

MSSD_CASES = [
    ("header-only log", MSSD_CSV[MSSD_CSV.index("\n") + 1 :], "", None, None, "no plays"),
    ("dropped cell", "true,false,1", "true,1", "row 1", None, "9 cells where the header has 10"),
    # Held.
    ("bad skip_2", "a,1,2,t1,true", "a,1,2,t1,maybe", "row 1", "skip_2", "not a boolean: 'maybe'"),
    ("missing not_skipped", "false,true,1", "false,,1", "row 2", "not_skipped", "missing value"),
    ("no not_skipped column", ",not_skipped,", ",skipped_not,", None, None, "missing required column(s) 'not_skipped'"),
    ("bad day-first date", "1,15-07-18,true,catalog\na,2", "1,32-07-18,true,catalog\na,2", "row 1", "date",
     "not a date"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "old", "new", "row", "column", "problem"), MSSD_CASES, ids=[case[0] for case in MSSD_CASES]
)
def test_bad_mssd_log_raises_naming_file_row_and_column(
    tmp_path: Path, case: str, old: str, new: str, row: str | None, column: str | None, problem: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_text(edit(MSSD_CSV, old, new), encoding="utf-8")
    with pytest.raises(LogFormatError) as caught:
        load_mssd(path)
    assert_names(str(caught.value), path, row, column)
    assert problem in str(caught.value)


def test_mssd_track_feature_beyond_float32_names_row_and_column(shared_dir: Path, tmp_path: Path) -> None:
    sample = shared_dir / "data/mssd"
    with open(sample / "sample_track_features_schema.csv", newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows[3][rows[0].index("tempo")] = "1e300"
    features = tmp_path / "features.csv"
    with open(features, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sample has a play with skip_2 and not_skipped both true
        with pytest.raises(LogFormatError) as caught:
            load_mssd(sample / "sample_log_schema.csv", features)
    assert_names(str(caught.value), features, "row 3", "tempo")
    assert "too large for float32 (beyond ±3.4e38): '1e300'" in str(caught.value)


# Parquet files and frames ---------------------------------------------------------------------------


def plays_frame(**columns: object) -> pd.DataFrame:
    """Two valid plays of one session, with ``columns`` replaced."""
    frame = pd.DataFrame(
        {
            "session_id": ["s1", "s1"],
            "position": [1, 2],
            "track_id": ["t1", "t2"],
            "response": ["skip", "complete"],
            "context_type": ["radio", "radio"],
            "hour": [8, 8],
        }
    )
    return frame.assign(**columns)


PARQUET_CASES = [
    ("list column as session ids", {"session_id": [["s1"], ["s1", "s2"]]}, "rows 1, 2", "session_id",
     "not a single value"),
    ("struct column as track ids", {"track_id": [{"id": "t1"}, {"id": "t2"}]}, "rows 1, 2", "track_id",
     "not a single value"),
    ("boolean column as hours", {"hour": [True, False]}, "rows 1, 2", "hour", "a boolean column"),
    ("boolean column as positions", {"position": [True, False]}, "rows 1, 2", "position", "a boolean column"),
    ("boolean column as track ids", {"track_id": [True, False]}, "rows 1, 2", "track_id", "a boolean column"),
    ("bytes as track ids", {"track_id": [b"t1", b"t2"]}, "rows 1, 2", "track_id", "not a single value"),
    ("fractional float ids", {"session_id": [1.5, 1.5]}, "rows 1, 2", "session_id", "not an id"),
    ("text hours", {"hour": ["8", "eight"]}, "row 2", "hour", "not a number: 'eight'"),
    ("timestamps as hours", {"hour": pd.to_datetime(["2018-07-15", "2018-07-15"])}, "rows 1, 2", "hour",
     "not a number"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "columns", "row", "column", "problem"), PARQUET_CASES, ids=[case[0] for case in PARQUET_CASES]
)
def test_bad_parquet_raises_naming_file_row_and_column(
    tmp_path: Path, case: str, columns: dict[str, object], row: str, column: str, problem: str
) -> None:
    path = tmp_path / "plays.parquet"
    plays_frame(**columns).to_parquet(path)
    with pytest.raises(LogFormatError) as caught:
        load_log(path)
    assert_names(str(caught.value), path, row, column)
    assert problem in str(caught.value)


def test_zero_row_parquet_is_an_error_but_an_empty_frame_is_a_log(tmp_path: Path) -> None:
    path = tmp_path / "plays.parquet"
    plays_frame().iloc[:0].to_parquet(path)
    with pytest.raises(LogFormatError, match=rf"^{re.escape(str(path))}: no plays"):
        load_log(path)
    assert ListeningLog.from_frames(plays_frame().iloc[:0]).n_plays == 0  # held: frames may be empty


def test_whole_float_ids_read_as_integers(tmp_path: Path) -> None:
    """A Parquet integer column with nulls reads as floats; its ids must not become '7.0'."""
    path = tmp_path / "plays.parquet"
    plays_frame(session_id=[7, 7], user_id=pd.array([3, None], dtype="Int64")).to_parquet(path)
    log = load_log(path)
    assert log.plays["session_id"].tolist() == ["7", "7"]
    assert log.plays["user_id"].tolist() == ["3", pd.NA]


def test_frames_with_duplicate_columns_or_odd_cells() -> None:
    twice = pd.concat([plays_frame(), plays_frame()[["hour"]]], axis=1)
    with pytest.raises(LogFormatError, match=r"^mine plays: column 'hour' appears 2 times in the header"):
        ListeningLog.from_frames(twice, source="mine")
    mixed = plays_frame(hour=pd.Series([8, True], dtype=object))
    with pytest.raises(LogFormatError, match=r"^<memory> plays: index 1, column 'hour': not a number: 'True'"):
        ListeningLog.from_frames(mixed)
    with pytest.raises(LogFormatError, match=r"^<memory> plays: index 0, column 'track_id': not an id"):
        ListeningLog.from_frames(plays_frame(track_id=pd.Series([False, "t2"], dtype=object)))


# Files that are not tables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("plays.csv.gz", PLAYS_CSV.encode(), "not a readable gzip-compressed CSV file"),
        ("plays.csv.gz", gzip.compress(PLAYS_CSV.encode())[:-30], "not a readable gzip-compressed CSV file"),
        ("plays.csv.bz2", PLAYS_CSV.encode(), "not a readable bzip2-compressed CSV file"),
        ("plays.csv.xz", PLAYS_CSV.encode(), "not a readable xz-compressed CSV file"),
        ("plays.parquet", PLAYS_CSV.encode(), "not a readable Parquet file"),
        ("plays.csv", b"", "not a readable CSV file"),
        ("plays.csv", b"session_id,position\n\xff\xfe,1\n", "not a readable CSV file"),  # held
    ],
    ids=["fake gz", "truncated gz", "fake bz2", "fake xz", "csv named parquet", "empty file", "undecodable"],
)
def test_unreadable_files_name_the_file(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LogFormatError) as caught:
        load_log(path)
    assert_names(str(caught.value), path)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("name", "compress"), [("plays.csv.gz", gzip.compress), ("plays.csv.bz2", bz2.compress), ("p.xz", lzma.compress)]
)
def test_compressed_csv_loads(tmp_path: Path, name: str, compress: Callable[[bytes], bytes]) -> None:
    (tmp_path / name).write_bytes(compress(PLAYS_CSV.encode()))
    (tmp_path / "plays.csv").write_text(PLAYS_CSV, encoding="utf-8")
    pd.testing.assert_frame_equal(load_log(tmp_path / name).plays, load_log(tmp_path / "plays.csv").plays)


def test_folders(tmp_path: Path) -> None:
    csv_folder = tmp_path / "exports"
    csv_folder.mkdir()
    (csv_folder / "plays.csv").write_text(PLAYS_CSV, encoding="utf-8")
    with pytest.raises(LogFormatError, match=rf"^{re.escape(str(csv_folder))}: a folder without Parquet files"):
        load_log(csv_folder)
    empty = tmp_path / "plays.parquet"
    empty.mkdir()
    with pytest.raises(LogFormatError, match=rf"^{re.escape(str(empty))}: a folder without Parquet files"):
        load_log(empty)
    (empty / "part-0.parquet").parent.mkdir(exist_ok=True)
    plays_frame().to_parquet(empty / "part-0.parquet")
    assert load_log(empty).n_plays == 2  # a Parquet dataset folder, as Spark writes one
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        load_log(tmp_path / "nowhere.csv")


# Whitespace around ids ----------------------------------------------------------------------------


def test_whitespace_around_ids_is_stripped_in_every_table(tmp_path: Path) -> None:
    plays = tmp_path / "plays.csv"
    plays.write_text(edit(edit(PLAYS_CSV, "s1,u1,2,2,t2", "s1 ,u1,2,2, t2 "), "s2,,", "s2,  u9 ,"), encoding="utf-8")
    tracks = tmp_path / "tracks.csv"
    tracks.write_text(edit(TRACKS_CSV, "t1,a1", "t1\t,a1 "), encoding="utf-8")
    blocks = tmp_path / "blocks.csv"
    blocks.write_text(edit(BLOCKS_CSV, "u1,t2", " u1, t2"), encoding="utf-8")
    log = load_log(plays, tracks, blocks)
    assert log.n_sessions == 2  # "s1 " did not split session s1
    assert log.plays["session_id"].tolist() == ["s1", "s1", "s2"]
    assert log.plays["track_id"].tolist() == ["t1", "t2", "t1"]  # " t2 " joined the tracks table's t2
    assert log.plays["user_id"].tolist() == ["u1", "u1", "u9"]
    assert log.tracks["track_id"].tolist() == ["t1", "t2"] and log.tracks["artist_id"].iloc[0] == "a1"
    assert log.blocks[["user_id", "track_id"]].values.tolist() == [["u1", "t2"]]


# Randomly damaged real MSSD files -----------------------------------------------------------------

REAL_LOG = "data/mssd/log_real_11_sessions.csv"
READ_COLUMNS = (
    "session_id",
    "session_position",
    "session_length",
    "track_id_clean",
    "skip_2",
    "not_skipped",
    "hist_user_behavior_is_shuffle",
    "hour_of_day",
    "date",
    "premium",
    "context_type",
)
"""The columns load_mssd reads; the file's other ten are ignored."""

row_index = st.integers(0, 250)
DAMAGE = st.lists(
    st.one_of(
        st.tuples(st.just("drop cell"), row_index, st.integers(0, 25)),
        st.tuples(st.just("swap columns"), st.integers(0, 25), st.integers(0, 25)),
        st.tuples(st.just("cut file"), row_index, st.integers(0, 400)),
        st.tuples(st.just("split line"), row_index, st.integers(0, 400)),
        st.tuples(st.just("drop line"), row_index, st.just(0)),
    ),
    min_size=1,
    max_size=4,
)


def damaged_lines(
    lines: list[list[str]], damage: list[tuple[str, int, int]]
) -> tuple[list[tuple[int, list[str]]], bool]:
    """Apply ``damage`` to a file's lines (cells; line 0 the header); each line keeps its origin.

    The damage is what a file suffers and a loader can see: a data row loses a cell ("drop cell"),
    whole columns trade places, header included ("swap columns"), the file ends inside a data row
    that loses at least its last cell, or exactly after a row ("cut file"), a data row is broken
    in two lines ("split line"), or a whole data line is lost ("drop line"). Left out, because no
    loader could tell: a header and a row that lose a cell each (they agree again), a row whose
    last cell is cut short but kept ("16" -> "1"), and a split row whose first half is then lost,
    whole or cell by cell (the second half has every cell, the first one shortened).

    Returns the damaged lines as (index of the original line, cells) and whether the file ends
    in a line cut short (no final newline). A split at either end of a line leaves an empty
    line, which the reader skips as a blank line; it is dropped here too.
    """
    current = [(origin, list(cells), False) for origin, cells in enumerate(lines)]
    cut = False
    for kind, at, where in damage:
        if kind == "swap columns":
            for _, cells, _ in current:
                a, b = at % len(cells), where % len(cells)
                cells[a], cells[b] = cells[b], cells[a]
            continue
        if len(current) < 2:
            break
        i = 1 + at % (len(current) - 1)  # a data line
        origin, cells, fragment = current[i]
        text = ",".join(cells)
        if kind == "drop cell":
            if len(cells) > 1:  # a line's last cell gone is a line gone: see "drop line"
                del cells[where % len(cells)]
        elif kind == "drop line":
            if not fragment:
                del current[i]
        elif kind == "cut file":
            last_comma = text.rfind(",")
            k = where % (last_comma + 2)
            current[i:] = [(origin, (text if k > last_comma else text[:k]).split(","), fragment)]
            cut = k <= last_comma
        else:  # split line
            k = where % (len(text) + 1)
            current[i : i + 1] = [(origin, text[:k].split(","), True), (origin, text[k:].split(","), True)]
        current = [line for line in current if line[1] != [""]]
    return [(origin, cells) for origin, cells, _ in current], cut


def write_lines(path: Path, lines: list[list[str]], cut: bool = False) -> None:
    text = "\n".join(",".join(cells) for cells in lines)
    path.write_text(text if cut else text + "\n", encoding="utf-8")


def intact(cells: list[str], header: list[str], original: list[str], original_header: list[str]) -> bool:
    """The row has all its cells and, under the damaged header's names, the original's values."""
    if len(cells) != len(header) or any(header.count(name) != 1 for name in READ_COLUMNS):
        return False
    return all(cells[header.index(name)] == original[original_header.index(name)] for name in READ_COLUMNS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=DAMAGE)
def test_damaged_mssd_loads_as_its_intact_rows_or_raises_log_format_error(
    shared_dir: Path, tmp_path: Path, damage: list[tuple[str, int, int]]
) -> None:
    """A damaged log either raises LogFormatError or is exactly the log of the rows that survived intact.

    "Intact" is precise: a row of the damaged file with as many cells as the header and, under the
    (possibly reordered) header's names, the original's value in every column the loader reads.
    If the load succeeds, every row of the damaged file must be intact (a damaged row that loads
    would be silent corruption), and the log must equal the log of the original file cut down to
    those rows. Cells of columns the loader ignores may differ.
    """
    with open(shared_dir / REAL_LOG, newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    damaged, cut = damaged_lines(lines, damage)
    path = tmp_path / "damaged.csv"
    write_lines(path, [cells for _, cells in damaged], cut)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plays with both skip_2 and not_skipped true are counted in a warning
        try:
            log = load_mssd(path)
        except LogFormatError as error:
            assert str(error).startswith(f"{path}: "), error
            event("raised LogFormatError")
            return
        event("loaded")
        header_origin, header = damaged[0]
        assert header_origin == 0, "the loader took a data row for the header"
        for origin, cells in damaged[1:]:
            assert origin > 0 and intact(cells, header, lines[origin], lines[0]), f"loaded a damaged row: {cells}"
        kept = tmp_path / "kept.csv"
        write_lines(kept, [lines[0], *(lines[origin] for origin, _ in damaged[1:])])
        expected = load_mssd(kept)
    pd.testing.assert_frame_equal(log.plays, expected.plays)
    pd.testing.assert_frame_equal(log.tracks, expected.tracks)


def test_damage_model_examples(shared_dir: Path, tmp_path: Path) -> None:
    """The property test's damage does what it says: a swap of whole columns changes nothing."""
    with open(shared_dir / REAL_LOG, newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    swapped, _ = damaged_lines(lines, [("swap columns", 0, 3), ("swap columns", 5, 7)])
    write_lines(tmp_path / "swapped.csv", [cells for _, cells in swapped])
    write_lines(tmp_path / "original.csv", lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(
            load_mssd(tmp_path / "swapped.csv").plays, load_mssd(tmp_path / "original.csv").plays
        )
        dropped, _ = damaged_lines(lines, [("drop cell", 7, 2)])
        write_lines(tmp_path / "dropped.csv", [cells for _, cells in dropped])
        with pytest.raises(LogFormatError, match=r"dropped\.csv: row 8: 20 cells where the header has 21"):
            load_mssd(tmp_path / "dropped.csv")
