"""Typed configuration of ``train.py``, and the command line generated from it.

The configuration is a tree of dataclasses (CleanRL's style: one typed field per option, its
docstring right below it). :func:`parse_config` turns the tree into an ``argparse`` command line
whose ``--help`` is those docstrings, so an option and its documentation cannot drift apart.
Nested dataclasses become dotted flags: ``TrainConfig.ahdqn.learning_rate`` is
``--ahdqn.learning-rate``.

Example::

    python train.py --total-steps 50000 --num-envs 32 --ahdqn.n-step 3 --seed 2
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from musicenv.responders import DEFAULT_PESSIMISM, ResponseMode
from musicenv.validation import check_weight

AgentName = Literal["ahdqn", "maskable_ppo", "ppo", "dqn"]

TRAIN_SEED_LIMIT = 2**30
"""Training seeds lie below this; evaluation seeds at or above it, so the two never meet."""

SELECTION_SEED = TRAIN_SEED_LIMIT + 2**29
"""Seed of the AH-DQN's model-selection episodes (training users in the learned world): above every
training seed, and far above the evaluation seeds in use (which draw held-out users anyway)."""


@dataclass
class AHDQNConfig:
    """Hyperparameters of the Action-Head DQN (network and learning).

    Where a default comes from is said in its docstring: the paper (Tomasi et al. 2023), CleanRL's
    ``dqn.py``, the Nature DQN (Mnih et al. 2015), or chosen here (and why). Sessions last at most
    ``playlist_length`` (20) steps and the world answers in microseconds, so several defaults are
    smaller than Atari's: the horizon is short and the replay cheap to refill.
    """

    hidden_size: int = 64
    """Width of the state and candidate encoders and of the Q head. Chosen here: the largest width
    whose training step stays cheap on one CPU core (the paper does not give its sizes; timing in
    ``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    learning_rate: float = 5e-4
    """Adam step size. CleanRL uses 2.5e-4 for Atari; chosen here twice that because the inputs are
    low-dimensional standardised features and the run is short; 1e-4 did worse
    (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    gamma: float = 0.95
    """Discount. Chosen here: a 20-track session is the whole horizon, and 0.95 (an effective
    horizon of 20 plays) values keeping the listener in the session without the variance of 1.0."""
    batch_size: int = 128
    """Transitions per gradient step (CleanRL's default)."""
    buffer_size: int = 100_000
    """Replay capacity in transitions. Compact storage (track indices, never feature matrices)
    costs about half a kilobyte a transition at M = 100, and 1.8 KB with ``model_features`` (the
    model's probabilities of the next pool are kept: :mod:`agents.replay`), so this is ~55 or
    ~175 MB; with ``model_features`` the demonstrated states' pools add 1.2 KB a demonstration
    (36 MB in a default run)."""
    learning_starts: int = 2_000
    """Transitions collected with the exploration policy before the first gradient step. Chosen
    here: enough for the first batches to cover hundreds of sessions (CleanRL: 10,000 Atari frames)."""
    train_frequency: int = 64
    """Env transitions between gradient steps (all envs together). With 64 envs, one gradient step
    per vector step: a replay ratio of ``batch_size / train_frequency`` = 2 (CleanRL: 128/10).
    Chosen here: the gradient steps were most of a run's time, and half as many (a replay ratio of
    2 instead of 4) ended no worse, paired on the same evaluation episodes; the same ratio with
    fewer but larger batches saved nothing (a batch's cost is its size). Figures in
    ``benchmarks/RESULTS.md``, "AH-DQN training speed"."""
    target_update_interval: int = 250
    """Gradient steps between hard copies of the online network into the target network
    (``tau`` = 1 as in the Nature DQN and CleanRL; their 10,000 and 500 steps count frames of far
    longer episodes)."""
    tau: float = 1.0
    """Weight of the online network in each target update: 1.0 copies (periodic hard update),
    below 1 blends (Polyak averaging, e.g. 0.005 with an interval of 1)."""
    start_epsilon: float = 1.0
    """Exploration rate at the start (Nature DQN, CleanRL). With the default demonstrations the
    decay is over before the agent plays itself; starting lower did not help
    (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    end_epsilon: float = 0.05
    """Exploration rate after the decay (CleanRL's 0.05; the Nature DQN's 0.1)."""
    exploration_fraction: float = 0.3
    """Share of ``total_steps`` over which epsilon decays linearly (CleanRL: 0.5 of a much longer run)."""
    n_step: int = 3
    """Steps of reward in each bootstrapped target (1 is the DQN; 3 is Rainbow's). Against n = 1
    the difference was within noise (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip (the Nature DQN clips the TD error; SB3's DQN clips the norm at 10)."""
    model_features: bool = True
    """Build on the learned world's user-response model: append its (skip, listen, complete)
    probabilities of each candidate, as the session's next play, to the candidate's features, and
    add the play's expected reward under them (what ``greedy_learned`` ranks by) to the network's
    output, whose last layer starts at zero. The untrained agent is then exactly greedy_learned,
    and the network learns only what a play does to the rest of the session. Chosen here (the
    paper's network learns everything from the features); needs a learned world
    (``world.session_model.response_model``). Without it the agent fell below greedy_learned
    (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    response_head: bool = True
    """With ``model_features``: add the response head, ``Q(s, a) = E[r | s, a] + p(a) · w(s) +
    f(s, a)``, where ``p(a)`` are the model's (skip, listen, complete) probabilities of the
    candidate and ``w(s)`` three learned values, what each response of the next play is worth to
    the rest of the session (:mod:`agents.networks`). Chosen here: it is the Bellman equation's
    structure, and it lets the whole pool share what one state teaches. Without it (or with a
    plain state-value head instead) the agent fell below its greedy starting point; with it, it
    stays level with greedy_learned (``benchmarks/RESULTS.md``, "AH-DQN defaults"). It stops the
    loss; the demonstrations bring the gain."""
    action_value_penalty: float = 1.0
    """Weight of an L2 penalty on the action head's output ``f(s, a)`` of the played slot, added to
    the TD loss: the per-track correction stays zero unless the data insist, so the response head
    and ``E[r | s, a]`` rank the pool. Chosen here; a weight of 100 did no better, and penalising
    the response head's spread across the pool as well did worse (small but noisy corrections flip
    the close calls between the best candidates; ``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    demonstration_fraction: float = 0.3
    """Share of ``total_steps``, at the start of the run, whose actions are ``planner_learned``'s
    (model-predictive control on the learned world's model, :mod:`agents.planner`) instead of
    epsilon-greedy; they are replayed with a large-margin loss that pushes the played slot's
    Q-value above every other's by ``demonstration_margin`` (DQfD, Hester et al. 2018). The teacher
    reads only the learned world. 0 turns it off. Chosen here: the span of the epsilon decay
    (``exploration_fraction``), so the agent's own play starts at ``end_epsilon``. The
    demonstrations lifted the agent above greedy_learned in both worlds, at the cost of the
    planner's time (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    demonstration_margin: float = 0.05
    """The large-margin loss's margin. DQfD uses 0.8 with Atari's clipped rewards; chosen here about
    half the spread of the expected immediate reward over a pool (0.09 on the default world), the
    scale at which the teacher's choices differ from greedy's."""
    demonstration_weight: float = 5.0
    """Weight of the large-margin loss next to the TD loss (DQfD's lambda_2 is 1). Chosen here from
    1, 5 and 20: 5 did best in both worlds (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    selection_interval: int = 25_000
    """Agent steps between model-selection evaluations (0: none, the last network is kept). With
    it, the network is scored before training and at each multiple of this on
    ``selection_episodes`` fixed episodes of *training* users in the *learned* world (never the
    ground truth, never held-out users), and the run ends with the best-scoring network (the
    untrained one included). Chosen here: five evaluations in a default run (at 0, 25k, ..., 100k
    steps); the scores it chose from are in ``benchmarks/RESULTS.md``, "AH-DQN defaults"."""
    selection_episodes: int = 1024
    """Episodes of each model-selection evaluation. Chosen here: enough for the paired standard
    error of a difference of means to be well below the gains at stake; with 256 the choice was
    mostly noise (``benchmarks/RESULTS.md``, "AH-DQN defaults")."""
    double_dqn: bool = True
    """Choose the next action with the online network and value it with the target network
    (van Hasselt et al. 2016), which removes the max operator's overestimation."""


@dataclass
class SB3Config:
    """Hyperparameters of the stable-baselines3 agents (MaskablePPO, PPO, DQN).

    Defaults are SB3's own except where said; the policy is SB3's ``MultiInputPolicy``, which
    flattens every observation array and concatenates them.
    """

    learning_rate: float = 3e-4
    """Adam step size (SB3's PPO default; SB3's DQN uses 1e-4)."""
    n_steps: int = 256
    """PPO / MaskablePPO: steps per env between updates (SB3: 2048; chosen here so that a short
    run with many envs still makes dozens of updates)."""
    batch_size: int = 256
    """Minibatch size of the gradient steps (SB3: 64 for PPO, 32 for DQN; larger for speed on CPU)."""
    n_epochs: int = 4
    """PPO / MaskablePPO: passes over each rollout (SB3: 10; fewer for speed)."""
    gamma: float = 0.95
    """Discount; the same as the AH-DQN's so that returns are compared on one footing."""
    ent_coef: float = 0.01
    """PPO / MaskablePPO entropy bonus (SB3: 0.0; a little keeps a 100-way softmax exploring)."""
    buffer_size: int = 100_000
    """DQN replay capacity (SB3: 1,000,000 full observations, far too much memory at M = 100)."""
    learning_starts: int = 2_000
    """DQN: transitions before the first gradient step (SB3: 100)."""
    exploration_fraction: float = 0.3
    """DQN: share of the run over which epsilon decays (SB3: 0.1)."""
    net_arch: tuple[int, ...] = (128, 128)
    """Hidden layers of the policy and value (or Q) MLPs (SB3: 64, 64)."""


@dataclass
class EnvConfig:
    """How the training environments answer (``ListeningSession-v0``'s Responses section).

    Only the training episodes read it: model selection, the closing evaluation and ``eval.py``
    play the world's mean answers, so runs with different settings are compared on one footing.
    """

    responses: ResponseMode = "mean"
    """How the learned world's ensemble answers the training episodes: ``mean`` (the members' mean
    probabilities), ``sample`` (one member per episode: domain randomisation) or ``pessimistic``
    (each play's reward minus ``pessimism`` times the members' disagreement on it, MOPO). The
    ground truth of ``--world groundtruth`` is one model, for which the three are the same."""
    pessimism: float = DEFAULT_PESSIMISM
    """Lambda of ``--env.responses pessimistic``: the weight of the disagreement (reward units) in a
    play's reward. The default is ``musicenv.responders.DEFAULT_PESSIMISM``, whose docstring says
    how it is chosen."""


@dataclass
class TrainConfig:
    """Everything ``train.py`` needs; ``python train.py --help`` prints these docstrings."""

    agent: AgentName = "ahdqn"
    """Which agent to train: the Action-Head DQN, or an SB3 baseline (MaskablePPO from sb3-contrib;
    plain PPO / DQN through ``musicenv.wrappers``, which cannot mask)."""
    world: str = "default"
    """The world to train in: ``default`` (the embedded learned world, built and cached on first
    use), a saved world folder, or ``groundtruth`` (observations and pools from the default learned
    world, responses from its ground truth: a sim-to-real run)."""
    total_steps: int = 100_000
    """Agent steps (env transitions over all envs) to train for."""
    num_envs: int = 64
    """Sessions run side by side in the vector env; the agent scores all of them in one batched pass.
    Chosen here: 64 rather than 32 halves the per-step cost of acting (and of the demonstrating
    planner) per agent step (``benchmarks/RESULTS.md``, "AH-DQN training speed")."""
    seed: int = 1
    """Seeds the network's initialisation, exploration, the replay sampling and the training
    episodes. Must be below 2**30: evaluation seeds start there, so the two never overlap."""
    device: str = "cpu"
    """Torch device for the agent's networks (``cpu`` or ``cuda``)."""
    threads: int = 1
    """Torch CPU threads. One leaves the other core of a small machine to the environment."""
    log_dir: str = "runs"
    """TensorBoard root; each run writes to ``log_dir/run_name``."""
    checkpoint_dir: str = "checkpoints"
    """Checkpoint root; each run's latest checkpoint is ``checkpoint_dir/run_name``."""
    run_name: str | None = None
    """Name of the run (default: ``ListeningSession-v0__<agent>__<world>__<seed>__<unix time>``)."""
    log_interval: int = 2_000
    """Agent steps between TensorBoard points of the training curves."""
    checkpoint_interval: int = 25_000
    """Agent steps between periodic checkpoints (0: only at the end and on Ctrl-C / SIGTERM)."""
    resume: str | None = field(default=None, metadata={"const": "latest"})
    """Continue an interrupted run from its checkpoint: a run name, a checkpoint folder, or (the
    flag alone) the most recent checkpoint under ``checkpoint_dir``. The run's saved configuration
    is used; only ``total_steps``, ``stop_at_step`` and ``device`` may be changed on resuming."""
    overwrite: bool = False
    """Start afresh under a ``run_name`` that an earlier run used, replacing its checkpoint (at this
    run's first checkpoint) and hiding its TensorBoard curves. Without it (or ``--resume``), an
    existing run name is refused, so that a finished run is never replaced by accident."""
    stop_at_step: int | None = None
    """Checkpoint and stop once this many agent steps are done (for time-sliced jobs: continue
    later with ``--resume``; the result equals one uninterrupted run)."""
    eval_episodes: int = 300
    """Held-out evaluation episodes per agent and world in the closing comparison (0 skips it)."""
    eval_seed: int = 0
    """First evaluation episode's seed, counted from 2**30 (so disjoint from training seeds)."""
    playlist_length: int = 20
    """Tracks per playlist (the MSSD's cap): episode length cap and history size."""
    pool_size: int = 100
    """Candidate tracks per session (M), from the world's ANN index."""
    progress: bool = True
    """Show a tqdm progress bar."""
    ahdqn: AHDQNConfig = field(default_factory=AHDQNConfig)
    """Action-Head DQN hyperparameters (``--agent ahdqn``)."""
    sb3: SB3Config = field(default_factory=SB3Config)
    """stable-baselines3 hyperparameters (``--agent maskable_ppo|ppo|dqn``)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """How the training environments answer (``--env.responses``, ``--env.pessimism``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.seed < TRAIN_SEED_LIMIT:
            raise ValueError(f"seed must lie in [0, 2**30) (evaluation seeds start at 2**30), got {self.seed}")
        if self.seed + self.num_envs > TRAIN_SEED_LIMIT:
            raise ValueError("seed + num_envs must stay below 2**30 (sub-environment i is seeded seed + i)")
        for name in ("total_steps", "num_envs", "playlist_length", "pool_size", "log_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.overwrite and self.resume is not None:
            raise ValueError("--overwrite starts a run afresh and --resume continues one: give only one of them")
        if self.checkpoint_interval < 0 or self.eval_episodes < 0:
            raise ValueError("checkpoint_interval and eval_episodes must be >= 0")
        if self.ahdqn.n_step < 1:
            raise ValueError(f"ahdqn.n_step must be >= 1, got {self.ahdqn.n_step}")
        if self.ahdqn.response_head and not self.ahdqn.model_features:
            raise ValueError("ahdqn.response_head needs ahdqn.model_features (add --no-ahdqn.response-head)")
        for name in ("selection_interval", "selection_episodes"):
            if getattr(self.ahdqn, name) < 0:
                raise ValueError(f"ahdqn.{name} must be >= 0, got {getattr(self.ahdqn, name)}")
        fraction = self.ahdqn.demonstration_fraction
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"ahdqn.demonstration_fraction must lie in [0, 1], got {fraction}")
        if not 0.0 < self.ahdqn.tau <= 1.0:
            raise ValueError(f"ahdqn.tau must lie in (0, 1], got {self.ahdqn.tau}")
        check_weight("env.pessimism", self.env.pessimism)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (read from its source), by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (e.g. a frozen app): flags still work, undocumented
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One flag per field of the config tree ``cls`` on ``parser``: ``--<prefix><field>`` (nested configs
    as ``<name>.``, underscores of the last name as hyphens), typed by the field's annotation (a flag
    pair for a bool, choices for a ``Literal``), documented by the field's docstring; an option not
    given is absent from the parsed namespace (its ``dest`` is ``<prefix><field>``), ready for
    :func:`apply_overrides`."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0]) if prefix else parser
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            add_config_arguments(parser, kind, f"{prefix}{item.name}.")
            continue
        flag = "--" + prefix + item.name.replace("_", "-")
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]
        text = docs.get(item.name, "").replace("%", "%%")
        options: dict[str, Any] = {
            "dest": prefix + item.name,
            "default": argparse.SUPPRESS,
            "metavar": item.name.upper(),
        }
        help_text = f"{text} (default: {default})"
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        optional = origin in (typing.Union, types.UnionType) and type(None) in args
        if optional:
            kind = next(arg for arg in args if arg is not type(None))
            origin, args = typing.get_origin(kind), typing.get_args(kind)
        if kind is bool:
            options.update(action=argparse.BooleanOptionalAction, metavar=None)
        elif origin is Literal:
            options.update(choices=list(args), type=type(args[0]), metavar=None)
        elif origin is tuple:
            options.update(nargs="+", type=args[0])
        else:
            options["type"] = kind
            if "const" in item.metadata:
                options.update(nargs="?", const=item.metadata["const"])
        group.add_argument(flag, help=help_text, **options)


def build_parser(cls: type = TrainConfig, prog: str = "train.py") -> argparse.ArgumentParser:
    """An ``argparse`` parser with one flag per field of the config tree ``cls``."""
    parser = argparse.ArgumentParser(prog=prog, description=(cls.__doc__ or "").strip())
    add_config_arguments(parser, cls)
    return parser


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` with dotted-name ``overrides`` (``{"ahdqn.n_step": 3}``) applied, validated anew."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for name, value in overrides.items():
        head, _, rest = name.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[name] = value
    for head, inner in nested.items():
        flat[head] = apply_overrides(getattr(config, head), inner)
    for name, value in list(flat.items()):
        if isinstance(value, list):
            flat[name] = tuple(value)
    return dataclasses.replace(config, **flat)


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Parse ``argv`` into a :class:`TrainConfig`; also return the options given explicitly.

    The explicit options matter on ``--resume``: the saved configuration is used, and these
    (where allowed) are applied on top of it.
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    try:
        return apply_overrides(TrainConfig(), given), given
    except ValueError as error:
        parser.error(str(error))
