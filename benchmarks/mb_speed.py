"""Agent-steps/s of the model-based and OaK agents, for A/B comparisons between checkouts (issue 23).

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/mb_speed.py [--steps 20000] [--repeats 3]
        [--env Rooms-v0] [--agents dyna,planner,oak,stream-q] [--seeds 1,8] [--cpu-threads N] [--profile]

Each case is `oakrl run --env Rooms-v0 --agent AGENT --steps STEPS --seeds S` through the lab
API of whichever oakrl is first on the path (so the same script measures an older worktree
beside this one): the lab's chunk function (`make_chunk`, vmapped over seeds, the lab's
compile options) is compiled once, then the whole stream is run `--repeats` times from a fresh
state; compiling is outside the timings. Printed per case: the median agent-steps (all seeds)
per second of wall time and per second of process CPU time, each repeat's figure, and the
share of stream-q's rate measured in the same process (the issue's unit). CPU time counts
every thread of the process and not time spent waiting for a core, so it stays comparable
when other work shares the machine; wall time does not.

`--profile` prints instead, per case, figures that do not depend on the machine's load: the
kernels XLA:CPU launches per agent step (the scan body's, plus each nested loop's body times
its trip count: dyna's simulated updates, the planner's search, oak's backups) and XLA's cost
model for one step (bytes accessed and flops, per seed).
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import time

import jax
import numpy as np

import oakrl
from oakrl.errors import ConfigError
from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import compiler_options, init_carry, make_chunk

# benchmarks/kernel_count.py's kinds, and `call` (XLA:CPU runs each random-bit generation as one)
KERNELS = ("fusion", "dot", "copy", "custom-call", "concatenate", "dynamic-update-slice", "reduce", "call")


def spec_of(agent: str, seeds: int, steps: int, chunk: int, env: str = "Rooms-v0") -> RunSpec:
    return RunSpec(env=env, agent=agent, steps=steps, seeds=seeds, chunk=chunk)


def compiled_chunk(spec: RunSpec, length: int):
    """(compiled chunk of `length` steps, a function giving a fresh carry) for a spec."""
    handle, agent = build(spec)
    keys = seed_keys(spec.seed, spec.seeds, spec.prng)
    fresh = jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k)))
    carry = fresh(keys)
    fn = jax.jit(jax.vmap(make_chunk(agent, handle, length, spec.window)), donate_argnums=0)
    return fn.lower(carry).compile(compiler_options()), lambda: fresh(keys)


def timed(spec: RunSpec, repeats: int) -> tuple[list[float], list[float]]:
    """Agent-steps/s of wall and of process CPU time, one figure per repeat of the stream."""
    chunks, rest = divmod(spec.steps, spec.chunk)
    if rest:
        raise SystemExit(f"--steps must be a multiple of the chunk ({spec.chunk})")
    fn, fresh = compiled_chunk(spec, spec.chunk)
    jax.block_until_ready(fn(fresh()))  # warm-up: first-run allocations, page faults
    wall, cpu = [], []
    for _ in range(repeats):
        carry = jax.block_until_ready(fresh())
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(chunks):
            carry, out = fn(carry)
            np.asarray(out.task)  # the lab reads every chunk's outputs back to the host
        jax.block_until_ready(carry)
        w1, c1 = time.perf_counter(), time.process_time()
        wall.append(spec.steps * spec.seeds / (w1 - w0))
        cpu.append(spec.steps * spec.seeds / (c1 - c0))
    return wall, cpu


def _computations(hlo: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"\n(?:ENTRY )?%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S)
    }


def _body_kernels(comps: dict[str, str], name: str, times: int, kinds: collections.Counter) -> None:
    """Adds the kernels of computation `name` (run `times` times) and of its nested loops."""
    for line in comps[name].split("\n"):
        op = re.search(r"= .*? ([\w-]+)\((.*)", line)
        if op is None:
            continue
        if op.group(1) in KERNELS:
            kinds[op.group(1)] += times
        elif op.group(1) == "while":
            body = re.search(r"body=%([\w.\-]+)", op.group(2)).group(1)
            trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', op.group(2))
            # A loop of unknown length (mctx's tree descent): counted once per step.
            _body_kernels(comps, body, times * (int(trips.group(1)) if trips else 1), kinds)


def step_kernels(hlo: str) -> tuple[int, dict[str, int]]:
    """(kernels, by kind) one agent step launches: the stream's scan body with nested loops."""
    comps = _computations(hlo)
    entry = re.search(r"\nENTRY %[\w.\-]+ [^\n]*\{\n(.*?)\n\}", hlo, re.S).group(1)
    scan = re.search(r"while\([^)]*\), condition=%[\w.\-]+, body=%([\w.\-]+)", entry).group(1)
    kinds: collections.Counter[str] = collections.Counter()
    _body_kernels(comps, scan, 1, kinds)
    return sum(kinds.values()), dict(kinds)


