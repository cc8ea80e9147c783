"""Throughput cost of each streaming learner of issue 22 against ObGD, in the same run.

    .venv/bin/python benchmarks/learners_throughput.py            # CartPole and Breakout-MinAtar
    .venv/bin/python benchmarks/learners_throughput.py --quick    # CartPole only, short streams

Each case is an agent with its `optimizer` set, the agent's default network, the whole stream
in lax.scan (the lab's run_jax), compile excluded. On a shared machine wall-clock rates move
with the neighbours' load, so the figure that matters is the CPU-time ratio: CPU seconds of the
process during the stream (time.process_time from the end of compilation to the end of the
stream, all threads) of ObGD over that of the learner, per repeat, the cases interleaved within
each repeat so that both see the same load; the median over repeats is printed (1.00: as fast
as ObGD; 0.80: the learner's steps cost 25% more CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import run_jax

CASES = {
    "CartPole-v1": {
        "stream-q": ("obgd", "adaptive-q", "intentional"),
        "stream-ac": ("obgd", "adaptive-q", "intentional"),
        "stream-td": ("obgd", "swift-td"),
    },
    "Breakout-MinAtar": {
        "stream-q": ("obgd", "adaptive-q", "intentional"),
        "stream-td": ("obgd", "swift-td"),
    },
}
# SwiftTD is for linear predictions: stream-td runs linear (hidden=linear) for both of its learners.
AGENT_OPTIONS = {"stream-td": {"hidden": ()}}


def timed(spec: RunSpec) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one compiled stream, compile excluded."""
    handle, agent = build(spec)
    keys = seed_keys(spec.seed, spec.seeds, spec.prng)
    mark = {}

    def on_start(done: int, compile_s: float) -> None:
        mark["cpu"], mark["wall"] = time.process_time(), time.perf_counter()

    run_jax(agent, handle, spec.steps, keys, spec.chunk, spec.window, on_start=on_start)
    return time.perf_counter() - mark["wall"], time.process_time() - mark["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CartPole only, 5,000 steps, 2 repeats")
    ap.add_argument("--steps", type=int, default=20_000, help="steps per seed and timed run")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--agents", default="", help="only these agents (comma list), e.g. stream-td")
    ap.add_argument("--envs", default="", help="only these environments (comma list)")
    args = ap.parse_args()
    steps, repeats = (5_000, 2) if args.quick else (args.steps, args.repeats)
    cases = {"CartPole-v1": CASES["CartPole-v1"]} if args.quick else CASES
    only_agents = set(filter(None, args.agents.split(",")))
    only_envs = set(filter(None, args.envs.split(",")))
    cases = {
        e: {a: o for a, o in agents.items() if not only_agents or a in only_agents}
        for e, agents in cases.items()
        if not only_envs or e in only_envs
    }
    load = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}, load {load}")
    print(f"{steps} steps x {args.seeds} seeds, {repeats} interleaved repeats; medians")
    head = ("env", "agent", "optimizer", "wall steps/s", "cpu steps/s", "cpu vs obgd")
    print(f"{head[0]:<18} {head[1]:<10} {head[2]:<12} {head[3]:>12} {head[4]:>12} {head[5]:>11}")
    for env, agents in cases.items():
        for agent, opts in agents.items():
            specs = {
                o: RunSpec(
                    env=env,
                    agent=agent,
                    steps=steps,
                    seeds=args.seeds,
                    chunk=steps,
                    agent_options={"optimizer": o, **AGENT_OPTIONS.get(agent, {})},
                )
                for o in opts
            }
            wall: dict[str, list[float]] = {o: [] for o in opts}
            cpu: dict[str, list[float]] = {o: [] for o in opts}
            for _ in range(repeats):
                for o, s in specs.items():
                    w, c = timed(s)
                    wall[o].append(w)
                    cpu[o].append(c)
            for o in opts:
                ratio = statistics.median(b / c for b, c in zip(cpu["obgd"], cpu[o], strict=True))
                n = steps * args.seeds
                print(
                    f"{env:<18} {agent:<10} {o:<12} {n / statistics.median(wall[o]):>12,.0f} "
                    f"{n / statistics.median(cpu[o]):>12,.0f} {ratio:>11.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
