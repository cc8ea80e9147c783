"""Figures of a run's lifetime: the learning curve of one run, and several runs side by side.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
switch), so it is safe in scripts, tests and notebooks alike. Files are written atomically
(:func:`oakrl.io.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from oakrl.io import save_figure  # re-exported: study/common.py draws through it
from oakrl.lab import metrics
from oakrl.report.runs import RunData, load_run

RunLike = RunData | Mapping[str, Any] | str | os.PathLike

_DPI = 110
_SIZE = (8.0, 4.5)
_MAX_TASK_LABELS = 24  # beyond this many segments, labels would overlap: lines only
_MAX_TASK_LINES = 400  # beyond this many, switch lines become a grey wash: leave them out


def _as_run(run: RunLike) -> RunData:
    """A RunData from a run directory, a RunData, or a mapping with config/episodes[/summary]."""
    if isinstance(run, RunData):
        return run
    if isinstance(run, Mapping):
        episodes = {k: np.asarray(v) for k, v in run["episodes"].items()}
        episodes.setdefault("task", np.zeros_like(episodes["seed"]))
        return RunData(
            config=dict(run["config"]),
            episodes=episodes,
            summary=dict(run.get("summary") or {}),
            path=run.get("path"),
            diagnostics={k: np.asarray(v) for k, v in (run.get("diagnostics") or {}).items()},
        )
    return load_run(run)


def _curve(run: RunData, bins: int = 100) -> tuple[np.ndarray, ...]:
    e, c = run.episodes, run.config
    steps = int(c["steps"])
    return metrics.binned_curve(
        e["seed"], e["step"], e["return"], int(c["seeds"]), steps, bins=max(1, min(bins, steps))
    )


def _spread_name(seeds: int) -> str:
    return "25–75th percentile over seeds" if seeds >= 4 else "min–max over seeds"


def _segment_labels(run: RunData) -> list[int | None]:
    """Task of each schedule segment, where all seeds agree (None where they differ or no
    episode says)."""
    schedule, e = run.config["schedule"], run.episodes
    steps, every = int(run.config["steps"]), int(schedule["every"])
    per_seed = [
        metrics.segment_tasks(e["step"][e["seed"] == s], e["task"][e["seed"] == s], steps, every)
        for s in range(int(run.config["seeds"]))
    ]
    labels: list[int | None] = []
    for col in np.stack(per_seed, axis=1):
        known = col[col >= 0]
        agree = known.size and np.all(known == known[0])
        labels.append(int(known[0]) if agree else None)
    return labels


def _draw_schedule(ax: Any, run: RunData) -> None:
    """Task switches as vertical lines every ``every`` steps, labelled with the task."""
    schedule = run.config.get("schedule")
    if not schedule:
        return
    steps, every = int(run.config["steps"]), int(schedule["every"])
    n_seg = -(-steps // every)
    if n_seg - 1 > _MAX_TASK_LINES:
        return
    for i in range(1, n_seg):
        ax.axvline(i * every, color="0.55", lw=0.7, ls=":", zorder=0)
    if n_seg > _MAX_TASK_LABELS:
        return
    # x in data units, y in axes units: labels sit at the top of each segment.
    trans = ax.get_xaxis_transform()
    for i, task in enumerate(_segment_labels(run)):
        mid = (i * every + min((i + 1) * every, steps)) / 2
        ax.text(
            mid,
            0.98,
            "?" if task is None else f"task {task}",
            transform=trans,
            ha="center",
            va="top",
            fontsize=7,
            color="0.35",
        )


def _title(run: RunData) -> str:
    c = run.config
    seeds = int(c["seeds"])
    agent = c["agent"] if c["agent"] != "joint" else " + ".join(metrics.learner_agents(c))
    title = f"{c['env']} · {agent} · {seeds} seed{'s' if seeds != 1 else ''}"
    schedule = c.get("schedule")
    if schedule:
        title += (
            f" · {schedule['tasks']} tasks, switch every {int(schedule['every']):,} steps"
            f" ({schedule.get('order', 'cyclic')})"
        )
    return title


def _ylabel(runs: Sequence[RunData]) -> str:
    if all(r.config.get("continuing") for r in runs):
        return "return per reporting window"
    return "episode return"


def _new_axes() -> tuple[Figure, Any]:
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3, lw=0.5)
    ax.set_xlabel("agent steps (per seed)")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 1.5M: readable step counts
    return fig, ax


def _plot_curve(ax: Any, run: RunData, color: str, label: str, band_label: str | None = None) -> None:
    x, mean, lo, hi = _curve(run)
    ax.plot(x, mean, color=color, lw=1.6, label=label)
    if int(run.config["seeds"]) > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.22, lw=0, label=band_label)


def draw_learners(ax: Any, run: RunData) -> bool:
    """Each learner's reward per step over the lifetime (chunk means; line: mean over seeds,
    band: min–max), for a run of several learners in one world. False when there are none."""
    seeds = int(run.config["seeds"])
    rates = metrics.learner_rates(run.diagnostics, seeds)
    if not rates:
        return False
    agents = metrics.learner_agents(run.config)
    for i, (ends, rate) in rates.items():
        name = agents[i] if i < len(agents) else "?"
        color = f"C{(i + 1) % 10}"
        mean = np.nanmean(rate, axis=0)
        ax.plot(ends, mean, color=color, lw=1.4, marker=".", ms=3, label=f"learner {i}: {name}")
        if seeds > 1:
            lo, hi = np.nanmin(rate, axis=0), np.nanmax(rate, axis=0)
            ax.fill_between(ends, lo, hi, color=color, alpha=0.18, lw=0)
    ax.set_ylabel("reward per step\n(chunk mean)")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    return True


def plot_run(run: RunLike, path: str | os.PathLike) -> str:
    """The learning curve of one run over its lifetime, written to ``path`` (e.g. curve.png).

    x: agent steps per seed; y: return of the episodes ending there (binned, see
    :func:`oakrl.lab.metrics.binned_curve`). Line: mean over seeds; band: min–max over seeds
    (25–75th percentile with 4 seeds or more). Under a task schedule, dotted vertical lines mark
    the switches and each segment is labelled with its task. ``run``: a run directory, a
    :class:`RunData`, or a mapping with ``config`` and ``episodes``. Returns ``path``.
    """
    run = _as_run(run)
    fig, ax = _new_axes()
    if metrics.learner_rates(run.diagnostics, int(run.config["seeds"])):
        # several learners in one world: the joint curve above, each learner's reward below
        fig.set_size_inches(_SIZE[0], _SIZE[1] * 1.6)
        ax.remove()
        ax, lower = fig.subplots(2, 1, sharex=True)
        for a in (ax, lower):
            a.grid(True, alpha=0.3, lw=0.5)
        lower.set_xlabel("agent steps (per seed)")
        lower.xaxis.set_major_formatter(EngFormatter(sep=""))
        draw_learners(lower, run)
    seeds = int(run.config["seeds"])
    _plot_curve(
        ax, run, "C0", f"mean over {seeds} seed{'s' if seeds != 1 else ''}", band_label=_spread_name(seeds)
    )
    _draw_schedule(ax, run)
    if run.episodes["seed"].size == 0:
        ax.text(
            0.5,
            0.5,
            "no episode has finished yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    ax.set_xlim(0, int(run.config["steps"]))
    ax.set_ylabel(_ylabel([run]))
    ax.set_title(_title(run), fontsize=10)
    if seeds > 1:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    return save_figure(fig, path)


def short_labels(runs: Sequence[RunData]) -> list[str]:
    """Short distinct labels: the agent (if envs are all the same), the env (if agents are),
    else ``agent/env``; then the directory name where that is not enough, then ``#i``."""
    agents = [str(r.config["agent"]) for r in runs]
    envs = [str(r.config["env"]) for r in runs]
    if len(set(envs)) == 1 and len(set(agents)) > 1:
        labels = agents
    elif len(set(agents)) == 1 and len(set(envs)) > 1:
        labels = envs
    else:
        labels = [f"{a}/{e}" for a, e in zip(agents, envs, strict=True)]
    dirs = [Path(r.path).name if r.path else "" for r in runs]
    labels = [
        f"{lab} ({d})" if labels.count(lab) > 1 and d else lab for lab, d in zip(labels, dirs, strict=True)
    ]
    return [f"{lab} #{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def plot_compare(runs: Sequence[RunLike], path: str | os.PathLike) -> str:
    """Several runs' learning curves in one figure, one colour each, written to ``path``.

    Each run is drawn as in :func:`plot_run` (mean line, spread band), labelled by
    :func:`short_labels`. Task switches are marked when all runs share one schedule.
    Returns ``path``.
    """
    data = [_as_run(r) for r in runs]
    if not data:
        raise ValueError("plot_compare needs at least one run")
    fig, ax = _new_axes()
    for i, (run, label) in enumerate(zip(data, short_labels(data), strict=True)):
        seeds = int(run.config["seeds"])
        _plot_curve(ax, run, f"C{i % 10}", f"{label} ({seeds} seed{'s' if seeds != 1 else ''})")
    schedules = [r.config.get("schedule") for r in data]
    steps = {int(r.config["steps"]) for r in data}
    if schedules[0] and all(s == schedules[0] for s in schedules) and len(steps) == 1:
        _draw_schedule(ax, data[0])
    ax.set_xlim(0, max(steps))
    ax.set_ylabel(_ylabel(data))
    spread = {_spread_name(int(r.config["seeds"])) for r in data if int(r.config["seeds"]) > 1}
    title = f"{len(data)} runs"
    if spread:
        title += ": mean over seeds, band = " + " / ".join(sorted(spread))
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    return save_figure(fig, path)


def draw_options_over_time(ax: Any, records: Mapping[str, np.ndarray], seed: int = 0) -> None:
    """One row per option slot of an agent's per-chunk records (oak): its utility over time as
    colour, and the feature behind it written where it changes (a replacement)."""
    m = np.asarray(records["seed"]) == seed
    step, slot = np.asarray(records["step"])[m], np.asarray(records["slot"])[m]
    steps = np.unique(step)
    slots = int(slot.max()) + 1
    util = np.full((slots, steps.size), np.nan)
    feat = np.zeros((slots, steps.size), int)
    col = np.searchsorted(steps, step)
    util[slot, col] = np.asarray(records["utility"])[m]
    feat[slot, col] = np.asarray(records["feature"])[m]
    im = ax.imshow(
        util, aspect="auto", cmap="viridis", interpolation="nearest", extent=(0, steps[-1], slots - 0.5, -0.5)
    )
    width = steps[-1] / steps.size
    for k in range(slots):
        for i in range(steps.size):
            if i == 0 or feat[k, i] != feat[k, i - 1]:
                ax.text((i + 0.1) * width, k, str(feat[k, i]), fontsize=6, color="w", va="center")
    ax.set_xlabel("step")
    ax.set_ylabel("option slot")
    ax.set_title(
        f"seed {seed}: feature ({'code unit' if 'unit_usage' in records else 'obs index'}) behind each "
        "option, written at each replacement; colour: utility",
        fontsize=8,
    )
    ax.figure.colorbar(im, ax=ax, fraction=0.04)


def plot_options(records: Mapping[str, np.ndarray], path: str | os.PathLike, title: str = "") -> str:
    """options.png of a run whose agent records an option pool (records.parquet of oak):
    left, the options of seed 0 over the lifetime; right, usage, mean duration and model error
    of the pool over time (mean over slots and seeds)."""
    fig = Figure(figsize=(13, 4.2), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax1 = fig.add_subplot(1, 2, 1)
    draw_options_over_time(ax1, records, seed=0)
    ax2 = fig.add_subplot(1, 2, 2)
    step = np.asarray(records["step"])
    steps = np.unique(step)
    idx = np.searchsorted(steps, step)
    for name in ("usage", "utility", "duration", "model_error"):
        if name not in records:
            continue
        v = np.asarray(records[name], np.float64)
        mean = np.bincount(idx, weights=v, minlength=steps.size) / np.bincount(idx, minlength=steps.size)
        scale = np.nanmax(np.abs(mean)) or 1.0
        ax2.plot(steps, mean / scale, label=f"{name} (/ {scale:.3g})", lw=1.2)
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean over options and seeds, scaled")
    ax2.legend(fontsize=8)
    ax2.xaxis.set_major_formatter(EngFormatter(sep=""))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
