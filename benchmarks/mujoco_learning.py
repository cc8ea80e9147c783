"""stream AC on MuJoCo at the paper's budget, next to stream-x's figure; resumable, and reports partial runs.

    PYTHONPATH=. .venv/bin/python benchmarks/mujoco_learning.py --out runs/mujoco   # run or resume
    PYTHONPATH=. .venv/bin/python benchmarks/mujoco_learning.py --out runs/mujoco --report  # so far

Each task is one ordinary oakrl run (`oakrl run --env gym:ID --agent stream-ac --steps 2000000
--seeds 3 --env-opt time_feature=true --opt obs_raw_tail=1`), so an interrupted benchmark resumes
from its last checkpoint by running the same command again. The settings are stream-x's for MuJoCo
(Elsayed, Vasan & Mahmood 2024; their stream_ac_continuous.py): stream AC's defaults (width 128,
two layers with LayerNorm and leaky ReLU, sparse init 0.9, lr 1, gamma 0.99, lambda 0.8,
kappa 3 / 2, entropy 0.01, observation normalisation, reward scaling) plus the time-in-episode
feature, kept out of observation normalisation (obs_raw_tail=1: their code appends it after
normalising). Differences left: it reads -0.5 + k / T after k steps (theirs lags one step); their
observation normaliser also sees each episode's terminal observation; gymnasium v5 environments
(the paper: v4). benchmarks/RESULTS.md has the table of differences.

The report: per task and seed, the mean return of episodes in each 100k-step bin, and the final
average return (mean over seeds of each seed's last 10 episodes) with the paper's figure where
the paper gives one (Walker2d: ~4,335, their Figure 1 as read from the figure; its budget is not
given there, possibly 20M steps rather than 2M: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from oakrl.lab import RunSpec, execute, prepare
from oakrl.lab.tables import read_episodes

PAPER = {"gym:Walker2d-v5": "~4,335 (Walker2d-v4, Figure 1)", "gym:HalfCheetah-v5": "see their Figure 4"}


def report(path: Path, env: str, steps: int) -> None:
    if not (path / "episodes.parquet").exists():
        print(f"{env}: nothing recorded yet in {path}")
        return
    ep = read_episodes(path / "episodes.parquet")
    reached = int(ep["step"].max()) if ep["step"].size else 0
    finals = []
    print(f"{env}: episodes up to step {reached:,} of {steps:,} ({path})")
    for s in np.unique(ep["seed"]):
        m = ep["seed"] == s
        r, st = ep["return"][m], ep["step"][m]
        bins = []
        for lo in range(0, reached, 100_000):
            inside = (st > lo) & (st <= lo + 100_000)
            bins.append(f"{np.mean(r[inside]):.0f}" if inside.any() else "-")
        finals.append(float(np.mean(r[-10:])))
        print(f"  seed {s}: last 10 episodes {finals[-1]:.1f}; mean per 100k steps: {' '.join(bins)}")
    print(f"  average of the seeds' last 10 episodes: {np.mean(finals):.1f} (paper: {PAPER.get(env, '-')})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="one results directory per task goes under it")
    p.add_argument("--envs", default="gym:Walker2d-v5,gym:HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=2_000_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--report", action="store_true", help="only report what the directories hold")
    args = p.parse_args()
    for env in args.envs.split(","):
        path = Path(args.out) / env.removeprefix("gym:")
        if not args.report:
            spec = RunSpec(
                env=env, agent="stream-ac", steps=args.steps, seeds=args.seeds,
                env_options={"time_feature": True}, agent_options={"obs_raw_tail": 1}, out=str(path),
            )  # fmt: skip
            t = time.perf_counter()
            result = execute(prepare(spec))
            sps = result.summary["steps_per_second"]
            print(f"{env}: wall {time.perf_counter() - t:,.0f} s, {sps:,.0f} steps/s")
        report(path, env, args.steps)


if __name__ == "__main__":
    main()
