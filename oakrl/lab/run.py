"""A run: one configuration, N steps x S seeds, written to a results directory.

run_dir/
  config.json          everything needed to reproduce the run
  summary.json         the headline numbers (see `summarize`)
  episodes.parquet     one row per finished episode: seed, step, return, task
  diagnostics.parquet  per chunk and seed: the mean of each agent diagnostic
  curve.png            return over the lifetime, mean and spread over seeds
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from oakrl import __version__
from oakrl.agents import AGENTS, make_agent
from oakrl.errors import ConfigError
from oakrl.lab.metrics import summarize_episodes, tmp_path, write_episodes
from oakrl.lab.stream import ChunkRecord, run_gym, run_jax

SCHEDULES = ("switch", "permute", "reward", "drift")
PRNGS = ("unsafe_rbg", "rbg", "threefry2x32")


@dataclass
class RunConfig:
    """Everything that defines a run. Validated by `check` before anything runs."""

    env: str = "CartPole-v1"
    agent: str = "stream-ac"
    steps: int = 100_000  # per seed
    seeds: int = 1
    seed: int = 0  # base seed: seed i of the run uses fold_in(key(seed), i)
    schedule: str | None = None  # switch | permute | reward | drift
    every: int = 50_000  # steps per task segment
    tasks: int = 2
    order: str = "cyclic"  # cyclic | random
    chunk: int = 10_000  # steps per compiled chunk (progress is reported between chunks)
    window: int = 1_000  # continuing worlds: steps per reported "episode"
    prng: str = "unsafe_rbg"  # jax.random implementation of the run's keys
    agent_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raises ConfigError (one line: what is wrong, what is valid) on bad values."""

        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        for name in ("steps", "seeds", "every", "tasks", "chunk", "window"):
            positive(name)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.agent not in AGENTS:
            raise ConfigError(f"unknown agent {self.agent!r}; valid: {', '.join(AGENTS)}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.order not in ("cyclic", "random"):
            raise ConfigError(f"order must be 'cyclic' or 'random', got {self.order!r}")
        if self.prng not in PRNGS:
            raise ConfigError(f"unknown prng {self.prng!r}; valid: {', '.join(PRNGS)}")
        if self.env.startswith("gym:") and self.schedule is not None:
            raise ConfigError("schedules need a JAX environment; gym: environments take none")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schedule"] = (
            None
            if self.schedule is None
            else {"kind": self.schedule, "every": self.every, "tasks": self.tasks, "order": self.order}
        )
        return d


def build(config: RunConfig):
    """The environment handle and the agent of a config (raises ConfigError on bad input)."""
    config.check()
    if config.env.startswith("gym:"):
        from oakrl.envs.gym_bridge import make_gym

        handle = make_gym(config.env[len("gym:") :])
    else:
        from oakrl.envs import make_env

        handle = make_env(
            config.env,
            schedule=config.schedule,
            every=config.every,
            tasks=config.tasks,
            order=config.order,
            seed=config.seed,
        )
    options = dict(config.agent_options)
    if config.agent == "stream-q" and "exploration_steps" not in options:
        # The paper's schedule: explore over the first 5% of the stream.
        options["exploration_steps"] = max(1, int(0.05 * config.steps))
    agent = make_agent(config.agent, handle.action_spec, **options)
    return handle, agent


def seed_keys(config: RunConfig) -> jax.Array:
    base = jax.random.key(config.seed, impl=config.prng)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(config.seeds))


