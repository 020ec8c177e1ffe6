"""Ray RLlib: examples/rllib_ppo.py trains PPO with two env runners and the action mask (when ray is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="Ray RLlib is not installed (pip install 'musicenv[ray]')")

from fakes import FakeWorld

from musicenv.rllib import MaskedListeningSession

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rllib_ppo.py"


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory) -> Path:
    """A saved world folder: ``MUSICENV_TEST_WORLD`` if set, else the embedded default world saved once."""
    if os.environ.get("MUSICENV_TEST_WORLD"):
        return Path(os.environ["MUSICENV_TEST_WORLD"])
    module = pytest.importorskip("world_model.world", reason="world_model.world is not built yet")
    return module.default_world().save(tmp_path_factory.mktemp("rllib") / "world")


def test_masked_env_matches_the_action_masking_module_contract(world_folder):
    env = MaskedListeningSession({"world": str(world_folder), "pool_size": 20, "playlist_length": 6})
    assert set(env.observation_space.spaces) == {"action_mask", "observations"}
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    played = []
    for _ in range(6):
        action = int(np.flatnonzero(obs["action_mask"])[0])
        obs, _, terminated, truncated, info = env.step(action)
        played.append(action)
        assert obs["action_mask"][played].sum() == 0  # played slots are masked
        assert not info["invalid_action"]
        if terminated or truncated:
            break
    with pytest.raises(TypeError, match="path"):
        MaskedListeningSession({"world": FakeWorld(seed=0)})


@pytest.mark.slow
def test_rllib_ppo_example_trains_two_iterations(world_folder, tmp_path):
    """Two PPO iterations with 2 env runners on a local Ray; TensorBoard events are written."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    command = [
        sys.executable,
        str(EXAMPLE),
        f"--world={world_folder}",
        "--iterations=2",
        "--num-env-runners=2",
        "--num-cpus=3",
        "--pool-size=20",
        "--playlist-length=10",
        "--train-batch-size=200",
        "--minibatch-size=100",
        "--num-epochs=1",
        "--hidden=32",
        f"--log-dir={tmp_path / 'runs'}",
        "--run-name=smoke",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("iteration=")]
    assert [line.split()[0] for line in lines] == ["iteration=1", "iteration=2"]
    assert "env_steps=400" in lines[-1] or int(lines[-1].split("env_steps=")[1].split()[0]) >= 200
    run_dir = tmp_path / "runs" / "smoke"
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert f"world={Path(world_folder).resolve()}" in done.stdout  # the workers got the folder's path
