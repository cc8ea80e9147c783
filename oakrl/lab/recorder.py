"""What a run keeps on the host: episodes, diagnostics and agent records per chunk, and its summary.

The Recorder's whole state is a dict of arrays (`state` / `restore`), saved with every
checkpoint, so a resumed run's tables are the uninterrupted run's tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oakrl import __version__
from oakrl.lab.files import machine
from oakrl.lab.metrics import learner_agents, learner_options, learner_summary, summarize_episodes
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import ChunkRecord


class Recorder:
    """Collects chunk records on the host and turns them into tables.

    Its whole state is a dict of arrays (`state` / `restore`), saved with every checkpoint.
    """

    def __init__(self, seeds: int):
        self.seeds = seeds
        self.episodes: list[dict[str, np.ndarray]] = []  # per chunk: episode columns
        self.diag: list[dict[str, np.ndarray]] = []  # per chunk: diagnostics rows
        self.last_info: dict[str, np.ndarray] = {}
        self.reward_sum = np.zeros(seeds, np.float64)
        self.steps_done = 0
        self.records: list[dict[str, np.ndarray]] = []  # per chunk: the agent's own records

    def add_records(self, step: int, columns: dict[str, np.ndarray]) -> None:
        """An agent's per-chunk records {column: [S, K]} as long rows: seed, step, slot, ..."""
        first = np.asarray(next(iter(columns.values())))
        seeds, k = first.shape[0], int(np.prod(first.shape[1:]))
        rows = {
            "seed": np.repeat(np.arange(seeds, dtype=np.int32), k),
            "step": np.full(seeds * k, step, np.int64),
            "slot": np.tile(np.arange(k, dtype=np.int32), seeds),
        }
        rows.update({c: np.asarray(v).reshape(seeds * k) for c, v in columns.items()})
        self.records.append(rows)

    def records_table(self) -> dict[str, np.ndarray]:
        rows = self._cat(self.records, {})
        if len(self.records) > 1:
            self.records = [rows]
        return rows

    def __call__(self, record: ChunkRecord) -> None:
        self.episodes.append(
            {
                "seed": np.asarray(record.seed, np.int32),
                "step": np.asarray(record.step, np.int64),
                "return": np.asarray(record.ret, np.float32),
                "task": np.asarray(record.task, np.int32),
            }
        )
        keys = sorted(record.info)
        rows = {
            "seed": np.arange(self.seeds, dtype=np.int32),
            "step": np.full(self.seeds, record.end_step, np.int64),
        }
        for k in keys:
            rows[k] = np.asarray(record.info[k], np.float32).reshape(self.seeds)
        self.diag.append(rows)
        self.last_info = {k: np.asarray(record.info[k], np.float32).reshape(self.seeds) for k in keys}
        self.reward_sum = np.asarray(record.reward_sum, np.float64)
        self.steps_done = record.end_step

    @staticmethod
    def _cat(parts: list[dict[str, np.ndarray]], defaults: dict[str, type]) -> dict[str, np.ndarray]:
        names = list(parts[0]) if parts else list(defaults)
        return {
            k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, defaults.get(k, np.float32))
            for k in names
        }

    def columns(self) -> dict[str, np.ndarray]:
        cols = self._cat(
            self.episodes, {"seed": np.int32, "step": np.int64, "return": np.float32, "task": np.int32}
        )
        if len(self.episodes) > 1:  # keep memory flat: one array per column, not one per chunk
            self.episodes = [cols]
        return cols

    def diagnostics(self) -> dict[str, np.ndarray]:
        rows = self._cat(self.diag, {"seed": np.int32, "step": np.int64})
        if len(self.diag) > 1:
            self.diag = [rows]
        return rows

    def state(self) -> dict[str, np.ndarray]:
        out = {f"ep/{k}": v for k, v in self.columns().items()}
        out.update({f"diag/{k}": v for k, v in self.diagnostics().items()})
        out.update({f"info/{k}": v for k, v in self.last_info.items()})
        out.update({f"rec/{k}": v for k, v in self.records_table().items()})
        out["reward_sum"] = self.reward_sum
        out["steps_done"] = np.asarray(self.steps_done, np.int64)
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        self.episodes = [part("ep/")]
        self.diag = [part("diag/")]
        self.last_info = part("info/")
        self.records = [part("rec/")] if part("rec/") else []
        self.reward_sum = np.asarray(arrays["reward_sum"], np.float64)
        self.steps_done = int(arrays["steps_done"])


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summarize(
    spec: RunSpec, continuing: bool, rec: Recorder, compile_s: float, stream_s: float, steps_run: int
) -> dict[str, Any]:
    """summary.json: the headline numbers of a run (steps_run: the steps this process ran, per seed)."""
    columns = rec.columns()
    cfg = {"steps": spec.steps, "seeds": spec.seeds, "schedule": spec.to_json()["schedule"]}
    ep = summarize_episodes(columns, cfg)
    avg = rec.reward_sum / max(rec.steps_done, 1)
    last_info = rec.last_info
    summary = {
        "oakrl_version": __version__,
        "env": spec.env,
        "agent": spec.agent,
        "steps": spec.steps,
        "seeds": spec.seeds,
        "continuing": continuing,
        "wall_seconds": compile_s + stream_s,
        "compile_seconds": compile_s,
        "stream_seconds": stream_s,
        # None when this process ran no step (a resume from the final checkpoint): no figure
        # was measured, and 0.0 would read as a run that made no progress.
        "steps_per_second": steps_run * spec.seeds / max(stream_s, 1e-9) if steps_run else None,
        "final_return": ep["final_return"],
        "average_reward": {
            "mean": float(np.mean(avg)),
            "per_seed": [float(a) for a in avg],
        },
        "episodes": ep["episodes"],
        "diagnostics": {
            k: _finite_or_none(float(np.nanmean(v))) if np.isfinite(v).any() else None
            for k, v in last_info.items()
        },
        "machine": machine(),
    }
    if ep["tasks"] is not None:
        summary["tasks"] = ep["tasks"]
    config = spec.to_json()  # as config.json has it
    learners = learner_summary(rec.diagnostics(), spec.seeds, learner_agents(config), learner_options(config))
    if learners is not None:  # a multi-learner world: each learner's own reward
        summary["learners"] = learners
    return summary
