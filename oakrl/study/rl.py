"""Streaming RL under a world that changes every K steps, per plasticity remedy.

Each method is the same agent with its `plasticity` option set, run in the compiled, vmapped
lab (a RunSpec per method, oakrl.lab.run.execute) under a continual schedule. A "change" is
one segment of K steps between switches. Per change it records the mean return of the
episodes that ended in it (performance), the mean return over the first fifth of it
(learning speed: how soon after a change the agent does well again), and the mean of the
agent's plasticity diagnostics. Every method of a seed uses the same seed keys. `verdict`
states whether a remedy beats plain stream learning on late-task performance by more than
the seed spread.

The default world is CodedGrid-v0 under `permute`: a 7x7 grid whose cells the agent sees
through a dense 64-bit random code, re-coded (the bits permuted) every 2,500 steps, 200
times. It is the RL counterpart of Dohare et al.'s permuted inputs. Plain stream Q(lambda)
(LayerNorm, leaky ReLU, ObGD, as Elsayed et al. 2024), with gamma 0.9 for the grid's paths of
at most 6 steps and epsilon 0.1 so that it keeps exploring after every re-coding, loses
plasticity there: its per-change success rate peaks and then falls over the lifetime while
its weights grow and its dormant fraction rises, and L2-towards-init keeps it learning
(benchmarks/RESULTS.md, "Plasticity (issue 3)"). The earlier default, stream Q on CartPole-v1
whose dynamics cycle every 1,000 steps (`--env CartPole-v1 --schedule switch --every 1000
--tasks 4 --gamma 0.99 --epsilon-end 0.01`), does not lose plasticity: there continual
backprop only gets more of the seeds that plain stream Q leaves stuck unstuck, an effect
smaller than the seed spread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import (
    METHODS,
    echo_methods,
    per_chunk,
    per_task_table,
    plot_per_task,
    retention_summary,
    run_plan,
    start_study,
    step_progress,
    timing,
)

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan, RunResult
    from oakrl.lab.spec import RunSpec

SCHEDULES = ("switch", "permute", "drift")
AGENTS = ("stream-q", "stream-ac")  # the agents that take a plasticity remedy
# Diagnostics kept per change: stream AC names them per network, stream Q has one network.
DIAGNOSTICS = (
    "value_dormant",
    "value_weight_mag",
    "policy_dormant",
    "policy_weight_mag",
    "dormant",
    "weight_mag",
)


@dataclass
class RLConfig:
    env: str = "CodedGrid-v0"
    agent: str = "stream-q"
    schedule: str = "permute"  # switch | permute | drift (reward would change the return's scale)
    changes: int = 200
    every: int = 2_500  # steps between changes
    tasks: int = 200  # distinct worlds, visited cyclically (here: a new code every change)
    gamma: float = 0.9  # the agent's discount: paths in the 7x7 grid are at most 6 steps
    epsilon_end: float = 0.1  # stream-q's lasting exploration: it must find the goal after a change
    seeds: int = 5
    seed: int = 0
    hidden: tuple[int, ...] = (32, 32)
    methods: tuple[str, ...] = METHODS
    chunk: int = 10_000
    options: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "cbp": {"rate": 1e-4, "maturity": 100},
            "redo": {"every": 1000, "tau": 0.1},
            "shrink-perturb": {"shrink": 1e-5, "sigma": 1e-3},
            "l2-init": {"l2": 1e-4},
        }
    )

    def check(self) -> None:
        if self.agent not in AGENTS:
            raise ConfigError(f"--agent must be stream-ac or stream-q, got {self.agent!r}")
        for name in ("changes", "every", "tasks", "seeds", "chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("gamma", "epsilon_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {v!r}")
        if self.changes < 10:
            raise ConfigError(f"changes must be >= 10 (early and late are 10% each), got {self.changes}")
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ConfigError(f"methods must be among {', '.join(METHODS)}, got {self.methods!r}")

    @property
    def steps(self) -> int:
        return self.changes * self.every

    def with_remedy_options(self, text: str | None) -> RLConfig:
        """The config with `--remedy-options` (JSON {remedy: {option: value}}) merged into `options`."""
        if not text:
            return self
        try:
            extra = json.loads(text)
        except ValueError:
            extra = None
        if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
            raise ConfigError(f"--remedy-options takes a JSON object of objects, got {text!r}")
        bad = sorted(set(extra) - set(self.options))
        if bad:
            raise ConfigError(f"--remedy-options: no remedy {bad[0]!r}; valid: {', '.join(self.options)}")
        options = {k: {**v, **extra.get(k, {})} for k, v in self.options.items()}
        return dataclasses.replace(self, options=options)


def agent_options(cfg: RLConfig, method: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"hidden": tuple(cfg.hidden), "plasticity_diagnostics": True, "gamma": cfg.gamma}
    if cfg.agent == "stream-q":
        opts["epsilon_end"] = cfg.epsilon_end
    if method != "backprop":
        opts["plasticity"] = method
    pl = dict(cfg.options.get(method, {}))
    if method == "redo":
        pl.setdefault("max_resets", max(cfg.hidden))  # ReDo resets every dormant unit at a check
    pl.setdefault("rank_every", 0)  # the SVD would run every step under vmap (see learn/plasticity)
    opts["plasticity_options"] = pl
    return opts


def run_spec(cfg: RLConfig, method: str) -> RunSpec:
    """The lab run of one method: the study's world and schedule, the agent with its remedy.

    window 1000 and the unsafe_rbg keys of `cfg.seed` are RunSpec's defaults; stream-q's
    exploration decays over the first 5% of the run (its `exploration_steps` default)."""
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env=cfg.env, agent=cfg.agent, steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed,
        schedule=cfg.schedule, every=cfg.every, tasks=cfg.tasks, chunk=cfg.chunk,
        agent_options=agent_options(cfg, method),
    )  # fmt: skip


def prepare_runs(cfg: RLConfig) -> dict[str, RunPlan]:
    """Every method's run, built and checked (world, schedule, remedy options) before any runs."""
    from oakrl.lab.run import prepare

    cfg.check()
    return {method: prepare(run_spec(cfg, method)) for method in cfg.methods}


