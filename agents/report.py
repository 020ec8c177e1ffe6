"""How an evaluation is shown: tables (terminal, CSV, Markdown), PNG figures and TensorBoard.

Everything here reads :class:`~agents.metrics.AgentResult` lists and a
:class:`~agents.metrics.Fidelity`, so ``eval.py``, ``train.py``'s closing comparison and
``scripts/update_readme_results.py`` show results the same way.

The table has one row per agent and world, grouped by world; a cell of an agent that was not
evaluated in a world (one that reads the ground truth, in the learned world) reads ``n/a``, also in
the CSV (where pandas reads it back as missing). Its columns:

=====================  ==============================================================================
``agent``, ``world``   the agent's label; ``learned``, ``groundtruth`` or ``cross`` (the cross-fitted
                       world, :mod:`world_model.cross_fit`)
``return``             mean episode return and its 95% t interval (CSV: ``mean_return``,
                       ``return_ci_low``, ``return_ci_high``)
``vs <reference>``     mean paired per-episode return difference against the reference agent in the
                       same world, with its 95% t interval, and the verdict: ``better`` / ``worse``
                       when the interval excludes zero, else ``tie`` (CSV: ``diff_vs_reference``,
                       ``diff_ci_low``, ``diff_ci_high``, ``verdict``, and ``reference``)
``completion``         share of plays completed
``skip``               share of plays skipped
``length``             mean plays per session
``left``               share of sessions the listener left (ended by the session-end model)
``diversity``          mean distinct artists / tracks within sessions
``novelty``            mean popularity percentile of the plays (lower: more novel)
``coverage``           distinct tracks played / catalogue size
=====================  ==============================================================================

Figures: ``mean_return.png`` (mean return with its interval, per agent and world) and
``skip_by_position.png`` (skip rate at each session position, one line per agent, a panel per world).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: evaluation runs headless (CI, servers)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from agents.metrics import AgentResult, Fidelity
from musicenv.artifacts import write_atomic

NOT_AVAILABLE = "n/a"
WORLD_ORDER = ("learned", "groundtruth", "cross")
WORLD_TITLES = {"learned": "learned world", "groundtruth": "ground-truth world", "cross": "cross-fitted world"}
CSV_NAME = "results.csv"
MARKDOWN_NAME = "results.md"
FIDELITY_CSV_NAME = "fidelity.csv"

_METRIC_COLUMNS = (
    ("completion_rate", "completion", 3),
    ("skip_rate", "skip", 3),
    ("session_length", "length", 2),
    ("left_rate", "left", 3),
    ("artist_diversity", "diversity", 3),
    ("novelty", "novelty", 1),
    ("catalogue_coverage", "coverage", 3),
)
"""(field of EpisodeMetrics, short header, decimals) of the table's metric columns."""


def ordered(results: Sequence[AgentResult]) -> list[AgentResult]:
    """Results grouped by world (learned first), agents in their evaluation order within a world."""
    rank = {world: i for i, world in enumerate(WORLD_ORDER)}
    return sorted(results, key=lambda r: rank.get(r.world, len(rank)))


def verdict(result: AgentResult) -> str:
    """``better`` / ``worse`` than the reference when the paired interval excludes zero, else ``tie``."""
    diff = result.vs_reference
    if diff is None:
        return ""
    if not diff.excludes_zero:
        return "tie"
    return "better" if diff.mean > 0 else "worse"


def results_frame(results: Sequence[AgentResult], reference: str) -> pd.DataFrame:
    """The table as numbers: one row per agent and world, NaN where a cell is n/a (the CSV's content)."""
    rows = []
    for result in ordered(results):
        row: dict[str, object] = {"agent": result.agent, "world": result.world}
        metrics = result.metrics
        row["episodes"] = metrics.episodes if metrics else math.nan
        interval = metrics.mean_return if metrics else None
        row["mean_return"] = interval.mean if interval else math.nan
        row["return_ci_low"] = interval.low if interval else math.nan
        row["return_ci_high"] = interval.high if interval else math.nan
        diff = result.vs_reference
        row["reference"] = reference
        row["diff_vs_reference"] = diff.mean if diff else math.nan
        row["diff_ci_low"] = diff.low if diff else math.nan
        row["diff_ci_high"] = diff.high if diff else math.nan
        row["verdict"] = verdict(result)
        for field, _, _ in _METRIC_COLUMNS:
            row[field] = getattr(metrics, field) if metrics else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value: float, decimals: int) -> str:
    return NOT_AVAILABLE if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def _interval_text(mean: float, low: float, high: float, decimals: int = 3, signed: bool = False) -> str:
    if math.isnan(mean):
        return NOT_AVAILABLE
    sign = "+" if signed else ""
    if math.isnan(low):
        return f"{mean:{sign}.{decimals}f}"
    return f"{mean:{sign}.{decimals}f} [{low:{sign}.{decimals}f}, {high:{sign}.{decimals}f}]"


