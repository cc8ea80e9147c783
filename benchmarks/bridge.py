"""Agent-steps per second of the gymnasium bridge (oakrl.lab.bridge.run_gym), compile excluded.

    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py --before /path/to/worktree/of/OLD
    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py --vector async      # this tree only

stream AC with its default options on gym:CartPole-v1 and on one MuJoCo task (gym:Hopper-v5,
skipped when the mujoco extra is absent), for 1, 4, 8 and 16 seeds. Each (tree, seeds) pair is
timed in a fresh process of that tree (PYTHONPATH=TREE, so any layout of the old code works),
round after round, the trees alternating, so that load from other processes on a shared
machine falls on both alike. agent-steps/s = seeds x steps / stream seconds, the median over
rounds; "x one seed" is over the same tree's one-seed figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def measure(env: str, steps: int, seeds: int, vector: str) -> float:
    """agent-steps/s of one stream in this process (the tree on sys.path)."""
    from oakrl.envs.gym_bridge import make_gym
    from oakrl.lab.bridge import run_gym
    from oakrl.lab.run import build, seed_keys
    from oakrl.lab.spec import RunSpec

    _, agent = build(RunSpec(env=env, agent="stream-ac", steps=steps))
    handle = make_gym(env, {"vector": vector})
    _, _, stream_s = run_gym(agent, handle, steps, seed_keys(0, seeds), list(range(seeds)), steps)
    return seeds * steps / stream_s


def in_tree(tree: Path, env: str, steps: int, seeds: int, vector: str) -> float:
    cmd = [sys.executable, __file__, "--worker", json.dumps([env, steps, seeds, vector])]
    env_vars = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env_vars, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default=None, help="a worktree of the old bridge, measured alongside")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", default="1,4,8,16", help="seed counts, comma-separated")
    p.add_argument("--cartpole-steps", type=int, default=2000, help="steps per seed")
    p.add_argument("--mujoco-steps", type=int, default=500, help="steps per seed")
    p.add_argument("--vector", default="loop", help="loop | sync | async: the vector environment")
    p.add_argument("--only", default=None, help="cartpole | mujoco")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        print(measure(*json.loads(args.worker)))
        return
    print(
        f"{platform.machine()}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} "
        "(shared machine: absolute figures are noisy)"
    )
    trees = {f"this tree ({args.vector})": HERE}
    if args.before:
        trees = {"before": Path(args.before).resolve(), **trees}
    tasks = []
    if args.only in (None, "cartpole"):
        tasks.append(("gym:CartPole-v1", args.cartpole_steps))
    if args.only in (None, "mujoco") and importlib.util.find_spec("mujoco") is not None:
        tasks.append(("gym:Hopper-v5", args.mujoco_steps))
    counts = [int(x) for x in args.seeds.split(",")]
    for env, steps in tasks:
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for s in counts:
                for name, tree in trees.items():
                    vector = "loop" if name == "before" else args.vector
                    rates.setdefault((name, s), []).append(in_tree(tree, env, steps, s, vector))
        print(f"\n{env}, {steps} steps per seed, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
        print(f"{'bridge':<20} {'seeds':>5} {'agent-steps/s':>14} {'x one seed':>10}   rounds")
        for name in trees:
            one = statistics.median(rates[(name, counts[0])]) if counts[0] == 1 else None
            for s in counts:
                sps = statistics.median(rates[(name, s)])
                ratio = f"{sps / one:.2f}" if one else "-"
                runs = ", ".join(f"{x:,.0f}" for x in rates[(name, s)])
                print(f"{name:<20} {s:>5} {sps:>14,.0f} {ratio:>10}   [{runs}]", flush=True)


if __name__ == "__main__":
    main()
