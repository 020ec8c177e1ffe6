"""Saved artifacts: atomic writes, and folders with JSON manifests that checksum every file.

Every learned thing in musicenv (a listening log, a retrieval stage, a user-response model, a
world, an agent, a training checkpoint) is saved as one folder holding plain files (``.npz``
arrays, torch state dicts, Annoy indexes, Parquet, JSON) and a ``manifest.json``::

    {"format": "musicenv.retrieval", "format_version": 1, "artifact_schema": 2,
     "musicenv_version": "0.1.0", "config": {...},
     "files": {"vectors.npz": "<sha256>", "sequence/manifest.json": ...},
     "manifest_sha256": "<sha256 of everything above>"}

What a save promises
    - **Nothing half-written.** A save is written into a staging folder beside the target
      (``.<name>.<pid>-<random>.tmp``) and every file is flushed to disk before the staging
      folder is renamed onto the target, so a reader sees the previous save or the complete new
      one, never a mix, even after a crash or a kill. A single file (:func:`write_atomic`) goes
      the same way through a temporary file and a rename.
    - **Nothing else lost.** A save replaces only an empty folder or an earlier save of the same
      kind (its manifest has the same ``format``); any other folder, or a file, at the target is
      refused with an :class:`ArtifactError` naming it, and left as it was. So is a symbolic
      link (even to an earlier save): the atomic rename would replace the link itself, so save to
      the folder it points to instead.
    - **No litter.** Staging folders and files left by a killed save (their process no longer
      runs) are removed by the next save of the same target.
    - **Ordinary permissions.** Folders and files are created as any other file is, under the
      process umask (not the owner-only modes of :mod:`tempfile`), so a world saved to a shared
      folder is readable by the others who share it.

What a load promises
    :func:`read_manifest` checks the manifest's format and version, its ``artifact_schema``
    (:data:`ARTIFACT_SCHEMA`: saves made before manifests carried their own checksum and listed
    sub-folders' manifests are refused, to be saved again, never read unchecked), then that the manifest is
    intact (its own checksum, ``manifest_sha256``), then every file's checksum, sub-folders'
    manifests included, before anything is used, and raises :class:`ArtifactError` naming the file
    actually at fault: a damaged or hand-edited manifest is named as such rather than blaming the
    intact file whose recorded digest it garbled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
MANIFEST_CHECKSUM = "manifest_sha256"
"""The manifest's own checksum: SHA-256 of its other entries as canonical JSON (:func:`manifest_digest`)."""
SCHEMA_FIELD = "artifact_schema"
ARTIFACT_SCHEMA = 2
"""How every manifest is laid out, whatever the kind of save (each kind has its own ``format_version``).

1 (no ``artifact_schema`` field): the manifest had no checksum of its own and did not list the
manifests of sub-folders. 2: it carries :data:`MANIFEST_CHECKSUM` and covers every file, at any
depth. :func:`read_manifest` reads only this schema: an older save is refused with a message to
save it again, since nothing guards its manifest; caches keyed on it (the default world) include
it in their key, so their old entries are rebuilt.
"""


class ArtifactError(ValueError):
    """A saved artifact is missing, corrupted, or of another format or version; or a save was refused
    because its target holds something that is not an earlier save of the same kind."""


