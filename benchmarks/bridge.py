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


def parts(env: str, seeds: int, reps: int = 2000) -> dict[str, float]:
    """Microseconds per step of the bridge's pieces for `seeds` seeds on CartPole: the vector
    environment's step alone and one compiled agent step (all seeds, vmapped, with the action's
    transfer to the host), in process CPU time, and the whole stream loop (run_gym, wall)."""
    import time

    import jax
    import numpy as np

    from oakrl.core.types import TimeStep
    from oakrl.envs.gym_bridge import make_gym
    from oakrl.lab.bridge import run_gym
    from oakrl.lab.run import build, seed_keys
    from oakrl.lab.spec import RunSpec

    _, agent = build(RunSpec(env=env, agent="stream-ac", steps=reps))
    handle = make_gym(env, {"vector": "loop"})
    vec = handle.vector(list(range(seeds)), None)
    obs = vec.reset()
    actions = np.zeros(seeds, np.int64)  # CartPole's discrete actions
    for _ in range(100):
        vec.step(actions)
    t = time.process_time()
    for _ in range(reps):
        vec.step(actions)
    env_us = (time.process_time() - t) / reps * 1e6
    vec.close()
    keys = seed_keys(0, seeds)
    state = jax.jit(jax.vmap(lambda k: agent.init(k, handle.obs_spec, handle.action_spec)))(keys)
    ts = TimeStep(obs, np.zeros(seeds, np.float32), np.zeros(seeds, bool), np.zeros(seeds, bool))
    step = jax.jit(jax.vmap(agent.step))
    state, action, _ = step(state, ts, keys)
    np.asarray(action)
    t = time.process_time()
    for _ in range(reps):
        state, action, _ = step(state, ts, keys)
        np.asarray(action)
    agent_us = (time.process_time() - t) / reps * 1e6
    _, _, stream_s = run_gym(agent, handle, reps, keys, list(range(seeds)), reps)
    return {"env": env_us, "agent": agent_us, "loop": stream_s / reps * 1e6}


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
    p.add_argument("--parts", action="store_true", help="CPU us per step of env, agent and loop, then exit")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        print(measure(*json.loads(args.worker)))
        return
    if args.parts:
        print(f"{platform.machine()}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
        print("us per step, all seeds: vector env (CPU) | agent step + action (CPU) | run_gym stream (wall)")
        for s in [int(x) for x in args.seeds.split(",")]:
            r = parts("gym:CartPole-v1", s)
            print(
                f"CartPole, {s:>2} seeds: {r['env']:8.0f} | {r['agent']:8.0f} | {r['loop']:8.0f}", flush=True
            )
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
