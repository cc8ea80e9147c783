"""`oakrl study goals`: goal-q on Rooms-v0 goals it was never commanded, against the exact optimum.

A lifetime of commanded goals: goal-q's goal schedule commands a new cell every `every` steps,
drawn from the training pool (free cells, minus the held-out ones and the world's own goal
cell), for `train_segments` segments; then each held-out cell is commanded once, in turn (never
commanded before). Per held-out segment and seed (one diagnostics chunk per segment):

  * share of steps at the goal (the segment's mean `goal_score`), and its ratio to the optimal
    share rho*(goal), computed exactly from the world's MDP (oakrl/study/goals_optimum.py);
  * steps to first reach (the segment's sum of `goal_unreached`; `every` when never reached).

Arms (each on the same seeds and the same goal schedule, gamma shared):
  * `goal-q`: Q(s, a, g) for every cell g learned from every transition (oakrl/agents/goal_q.py);
  * `goal-q-commanded`: the same agent learning only the goal its action was commanded for (no
    relabelling): what learning every goal from the one stream buys on goals never commanded;
  * `planner`: Gumbel MuZero search over the learned model, scored by the goal, no value;
  * `planner-goal-q`: the same search with goal-q's table (learned from the same stream inside
    the planner) as leaf value and prior, at the same number of simulations.
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

ARMS = ("goal-q", "goal-q-commanded", "planner", "planner-goal-q")
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
    gamma: float = 0.95
    epsilon: float = 0.05  # goal-q's exploration after the first two segments
    lr: float = 0.5  # goal-q's table step size (and the planner's copy of it)
    init_value: float = 0.0  # goal-q's table at the start
    num_simulations: int = 16  # both planner arms
    prior_temperature: float = 0.1  # planner-goal-q's prior: Q / temperature

    def check(self) -> None:
        from oakrl.envs.rooms import FREE, GOALS

        for name in ("every", "train_segments", "seeds", "num_simulations"):
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
    goals = {
        "gamma": cfg.gamma,
        "goal_every": cfg.every,
        "goal_pool": cfg.pool,
        "goal_heldout": tuple(cfg.heldout),
        "heldout_from": cfg.train_segments * cfg.every,
    }
    if arm.startswith("goal-q"):
        return {
            **goals,
            "lr": cfg.lr,
            "init_value": cfg.init_value,
            "epsilon_end": cfg.epsilon,
            "exploration_steps": 2 * cfg.every,
            "relabel": arm == "goal-q",
        }
    # The planner's own Q network learns the world's reward, which a goal search does not read:
    # a small one keeps its cost down; the model (what the search reads) keeps its defaults.
    opts = {**goals, "hidden": (16,), "num_simulations": cfg.num_simulations}
    if arm == "planner-goal-q":
        opts |= {"goal_q": True, "goal_q_lr": cfg.lr, "goal_q_init": cfg.init_value}
        opts["prior_temperature"] = cfg.prior_temperature
    return opts


def run_spec(cfg: GoalsConfig, arm: str):
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env="Rooms-v0", agent="planner" if arm.startswith("planner") else "goal-q", steps=cfg.steps,
        seeds=cfg.seeds, seed=cfg.seed, chunk=cfg.every, agent_options=agent_options(cfg, arm),
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


PAIRS = (("planner-goal-q", "planner"), ("goal-q", "goal-q-commanded"))


def compare(arms: dict[str, Any]) -> dict[str, Any]:
    """Held-out ratio to optimal, arm a minus arm b, for the pairs the study is about.

    "beyond_spread": the difference of the means exceeds the larger of the two seed standard
    deviations; "ranges_disjoint": every seed of a is above every seed of b (the same seeds)."""
    out = {}
    for a, b in PAIRS:
        if a not in arms or b not in arms:
            continue
        ra, rb = arms[a]["heldout_ratio_to_optimal"], arms[b]["heldout_ratio_to_optimal"]
        diff = ra["mean"] - rb["mean"]
        out[f"{a} - {b}"] = {
            "difference": diff,
            "per_seed": [x - y for x, y in zip(ra["per_seed"], rb["per_seed"], strict=True)],
            "beyond_spread": bool(diff > max(ra["std"], rb["std"])),
            "ranges_disjoint": bool(min(ra["per_seed"]) > max(rb["per_seed"])),
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
        "comparisons": compare(arms),
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
    for pair, c in summary["comparisons"].items():
        echo(f"{pair}: {c['difference']:+.3f} (beyond the seed spread: {c['beyond_spread']})")
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
