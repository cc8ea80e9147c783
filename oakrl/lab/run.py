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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from oakrl import __version__
from oakrl.agents import AGENTS, make_agent
from oakrl.errors import ConfigError, Diverged, Interrupted
from oakrl.lab.files import json_default, machine, write_json, write_table
from oakrl.lab.metrics import summarize_episodes, write_episodes
from oakrl.lab.stream import ChunkRecord, run_gym, run_jax

SCHEDULES = ("switch", "permute", "reward", "drift")
PRNGS = ("unsafe_rbg", "rbg", "threefry2x32")


def check_option(key: str, value: Any, where: str = "agent option") -> None:
    """Impossible values of the common agent options (ConfigError, one line)."""

    def bad(rule: str) -> ConfigError:
        return ConfigError(f"{where} {key} must be {rule}, got {value!r}")

    if isinstance(value, float) and not math.isfinite(value):
        raise bad("finite")
    if key in ("lr", "kappa", "kappa_value", "kappa_policy") and not value > 0:
        raise bad("> 0")
    if key in ("gamma", "lamda") and not 0 <= value <= 1:
        raise bad("in [0, 1]")
    if key in ("entropy",) and not value >= 0:
        raise bad(">= 0")
    if key in ("epsilon_start", "epsilon_end") and not 0 <= value <= 1:
        raise bad("in [0, 1]")
    if key in ("return_horizon", "exploration_steps") and not value >= 1:
        raise bad("a positive integer")
    if key == "sparsity" and not 0 <= value < 1:
        raise bad("in [0, 1)")
    if key == "hidden" and any(h <= 0 for h in value):
        raise ConfigError(f"{where} hidden takes positive widths like 128,128 (or linear), got {value!r}")
    if key == "optimizer":
        from oakrl.agents.common import OPTIMIZERS

        if value not in OPTIMIZERS:
            raise ConfigError(f"{where} optimizer must be one of {', '.join(OPTIMIZERS)}, got {value!r}")


def coerce_option(key: str, value: Any, default: Any, where: str = "agent option") -> Any:
    """A typed option value (from a config file) to the type of its default, or ConfigError."""
    kind = type(default).__name__
    ok = True
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value
        kind = "list of integers"
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, dict):
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        kind = "table"
    if not ok:
        raise ConfigError(f"{where} {key} must be a {kind} like {default!r}, got {value!r}")
    check_option(key, value, where)
    return value