def package_version() -> str:
    """The installed musicenv version (``"0+unknown"`` when run from an uninstalled tree)."""
    try:
        return metadata.version("musicenv")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """Hex SHA-256 of a manifest's entries other than :data:`MANIFEST_CHECKSUM`, as canonical JSON.

    Canonical (sorted keys, no spaces), so re-reading and re-writing the same manifest with other
    indentation does not change it; Python's JSON round-trips floats exactly.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- temporary siblings: names, staleness, permissions ------------------------------------------------

_TEMPORARY_KINDS = ("tmp", "old")
"""``tmp``: a save being written (a staging folder or file); ``old``: a replaced save being removed."""


def _temporary_sibling(target: Path, kind: str) -> Path:
    """A fresh name beside ``target`` that says whose it is: ``.<name>.<pid>-<random>.<kind>``."""
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _temporary_owner(target: Path, entry: str) -> int | None:
    """The process id in ``entry`` if it is one of ``target``'s temporary siblings, else -1.

    None for a sibling named by earlier versions (``tempfile``'s 8 random characters, no pid).
    """
    kinds = "|".join(_TEMPORARY_KINDS)
    match = re.fullmatch(rf"\.{re.escape(target.name)}\.(?:(\d+)-[0-9a-f]+|[a-z0-9_]{{8}})\.(?:{kinds})", entry)
    if match is None:
        return -1
    return None if match.group(1) is None else int(match.group(1))


def _process_runs(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed saves of ``target`` left beside it; return what was removed.

    A staging folder or file of ``target`` whose process no longer runs (or named by an earlier
    version, without a process id) is stale: its save can never finish. A save still running in
    another process keeps its own. (Processes are told apart by their id on this machine: two
    machines saving to one network folder at the same moment are not told apart.)
    """
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        owner = _temporary_owner(target, entry.name)
        if owner == -1 or (owner is not None and _process_runs(owner)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):  # folders on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to sync a folder; the files themselves were synced
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


# -- writing --------------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Write one file atomically: ``write(temporary path)`` beside ``path``, flush it, rename it onto ``path``.

    A reader (or a crash, or a kill) never sees a half-written file: ``path`` holds the previous
    file or the complete new one. The temporary file is created empty, under the process umask,
    before ``write`` is called; its name ends in ``.tmp``, so ``write`` must not infer the format
    from it (pass it, e.g. ``savefig(tmp, format="png")``). Temporary files left beside ``path`` by
    a killed write are removed first.

    Args:
        path: the file to write (its folder is created if needed).
        write: called once with the temporary path; writes the whole file there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary_sibling(path, "tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # 0o666 less the umask
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync(path.parent)


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON to ``path`` with :func:`write_atomic`."""
    text = json.dumps(payload, indent=2, sort_keys=True)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def check_replaceable(target: str | os.PathLike[str], fmt: str) -> None:
    """Check that a save of format ``fmt`` may replace whatever is at ``target``.

    It may replace nothing, an empty folder, or an earlier save of the same format (a folder whose
    ``manifest.json`` says so); never a symbolic link, whatever it points to.
    :func:`atomic_folder` checks this before writing and again before
    replacing; commands call it at start so that a refusal comes before hours of work.

    Raises:
        ArtifactError: naming ``target`` and what is there.
    """
    target = Path(target)
    if target.is_symlink():
        # Renaming the new save onto the link would replace the link, not the save it points to,
        # and leave that save behind: refused, so that nothing is lost or duplicated.
        raise ArtifactError(
            f"{target}: is a symbolic link (to {os.readlink(target)}); refusing to save a {fmt} through it: "
            "save to the folder it points to, or remove the link first"
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise ArtifactError(f"{target}: is a file, not a folder; refusing to replace it with a saved {fmt}")
    entries = sorted(entry.name for entry in target.iterdir())
    if not entries:
        return
    manifest = target / MANIFEST
    found: Any = None
    if manifest.is_file():
        with contextlib.suppress(OSError, ValueError):
            found = json.loads(manifest.read_text())
    if isinstance(found, dict) and found.get("format") == fmt:
        return
    if isinstance(found, dict) and isinstance(found.get("format"), str):
        what = f"a saved {found['format']}"
    elif manifest.is_file():
        what = f"a {MANIFEST} that does not say it is a saved {fmt}"
    else:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        what = f"{len(entries)} other entr{'y' if len(entries) == 1 else 'ies'} ({shown})"
    raise ArtifactError(
        f"{target}: refusing to save a {fmt} here: the folder holds {what}, which the save would delete; "
        "save to a new or empty folder, or remove this one first"
    )


def check_writable(folder: str | os.PathLike[str], what: str) -> Path:
    """Check that files can be written in ``folder`` (or, if it does not exist yet, created there); return it.

    Nothing is created: a small probe file is written and removed in ``folder`` or in its nearest
    existing ancestor, which catches read-only mounts and full disks as well as permissions (and
    works for root, whom permission bits do not stop).

    Args:
        folder: the output folder.
        what: how the user named it, for the message (e.g. ``"--checkpoint-dir"``).

    Raises:
        PermissionError: naming ``what`` and the folder, with the reason.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        probe = _temporary_sibling(existing / "write-check", "tmp")
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(f"{what} {folder}: cannot write there ({error.strerror or error})") from error
    return folder


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str], fmt: str) -> Iterator[Path]:
    """Yield a staging folder that replaces ``target`` when the block ends without error.

    Write the save's files (and last its manifest, :func:`write_manifest` with the same ``fmt``)
    into the yielded folder. When the block ends, every file is flushed to disk and the folder is
    renamed onto ``target``; a previous save there is removed only after that. On an exception the
    staging folder is removed and ``target`` is left as it was. Stale staging folders of
    ``target`` (a killed save's) are removed first.

    Args:
        target: the folder to write (its parent is created if needed).
        fmt: the format being saved; ``target`` may hold only an earlier save of it
            (:func:`check_replaceable`).

    Raises:
        ArtifactError: ``target`` holds something else (before anything is written).
    """
    target = Path(target)
    check_replaceable(target, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    staging = _temporary_sibling(target, "tmp")
    staging.mkdir()  # 0o777 less the umask, unlike tempfile.mkdtemp's 0o700
    try:
        yield staging
        for root, _, files in os.walk(staging):
            for name in files:
                _fsync(Path(root, name))
            _fsync(Path(root))
        check_replaceable(target, fmt)  # something else may have appeared there meanwhile
        if target.exists() or target.is_symlink():
            retired = _temporary_sibling(target, "old")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync(target.parent)


def write_manifest(folder: str | os.PathLike[str], fmt: str, version: int, config: dict[str, Any]) -> dict:
    """Checksum every file in ``folder`` and write its manifest; return the manifest.

    Every file counts, at any depth, sub-folders' own manifests included (so an altered setting
    in a sub-artifact is caught by the whole's checksums too); only this ``manifest.json`` is
    left out, and it carries its own checksum (:data:`MANIFEST_CHECKSUM`).
    """
    folder = Path(folder)
    own = folder / MANIFEST
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path != own
    }
    manifest: dict[str, Any] = {
        "format": fmt,
        "format_version": version,
        SCHEMA_FIELD: ARTIFACT_SCHEMA,
        "musicenv_version": package_version(),
        "config": config,
        "files": files,
    }
    manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
    write_json_atomic(own, manifest)
    return manifest


