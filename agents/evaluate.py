"""``eval.py``: every agent in the learned world and in its ground truth, on the same held-out episodes.

What it does
    Each agent plays the same ``episodes`` evaluation episodes (held-out users, ``split="eval"``;
    seeds from :func:`agents.rollout.evaluation_seed`, at ``2**30`` and above, disjoint from every
    training seed) twice: in the **learned world** (the world's own user-response and session-end
    models answer) and in the **ground-truth world** (the same observations and pools, answered by
    the ground truth the world was learned from). All agents and both worlds meet the same
    listeners, contexts, pools and response uniforms episode by episode (common random numbers,
    docs/design.md), so every comparison is paired. Agents that read the truth (``greedy_truth``,
    ``planner_truth``) play only in the ground-truth world; their learned-world cells read ``n/a``.

    For every agent and world it reports the metrics of :mod:`agents.metrics` (mean return with a
    95% t interval, completion and skip rates, session length, the share of listeners who left,
    artist diversity, novelty, catalogue coverage), the paired difference to the reference agent
    (default ``greedy_learned``, the paper's strongest baseline) with its 95% t interval, and the
    learned world's fidelity: each agent's relative return gap ``(learned - truth) / truth`` and
    Kendall's tau between the two worlds' rankings of the agents, also printed as
    ``fidelity_kendall_tau=...`` and ``max_relative_return_gap=...`` lines.

    With ``--cross-world`` a third world answers the same episodes: the **cross world**, learned
    the same way from sessions the evaluated world never saw (:mod:`world_model.cross_fit`), asked
    through the ground-truth run's id translation. Its column shows each agent's return there and
    the predicted relative gap ``(learned - cross) / cross`` beside the true one, and
    ``cross_world_kendall_tau=...`` / ``cross_world_max_relative_return_gap=...`` lines. A world
    learned from logs without a ground truth (the MSSD) gets no truth columns (``n/a``), but the
    cross world's still: for such logs it is the only check of the world's verdict there is.

Speed
    An agent's episodes run side by side in one :class:`~musicenv.vector_env.ListeningSessionVectorEnv`
    (``--batch-size`` sessions, default all of them), one batched ``act`` per step, through
    :func:`agents.rollout.rollout`: a thousand episodes of a cheap baseline take seconds; the
    whole default run takes minutes, most of them ``planner_learned``'s (``benchmarks/RESULTS.md``,
    "Evaluation speed"). The progress bar ticks as sessions end and the throughput is printed
    (``episodes_per_second=``) and kept in ``run.json``.

Outputs (in ``--out``, default ``eval_out/<date-time>``)
    ``results.csv`` and ``results.md`` (the table), ``fidelity.csv``, ``mean_return.png``,
    ``skip_by_position.png``, and ``tensorboard/`` (scalars per agent, the figures as images, the
    report as text: ``tensorboard --logdir <out>/tensorboard``). See :mod:`agents.report`.

Usage::

    python eval.py                                   # baselines + the latest checkpoint under checkpoints/
    python eval.py --agents random,greedy_learned --checkpoints checkpoints/my_run --episodes 500
    python eval.py --world worlds/mine --checkpoints none --out eval_out/mine
    python eval.py --cross-world                     # also the default world's cross world
    python eval.py --world worlds/mssd --cross-world worlds/mssd-cross   # a split made at build time

The API is :func:`evaluate` (and :func:`run` for the whole command, returning the :class:`Evaluation`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from agents import report
from agents.base import AGENT_FORMAT, AGENT_FORMAT_VERSION, Agent, load_agent, make_agent
from agents.config import apply_overrides, build_parser
from agents.metrics import (
    AgentResult,
    Fidelity,
    episode_metrics,
    fidelity,
    paired_difference,
    popularity_percentiles,
)
from agents.rollout import RolloutResult, evaluation_seed, rollout
from musicenv.allocator import keep_freed_memory
from musicenv.artifacts import MANIFEST, ArtifactError, check_writable, read_manifest, write_json_atomic
from musicenv.vector_env import ListeningSessionVectorEnv
from musicenv.world import SessionModel, World

DEFAULT_AGENTS: tuple[str, ...] = (
    "random",
    "popular",
    "als",
    "content",
    "greedy_learned",
    "lcb_greedy",
    "greedy_truth",
    "planner_learned",
    "planner_truth",
    "sequence_rnn",
    "user_cf",
    "likeability",
    "content_clusters",
    "discover_weekly",
)
"""The agents that need no training: the baselines, the lookahead planners and the sequence RNN
(De Boom et al.; on a world without a sequence stage it fits its own on first use, a few seconds)."""

RUN_RECORD = "run.json"
"""How the run was made and how fast it went (everything of a run that is not deterministic)."""
LATEST = "latest"
UNREADABLE = "checkpoint"
"""The agent name of a checkpoint the ``latest`` search found but cannot read (labelled ``checkpoint:<run>``)."""
NO_CHECKPOINTS = "none"
WORLDS = ("learned", "groundtruth", "cross")
"""Who answers an evaluation's episodes: the learned world itself, its ground truth, its cross world."""


