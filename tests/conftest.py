"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared/`` folder beside the project root (real MSSD rows, calibration aggregates)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared test material lives beside the project root")
    return SHARED