def read_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, read into memory (pickled objects refused).

    Raises:
        OSError, ValueError: the file is missing or not an ``.npz``, as :func:`numpy.load` raises
            them, for the caller to name the artifact it belongs to.
    """
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def read_manifest(folder: str | os.PathLike[str], fmt: str, version: int, verify: bool = True) -> dict:
    """Read and check ``folder``'s manifest: format, version, its own checksum and (with ``verify``) the files'.

    The format and version are checked first (another version may checksum differently), then the
    artifact schema (:data:`ARTIFACT_SCHEMA`; an older save, whose manifest nothing guards, is
    refused), then the manifest's own checksum, which it must carry, then each listed file's.

    Raises:
        ArtifactError: naming the folder and the file at fault: no manifest, one that is not a
            JSON object of the expected shape, another format or version, a damaged or edited
            manifest, a missing or corrupted file.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}; not a saved {fmt} (or its save never finished)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: not valid JSON ({error})") from error
    except OSError as error:
        raise ArtifactError(f"{path}: cannot be read ({error.strerror or error})") from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: a manifest is a JSON object, found {type(manifest).__name__}")
    if manifest.get("format") != fmt:
        raise ArtifactError(f"{path}: format is {manifest.get('format')!r}, expected {fmt!r}")
    if manifest.get("format_version") != version:
        raise ArtifactError(
            f"{path}: format version {manifest.get('format_version')!r}, this musicenv reads version "
            f"{version}; rebuild the artifact with this version"
        )
    schema = manifest.get(SCHEMA_FIELD, 1)
    if schema != ARTIFACT_SCHEMA:
        if schema == 1 or (isinstance(schema, int) and not isinstance(schema, bool) and schema < ARTIFACT_SCHEMA):
            why = "saved by an earlier musicenv, before manifests were checksummed; it cannot be checked"
        else:
            why = f"this musicenv reads {SCHEMA_FIELD} {ARTIFACT_SCHEMA}"
        raise ArtifactError(f"{path}: {SCHEMA_FIELD} {schema!r}: {why}; save (or rebuild) the {fmt} again")
    if MANIFEST_CHECKSUM not in manifest:
        raise ArtifactError(f"{path}: no {MANIFEST_CHECKSUM} (damaged or edited after saving); save the artifact again")
    if manifest[MANIFEST_CHECKSUM] != manifest_digest(manifest):
        raise ArtifactError(
            f"{path}: damaged or edited after saving (its contents do not match its own {MANIFEST_CHECKSUM}); "
            "save the artifact again"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ArtifactError(f"{path}: 'files' must map file names to SHA-256 digests")
    if not isinstance(manifest.get("config"), dict):
        raise ArtifactError(f"{path}: 'config' must be a JSON object")
    for name in files:
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
            raise ArtifactError(f"{path}: lists {name!r}, which is not a file inside {folder}")
    if verify:
        for name, expected in files.items():
            file = folder / name
            if not file.is_file():
                raise ArtifactError(f"{file}: listed in {path} but missing")
            if sha256_file(file) != expected:
                raise ArtifactError(f"{file}: checksum mismatch (corrupted or modified after saving)")
    return manifest
