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


@pytest.fixture(scope="session")
def real_worlds():
    """The embedded default learned world (built once, cached in ``$MUSICENV_HOME``) and its ground truth."""
    from world_model.world import default_world, groundtruth_for

    world = default_world()
    return world, groundtruth_for(world)
