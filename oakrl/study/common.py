"""What the studies share: running their RunSpecs, the methods compared, retention summaries,
results files.

A study is run specs plus an analysis: it builds `RunSpec`s, runs them with `run_plan` (the
lab's `execute`: vmapped seeds, the seeds' keys from `oakrl.lab.run.seed_keys`, progress), and
analyses the `RunResult`s in its own module.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan, RunResult

METHODS = ("backprop", "cbp", "redo", "shrink-perturb", "l2-init")


def run_plan(name: str, plan: RunPlan, progress: Callable[[str, int], None] | None = None) -> RunResult:
    """Executes one run of a study; progress(name, steps done per seed) once compiled and per chunk."""
    from oakrl.lab.run import ChunkDone, Started, execute

    def on_event(event) -> None:
        if progress is not None and isinstance(event, Started | ChunkDone):
            progress(name, event.step)

    return execute(plan, on_event)


def timing(result: RunResult) -> dict[str, float]:
    """A run's timing as the studies' summary.json records it (from the lab's summary)."""
    s = result.summary
    return {
        "compile_seconds": s["compile_seconds"],
        "stream_seconds": s["stream_seconds"],
        "agent_steps_per_second": s["steps_per_second"],
    }


def per_chunk(diagnostics: dict[str, np.ndarray], seeds: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A run's diagnostics table -> (chunk end steps [C], {diagnostic: [S, C] chunk means})."""
    step, seed = np.asarray(diagnostics["step"]), np.asarray(diagnostics["seed"])
    ends = np.unique(step)
    out = {}
    for name, v in diagnostics.items():
        if name in ("seed", "step"):
            continue
        grid = np.full((seeds, ends.size), np.nan, np.asarray(v).dtype)
        grid[seed, np.searchsorted(ends, step)] = v
        out[name] = grid
    return ends, out


def parse_widths(text: str, allow_linear: bool = False, flag: str = "--hidden") -> tuple[int, ...]:
    """Hidden widths from the command line ("64,64"; "linear": none, where allowed)."""
    if allow_linear and text.strip().lower() == "linear":
        return ()
    valid = "comma-separated widths like 64,64" + (" or linear" if allow_linear else "")
    try:
        widths = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ConfigError(f"{flag} takes {valid}, got {text!r}") from None
    if not widths or any(w <= 0 for w in widths):
        raise ConfigError(f"{flag} takes positive {valid}, got {text!r}")
    return widths


def echo_methods(summary: dict[str, Any], echo: Callable[[str], None]) -> None:
    """One line per method of a plasticity study: early, late, retention."""
    for name, m in summary["methods"].items():
        ret = m["retention"]
        echo(
            f"{name:>15}  early {m['early']:.3f}  late {m['late']:.3f} (sd {m['late_spread']:.3f})  "
            f"retention {ret if ret is None else round(ret, 3)}"
        )


def save_study_figure(fig, path: Path, command: str) -> None:
    """The command that made it along the bottom, then an atomic save (no half-written file)."""
    from oakrl.io import save_figure

    fig.text(0.01, 0.005, command, fontsize=6, family="monospace")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save_figure(fig, path, dpi=110)


def parse_methods(text: str | None) -> tuple[str, ...]:
    if not text:
        return METHODS
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise ConfigError(f"unknown method {bad[0] if bad else text!r}; valid: {', '.join(METHODS)}")
    return names


def retention_summary(
    per_task: np.ndarray, methods: tuple[str, ...], frac: float = 0.1, window: int | None = None
) -> dict[str, Any]:
    """per_task [M, S, T] performance (higher is better) -> the `methods` map of summary.json.

    early: mean over the first `frac` of tasks, late: over the last; retention = late / early
    (of the seed means; per seed as well). `window` (tasks) overrides `frac`.
    """
    m, s, t = per_task.shape
    k = window or max(1, int(round(frac * t)))
    early = per_task[:, :, :k].mean(axis=2)  # [M, S]
    late = per_task[:, :, -k:].mean(axis=2)
    out = {}
    for i, name in enumerate(methods):
        e, la = early[i], late[i]
        ret = la / np.where(e == 0, np.nan, e)
        out[name] = {
            "early": float(e.mean()),
            "late": float(la.mean()),
            "retention": float(la.mean() / e.mean()) if e.mean() != 0 else None,
            "late_spread": float(la.std(ddof=1)) if s > 1 else 0.0,
            "per_seed": {
                "early": [float(x) for x in e],
                "late": [float(x) for x in la],
                "retention": [float(x) for x in ret],
            },
        }
    return {"tasks_per_window": k, "methods": out}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["oakrl", *sys.argv[1:]]) if sys.argv else ""


def start_study(out: str | os.PathLike, config: dict[str, Any]) -> tuple[Path, str]:
    """(results directory, command line): the directory made ready and its config.json written."""
    from oakrl.io import write_json

    path = prepare_out(out)
    cmd = command_line()
    write_json(path / "config.json", {**config, "command": cmd})
    return path, cmd


def step_progress(
    total: int, every: int, width: int, echo: Callable[[str], None]
) -> Callable[[str, int], None]:
    """A progress callback (name, steps done) that echoes once per `every` steps and at the end."""
    last: dict[str, int] = {}

    def progress(name: str, step: int) -> None:
        if last.get(name, -1) // every != step // every or step == total:
            echo(f"{name:>{width}}  step {step}/{total}")
        last[name] = step

    return progress


def prepare_out(out: str | os.PathLike) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    if (path / "summary.json").exists():
        raise ConfigError(f"--out {out} already holds results (summary.json); choose another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {out}: {e.strerror}") from None
    return path


def per_task_table(values: dict[str, np.ndarray], methods: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{metric: [M, S, T]} -> long columns method, seed, task, metric..."""
    first = next(iter(values.values()))
    m, s, t = first.shape
    mi, si, ti = np.meshgrid(np.arange(m), np.arange(s), np.arange(t), indexing="ij")
    cols: dict[str, np.ndarray] = {
        "method": np.array(methods)[mi.ravel()],
        "seed": si.ravel().astype(np.int32),
        "task": ti.ravel().astype(np.int32),
    }
    for k, v in values.items():
        cols[k] = np.asarray(v, np.float32).ravel()
    return cols


def plot_per_task(
    path: Path,
    values: dict[str, np.ndarray],
    methods: tuple[str, ...],
    title: str,
    command: str,
    smooth: int = 1,
    log_y: tuple[str, ...] = (),
) -> None:
    """One panel per metric: per-task mean over seeds (shaded: +- one standard error).

    Panels named in `log_y` get a log y axis (values spanning an order of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 3.8), squeeze=False)
    for ax, (name, v) in zip(axes[0], values.items(), strict=True):
        for i, method in enumerate(methods):
            x = np.asarray(v[i], np.float64)  # [S, T]
            if smooth > 1:
                kernel = np.ones(smooth) / smooth
                x = np.stack([np.convolve(row, kernel, mode="valid") for row in x])
            mean = x.mean(0)
            se = x.std(0, ddof=1) / np.sqrt(x.shape[0]) if x.shape[0] > 1 else np.zeros_like(mean)
            t = np.arange(len(mean)) + (smooth - 1) / 2 + 1
            ax.plot(t, mean, label=method, lw=1.2)
            ax.fill_between(t, mean - se, mean + se, alpha=0.2)
        ax.set_xlabel("task")
        ax.set_ylabel(name)
        if name in log_y and np.any(np.asarray(v, np.float64) > 0):  # log of nothing positive warns
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_study_figure(fig, path, command)
    plt.close(fig)