def per_change(cfg: RLConfig, result: RunResult) -> dict[str, np.ndarray]:
    """One method's run -> {metric: [S, changes]}: return, early_return and the DIAGNOSTICS.

    return: the mean return of the episodes that ended within the change; early_return: of
    those that ended in its first fifth (`episodes_window` steps); a diagnostic's chunk mean is
    spread over the changes the chunk covers. NaN where no episode ended."""
    ep = result.episodes
    seed, step, ret = ep["seed"], ep["step"], ep["return"]
    window = episodes_window(cfg)
    perf = np.full((cfg.seeds, cfg.changes), np.nan)
    early = np.full((cfg.seeds, cfg.changes), np.nan)
    seg = (step - 1) // cfg.every
    in_seg = (step - 1) % cfg.every
    for s in range(cfg.seeds):
        for c in range(cfg.changes):
            sel = (seed == s) & (seg == c)
            if sel.any():
                perf[s, c] = ret[sel].mean()
            sel_e = sel & (in_seg < window)
            if sel_e.any():
                early[s, c] = ret[sel_e].mean()
    out = {"return": perf, "early_return": early}
    ends, chunks = per_chunk(result.diagnostics, cfg.seeds)
    for name in DIAGNOSTICS:
        if name not in chunks:
            continue
        per = np.full((cfg.seeds, cfg.changes), np.nan)
        start = 0
        for i, end in enumerate(ends.tolist()):
            a, b = start // cfg.every, max(start // cfg.every + 1, end // cfg.every)
            per[:, a:b] = chunks[name][:, i : i + 1]
            start = end
        out[name] = per
    return out


