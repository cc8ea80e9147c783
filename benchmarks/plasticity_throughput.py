"""Throughput cost of each plasticity remedy in the compiled, vmapped lab.

    .venv/bin/python benchmarks/plasticity_throughput.py            # 8 seeds x 10k steps, 3 rounds
    .venv/bin/python benchmarks/plasticity_throughput.py --quick    # a smoke run
    .venv/bin/python benchmarks/plasticity_throughput.py --profile  # kernels and XLA cost only
    PYTHONPATH=/path/to/other/oakrl python benchmarks/plasticity_throughput.py   # A/B two trees

Stream AC on CartPole-v1 (gymnax, hidden 128,128 unless --hidden), the lab's lax.scan chunk
vmapped over seeds (oakrl.lab.stream.make_chunk, compiled with the lab's options), once per
remedy: plain, diagnostics only, cbp, redo, shrink-perturb, l2-init, and the TIDBD-ObGD
optimiser. Uses whichever oakrl is first on PYTHONPATH (printed), so two trees can be compared.

Every case is compiled first; then `--repeats` rounds time one chunk of every case in turn
(interleaved, so a change in the machine's load hits all cases alike). Printed per case:
agent-steps/s of wall time and per process CPU second (medians over the rounds), each also
relative to plain's median in the same run; the scan body's kernel count
(benchmarks/kernel_count.py) and XLA's cost analysis of the compiled chunk (flops and bytes
accessed of one step of the scan body, per seed: XLA counts a while body once).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax

import oakrl
from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import compiler_options, init_carry, make_chunk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_count import scan_body_kernels  # noqa: E402

CASES = {
    "plain": {},
    "diagnostics": {"plasticity_diagnostics": True, "plasticity_options": {"rank_every": 0}},
    "diagnostics+eff_rank": {"plasticity_diagnostics": True, "plasticity_options": {"rank_every": 1000}},
    "cbp": {"plasticity": "cbp"},
    "redo": {"plasticity": "redo"},
    "shrink-perturb": {"plasticity": "shrink-perturb"},
    "l2-init": {"plasticity": "l2-init"},
    "tidbd-obgd": {"optimizer": "tidbd-obgd"},
}


def cost(compiled) -> tuple[float, float]:
    """(flops, bytes accessed) of the compiled program: about one scan-body step, all seeds."""
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return float(ca.get("flops", 0.0)), float(ca.get("bytes accessed", 0.0))


def compile_case(opts: dict, args) -> tuple:
    """(compiled chunk, carry, compile s) for one case."""
    spec = RunSpec(
        steps=args.steps, seeds=args.seeds, chunk=args.steps, agent_options={"hidden": args.hidden, **opts}
    )
    handle, agent = build(spec)
    keys = seed_keys(spec.seed, spec.seeds, spec.prng)
    t0 = time.perf_counter()
    carry = jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k)))(keys)
    fn = jax.jit(jax.vmap(make_chunk(agent, handle, args.steps, spec.window)), donate_argnums=0)
    compiled = fn.lower(carry).compile(compiler_options())
    return compiled, carry, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true", help="kernels and XLA cost only, no timing")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10_000, help="steps per timed chunk")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", default="128,128")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps, args.repeats = 2, 2_000, 1
    args.hidden = tuple(int(s) for s in args.hidden.split(","))
    names = ["plain", *(c for c in args.cases.split(",") if c != "plain")]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        sys.exit(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")
    print(
        f"# oakrl from {Path(oakrl.__file__).parent}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
        f"jax {jax.__version__} ({jax.default_backend()}); "
        f"stream-ac CartPole-v1, hidden {args.hidden}, {args.seeds} seeds x {args.steps} steps, "
        f"medians of {args.repeats} interleaved rounds, compile excluded"
    )
    built = {}
    for name in names:
        compiled, carry, compile_s = compile_case(CASES[name], args)
        kernels, kinds = scan_body_kernels(compiled.as_text())
        flops, nbytes = cost(compiled)
        built[name] = [compiled, carry, compile_s, kernels, flops / args.seeds, nbytes / args.seeds]
    if not args.profile:
        for compiled_carry in built.values():  # one untimed chunk each: first-run effects out
            compiled_carry[1] = jax.block_until_ready(compiled_carry[0](compiled_carry[1])[0])
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(0 if args.profile else args.repeats):
        for name in names:
            compiled, carry = built[name][:2]
            w0, c0 = time.perf_counter(), time.process_time()
            carry = jax.block_until_ready(compiled(carry)[0])
            w1, c1 = time.perf_counter(), time.process_time()
            built[name][1] = carry
            walls[name].append(args.steps * args.seeds / (w1 - w0))
            cpus[name].append(args.steps * args.seeds / (c1 - c0))
    print(
        f"{'case':<22} {'steps/s wall':>12} {'rel':>5} {'steps/cpu-s':>12} {'rel':>5} "
        f"{'kernels':>8} {'kflop/step':>11} {'kB/step':>8} {'compile s':>9}"
    )
    base_w = statistics.median(walls["plain"]) if walls["plain"] else float("nan")
    base_c = statistics.median(cpus["plain"]) if cpus["plain"] else float("nan")
    for name in names:
        _, _, compile_s, kernels, flops, nbytes = built[name]
        w = statistics.median(walls[name]) if walls[name] else float("nan")
        c = statistics.median(cpus[name]) if cpus[name] else float("nan")
        print(
            f"{name:<22} {w:>12,.0f} {w / base_w:>5.2f} {c:>12,.0f} {c / base_c:>5.2f} "
            f"{kernels:>8} {flops / 1e3:>11,.1f} {nbytes / 1e3:>8,.0f} {compile_s:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
