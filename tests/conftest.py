"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeGroundTruth, FakeWorld

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


@pytest.fixture(scope="module")
def world() -> FakeWorld:
    """The fake learned world of seed 0, one per test module.

    A module whose tests want another world (a :class:`~fakes.LayoutWorld`, a learned world)
    defines its own ``world`` fixture; :func:`groundtruth` then stands behind that one.
    """
    return FakeWorld(seed=0)


@pytest.fixture(scope="module")
def groundtruth(world: FakeWorld) -> FakeGroundTruth:
    """The fake ground truth (seed 1) behind the module's ``world``, for ground-truth runs."""
    return FakeGroundTruth(world, seed=1)
