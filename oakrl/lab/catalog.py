"""Every run and study under a folder, as one table; SQL over their episodes and diagnostics.

    oakrl runs runs/                                    # one row per run or study
    oakrl runs runs/ --where agent=stream-q --sort -final_return
    oakrl runs runs/ --sql "SELECT run, count(*) FROM episodes GROUP BY run"

A run is a directory with a config.json naming an env and an agent (finished once it has a
summary.json); a study is a directory whose summary.json names a "study" (its runs are listed
too, as runs of their own). Nothing is read but those JSON files, so listing is quick.

The SQL is DuckDB's (the `query` extra: pip install oakrl[query]) over three views: `runs` (this
table), `episodes` and `diagnostics` (every run's parquet table, all rows, with a `run` column
holding its path). DuckDB rather than pyarrow datasets: the question is SQL (joins, group by,
window functions over many runs), DuckDB reads the parquet files in place, lazily, and lines up
the diagnostics tables of different agents by column name (`union_by_name`), which a pyarrow
dataset refuses without a hand-made unified schema.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from oakrl.errors import ConfigError

COLUMNS = (
    "kind", "status", "env", "agent", "schedule", "steps", "seeds",
    "final_return", "average_reward", "steps_per_second", "date", "path",
)  # fmt: skip


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mean(v: Any) -> Any:
    return v.get("mean") if isinstance(v, dict) else v


def find_runs(root: str | Path) -> list[dict[str, Any]]:
    """One row (COLUMNS) per run or study under `root`, ordered by path."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    rows = []
    for config_path in sorted(root.rglob("config.json")):
        d = config_path.parent
        config, summary = _read(config_path), _read(d / "summary.json")
        if not isinstance(config, dict):
            continue
        summary = summary if isinstance(summary, dict) else {}
        stamp = (d / "summary.json") if summary else config_path
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp.stat().st_mtime))
        if "study" in summary or "command" in config and "agent" not in config:
            rows.append(
                {
                    "kind": "study",
                    "status": "finished" if summary else "unfinished",
                    "env": summary.get("study") or config.get("study"),
                    "date": date,
                    "path": str(d),
                }
            )
            continue
        if "env" not in config or "agent" not in config:
            continue
        schedule = config.get("schedule")
        rows.append(
            {
                "kind": "run",
                "status": "finished" if summary else "unfinished",
                "env": config["env"],
                "agent": config["agent"],
                "schedule": schedule.get("kind") if isinstance(schedule, dict) else schedule,
                "steps": config.get("steps"),
                "seeds": config.get("seeds"),
                "final_return": _mean(summary.get("final_return")),
                "average_reward": _mean(summary.get("average_reward")),
                "steps_per_second": summary.get("steps_per_second"),
                "date": date,
                "path": str(d),
            }
        )
    return [{c: row.get(c) for c in COLUMNS} for row in rows]


def select(
    rows: list[dict[str, Any]], where: list[str] = (), sort: str | None = None
) -> list[dict[str, Any]]:
    """Rows whose COLUMN equals VALUE for each "COLUMN=VALUE" (as text), sorted by a column
    ("-COLUMN": descending; empty values last)."""
    for cond in where:
        column, sep, value = cond.partition("=")
        if not sep or column not in COLUMNS:
            raise ConfigError(f"--where takes COLUMN=VALUE, COLUMN one of {', '.join(COLUMNS)}; got {cond!r}")
        rows = [r for r in rows if str(r[column]) == value]
    if sort:
        column = sort.lstrip("-")
        if column not in COLUMNS:
            valid = ", ".join(COLUMNS)
            raise ConfigError(f"--sort takes a column ({valid}), '-' first to reverse; got {sort!r}")
        present = [r for r in rows if r[column] is not None]
        present.sort(key=lambda r: r[column], reverse=sort.startswith("-"))
        rows = present + [r for r in rows if r[column] is None]
    return rows


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str] = COLUMNS) -> str:
    """Aligned plain-text columns (numbers rounded for reading)."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return str(v)

    table = [list(columns)] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table)
    return "\n".join(lines)


def query(root: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of a DuckDB query over `runs`, `episodes` and `diagnostics`."""
    try:
        import duckdb
    except ImportError:
        raise ConfigError("--sql needs DuckDB: pip install 'oakrl[query]'") from None
    import pyarrow as pa

    rows = find_runs(root)
    con = duckdb.connect()
    con.register("runs", pa.table({c: pa.array([r[c] for r in rows]) for c in COLUMNS}))
    for table in ("episodes", "diagnostics"):
        files = [str(Path(r["path"]) / f"{table}.parquet") for r in rows if r["kind"] == "run"]
        files = [f for f in files if Path(f).exists()]
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(
                f"CREATE VIEW {table} AS SELECT * EXCLUDE (filename), "
                f"regexp_replace(filename, '/[^/]*$', '') AS run "
                f"FROM read_parquet([{listing}], union_by_name = true, filename = true)"
            )
    try:
        result = con.execute(sql)
    except duckdb.Error as e:
        raise ConfigError(f"--sql: {' '.join(str(e).split())}") from None
    return [d[0] for d in result.description], result.fetchall()