def display_rows(results: Sequence[AgentResult], reference: str) -> tuple[list[str], list[list[str]]]:
    """The table as text cells (headers, rows), as the terminal and Markdown show it."""
    headers = [
        "agent",
        "world",
        "return [95% CI]",
        f"vs {reference} [95% CI]",
        "",
        *(short for _, short, _ in _METRIC_COLUMNS),
    ]
    rows = []
    for result in ordered(results):
        metrics = result.metrics
        if metrics is None:
            cells = [NOT_AVAILABLE] * (len(headers) - 2)
        else:
            r = metrics.mean_return
            diff = result.vs_reference
            if result.agent == reference:
                versus = "(reference)"
            elif diff is None:
                versus = NOT_AVAILABLE
            else:
                versus = _interval_text(diff.mean, diff.low, diff.high, signed=True)
            cells = [
                _interval_text(r.mean, r.low, r.high),
                versus,
                verdict(result),
                *(_number(getattr(metrics, field), decimals) for field, _, decimals in _METRIC_COLUMNS),
            ]
        rows.append([result.agent, result.world, *cells])
    return headers, rows


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], labels: int | None = None) -> str:
    """A fixed-width text table: the first ``labels`` columns left-aligned, the numbers right-aligned.

    ``labels`` defaults to the leading columns up to ``world`` (or the first one).
    """
    labels = _label_columns(headers) if labels is None else labels
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).ljust(width) if i < labels else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * width for width in widths), *map(line, rows)])


