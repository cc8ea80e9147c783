"""Sweeps: a grid of trials (configs x seeds x environments), each an ordinary resumable run.

A sweep spec is a TOML file:

    [base]                      # RunConfig fields shared by every trial
    steps = 100000
    [base.agent_options]
    hidden = [128, 128]

    [grid]                      # field -> values; the trials are the cartesian product
    env = ["CartPole-v1", "Acrobot-v1"]
    seed = [0, 1, 2]
    "agent_options.lr" = [0.5, 1.0]

Trial k runs in OUT/NAME (NAME from k and its grid values). Every trial config is validated
before any trial runs. Re-running the sweep skips finished trials (summary.json present and
config matching) and resumes unfinished ones from their checkpoints. OUT/sweep.json lists the
trials, their status and headline numbers; it is rewritten atomically after every trial.

Backends: "local" runs trials in worker processes (spawned: JAX does not survive fork);
"ray" runs each trial as a ray task (ray is an optional extra: pip install 'oakrl[ray]').
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oakrl.errors import ConfigError, Diverged
from oakrl.lab.config import checked, fields_from_dict, read_file
from oakrl.lab.cpu import limit_cpu_threads
from oakrl.lab.run import build, identity, prepare_out, write_json


def read_spec(path: str | Path) -> tuple[dict[str, Any], dict[str, list]]:
    data = read_file(path)
    unknown = sorted(set(data) - {"base", "grid"})
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; a sweep spec has [base] and [grid]")
    base, grid = data.get("base", {}), data.get("grid", {})
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{path}: [base] and [grid] must be tables")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key} must be a non-empty list of values, got {values!r}")
    return base, grid


def trials(path: str | Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, grid values, RunConfig kwargs) of every trial, validated."""
    base, grid = read_spec(path)
    base_kwargs = fields_from_dict(base, f"{path} [base]")
    names = list(grid)
    out = []
    for k, values in enumerate(itertools.product(*(grid[n] for n in names))):
        point = dict(zip(names, values, strict=True))
        kwargs = {**base_kwargs, "agent_options": dict(base_kwargs.get("agent_options", {}))}
        for name, value in point.items():
            if name.startswith("agent_options."):
                kwargs["agent_options"][name[len("agent_options.") :]] = value
            else:
                kwargs.update(fields_from_dict({name: value}, f"{path} [grid]"))
        label = ",".join(f"{n.replace('agent_options.', '')}={v}" for n, v in point.items())
        name = f"{k:04d}" + (f"_{re.sub(r'[^A-Za-z0-9_.=,+-]', '_', label)}" if label else "")
        where = f"{path} trial {name}"
        config = checked(kwargs, where)
        try:
            build(config)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        out.append((name, point, kwargs))
    return out


def run_trial(kwargs: dict[str, Any], out: str, plot: bool, cpu_threads: int | None = None) -> dict[str, Any]:
    """One trial in this process: {status, message, headline numbers}. Never raises.

    cpu_threads sizes XLA:CPU's pool (oakrl.lab.cpu) if JAX has not computed in this process yet.
    """
    from oakrl.lab.run import run

    try:
        limit_cpu_threads(cpu_threads)
        config = checked(kwargs)
        summary = run(config, out, plot=plot)
    except Diverged as e:
        return {"status": "diverged", "message": str(e)}
    except ConfigError as e:
        return {"status": "failed", "message": str(e)}
    except Exception as e:  # a trial's crash must not take the sweep down
        return {"status": "failed", "message": f"{type(e).__name__}: {e}"}
    return {
        "status": "complete",
        "final_return": summary["final_return"]["mean"],
        "average_reward": summary["average_reward"]["mean"],
        "steps_per_second": summary.get("steps_per_second"),
    }


def run_sweep(
    spec: str | Path,
    out: str | Path,
    backend: str = "local",
    workers: int = 1,
    plot: bool = False,
    log: Callable[[str], None] | None = None,
    cpu_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Runs (or completes) every trial of `spec` under `out`; returns one entry per trial.

    cpu_threads: XLA:CPU threads per trial (all usable CPUs when None). With the local backend
    each worker process applies it as it starts; `--workers 2 --cpu-threads 1` suits a 2-core
    machine. With ray it is also each task's CPU request.
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; valid: local, ray")
    limit_cpu_threads(cpu_threads)  # this process: before `build` below first computes
    todo = trials(spec)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    if any((root / name).exists() for name in ("config.json", "summary.json")):
        raise ConfigError(f"--out {out} holds a run or a study, not a sweep; choose another directory")
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for name, _point, kwargs in todo:
        config = checked(kwargs)
        handle, agent = build(config)
        trial_dir = root / name
        _, state = prepare_out(trial_dir, identity(config, handle, agent))  # refuses a foreign dir
        if state == "complete":
            summary = json.loads((trial_dir / "summary.json").read_text())
            results[name] = {
                "status": "skipped",
                "final_return": summary["final_return"]["mean"],
                "average_reward": summary["average_reward"]["mean"],
            }
        else:
            pending.append((name, kwargs))

    def record(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        if log is not None:
            log(f"{name}: {result['status']}" + (f" ({result['message']})" if "message" in result else ""))
        _write_index(root, spec, todo, results)

    _write_index(root, spec, todo, results)
    if backend == "ray":
        _run_ray(pending, root, plot, record, cpu_threads)
    elif workers == 1 or not pending:
        for name, kwargs in pending:
            record(name, run_trial(kwargs, str(root / name), plot, cpu_threads))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx) as pool:
            futures = {
                pool.submit(run_trial, kwargs, str(root / name), plot, cpu_threads): name
                for name, kwargs in pending
            }
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as e:  # a worker died (killed, out of memory)
                    result = {"status": "failed", "message": f"worker died: {type(e).__name__}: {e}"}
                record(futures[future], result)
    return [{"name": name, **point, **results[name]} for name, point, _ in todo]


def _write_index(root: Path, spec, todo, results) -> None:
    rows = []
    for name, point, _ in todo:
        rows.append({"name": name, "dir": name, "grid": point, **results.get(name, {"status": "pending"})})
    write_json(root / "sweep.json", {"spec": str(spec), "trials": rows})


def _run_ray(pending, root: Path, plot: bool, record, cpu_threads: int | None = None) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs ray: pip install 'oakrl[ray]'") from None
    if not pending:
        return
    if not ray.is_initialized():
        import warnings

        with warnings.catch_warnings():  # ray starts its processes by fork+exec: safe with JAX
            warnings.filterwarnings("ignore", message=".*os.fork", category=RuntimeWarning)
            ray.init(ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=cpu_threads or 1)(run_trial)
    refs = {
        remote.remote(kwargs, str((root / name).resolve()), plot, cpu_threads): name
        for name, kwargs in pending
    }
    left = list(refs)
    while left:
        ready, left = ray.wait(left, num_returns=1)
        try:
            result = ray.get(ready[0])
        except Exception as e:
            result = {"status": "failed", "message": f"ray task failed: {type(e).__name__}: {e}"}
        record(refs[ready[0]], result)
