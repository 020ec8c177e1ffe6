"""The catalogue of bad input to saving and loading: logs, worlds, agents, checkpoints, train.py and eval.py.

Every case asserts the error's type and that its message names the file, folder, field or option
at fault; every refused save asserts that nothing on disk changed. The cases a hostile probe found
broken (a save wiping the folder it was pointed at, a reused run name, unwritable outputs found
late, unchecked sub-manifests, blame on an intact file, an unreadable default-world cache, a
corrupt named checkpoint that eval.py let pass, raw torch errors, owner-only permissions, stale
staging folders) sit beside the ones that were already handled well, so that both stay so.

Everything is small: a tiny learned world (a few seconds, built once), fake worlds for the agents
and train.py, a few episodes for eval.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import FakeGroundTruth, LayoutWorld
from test_train import train

from agents import evaluate as evaluate_module
from agents import report
from agents.base import load_agent, make_agent
from agents.train import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION
from musicenv import artifacts
from musicenv.artifacts import (
    MANIFEST,
    MANIFEST_CHECKSUM,
    ArtifactError,
    atomic_folder,
    check_writable,
    manifest_digest,
    read_manifest,
    write_atomic,
    write_json_atomic,
    write_manifest,
)
from musicenv.data import ListeningLog, LogFormatError
from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.user_model import UserModelConfig
from world_model.world import (
    GroundTruthProvenance,
    LearnedWorld,
    WorldConfig,
    build_world,
    default_world,
    load_world,
    open_world,
)

torch.set_num_threads(1)

SMALL_TRUTH = GroundTruthConfig(n_users=100, n_tracks=300, n_artists=30)
TINY = WorldConfig(
    retrieval=RetrievalConfig(factors=8, iterations=3, n_trees=2, n_bands=1, pool_size=20),
    user_model=UserModelConfig(hidden_size=8, mlp_size=16, interaction_size=8, max_epochs=1, batch_size=64),
)


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth() -> GroundTruthWorld:
    return GroundTruthWorld(seed=1, config=SMALL_TRUTH)


@pytest.fixture(scope="module")
def log(truth: GroundTruthWorld) -> ListeningLog:
    return truth.simulate_logs(400, seed=2)


@pytest.fixture(scope="module")
def world(truth: GroundTruthWorld, log: ListeningLog) -> LearnedWorld:
    return build_world(log, TINY, GroundTruthProvenance.of(truth, 400, 2))


@pytest.fixture(scope="module")
def saved_world(world: LearnedWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return world.save(tmp_path_factory.mktemp("worlds") / "world")


@pytest.fixture(scope="module")
def fake_world() -> LayoutWorld:
    return LayoutWorld(seed=0)


@pytest.fixture(scope="module")
def fake_truth(fake_world: LayoutWorld) -> FakeGroundTruth:
    return FakeGroundTruth(fake_world, seed=1)


def copy_of(saved: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(saved, tmp_path / name))


def snapshot(root: Path) -> dict[str, tuple[bool, str, int]]:
    """Every entry under ``root``: whether it is a folder, its bytes' digest (a link: its target), its mode bits."""
    entries = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            entries[str(path.relative_to(root))] = (False, f"link to {os.readlink(path)}", 0)
            continue
        digest = "" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        entries[str(path.relative_to(root))] = (path.is_dir(), digest, path.stat().st_mode & 0o777)
    return entries


@contextlib.contextmanager
def unchanged(root: Path) -> Iterator[None]:
    """Assert that nothing under ``root`` is added, removed or altered within the block."""
    before = snapshot(root)
    yield
    assert snapshot(root) == before, "a refused save changed what was on disk"


def edit_json(path: Path, change: Callable[[Any], Any], resign: bool = False) -> None:
    """Rewrite the JSON file ``path`` with ``change`` applied (and, with ``resign``, its checksum renewed)."""
    payload = change(json.loads(path.read_text()))
    if resign:
        payload[MANIFEST_CHECKSUM] = manifest_digest(payload)
    path.write_text(json.dumps(payload))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def named(path: Path) -> str:
    return re.escape(str(path))


# -- 1. a save replaces only an empty folder or an earlier save of its kind --------------------------

KINDS = ("log", "agent", "world")