def check_agent_options(agent: str, options: dict[str, Any], where: str = "agent option") -> dict[str, Any]:
    """Validates (and returns, typed) agent options against the agent's defaults."""
    defaults = AGENTS[agent].defaults
    typed = {}
    for key, value in options.items():
        if not isinstance(key, str) or key not in defaults:
            raise ConfigError(f"{agent} has no option {key!r}; valid: {', '.join(sorted(defaults))}")
        typed[key] = coerce_option(key, value, defaults[key], where)
    return typed


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
    # Steps between checkpoints (taken at the first chunk boundary past each multiple);
    # None: after every chunk; 0: only at the end and on SIGINT/SIGTERM. Does not change results.
    checkpoint_every: int | None = None
    # A commanded goal for goal-conditioned agents (planner), as written after --goal: "I=V,..."
    # or one value per observation entry; checked against the observation in `build`.
    goal: str | None = None

    def check(self) -> None:
        """Raises ConfigError (one line: what is wrong, what is valid) on bad values."""

        for name in ("env", "agent", "order", "prng"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        if self.schedule is not None and not isinstance(self.schedule, str):
            raise ConfigError(f"schedule must be a string ({', '.join(SCHEDULES)}), got {self.schedule!r}")
        if not isinstance(self.agent_options, dict):
            raise ConfigError(f"agent_options must be a table of agent options, got {self.agent_options!r}")
        ce = self.checkpoint_every
        if ce is not None and (not isinstance(ce, int) or isinstance(ce, bool) or ce < 0):
            raise ConfigError(
                f"checkpoint_every must be a non-negative integer (0: only at the end), got {ce!r}"
            )

        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        for name in ("steps", "seeds", "every", "tasks", "chunk", "window"):
            positive(name)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.agent not in AGENTS:
            raise ConfigError(f"unknown agent {self.agent!r}; valid: {', '.join(AGENTS)}")
        check_agent_options(self.agent, self.agent_options)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.order not in ("cyclic", "random"):
            raise ConfigError(f"order must be 'cyclic' or 'random', got {self.order!r}")
        if self.prng not in PRNGS:
            raise ConfigError(f"unknown prng {self.prng!r}; valid: {', '.join(PRNGS)}")
        if self.env.startswith("gym:") and self.schedule is not None:
            raise ConfigError("schedules need a JAX environment; gym: environments take none")
        if self.goal is not None:
            if not isinstance(self.goal, str):
                raise ConfigError(f"goal must be a string like '40=1', got {self.goal!r}")
            if "goal" not in AGENTS[self.agent].defaults:
                takes = [n for n, a in AGENTS.items() if "goal" in a.defaults]
                raise ConfigError(
                    f"--goal needs a goal-conditioned agent ({', '.join(takes)}), not {self.agent}"
                )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schedule"] = (
            None
            if self.schedule is None
            else {"kind": self.schedule, "every": self.every, "tasks": self.tasks, "order": self.order}
        )
        if self.goal is None:  # runs without a goal keep the config.json (and hash) they always had
            del d["goal"]
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
    options = check_agent_options(config.agent, config.agent_options)
    if config.agent == "stream-q" and "exploration_steps" not in options:
        # The paper's schedule: explore over the first 5% of the stream.
        options["exploration_steps"] = max(1, int(0.05 * config.steps))
    if config.goal is not None:
        from oakrl.plan.goal import parse_goal

        options["goal"] = parse_goal(config.goal, math.prod(handle.obs_spec.shape))
    elif "goal" in options:  # a goal table given as an agent option: its indices must fit too
        from oakrl.plan.goal import check_goal_table

        options["goal"] = check_goal_table(options["goal"], math.prod(handle.obs_spec.shape))
    agent = make_agent(config.agent, handle.action_spec, **options)
    # Agents check some options against the environment in `init` (e.g. continuous actions,
    # sizes): trace it abstractly now, so such an error comes before anything is written.
    jax.eval_shape(lambda k: agent.init(k, handle.obs_spec, handle.action_spec), jax.random.key(0))
    return handle, agent


def seed_keys(config: RunConfig) -> jax.Array:
    base = jax.random.key(config.seed, impl=config.prng)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(config.seeds))


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
    config: RunConfig, handle, rec: Recorder, compile_s: float, stream_s: float, steps_run: int | None = None
) -> dict[str, Any]:
    columns = rec.columns()
    cfg = {"steps": config.steps, "seeds": config.seeds, "schedule": config.to_json()["schedule"]}
    ep = summarize_episodes(columns, cfg)
    avg = rec.reward_sum / max(rec.steps_done, 1)
    last_info = rec.last_info
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
        "steps_per_second": (config.steps if steps_run is None else steps_run)
        * config.seeds
        / max(stream_s, 1e-9),
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
    return summary


def handle_continuing(handle) -> bool:
    return bool(getattr(handle, "continuing", False))


def identity(config: RunConfig, handle, agent) -> dict[str, Any]:
    """What config.json holds: the config, the oakrl version and the agent's full config."""
    d = {
        **config.to_json(),
        "oakrl_version": __version__,
        "continuing": handle_continuing(handle),
        "agent_config": agent.config,
    }
    return json.loads(json.dumps(d, default=json_default))


# Fields of config.json that may differ between the runs of one results directory.
FREE_FIELDS = ("checkpoint_every",)


def compat_hash(ident: dict[str, Any]) -> str:
    from oakrl.lab.checkpoint import config_hash

    return config_hash({k: v for k, v in ident.items() if k not in FREE_FIELDS})


def compare_config(stored: Any, ident: dict[str, Any], out: Any) -> None:
    """Refuses (one line naming the first differing field) a directory of another run."""
    if not isinstance(stored, dict):
        raise ConfigError(f"--out {out} already holds a run whose config.json is not a JSON object")
    version = stored.get("oakrl_version")
    if version is not None and version != __version__:
        raise ConfigError(
            f"--out {out} already holds a run of oakrl {version}, this is {__version__}; use another --out"
        )
    for key in [*ident, *(k for k in stored if k not in ident)]:
        if key in FREE_FIELDS:
            continue
        if key not in stored:
            raise ConfigError(
                f"--out {out} already holds a run with a different config: {key} is missing there"
            )
        if key not in ident:
            raise ConfigError(f"--out {out} already holds a run with a different config: unknown field {key}")
        a, b = stored[key], ident[key]
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                sub = next(k for k in [*b, *a] if a.get(k, _MISSING) != b.get(k, _MISSING))
                key, a, b = f"{key}.{sub}", a.get(sub, "unset"), b.get(sub, "unset")
            raise ConfigError(
                f"--out {out} already holds a run with a different config: {key} is {json.dumps(a)} there, "
                f"{json.dumps(b)} here; use another --out or the same settings"
            )