def _label_columns(headers: Sequence[str]) -> int:
    return 2 if len(headers) > 1 and headers[1] == "world" else 1


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (label columns as :func:`text_table`, numbers right-aligned)."""
    labels = _label_columns(headers)
    align = ["---" if i < labels else "---:" for i in range(len(headers))]
    lines = [headers, align, *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", "\\|") for cell in line) + " |" for line in lines)


def has_fidelity(fidelity: Fidelity | None, cross_fidelity: Fidelity | None = None) -> bool:
    """Whether there is a fidelity table to show (a ground truth or a cross world, with agents in both worlds)."""
    return any(f is not None and f.agents for f in (fidelity, cross_fidelity))


def fidelity_frame(
    results: Sequence[AgentResult], fidelity: Fidelity | None, cross_fidelity: Fidelity | None = None
) -> pd.DataFrame:
    """The fidelity table as numbers (``fidelity.csv``): one row per agent evaluated in the learned world
    and the truth or the cross world; NaN where a cell is n/a.

    Columns: ``agent``, ``learned_return``, ``groundtruth_return``, ``relative_gap``
    (``(learned - truth) / truth``), ``cross_return`` and ``cross_world_gap`` (``(learned - cross) /
    cross``, the gap the cross world predicts); the cross columns only with a cross world.
    """
    means = {(r.agent, r.world): r.metrics.mean_return.mean for r in results if r.metrics is not None}
    gaps = {} if fidelity is None else dict(zip(fidelity.agents, fidelity.relative_gaps, strict=True))
    cross_gaps = (
        {} if cross_fidelity is None else dict(zip(cross_fidelity.agents, cross_fidelity.relative_gaps, strict=True))
    )
    agents = list(dict.fromkeys([*gaps, *cross_gaps]))
    frame = pd.DataFrame(
        {
            "agent": agents,
            "learned_return": [means.get((agent, "learned"), math.nan) for agent in agents],
            "groundtruth_return": [means.get((agent, "groundtruth"), math.nan) for agent in agents],
            "relative_gap": [gaps.get(agent, math.nan) for agent in agents],
        }
    )
    if cross_fidelity is not None:
        frame["cross_return"] = [means.get((agent, "cross"), math.nan) for agent in agents]
        frame["cross_world_gap"] = [cross_gaps.get(agent, math.nan) for agent in agents]
    return frame


def fidelity_rows(
    results: Sequence[AgentResult], fidelity: Fidelity | None, cross_fidelity: Fidelity | None = None
) -> tuple[list[str], list[list[str]]]:
    """Per agent evaluated in the learned world and another: the returns and relative gaps, as text cells
    (:func:`fidelity_frame`; the cross world's columns only with a cross world)."""
    frame = fidelity_frame(results, fidelity, cross_fidelity)
    headers = ["agent", "learned return", "ground-truth return", "relative gap"]
    formats = {"learned_return": "{:.3f}", "groundtruth_return": "{:.3f}", "relative_gap": "{:+.3f}"}
    if cross_fidelity is not None:
        headers += ["cross-world return", "predicted gap"]
        formats.update({"cross_return": "{:.3f}", "cross_world_gap": "{:+.3f}"})
    rows = [
        [
            row.agent,
            *(NOT_AVAILABLE if math.isnan(getattr(row, c)) else f.format(getattr(row, c)) for c, f in formats.items()),
        ]
        for row in frame.itertuples(index=False)
    ]
    return headers, rows


def fidelity_lines(fidelity: Fidelity | None, cross_fidelity: Fidelity | None = None) -> str:
    """The headline figures as ``name=value`` lines (the form benchmarks and CI grep for).

    The learned world's against the truth (``fidelity_kendall_tau``, ``max_relative_return_gap``)
    and, with a cross world, its verdict (``cross_world_kendall_tau``,
    ``cross_world_max_relative_return_gap``).
    """
    lines = []
    if fidelity is not None and fidelity.agents:
        lines += [
            f"fidelity_kendall_tau={fidelity.kendall_tau:.4f}",
            f"max_relative_return_gap={fidelity.max_relative_return_gap:.4f}",
        ]
    if cross_fidelity is not None and cross_fidelity.agents:
        lines += [
            f"cross_world_kendall_tau={cross_fidelity.kendall_tau:.4f}",
            f"cross_world_max_relative_return_gap={cross_fidelity.max_relative_return_gap:.4f}",
        ]
    return "\n".join(lines)


def markdown_report(
    results: Sequence[AgentResult],
    reference: str,
    fidelity: Fidelity | None,
    header: str = "",
    cross_fidelity: Fidelity | None = None,
) -> str:
    """The whole report as Markdown: the results table, the fidelity table and lines, a legend.

    ``header`` (e.g. the command and settings) goes first. The first line of the output after it
    is the results table, so :mod:`scripts.update_readme_results` can paste the file as it is.
    """
    parts = [header.strip()] if header.strip() else []
    parts.append(markdown_table(*display_rows(results, reference)))
    if has_fidelity(fidelity, cross_fidelity):
        parts.append(
            "Fidelity of the learned world (relative gap: (learned - truth) / truth; predicted gap: "
            "(learned - cross) / cross, the cross-fitted world's estimate of it):"
        )
        parts.append(markdown_table(*fidelity_rows(results, fidelity, cross_fidelity)))
        parts.append("```\n" + fidelity_lines(fidelity, cross_fidelity) + "\n```")
    parts.append(
        "Return: mean episode return with its 95% t interval. "
        f"vs {reference}: mean paired per-episode difference (same episode seeds: common random numbers) "
        "with its 95% t interval; better/worse when it excludes zero. "
        "completion/skip: shares of plays; length: plays per session; left: share of sessions the listener "
        "left; diversity: distinct artists / tracks per session; novelty: mean popularity percentile of the "
        "plays (lower is more novel); coverage: distinct tracks played / catalogue. n/a: not evaluated in "
        "that world (agents that read the ground truth run in the ground-truth world only). The cross-fitted "
        "world, when there is one, is a second world learned from sessions the first never saw, answering the same "
        "episodes."
    )
    notes = not_available_notes(results)
    if notes:
        parts.append("\n".join(f"- {line}" for line in notes))
    return "\n\n".join(parts) + "\n"


def not_available_notes(results: Sequence[AgentResult]) -> list[str]:
    """Why cells are n/a, one line per agent and reason (``agent (worlds): reason``)."""
    worlds_by_reason: dict[tuple[str, str], list[str]] = {}
    for result in results:
        if result.metrics is None and result.note:
            worlds_by_reason.setdefault((result.agent, result.note), []).append(result.world)
    return [f"{agent} ({', '.join(worlds)}): {note}" for (agent, note), worlds in worlds_by_reason.items()]


def write_tables(
    out: Path,
    results: Sequence[AgentResult],
    reference: str,
    fidelity: Fidelity | None,
    header: str = "",
    cross_fidelity: Fidelity | None = None,
) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and (with a ground truth or a cross world) ``fidelity.csv``
    (:func:`fidelity_frame`) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / CSV_NAME, "markdown": out / MARKDOWN_NAME}
    frame = results_frame(results, reference)
    write_atomic(paths["csv"], lambda tmp: frame.to_csv(tmp, index=False, na_rep=NOT_AVAILABLE))
    markdown = markdown_report(results, reference, fidelity, header, cross_fidelity)
    write_atomic(paths["markdown"], lambda tmp: tmp.write_text(markdown))
    if fidelity is not None or cross_fidelity is not None:
        paths["fidelity"] = out / FIDELITY_CSV_NAME
        gaps = fidelity_frame(results, fidelity, cross_fidelity)
        write_atomic(paths["fidelity"], lambda tmp: gaps.to_csv(tmp, index=False, na_rep=NOT_AVAILABLE))
    return paths