def saver(kind: str, log: ListeningLog, world: LearnedWorld) -> Callable[[Path], object]:
    if kind == "log":
        return log.save
    if kind == "agent":
        return make_agent("random", world, seed=3).save
    return world.save


def other_kind(kind: str, log: ListeningLog, world: LearnedWorld) -> Callable[[Path], object]:
    return saver("agent" if kind != "agent" else "log", log, world)


def fill_other_files(target: Path) -> None:
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    (target / "sub" / "data.csv").write_text("a,b\n1,2\n")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("occupant", ["other files", "a file", "another kind of save", "a damaged manifest"])
def test_a_save_refuses_a_target_that_is_not_an_earlier_save_of_its_kind(
    kind: str, occupant: str, log: ListeningLog, world: LearnedWorld, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    if occupant == "other files":
        fill_other_files(target)
        expected = r"2 other entries \(notes\.txt, sub\)"
    elif occupant == "a file":
        target.write_text("not a folder")
        expected = "is a file, not a folder"
    elif occupant == "another kind of save":
        other_kind(kind, log, world)(target)
        expected = "holds a saved musicenv"
    else:
        target.mkdir()
        (target / MANIFEST).write_text("[]")
        (target / "weights.bin").write_bytes(b"\x00" * 8)
        expected = "does not say it is a saved"
    with unchanged(tmp_path), pytest.raises(ArtifactError, match=named(target)) as error:
        saver(kind, log, world)(target)
    assert re.search(expected, str(error.value)), error.value


@pytest.mark.parametrize("kind", KINDS)
def test_a_save_replaces_an_empty_folder_or_its_own_earlier_save(
    kind: str, log: ListeningLog, world: LearnedWorld, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    saver(kind, log, world)(target)
    first = read_manifest(target, json.loads((target / MANIFEST).read_text())["format"], 1)
    (target / "left-over-from-the-old-save.txt").write_text("x")  # an earlier save's folder is replaced whole
    saver(kind, log, world)(target)
    assert not (target / "left-over-from-the-old-save.txt").exists()
    assert read_manifest(target, first["format"], 1)["files"] == first["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"], "staging or retired folders were left"


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("points_to", ["an earlier save", "nothing"])
def test_a_save_through_a_symbolic_link_is_refused(
    kind: str, points_to: str, log: ListeningLog, world: LearnedWorld, tmp_path: Path
) -> None:
    """The atomic rename would replace the link with a folder and leave the save it points to behind."""
    earlier = tmp_path / "earlier"
    if points_to == "an earlier save":
        saver(kind, log, world)(earlier)
    link = tmp_path / "link"
    link.symlink_to(earlier, target_is_directory=True)
    with unchanged(tmp_path), pytest.raises(ArtifactError, match=rf"{named(link)}: is a symbolic link") as error:
        saver(kind, log, world)(link)
    assert "folder it points to" in str(error.value)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["link", *(["earlier"] if earlier.exists() else [])])


def test_a_failed_save_leaves_the_earlier_one_and_no_staging(log: ListeningLog, tmp_path: Path) -> None:
    target = tmp_path / "log"
    log.save(target)
    with unchanged(tmp_path), pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target, "musicenv.listening_log") as staging:
            (staging / "plays.parquet").write_bytes(b"half")
            raise RuntimeError("disk full")
    assert ListeningLog.load(target).n_plays == log.n_plays


