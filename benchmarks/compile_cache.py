"""How long the README's main job waits for compilation, without and with the compile cache.

    .venv/bin/python benchmarks/compile_cache.py [--repeats 3] [--steps 200000]

Runs the main job (`oakrl run --env CartPole-v1 --schedule switch --every 25000 --tasks 2
--steps 200000 --seeds 4`) as a subprocess, each time with its own results directory:
  - cache off (OAKRL_COMPILE_CACHE=off), `--repeats` times;
  - cache cold: a fresh cache directory, once (the first run of a configuration);
  - cache warm: the same directory again, `--repeats` times (every later run: the chunk is
    loaded as a whole program, oakrl/lab/cache.py, without tracing);
  - JAX entries only: the same directory with its programs removed before each run, `--repeats`
    times (what a warm run did before programs were kept: trace, lower, load JAX's entry).
Prints per case the run's own `compile_seconds` (summary.json: start of the stream's set-up to
the first step, i.e. tracing + compiling or loading), the process's wall time from start to
exit (imports included) and the final return, which must be the same in every case.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = ("run", "--env", "CartPole-v1", "--schedule", "switch", "--every", "25000", "--tasks", "2")


def one(steps: int, cache: str, out: Path) -> tuple[float, float, float]:
    """(compile s, process wall s, final return) of one run of the main job."""
    env = {**os.environ, "OAKRL_COMPILE_CACHE": cache}
    argv = [sys.executable, "-m", "oakrl", *JOB, "--steps", str(steps), "--seeds", "4", "--no-plot"]
    t0 = time.perf_counter()
    subprocess.run([*argv, "--out", str(out)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return summary["compile_seconds"], wall, summary["final_return"]["mean"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=200_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = str(root / "cache")
        cases = [("off", "off")] * args.repeats + [("cold", store)] + [("warm", store)] * args.repeats
        cases += [("jax-only", store)] * args.repeats
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for i, (name, cache) in enumerate(cases):
            if name == "jax-only":
                for entry in Path(store).glob("*/programs/*.pkl"):
                    entry.unlink()
            rows.setdefault(name, []).append(one(args.steps, cache, root / f"run{i}"))
    print(f"README main job, {args.steps:,} steps x 4 seeds; median of {args.repeats} (cold: 1 run)")
    print(f"{'cache':<6} {'compile s':>10} {'process wall s':>15}  final return  (each run's compile s)")
    for name, runs in rows.items():
        c = statistics.median(r[0] for r in runs)
        w = statistics.median(r[1] for r in runs)
        each = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"{name:<6} {c:>10.2f} {w:>15.2f}  {runs[0][2]:>12.2f}  ({each})")
    finals = {r[2] for runs in rows.values() for r in runs}
    print("same final return in every run:", len(finals) == 1)


if __name__ == "__main__":
    main()