@dataclass
class EvalConfig:
    """Evaluate playlist agents in the learned world and in its ground truth, on the same episodes."""

    world: str = "default"
    """The learned world to evaluate in: ``default`` (the embedded world, built and cached on first
    use; ``groundtruth`` means the same) or a saved world folder. Its ground truth (the synthetic
    world whose logs it was learned from) is found from it; a world learned from logs without one
    (the MSSD) is evaluated alone, or with its cross world (``--cross-world``)."""
    cross_world: str | None = field(default=None, metadata={"const": "default"})
    """Also let a cross-fitted world answer the same episodes (:mod:`world_model.cross_fit`): a
    second world learned from sessions the evaluated world never saw, asked through the
    ground-truth run's id translation. ``default``: for a world learned from a ground truth's log,
    a fresh log of that ground truth (same size, same logging policy, same settings), built and
    cached on first use; or a saved cross world's folder (for your own logs: the other half of a
    split at build time, ``build_cross_fitted_worlds``). Each agent's return there and the
    predicted relative gap ``(learned - cross) / cross`` are reported beside the truth's: without a
    ground truth it is the only estimate of the sim-to-real gap. Default: none."""
    agents: tuple[str, ...] = DEFAULT_AGENTS
    """Registered agents to evaluate with their default settings (names separated by spaces or
    commas). Default: every baseline and both lookahead planners. The planners cost the most
    (``benchmarks/RESULTS.md``, "Evaluation speed"); leave ``planner_learned`` out for a quick
    look."""
    checkpoints: tuple[str, ...] = (LATEST,)
    """Saved agents to evaluate (checkpoint folders written by ``train.py``, or ``Agent.save``
    folders). ``latest``: the newest checkpoint of each kind of agent under ``checkpoint_dir`` (the
    AH-DQN's, and each SB3 agent's if one was trained), if any; ``none``: no checkpoint. A checkpoint
    named here that cannot be loaded stops ``eval.py`` with an error (exit status 1); one that the
    ``latest`` search found is reported n/a, with the reason."""
    checkpoint_dir: str = "checkpoints"
    """Where ``latest`` looks for checkpoints (``train.py``'s default checkpoint root)."""
    episodes: int = 1000
    """Evaluation episodes per agent and world (the same episodes for all of them)."""
    seed: int = 0
    """Evaluation seed, counted from 2**30 (so disjoint from every training seed); the same seed
    gives the same episodes and the same table."""
    reference: str = "greedy_learned"
    """The agent every other is compared with (paired per-episode return differences); added to
    the agents if missing."""
    batch_size: int = 1000
    """Sessions stepped side by side (sub-environments of the vector env); at most ``episodes``.
    Part of the episodes' identity: keep it fixed to compare tables across runs."""
    playlist_length: int = 20
    """Tracks per playlist (the MSSD's cap): episode length cap and history size."""
    pool_size: int = 100
    """Candidate tracks per session (M), from the world's ANN index."""
    session: str = "default"
    """The listening mode, i.e. what the pool holds: ``default`` or ``smart_shuffle`` (the
    listener's playlist + recommendations; :mod:`musicenv.sessions`)."""
    out: str | None = None
    """Output folder for the tables, figures and TensorBoard logs (default: ``eval_out/<date-time>``)."""
    threads: int = 1
    """Torch CPU threads."""
    progress: bool = True
    """Show a tqdm progress bar."""
    tensorboard: bool = True
    """Write the scalars and figures to ``<out>/tensorboard``."""

    def __post_init__(self) -> None:
        # Accept "a,b" as well as "a b" on the command line.
        self.agents = _split_names(self.agents)
        self.checkpoints = _split_names(self.checkpoints)
        for name in ("episodes", "batch_size", "playlist_length", "pool_size", "threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def _split_names(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(part for value in values for part in str(value).split(",") if part)


# -- which agents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent of the evaluation, afresh for each world.

    Every world gets a new agent, so an agent with its own random stream (``random``) makes the
    same draws in both, and the comparison between worlds stays paired.

    Attributes:
        label: the agent's name in tables and figures (unique within an evaluation).
        name: the registered agent name.
        checkpoint: the saved agent folder, or None for a fresh agent with default settings.
        kwargs: constructor arguments of a fresh agent besides the world.
        named: the checkpoint was named by the user (not found by the ``latest`` search): if it
            cannot be loaded, ``eval.py`` stops with an error instead of reporting n/a.
        error: why a checkpoint the ``latest`` search found cannot be read (its name is then
            :data:`UNREADABLE`): :meth:`build` raises it as an :class:`ArtifactError`, and the
            agent is reported n/a with it.
    """

    label: str
    name: str
    checkpoint: Path | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    named: bool = False
    error: str | None = None
    _loaded: list[Agent] = field(default_factory=list, compare=False, repr=False)

    def build(self, world: World) -> Agent:
        """A fresh agent over ``world`` (loaded from the checkpoint, if any).

        An agent :meth:`preload` built and nothing used yet is handed out first, once.
        """
        if self.error is not None:
            raise ArtifactError(self.error)
        if self._loaded:
            return self._loaded.pop()
        if self.checkpoint is not None:
            return load_agent(self.checkpoint, world)
        return make_agent(self.name, world, **self.kwargs)

    def preload(self, world: World) -> None:
        """Build the agent now (``eval.py`` checks named checkpoints before evaluating); the next
        :meth:`build` over the same world returns it instead of loading the checkpoint again."""
        agent = self.build(world)
        self._loaded[:] = [agent]


def agent_folder(path: str | Path) -> Path:
    """The saved agent inside ``path``: ``path`` itself, or the agent folder a checkpoint holds.

    A ``train.py`` checkpoint keeps the agent beside the learner's state; any folder whose
    ``manifest.json`` has the agent format (searched to two levels down, ``agent`` first) is it.
    Manifests of other saved kinds (the checkpoint's own) are passed over; a damaged one (not a
    JSON object naming its format) may be the agent's, so it is an error, not passed over.

    Raises:
        FileNotFoundError: ``path`` holds no saved agent.
        ArtifactError: ``path`` holds no intact agent manifest but a damaged manifest (named).
    """
    path = Path(path)
    damaged: ArtifactError | None = None
    for candidate in _manifest_folders(path):
        try:
            manifest = json.loads((candidate / MANIFEST).read_text())
        except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError included
            damaged = damaged or ArtifactError(f"{candidate / MANIFEST}: cannot be read as JSON ({error})")
            continue
        if isinstance(manifest, dict) and manifest.get("format") == AGENT_FORMAT:
            return candidate
        if not (isinstance(manifest, dict) and isinstance(manifest.get("format"), str)):
            damaged = damaged or ArtifactError(
                f"{candidate / MANIFEST}: damaged: not a JSON object that names its format "
                f"(found {type(manifest).__name__}); save the agent again"
            )
    if damaged is not None:
        raise damaged
    raise FileNotFoundError(f"{path} holds no saved agent (no {MANIFEST} of format {AGENT_FORMAT!r})")


def _manifest_folders(path: Path) -> list[Path]:
    """The folders where :func:`agent_folder` looks for a saved agent that hold a manifest, in its order."""
    candidates = [path, path / "agent", *sorted(path.glob("*")), *sorted(path.glob("*/*"))]
    return [folder for folder in dict.fromkeys(candidates) if (folder / MANIFEST).is_file()]


def saved_agent_name(folder: str | Path) -> str:
    """The registry name of the agent saved in ``folder`` (its manifest's ``config.agent``).

    The manifest itself is checked (format, version, its own checksum), not yet the files.

    Raises:
        ArtifactError: naming the manifest: unreadable, damaged, or naming no agent.
    """
    manifest = read_manifest(folder, AGENT_FORMAT, AGENT_FORMAT_VERSION, verify=False)
    name = manifest["config"].get("agent")
    if not isinstance(name, str) or not name:
        raise ArtifactError(f"{Path(folder) / MANIFEST}: config.agent must name the saved agent, found {name!r}")
    return name


def latest_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """The most recent checkpoint of each kind of agent under ``checkpoint_dir``, oldest first.

    A checkpoint is a folder directly under ``checkpoint_dir`` that holds a ``manifest.json``
    (itself, or its saved agent: ``train.py`` writes ``checkpoint_dir/<run name>/agent``); its age
    is that of its ``manifest.json``, rewritten at every save. So after training an AH-DQN (and
    perhaps a MaskablePPO) ``python eval.py`` evaluates the newest run of each. A checkpoint whose
    agent cannot be told (no agent, or a damaged manifest) is kept, whatever its age, so that
    :func:`checkpoint_spec` can say why it cannot be evaluated: it is never skipped in silence, nor
    replaced by an older run.
    """
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    newest: dict[str, tuple[float, Path]] = {}
    # Names starting with a dot are the atomic writer's unfinished folders.
    for run in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        manifests = _manifest_folders(run)
        if not manifests:
            continue  # not a checkpoint (e.g. a log folder)
        try:
            folder = agent_folder(run)
            name = saved_agent_name(folder)
        except (ArtifactError, FileNotFoundError):
            newest[f"unreadable {run}"] = ((manifests[0] / MANIFEST).stat().st_mtime, run)
            continue
        manifest = run / MANIFEST if (run / MANIFEST).is_file() else folder / MANIFEST
        saved = manifest.stat().st_mtime
        if name not in newest or saved > newest[name][0]:
            newest[name] = (saved, run)
    return [run for _, run in sorted(newest.values())]


def checkpoint_spec(path: str | Path) -> AgentSpec:
    """An :class:`AgentSpec` for a saved agent, labelled with its registry name.

    Raises:
        FileNotFoundError: ``path`` holds no saved agent.
        ArtifactError: its manifest is damaged (named).
    """
    folder = agent_folder(path)
    name = saved_agent_name(folder)
    return AgentSpec(label=name, name=name, checkpoint=folder)


def agent_specs(config: EvalConfig) -> tuple[list[AgentSpec], list[str]]:
    """The agents ``config`` names, the reference first if it was missing, and notes for the user."""
    notes = []
    names = list(dict.fromkeys(config.agents))
    if config.reference not in names:
        names.insert(0, config.reference)
        notes.append(f"added the reference agent {config.reference!r} (every agent is compared with it)")
    specs = [AgentSpec(label=name, name=name) for name in names]
    paths: dict[Path, bool] = {}  # each checkpoint, and whether the user named it
    for entry in config.checkpoints:
        if entry == NO_CHECKPOINTS:
            continue
        if entry == LATEST:
            found = latest_checkpoints(config.checkpoint_dir)
            if not found:
                notes.append(
                    f"no checkpoint under {config.checkpoint_dir}/: evaluating the baselines only "
                    "(train one with `python train.py`, or name one with --checkpoints)"
                )
            for path in found:
                paths.setdefault(path, False)
        else:
            paths[Path(entry)] = True
    checkpoints = []
    for path, named in paths.items():
        try:
            checkpoints.append(dataclasses.replace(checkpoint_spec(path), named=named))
        except (ArtifactError, FileNotFoundError) as error:
            if named:
                raise  # eval.py stops, naming the file
            # Found by the latest search: reported n/a with the reason (its kind cannot be told).
            checkpoints.append(AgentSpec(UNREADABLE, UNREADABLE, checkpoint=Path(path), error=str(error)))
    names = [spec.name for spec in checkpoints]
    for path, spec in zip(paths, checkpoints, strict=True):
        # The agent's name alone where it is unambiguous; else with the run (checkpoint folder) name.
        label = spec.name
        if spec.error is not None or names.count(spec.name) > 1 or any(other.label == label for other in specs):
            label = f"{spec.name}:{Path(path).resolve().name}"
        specs.append(dataclasses.replace(spec, label=label))
        if spec.error is not None:
            notes.append(f"checkpoint {path} cannot be loaded (reported n/a as {label!r}): {spec.error}")
        else:
            notes.append(f"checkpoint {spec.checkpoint} evaluated as {label!r}")
    return specs, notes


# -- evaluation ---------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`.

    Attributes:
        results: one :class:`~agents.metrics.AgentResult` per agent and world (n/a ones included),
            agents in evaluation order, the learned world first.
        rollouts: the per-episode records by ``(label, world)``, for paired analyses of your own.
        fidelity: the learned world's fidelity over the agents evaluated in both worlds; None
            when there was no ground truth.
        cross_fidelity: the cross world's verdict on the learned world: per agent the predicted
            relative gap ``(learned - cross) / cross`` and Kendall's tau between the two worlds'
            rankings (:func:`~agents.metrics.fidelity` with the cross world in the truth's
            place); None without a cross world.
        reference: the label of the reference agent.
        episodes: episodes per agent and world.
        seconds: total wall time of the rollouts.
    """

    results: list[AgentResult]
    rollouts: dict[tuple[str, str], RolloutResult]
    fidelity: Fidelity | None
    reference: str
    episodes: int
    seconds: float
    cross_fidelity: Fidelity | None = None

    @property
    def episodes_per_second(self) -> float:
        """Evaluation throughput over all agents and worlds."""
        return len(self.rollouts) * self.episodes / self.seconds if self.seconds > 0 else float("nan")

    def result(self, agent: str, world: str) -> AgentResult:
        """The result of ``agent`` (its label) in ``world``."""
        for result in self.results:
            if result.agent == agent and result.world == world:
                return result
        raise KeyError(f"no result for agent {agent!r} in world {world!r}")


class ProgressAgent:
    """An agent that ticks a progress bar as its episodes end (a thin wrapper around ``agent``).

    An episode has ended when a sub-environment's next observation starts an empty session (the
    vector env resets it at once), so the bar moves during slow agents' runs, not only after
    them. It counts at most ``episodes``; the rest is ticked by the caller.
    """

    def __init__(self, agent: Agent, bar: Any, episodes: int) -> None:
        self.agent = agent
        self.name = agent.name
        self.needs_oracle = agent.needs_oracle
        self.bar = bar
        self.episodes = episodes
        self.counted = 0
        self._started = False

    def act(self, obs: Any, oracle: Any = None) -> np.ndarray:
        """``agent.act``, after ticking the bar for each session that has just started again."""
        if self._started:
            restarted = int((np.asarray(obs["history_mask"]).sum(axis=1) == 0).sum())
            tick = min(restarted, self.episodes - self.counted)
            if tick > 0:
                self.counted += tick
                self.bar.update(tick)
        self._started = True
        return self.agent.act(obs, oracle)


def popularity_of(world: World) -> np.ndarray:
    """Per-track popularity for the novelty metric: the catalogue's ``us_pop_estimate`` where the track
    table has it (the service's own popularity estimate, as in the MSSD's track features), else the
    world's ``popularity`` feature (plays in the logs it was learned from)."""
    tracks = world.tracks
    if "us_pop_estimate" in tracks.columns:
        values = tracks["us_pop_estimate"].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isnan(values).all():
            return values
    block = getattr(world, "track_feature_layout", {}).get("popularity")
    if block is None:
        return np.full(len(tracks), np.nan)
    start, stop = (block.start, block.stop) if isinstance(block, slice) else block
    return np.asarray(world.track_features[:, start:stop], dtype=np.float64).sum(axis=1)


def evaluate(
    world: World,
    specs: Sequence[AgentSpec],
    groundtruth: Any = None,
    episodes: int = 1000,
    seed: int = 0,
    reference: str = "greedy_learned",
    batch_size: int = 1000,
    playlist_length: int = 20,
    pool_size: int = 100,
    progress: bool = False,
    session: str = "default",
    cross: SessionModel | None = None,
) -> Evaluation:
    """Evaluate agents in the learned world and (given ``groundtruth``) in the ground-truth world.

    Args:
        world: the learned world (observations and pools in both runs).
        specs: the agents (:func:`agent_specs`); labels must be unique.
        groundtruth: the ground-truth world ``world`` was learned from
            (:func:`world_model.world.groundtruth_for`), or None to evaluate the learned world only.
        episodes: episodes per agent and world.
        seed: evaluation seed (counted from ``2**30``).
        reference: label of the agent the others are paired with (no comparisons if absent).
        batch_size: sessions stepped side by side (at most ``episodes``).
        playlist_length, pool_size: the env's settings.
        progress: show a tqdm bar (one tick per episode, counted when an agent's run ends).
        session: the env's listening mode (:mod:`musicenv.sessions`).
        cross: the cross world's session model in ``world``'s indices
            (:func:`world_model.cross_fit.cross_responder`), or None: it answers the same
            episodes as a third world, ``"cross"`` (no oracle there, as in the learned world).

    Returns:
        The :class:`Evaluation`.
    """
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"agent labels must be unique, got {labels}")
    responders = {"learned": None, "groundtruth": groundtruth, "cross": cross}
    worlds = [name for name in WORLDS if name == "learned" or responders[name] is not None]
    env_seed = evaluation_seed(seed)
    num_envs = min(episodes, batch_size)
    percentiles = popularity_percentiles(popularity_of(world))
    bar = tqdm(total=len(worlds) * len(specs) * episodes, unit="episode", disable=not progress, desc="evaluating")
    rollouts: dict[tuple[str, str], RolloutResult] = {}
    seconds: dict[tuple[str, str], float] = {}
    notes: dict[tuple[str, str], str] = {}
    for name in worlds:
        env = ListeningSessionVectorEnv(
            num_envs=num_envs,
            world=world,
            playlist_length=playlist_length,
            pool_size=pool_size,
            split="eval",
            responder=responders[name],
            copy=False,  # agents act on an observation before the next step and keep none
            session=session,
        )
        for spec in specs:
            bar.set_postfix_str(f"{spec.label} · {name}")
            try:
                agent = spec.build(world)
            except ArtifactError as error:  # a damaged checkpoint the latest search found
                notes[spec.label, name] = f"checkpoint cannot be loaded: {error}"
                agent = None
            except ValueError as error:  # e.g. a world whose features lack the block the agent reads
                notes[spec.label, name] = f"cannot run on this world: {error}"
                agent = None
            if agent is not None and agent.needs_oracle and env.oracle is None:
                notes[spec.label, name] = "reads the ground truth: ground-truth world only"
            elif agent is not None:
                counted = ProgressAgent(agent, bar, episodes)
                start = time.perf_counter()
                rollouts[spec.label, name] = rollout(counted, env, episodes, env_seed, world=name)  # type: ignore[arg-type]
                seconds[spec.label, name] = time.perf_counter() - start
                episodes_left = episodes - counted.counted
            else:
                episodes_left = episodes
            bar.update(episodes_left)
    bar.close()

    results = []
    for name in worlds:
        base = rollouts.get((reference, name))
        for spec in specs:
            run = rollouts.get((spec.label, name))
            if run is None:
                results.append(AgentResult(spec.label, name, None, note=notes.get((spec.label, name), "")))
                continue
            metrics = episode_metrics(run.returns, run.tracks, run.responses, run.artists, run.terminated, percentiles)
            versus = None
            if base is not None and spec.label != reference:
                if not run.paired_with(base):
                    raise RuntimeError(f"{spec.label} and {reference} did not play the same episodes in {name}")
                versus = paired_difference(run.returns, base.returns)
            results.append(AgentResult(spec.label, name, metrics, versus, seconds[spec.label, name]))
    means = {
        world_name: {r.agent: r.metrics.mean_return.mean for r in results if r.world == world_name and r.metrics}
        for world_name in worlds
    }
    world_fidelity = fidelity(means["learned"], means["groundtruth"]) if groundtruth is not None else None
    cross_fidelity = fidelity(means["learned"], means["cross"]) if cross is not None else None
    return Evaluation(results, rollouts, world_fidelity, reference, episodes, sum(seconds.values()), cross_fidelity)


def evaluate_config(
    config: EvalConfig,
    world: World,
    groundtruth: Any,
    specs: Sequence[AgentSpec],
    cross: SessionModel | None = None,
) -> Evaluation:
    """:func:`evaluate` with the settings of ``config``: ``eval.py``'s evaluation (and ``train.py``'s closing one)."""
    return evaluate(
        world,
        specs,
        groundtruth,
        episodes=config.episodes,
        seed=config.seed,
        reference=config.reference,
        batch_size=config.batch_size,
        playlist_length=config.playlist_length,
        pool_size=config.pool_size,
        progress=config.progress,
        session=config.session,
        cross=cross,
    )


def summary(evaluation: Evaluation) -> str:
    """The evaluation as the terminal shows it (``eval.py``, and ``train.py`` after training).

    The results table (:func:`agents.report.display_rows`), why cells are n/a, a legend, the
    fidelity table and its ``name=value`` lines when there was a ground truth, and the
    throughput as an ``episodes_per_second=...`` line.
    """
    results, reference = evaluation.results, evaluation.reference
    lines = [report.text_table(*report.display_rows(results, reference))]
    lines += [f"n/a: {line}" for line in report.not_available_notes(results)]
    lines.append(
        "return: mean with its 95% t interval; "
        f"vs {reference}: mean paired per-episode difference with its 95% t interval "
        "(better/worse: the interval excludes 0)"
    )
    if report.has_fidelity(evaluation.fidelity, evaluation.cross_fidelity):
        lines += ["", report.text_table(*report.fidelity_rows(results, evaluation.fidelity, evaluation.cross_fidelity))]
        lines.append(report.fidelity_lines(evaluation.fidelity, evaluation.cross_fidelity))
    lines.append(
        f"episodes_per_second={evaluation.episodes_per_second:.1f} "
        f"({len(evaluation.rollouts)} agent-world runs x {evaluation.episodes} episodes "
        f"in {evaluation.seconds:.1f} s)"
    )
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------------


def parse_config(argv: list[str] | None = None) -> EvalConfig:
    """Parse ``argv`` into an :class:`EvalConfig` (the command line is generated from its fields)."""
    parser = build_parser(EvalConfig, prog="eval.py")
    given = vars(parser.parse_args(argv))
    try:
        return apply_overrides(EvalConfig(), given)
    except ValueError as error:
        parser.error(str(error))


def _output_folder(config: EvalConfig) -> Path:
    if config.out is not None:
        return Path(config.out)
    return Path("eval_out") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _header(config: EvalConfig, argv: Sequence[str]) -> str:
    # No date or timing here: the same command and seed must give the same file.
    command = " ".join(["python eval.py", *map(shlex.quote, argv)])
    return (
        f"`{command}`: world `{config.world}`, {config.episodes} held-out episodes per agent and world, "
        f"evaluation seed {config.seed} (episode seeds from 2**30 + {config.seed})."
    )


def _write_run_record(path: Path, config: EvalConfig, evaluation: Evaluation, notes: list[str]) -> None:
    """What varies between identical runs (date, timings) and how the run was made, as JSON."""
    record = {
        "config": dataclasses.asdict(config),
        "date": datetime.now().isoformat(timespec="seconds"),
        "notes": notes,
        "episodes_per_second": evaluation.episodes_per_second,
        "seconds": {
            f"{result.agent} / {result.world}": result.seconds for result in evaluation.results if result.metrics
        },
    }
    write_json_atomic(path, record)


def main(argv: list[str] | None = None) -> None:
    """The console entry point (``python eval.py``, ``musicenv-eval``): :func:`run` on ``sys.argv``."""
    run(argv)


def run(argv: list[str] | None = None) -> Evaluation:
    """Parse ``argv`` (default ``sys.argv[1:]``), evaluate, print the table, write the tables, figures
    and TensorBoard logs, and say where they went."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = parse_config(argv)
    torch.set_num_threads(config.threads)
    keep_freed_memory()
    out = _output_folder(config)
    try:
        check_writable(out, "--out")  # now, not after the whole evaluation
        specs, notes = agent_specs(config)
    except (PermissionError, FileNotFoundError) as error:  # also a --checkpoints entry with no saved agent
        raise SystemExit(f"eval.py: error: {error}") from error
    except ArtifactError as error:  # a --checkpoints entry whose manifest is damaged
        raise SystemExit(f"eval.py: error: --checkpoints: {error}") from error
    print(f"loading world {config.world!r} ...", flush=True)
    from world_model.world import open_world_and_truth  # the world-learning package, on use

    world, groundtruth = open_world_and_truth(config.world)
    cross = None
    if config.cross_world is not None:
        from world_model.cross_fit import cross_responder, open_cross_world

        print(f"loading the cross world {config.cross_world!r} ...", flush=True)
        try:
            cross = cross_responder(open_cross_world(config.cross_world, world), world)
        except ValueError as error:  # ArtifactError included; or no ground truth to draw a fresh log from
            raise SystemExit(f"eval.py: error: --cross-world: {error}") from error
    for spec in specs:
        if spec.named:
            try:
                spec.preload(world)  # evaluate uses this agent in the learned world, not a second load
            except ValueError as error:  # ArtifactError included: damaged, or not this world's agent
                message = f"eval.py: error: --checkpoints {spec.checkpoint} cannot be loaded: {error}"
                raise SystemExit(message) from error
    if groundtruth is None:
        notes.append(
            "this world has no ground truth (learned from logs such as the MSSD's): "
            + ("learned and cross world only" if cross is not None else "learned world only")
        )
    for note in notes:
        print(f"note: {note}")

    try:
        evaluation = evaluate_config(config, world, groundtruth, specs, cross)
    except KeyError as error:  # an agent name the registry does not know; the message lists those it does
        raise SystemExit(f"eval.py: error: {error.args[0]}") from error

    print()
    print(summary(evaluation))

    report.publish(
        out,
        evaluation.results,
        evaluation.reference,
        evaluation.fidelity,
        header=_header(config, argv),
        cross_fidelity=evaluation.cross_fidelity,
        tensorboard=config.tensorboard,
    )
    _write_run_record(out / RUN_RECORD, config, evaluation, notes)
    print(f"outputs in {out}/: {', '.join(sorted(p.name for p in out.iterdir()))}")
    if config.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {out / 'tensorboard'}")
    return evaluation
