"""The synthetic ground-truth world: listeners whose responses are known exactly.

:class:`GroundTruthWorld` is built from a seed in seconds, is calibrated to the MSSD's published
aggregates (``scripts/calibrate_groundtruth.py``), and writes the listening logs that the learned
world is built from. Its :class:`~musicenv.groundtruth.response.GroundTruthSessionModel` gives the
exact probabilities of skip, listen and complete, and of leaving, for any listener, context,
session so far and track. See docs/design.md, "The two worlds".
"""

from __future__ import annotations

from musicenv.groundtruth.config import EFFECTS, GENRES, GroundTruthConfig
from musicenv.groundtruth.response import GroundTruthSessionModel
from musicenv.groundtruth.simulate import SimulatedSessions
from musicenv.groundtruth.world import GroundTruthWorld

__all__ = [
    "EFFECTS",
    "GENRES",
    "GroundTruthConfig",
    "GroundTruthSessionModel",
    "GroundTruthWorld",
    "SimulatedSessions",
]