_MISSING = object()


def prepare_out(out: str | os.PathLike, ident: dict[str, Any] | None = None) -> tuple[Path, str] | Path:
    """Creates the results directory.

    Without `ident`: refuses one that already holds a run, returns the path.
    With `ident` (see `identity`): returns (path, state), state one of "fresh", "resume" (the
    directory holds an unfinished run of this config) or "complete" (a finished one); refuses
    a directory of another config or oakrl version. Nothing is written to a refused directory.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    holds = path.is_dir() and any((path / name).exists() for name in ("config.json", "summary.json"))
    if holds and ident is None:
        raise ConfigError(f"--out {out} already holds a run; choose another directory")
    state = "fresh"
    if holds:
        try:
            stored = json.loads((path / "config.json").read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"--out {out} already holds a run but no config.json; choose another directory"
            ) from None
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"--out {out} already holds a run with an unreadable config.json ({e})"
            ) from None
        compare_config(stored, ident, out)
        state = "complete" if (path / "summary.json").exists() else "resume"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {out}: {e.strerror}") from None
    return path if ident is None else (path, state)


def clean_temporaries(path: Path) -> None:
    """Removes half-written files a killed run left behind (hidden names from `tmp_path`)."""
    for p in path.iterdir():
        stem = p.name[1:].split(".", 1)[0]
        if (
            p.name.startswith(".")
            and p.is_file()
            and (stem in RESULT_STEMS or stem.startswith("checkpoint-"))
        ):
            p.unlink(missing_ok=True)


RESULT_STEMS = ("config", "summary", "episodes", "diagnostics", "curve", "checkpoint", "records")


class _Signals:
    """SIGINT/SIGTERM set a flag; the run checkpoints at the next chunk boundary and stops."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self.old: dict[int, Any] = {}

    def __enter__(self):
        import signal
        import threading

        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
            # A Ctrl-C that came before (while jax imported) and that Python swallowed: honour it.
            if getattr(self.old[signal.SIGINT], "received", None) is not None:
                self.received = signal.SIGINT
        return self

    def _handle(self, signum, frame) -> None:
        import signal

        if self.received is not None:  # a second signal: stop now
            signal.signal(signum, self.old.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


def _nonfinite(carry, seeds: int) -> tuple[int, str] | None:
    """(seed, leaf name) of the first non-finite value of the agent state, or None."""
    named, _ = jax.tree_util.tree_flatten_with_path(carry.agent)
    for kp, leaf in named:
        if not (hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact)):
            continue
        ok = np.isfinite(np.asarray(leaf)).reshape(seeds, -1).all(axis=1)
        if not ok.all():
            return int(np.argmin(ok)), "agent state " + jax.tree_util.keystr(kp)
    return None


