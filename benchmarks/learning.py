"""Does it learn? The runs behind oakrl's learning claims, with their bars.

    .venv/bin/python benchmarks/learning.py            # all (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/learning.py cartpole   # one of: cartpole, gym-q, breakout, gym-envs

Each run is exactly the `oakrl run` command printed beside it (same defaults, same seed),
writes its results directory under benchmarks/runs/ and is judged against its bar.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from oakrl.agents import AGENTS
from oakrl.lab.run import run
from oakrl.lab.spec import RunSpec

OUT = Path(__file__).parent / "runs"

# name -> (config, bar on final_return.mean, what the bar means)
RUNS = {
    "cartpole": (
        RunSpec(env="CartPole-v1", agent="stream-ac", steps=300_000, seeds=8),
        400.0,
        "CartPole-v1 caps episodes at 500",
    ),
    "gym-q": (
        RunSpec(env="gym:CartPole-v1", agent="stream-q", steps=100_000, seeds=1),
        150.0,
        "well above random (about 22)",
    ),
    "breakout": (
        RunSpec(env="Breakout-MinAtar", agent="stream-q", steps=100_000, seeds=4),
        4.0,
        "stream-x's own script scored 4.2 at 100k steps on this machine",
    ),
}

# The bridge must run other gymnasium classic-control environments without code changes.
GYM_ENVS = [
    ("gym:Acrobot-v1", "stream-q"),
    ("gym:MountainCar-v0", "stream-q"),
    ("gym:Pendulum-v1", "stream-ac"),
    ("gym:MountainCarContinuous-v0", "stream-ac"),
]


def command(c: RunSpec) -> str:
    return f"oakrl run --env {c.env} --agent {c.agent} --steps {c.steps} --seeds {c.seeds}"


def main(which: list[str]) -> int:
    which = which or [*RUNS, "gym-envs"]
    failed = 0
    for name in which:
        if name == "gym-envs":
            for env, agent in GYM_ENVS:
                assert agent in AGENTS
                cfg = RunSpec(env=env, agent=agent, steps=5_000, seeds=1)
                out = OUT / f"{env.replace(':', '_')}-{agent}"
                shutil.rmtree(out, ignore_errors=True)
                s = run(cfg.replace(out=str(out))).summary
                print(
                    f"{command(cfg):<75} runs: {s['episodes']} episodes, "
                    f"average reward {s['average_reward']['mean']:.3f}, "
                    f"{s['steps_per_second']:,.0f} steps/s",
                    flush=True,
                )
            continue
        cfg, bar, why = RUNS[name]
        out = OUT / name
        shutil.rmtree(out, ignore_errors=True)
        s = run(cfg.replace(out=str(out))).summary
        fr = s["final_return"]
        ok = fr["mean"] is not None and fr["mean"] >= bar
        failed += not ok
        seeds = ", ".join("-" if x is None else f"{x:.1f}" for x in fr["per_seed"])
        print(
            f"{command(cfg):<75} final_return.mean {fr['mean']:.2f} (bar {bar}: {why}) "
            f"{'PASS' if ok else 'FAIL'}; per seed [{seeds}]; {s['steps_per_second']:,.0f} steps/s",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