def test_run_name_of_a_finished_run_is_refused_without_resume_or_overwrite(
    tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    first = train(tmp_path, fake_world, fake_truth, "--total-steps", "40", "--eval-episodes", "0", run_name="r1")
    assert first.finished
    with unchanged(tmp_path), pytest.raises(SystemExit, match=r"run 'r1' already exists") as error:
        train(tmp_path, fake_world, fake_truth, "--total-steps", "40", "--eval-episodes", "0", run_name="r1")
    message = str(error.value)
    assert str(first.checkpoint) in message and "--resume r1" in message and "--overwrite" in message


def test_overwrite_starts_a_taken_run_name_afresh(
    tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    common = ("--eval-episodes", "0", "--seed", "5")
    train(tmp_path, fake_world, fake_truth, "--total-steps", "40", *common, run_name="r1")
    again = train(tmp_path, fake_world, fake_truth, "--total-steps", "80", "--overwrite", *common, run_name="r1")
    manifest = read_manifest(again.checkpoint, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION)
    assert manifest["config"]["global_step"] == 80 and again.finished


def test_overwrite_and_resume_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.config import parse_config

    with pytest.raises(SystemExit):
        parse_config(["--overwrite", "--resume", "r1"])
    assert "--overwrite" in capsys.readouterr().err


def test_overwrite_never_replaces_a_folder_that_is_not_a_checkpoint(
    tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    fill_other_files(tmp_path / "checkpoints" / "r1")
    with unchanged(tmp_path), pytest.raises(SystemExit, match=named(tmp_path / "checkpoints" / "r1")):
        train(
            tmp_path,
            fake_world,
            fake_truth,
            "--total-steps",
            "40",
            "--eval-episodes",
            "0",
            "--overwrite",
            run_name="r1",
        )


def test_a_run_name_whose_logs_exist_is_refused_without_offering_resume(
    tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "r1" / "events.out.tfevents.0").write_bytes(b"old curves")
    with unchanged(tmp_path), pytest.raises(SystemExit, match=named(tmp_path / "runs" / "r1")) as error:
        train(tmp_path, fake_world, fake_truth, "--total-steps", "40", "--eval-episodes", "0", run_name="r1")
    assert "--resume" not in str(error.value) and "--overwrite" in str(error.value)


# -- 2. output folders are checked at start ----------------------------------------------------------


@pytest.mark.parametrize("option", ["--checkpoint-dir", "--log-dir"])
def test_train_checks_its_output_folders_before_training(
    option: str, tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    started = []
    monkeypatch.setattr("agents.train.train_ahdqn", lambda *args: started.append(args))
    with pytest.raises(SystemExit, match=rf"{option} {named(blocker / 'out')}: cannot write there"):
        train(tmp_path, fake_world, fake_truth, option, str(blocker / "out"), run_name="r1")
    assert not started, "training started before the outputs were checked"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_checkpoint_folder_is_found_at_start(
    tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(SystemExit, match=rf"--checkpoint-dir {named(locked)}"):
            train(tmp_path, fake_world, fake_truth, "--checkpoint-dir", str(locked), run_name="r1")
    finally:
        locked.chmod(0o700)


def test_check_writable_names_the_option_and_leaves_no_probe(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "new" / "deep", "--out") == tmp_path / "new" / "deep"
    assert list(tmp_path.iterdir()) == []  # nothing created, the probe removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match=rf"--out {named(tmp_path / 'file')}"):
        check_writable(tmp_path / "file", "--out")


# -- 3. every file of a saved world is checksummed, and the file at fault is named ------------------


def world_files(saved: Path) -> list[str]:
    return sorted(str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file() and p != saved / MANIFEST)


def test_every_file_of_a_saved_world_is_in_its_manifest(saved_world: Path) -> None:
    listed = json.loads((saved_world / MANIFEST).read_text())["files"]
    assert sorted(listed) == world_files(saved_world)
    assert {"retrieval/manifest.json", "models/manifest.json"} <= set(listed)


def test_a_damaged_byte_in_any_file_of_a_world_is_named(saved_world: Path, tmp_path: Path) -> None:
    for name in world_files(saved_world):
        folder = copy_of(saved_world, tmp_path, name.replace("/", "_"))
        flip_byte(folder / name)
        with pytest.raises(ArtifactError, match=rf"{named(folder / name)}: checksum mismatch"):
            load_world(folder)


@pytest.mark.parametrize("resign", [False, True], ids=["edited", "edited and re-signed"])
def test_an_altered_sub_manifest_is_caught_by_the_world(saved_world: Path, tmp_path: Path, resign: bool) -> None:
    """``exploration_share`` 0.0 -> 0.8 in the retrieval stage's manifest would change every pool."""
    folder = copy_of(saved_world, tmp_path)
    sub = folder / "retrieval" / MANIFEST

    def explore(manifest: dict) -> dict:
        manifest["config"]["retrieval"]["exploration_share"] = 0.8
        return manifest

    edit_json(sub, explore, resign=resign)
    with pytest.raises(ArtifactError, match=rf"{named(sub)}: checksum mismatch"):
        load_world(folder)


def test_an_edited_models_manifest_is_named(saved_world: Path, tmp_path: Path) -> None:
    folder = copy_of(saved_world, tmp_path)
    sub = folder / "models" / MANIFEST
    edit_json(sub, lambda m: {**m, "config": {**m["config"], "numpy_threshold": 0}}, resign=True)
    with pytest.raises(ArtifactError, match=named(sub)):
        load_world(folder)


@pytest.mark.parametrize("where", ["world", "retrieval"])
def test_a_damaged_digest_blames_the_manifest_not_the_intact_file(
    where: str, saved_world: Path, tmp_path: Path
) -> None:
    folder = copy_of(saved_world, tmp_path)
    manifest_folder = folder if where == "world" else folder / "retrieval"
    path = manifest_folder / MANIFEST
    text = path.read_text()
    digest = json.loads(text)["files"]["tracks.parquet" if where == "world" else "vectors.npz"]
    damaged = digest[:10] + ("0" if digest[10] != "0" else "1") + digest[11:]
    path.write_text(text.replace(digest, damaged))
    load = load_world if where == "world" else Retrieval.load
    with pytest.raises(ArtifactError, match=rf"{named(path)}: damaged or edited after saving") as error:
        load(manifest_folder)
    assert "tracks.parquet" not in str(error.value) and "vectors.npz" not in str(error.value)


@pytest.mark.parametrize("kind", ["world", "retrieval"])
def test_a_save_made_before_manifest_checksums_is_refused_not_read_unchecked(
    saved_world: Path, tmp_path: Path, kind: str
) -> None:
    """Saves by earlier versions have neither the manifest's own checksum nor sub-manifest entries:
    nothing guards them, so they are refused with a message to save them again."""
    folder = copy_of(saved_world, tmp_path)
    manifest_folder = folder if kind == "world" else folder / "retrieval"

    def older(manifest: dict) -> dict:
        manifest.pop(MANIFEST_CHECKSUM)
        manifest.pop(artifacts.SCHEMA_FIELD)
        manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.endswith(MANIFEST)}
        return manifest

    edit_json(manifest_folder / MANIFEST, older)
    with pytest.raises(ArtifactError, match=rf"{named(manifest_folder / MANIFEST)}: artifact_schema 1: .*again"):
        load_world(folder) if kind == "world" else Retrieval.load(manifest_folder)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.pop(MANIFEST_CHECKSUM), "no manifest_sha256"),
        (lambda m: m.update(artifact_schema=99), "artifact_schema 99: this musicenv reads artifact_schema 2"),
        (lambda m: m.update(artifact_schema="2"), "artifact_schema '2'"),
    ],
    ids=["checksum removed", "newer schema", "schema a string"],
)
def test_a_manifest_of_another_schema_or_without_its_checksum_is_named(
    saved_world: Path, tmp_path: Path, change: Callable[[dict], object], expected: str
) -> None:
    folder = copy_of(saved_world, tmp_path)
    edit_json(folder / MANIFEST, lambda manifest: (change(manifest), manifest)[1])
    with pytest.raises(ArtifactError, match=rf"{named(folder / MANIFEST)}: {expected}"):
        load_world(folder)


def test_every_save_writes_the_current_artifact_schema(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    manifest = write_manifest(tmp_path, "musicenv.test", 1, {})
    assert manifest[artifacts.SCHEMA_FIELD] == artifacts.ARTIFACT_SCHEMA
    assert read_manifest(tmp_path, "musicenv.test", 1)["files"] == {"a.txt": manifest["files"]["a.txt"]}


def test_the_default_world_cache_key_includes_the_artifact_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default worlds cached before a schema change are rebuilt under a new key, never trusted."""
    from world_model import world as world_module

    before = world_module._cache_key({"a": 1})
    monkeypatch.setattr(world_module, "ARTIFACT_SCHEMA", artifacts.ARTIFACT_SCHEMA + 1)
    assert world_module._cache_key({"a": 1}) != before


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda path: path.unlink(), "no manifest.json"),
        (lambda path: path.write_text("{not json"), "not valid JSON"),
        (lambda path: path.write_text("[]"), "a manifest is a JSON object, found list"),
        (lambda path: path.write_text('"musicenv.world"'), "a manifest is a JSON object, found str"),
        (lambda path: edit_json(path, lambda m: {**m, "format": "musicenv.agent"}), "format is 'musicenv.agent'"),
        (lambda path: edit_json(path, lambda m: {**m, "format_version": 2}), "format version 2"),
        (lambda path: edit_json(path, lambda m: {**m, "files": ["a"]}, resign=True), "'files' must map"),
        (lambda path: edit_json(path, lambda m: {**m, "config": None}, resign=True), "'config' must be"),
        (
            lambda path: edit_json(path, lambda m: {**m, "files": {"../x": "0" * 64}}, resign=True),
            "not a file inside",
        ),
        (
            lambda path: edit_json(path, lambda m: {**m, "config": {"world": {}}}, resign=True),
            "its config is not a world's",
        ),
        (
            lambda path: edit_json(path, lambda m: {**m, "files": {**m["files"], "gone.npz": "0" * 64}}, resign=True),
            "gone.npz: listed in",
        ),
    ],
    ids=[
        "missing",
        "not JSON",
        "a list",
        "a string",
        "another format",
        "a newer version",
        "files not a map",
        "config not an object",
        "a path outside the folder",
        "a config of another kind",
        "a listed file missing",
    ],
)
def test_a_bad_world_manifest_is_an_artifact_error_naming_it(
    damage: Callable[[Path], None], expected: str, saved_world: Path, tmp_path: Path
) -> None:
    folder = copy_of(saved_world, tmp_path)
    damage(folder / MANIFEST)
    with pytest.raises(ArtifactError, match=named(folder)) as error:
        load_world(folder)
    assert expected in str(error.value)


def test_missing_and_empty_world_folders_are_named(tmp_path: Path) -> None:
    for folder in (tmp_path / "absent", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        with pytest.raises(ArtifactError, match=rf"{named(folder)}: no manifest\.json"):
            open_world(folder)


def test_a_saved_log_damaged_on_disk_is_a_log_format_error_naming_the_file(log: ListeningLog, tmp_path: Path) -> None:
    log.save(tmp_path / "log")
    flip_byte(tmp_path / "log" / "plays.parquet")
    with pytest.raises(LogFormatError, match=rf"{named(tmp_path / 'log' / 'plays.parquet')}: checksum"):
        ListeningLog.load(tmp_path / "log")
    (tmp_path / "log" / MANIFEST).write_text("[]")
    with pytest.raises(LogFormatError, match=named(tmp_path / "log" / MANIFEST)):
        ListeningLog.load(tmp_path / "log")


# -- 8. recovery: the default world's cache, stale staging folders ------------------------------------


def test_a_damaged_default_world_cache_entry_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSICENV_HOME", str(tmp_path))
    arguments = {"log_sessions": 200, "config": TINY, "groundtruth_config": SMALL_TRUTH}
    default_world(**arguments)
    (entry,) = [path for path in (tmp_path / "worlds").iterdir() if path.is_dir()]
    (entry / MANIFEST).write_text("[]")
    rebuilt = default_world(**arguments)
    assert rebuilt.training_report is not None  # built again, not read from the damaged entry
    assert f"{entry / MANIFEST}: a manifest is a JSON object" in capsys.readouterr().err
    assert default_world(**arguments).training_report is None  # and the cache is good again
    shutil.rmtree(entry)
    entry.write_text("a file where the entry was")
    assert default_world(**arguments).training_report is not None


def test_stale_staging_of_a_killed_save_is_removed_by_the_next_save(log: ListeningLog, tmp_path: Path) -> None:
    target = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import os, signal
        from musicenv.artifacts import atomic_folder
        with atomic_folder({str(target)!r}, "musicenv.listening_log") as staging:
            (staging / "plays.parquet").write_bytes(b"half a table")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -signal.SIGKILL
    (stale,) = tmp_path.iterdir()
    assert re.fullmatch(r"\.log\.\d+-[0-9a-f]+\.tmp", stale.name) and (stale / "plays.parquet").is_file()
    legacy = tmp_path / ".log.ab12cd34.tmp"  # tempfile's name, from before staging names carried a pid
    legacy.mkdir()
    alive = tmp_path / f".log.{os.getppid()}-00ff.tmp"  # a save still running in another process
    alive.mkdir()
    neighbour = tmp_path / f".log.v2.{killed.returncode * -1}-00ff.tmp"  # another folder's ("log.v2")
    neighbour.mkdir()
    log.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["log", alive.name, neighbour.name])
    assert ListeningLog.load(target).n_plays == log.n_plays


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".results.csv.999999999-0a.tmp"  # no process has that id
    stale.write_text("half")
    write_atomic(tmp_path / "results.csv", lambda tmp: tmp.write_text("a,b\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


# -- 9. eval.py and damaged checkpoints; an edited agent manifest ------------------------------------


def eval_argv(world_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--world", str(world_dir), "--agents", "random", "--episodes", "6", "--batch-size", "6",
        "--pool-size", "20", "--playlist-length", "6", "--no-progress", "--no-tensorboard",
        "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture
def damaged_checkpoint(world: LearnedWorld, tmp_path: Path) -> Path:
    agent = make_agent("ahdqn", world, hidden_size=8, seed=1).save(tmp_path / "checkpoints" / "run_a" / "agent")
    flip_byte(agent / "q_network.pt")
    return agent


def test_eval_stops_with_an_error_for_a_named_checkpoint_that_cannot_be_loaded(
    saved_world: Path, damaged_checkpoint: Path, tmp_path: Path
) -> None:
    argv = eval_argv(saved_world, tmp_path / "out", "--checkpoints", str(damaged_checkpoint))
    with pytest.raises(SystemExit) as error:
        evaluate_module.run(argv)
    message = str(error.value.code)  # a message: the exit status is 1
    assert isinstance(error.value.code, str)
    assert f"--checkpoints {damaged_checkpoint}" in message
    assert f"{damaged_checkpoint / 'q_network.pt'}: checksum mismatch" in message
    assert not (tmp_path / "out" / "results.csv").exists()


def test_eval_reports_n_a_with_the_reason_for_a_damaged_checkpoint_it_found_itself(
    saved_world: Path, damaged_checkpoint: Path, tmp_path: Path
) -> None:
    argv = eval_argv(saved_world, tmp_path / "out", "--checkpoint-dir", str(tmp_path / "checkpoints"))
    evaluation = evaluate_module.run(argv)
    result = evaluation.result("ahdqn", "learned")
    assert result.metrics is None
    assert "checkpoint cannot be loaded" in result.note and "q_network.pt: checksum mismatch" in result.note


AGENT_MANIFEST_DAMAGE = {
    "a list": ("[]", "damaged: not a JSON object"),
    "no version": ('{"format": "musicenv.agent"}', "format version None"),
    "truncated": ('{"format": "musicenv.ag', "cannot be read as JSON"),
    "not UTF-8": (b'{"format": "\xff"}', "cannot be read as JSON"),
    "no agent name": (None, "config.agent must name the saved agent"),
}


def damage_agent_manifest(agent: Path, damage: str) -> None:
    text, _ = AGENT_MANIFEST_DAMAGE[damage]
    if text is None:
        edit_json(agent / MANIFEST, lambda manifest: {**manifest, "config": {"kwargs": {}}}, resign=True)
    elif isinstance(text, bytes):
        (agent / MANIFEST).write_bytes(text)
    else:
        (agent / MANIFEST).write_text(text)


@pytest.mark.parametrize("damage", list(AGENT_MANIFEST_DAMAGE))
@pytest.mark.parametrize("name", ["checkpoint folder", "agent folder"])
def test_eval_stops_naming_the_file_for_a_named_checkpoint_with_a_damaged_agent_manifest(
    saved_world: Path, world: LearnedWorld, tmp_path: Path, damage: str, name: str
) -> None:
    agent = make_agent("ahdqn", world, hidden_size=8, seed=1).save(tmp_path / "checkpoints" / "run_a" / "agent")
    damage_agent_manifest(agent, damage)
    given = agent.parent if name == "checkpoint folder" else agent
    with pytest.raises(SystemExit) as error:
        evaluate_module.run(eval_argv(saved_world, tmp_path / "out", "--checkpoints", str(given)))
    message = error.value.code
    assert isinstance(message, str) and message.startswith("eval.py: error: --checkpoints")  # exit status 1
    assert f"{agent / MANIFEST}: " in message and AGENT_MANIFEST_DAMAGE[damage][1] in message, message
    assert "holds no saved agent" not in message
    assert not (tmp_path / "out" / "results.csv").exists()


@pytest.mark.parametrize("damage", list(AGENT_MANIFEST_DAMAGE))
def test_the_latest_search_reports_a_damaged_agent_manifest_n_a_with_the_reason(
    saved_world: Path, world: LearnedWorld, tmp_path: Path, damage: str
) -> None:
    """Neither skipped in silence nor silently replaced by an older run of the same agent."""
    checkpoints = tmp_path / "checkpoints"
    older = make_agent("ahdqn", world, hidden_size=8, seed=1).save(checkpoints / "run_a" / "agent")
    os.utime(older / MANIFEST, (0, 0))
    newer = make_agent("ahdqn", world, hidden_size=8, seed=2).save(checkpoints / "run_b" / "agent")
    damage_agent_manifest(newer, damage)
    assert evaluate_module.latest_checkpoints(checkpoints) == [checkpoints / "run_a", checkpoints / "run_b"]
    evaluation = evaluate_module.run(eval_argv(saved_world, tmp_path / "out", "--checkpoint-dir", str(checkpoints)))
    damaged = evaluation.result("checkpoint:run_b", "learned")
    assert damaged.metrics is None
    assert f"{newer / MANIFEST}: " in damaged.note and AGENT_MANIFEST_DAMAGE[damage][1] in damaged.note
    assert evaluation.result("ahdqn", "learned").metrics is not None  # the older run, reported beside it


def test_eval_loads_a_named_checkpoint_once_for_the_learned_world(
    saved_world: Path, world: LearnedWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent("ahdqn", world, hidden_size=8, seed=1).save(tmp_path / "agent")
    loads = []
    real = evaluate_module.load_agent
    monkeypatch.setattr(evaluate_module, "load_agent", lambda *args: loads.append(args) or real(*args))
    evaluate_module.run(eval_argv(saved_world, tmp_path / "out", "--checkpoints", str(agent)))
    assert len(loads) == 2  # one per world: the up-front check's agent plays in the learned world


def test_eval_output_folder_is_checked_before_the_world_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr("world_model.world.open_world_and_truth", lambda spec: pytest.fail("loaded the world"))
    with pytest.raises(SystemExit, match=rf"--out {named(tmp_path / 'file' / 'out')}: cannot write there"):
        evaluate_module.run(eval_argv(tmp_path / "no-world", tmp_path / "file" / "out"))


def test_eval_names_a_checkpoint_folder_without_an_agent(saved_world: Path, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit, match=rf"{named(tmp_path / 'nothing')} holds no saved agent"):
        evaluate_module.run(eval_argv(saved_world, tmp_path / "out", "--checkpoints", str(tmp_path / "nothing")))


@pytest.mark.parametrize("resign", [False, True], ids=["edited", "edited and re-signed"])
def test_an_edited_hidden_size_is_an_artifact_error_naming_the_manifest(
    fake_world: LayoutWorld, tmp_path: Path, resign: bool
) -> None:
    folder = make_agent("ahdqn", fake_world, hidden_size=8, seed=1).save(tmp_path / "agent")

    def wider(manifest: dict) -> dict:
        manifest["config"]["kwargs"]["hidden_size"] = 16
        return manifest

    edit_json(folder / MANIFEST, wider, resign=resign)
    expected = "damaged or edited after saving" if not resign else "state files do not fit"
    with pytest.raises(ArtifactError, match=named(folder)) as error:
        load_agent(folder, fake_world)
    assert expected in str(error.value) and MANIFEST in str(error.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda config: {**config, "agent": "no_such_agent"}, "no agent named 'no_such_agent'"),
        (lambda config: {**config, "kwargs": {**config["kwargs"], "colour": "red"}}, "colour"),
        (lambda config: {"kwargs": config["kwargs"]}, "'agent'"),
    ],
    ids=["an unknown agent", "an argument it does not take", "no agent name"],
)
def test_a_manifest_that_describes_no_buildable_agent_is_named(
    change: Callable[[dict], dict], expected: str, fake_world: LayoutWorld, tmp_path: Path
) -> None:
    folder = make_agent("random", fake_world, seed=1).save(tmp_path / "agent")
    edit_json(folder / MANIFEST, lambda m: {**m, "config": change(m["config"])}, resign=True)
    with pytest.raises(ArtifactError, match=rf"{named(folder / MANIFEST)}: does not describe an agent") as error:
        load_agent(folder, fake_world)
    assert expected in str(error.value)


def test_a_damaged_agent_file_is_named(fake_world: LayoutWorld, tmp_path: Path) -> None:
    folder = make_agent("ahdqn", fake_world, hidden_size=8, seed=1).save(tmp_path / "agent")
    (folder / "q_network.pt").write_bytes((folder / "q_network.pt").read_bytes()[:-9])  # truncated
    with pytest.raises(ArtifactError, match=rf"{named(folder / 'q_network.pt')}: checksum mismatch"):
        load_agent(folder, fake_world)


@pytest.mark.parametrize("damage", ["agent manifest edited", "checkpoint manifest a list"])
def test_resuming_a_damaged_checkpoint_names_the_file(
    damage: str, tmp_path: Path, fake_world: LayoutWorld, fake_truth: FakeGroundTruth
) -> None:
    first = train(
        tmp_path, fake_world, fake_truth, "--total-steps", "80", "--eval-episodes", "0", "--stop-at-step", "40"
    )
    if damage == "agent manifest edited":
        path = first.checkpoint / "agent" / MANIFEST
        edit_json(path, lambda m: {**m, "config": {**m["config"], "kwargs": {**m["config"]["kwargs"], "seed": 9}}})
        expected = rf"{named(path)}: checksum mismatch"
    else:
        path = first.checkpoint / MANIFEST
        path.write_text("[]")
        expected = rf"{named(path)}: a manifest is a JSON object"
    with unchanged(tmp_path), pytest.raises(SystemExit, match=expected):
        train(tmp_path, fake_world, fake_truth, "--resume", "run")


# -- 10. permissions follow the umask -----------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_folders_and_files_follow_the_umask(
    umask: int, log: ListeningLog, fake_world: LayoutWorld, tmp_path: Path
) -> None:
    previous = os.umask(umask)
    try:
        log.save(tmp_path / "log")
        make_agent("ahdqn", fake_world, hidden_size=8, seed=1).save(tmp_path / "agent")
        write_json_atomic(tmp_path / "run.json", {"a": 1})
    finally:
        os.umask(previous)
    for path in [tmp_path / "log", tmp_path / "agent", *(tmp_path / "log").iterdir(), *(tmp_path / "agent").iterdir()]:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o666 & ~umask


# -- one atomic-write helper, one world-loading routine ----------------------------------


def test_reports_and_scripts_write_through_the_one_atomic_helper() -> None:
    assert report.write_atomic is artifacts.write_atomic
    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("agents/*.py"), *root.glob("scripts/*.py"), *root.glob("world_model/*.py")]:
        assert "mkstemp" not in path.read_text() and "mkdtemp" not in path.read_text(), path


def test_a_failed_atomic_write_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_text("previous")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]


def test_the_env_opens_a_world_folder_through_the_one_routine(saved_world: Path, tmp_path: Path) -> None:
    import gymnasium as gym

    env = gym.make("ListeningSession-v0", world=str(saved_world), pool_size=10, playlist_length=4)
    obs, _ = env.reset(seed=0)
    assert obs["candidates"].shape[0] == 10
    with pytest.raises(ArtifactError, match=named(tmp_path / "nowhere")):
        gym.make("ListeningSession-v0", world=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="groundtruth_seed"):
        open_world(saved_world, groundtruth_seed=1)


def test_write_manifest_checksums_sub_manifests_and_itself(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    write_manifest(tmp_path / "inner", "musicenv.test", 1, {"x": 1})
    (tmp_path / "data.npz").write_bytes(np.arange(3).tobytes())
    manifest = write_manifest(tmp_path, "musicenv.test", 1, {"nested": {"a": [1.5, None]}})
    assert set(manifest["files"]) == {"data.npz", "inner/manifest.json"}
    assert manifest[MANIFEST_CHECKSUM] == manifest_digest(json.loads((tmp_path / MANIFEST).read_text()))
    assert read_manifest(tmp_path, "musicenv.test", 1) == manifest
