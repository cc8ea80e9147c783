"""Agent-steps per second of the gymnasium bridge (oakrl.lab.stream.run_gym), compile excluded.

    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py --before /path/to/worktree/of/0b3c6f5
    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py --vector async      # this tree only

stream AC with its default options on gym:CartPole-v1 and on one MuJoCo task (gym:Hopper-v5,
skipped when the mujoco extra is absent), for 1, 4, 8 and 16 seeds. With --before, the old
tree's run_gym and gymnasium bridge (oakrl/lab/stream.py, oakrl/envs/gym_bridge.py, loaded from
their files under other module names; everything else is this tree's, unchanged between the
two) run in the same process, interleaved with this tree's: round after round, each
(bridge, seeds) pair is timed once, so that load from other processes on a shared machine falls
on both alike. agent-steps/s = seeds x steps / stream seconds, the median over rounds; "x one
seed" is over the same bridge's one-seed figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
from pathlib import Path

import jax

from oakrl.envs.gym_bridge import make_gym
from oakrl.lab.bridge import run_gym
from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec


def load_old(tree: str):
    """(run_gym, make_gym) of another tree, loaded from its files beside this tree's modules."""
    mods = []
    for name, rel in (("old_gym_bridge", "oakrl/envs/gym_bridge.py"), ("old_stream", "oakrl/lab/stream.py")):
        spec = importlib.util.spec_from_file_location(name, Path(tree) / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[1].run_gym, mods[0].make_gym


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default=None, help="a worktree of the old bridge, measured alongside")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", default="1,4,8,16", help="seed counts, comma-separated")
    p.add_argument("--cartpole-steps", type=int, default=2000, help="steps per seed")
    p.add_argument("--mujoco-steps", type=int, default=500, help="steps per seed")
    p.add_argument("--vector", default="loop", help="loop | sync | async: this tree's vector environment")
    p.add_argument("--only", default=None, help="cartpole | mujoco")
    args = p.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cpus, jax {jax.__version__}, load average "
        f"{os.getloadavg()[0]:.1f} (shared machine: absolute figures are noisy)"
    )
    bridges = {
        f"this tree ({args.vector})": (run_gym, lambda gym_id: make_gym(gym_id, {"vector": args.vector}))
    }
    if args.before:
        bridges = {"before": load_old(args.before), **bridges}
    tasks = []
    if args.only in (None, "cartpole"):
        tasks.append(("gym:CartPole-v1", args.cartpole_steps))
    if args.only in (None, "mujoco") and importlib.util.find_spec("mujoco") is not None:
        tasks.append(("gym:Hopper-v5", args.mujoco_steps))
    counts = [int(x) for x in args.seeds.split(",")]
    for env, steps in tasks:
        _, agent = build(RunSpec(env=env, agent="stream-ac", steps=steps))
        handles = {name: mk(env) for name, (_, mk) in bridges.items()}
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for s in counts:
                for name, (rg, _) in bridges.items():
                    keys = seed_keys(0, s)
                    _, _, stream_s = rg(agent, handles[name], steps, keys, list(range(s)), steps)
                    rates.setdefault((name, s), []).append(s * steps / stream_s)
        print(f"\n{env}, {steps} steps per seed, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
        print(f"{'bridge':<20} {'seeds':>5} {'agent-steps/s':>14} {'x one seed':>10}   rounds")
        for name in bridges:
            one = statistics.median(rates[(name, counts[0])]) if counts[0] == 1 else None
            for s in counts:
                sps = statistics.median(rates[(name, s)])
                ratio = f"{sps / one:.2f}" if one else "-"
                runs = ", ".join(f"{x:,.0f}" for x in rates[(name, s)])
                print(f"{name:<20} {s:>5} {sps:>14,.0f} {ratio:>10}   [{runs}]", flush=True)


if __name__ == "__main__":
    main()
