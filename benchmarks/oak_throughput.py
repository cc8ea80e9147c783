"""OaK agent-steps per second in the compiled, vmapped lab (compile excluded).

    .venv/bin/python benchmarks/oak_throughput.py            # full (about 8 minutes on 2 cores)
    .venv/bin/python benchmarks/oak_throughput.py --quick    # a smoke run

Configurations (Rooms-v0 with the goal relocated every 5,000 steps, as `oakrl study oak`):
(i)   1 seed of oak, whole stream in lax.scan;
(ii)  5 seeds of oak in one vmap (the study's setting);
(iii) 5 seeds of oak with its options unused (use_options=false): same models and planning
      over primitive actions only, the cost of the option machinery by difference;
(iv)  5 seeds of dyna and of stream-q, for scale;
(v)   1 seed of oak on Foraging-v0 (192 observation components instead of 169).
Each figure is the median of `--repeats` timed runs of the same compiled program; XLA's cost
model gives the bytes one oak step touches (per seed).
"""

from __future__ import annotations

import argparse
import os
import platform

import jax
from timing import bytes_per_agent_step, timed_jax

from oakrl.lab.spec import RunSpec


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    steps = 2_000 if args.quick else 10_000
    repeats = 1 if args.quick else args.repeats
    rooms = dict(env="Rooms-v0", schedule="switch", every=5_000, tasks=4, steps=steps, chunk=steps)
    cases = [
        ("oak, Rooms-v0, 1 seed", RunSpec(agent="oak", seeds=1, **rooms)),
        ("oak, Rooms-v0, 5 seeds", RunSpec(agent="oak", seeds=5, **rooms)),
        (
            "oak use_options=false, Rooms-v0, 5 seeds",
            RunSpec(agent="oak", seeds=5, agent_options={"use_options": False}, **rooms),
        ),
        ("dyna, Rooms-v0, 5 seeds", RunSpec(agent="dyna", seeds=5, **rooms)),
        ("stream-q, Rooms-v0, 5 seeds", RunSpec(agent="stream-q", seeds=5, **rooms)),
        (
            "oak, Foraging-v0, 1 seed",
            RunSpec(env="Foraging-v0", agent="oak", seeds=1, steps=steps, chunk=steps),
        ),
    ]
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, jax {jax.__version__} {jax.default_backend()}"
    )
    print(f"steps per run {steps}, median of {repeats}")
    print(
        f"oak bytes touched per agent-step (XLA cost model): {bytes_per_agent_step(cases[1][1]) / 1e6:.2f} MB"
    )
    for name, cfg in cases:
        rate, compile_s, _ = timed_jax(cfg, repeats)
        print(f"{name:<45} {rate:>10,.0f} agent-steps/s   (compile {compile_s:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