def run(
    config: RunConfig,
    out: str | os.PathLike,
    progress: Callable[[int, np.ndarray | None], None] | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Runs `config`, writes the results directory `out`, returns the summary.

    progress(steps_done_per_seed, recent_returns) is called once compiled (the stream starts)
    and after every chunk.

    An `out` that holds an unfinished run of the same config is resumed from its last
    checkpoint, bit-identically; a finished one is left alone (its summary is returned); one
    of another config is refused. Raises Diverged when the agent state or the metrics turn
    non-finite (the last good checkpoint is kept) and Interrupted after SIGINT/SIGTERM (once
    the current chunk is checkpointed).
    """
    from oakrl.lab.checkpoint import load_checkpoint, save_checkpoint

    handle, agent = build(config)
    ident = identity(config, handle, agent)
    path, state = prepare_out(out, ident)
    if state == "complete":
        try:
            return json.loads((path / "summary.json").read_text())
        except (OSError, ValueError):
            state = "resume"  # a damaged summary: finish (re-write) the run from its checkpoint
    cfg_hash = compat_hash(ident)
    if state == "resume":
        from oakrl.lab.checkpoint import verify_checkpoint

        verify_checkpoint(path, cfg_hash)  # refuse a corrupt or foreign checkpoint before any write
    clean_temporaries(path)
    write_json(path / "config.json", ident)
    rec = Recorder(config.seeds)
    started = [False]
    start_step = [0]

    def on_chunk(record: ChunkRecord) -> None:
        if not started[0]:  # the start signal, no data
            started[0] = True
            start_step[0] = record.end_step
        else:
            rec(record)
            bad = _bad_metric(record)
            if bad is not None:
                raise _diverged(bad[0], record.end_step, bad[1], path)
        if progress is not None:
            progress(record.end_step, record.ret)

    last_saved = [0]

    def save(done: int, carry) -> None:
        # Metrics first, then the checkpoint: once a checkpoint exists, so do the tables (each
        # replaced atomically; a kill in between leaves them at `done`, the checkpoint one
        # boundary earlier, and resuming rewrites them identically).
        write_episodes(path / "episodes.parquet", rec.columns())
        write_table(path / "diagnostics.parquet", rec.diagnostics())
        if rec.records:
            write_table(path / "records.parquet", rec.records_table())
        save_checkpoint(path, done, carry, rec.state(), cfg_hash)
        last_saved[0] = done

    def restore(fresh):
        loaded = load_checkpoint(path, fresh, cfg_hash)
        if loaded is None:
            return 0, fresh
        step, carry, arrays = loaded
        rec.restore(arrays)
        last_saved[0] = step
        return step, carry

    keys = seed_keys(config)
    gym = config.env.startswith("gym:")
    # gymnasium environments cannot be checkpointed (their state is not ours): no handlers, so
    # SIGINT/SIGTERM stop such a run at once, as before.
    with _Signals(enabled=not gym) as signals:
        records = AGENTS[config.agent].records

        def on_boundary(done: int, carry) -> None:
            bad = _nonfinite(carry, config.seeds)
            if bad is not None:
                raise _diverged(bad[0], done, bad[1], path)
            if records is not None:
                rec.add_records(done, records(carry.agent))
            every = config.checkpoint_every
            due = every is None or (every > 0 and done - last_saved[0] >= every)
            if done < config.steps and (due or signals.received is not None):
                save(done, carry)
            if signals.received is not None and done < config.steps:
                raise Interrupted(signals.received, done, str(path))

        if gym:
            seeds = [config.seed * 10_000 + i for i in range(config.seeds)]
            final, compile_s, stream_s = run_gym(
                agent, handle, config.steps, keys, seeds, config.chunk, on_chunk
            )
        else:
            final, compile_s, stream_s = run_jax(
                agent,
                handle,
                config.steps,
                keys,
                config.chunk,
                config.window,
                on_chunk,
                restore=restore,
                on_boundary=on_boundary,
            )
            save(config.steps, final)

    columns = rec.columns()
    write_episodes(path / "episodes.parquet", columns)
    write_table(path / "diagnostics.parquet", rec.diagnostics())
    summary = summarize(config, handle, rec, compile_s, stream_s, config.steps - start_step[0])
    if start_step[0]:
        summary["resumed_from_step"] = start_step[0]
    if plot:
        from oakrl.report.plots import plot_run

        plot_run(
            {"config": {**config.to_json(), "continuing": handle_continuing(handle)}, "episodes": columns},
            path / "curve.png",
        )
    write_json(path / "summary.json", summary)  # last: its presence marks a finished run
    return summary


def _bad_metric(record: ChunkRecord) -> tuple[int, str] | None:
    bad = ~np.isfinite(np.asarray(record.ret))
    if bad.any():
        return int(record.seed[np.argmax(bad)]), "episode return"
    bad = ~np.isfinite(np.asarray(record.reward_sum))
    if bad.any():
        return int(np.argmax(bad)), "reward sum"
    return None


def _diverged(seed: int, step: int, quantity: str, path: Path) -> Diverged:
    from oakrl.lab.checkpoint import read_pointer

    try:
        meta = read_pointer(path)
    except ConfigError:
        meta = None
    kept = f"last good checkpoint: step {meta['step']}" if meta else "no checkpoint was written"
    return Diverged(f"diverged: seed {seed}, step {step}: {quantity} is not finite ({kept}, in {path})")
