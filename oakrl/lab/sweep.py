"""Sweeps: a grid of trials (configs x seeds x environments), each an ordinary resumable run.

A sweep spec is a TOML file:

    [base]                      # RunSpec fields shared by every trial
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

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oakrl.errors import ConfigError, Diverged
from oakrl.io import write_json
from oakrl.lab.cpu import limit_cpu_threads
from oakrl.lab.parse import sweep_specs
from oakrl.lab.spec import RunSpec

# What a finished trial may do with its result besides writing it (e.g. draw curve.png): a
# module-level function, so that it reaches worker processes by name.
Finish = Callable[[Any], None]


def run_trial(spec: RunSpec, finish: Finish | None = None, cpu_threads: int | None = None) -> dict[str, Any]:
    """One trial in this process: {status, message, headline numbers}. Never raises.

    cpu_threads sizes XLA:CPU's pool (oakrl.lab.cpu) if JAX has not computed in this process yet.
    """
    from oakrl.lab import cache
    from oakrl.lab.run import execute, prepare

    try:
        limit_cpu_threads(cpu_threads)
        cache.enable()  # a worker process (or a ray worker) shares the user's compile cache
        result = execute(prepare(spec))
        if finish is not None:
            finish(result)
    except Diverged as e:
        return {"status": "diverged", "message": str(e)}
    except ConfigError as e:
        return {"status": "failed", "message": str(e)}
    except Exception as e:  # a trial's crash must not take the sweep down
        return {"status": "failed", "message": f"{type(e).__name__}: {e}"}
    summary = result.summary
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
    finish: Finish | None = None,
    log: Callable[[str], None] | None = None,
    cpu_threads: int | None = None,
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Runs (or completes) every trial of `spec` under `out`; returns one entry per trial.

    address: the ray backend's cluster ("HOST:PORT" of a head started with `ray start --head`);
    None: RAY_ADDRESS if set, else a ray instance started for this sweep.

    cpu_threads: XLA:CPU threads per trial (all usable CPUs when None). With the local backend
    each worker process applies it as it starts; `--workers 2 --cpu-threads 1` suits a 2-core
    machine. With ray it is also each task's CPU request.
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; valid: local, ray")
    from oakrl.lab.run import prepare

    limit_cpu_threads(cpu_threads)  # this process: before `prepare` below first computes
    todo = [
        (name, point, trial.replace(out=str(Path(out) / name))) for name, point, trial in sweep_specs(spec)
    ]
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    if any((root / name).exists() for name in ("config.json", "summary.json")):
        raise ConfigError(f"--out {out} holds a run or a study, not a sweep; choose another directory")
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for name, _point, trial in todo:
        plan = prepare(trial)  # refuses a foreign trial directory before any trial runs
        if plan.status == "complete":
            summary = json.loads((root / name / "summary.json").read_text())
            results[name] = {
                "status": "skipped",
                "final_return": summary["final_return"]["mean"],
                "average_reward": summary["average_reward"]["mean"],
            }
        else:
            pending.append((name, trial))

    def record(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        if log is not None:
            log(f"{name}: {result['status']}" + (f" ({result['message']})" if "message" in result else ""))
        _write_index(root, spec, todo, results)

    _write_index(root, spec, todo, results)
    if backend == "ray":
        _run_ray(pending, finish, record, cpu_threads, address)
    elif workers == 1 or not pending:
        for name, trial in pending:
            record(name, run_trial(trial, finish, cpu_threads))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx) as pool:
            futures = {pool.submit(run_trial, trial, finish, cpu_threads): name for name, trial in pending}
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


def _run_ray(
    pending, finish: Finish | None, record, cpu_threads: int | None = None, address: str | None = None
) -> None:
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
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            except ConnectionError as e:
                raise ConfigError(f"--address {address}: no ray cluster there ({_first(e)})") from None
    remote = ray.remote(num_cpus=cpu_threads or 1)(run_trial)
    refs = {
        remote.remote(trial.replace(out=str(Path(trial.out).resolve())), finish, cpu_threads): name
        for name, trial in pending
    }
    left = list(refs)
    while left:
        ready, left = ray.wait(left, num_returns=1)
        try:
            result = ray.get(ready[0])
        except Exception as e:
            result = {"status": "failed", "message": f"ray task failed: {type(e).__name__}: {e}"}
        record(refs[ready[0]], result)


def _first(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
