"""OaK with learned features (issue 18, item 3): reward per step, lifetime and per segment, per run.

    PYTHONPATH=. .venv/bin/python benchmarks/oak_features.py DIR [DIR ...] [--segment STEPS]

Each DIR is a finished `oakrl run` (made by benchmarks/oak_features.sh). For every run: the
lifetime average reward per step (mean and spread over seeds) and the reward per step in each
segment of `--segment` steps (default: a run's task segments, `every` steps, else 25,000),
from episodes.parquet: the returns of the episodes that ended in the segment over its length
(for continuing worlds each "episode" is a window of reward, so the same sum holds).
On CodedGrid-v0 the best possible is 1 / 3.5 = 0.286 per step (mean shortest path from a
uniformly drawn start cell to the centre of the 7x7 grid: 168 / 48 = 3.5 steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from oakrl.report.runs import load_run


def per_segment(episodes: dict[str, np.ndarray], seeds: int, steps: int, seg: int) -> np.ndarray:
    """[seeds, segments]: reward per step in each segment of `seg` steps."""
    n = -(-steps // seg)
    out = np.zeros((seeds, n))
    which = np.minimum((np.asarray(episodes["step"]) - 1) // seg, n - 1)
    np.add.at(out, (np.asarray(episodes["seed"]), which), np.asarray(episodes["return"], np.float64))
    lengths = np.minimum(seg, steps - np.arange(n) * seg)
    return out / lengths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument(
        "--segment", type=int, default=None, help="steps per segment [the schedule's every, else 25,000]"
    )
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    rows = {}
    for d in args.dirs:
        run = load_run(d)
        cfg, summ = run.config, run.summary
        seg = args.segment or (cfg["every"] if cfg.get("schedule") else 25_000)
        segs = per_segment(run.episodes, cfg["seeds"], cfg["steps"], seg)
        life = np.asarray(summ["average_reward"]["per_seed"])
        rows[Path(d).name] = {
            "lifetime": [float(life.mean()), float(life.std())],
            "segment_steps": seg,
            "segments": [[float(m), float(s)] for m, s in zip(segs.mean(0), segs.std(0), strict=True)],
            "per_seed": life.tolist(),
        }
        parts = "  ".join(f"{m:.3f}±{s:.3f}" for m, s in zip(segs.mean(0), segs.std(0), strict=True))
        print(
            f"{Path(d).name:28s} lifetime {life.mean():.4f} ± {life.std():.4f} | per {seg:,} steps: {parts}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
