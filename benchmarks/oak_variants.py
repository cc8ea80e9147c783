"""Recovery of OaK variants on the `oakrl study oak` schedule (a screening tool, not the study).

Each variant is the study's `oak` run config with agent options merged in (the names `dyna` and
`stream-q` run the study's own config of that agent); recovery and first
reach are read with the study's own `recovery`. Prints one line per variant.

  .venv/bin/python benchmarks/oak_variants.py \
      '{"oak": {}, "oak-primitive": {"use_options": false}}' --seeds 3 --relocations 5
  .venv/bin/python benchmarks/oak_variants.py '{"oak": {}, "dyna": {}}' --env NineRooms-v0 --every 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from oakrl.lab.run import run
from oakrl.lab.tables import read_episodes
from oakrl.study.oak import OakStudyConfig, recovery, run_spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", help="JSON {name: agent options}, e.g. '{\"oak\": {}}'")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--relocations", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", default="Rooms-v0", help="Rooms-v0 or NineRooms-v0")
    p.add_argument("--every", type=int, default=5_000, help="steps between relocations")
    p.add_argument("--keep", default=None, help="keep the runs in this directory (default: a temporary one)")
    args = p.parse_args()
    variants = json.loads(args.variants)
    cfg = OakStudyConfig(
        env=args.env, every=args.every, seeds=args.seeds, relocations=args.relocations, seed=args.seed,
        second_world=None,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for name, opts in variants.items():
            if name in ("dyna", "stream-q"):  # the study's own run of that agent, options as it sets them
                rc = run_spec(cfg, name).replace(out=str(Path(tmp) / name))
            else:
                rc = run_spec(cfg, "oak").replace(agent_options=opts, out=str(Path(tmp) / name))
            t = time.perf_counter()
            summary = run(rc).summary
            rec = recovery(read_episodes(Path(tmp) / name / "episodes.parquet"), cfg)
            steps, first = rec["steps"].mean(axis=1), rec["first_reach"].mean(axis=1)
            ar = summary["average_reward"]
            ar = ar["mean"] if isinstance(ar, dict) else ar
            print(
                f"{name:24s} recovery {steps.mean():6.0f} ({steps.std(ddof=1):4.0f}) "
                f"first reach {first.mean():5.0f} ({first.std(ddof=1):4.0f}) "
                f"recovered {rec['recovered'].mean():.2f} average reward {ar:.4f} "
                f"{time.perf_counter() - t:.0f} s  per seed {np.round(steps).astype(int).tolist()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