def profile(spec: RunSpec) -> str:
    scan, _ = compiled_chunk(spec, 100)
    n, kinds = step_kernels(scan.as_text())
    one, _ = compiled_chunk(spec, 1)
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    mb = float(cost["bytes accessed"]) / spec.seeds / 1e6
    mflop = float(cost["flops"]) / spec.seeds / 1e6
    return f"kernels/step {n:>5} {kinds}  bytes/step/seed {mb:6.2f} MB  flops/step/seed {mflop:6.2f} M"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--chunk", type=int, default=10_000, help="the lab's default chunk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--env", default="Rooms-v0", help="e.g. NineRooms-v0 (oak's larger world)")
    p.add_argument("--agents", default="dyna,planner,oak,stream-q")
    p.add_argument("--seeds", default="1,8")
    p.add_argument("--cpu-threads", default=None, help="as `oakrl run --cpu-threads`: N or all (the default)")
    p.add_argument("--profile", action="store_true", help="kernels and bytes per step, no timing")
    p.add_argument("--label", default="")
    args = p.parse_args()
    if args.cpu_threads is not None:
        from oakrl.lab.cpu import limit_cpu_threads, parse_threads

        try:
            threads = parse_threads(args.cpu_threads)
        except ConfigError as e:
            p.error(str(e))
        if threads != "all":
            limit_cpu_threads(threads)
    label = args.label or oakrl.__file__
    print(
        f"{label}: jax {jax.__version__}, {args.env}, {args.steps} steps, median of {args.repeats}",
        flush=True,
    )
    try:  # an unknown world or agent: one line, before anything is compiled
        build(spec_of("stream-q", 1, 1, 1, args.env))
        for agent in args.agents.split(","):
            build(spec_of(agent, 1, 1, 1, args.env))
    except ConfigError as e:
        raise SystemExit(f"mb_speed: {e}") from None
    reference: dict[int, float] = {}
    agents = args.agents.split(",")
    # stream-q first, so every other case can be given as a share of it.
    agents.sort(key=lambda a: a != "stream-q")
    for agent in agents:
        for seeds in (int(s) for s in args.seeds.split(",")):
            spec = spec_of(agent, seeds, args.steps, min(args.chunk, args.steps), args.env)
            if args.profile:
                print(f"{agent:<9} seeds {seeds}  {profile(spec)}", flush=True)
                continue
            wall, cpu = timed(spec, args.repeats)
            w, c = statistics.median(wall), statistics.median(cpu)
            if agent == "stream-q":
                reference[seeds] = c
            share = f"  cpu share of stream-q {c / reference[seeds]:.3f}" if seeds in reference else ""
            print(
                f"{agent:<9} seeds {seeds}  wall {w:>9,.0f} {[round(x) for x in wall]}  "
                f"cpu {c:>9,.0f} {[round(x) for x in cpu]}{share}",
                flush=True,
            )


if __name__ == "__main__":
    main()
