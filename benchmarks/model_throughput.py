"""Agent-steps per second of the model-based agents, compile excluded (issue 4).

    .venv/bin/python benchmarks/model_throughput.py            # full
    .venv/bin/python benchmarks/model_throughput.py --quick    # a smoke run

On Rooms-v0 (one-hot observation float32[169], 4 actions), the agents' default networks
(Q: 128,128; model: 128), the whole stream in lax.scan:
  stream-q                      the model-free baseline;
  dyna, planning_steps = 5      + the online transition model + 5 simulated updates per step;
  planner, num_simulations = 16 + the online model + Gumbel MuZero search (mctx) at every step.
Each with 1 seed and with `--seeds` seeds in one vmap (agent-steps over all seeds / second).
Each figure is the median of `--repeats` timed runs of the same compiled program.
"""

from __future__ import annotations

import argparse
import os
import platform

from timing import timed_jax

from oakrl.lab.spec import RunSpec

CASES = [
    ("stream-q", {}),
    ("dyna", {"planning_steps": 5}),
    ("planner", {"num_simulations": 16}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short streams, one repeat")
    ap.add_argument("--steps", type=int, default=10_000, help="steps per seed and timed run")
    ap.add_argument("--seeds", type=int, default=8, help="seeds of the vmapped figures")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    steps, repeats = (1_000, 1) if args.quick else (args.steps, args.repeats)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}")
    print(f"{'agent':<10} {'options':<24} {'seeds':>5} {'agent-steps/s':>14} {'compile s':>10}")
    for name, options in CASES:
        for seeds in (1, args.seeds):
            config = RunSpec(
                env="Rooms-v0", agent=name, steps=steps, seeds=seeds, chunk=steps, agent_options=options
            )
            rate, compile_s, _ = timed_jax(config, repeats)
            opts = ",".join(f"{k}={v}" for k, v in options.items()) or "-"
            print(f"{name:<10} {opts:<24} {seeds:>5} {rate:>14,.0f} {compile_s:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
