"""Per-step cost of the gymnasium bridge, for A/B comparisons between commits.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/bridge_ab.py [--steps 20000] [--repeats 3]

Runs one stream AC agent on gym:CartPole-v1 through `run_gym` of whichever oakrl is first on
the path (so a worktree of an older commit can be measured beside this one) and prints its
agent-steps per second of wall time and per second of process CPU time, over the second half of
the stream (after compiling and warm-up). CPU time counts every
thread of the process and not time spent waiting for the cores, so it stays comparable when
other work shares the machine; wall time does not.
"""

from __future__ import annotations

import argparse
import statistics
import time

import oakrl

try:  # the gymnasium path's own module (0.2, later)
    from oakrl.lab.bridge import run_gym
except ImportError:
    from oakrl.lab.stream import run_gym

try:  # the pipeline (0.2)
    from oakrl.lab.run import build, seed_keys
    from oakrl.lab.spec import RunSpec as Spec

    def keys_of(spec):
        return seed_keys(spec.seed, spec.seeds, spec.prng)
except ImportError:  # before it (0.1)
    from oakrl.lab.run import RunConfig as Spec
    from oakrl.lab.run import build, seed_keys

    keys_of = seed_keys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--label", default="")
    args = p.parse_args()
    half = args.steps // 2
    spec = Spec(env="gym:CartPole-v1", agent="stream-ac", steps=2 * half, seeds=1, chunk=half)
    handle, agent = build(spec)
    wall, cpu = [], []
    for _ in range(args.repeats):
        marks: list[tuple[float, float]] = []

        def on_chunk(_record, marks=marks) -> None:
            marks.append((time.perf_counter(), time.process_time()))

        run_gym(agent, handle, spec.steps, keys_of(spec), [0], spec.chunk, on_chunk=on_chunk)
        # The second chunk only: compiling and the first steps' warm-up are outside it.
        (w0, c0), (w1, c1) = marks[-2:]  # 0.1 also marked the start with an empty chunk
        wall.append(half / (w1 - w0))
        cpu.append(half / (c1 - c0))
    print(
        f"{args.label or oakrl.__file__} wall {statistics.median(wall):,.0f} "
        f"{[round(x) for x in wall]} cpu {statistics.median(cpu):,.0f} {[round(x) for x in cpu]}",
        flush=True,
    )


if __name__ == "__main__":
    main()
