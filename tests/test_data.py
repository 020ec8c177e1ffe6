"""Listening logs: loading, validation, error messages, saving (musicenv.data)."""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicenv.data import (
    ACOUSTIC_FEATURES,
    BLOCK_COLUMNS,
    PLAY_COLUMNS,
    TRACK_COLUMNS,
    ListeningLog,
    LogFormatError,
    load_log,
    load_mssd,
)

LOG_FIELDS = (
    "session_id", "user_id", "position", "session_length", "track_id", "response",
    "context_type", "hour", "premium", "date", "shuffled",
)  # fmt: skip
"""The generic log's columns, in the order the test files write them."""


def session_plays(session: dict[str, str], *plays: tuple[str, str]) -> list[dict[str, str]]:
    """One session's rows of a generic log: the session's fields on every row, and its plays'
    ``(track_id, response)`` at positions 1, 2, ... (columns in :data:`LOG_FIELDS` order)."""
    rows = [
        {**session, "position": str(position), "track_id": track, "response": response}
        for position, (track, response) in enumerate(plays, start=1)
    ]
    return [{name: row[name] for name in LOG_FIELDS} for row in rows]


# A valid generic log: session s1 is complete, s2 has no user and no date.
PLAYS = [
    *session_plays(
        {"session_id": "s1", "user_id": "u1", "session_length": "3", "context_type": "radio", "hour": "8",
         "premium": "true", "date": "2018-07-15", "shuffled": "false"},
        ("t1", "skip"), ("t2", "listen"), ("t3", "complete"),
    ),
    *session_plays(
        {"session_id": "s2", "user_id": "", "session_length": "2", "context_type": "catalog", "hour": "23",
         "premium": "false", "date": "", "shuffled": "true"},
        ("t1", "complete"), ("t2", "skip"),
    ),
]  # fmt: skip
TRACKS = [
    {"track_id": "t1", "artist_id": "a1", "energy": "0.5", "mode": "major"},
    {"track_id": "t2", "artist_id": "a1", "energy": "0.25", "mode": "minor"},
    {"track_id": "t3", "artist_id": "", "energy": "", "mode": "1"},
]
MSSD_LOG = (
    "\ufeffsession_id,session_position,session_length,track_id_clean,skip_1,skip_2,not_skipped,"
    "hist_user_behavior_is_shuffle,hour_of_day,date,premium,context_type,hist_user_behavior_reason_end\n"
    "a,1,3,t1,TRUE,TRUE,FALSE,True,1,15-07-18,true,catalog,fwdbtn\n"
    "a,3,3,t2,false,FALSE,TRUE,False,1,15/07/2018,0,radio,trackdone\n"
    "b,2,10,t1,0,0,0,1,2,2018-07-14,1,charts,endplay\n"
)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def edited(rows: list[dict[str, str]], index: int, **values: str) -> list[dict[str, str]]:
    """A copy of ``rows`` with row ``index`` (0-based) changed."""
    copy = [dict(row) for row in rows]
    copy[index].update(values)
    return copy


def assert_canonical(log: ListeningLog) -> None:
    assert list(log.plays.columns) == list(PLAY_COLUMNS)
    assert dict(log.plays.dtypes) == PLAY_COLUMNS
    assert list(log.tracks.columns) == list(TRACK_COLUMNS)
    assert dict(log.tracks.dtypes) == TRACK_COLUMNS
    if log.blocks is not None:
        assert dict(log.blocks.dtypes) == BLOCK_COLUMNS
    keys = list(zip(log.plays["session_id"], log.plays["position"], strict=True))
    assert keys == sorted(keys)
    assert isinstance(log.plays.index, pd.RangeIndex)


# MSSD ---------------------------------------------------------------------------------------------


