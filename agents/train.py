"""Training entry point: ``python train.py`` (or ``musicenv-train``) trains an agent and compares it.

With no arguments it trains the Action-Head DQN on the embedded default world (built from the
synthetic ground-truth world's logs on first use, then cached), then evaluates it and the
baselines on held-out listeners in the learned world and in the ground-truth world, with common
random numbers, and prints the comparison. That evaluation is :func:`agents.evaluate.evaluate`'s
(the table ``eval.py`` prints, on the same episodes as ``eval.py --world <world> --checkpoints
<checkpoint> --agents <BASELINES> --episodes <eval_episodes> --seed <eval_seed> --playlist-length
<playlist_length> --pool-size <pool_size>``, with ``eval.py``'s default ``--batch-size``). Every option is a field of
:class:`agents.config.TrainConfig` (``python train.py --help``).

What a run leaves behind
    - ``runs/<run_name>/``: TensorBoard logs (:mod:`agents.logging` lists the tags), including
      the hyperparameters, sample playlists and the track-embedding projector.
    - ``checkpoints/<run_name>/``: the latest checkpoint, written atomically
      (:mod:`musicenv.artifacts`) every ``checkpoint_interval`` steps, at the end, and on Ctrl-C
      or SIGTERM. ``agent/`` inside it is a saved agent (``agents.load_agent(path, world)``);
      the rest is what ``--resume`` needs to continue the run exactly.

    Both roots are checked for writing before anything else happens, and a fresh run refuses a
    run name already in use (its checkpoint or TensorBoard folder exists): ``--resume`` continues
    that run, ``--overwrite`` starts it afresh (its checkpoint is replaced at the new run's first
    checkpoint, its curves hidden).

Resuming
    ``--resume`` (the latest run), ``--resume RUN_NAME`` or ``--resume PATH`` reloads the run's
    configuration and state. For the AH-DQN the state is complete (networks, optimiser, replay
    buffer, exploration and sampling streams, the vector env's sessions and generators), so an
    interrupted run ends with exactly the weights of an uninterrupted one (tested). SB3 runs
    resume from their policy, optimiser and step count; SB3 keeps its rollout and replay buffers
    in memory only, so those restart (a resumed SB3 run is close to, not equal to, an
    uninterrupted one).
"""

from __future__ import annotations

import math
import signal
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from agents import logging as tb
from agents.ahdqn import AHDQN, AHDQNLearner
from agents.base import Agent, make_agent
from agents.config import TrainConfig, apply_overrides, parse_config
from agents.evaluate import EvalConfig, Evaluation, agent_specs, evaluate_config, summary
from musicenv.allocator import keep_freed_memory
from musicenv.artifacts import (
    MANIFEST,
    ArtifactError,
    atomic_folder,
    check_replaceable,
    check_writable,
    read_manifest,
    write_manifest,
)
from musicenv.configs import config_from_dict, config_to_dict
from musicenv.registration import ENV_ID
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import World

CHECKPOINT_FORMAT = "musicenv.run"
CHECKPOINT_FORMAT_VERSION = 3
"""2: the AH-DQN trainer's state holds the user-response model's probabilities of its replayed and
current sessions (:mod:`agents.replay`); 3: also those of its demonstrated states' pools. An older
checkpoint cannot be resumed (its saved agent still loads and evaluates)."""
RESUME_OVERRIDABLE = frozenset(
    {
        "total_steps",
        "stop_at_step",
        "device",
        "threads",
        "progress",
        "eval_episodes",
        "eval_seed",
        "checkpoint_interval",
        "log_interval",
        "resume",
    }
)
"""Options that may differ from the saved configuration on ``--resume`` (they do not change the run)."""

BASELINES = ("planner_learned", "greedy_learned", "als", "content", "popular", "random", "greedy_truth")
"""Agents in the closing comparison, strongest reference first: ``planner_learned`` is lookahead
planning on the learned world's own models (model-predictive control, :mod:`agents.planner`), the
strongest model-based competitor; ``greedy_learned`` the paper's strongest baseline (and, as in
``eval.py``, the reference every agent is paired with)."""

EVAL_ENVS = 64
"""Sessions run side by side in model selection's episodes (at most ``ahdqn.selection_episodes``)."""


