"""Long OaK rows of `oakrl study oak` on NineRooms-v0 that can be read while they run (issue 18).

`run` runs one row of the study's run config (`oakrl/study/oak.py` `run_spec`; `oak` with agent
options, or `dyna` / `stream-q` as the study runs them) with its tables written at every chunk,
so a row stopped early (the shared machine) still leaves its episodes; `read` prints, per row
and seed, the reward per step over the steps done, the goal reaches per segment, recovery and
first reach after each finished relocation (the study's own `recovery`) and the first reach
in the segment under way (censored at the steps done).

  .venv/bin/python benchmarks/oak_lifetime.py run oak '{}' --every 10000 --relocations 3 --out DIR/oak
  .venv/bin/python benchmarks/oak_lifetime.py run oak-primitive '{"use_options": false}' ... --out DIR/ab
  .venv/bin/python benchmarks/oak_lifetime.py read --every 10000 DIR/oak DIR/ab
  .venv/bin/python benchmarks/oak_lifetime.py pair DIR/oak,DIR1/oak DIR/ab,DIR1/ab --at 20000 40000

`--seed 1` runs an independent set of seeds (other keys, the same worlds and goal moves), to
check a difference found on the first set.

A row is lengthened (more moves of the goal, the same schedule) with `oakrl resume DIR --steps N`
(N a multiple of the row's 5,000-step chunk): the row then is the row made N steps long.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from oakrl.lab.run import run
from oakrl.lab.tables import read_episodes, read_table
from oakrl.study.oak import OakStudyConfig, recovery, run_spec


def run_row(args: argparse.Namespace) -> None:
    cfg = OakStudyConfig(
        env=args.env,
        every=args.every,
        seeds=args.seeds,
        seed=args.seed,
        relocations=args.relocations,
        second_world=None,
    )
    if args.name in ("dyna", "stream-q"):
        rc = run_spec(cfg, args.name)
    else:
        rc = run_spec(cfg, "oak").replace(agent_options=json.loads(args.options))
    rc = rc.replace(out=args.out, checkpoint_every=None)  # tables and checkpoint at every chunk
    t = time.perf_counter()
    summary = run(rc).summary
    print(args.name, f"done in {time.perf_counter() - t:.0f} s", json.dumps(summary.get("average_reward")))


def read_rows(args: argparse.Namespace) -> None:
    every = args.every
    for d in map(Path, args.dirs):
        if not (d / "episodes.parquet").exists():
            print(d.name, "no tables yet")
            continue
        ep = read_episodes(d / "episodes.parquet")
        seeds = int(np.max(ep["seed"])) + 1
        done = int(np.max(read_table(d / "diagnostics.parquet")["step"]))
        reach = (ep["return"] > 0) & (ep["step"] <= done)
        ar = reward_per_seed(d, done)
        print(
            f"{d.name:16s} steps {done:6d}  reward per step {ar.mean():.4f} (sd {sd(ar):.4f}) "
            f"per seed {np.round(ar, 4).tolist()}"
        )
        segs = -(-done // every)
        per_seg = np.zeros((seeds, segs), int)
        for i in range(seeds):
            s = ep["step"][(ep["seed"] == i) & reach]
            np.add.at(per_seg[i], np.clip((s - 1) // every, 0, segs - 1), 1)
        print(f"   goal reaches per segment, per seed: {per_seg.tolist()}")
        relocs = done // every - 1
        if relocs >= 1:
            cfg = OakStudyConfig(
                env=args.env, every=every, seeds=seeds, relocations=relocs, second_world=None
            )
            rec = recovery(ep, cfg)
            ps = rec["steps"].mean(axis=1)
            print(
                f"   recovery {ps.mean():.0f} (sd {sd(ps):.0f}) per seed x relocation "
                f"{rec['steps'].astype(int).tolist()}; first reach {rec['first_reach'].astype(int).tolist()}"
            )
        if done % every and done > every:  # the segment under way
            start = done // every * every
            first = []
            for i in range(seeds):
                s = ep["step"][(ep["seed"] == i) & reach & (ep["step"] > start)]
                first.append(int(s.min() - start) if s.size else None)
            print(f"   segment from {start}: first reach per seed (None: not within {done - start}) {first}")


def sd(x: np.ndarray) -> float:
    """The sample sd over seeds (ddof 1), nan for a one-seed row (without numpy's warning)."""
    return float(np.std(x, ddof=1)) if np.size(x) > 1 else float("nan")


def reward_per_seed(d: Path, steps: int) -> np.ndarray:
    """[seeds] reward per step over the first `steps` steps of row `d` (episodes.parquet)."""
    ep = read_episodes(d / "episodes.parquet")
    seeds = int(np.max(ep["seed"])) + 1
    per_seed = [ep["return"][(ep["seed"] == i) & (ep["step"] <= steps)].sum() / steps for i in range(seeds)]
    return np.array(per_seed)


def pair_rows(args: argparse.Namespace) -> None:
    """Rows A and B pooled over their seed sets (A's i-th dir against B's i-th: the same seeds'
    keys), at each T: means (sd over seeds), margin, and how many seeds A is ahead of B."""
    a_dirs, b_dirs = [Path(d) for d in args.a.split(",")], [Path(d) for d in args.b.split(",")]
    for t in args.at:
        a = np.concatenate([reward_per_seed(d, t) for d in a_dirs])
        b = np.concatenate([reward_per_seed(d, t) for d in b_dirs])
        diff = a - b
        print(
            f"T={t}: A {a.mean():.4f} (sd {sd(a):.4f})  B {b.mean():.4f} (sd {sd(b):.4f})  "
            f"margin {diff.mean():.4f}; A ahead in {int((diff > 0).sum())} of {diff.size} seeds "
            f"(sd of the difference {sd(diff):.4f})"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("name")
    r.add_argument("options", help="JSON agent options of the oak row, e.g. '{\"use_options\": false}'")
    r.add_argument("--out", required=True)
    q = sub.add_parser("read")
    q.add_argument("dirs", nargs="+")
    c = sub.add_parser("pair", help="two rows over several seed sets, seed by seed")
    c.add_argument("a", help="row A's directories, comma-separated (one per base seed)")
    c.add_argument("b", help="row B's directories, in the same order")
    c.add_argument("--at", type=int, nargs="+", required=True, help="steps T to compare at")
    for a in (r, q):
        a.add_argument("--env", default="NineRooms-v0")
        a.add_argument("--every", type=int, default=10_000)
    r.add_argument("--relocations", type=int, default=3)
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--seed", type=int, default=0, help="base seed: another value draws other seeds' keys")
    args = p.parse_args()
    {"run": run_row, "read": read_rows, "pair": pair_rows}[args.cmd](args)


if __name__ == "__main__":
    main()
