"""train.py: a smoke run (CleanRL style), determinism, exact resume, checkpoints, and the CLI.

Every run here is tiny (a fake world, pools of 24, 8-track playlists, a few hundred steps) so
the file stays fast; what is checked is behaviour that holds at any size: the same seed gives the
same curve, a stopped and resumed run ends with the weights of one that never stopped, a
checkpoint is replaced only when complete and a damaged one is refused by name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import FakeGroundTruth, FakeWorld, LayoutWorld

from agents import logging as tb
from agents import train as train_module
from agents.ahdqn import AHDQN, AHDQNLearner
from agents.base import load_agent, make_agent
from agents.config import TrainConfig, build_parser, field_docs, parse_config
from agents.evaluate import summary
from musicenv.vector_env import ListeningSessionVectorEnv

torch.set_num_threads(1)

TINY = [
    "--num-envs", "4",
    "--playlist-length", "8",
    "--pool-size", "24",
    "--log-interval", "40",
    "--checkpoint-interval", "0",
    "--no-progress",
    "--ahdqn.hidden-size", "8",
    "--ahdqn.batch-size", "16",
    "--ahdqn.learning-starts", "48",
    "--ahdqn.train-frequency", "8",
    "--ahdqn.target-update-interval", "5",
    "--ahdqn.buffer-size", "500",
    "--ahdqn.demonstration-fraction", "0.2",
    "--ahdqn.selection-interval", "80",
    "--ahdqn.selection-episodes", "8",
]  # fmt: skip
"""A run small enough for a test: 4 sessions side by side, a gradient step every 2 vector steps,
the planner's demonstrations for the first 10 vector steps, model selection every 20."""


@pytest.fixture(scope="module")
def world() -> LayoutWorld:
    return LayoutWorld(seed=0)


def train(tmp_path: Path, world: Any, truth: Any, *extra: str, run_name: str = "run") -> train_module.TrainResult:
    argv = [
        *TINY,
        "--log-dir", str(tmp_path / "runs"),
        "--checkpoint-dir", str(tmp_path / "checkpoints"),
        *extra,
    ]  # fmt: skip
    if "--resume" not in extra:
        argv += ["--run-name", run_name]
    return train_module.run(argv, world=world, truth=truth)


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a TensorBoard run folder, by tag (the wall-clock SPS left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag != "charts/SPS"
    }


def weights(agent: Any) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in agent.q_network.state_dict().items()}


def assert_same_weights(first: Any, second: Any) -> None:
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs")


def test_smoke_run_trains_evaluates_and_logs(
    tmp_path: Path, world: LayoutWorld, groundtruth: FakeGroundTruth, capsys
) -> None:
    result = train(tmp_path, world, groundtruth, "--total-steps", "240", "--eval-episodes", "8")
    out = capsys.readouterr().out
    assert result.finished and result.global_step >= 240
    # The comparison covers the trained agent and the baselines in both worlds; agents that read
    # the truth only in the ground-truth one.
    evaluation = result.evaluation
    assert evaluation is not None
    for label in ("learned", "groundtruth"):
        by_agent = {agent: run for (agent, world), run in evaluation.rollouts.items() if world == label}
        assert {"ahdqn", "greedy_learned", "planner_learned", "random"} <= set(by_agent)
        assert ("greedy_truth" in by_agent) == (label == "groundtruth")
        assert all(len(rollout) == 8 for rollout in by_agent.values())
    # The printed comparison is eval.py's table.
    assert summary(evaluation) in out
    assert "ahdqn" in out and "greedy_learned" in out and "planner_learned" in out and "TensorBoard" in out
    # The checkpoint holds a loadable agent that acts as the trained one.
    loaded = load_agent(result.checkpoint / "agent", world)
    assert_same_weights(loaded, result.agent)
    # TensorBoard: the training curves, the losses, the Q histogram, texts, hparams and projector.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(result.log_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    for tag in (
        "charts/episodic_return",
        "charts/completion_rate",
        "charts/skip_rate",
        "charts/session_length",
        "charts/SPS",
        "losses/td_loss",
        "losses/q_values",
        "losses/epsilon",
        "eval/groundtruth/ahdqn",
    ):
        assert tag in tags["scalars"], tag
    assert "q_values" in tags["histograms"]
    texts = {tag.split("/text_summary")[0] for tag in tags["tensors"]}
    assert {"hyperparameters", "playlists/learned", "playlists/groundtruth"} <= texts
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(events.PluginTagToContent("hparams"))
    assert (result.log_dir / "projector_config.pbtxt").is_file()


