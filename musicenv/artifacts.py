"""Saved artifacts: atomic folder writes and JSON manifests with checksums.

Every learned thing in musicenv (a retrieval stage, a user-response model, a world, an agent
checkpoint) is saved as one folder holding plain files (``.npz`` arrays, torch state dicts,
Annoy indexes, JSON) and a ``manifest.json``::

    {"format": "musicenv.retrieval", "format_version": 1, "musicenv_version": "0.1.0",
     "config": {...}, "files": {"vectors.npz": "<sha256>", ...}}

Writing goes to a temporary sibling folder that replaces the target only once every file and
the manifest are complete, so an interrupted save never leaves a half-written artifact and never
destroys the previous one. Reading checks the format, its version and every checksum before
anything is used, and raises :class:`ArtifactError` naming the folder and the file at fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """A saved artifact is missing, corrupted, or of another format or version."""


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


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` when the block ends without error.

    On an exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, retired / "old")
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_manifest(folder: str | os.PathLike[str], fmt: str, version: int, config: dict[str, Any]) -> dict:
    """Checksum every file in ``folder`` (recursively) and write its manifest; return the manifest."""
    folder = Path(folder)
    files = {
        str(path.relative_to(folder)): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {
        "format": fmt,
        "format_version": version,
        "musicenv_version": package_version(),
        "config": config,
        "files": files,
    }
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | os.PathLike[str], fmt: str, version: int, verify: bool = True) -> dict:
    """Read and check ``folder``'s manifest: its format, version and (with ``verify``) checksums.

    Raises:
        ArtifactError: naming the folder and the file at fault.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}; not a saved {fmt} (or its save never finished)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: not valid JSON ({error})") from error
    if manifest.get("format") != fmt:
        raise ArtifactError(f"{path}: format is {manifest.get('format')!r}, expected {fmt!r}")
    if manifest.get("format_version") != version:
        raise ArtifactError(
            f"{path}: format version {manifest.get('format_version')!r}, this musicenv reads version "
            f"{version}; rebuild the artifact with this version"
        )
    if verify:
        for name, expected in manifest.get("files", {}).items():
            file = folder / name
            if not file.is_file():
                raise ArtifactError(f"{file}: listed in the manifest but missing")
            if sha256_file(file) != expected:
                raise ArtifactError(f"{file}: checksum mismatch (corrupted or modified after saving)")
    return manifest
