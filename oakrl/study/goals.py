"""`oakrl study goals`: goal-q on Rooms-v0 goals it was never commanded, against the exact optimum.

A lifetime of commanded goals: goal-q's goal schedule commands a new cell every `every` steps,
drawn from the training pool (free cells, minus the held-out ones and the world's own goal
cell), for `train_segments` segments; then each held-out cell is commanded once, in turn (never
commanded before). Per held-out segment and seed (one diagnostics chunk per segment):

  * share of steps at the goal (the segment's mean `goal_score`), and its ratio to the optimal
    share rho*(goal), computed exactly from the world's MDP (oakrl/study/goals_optimum.py);
  * steps to first reach (the segment's sum of `goal_unreached`; `every` when never reached).

Arms: goal-q with its hindsight store, and the same agent with none (hindsight = 0), which can
learn a goal only when it is commanded: the difference is what relabelling buys on new goals.
The planner arms of issue 19 (planner; planner with goal-q's value as leaf value and prior) are
not built yet.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import per_chunk, run_plan, save_study_figure, start_study, step_progress, timing
from oakrl.study.goals_optimum import optimal_goal_rate

ARMS = ("goal-q", "goal-q-no-hindsight")
# Held out by default: one cell per room plus two hallways, all beside a wall (stayable).
HELDOUT = (18, 92, 106, 150, 68, 24)


@dataclass
class GoalsConfig:
    every: int = 2000  # steps per commanded goal (one segment)
    train_segments: int = 40  # segments of training-pool goals before the held-out ones
    heldout: tuple[int, ...] = HELDOUT  # cells never commanded before the held-out phase
    seeds: int = 5
    seed: int = 0
    arms: tuple[str, ...] = ARMS
    hidden: tuple[int, ...] = ()  # () with goal_input outer: a table over (cell, goal) pairs
    goal_input: str = "outer"
    hindsight: int = 8
    hindsight_write: float = 0.02
    gamma: float = 0.95
    epsilon: float = 0.05  # exploration after the first two segments

    def check(self) -> None:
        from oakrl.envs.rooms import FREE, GOALS

        for name in ("every", "train_segments", "seeds"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
        bad = [c for c in self.heldout if c not in set(FREE.tolist()) or c == int(GOALS[0])]
        if bad or not self.heldout:
            raise ConfigError(f"--heldout takes free cells of Rooms-v0 other than {int(GOALS[0])}, got {bad}")
        if not self.arms or any(a not in ARMS for a in self.arms):
            raise ConfigError(f"--arms takes a subset of {','.join(ARMS)}, got {self.arms}")

    @property
    def pool(self) -> tuple[int, ...]:
        from oakrl.envs.rooms import FREE, GOALS

        return tuple(int(c) for c in FREE if c not in self.heldout and c != int(GOALS[0]))

    @property
    def steps(self) -> int:
        return (self.train_segments + len(self.heldout)) * self.every


def agent_options(cfg: GoalsConfig, arm: str) -> dict[str, Any]:
    return {
        "hidden": tuple(cfg.hidden),
        "goal_input": cfg.goal_input,
        "gamma": cfg.gamma,
        "normalize_obs": bool(cfg.hidden) and cfg.goal_input == "concat",
        "scale_reward": False,
        "epsilon_end": cfg.epsilon,
        "exploration_steps": 2 * cfg.every,
        "hindsight": cfg.hindsight if arm == "goal-q" else 0,
        "hindsight_write": cfg.hindsight_write,
        "goal_every": cfg.every,
        "goal_pool": cfg.pool,
        "goal_heldout": tuple(cfg.heldout),
        "heldout_from": cfg.train_segments * cfg.every,
    }


def run_spec(cfg: GoalsConfig, arm: str):
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env="Rooms-v0", agent="goal-q", steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed, chunk=cfg.every,
        agent_options=agent_options(cfg, arm),
    )  # fmt: skip


def summarize(cfg: GoalsConfig, chunks: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """{arm: {diagnostic: [S, segments]}} -> the `arms` map of summary.json."""
    optimum = np.array([optimal_goal_rate(c) for c in cfg.heldout])
    out: dict[str, Any] = {}
    for arm, d in chunks.items():
        share = d["goal_score"][:, cfg.train_segments :]  # [S, heldout]
        first = d["goal_unreached"][:, cfg.train_segments :] * cfg.every
        ratio = share / optimum
        per_seed = ratio.mean(axis=1)
        train = d["goal_score"][:, : cfg.train_segments]
        out[arm] = {
            "heldout_ratio_to_optimal": {
                "mean": float(per_seed.mean()),
                "std": float(per_seed.std(ddof=1)) if cfg.seeds > 1 else 0.0,
                "per_seed": [float(x) for x in per_seed],
                "per_goal": {str(c): float(x) for c, x in zip(cfg.heldout, ratio.mean(axis=0), strict=True)},
            },
            "heldout_share_at_goal": float(share.mean()),
            "heldout_steps_to_first_reach": {
                "mean": float(first.mean()),
                "per_goal": {str(c): float(x) for c, x in zip(cfg.heldout, first.mean(axis=0), strict=True)},
            },
            "training_share_last_5_segments": float(train[:, -5:].mean()),
            "meets_bar_0.7": bool(per_seed.mean() >= 0.7),
        }
    return out


def study_goals(cfg: GoalsConfig, out: str, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every arm, writes summary.json, goals.png and per_segment.json under `out`."""
    from oakrl.lab.run import prepare

    cfg.check()
    plans = {arm: prepare(run_spec(cfg, arm)) for arm in cfg.arms}
    path, cmd = start_study(
        out, {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    )
    progress = step_progress(cfg.steps, 10 * cfg.every, max(map(len, cfg.arms)), echo)
    chunks, timings, t0 = {}, {}, time.time()
    for arm, plan in plans.items():
        result = run_plan(arm, plan, progress)
        _, d = per_chunk(result.diagnostics, cfg.seeds)
        chunks[arm] = {k: np.asarray(v, np.float64) for k, v in d.items()}
        timings[arm] = timing(result)
    arms = summarize(cfg, chunks)
    for arm in arms:
        arms[arm]["timing"] = timings[arm]
    summary = {
        "study": "goals",
        "heldout": list(cfg.heldout),
        "optimal_share": {str(c): optimal_goal_rate(c) for c in cfg.heldout},
        "arms": arms,
        "wall_seconds": time.time() - t0,
        "command": cmd,
    }
    from oakrl.io import write_json

    write_json(
        path / "per_segment.json", {a: {k: v.tolist() for k, v in d.items()} for a, d in chunks.items()}
    )
    write_json(path / "summary.json", summary)
    figure(cfg, chunks, path, cmd)
    for arm, s in arms.items():
        r = s["heldout_ratio_to_optimal"]
        echo(
            f"{arm}: held-out goal_score / optimal {r['mean']:.3f} +- {r['std']:.3f} (seeds {cfg.seeds}); "
            f"steps to first reach {s['heldout_steps_to_first_reach']['mean']:.0f}"
        )
    echo(f"results: {path}")
    return summary


def figure(cfg: GoalsConfig, chunks: dict[str, dict[str, np.ndarray]], path, cmd: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for arm, d in chunks.items():
        s = d["goal_score"]
        m, e = s.mean(axis=0), s.std(axis=0) / np.sqrt(max(1, s.shape[0]))
        x = np.arange(1, s.shape[1] + 1)
        ax.plot(x, m, label=arm)
        ax.fill_between(x, m - e, m + e, alpha=0.2)
    ax.axvline(cfg.train_segments + 0.5, color="k", ls=":", lw=1)
    ax.set_xlabel("segment (commanded goal); right of the line: held-out goals")
    ax.set_ylabel("share of steps at the goal")
    ax.legend()
    save_study_figure(fig, path / "goals.png", cmd)
    plt.close(fig)


def _json(x: Any) -> str:
    return json.dumps(x)