class Recorder:
    """Collects chunk records on the host and turns them into tables."""

    def __init__(self, seeds: int):
        self.seeds = seeds
        self.episodes: list[ChunkRecord] = []
        self.reward_sum = np.zeros(seeds, np.float64)
        self.steps_done = 0

    def __call__(self, record: ChunkRecord) -> None:
        if record.end_step == 0:  # the start signal, no data
            return
        self.episodes.append(record)
        self.reward_sum = np.asarray(record.reward_sum, np.float64)
        self.steps_done = record.end_step

    def columns(self) -> dict[str, np.ndarray]:
        def cat(name, dtype):
            parts = [getattr(r, name) for r in self.episodes]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return {
            "seed": cat("seed", np.int32),
            "step": cat("step", np.int64),
            "return": cat("ret", np.float32),
            "task": cat("task", np.int32),
        }

    def diagnostics(self) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {"seed": [], "step": []}
        keys = sorted(self.episodes[0].info) if self.episodes else []
        for k in keys:
            rows[k] = []
        for r in self.episodes:
            rows["seed"].append(np.arange(self.seeds, dtype=np.int32))
            rows["step"].append(np.full(self.seeds, r.end_step, np.int64))
            for k in keys:
                rows[k].append(np.asarray(r.info[k], np.float32).reshape(self.seeds))
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in rows.items()}


def write_json(path: Path, data: Any) -> None:
    """Atomic: written to a temporary name, then renamed over the target."""
    tmp = tmp_path(path)
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


def write_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = tmp_path(path)
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summarize(config: RunConfig, handle, rec: Recorder, compile_s: float, stream_s: float) -> dict[str, Any]:
    columns = rec.columns()
    cfg = {"steps": config.steps, "seeds": config.seeds, "schedule": config.to_json()["schedule"]}
    ep = summarize_episodes(columns, cfg)
    avg = rec.reward_sum / max(rec.steps_done, 1)
    last_info = rec.episodes[-1].info if rec.episodes else {}
    summary = {
        "oakrl_version": __version__,
        "env": config.env,
        "agent": config.agent,
        "steps": config.steps,
        "seeds": config.seeds,
        "continuing": bool(handle_continuing(handle)),
        "wall_seconds": compile_s + stream_s,
        "compile_seconds": compile_s,
        "stream_seconds": stream_s,
        "steps_per_second": config.steps * config.seeds / max(stream_s, 1e-9),
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
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
        },
    }
    if ep["tasks"] is not None:
        summary["tasks"] = ep["tasks"]
    return summary


def handle_continuing(handle) -> bool:
    return bool(getattr(handle, "continuing", False))


def prepare_out(out: str | os.PathLike) -> Path:
    """Creates the results directory; refuses one that already holds a run."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    if path.is_dir() and any((path / name).exists() for name in ("config.json", "summary.json")):
        raise ConfigError(f"--out {out} already holds a run; choose another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {out}: {e.strerror}") from None
    return path


def run(
    config: RunConfig,
    out: str | os.PathLike,
    progress: Callable[[int, np.ndarray | None], None] | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Runs `config`, writes the results directory `out`, returns the summary.

    progress(steps_done_per_seed, recent_returns) is called after every chunk.
    """
    handle, agent = build(config)
    path = prepare_out(out)
    write_json(
        path / "config.json",
        {
            **config.to_json(),
            "oakrl_version": __version__,
            "continuing": handle_continuing(handle),
            "agent_config": agent.config,
        },
    )
    rec = Recorder(config.seeds)

    def on_chunk(record: ChunkRecord) -> None:
        rec(record)
        if progress is not None:
            progress(record.end_step, record.ret)

    keys = seed_keys(config)
    if config.env.startswith("gym:"):
        seeds = [config.seed * 10_000 + i for i in range(config.seeds)]
        _, compile_s, stream_s = run_gym(agent, handle, config.steps, keys, seeds, config.chunk, on_chunk)
    else:
        _, compile_s, stream_s = run_jax(
            agent, handle, config.steps, keys, config.chunk, config.window, on_chunk
        )

    columns = rec.columns()
    write_episodes(path / "episodes.parquet", columns)
    write_table(path / "diagnostics.parquet", rec.diagnostics())
    summary = summarize(config, handle, rec, compile_s, stream_s)
    write_json(path / "summary.json", summary)
    if plot:
        from oakrl.report.plots import plot_run

        plot_run(
            {"config": {**config.to_json(), "continuing": handle_continuing(handle)}, "episodes": columns},
            path / "curve.png",
        )
    return summary
