"""Run directories read back: one run in memory (`RunData`), loaded and checked.

A run directory holds ``config.json`` (what was run), ``episodes.parquet`` (one row per
finished episode, see :mod:`oakrl.lab.metrics`), ``summary.json`` (the lab's summary; optional
here, so an unfinished run can still be looked at), ``curve.png`` and, for agents that record
their own tables (oak's options), ``records.parquet``. The figures (plots.py) and the tables
(report.py) both start from here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.lab import tables

_REQUIRED_CONFIG = ("env", "agent", "steps", "seeds")
_REQUIRED_COLUMNS = ("seed", "step", "return")


@dataclass
class RunData:
    """One run in memory.

    ``config``: the parsed ``config.json``; ``episodes``: ``{column: (n,) array}`` as
    :func:`oakrl.lab.tables.read_episodes` returns it; ``summary``: the parsed
    ``summary.json`` (empty when there is none); ``path``: the run directory, if any.
    """

    config: dict[str, Any]
    episodes: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)  # diagnostics.parquet, if any


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Load and check a run directory; a :class:`ConfigError` names the dir and what is wrong."""
    d = Path(run_dir)
    if not d.is_dir():
        what = "a file, not a directory" if d.exists() else "no such directory"
        raise ConfigError(f"run dir {run_dir}: {what}")
    config = _read_json(d, "config.json", required=True)
    missing = [k for k in _REQUIRED_CONFIG if k not in config]
    if missing:
        raise ConfigError(f"run dir {run_dir}: config.json lacks {', '.join(missing)}")
    try:
        seeds, steps = int(config["seeds"]), int(config["steps"])
    except (TypeError, ValueError):
        raise ConfigError(f"run dir {run_dir}: config.json seeds and steps must be integers") from None
    if seeds < 1 or steps < 1:
        raise ConfigError(f"run dir {run_dir}: config.json seeds and steps must be >= 1")
    schedule = config.get("schedule")
    if schedule is not None and not (isinstance(schedule, dict) and {"every", "tasks"} <= schedule.keys()):
        raise ConfigError(f"run dir {run_dir}: config.json schedule lacks every/tasks")
    summary = _read_json(d, "summary.json", required=False)
    episodes = _read_episodes(d)
    seed = episodes["seed"]
    if seed.size and (seed.min() < 0 or seed.max() >= seeds):
        raise ConfigError(
            f"run dir {run_dir}: episodes.parquet has seed ids {seed.min()}..{seed.max()} "
            f"but config.json says seeds={seeds}"
        )
    diagnostics = _read_diagnostics(d)
    return RunData(config, episodes, summary, str(run_dir), diagnostics)


def _read_diagnostics(d: Path) -> dict[str, np.ndarray]:
    """diagnostics.parquet's columns ({} when absent or unreadable: only some figures use it)."""
    p = d / "diagnostics.parquet"
    if not p.is_file():
        return {}
    try:
        return tables.read_table(p)
    except Exception:  # a damaged optional table must not stop a report of the episodes
        return {}


def _read_json(d: Path, name: str, required: bool) -> dict[str, Any]:
    p = d / name
    if not p.is_file():
        if required:
            raise ConfigError(f"run dir {d}: {name} is missing")
        return {}
    try:
        value = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"run dir {d}: {name} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"run dir {d}: {name} is not a JSON object")
    return value


def _read_episodes(d: Path) -> dict[str, np.ndarray]:
    p = d / "episodes.parquet"
    if not p.is_file():
        raise ConfigError(f"run dir {d}: episodes.parquet is missing")
    try:
        episodes = tables.read_episodes(p)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise ConfigError(f"run dir {d}: episodes.parquet is unreadable ({e})") from None
    missing = [c for c in _REQUIRED_COLUMNS if c not in episodes]
    if missing:
        raise ConfigError(f"run dir {d}: episodes.parquet lacks column(s) {', '.join(missing)}")
    return episodes


def read_records(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The agent's own per-chunk records (records.parquet, e.g. oak's options), {} if none."""
    p = Path(run_dir) / "records.parquet"
    if not p.is_file():
        return {}
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise ConfigError(f"run dir {run_dir}: records.parquet is unreadable ({e})") from None
    return {c: table.column(c).to_numpy() for c in table.column_names}
