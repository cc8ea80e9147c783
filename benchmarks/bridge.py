"""Agent-steps per second of the gymnasium bridge (oakrl.lab.stream.run_gym), compile excluded.

    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py                  # this tree
    PYTHONPATH=/path/to/old/tree .venv/bin/python benchmarks/bridge.py --label before
    PYTHONPATH=. .venv/bin/python benchmarks/bridge.py --vector async   # one process per seed

stream AC with its default options on gym:CartPole-v1 and on one MuJoCo task (gym:Hopper-v5,
skipped when the mujoco extra is absent) for 1, 4, 8 and 16 seeds. Uses only what every version
of the bridge has (build, seed_keys, run_gym), so that an older tree runs it unchanged and the
two are measured side by side. agent-steps/s = seeds x steps / stream seconds; each figure is the
median of --repeats runs. The speed-up column is agent-steps/s over the same task's one-seed figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics

import jax

from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import run_gym


def measure(env: str, seeds: int, steps: int, repeats: int, vector: str | None) -> tuple[float, float]:
    """(median agent-steps/s, compile s) of `repeats` runs of `seeds` seeds x `steps` steps."""
    kwargs = {"env_options": {"vector": vector}} if vector else {}
    spec = RunSpec(env=env, agent="stream-ac", steps=steps, seeds=seeds, chunk=steps, **kwargs)
    handle, agent = build(spec)
    rates, comp = [], 0.0
    for _ in range(repeats):
        keys = seed_keys(spec.seed, seeds, spec.prng)
        _, comp, stream_s = run_gym(agent, handle, steps, keys, list(range(seeds)), steps)
        rates.append(seeds * steps / stream_s)
    return statistics.median(rates), comp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label", default="this tree", help="name of the tree measured (a column)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", default="1,4,8,16", help="seed counts, comma-separated")
    p.add_argument("--cartpole-steps", type=int, default=3000, help="steps per seed")
    p.add_argument("--mujoco-steps", type=int, default=1000, help="steps per seed")
    p.add_argument("--vector", default=None, help="sync | async (bridges with vector environments)")
    p.add_argument("--only", default=None, help="cartpole | mujoco")
    args = p.parse_args()
    import oakrl

    print(
        f"{args.label}: {os.path.dirname(oakrl.__file__)}; {platform.machine()}, {os.cpu_count()} cpus, "
        f"jax {jax.__version__}, load average {os.getloadavg()[0]:.1f} (shared machine: figures are noisy)"
    )
    tasks = []
    if args.only in (None, "cartpole"):
        tasks.append(("gym:CartPole-v1", args.cartpole_steps))
    if args.only in (None, "mujoco") and importlib.util.find_spec("mujoco") is not None:
        tasks.append(("gym:Hopper-v5", args.mujoco_steps))
    print(f"{'task':<18} {'seeds':>5} {'agent-steps/s':>14} {'x one seed':>10} {'compile s':>10}")
    for env, steps in tasks:
        one = None
        for s in (int(x) for x in args.seeds.split(",")):
            sps, comp = measure(env, s, steps, args.repeats, args.vector)
            one = sps if s == 1 else one
            ratio = f"{sps / one:.2f}" if one else "-"
            print(f"{env:<18} {s:>5} {sps:>14,.0f} {ratio:>10} {comp:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