def test_real_mssd_rows(shared_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no row has both skip_2 and not_skipped
        log = load_mssd(shared_dir / "data/mssd/log_real_11_sessions.csv")
    assert_canonical(log)
    assert (log.n_plays, log.n_sessions) == (201, 11)
    # Counted by hand from the file: skip_2 true 82; else not_skipped true 90; else 29.
    assert log.plays["response"].value_counts().to_dict() == {"skip": 82, "listen": 29, "complete": 90}
    assert log.plays["user_id"].isna().all()
    assert log.plays["premium"].sum() == 181
    assert log.plays["shuffled"].sum() == 64
    dates = log.plays["date"].value_counts()
    assert dates[pd.Timestamp("2018-07-15")] == 173
    assert dates[pd.Timestamp("2018-07-14")] == 28
    first = log.plays.iloc[0]
    assert first["session_id"] == "0_00006f66-33e5-4de7-a324-2d18e439fc1e"
    assert first["track_id"] == "t_0479f24c-27d2-46d6-a00c-7ec928f2b539"
    assert (first["position"], first["session_length"], first["hour"]) == (1, 20, 16)
    assert first["context_type"] == "editorial_playlist"
    short = log.plays[log.plays["session_id"] == "0_00018b58-deb8-4f98-ac5e-d7e01b346130"]
    assert short["position"].tolist() == list(range(1, 12))
    assert (short["session_length"] == 11).all()
    # No track table: the catalogue is the played tracks, each its own artist, features unknown.
    assert log.tracks["track_id"].is_monotonic_increasing
    assert set(log.tracks["track_id"]) == set(log.plays["track_id"])
    assert log.tracks["artist_id"].isna().all()
    assert log.tracks[ACOUSTIC_FEATURES].isna().all().all()
    assert len(np.unique(log.track_artist_codes())) == log.n_tracks
    # Sessions stand in for users.
    assert log.listener_ids().tolist() == log.plays["session_id"].tolist()


def test_mssd_schema_sample_with_track_features(shared_dir: Path) -> None:
    folder = shared_dir / "data/mssd"
    with pytest.warns(UserWarning, match=r"1 play\(s\) have both skip_2 and not_skipped true \(row 9\)"):
        log = load_mssd(folder / "sample_log_schema.csv", folder / "sample_track_features_schema.csv")
    assert_canonical(log)
    assert (log.n_plays, log.n_sessions, log.n_tracks) == (10, 2, 10)
    # skip_2 / not_skipped row by row: FF TF FF FT FT | TF FF FT TT FT.
    expected = [
        "listen",
        "skip",
        "listen",
        "complete",
        "complete",
        "skip",
        "listen",
        "complete",
        "skip",
        "complete",
    ]
    assert log.plays["response"].tolist() == expected
    assert log.response_codes().tolist() == [1, 0, 1, 2, 2, 0, 1, 2, 0, 2]
    assert log.plays["track_id"].tolist()[:3] == ["t12345", "t12354", "t12346"]
    assert (log.plays["date"] == pd.Timestamp("2018-07-15")).all()
    assert log.plays["premium"].tolist() == [False] * 5 + [True] * 5
    assert log.plays["shuffled"].tolist() == [True] * 5 + [False] * 5
    assert log.plays["session_length"].tolist() == [10] * 5 + [16] * 5
    assert log.plays["hour"].tolist() == [1, 1, 1, 1, 2] + [15] * 5

    first = log.tracks.set_index("track_id").loc["t12345"]
    assert first["artist_id"] == "Miguel Gallardo"
    assert first["release_year"] == 2006  # release_date_estimate 06/03/2006, day-first
    assert first["mode"] == 1  # major
    assert first["beat"] == pytest.approx(0.498604)  # beat_strength
    assert first["us_pop_estimate"] == pytest.approx(96.7334472)  # us_popularity_estimate
    assert first["instrumentalness"] == pytest.approx(5.64e-08)
    assert first["time_signature"] == 4
    assert not first["explicit"]
    assert pd.isna(first["genre"])
    assert log.tracks.set_index("track_id").loc["t12350", "release_year"] == 1977  # 04/02/1977
    assert "track_uri" not in log.tracks.columns
    # track_codes index the catalogue's rows.
    assert (log.tracks["track_id"].to_numpy()[log.track_codes()] == log.plays["track_id"].to_numpy()).all()


def test_mssd_quirks_partial_sessions_and_spellings(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(MSSD_LOG, encoding="utf-8")
    log = load_mssd(path)
    assert log.plays["session_id"].tolist() == ["a", "a", "b"]
    assert log.plays["position"].tolist() == [1, 3, 2]  # gaps are valid
    assert log.plays["session_length"].tolist() == [3, 3, 10]
    assert log.plays["response"].tolist() == ["skip", "complete", "listen"]
    assert log.plays["shuffled"].tolist() == [True, False, True]
    assert log.plays["premium"].tolist() == [True, False, True]
    assert log.plays["date"].tolist() == [pd.Timestamp("2018-07-15")] * 2 + [pd.Timestamp("2018-07-14")]
    assert "skip_1" not in log.plays.columns


def test_mssd_track_features_must_cover_the_played_tracks(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(MSSD_LOG, encoding="utf-8")
    features = write_csv(tmp_path / "features.csv", [{"track_id": "t1", "beat_strength": "0.5"}])
    with pytest.raises(
        LogFormatError, match=r"log\.csv: row 2, column 'track_id_clean': not in the tracks table: 't2'"
    ):
        load_mssd(log, features)


@pytest.mark.parametrize(
    ("old", "new", "row", "column", "problem"),
    [
        ("a,3,3,t2,false,FALSE", "a,3,3,t2,false,maybe", "row 2", "skip_2", "not a boolean: 'maybe'"),
        ("TRUE,FALSE,True", "TRUE,,True", "row 1", "not_skipped", "missing value"),
        ("a,3,3,t2", "a,1,3,t2", "rows 1, 2", "session_position", "position 1 more than once"),
        ("1,2,2018-07-14", "1,2,2018-14-07", "row 3", "date", "not a date: '2018-14-07'"),
        ("1,charts", "1,podcast", "row 3", "context_type", "unknown context_type: 'podcast'"),
        ("b,2,10", "b,12,10", "row 3", "session_position", "beyond session_length (12 > 10)"),
    ],
)
def test_mssd_errors_name_file_row_and_column(
    tmp_path: Path, old: str, new: str, row: str, column: str, problem: str
) -> None:
    assert MSSD_LOG.count(old) == 1
    path = tmp_path / "bad.csv"
    path.write_text(MSSD_LOG.replace(old, new), encoding="utf-8")
    with pytest.raises(LogFormatError) as caught:
        load_mssd(path)
    assert str(caught.value).startswith(f"{path}: {row}, column {column!r}: ")
    assert problem in str(caught.value)


def test_mssd_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(MSSD_LOG.replace("not_skipped", "skipped_not"), encoding="utf-8")
    with pytest.raises(LogFormatError, match=rf"^{path}: missing required column\(s\) 'not_skipped'"):
        load_mssd(path)
    path.write_text(MSSD_LOG.replace("track_id_clean", "track"), encoding="utf-8")
    with pytest.raises(LogFormatError, match=r"missing required column\(s\) 'track_id' or 'track_id_clean'"):
        load_mssd(path)


# Generic schema -----------------------------------------------------------------------------------


def test_generic_csv_with_tracks(tmp_path: Path) -> None:
    log = load_log(write_csv(tmp_path / "plays.csv", PLAYS), write_csv(tmp_path / "tracks.csv", TRACKS))
    assert_canonical(log)
    assert (log.n_plays, log.n_sessions, log.n_tracks) == (5, 2, 3)
    assert log.plays["user_id"].isna().tolist() == [False, False, False, True, True]
    assert log.plays["date"].isna().tolist() == [False, False, False, True, True]
    assert log.listener_ids().tolist() == ["u1", "u1", "u1", "s2", "s2"]
    assert log.session_codes().tolist() == [0, 0, 0, 1, 1]
    assert log.track_codes().tolist() == [0, 1, 2, 0, 1]
    assert log.response_codes().dtype == np.int8
    assert log.tracks["mode"].tolist() == [1, 0, 1]
    assert log.tracks["energy"].iloc[:2].tolist() == [0.5, 0.25]
    assert np.isnan(log.tracks["energy"].iloc[2])
    # t1 and t2 share artist a1; t3 has none and counts as its own artist.
    codes = log.track_artist_codes()
    assert codes[0] == codes[1] != codes[2]


def test_generic_defaults_for_optional_columns(tmp_path: Path) -> None:
    required = ["session_id", "position", "track_id", "response", "context_type", "hour"]
    rows = [{key: row[key] for key in required} for row in PLAYS]
    log = load_log(write_csv(tmp_path / "plays.csv", rows))
    assert_canonical(log)
    assert log.plays["session_length"].tolist() == [3, 3, 3, 2, 2]  # the sessions' numbers of plays
    assert not log.plays["premium"].any()
    assert not log.plays["shuffled"].any()
    assert log.plays["date"].isna().all()
    assert log.plays["user_id"].isna().all()
    assert log.tracks["track_id"].tolist() == ["t1", "t2", "t3"]


def test_session_without_length_must_not_have_gaps(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "session_length"} for row in edited(PLAYS, 4, position="5")]
    path = write_csv(tmp_path / "plays.csv", rows)
    with pytest.raises(LogFormatError, match=rf"^{path}: row 5, column 'position': position beyond session_length"):
        load_log(path)


def test_parquet_files(tmp_path: Path) -> None:
    reference = load_log(write_csv(tmp_path / "plays.csv", PLAYS), write_csv(tmp_path / "tracks.csv", TRACKS))
    reference.plays.sample(frac=1.0, random_state=1).to_parquet(tmp_path / "plays.parquet")
    reference.tracks.to_parquet(tmp_path / "tracks.pq")
    log = load_log(tmp_path / "plays.parquet", tmp_path / "tracks.pq")
    pd.testing.assert_frame_equal(log.plays, reference.plays)
    pd.testing.assert_frame_equal(log.tracks, reference.tracks)


@pytest.mark.parametrize(
    ("index", "column", "value", "rows", "problem"),
    [
        (1, "premium", "maybe", "row 2", "not a boolean: 'maybe'"),
        (4, "shuffled", "2", "row 5", "not a boolean: '2'"),
        (2, "date", "2018-31-31", "row 3", "not a date: '2018-31-31'"),
        (0, "date", "07/15/2018", "row 1", "not a date: '07/15/2018'"),  # month-first is not day-first
        (3, "position", "x", "row 4", "not a number: 'x'"),
        (3, "position", "1.5", "row 4", "not an integer: '1.5'"),
        (0, "position", "0", "row 1", "'0' outside 1..32767"),
        (2, "position", "4", "row 3", "position beyond session_length (4 > 3)"),
        (0, "session_length", "0", "row 1", "'0' outside 1..32767"),
        (4, "response", "paused", "row 5", "unknown response: 'paused'"),
        (4, "response", "3", "row 5", "unknown response: '3'"),
        (0, "context_type", "podcast", "row 1", "unknown context_type: 'podcast'"),
        (2, "track_id", "", "row 3", "missing value"),
        (1, "session_id", "", "row 2", "missing value"),
        (1, "hour", "", "row 2", "missing value"),
        (1, "hour", "24", "row 2", "'24' outside 0..23"),
        (3, "premium", "", "row 4", "missing value"),
        (1, "session_length", "4", "rows 1, 2, 3", "session 's1' has more than one session_length: [3, 4]"),
        (1, "position", "1", "rows 1, 2", "session 's1' has position 1 more than once"),
    ],
)
def test_plays_errors_name_file_row_and_column(
    tmp_path: Path, index: int, column: str, value: str, rows: str, problem: str
) -> None:
    path = write_csv(tmp_path / "plays.csv", edited(PLAYS, index, **{column: value}))
    with pytest.raises(LogFormatError) as caught:
        load_log(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {rows}, column {column!r}: "), message
    assert problem in message


def test_missing_required_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k not in ("response", "hour")} for row in PLAYS]
    path = write_csv(tmp_path / "plays.csv", rows)
    with pytest.raises(LogFormatError, match=rf"^{path}: missing required column\(s\) 'response', 'hour' or "):
        load_log(path)


def test_many_bad_rows_are_summarised(tmp_path: Path) -> None:
    rows = [edited(PLAYS, 0, session_id=f"s{i}", hour="99")[0] for i in range(8)]
    path = write_csv(tmp_path / "plays.csv", rows)
    with pytest.raises(LogFormatError, match=r": rows 1, 2, 3, 4, 5 and 3 more, column 'hour': '99' outside 0\.\.23"):
        load_log(path)


@pytest.mark.parametrize(
    ("tracks", "rows", "column", "problem"),
    [
        ([*TRACKS, {"track_id": "t1"}], "rows 1, 4", "track_id", "duplicate track id: 't1'"),
        (edited(TRACKS, 1, energy="loud"), "row 2", "energy", "not a number: 'loud'"),
        (edited(TRACKS, 2, mode="lydian"), "row 3", "mode", "not a number: 'lydian'"),
        (edited(TRACKS, 0, track_id=""), "row 1", "track_id", "missing value"),
    ],
)  # fmt: skip
def test_tracks_errors_name_file_row_and_column(
    tmp_path: Path, tracks: list[dict[str, str]], rows: str, column: str, problem: str
) -> None:
    plays = write_csv(tmp_path / "plays.csv", PLAYS)
    path = write_csv(tmp_path / "tracks.csv", tracks)
    with pytest.raises(LogFormatError) as caught:
        load_log(plays, path)
    assert str(caught.value).startswith(f"{path}: {rows}, column {column!r}: ")
    assert problem in str(caught.value)


def test_play_of_a_track_missing_from_the_tracks_table(tmp_path: Path) -> None:
    plays = write_csv(tmp_path / "plays.csv", edited(PLAYS, 3, track_id="t9"))
    tracks = write_csv(tmp_path / "tracks.csv", TRACKS)
    with pytest.raises(LogFormatError, match=rf"^{plays}: row 4, column 'track_id': not in the tracks table: 't9'"):
        load_log(plays, tracks)


def test_track_aliases_and_date_spellings(tmp_path: Path) -> None:
    tracks = pd.DataFrame(
        {
            "track_id": ["t1", "t2", "t3"],
            "artist": ["x", "y", ""],
            "release_date_estimate": ["1999-12-31", "2006", ""],
            "explicit": ["TRUE", "", "0"],
            "genre": ["3", "", "7"],
        }
    )
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    log = load_log(write_csv(tmp_path / "plays.csv", PLAYS), tmp_path / "tracks.csv")
    assert log.tracks["artist_id"].tolist()[:2] == ["x", "y"]
    assert log.tracks["release_year"].iloc[:2].tolist() == [1999, 2006]
    assert np.isnan(log.tracks["release_year"].iloc[2])
    assert log.tracks["explicit"].tolist() == [True, False, False]  # unknown is False
    assert log.tracks["genre"].tolist() == [3, pd.NA, 7]


def test_unreadable_csv(tmp_path: Path) -> None:
    path = tmp_path / "plays.csv"
    path.write_bytes(b"session_id,position\n\xff\xfe,1\n")
    with pytest.raises(LogFormatError, match=rf"^{path}: not a readable CSV file"):
        load_log(path)


# Blocks -------------------------------------------------------------------------------------------


def test_blocks(tmp_path: Path) -> None:
    blocks = [
        {"user_id": "u1", "track_id": "t2", "artist_id": ""},
        {"user_id": "u2", "track_id": "", "artist_id": "a1"},
    ]
    plays, tracks = write_csv(tmp_path / "plays.csv", PLAYS), write_csv(tmp_path / "tracks.csv", TRACKS)
    log = load_log(plays, tracks, write_csv(tmp_path / "blocks.csv", blocks))
    assert_canonical(log)
    assert log.blocks["track_id"].isna().tolist() == [False, True]
    assert log.blocks["artist_id"].tolist()[1] == "a1"

    both = write_csv(tmp_path / "both.csv", edited(blocks, 1, track_id="t1"))
    with pytest.raises(LogFormatError, match=rf"^{both}: row 2, column 'track_id/artist_id': exactly one of"):
        load_log(plays, tracks, both)
    neither = write_csv(tmp_path / "neither.csv", edited(blocks, 0, track_id=""))
    with pytest.raises(LogFormatError, match=rf"^{neither}: row 1, column 'track_id/artist_id'"):
        load_log(plays, tracks, neither)
    unknown = write_csv(tmp_path / "unknown.csv", edited(blocks, 0, track_id="t9"))
    with pytest.raises(LogFormatError, match=rf"^{unknown}: row 1, column 'track_id': not in the tracks table"):
        load_log(plays, tracks, unknown)


def test_blocked_tracks_join_a_derived_catalogue() -> None:
    plays = pd.DataFrame(PLAYS)
    log = ListeningLog.from_frames(plays, blocks=pd.DataFrame({"user_id": ["u1"], "track_id": ["t0"]}))
    assert log.tracks["track_id"].tolist() == ["t0", "t1", "t2", "t3"]
    assert log.blocks["artist_id"].isna().all()


# In memory ----------------------------------------------------------------------------------------


def test_from_frames_coerces_sorts_and_accepts_codes() -> None:
    plays = pd.DataFrame(
        {
            "session_id": ["b", "a", "b", "a"],
            "session_position": [2, 2, 1, 1],
            "track_id_clean": [10, 11, 10, 12],
            "response": np.array([2, 0, 1, 2], dtype=np.int8),
            "context_type": [3, 3, 1, 1],
            "hour_of_day": [0, 5, 0, 5],
            "premium": [True, False, True, False],
            "date": pd.to_datetime(["2018-07-15T23:30:00+02:00"] * 4),
            "track_name": ["x"] * 4,
        },
        index=[10, 11, 12, 13],
    )
    log = ListeningLog.from_frames(plays)
    assert_canonical(log)
    assert log.plays["session_id"].tolist() == ["a", "a", "b", "b"]
    assert log.plays["position"].tolist() == [1, 2, 1, 2]
    assert log.plays["track_id"].tolist() == ["12", "11", "10", "10"]
    assert log.plays["response"].tolist() == ["complete", "skip", "listen", "complete"]
    assert log.plays["context_type"].tolist() == ["user_collection", "radio", "user_collection", "radio"]
    assert log.plays["hour"].tolist() == [5, 5, 0, 0]
    assert (log.plays["date"] == pd.Timestamp("2018-07-15 21:30")).all()  # UTC
    assert log.session_codes().tolist() == [0, 0, 1, 1]
    assert log.tracks["track_id"].tolist() == ["10", "11", "12"]
    assert log.track_codes().tolist() == [2, 1, 0, 0]
    with pytest.raises(ValueError, match="read-only"):
        log.track_codes()[0] = 1


def test_canonical_column_wins_over_alias() -> None:
    plays = pd.DataFrame(PLAYS).assign(hour_of_day="not used")
    assert ListeningLog.from_frames(plays).plays["hour"].tolist() == [8, 8, 8, 23, 23]


def test_from_frames_errors_name_index_labels() -> None:
    plays = pd.DataFrame(PLAYS, index=["p", "q", "r", "s", "t"])
    plays.loc["q", "premium"] = "maybe"
    with pytest.raises(LogFormatError, match=r"^<memory> plays: index 'q', column 'premium': not a boolean"):
        ListeningLog.from_frames(plays)
    plays = pd.DataFrame(PLAYS, index=[7, 3, 5, 1, 9]).assign(position=[1, 2, 2, 1, 2])
    with pytest.raises(LogFormatError, match=r"^mine plays: index 3, 5, column 'position': .* position 2 more"):
        ListeningLog.from_frames(plays, source="mine")
    tracks = pd.DataFrame({"track_id": ["t1", "t2"]})
    with pytest.raises(LogFormatError, match=r"^<memory> plays: index 2, column 'track_id': not in the tracks"):
        ListeningLog.from_frames(pd.DataFrame(PLAYS), tracks)
    plays = pd.DataFrame(PLAYS).assign(response=pd.array([0, 1, None, 2, 0], dtype="Int8"))
    with pytest.raises(LogFormatError, match=r"^<memory> plays: index 2, column 'response': missing value"):
        ListeningLog.from_frames(plays)


def test_empty_log() -> None:
    log = ListeningLog.from_frames(pd.DataFrame(PLAYS).iloc[:0])
    assert_canonical(log)
    assert (log.n_plays, log.n_sessions, log.n_tracks) == (0, 0, 0)
    assert len(log.session_codes()) == 0


@pytest.mark.slow
def test_a_million_plays_construct_in_seconds() -> None:
    rng = np.random.default_rng(0)
    n_sessions, length, n_tracks = 50_000, 20, 20_000
    n = n_sessions * length
    track_ids = np.array([f"t{i:05d}" for i in range(n_tracks)], dtype=object)
    session_ids = np.array([f"s{i:05d}" for i in range(n_sessions)], dtype=object)
    session = rng.permutation(np.repeat(np.arange(n_sessions), length))
    plays = pd.DataFrame(
        {
            "session_id": session_ids[session],
            "user_id": session_ids[session // 5],
            "position": np.argsort(np.argsort(session, kind="stable"), kind="stable") % length + 1,
            "track_id": track_ids[rng.integers(0, n_tracks, n)],
            "response": rng.integers(0, 3, n),
            "context_type": rng.integers(0, 6, n),
            "hour": rng.integers(0, 24, n),
            "premium": rng.random(n) < 0.7,
            "date": np.datetime64("2018-07-15", "ns"),
            "shuffled": rng.random(n) < 0.3,
        }
    )
    tracks = pd.DataFrame({"track_id": track_ids, "artist_id": [f"a{i % 3000}" for i in range(n_tracks)]})
    start = time.perf_counter()
    log = ListeningLog.from_frames(plays, tracks)
    log.track_codes(), log.session_codes()
    elapsed = time.perf_counter() - start
    assert (log.n_plays, log.n_sessions) == (n, n_sessions)
    assert elapsed < 10.0, f"{elapsed:.1f} s for a million plays"


# Saving -------------------------------------------------------------------------------------------


@pytest.fixture
def full_log(tmp_path: Path) -> ListeningLog:
    blocks = [{"user_id": "u1", "track_id": "t2", "artist_id": ""}]
    return load_log(
        write_csv(tmp_path / "plays.csv", PLAYS),
        write_csv(tmp_path / "tracks.csv", TRACKS),
        write_csv(tmp_path / "blocks.csv", blocks),
    )


def test_save_and_load_round_trip(tmp_path: Path, full_log: ListeningLog) -> None:
    folder = tmp_path / "saved"
    full_log.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "blocks.parquet",
        "manifest.json",
        "plays.parquet",
        "tracks.parquet",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert "musicenv_version" in manifest
    assert set(manifest["files"]) == {"plays.parquet", "tracks.parquet", "blocks.parquet"}
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    loaded = ListeningLog.load(folder)
    assert_canonical(loaded)
    pd.testing.assert_frame_equal(loaded.plays, full_log.plays)
    pd.testing.assert_frame_equal(loaded.tracks, full_log.tracks)
    pd.testing.assert_frame_equal(loaded.blocks, full_log.blocks)
    assert loaded.source == full_log.source


def test_save_without_blocks(tmp_path: Path) -> None:
    log = ListeningLog.from_frames(pd.DataFrame(PLAYS))
    log.save(tmp_path / "saved")
    assert not (tmp_path / "saved/blocks.parquet").exists()
    assert ListeningLog.load(tmp_path / "saved").blocks is None


def test_load_rejects_a_corrupted_file(tmp_path: Path, full_log: ListeningLog) -> None:
    full_log.save(tmp_path / "saved")
    with open(tmp_path / "saved/plays.parquet", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(LogFormatError, match=r"plays\.parquet: checksum mismatch"):
        ListeningLog.load(tmp_path / "saved")


def test_load_rejects_another_format_version(tmp_path: Path, full_log: ListeningLog) -> None:
    full_log.save(tmp_path / "saved")
    manifest_path = tmp_path / "saved/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(LogFormatError, match=r"manifest\.json: format version 99"):
        ListeningLog.load(tmp_path / "saved")


def test_failed_save_leaves_the_previous_save_intact(
    tmp_path: Path, full_log: ListeningLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "out" / "saved"
    full_log.save(folder)
    smaller = ListeningLog.from_frames(pd.DataFrame(PLAYS).iloc[:2])

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with pytest.raises(OSError, match="disk full"):
        smaller.save(folder)
    monkeypatch.undo()
    assert [p.name for p in folder.parent.iterdir()] == ["saved"]  # no temporary folder left
    pd.testing.assert_frame_equal(ListeningLog.load(folder).plays, full_log.plays)
    smaller.save(folder)
    assert ListeningLog.load(folder).n_plays == 2
