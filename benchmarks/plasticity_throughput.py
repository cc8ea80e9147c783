"""Throughput cost of each plasticity remedy in the compiled, vmapped lab.

    .venv/bin/python benchmarks/plasticity_throughput.py            # 8 seeds x 20k steps each
    .venv/bin/python benchmarks/plasticity_throughput.py --quick    # a smoke run

Stream AC on CartPole-v1 (gymnax, hidden 128,128 unless --hidden), the lab's lax.scan chunks
vmapped over seeds (oakrl.lab.stream.run_jax), once per remedy: plain, diagnostics only, cbp,
redo, shrink-perturb, l2-init, and the TIDBD-ObGD optimiser. Prints agent-steps/s (median of
--repeats timed runs of one compiled program, compile excluded) and the cost relative to plain.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

import jax

from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import run_jax

CASES = {
    "plain (backprop)": {},
    "diagnostics only": {"plasticity_diagnostics": True, "plasticity_options": {"rank_every": 0}},
    "diagnostics + eff_rank": {"plasticity_diagnostics": True, "plasticity_options": {"rank_every": 1000}},
    "cbp": {"plasticity": "cbp"},
    "redo": {"plasticity": "redo"},
    "shrink-perturb": {"plasticity": "shrink-perturb"},
    "l2-init": {"plasticity": "l2-init"},
    "tidbd-obgd optimiser": {"optimizer": "tidbd-obgd"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hidden", default="128,128")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps, args.repeats = 2, 2_000, 1
    hidden = tuple(int(s) for s in args.hidden.split(","))
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, jax {jax.__version__} "
        f"({jax.default_backend()}); stream-ac CartPole-v1, hidden {hidden}, {args.seeds} seeds x "
        f"{args.steps} steps, median of {args.repeats}"
    )
    print(f"{'remedy':<24} {'agent-steps/s':>14} {'relative':>9} {'compile s':>10}")
    base = None
    for name, opts in CASES.items():
        config = RunSpec(
            steps=args.steps,
            seeds=args.seeds,
            chunk=min(args.steps, 10_000),
            agent_options={"hidden": hidden, **opts},
        )
        handle, agent = build(config)
        keys = seed_keys(config.seed, config.seeds, config.prng)
        rates, compile_s = [], 0.0
        for _ in range(args.repeats):
            _, compile_s, stream_s = run_jax(agent, handle, config.steps, keys, config.chunk, config.window)
            rates.append(config.steps * config.seeds / stream_s)
        rate = statistics.median(rates)
        base = base or rate
        print(f"{name:<24} {rate:>14,.0f} {rate / base:>9.2f} {compile_s:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