def episodes_window(cfg: RLConfig) -> int:
    """Steps at the start of a change whose episodes measure learning speed (a fifth of it)."""
    return max(1, cfg.every // 5)


def run_rl(
    cfg: RLConfig, progress: Callable[[str, int], None] | None = None, plans: dict[str, RunPlan] | None = None
) -> dict[str, Any]:
    """Runs every method; returns {"metrics": {name: [M, S, changes]}, "timing": {method: {...}}}."""
    plans = plans if plans is not None else prepare_runs(cfg)
    out: dict[str, list] = {}
    timings = {}
    for method, plan in plans.items():
        result = run_plan(method, plan, progress)
        for name, v in per_change(cfg, result).items():
            out.setdefault(name, []).append(v)
        timings[method] = timing(result)
    metrics = {k: np.stack(v) for k, v in out.items()}
    return {"metrics": metrics, "timing": timings, "episodes_window": episodes_window(cfg)}


def config_json(cfg: RLConfig) -> dict:
    return dataclasses.asdict(cfg)


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Changes with no finished episode (possible at tiny K) take the previous change's value."""
    x = np.array(x, np.float64)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        last = 0.0
        for t in range(row.shape[0]):
            if np.isnan(row[t]):
                row[t] = last
            else:
                last = row[t]
    return x


def verdict(per_change: np.ndarray, methods: tuple[str, ...], frac: float = 0.1) -> dict[str, Any]:
    """Does a remedy beat plain stream learning on late-task performance?

    per_change [M, S, C]. late = per seed, the mean over the last `frac` of the changes. A remedy
    beats backprop when its mean late exceeds backprop's by more than the seed spread, taken as
    the larger of the two methods' standard deviations over seeds (ddof=1). The paired view
    (same seed keys for every method) is reported too: mean, std and standard error of the
    per-seed differences, and the share of seeds where the remedy is ahead.
    """
    if "backprop" not in methods:
        return {"remedies": {}}
    k = max(1, int(round(frac * per_change.shape[-1])))
    late = np.asarray(per_change, np.float64)[:, :, -k:].mean(axis=2)  # [M, S]
    sd = late.std(axis=1, ddof=1) if late.shape[1] > 1 else np.zeros(late.shape[0])
    b = methods.index("backprop")
    out = {}
    for i, name in enumerate(methods):
        if i == b:
            continue
        diff = late[i] - late[b]
        out[name] = {
            "margin": float(late[i].mean() - late[b].mean()),
            "spread": float(max(sd[i], sd[b])),
            "beats_backprop": bool(late[i].mean() - late[b].mean() > max(sd[i], sd[b])),
            "paired_difference": {
                "mean": float(diff.mean()),
                "std": float(diff.std(ddof=1)) if diff.size > 1 else 0.0,
                # Whether the remedy helps on average, which the spread rule does not ask:
                # the standard error of the mean difference and the share of seeds it wins.
                "standard_error": float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0,
                "seeds_ahead": float(np.mean(diff > 0)),
                "per_seed": [float(x) for x in diff],
            },
        }
    return {
        "rule": "late(remedy) - late(backprop) > max(std over seeds of either late)",
        "changes_per_window": k,
        "remedies": out,
    }


def study_rl(
    cfg: RLConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: runs, summary.json, metrics.parquet, figure.png; results to `echo`,
    progress to `log`. Every input is checked (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine

    plans = prepare_runs(cfg)
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    result = run_rl(cfg, step_progress(cfg.steps, 50_000, 15, log), plans)
    metrics = result["metrics"]
    perf = fill_nan(metrics["return"])
    summary = {
        "study": "plasticity-rl",
        "command": cmd,
        "performance": "mean return of the episodes that ended within each change (segment of --every steps)",
        **retention_summary(perf, cfg.methods),
        # Tasks cycle: windows of whole cycles (>= 10% of the changes) compare like with like.
        # None when a cycle is longer than half the lifetime (every change a new world).
        "cycle_matched": retention_summary(perf, cfg.methods, window=cycle)
        if (cycle := cfg.tasks * math.ceil(0.1 * cfg.changes / cfg.tasks)) <= cfg.changes // 2
        else None,
        "verdict": verdict(perf, cfg.methods),
        "learning_speed": {
            m: {
                "mean_return_first_fifth_of_change": float(np.nanmean(metrics["early_return"][i])),
                "late": float(np.nanmean(metrics["early_return"][i, :, -max(1, cfg.changes // 10) :])),
            }
            for i, m in enumerate(cfg.methods)
        },
        "timing": result["timing"],
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", per_task_table(metrics, cfg.methods))
    write_json(path / "summary.json", summary)
    plot_per_task(
        path / "figure.png",
        {
            "return": perf,
            "return, first fifth of change": fill_nan(metrics["early_return"]),
            "dormant units": fill_nan(metrics.get("value_dormant", metrics.get("dormant"))),
            # Weight growth is what goes with lost plasticity here (RESULTS, "Plasticity").
            "mean |weight|": fill_nan(metrics.get("value_weight_mag", metrics.get("weight_mag"))),
        },
        cfg.methods,
        f"{cfg.env} {cfg.agent}, {cfg.schedule} every {cfg.every} steps, "
        f"{cfg.changes} changes, {cfg.seeds} seeds",
        cmd,
        smooth=max(1, cfg.changes // 25),
        log_y=("mean |weight|",),  # shrink & perturb's noise sits an order of magnitude above
    )
    echo_methods(summary, echo)
    for name, v in summary["verdict"]["remedies"].items():
        pd = v["paired_difference"]
        echo(
            # 3 significant digits: returns run from 0-1 (success rates) to hundreds (CartPole).
            f"{name:>15}  late - backprop {v['margin']:+.3g} vs seed spread {v['spread']:.3g}: "
            f"{'beats' if v['beats_backprop'] else 'does not beat'} backprop "
            f"(paired {pd['mean']:+.3g} +- {pd['standard_error']:.3g} se, "
            f"ahead on {pd['seeds_ahead']:.0%} of seeds)"
        )
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")
    return summary