def _agents(results: Sequence[AgentResult]) -> list[str]:
    return list(dict.fromkeys(result.agent for result in results))


def _worlds(results: Sequence[AgentResult]) -> list[str]:
    present = {result.world for result in results}
    return [world for world in WORLD_ORDER if world in present]


def returns_figure(results: Sequence[AgentResult]) -> Figure:
    """Mean return with its 95% interval per agent (rows) and world (markers); n/a cells are absent."""
    agents, worlds = _agents(results), _worlds(results)
    by_key = {(r.agent, r.world): r.metrics for r in results if r.metrics is not None}
    figure, axes = plt.subplots(figsize=(7.5, 0.45 * len(agents) + 1.6))
    offsets = np.linspace(-0.15, 0.15, len(worlds)) if len(worlds) > 1 else np.zeros(1)
    for offset, world, marker in zip(offsets, worlds, ("o", "s", "^"), strict=False):
        points = [(i, by_key[agent, world].mean_return) for i, agent in enumerate(agents) if (agent, world) in by_key]
        if not points:
            continue
        y = np.array([i for i, _ in points]) + offset
        means = np.array([interval.mean for _, interval in points])
        half = np.nan_to_num(np.array([interval.half_width for _, interval in points]))
        axes.errorbar(means, y, xerr=half, fmt=marker, capsize=3, label=WORLD_TITLES.get(world, world))
    axes.set_yticks(range(len(agents)), agents)
    for i, agent in enumerate(agents):
        if not any((agent, world) in by_key for world in worlds):
            axes.annotate(NOT_AVAILABLE, (0.01, i), xycoords=("axes fraction", "data"), va="center", color="grey")
    axes.invert_yaxis()
    axes.set_xlabel("mean episode return (95% CI)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure


def skip_figure(results: Sequence[AgentResult]) -> Figure:
    """Skip rate at each session position, one line per agent (the same colour in every panel), one panel
    per world."""
    worlds, agents = _worlds(results), _agents(results)
    colours = {agent: plt.get_cmap("tab10" if len(agents) <= 10 else "tab20")(i) for i, agent in enumerate(agents)}
    figure, axes = plt.subplots(
        1,
        len(worlds),
        figsize=(5.0 * len(worlds) + 2.0, 4.0),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for panel, world in zip(axes[0], worlds, strict=True):
        for result in results:
            if result.world != world or result.metrics is None:
                continue
            curve = result.metrics.skip_rate_by_position
            positions = np.arange(1, len(curve) + 1)
            panel.plot(positions, curve, marker=".", color=colours[result.agent], label=result.agent)
        panel.set_title(WORLD_TITLES.get(world, world))
        panel.set_xlabel("session position")
        panel.xaxis.get_major_locator().set_params(integer=True)
        panel.grid(alpha=0.3)
    axes[0][0].set_ylabel("skip rate")
    handles = {
        label: handle for panel in axes[0] for handle, label in zip(*panel.get_legend_handles_labels(), strict=True)
    }
    shown = [agent for agent in agents if agent in handles]
    figure.legend([handles[agent] for agent in shown], shown, loc="outside right center", fontsize="small")
    return figure


def write_figures(out: Path, results: Sequence[AgentResult]) -> dict[str, Figure]:
    """Save ``mean_return.png`` and ``skip_by_position.png`` in ``out``; return the open figures by name."""
    out.mkdir(parents=True, exist_ok=True)
    figures = {"mean_return": returns_figure(results), "skip_by_position": skip_figure(results)}
    for name, figure in figures.items():
        write_atomic(out / f"{name}.png", lambda tmp, figure=figure: figure.savefig(tmp, dpi=120, format="png"))
    return figures


def _run_name(agent: str) -> str:
    # One TensorBoard run per agent: its label becomes a folder name.
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", agent)


def write_tensorboard(
    log_dir: Path,
    results: Sequence[AgentResult],
    fidelity: Fidelity | None,
    figures: dict[str, Figure],
    markdown: str,
    cross_fidelity: Fidelity | None = None,
) -> None:
    """The evaluation in TensorBoard, under ``log_dir``.

    One run per agent (``log_dir/<agent>``), so TensorBoard overlays the agents in each chart:
    ``<world>/mean_return``, ``<world>/return_ci_low`` / ``return_ci_high``, ``<world>/<metric>``
    for each table column, and ``<world>/skip_rate_by_position`` with the session position as
    the step. The root run holds the figures (images ``figures/<name>``), the fidelity scalars
    (``fidelity/kendall_tau``, ``fidelity/max_relative_return_gap``, ``fidelity/relative_gap/<agent>``;
    with a cross world the same under ``fidelity/cross_world/``, its predicted gaps) and the
    Markdown report as text (``results``). The figures are closed afterwards.
    """
    from torch.utils.tensorboard import SummaryWriter

    for agent in _agents(results):
        with SummaryWriter(str(log_dir / _run_name(agent))) as writer:
            for result in results:
                if result.agent != agent or result.metrics is None:
                    continue
                m, world = result.metrics, result.world
                writer.add_scalar(f"{world}/mean_return", m.mean_return.mean, 0)
                if not math.isnan(m.mean_return.low):
                    writer.add_scalar(f"{world}/return_ci_low", m.mean_return.low, 0)
                    writer.add_scalar(f"{world}/return_ci_high", m.mean_return.high, 0)
                if result.vs_reference is not None:
                    writer.add_scalar(f"{world}/diff_vs_reference", result.vs_reference.mean, 0)
                for field, _, _ in _METRIC_COLUMNS:
                    writer.add_scalar(f"{world}/{field}", getattr(m, field), 0)
                for position, rate in enumerate(m.skip_rate_by_position, start=1):
                    if not math.isnan(rate):
                        writer.add_scalar(f"{world}/skip_rate_by_position", rate, position)
    with SummaryWriter(str(log_dir)) as writer:
        for name, figure in figures.items():
            writer.add_figure(f"figures/{name}", figure, 0, close=True)
        for prefix, figures_of in (("fidelity", fidelity), ("fidelity/cross_world", cross_fidelity)):
            if figures_of is None or not figures_of.agents:
                continue
            writer.add_scalar(f"{prefix}/kendall_tau", figures_of.kendall_tau, 0)
            writer.add_scalar(f"{prefix}/max_relative_return_gap", figures_of.max_relative_return_gap, 0)
            for agent, gap in zip(figures_of.agents, figures_of.relative_gaps, strict=True):
                writer.add_scalar(f"{prefix}/relative_gap/{_run_name(agent)}", gap, 0)
        writer.add_text("results", markdown, 0)


def publish(
    out: Path,
    results: Sequence[AgentResult],
    reference: str,
    fidelity: Fidelity | None,
    header: str = "",
    tensorboard: bool = True,
    cross_fidelity: Fidelity | None = None,
) -> dict[str, Path]:
    """Write everything into ``out``: the tables, the PNG figures and (optionally) ``out/tensorboard``.

    Returns:
        The paths written, by kind (``csv``, ``markdown``, ``fidelity``, ``mean_return``,
        ``skip_by_position``, ``tensorboard``).
    """
    paths = write_tables(out, results, reference, fidelity, header, cross_fidelity)
    figures = write_figures(out, results)
    paths.update({name: out / f"{name}.png" for name in figures})
    if tensorboard:
        paths["tensorboard"] = out / "tensorboard"
        write_tensorboard(
            paths["tensorboard"], results, fidelity, figures, paths["markdown"].read_text(), cross_fidelity
        )
    else:
        for figure in figures.values():
            plt.close(figure)
    return paths