def test_same_seed_gives_the_same_training_curve(
    tmp_path: Path, world: LayoutWorld, groundtruth: FakeGroundTruth
) -> None:
    runs = [
        train(tmp_path / name, world, groundtruth, "--total-steps", "200", "--eval-episodes", "0", "--seed", seed)
        for name, seed in (("a", "3"), ("b", "3"), ("c", "4"))
    ]
    curves = [scalars(run.log_dir) for run in runs]
    assert curves[0]["losses/td_loss"] and curves[0]["charts/episodic_return"]
    assert curves[0] == curves[1]
    assert_same_weights(runs[0].agent, runs[1].agent)
    assert curves[0]["losses/td_loss"] != curves[2]["losses/td_loss"]


def interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Send this process a SIGTERM once the learner has collected ``step`` agent steps."""
    collect = AHDQNLearner.collect

    def collect_then_signal(self: AHDQNLearner) -> None:
        collect(self)
        if self.global_step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(AHDQNLearner, "collect", collect_then_signal)


@pytest.mark.parametrize(
    ("interruption", "step"),
    # 36: while the teacher demonstrates (the first 40 steps), demonstrated pools still pending.
    [("stop_at_step", 112), ("sigterm", 112), ("stop_at_step", 36)],
)
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    interruption: str,
    step: int,
    tmp_path: Path,
    world: LayoutWorld,
    groundtruth: FakeGroundTruth,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    common = ("--total-steps", "200", "--eval-episodes", "6", "--seed", "2")
    if interruption == "sigterm":  # also covers the learner's model-features path
        common += ("--ahdqn.model-features",)
    whole = train(tmp_path / "whole", world, groundtruth, *common)

    folder = tmp_path / "parts"
    if interruption == "sigterm":
        with monkeypatch.context() as patch:
            interrupt_at(patch, step)  # between gradient steps and log points, mid-episode
            first = train(folder, world, groundtruth, *common)
    else:
        first = train(folder, world, groundtruth, *common, "--stop-at-step", str(step))
    assert not first.finished and first.global_step == step and first.evaluation is None
    assert json.loads((first.checkpoint / "manifest.json").read_text())["config"]["global_step"] == step
    resumed = train(folder, world, groundtruth, "--resume", "run")
    assert resumed.finished and resumed.global_step == whole.global_step
    assert_same_weights(resumed.agent, whole.agent)
    assert whole.evaluation is not None and resumed.evaluation is not None
    assert whole.evaluation.rollouts.keys() == resumed.evaluation.rollouts.keys()
    for key, rollout in whole.evaluation.rollouts.items():
        np.testing.assert_array_equal(resumed.evaluation.rollouts[key].returns, rollout.returns)
    # The resumed run's curve continues the interrupted one's: together they are the whole run's.
    assert scalars(resumed.log_dir)["losses/td_loss"] == scalars(whole.log_dir)["losses/td_loss"]


def test_a_resumed_runs_event_file_is_read_after_the_interrupted_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writers numbered 9 then 10 by TensorBoard's per-process counter: in one second their file
    # names would sort as 10 before 9, and the resumed part's purge would come first.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    interrupted = tb.make_writer(tmp_path)
    for step in (10, 20, 30):
        interrupted.add_scalar("loss", step, step)
    interrupted.close()
    resumed = tb.make_writer(tmp_path, purge_step=20)
    for step in (20, 30, 40):
        resumed.add_scalar("loss", -step, step)
    resumed.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [(event.step, event.value) for event in events.Scalars("loss")] == [
        (10, 10),
        (20, -20),
        (30, -30),
        (40, -40),
    ]


def test_resume_refuses_options_that_would_change_the_run(
    tmp_path: Path, world: LayoutWorld, groundtruth: FakeGroundTruth
) -> None:
    train(tmp_path, world, groundtruth, "--total-steps", "80", "--eval-episodes", "0", "--stop-at-step", "40")
    with pytest.raises(SystemExit, match=r"ahdqn\.gamma"):
        train(tmp_path, world, groundtruth, "--resume", "run", "--ahdqn.gamma", "0.5")
    with pytest.raises(SystemExit, match="no checkpoint"):
        train(tmp_path / "elsewhere", world, groundtruth, "--resume")


def test_corrupted_checkpoint_is_refused_by_name(
    tmp_path: Path, world: LayoutWorld, groundtruth: FakeGroundTruth
) -> None:
    first = train(tmp_path, world, groundtruth, "--total-steps", "120", "--eval-episodes", "0", "--stop-at-step", "80")
    damaged = first.checkpoint / "trainer" / "optimizer.pt"
    damaged.write_bytes(damaged.read_bytes()[:-7])
    with pytest.raises(SystemExit, match=r"optimizer\.pt: checksum mismatch"):
        train(tmp_path, world, groundtruth, "--resume", "run")


def test_a_failed_checkpoint_write_leaves_the_previous_one(
    tmp_path: Path, world: LayoutWorld, groundtruth: FakeGroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train(tmp_path, world, groundtruth, "--total-steps", "120", "--eval-episodes", "0", "--stop-at-step", "40")
    before = (first.checkpoint / "manifest.json").read_text()

    def fail(self: AHDQNLearner, folder: Path) -> None:
        (folder / "partial").mkdir(parents=True)
        (folder / "partial" / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(AHDQNLearner, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        train(tmp_path, world, groundtruth, "--resume", "run", "--stop-at-step", "80")
    assert (first.checkpoint / "manifest.json").read_text() == before
    assert not list(first.checkpoint.parent.glob(".*.tmp")), "the staging folder was left behind"
    monkeypatch.undo()
    resumed = train(tmp_path, world, groundtruth, "--resume", "run", "--stop-at-step", "80")
    assert resumed.global_step == 80


def test_stop_signal_turns_the_first_sigterm_into_a_request() -> None:
    with train_module.StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is not stop._handle


def test_help_documents_every_field() -> None:
    text = " ".join(build_parser().format_help().split())

    def walk(cls: type, prefix: str = "") -> None:
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            assert docs.get(item.name), f"{cls.__name__}.{item.name} has no docstring"
            if dataclasses.is_dataclass(hints[item.name]):
                walk(hints[item.name], f"{prefix}{item.name}.")
                continue
            flag = "--" + prefix + item.name.replace("_", "-")
            assert flag in text, flag
            assert docs[item.name][:40] in text, f"{flag}'s docstring is not in --help"

    walk(TrainConfig)


def test_cli_parses_nested_options_and_rejects_bad_values(capsys) -> None:
    config, given = parse_config(["--ahdqn.n-step", "3", "--sb3.net-arch", "32", "32", "--no-progress"])
    assert config.ahdqn.n_step == 3 and config.sb3.net_arch == (32, 32) and config.progress is False
    assert given == {"ahdqn.n_step": 3, "sb3.net_arch": [32, 32], "progress": False}
    with pytest.raises(SystemExit):
        parse_config(["--seed", str(2**30)])
    assert "evaluation seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--agent", "nope"])


def test_model_features_agent_starts_as_greedy_learned(world: LayoutWorld, groundtruth: FakeGroundTruth) -> None:
    env = ListeningSessionVectorEnv(6, world=world, responder=groundtruth, playlist_length=8, pool_size=24)
    obs, _ = env.reset(seed=0)
    agent = AHDQN(world, hidden_size=8, seed=1, model_features=True)
    greedy = make_agent("greedy_learned", world)
    for _ in range(4):  # empty sessions, then histories of 1, 2, 3 plays
        np.testing.assert_array_equal(agent.act(obs), greedy.act(obs))
        obs, *_ = env.step(greedy.act(obs))
    with pytest.raises(ValueError, match="response_model"):
        AHDQN(FakeWorld(), model_features=True)


def test_env_responses_reach_the_training_envs_only(world: LayoutWorld) -> None:
    config, _ = parse_config([*TINY, "--env.responses", "pessimistic", "--env.pessimism", "0.3"])
    learner = train_module.make_learner(config, world)
    assert (learner.env.responses, learner.env.pessimism) == ("pessimistic", 0.3)
    assert learner.selection_env.responses == "mean"
    sample, _ = parse_config([*TINY, "--env.responses", "sample"])
    assert train_module.make_learner(sample, world).env.responses == "sample"


def test_bad_env_options_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--env.responses", "median"])
    with pytest.raises(SystemExit):
        parse_config(["--env.pessimism", "-1"])
    assert "env.pessimism must be at least 0" in capsys.readouterr().err