@dataclass
class TrainResult:
    """What :func:`main` returns (and prints).

    Attributes:
        run_name: the run's name.
        log_dir: its TensorBoard folder.
        checkpoint: its checkpoint folder (``checkpoint / "agent"`` is the saved agent).
        agent: the trained agent.
        global_step: agent steps done.
        finished: False when the run stopped early (signal or ``stop_at_step``).
        evaluation: the closing comparison (:class:`agents.evaluate.Evaluation`); None when the
            run stopped early or ``eval_episodes`` is 0.
    """

    run_name: str
    log_dir: Path
    checkpoint: Path
    agent: Agent
    global_step: int
    finished: bool
    evaluation: Evaluation | None = None


class StopSignal:
    """Turns the first Ctrl-C / SIGTERM into a request to checkpoint and stop; a second one aborts.

    Used as a context manager around the training loop; the previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested}: saving a checkpoint, then stopping (again to abort)", file=sys.stderr)

    def __enter__(self) -> StopSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# -- worlds, names, checkpoints -----------------------------------------------------------------------


def default_run_name(config: TrainConfig) -> str:
    """``ListeningSession-v0__<agent>__<world>__<seed>__<unix time>`` (CleanRL's pattern)."""
    world = config.world if config.world in ("default", "groundtruth") else Path(config.world).name
    return f"{ENV_ID}__{config.agent}__{world}__{config.seed}__{int(time.time())}"


def check_outputs(config: TrainConfig, run_name: str, resuming: bool) -> None:
    """Check, before any training, that the run's outputs can be written and lose nothing.

    Both roots (``--checkpoint-dir``, ``--log-dir``) must be writable (found now, not at the first
    checkpoint hours later). A fresh run must not reuse the name of an earlier run, whose
    checkpoint it would replace and whose curves it would mix with its own, unless ``--overwrite``
    says to; even then the checkpoint folder must be an earlier checkpoint (or empty).

    Raises:
        PermissionError: a root cannot be written (the message names the option and folder).
        FileExistsError: the run name is taken (the message says how to resume or overwrite).
        musicenv.artifacts.ArtifactError: ``--overwrite`` of a folder that is not a checkpoint.
    """
    check_writable(config.checkpoint_dir, "--checkpoint-dir")
    check_writable(config.log_dir, "--log-dir")
    if resuming:
        return
    checkpoint = Path(config.checkpoint_dir) / run_name
    taken = [path for path in (checkpoint, Path(config.log_dir) / run_name) if path.exists() and _non_empty(path)]
    if taken and not config.overwrite:
        how = f"continue it with --resume {run_name}, or " if (checkpoint / MANIFEST).is_file() else ""
        raise FileExistsError(
            f"run {run_name!r} already exists ({', '.join(map(str, taken))}); {how}start it afresh with "
            "--overwrite, or choose another --run-name"
        )
    check_replaceable(checkpoint, CHECKPOINT_FORMAT)


def _non_empty(path: Path) -> bool:
    return not path.is_dir() or any(path.iterdir())


def find_checkpoint(resume: str, checkpoint_dir: str) -> Path:
    """The checkpoint folder ``--resume`` names: ``"latest"``, a run name, or a path.

    Raises:
        FileNotFoundError: nothing matches (the message says where it looked).
    """
    root = Path(checkpoint_dir)
    if resume == "latest":
        runs = [path for path in root.glob("*") if (path / "manifest.json").is_file()]
        if not runs:
            raise FileNotFoundError(f"--resume: no checkpoint under {root}/ to continue")
        return max(runs, key=lambda path: (path / "manifest.json").stat().st_mtime)
    for candidate in (root / resume, Path(resume)):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(f"--resume {resume}: neither {root / resume} nor {resume} is a checkpoint")


def resume_config(config: TrainConfig, given: dict[str, Any]) -> tuple[TrainConfig, Path, str, int]:
    """The saved run's configuration with the allowed overrides, its checkpoint, name and step.

    The saved ``stop_at_step`` is dropped (the resumed run continues to ``total_steps``) unless
    ``--stop-at-step`` is given again.

    Raises:
        ValueError: an option that would change the run (not in :data:`RESUME_OVERRIDABLE`)
            was given with a value other than the saved one.
    """
    folder = find_checkpoint(config.resume or "latest", config.checkpoint_dir)
    manifest = read_manifest(folder, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION)
    saved = config_from_dict(TrainConfig, manifest["config"]["train_config"])
    changed = [
        name
        for name, value in given.items()
        if name not in RESUME_OVERRIDABLE and name != "checkpoint_dir" and _get(saved, name) != _as_field(value)
    ]
    if changed:
        raise ValueError(
            f"--resume continues {folder} with its saved configuration; these options would change the run: "
            f"{', '.join(sorted(changed))} (only {', '.join(sorted(RESUME_OVERRIDABLE - {'resume'}))} may change)"
        )
    # A saved stop_at_step was where the last slice ended; the next one runs on unless told where to stop.
    overrides: dict[str, Any] = {"stop_at_step": None, "overwrite": False}
    overrides.update({name: value for name, value in given.items() if name in RESUME_OVERRIDABLE})
    meta = manifest["config"]
    return apply_overrides(saved, overrides), folder, meta["run_name"], int(meta["global_step"])


def _get(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _as_field(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def save_checkpoint(
    folder: Path, config: TrainConfig, run_name: str, agent: Agent, global_step: int, state_writer: Any
) -> None:
    """Write the run's checkpoint atomically: the agent, the trainer's state, a manifest."""
    with atomic_folder(folder, CHECKPOINT_FORMAT) as staging:
        agent.save(staging / "agent")
        state_writer(staging / "trainer")
        write_manifest(
            staging,
            CHECKPOINT_FORMAT,
            CHECKPOINT_FORMAT_VERSION,
            {
                "train_config": config_to_dict(config),
                "run_name": run_name,
                "agent": agent.name,
                "global_step": global_step,
            },
        )


# -- training -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRun:
    """One run as a trainer (:func:`train_ahdqn`, :func:`train_sb3`) receives it from :func:`run`.

    Attributes:
        config: the run's settings.
        world: the world the agent observes (the learned world, in either kind of run).
        responder: the ground truth that answers in a ground-truth run; None in a learned-world run.
        writer: the run's TensorBoard writer.
        checkpoint: the run's checkpoint folder.
        name: the run's name.
        resume_from: the checkpoint the run continues from; None for a new run.
        stop: the signal handler whose request stops the run after the current iteration.
    """

    config: TrainConfig
    world: World
    responder: Any
    writer: Any
    checkpoint: Path
    name: str
    resume_from: Path | None
    stop: StopSignal


class RunLogger:
    """Charts, losses, SPS, progress bar and checkpoints of one run, driven after every iteration.

    Logging happens each time ``global_step`` crosses a multiple of ``log_interval``, so the logged
    curve depends on the steps alone (and is the same for a resumed run).
    """

    def __init__(self, run: TrainingRun, global_step: int, save: Any) -> None:
        self.config, self.writer, self.stop = run.config, run.writer, run.stop
        self.save = save
        self.bar = tqdm(
            total=run.config.total_steps,
            initial=min(global_step, run.config.total_steps),
            unit="step",
            unit_scale=True,
            disable=not run.config.progress,
            dynamic_ncols=True,
            desc=run.config.agent,
        )
        self.last_step = global_step
        self.last_time = time.perf_counter()
        self.last_checkpoint = global_step
        self.stopped = False

    def after(self, global_step: int, charts: dict[str, float] | None, losses: dict[str, float]) -> bool:
        """Update everything for ``global_step``; True when the run must stop now (checkpoint saved).

        ``charts`` is None when it is not a logging step (no need to gather the episode sums).
        """
        self.bar.update(min(global_step, self.config.total_steps) - self.bar.n)
        if charts is not None:
            now = time.perf_counter()
            for tag, value in {**charts, **losses}.items():
                self.writer.add_scalar(tag, value, global_step)
            sps = (global_step - self.last_step) / max(now - self.last_time, 1e-9)
            self.writer.add_scalar("charts/SPS", sps, global_step)
            self.last_step, self.last_time = global_step, now
            if "charts/episodic_return" in charts:
                self.bar.set_postfix(ret=f"{charts['charts/episodic_return']:.2f}", sps=f"{sps:.0f}")
        interval = self.config.checkpoint_interval
        if interval and global_step // interval > self.last_checkpoint // interval:
            self.save()
            self.last_checkpoint = global_step
        stop_at = self.config.stop_at_step
        if self.stop.requested is not None or (stop_at is not None and global_step >= stop_at):
            self.save()
            self.stopped = True
            return True
        return False

    def is_log_step(self, before: int, after: int) -> bool:
        """Whether the steps from ``before`` to ``after`` crossed a multiple of ``log_interval``."""
        return after // self.config.log_interval > before // self.config.log_interval

    def close(self) -> None:
        self.bar.close()


def make_learner(config: TrainConfig, world: World, responder: Any = None) -> AHDQNLearner:
    """A fresh AH-DQN and its learner on a training vector env, as ``config`` says.

    Args:
        config: the run's configuration (``num_envs``, ``seed``, ``ahdqn``, ...).
        world: the learned world (observations, pools, and responses unless ``responder`` is given).
        responder: who answers (None: the learned world; a ground truth for a sim-to-real run).
    """
    env = ListeningSessionVectorEnv(
        config.num_envs,
        world=world,
        responder=responder,
        split="train",
        playlist_length=config.playlist_length,
        pool_size=config.pool_size,
        responses=config.env.responses,
        pessimism=config.env.pessimism,
    )
    agent = AHDQN(
        world,
        hidden_size=config.ahdqn.hidden_size,
        seed=config.seed,
        device=config.device,
        model_features=config.ahdqn.model_features,
        response_head=config.ahdqn.response_head,
    )
    selection_env = None
    if config.ahdqn.selection_interval and config.ahdqn.selection_episodes:
        # Always the learned world, even in a ground-truth run: selecting on the truth would be cheating.
        selection_env = ListeningSessionVectorEnv(
            min(EVAL_ENVS, config.ahdqn.selection_episodes),
            world=world,
            split="train",
            playlist_length=config.playlist_length,
            pool_size=config.pool_size,
        )
    return AHDQNLearner(agent, env, config.ahdqn, config.total_steps, seed=config.seed, selection_env=selection_env)


def train_ahdqn(run: TrainingRun) -> tuple[Agent, int, bool]:
    """Train the AH-DQN; return the agent, the steps done and whether the run finished."""
    learner = make_learner(run.config, run.world, run.responder)
    agent, env = learner.agent, learner.env
    if run.resume_from is not None:
        # The online network is the saved agent's (the manifest's checksums were verified on reading).
        agent._load_state(run.resume_from / "agent")
        learner.load(run.resume_from / "trainer")

    def save() -> None:
        save_checkpoint(run.checkpoint, run.config, run.name, agent, learner.global_step, learner.save)

    logger = RunLogger(run, learner.global_step, save)

    def callback(learner: AHDQNLearner) -> bool:
        charts = None
        if logger.is_log_step(learner.global_step - env.num_envs, learner.global_step):
            charts = learner.pop_stats().as_charts()
            metrics = learner.metrics
            losses = {"losses/epsilon": learner.epsilon()}
            if learner.gradient_steps:
                losses.update({"losses/td_loss": metrics.td_loss, "losses/q_values": metrics.q_mean})
                run.writer.add_histogram("q_values", metrics.q_values, learner.global_step)
            return logger.after(learner.global_step, charts, losses)
        return logger.after(learner.global_step, None, {})

    try:
        learner.run(run.config.total_steps, callback)
    finally:
        logger.close()
    if not logger.stopped:
        learner.finish()
        for step, score in learner.selection_scores.items():
            run.writer.add_scalar("charts/selection_return", score, step)
        if learner.best_step is not None:
            scores = learner.selection_scores
            print(
                f"model selection: kept the network of step {learner.best_step:,} (mean return "
                f"{scores[learner.best_step]:.3f} on {run.config.ahdqn.selection_episodes} learned-world episodes; "
                f"untrained {scores[0]:.3f}, last {scores[learner.global_step]:.3f})"
            )
        save()
    return agent, learner.global_step, not logger.stopped


def train_sb3(run: TrainingRun) -> tuple[Agent, int, bool]:
    """Train an SB3 agent (MaskablePPO, PPO or DQN); return the agent, the steps done, whether it finished."""
    from stable_baselines3.common.logger import configure

    from agents.sb3_agents import SessionStatsCallback, make_model

    agent = make_agent(
        run.config.agent,
        run.world,
        net_arch=run.config.sb3.net_arch,
        playlist_length=run.config.playlist_length,
        pool_size=run.config.pool_size,
        seed=run.config.seed,
        device=run.config.device,
    )
    env_kwargs: dict[str, Any] = {"responses": run.config.env.responses, "pessimism": run.config.env.pessimism}
    if run.responder is not None:
        env_kwargs["responder"] = run.responder
    model = make_model(agent, run.config.sb3, run.config.num_envs, run.config.seed, env_kwargs)
    model.set_logger(configure(str(run.writer.log_dir), ["tensorboard"]))
    if run.resume_from is not None:
        trainer = run.resume_from / "trainer"
        model.policy.load_state_dict(
            torch.load(trainer / "policy.pt", weights_only=True, map_location=run.config.device)
        )
        model.policy.optimizer.load_state_dict(
            torch.load(trainer / "optimizer.pt", weights_only=True, map_location=run.config.device)
        )
        model.num_timesteps = int(np.load(trainer / "steps.npy"))

    def write_state(folder: Path) -> None:
        folder.mkdir(parents=True)
        torch.save(model.policy.state_dict(), folder / "policy.pt")
        torch.save(model.policy.optimizer.state_dict(), folder / "optimizer.pt")
        np.save(folder / "steps.npy", np.int64(model.num_timesteps))

    def save() -> None:
        agent.policy.load_state_dict(model.policy.state_dict())  # type: ignore[attr-defined]
        save_checkpoint(run.checkpoint, run.config, run.name, agent, model.num_timesteps, write_state)

    logger = RunLogger(run, model.num_timesteps, save)
    sums = {"episodes": 0, "return": 0.0, "length": 0, "completions": 0, "skips": 0}
    previous = [model.num_timesteps]

    def on_step(global_step: int, ended: list[dict[str, Any]]) -> bool:
        for session in ended:
            sums["episodes"] += 1
            for key in ("return", "length", "completions", "skips"):
                sums[key] += session[key]
        charts = None
        if logger.is_log_step(previous[0], global_step) and sums["episodes"]:
            plays = max(sums["length"], 1)
            charts = {
                "charts/episodic_return": sums["return"] / sums["episodes"],
                "charts/session_length": sums["length"] / sums["episodes"],
                "charts/completion_rate": sums["completions"] / plays,
                "charts/skip_rate": sums["skips"] / plays,
            }
            sums.update(episodes=0, **{"return": 0.0, "length": 0, "completions": 0, "skips": 0})
        previous[0] = global_step
        return logger.after(global_step, charts, {})

    remaining = run.config.total_steps - model.num_timesteps
    try:
        if remaining > 0:
            model.learn(remaining, callback=SessionStatsCallback(on_step), reset_num_timesteps=run.resume_from is None)
    finally:
        logger.close()
    agent.policy.load_state_dict(model.policy.state_dict())  # type: ignore[attr-defined]
    if not logger.stopped:
        save()
    return agent, model.num_timesteps, not logger.stopped


# -- evaluation -------------------------------------------------------------------------------------------


def closing_evaluation(world: World, truth: Any, checkpoint: Path, config: TrainConfig) -> Evaluation:
    """The trained agent (loaded from its checkpoint) and :data:`BASELINES` on held-out episodes, in the
    learned world and, when it has one, in the ground-truth world: ``eval.py``'s evaluation, run with
    the settings of ``config`` (``eval_episodes``, ``eval_seed``, ``playlist_length``, ``pool_size``)."""
    eval_config = EvalConfig(
        world=config.world,
        agents=BASELINES,
        checkpoints=(str(checkpoint),),
        episodes=config.eval_episodes,
        seed=config.eval_seed,
        playlist_length=config.playlist_length,
        pool_size=config.pool_size,
        progress=config.progress,
    )
    specs, _ = agent_specs(eval_config)
    return evaluate_config(eval_config, world, truth, specs)


# -- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """The console entry point (``python train.py``, ``musicenv-train``): :func:`run` on ``sys.argv``."""
    run(argv)


def run(argv: list[str] | None = None, world: World | None = None, truth: Any = None) -> TrainResult:
    """Parse ``argv`` (default ``sys.argv[1:]``), train, evaluate, print where everything went.

    Args:
        argv: command-line options (:class:`~agents.config.TrainConfig`).
        world: train in this already-loaded world instead of loading ``--world`` (which then
            only names the run); for programs that build their own worlds.
        truth: ``world``'s ground truth (a ground-truth world object), or None when it has none.
    """
    config, given = parse_config(argv)
    resume_from: Path | None = None
    global_step = 0
    if config.resume is not None:
        try:
            config, resume_from, run_name, global_step = resume_config(config, given)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"train.py: error: {error}") from error
    else:
        run_name = config.run_name or default_run_name(config)
    try:
        check_outputs(config, run_name, resuming=resume_from is not None)
    except (OSError, ArtifactError) as error:
        raise SystemExit(f"train.py: error: {error}") from error
    torch.set_num_threads(config.threads)
    keep_freed_memory()
    log_dir = Path(config.log_dir) / run_name
    checkpoint = Path(config.checkpoint_dir) / run_name

    if world is None:
        from world_model.world import open_world_and_truth

        world, truth = open_world_and_truth(config.world)
    if config.world == "groundtruth" and truth is None:
        raise SystemExit("train.py: error: --world groundtruth needs a world with a ground truth")
    responder = truth if config.world == "groundtruth" else None
    # An overwritten run's old curves are hidden from step 0, as a resumed run's are from its step.
    purge_step = global_step if resume_from is not None else (0 if config.overwrite else None)
    writer = tb.make_writer(log_dir, purge_step=purge_step)
    if resume_from is None:
        tb.log_hyperparameters_text(writer, config_to_dict(config))
        tb.log_track_projector(writer, world)
    print(f"{'resuming' if resume_from else 'training'} {config.agent} in the {config.world} world: run {run_name}")

    trainer = train_ahdqn if config.agent == "ahdqn" else train_sb3
    with StopSignal() as stop:
        agent, global_step, finished = trainer(
            TrainingRun(config, world, responder, writer, checkpoint, run_name, resume_from, stop)
        )
    result = TrainResult(run_name, log_dir, checkpoint, agent, global_step, finished)
    if not finished:
        print(f"stopped at step {global_step:,}; checkpoint: {checkpoint}")
        print(f"continue with: python train.py --resume {run_name} --checkpoint-dir {config.checkpoint_dir}")
        writer.close()
        return result

    if config.eval_episodes:
        print(f"evaluating {agent.name} and the baselines on {config.eval_episodes} held-out episodes per world ...")
        result.evaluation = closing_evaluation(world, truth, checkpoint, config)
        print()
        print(summary(result.evaluation))
        _log_evaluation(writer, result.evaluation, result, config, world)
    writer.close()
    print()
    print(f"TensorBoard: tensorboard --logdir {config.log_dir}   (this run: {log_dir})")
    print(f"checkpoint:  {checkpoint}   (agent: agents.load_agent('{checkpoint / 'agent'}', world))")
    return result


def _log_evaluation(
    writer: Any, evaluation: Evaluation, result: TrainResult, config: TrainConfig, world: World
) -> None:
    """Mean returns as ``eval/<world>/<agent>`` scalars and hparams metrics; the trained agent's first playlists."""
    metrics: dict[str, float] = {}
    for (name, label), rollout_result in evaluation.rollouts.items():
        value = float(rollout_result.returns.mean())
        writer.add_scalar(f"eval/{label}/{name}", value, result.global_step)
        metrics[f"eval/{label}/{name}"] = value
    for label in dict.fromkeys(label for _, label in evaluation.rollouts):
        trained = evaluation.rollouts.get((result.agent.name, label))
        if trained is not None:
            for episode in range(min(3, len(trained))):
                title = (
                    f"{label} world · user {world.user_ids[trained.users[episode]]} · "
                    f"return {trained.returns[episode]:.2f}"
                )
                text = tb.playlist_markdown(world, trained.tracks[episode], trained.responses[episode], title)
                writer.add_text(f"playlists/{label}", text, episode)
    tb.log_hparams(
        writer, config_to_dict(config), {key: value for key, value in metrics.items() if math.isfinite(value)}
    )


__all__ = ["TrainResult", "closing_evaluation", "main", "make_learner", "run"]
