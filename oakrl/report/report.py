"""The logic of ``oakrl report``: load run directories, re-plot them, tabulate them.

Run directories are read by runs.py (`RunData`, `load_run`, `read_records`, re-exported here)
and drawn by plots.py; this module makes the text tables and the command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.lab import metrics
from oakrl.report.runs import RunData, load_run, read_records

__all__ = ["RunData", "load_run", "options_table", "read_records", "report", "runs_table", "tasks_table"]


# --------------------------------------------------------------------------------------------
# the table


def _summary_mean(summary: dict[str, Any], key: str) -> float | None:
    """``summary[key]`` as a number: either the number itself or its ``"mean"`` entry."""
    v = summary.get(key)
    if isinstance(v, dict):
        v = v.get("mean")
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _final_return(run: RunData) -> float | None:
    v = _summary_mean(run.summary, "final_return")
    if v is None:  # no summary yet (unfinished run): compute it from the episodes
        e, c = run.episodes, run.config
        v = metrics.final_return(e["seed"], e["step"], e["return"], int(c["seeds"]), int(c["steps"]))["mean"]
    return v


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool | str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: text columns left-aligned, number columns right-aligned."""
    cells = [list(header)] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(not isinstance(row[i], str) for row in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def runs_table(runs: Sequence[RunData]) -> str:
    """One row per run: dir, env, agent, seeds, steps, final return, average reward, steps/s.

    Final return and average reward are the means over seeds from ``summary.json`` (final
    return computed from the episodes when there is no summary); ``-`` where unknown.
    """
    header = ["dir", "env", "agent", "seeds", "steps", "final_return", "avg_reward", "steps/s"]
    rows = [
        [
            run.path or "-",
            str(run.config["env"]),
            str(run.config["agent"]),
            int(run.config["seeds"]),
            int(run.config["steps"]),
            _final_return(run),
            _summary_mean(run.summary, "average_reward"),
            _summary_mean(run.summary, "steps_per_second"),
        ]
        for run in runs
    ]
    return _table(header, rows)


def learners_table(run: RunData) -> str | None:
    """Per learner of a multi-learner run: its agent, lifetime average reward per step and the
    last chunk's reward rate (means over seeds, from diagnostics.parquet), or None."""
    agents = metrics.learner_agents(run.config)
    options = metrics.learner_options(run.config)
    rows = metrics.learner_summary(run.diagnostics, int(run.config["seeds"]), agents, options)
    if rows is None:
        return None
    header = ["learner", "agent", "avg_reward", "final_rate"]

    def label(r: dict) -> str:
        opts = " ".join(f"{k}={v}" for k, v in r.get("options", {}).items())
        return f"{r['agent']} ({opts})" if opts else str(r["agent"])

    body = [
        [r["learner"], label(r), r["average_reward"]["mean"], r["final_reward_rate"]["mean"]] for r in rows
    ]
    return _table(header, body)


def tasks_table(run: RunData) -> str | None:
    """Per-task metrics of a scheduled run (recomputed from its episodes), or None."""
    schedule = run.config.get("schedule")
    if not schedule:
        return None
    e, c = run.episodes, run.config
    per_task = metrics.task_metrics(
        e["seed"],
        e["step"],
        e["return"],
        e["task"],
        int(c["seeds"]),
        int(c["steps"]),
        int(schedule["every"]),
        int(schedule["tasks"]),
    )
    header = ["task", "visits", "final_return", "forgetting", "plasticity"]
    rows = [
        [t["task"], t["visits"], t["final_return"]["mean"], t["forgetting"]["mean"], t["plasticity"]["mean"]]
        for t in per_task
    ]
    return _table(header, rows)


def options_table(records: dict[str, np.ndarray]) -> str | None:
    """The options alive at the end of an oak run, per seed and slot, with how many features
    each slot has held over the lifetime as the per-chunk snapshots saw them (a lower bound
    when options are replaced more often than chunks end), and, for a learned code, its unit's
    usage and error. None for runs without them."""
    if not records or "feature" not in records or not len(records["step"]):
        return None
    seed, slot, step = records["seed"], records["slot"], records["step"]
    last = step == step.max()
    header = [
        "seed",
        "slot",
        "feature",
        "age",
        "usage",
        "utility",
        "duration",
        "model_error",
        "calls",
        "features_held",
    ]
    # oak features=code: the feature is a code unit; how often it is the active unit and how far
    # the inputs it wins lie from its prototype (0: it codes one observation exactly).
    units = [c for c in ("unit_usage", "unit_error") if c in records]
    header += units
    rows = []
    for i in np.flatnonzero(last):
        mine = (seed == seed[i]) & (slot == slot[i])
        held = len(np.unique(records["feature"][mine]))
        rows.append(
            [
                int(seed[i]),
                int(slot[i]),
                int(records["feature"][i]),
                int(records["age"][i]),
                float(records["usage"][i]),
                float(records["utility"][i]),
                float(records["duration"][i]),
                float(records["model_error"][i]),
                int(records["calls"][i]),
                held,
                *(float(records[c][i]) for c in units),
            ]
        )
    return _table(header, rows)


def code_cells_table(run_dir: str | Path, records: dict[str, np.ndarray]) -> str | None:
    """oak features=code on a world with a table of its cells' observations (CodedGrid-v0's
    `code`, seen through each task's permutation under `permute`): for each option alive at the
    end, the cell (and task) whose observation lies nearest its unit's prototype, that squared
    distance (0: the unit is exactly that cell's code), and how many cells of that task the unit
    codes (wins among the live units; 1: it stands for one state; 0 for a unit never seeded, an
    option whose first, random feature no input has reached yet). Read from the run's final
    checkpoint. None for other runs (and for unfinished ones: no final state)."""
    if not records or "unit_usage" not in records:
        return None
    from oakrl.lab.parse import spec_of_run
    from oakrl.lab.run import final_state, make_handle, prepare

    spec = spec_of_run(run_dir).replace(out=str(run_dir))
    handle = make_handle(spec)
    env = handle.env
    while env is not None and not hasattr(env, "code"):
        env = getattr(env, "env", None)
    if env is None or not (Path(run_dir) / "summary.json").is_file():
        return None
    cells = np.asarray(env.code, np.float32)  # [C, D]
    perms = getattr(handle.params, "perms", None)
    views = cells[None] if perms is None else cells[:, np.asarray(perms)].transpose(1, 0, 2)  # [T, C, D]
    code = final_state(prepare(spec)).agent.code
    feature = np.asarray(records["feature"])
    last = records["step"] == records["step"].max()
    header = ["seed", "slot", "unit", "nearest cell (row, col)", "task", "sq_distance", "cells_coded"]
    rows = []
    for i in np.flatnonzero(last):
        seed, unit = int(records["seed"][i]), int(feature[i])
        protos, live = np.asarray(code.protos[seed]), np.asarray(code.live[seed])
        d = ((views - protos[unit]) ** 2).sum(-1)  # [T, C]
        task, cell = np.unravel_index(int(np.argmin(d)), d.shape)
        won = ((views[task][:, None, :] - protos[None]) ** 2).sum(-1)  # [C, K]
        won[:, ~live] = np.inf
        coded = int((won.argmin(1) == unit).sum()) if live[unit] else 0
        where = f"({cell // env.size}, {cell % env.size})" if hasattr(env, "size") else str(cell)
        if not live[unit]:  # never seeded: its prototype is the zero vector, no cell's code
            where, task, d[task, cell] = "(unit never seeded)", -1, np.nan
        rows.append([seed, int(records["slot"][i]), unit, where, int(task), float(d[task, cell]), coded])
    return _table(header, rows)


# --------------------------------------------------------------------------------------------
# the command


def report(dirs: list[str], out: str | None = None) -> str:
    """Report on one or several run directories; returns the text to print.

    One dir: re-plots its ``curve.png`` (or ``out``) and returns its row of the runs table,
    followed by the per-task table when it has a schedule. Several dirs: writes a comparison
    figure to ``out`` (default ``./compare.png``) and returns the runs table, one row per run.
    Every dir is loaded and checked before anything is written; a missing or invalid one
    raises :class:`ConfigError` naming it.
    """
    # Imported here, not above: matplotlib is only needed once there is something to plot.
    from oakrl.report import plots

    if not dirs:
        raise ConfigError("report: give at least one run directory")
    runs = [load_run(d) for d in dirs]
    if out is not None:
        _check_out(out)
    text = runs_table(runs)
    if len(runs) == 1:
        path = out or str(Path(dirs[0]) / "curve.png")
        plots.plot_run(runs[0], path)
        tasks = tasks_table(runs[0])
        if tasks is not None:
            text += "\n\n" + tasks
        learners = learners_table(runs[0])
        if learners is not None:
            text += "\n\nlearners (reward per step):\n" + learners
        records = read_records(dirs[0])
        options = options_table(records)
        if options is not None:
            fig = plots.plot_options(
                records,
                Path(path).with_name("options.png"),
                f"{runs[0].config['agent']} on {runs[0].config['env']}: options",
            )
            text += f"\n\noptions alive at step {int(records['step'].max()):,}:\n{options}\n\noptions: {fig}"
            cells = code_cells_table(dirs[0], records)
            if cells is not None:
                text += f"\n\nthe code unit behind each option, as a cell of the world:\n{cells}"
        return f"{text}\n\ncurve: {path}"
    path = out or "compare.png"
    plots.plot_compare(runs, path)
    return f"{text}\n\ncomparison: {path}"


def _check_out(out: str) -> None:
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise ConfigError(f"report: output {out} must end in .png, .pdf or .svg")
    parent = Path(out).parent
    if not parent.is_dir():
        raise ConfigError(f"report: output directory {parent} does not exist")
