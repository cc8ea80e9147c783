"""Agent-steps per second, compile excluded, for the configurations oakrl promises.

    .venv/bin/python benchmarks/throughput.py            # full (5-6 minutes on 2 cores)
    .venv/bin/python benchmarks/throughput.py --quick    # a smoke run
    .venv/bin/python benchmarks/throughput.py --cpu-threads 1   # XLA:CPU on one thread

(i)   one stream AC agent on CartPole-v1 (gymnax), whole stream in lax.scan;
(ii)  256 seeds of it in one vmap, with the memory roofline: the bytes XLA's cost model says
      one vmapped step touches, divided by the seeds, against this machine's measured copy
      bandwidth (numpy, 256 MiB buffers: DRAM, read + write counted);
(iii) one stream AC agent through the gymnasium bridge (gym:CartPole-v1, Python env loop);
(iv)  one stream Q agent on MinAtar Breakout (gymnax), lax.scan.
Each figure is the median of `--repeats` timed runs of the same compiled program.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import numpy as np
from timing import bytes_per_agent_step, timed_jax

from oakrl.lab.bridge import run_gym
from oakrl.lab.cpu import limit_cpu_threads
from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large array copy (read + write)."""
    src = np.ones(mib * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short streams, one repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpu-threads", type=int, default=None, help="XLA:CPU threads (oakrl/lab/cpu.py)")
    args = p.parse_args()
    limit_cpu_threads(args.cpu_threads)  # before JAX computes anything
    r = 1 if args.quick else args.repeats
    scale = 10 if args.quick else 1

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"jax {jax.__version__} on {jax.default_backend()}, XLA:CPU threads {args.cpu_threads or 'all'}"
    )
    rows = []

    cfg = RunSpec(
        env="CartPole-v1", agent="stream-ac", steps=100_000 // scale, seeds=1, chunk=50_000 // scale
    )
    sps, comp, rates = timed_jax(cfg, r)
    rows.append(("(i) stream AC, CartPole, 1 agent, lax.scan", sps, comp, rates))

    cfg = RunSpec(env="CartPole-v1", agent="stream-ac", steps=4_000 // scale, seeds=256, chunk=2_000 // scale)
    sps, comp, rates = timed_jax(cfg, r)
    rows.append(("(ii) stream AC, CartPole, 256 seeds vmapped", sps, comp, rates))
    bytes_step = bytes_per_agent_step(cfg)
    bandwidth = copy_bandwidth()
    roofline = bandwidth / bytes_step

    cfg = RunSpec(
        env="gym:CartPole-v1", agent="stream-ac", steps=20_000 // scale, seeds=1, chunk=20_000 // scale
    )
    handle, agent = build(cfg)
    rates = []
    for _ in range(r):
        _, comp, stream_s = run_gym(
            agent, handle, cfg.steps, seed_keys(cfg.seed, cfg.seeds, cfg.prng), [0], cfg.chunk
        )
        rates.append(cfg.steps / stream_s)
    rows.append(("(iii) stream AC, gym:CartPole-v1 bridge, 1 agent", statistics.median(rates), comp, rates))

    cfg = RunSpec(
        env="Breakout-MinAtar", agent="stream-q", steps=40_000 // scale, seeds=1, chunk=20_000 // scale
    )
    sps, comp, rates = timed_jax(cfg, r)
    rows.append(("(iv) stream Q, Breakout-MinAtar, 1 agent, lax.scan", sps, comp, rates))

    print(f"\n{'configuration':<52} {'agent-steps/s':>14} {'compile s':>10}   runs")
    for name, sps, comp, rates in rows:
        runs = ", ".join(f"{x:,.0f}" for x in rates)
        print(f"{name:<52} {sps:>14,.0f} {comp:>10.1f}   [{runs}]")
    many = rows[1][1]
    print(
        f"\nroofline (ii): {bytes_step / 1e6:.2f} MB touched per agent-step (XLA cost model), "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s -> {roofline:,.0f} agent-steps/s; "
        f"measured {many:,.0f} = {many / roofline:.0%} of the roofline"
    )


if __name__ == "__main__":
    main()
