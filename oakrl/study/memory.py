"""`oakrl study memory`: stream-q with episodic memory vs the same agent without, in worlds that change.

Conditions: stream-q as it is (`no-memory`) and stream-q with `--opt memory={...}` (one
condition per `--memory` table: `memory`, or `memory-1`, `memory-2`, ...). Everything else is
equal: the same options, the same seeds (the same keys), the same lifetime. Worlds, each a goal
world (reward 1 at the goal, else 0) under a cyclic task schedule, so each task comes back:

* `Rooms-v0` under `switch`, 4 tasks: the goal moves to another room's corner every K steps
  (the dynamics stay); stream-q linear in the one-hot cell (a table), as `oakrl study
  model-based` runs it (gamma 0.95, epsilon 0.1 after the first half-segment).
* `CodedGrid-v0` under `permute`, 2 tasks: the 64-bit code of the cell is re-permuted every K
  steps and the first code returns every other segment; stream-q with 32x32 hidden units and
  gamma 0.9, epsilon 0.1, as `oakrl study plasticity-rl` runs it.

Per world, condition and seed (summary.json `worlds`):

* recovery steps after each change: the first step tau after the change at which the goal
  reaches in (max(change, tau - window), tau] number at least threshold x window x the optimal
  rate (1 / mean shortest-path length from the uniform start cells to the task's goal); the
  segment length K (censored, counted) when never. The same definition as `oakrl study
  model-based` (its `recovery_steps`).
* forgetting on return: the lab's per-task forgetting (oakrl/lab/metrics.py `task_metrics`:
  last quarter of a visit minus the first quarter of the next visit to the same task, episode
  returns), averaged over the tasks that are revisited. Positive: worse on return.
* forgetting on return in goal-reach rate (`forgetting_rate`; CodedGrid's 18-step episodes mostly
  reach the goal even when the agent has forgotten, so episode returns hide it): the goal-reach
  rate / optimal over the last quarter of a task's visit minus that over the first quarter of
  the task's next visit, averaged over the returns.
* early-life sample efficiency: the goal-reach rate over the first segment (the first 1/segments
  of the lifetime, learning from scratch) as a share of the optimal rate (area under the
  reward-rate curve, normalised).

Each is reported as the mean over seeds with the seed sd, min and max; `difference` is memory
minus no-memory (means) and its paired per-seed values, and `beyond_spread` says whether the
difference's size exceeds the larger of the two conditions' seed sds.

Cost (summary.json `cost`): agent-steps per CPU-second of the stream (compile excluded) of each
condition, run one after another in this process (a CPU-time ratio, since the machine may be
shared), and the bytes of one seed's agent state (the leaves of `jax.eval_shape` of init).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import run_plan, save_study_figure, start_study, step_progress, timing
from oakrl.study.model_based import recovery_steps

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan
    from oakrl.lab.spec import RunSpec

# world -> (schedule, tasks, the agent's options apart from memory)
WORLDS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "Rooms-v0": ("switch", 4, {"hidden": (), "gamma": 0.95, "scale_reward": False, "normalize_obs": False}),
    "CodedGrid-v0": ("permute", 2, {"hidden": (32, 32), "gamma": 0.9}),
}
DEFAULT_MEMORY = {"size": 512, "k": 8, "mix": 0.5}
BASE = "no-memory"


@dataclass
class MemoryStudyConfig:
    envs: tuple[str, ...] = tuple(WORLDS)
    steps: int = 40_000  # lifetime per world and seed
    segments: int = 10  # task segments of steps / segments each (changes: segments - 1)
    seeds: int = 5
    seed: int = 0
    memories: tuple[dict, ...] = (DEFAULT_MEMORY,)  # one condition per table
    epsilon: float = 0.1  # exploration after the first half-segment
    window: int = 1_000  # steps of the recovery measure's window
    threshold: float = 0.3  # recovered: goal reaches in the window >= this x window x optimal rate
    memory_tables: tuple[dict, ...] = field(default=(), repr=False)  # checked tables (filled by check)

    def check(self) -> None:
        from oakrl.agents.stream_q import memory_options

        for name in ("steps", "segments", "seeds", "window"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {v!r}")
        if self.segments < 2:
            raise ConfigError(f"--segments must be >= 2 (a change needs two segments), got {self.segments}")
        if self.steps % self.segments:
            raise ConfigError(f"--steps ({self.steps}) must be a multiple of --segments ({self.segments})")
        if self.window > self.every:
            raise ConfigError(f"--window ({self.window}) must not exceed a segment ({self.every} steps)")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"--threshold must be in (0, 1], got {self.threshold}")
        if not 0 <= self.epsilon <= 1:
            raise ConfigError(f"--epsilon must be in [0, 1], got {self.epsilon}")
        bad = [e for e in self.envs if e not in WORLDS]
        if bad or not self.envs:
            raise ConfigError(f"--envs takes a subset of {','.join(WORLDS)}, got {bad or list(self.envs)}")
        if not self.memories:
            raise ConfigError("give at least one --memory table")
        tables = []
        for m in self.memories:
            if not m:
                raise ConfigError("--memory must not be empty ({} is the no-memory condition, always run)")
            tables.append(memory_options(m))
        self.memory_tables = tuple(tables)

    @property
    def every(self) -> int:
        return self.steps // self.segments

    @property
    def conditions(self) -> tuple[str, ...]:
        n = len(self.memories)
        return (BASE, *(("memory",) if n == 1 else tuple(f"memory-{i + 1}" for i in range(n))))

    def memory_of(self, condition: str) -> dict:
        if condition == BASE:
            return {}
        i = 0 if condition == "memory" else int(condition.rsplit("-", 1)[1]) - 1
        return dict((self.memory_tables or self.memories)[i])


def parse_memory(text: str) -> dict:
    """A `--memory` table: TOML's inline table ({size=512,k=8,mix=0.5}, as in a config file) or
    a Python dict literal ({"size": 512}, as `--opt memory=`); checked by stream-q's rules."""
    import tomllib

    from oakrl.agents.stream_q import memory_options
    from oakrl.lab.parse import parse_options

    try:
        table = tomllib.loads(f"m = {text}")["m"]
    except tomllib.TOMLDecodeError:
        try:
            table = parse_options("stream-q", [f"memory={text}"])["memory"]
        except ConfigError:
            raise ConfigError(f"--memory takes a table like {{size=512,k=8,mix=0.5}}, got {text!r}") from None
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"--memory takes a non-empty table like {{size=512,k=8,mix=0.5}}, got {text!r}")
    return memory_options(table)


def agent_options(cfg: MemoryStudyConfig, world: str, condition: str) -> dict[str, Any]:
    """The world's stream-q options; only `memory` differs between conditions."""
    opts = dict(WORLDS[world][2])
    opts.update(epsilon_end=cfg.epsilon, exploration_steps=max(1, cfg.every // 2))
    mem = cfg.memory_of(condition)
    if mem:
        opts["memory"] = mem
    return opts


def run_spec(cfg: MemoryStudyConfig, world: str, condition: str) -> RunSpec:
    from oakrl.lab.spec import RunSpec

    schedule, tasks, _ = WORLDS[world]
    return RunSpec(
        env=world, agent="stream-q", steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed, schedule=schedule,
        every=cfg.every, tasks=tasks, order="cyclic", chunk=cfg.every,
        agent_options=agent_options(cfg, world, condition),
    )  # fmt: skip


def optimal_rate(world: str, task: int) -> float:
    """Goal reaches per step of the best policy for `task` (starts uniform over non-goal cells)."""
    if world == "Rooms-v0":
        from oakrl.envs.rooms import FREE, GOALS, shortest_paths

        goal = int(GOALS[task % 4])  # switch: task k puts the goal in room k % 4's corner
        dist = shortest_paths(goal)
        return 1.0 / float(np.mean(dist[[c for c in FREE if c != goal]]))
    from oakrl.envs.coded_grid import CodedGrid

    g = CodedGrid()  # permute keeps the goal (the centre): the same rate for every task
    gr, gc = divmod(g.goal, g.size)
    d = [abs(r - gr) + abs(c - gc) for r in range(g.size) for c in range(g.size) if (r, c) != (gr, gc)]
    return 1.0 / float(np.mean(d))


def spread(x: np.ndarray) -> dict[str, Any]:
    """mean, sd (ddof 1), min, max and per-seed values of a per-seed vector (NaN: undefined)."""
    x = np.asarray(x, np.float64)
    ok = x[np.isfinite(x)]
    return {
        "mean": float(ok.mean()) if ok.size else None,
        "sd": float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
        "min": float(ok.min()) if ok.size else None,
        "max": float(ok.max()) if ok.size else None,
        "per_seed": [float(v) if np.isfinite(v) else None for v in x],
    }


def seed_metrics(
    world: str, cfg: MemoryStudyConfig, seed_col: np.ndarray, step: np.ndarray, ret: np.ndarray,
    task: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """One condition's episodes -> {recovery [S, changes], censored [S, changes], forgetting [S],
    early [S]} (see the module doc)."""
    from oakrl.lab.metrics import task_metrics

    _, tasks, _ = WORLDS[world]
    changes = cfg.segments - 1
    rates = np.array([optimal_rate(world, c % tasks) for c in range(cfg.segments)])
    rec = np.zeros((cfg.seeds, changes))
    cens = np.zeros((cfg.seeds, changes), bool)
    early = np.zeros(cfg.seeds)
    forg_rate = np.full(cfg.seeds, np.nan)
    for s in range(cfg.seeds):
        succ = step[(seed_col == s) & (ret > 0)]
        for c in range(1, cfg.segments):
            need = cfg.threshold * cfg.window * rates[c]
            r = recovery_steps(succ, c * cfg.every, cfg.every, cfg.window, need)
            rec[s, c - 1] = cfg.every if r is None else r
            cens[s, c - 1] = r is None
        early[s] = np.count_nonzero(succ <= cfg.every) / (cfg.every * rates[0])
        # Forgetting in goal-reach rate (share of optimal): the last quarter of the task's previous
        # visit (segment c - tasks, cyclic) minus the first quarter of its return (segment c).
        q = cfg.every // 4

        def share(a: int, b: int, c: int, succ=succ) -> float:
            return np.count_nonzero((succ > a) & (succ <= b)) / ((b - a) * rates[c])

        drops = [
            share((c - tasks + 1) * cfg.every - q, (c - tasks + 1) * cfg.every, c - tasks)
            - share(c * cfg.every, c * cfg.every + q, c)
            for c in range(tasks, cfg.segments)
        ]
        forg_rate[s] = float(np.mean(drops)) if drops else np.nan
    per_task = task_metrics(seed_col, step, ret, task, cfg.seeds, cfg.steps, cfg.every, tasks)
    forg = np.full(cfg.seeds, np.nan)
    for s in range(cfg.seeds):
        vals = [
            t["forgetting"]["per_seed"][s] for t in per_task if t["forgetting"]["per_seed"][s] is not None
        ]
        if vals:
            forg[s] = float(np.mean(vals))
    return {
        "recovery": rec,
        "censored": cens,
        "forgetting": forg,
        "forgetting_rate": forg_rate,
        "early": early,
    }


# Which way is better for each metric (recovery and forgetting: lower; early: higher).
LOWER_IS_BETTER = {"recovery": True, "forgetting": True, "forgetting_rate": True, "early": False}


def compare(base: dict[str, np.ndarray], mem: dict[str, np.ndarray]) -> dict[str, Any]:
    """memory - no-memory per metric: difference of means, paired per-seed differences, and
    whether the difference exceeds the larger seed sd of the two conditions, in memory's favour."""
    out = {}
    for name, lower in LOWER_IS_BETTER.items():
        a = base[name].mean(axis=1) if base[name].ndim == 2 else base[name]
        b = mem[name].mean(axis=1) if mem[name].ndim == 2 else mem[name]
        sa, sb = spread(a), spread(b)
        if sa["mean"] is None or sb["mean"] is None:
            out[name] = {"difference": None, "paired": spread(b - a), "spread": None, "beyond_spread": False,
                         "memory_better_beyond_spread": False}  # fmt: skip
            continue
        diff = sb["mean"] - sa["mean"]
        sd = max(sa["sd"], sb["sd"])
        beyond = abs(diff) > sd
        out[name] = {
            "difference": diff,
            "paired": spread(b - a),
            "spread": sd,
            "beyond_spread": bool(beyond),
            "memory_better_beyond_spread": bool(beyond and (diff < 0 if lower else diff > 0)),
        }
    return out


def summarize_world(world: str, cfg: MemoryStudyConfig, metrics: dict[str, dict[str, np.ndarray]]) -> dict:
    """{condition: seed_metrics} -> the world's entry of summary.json `worlds`."""
    conds: dict[str, Any] = {}
    for name, m in metrics.items():
        conds[name] = {
            "memory": cfg.memory_of(name) or None,
            "recovery_steps": {
                **spread(m["recovery"].mean(axis=1)),
                "per_change": [float(x) for x in m["recovery"].mean(axis=0)],
                "censored": int(m["censored"].sum()),
            },
            "forgetting": spread(m["forgetting"]),
            "forgetting_rate": spread(m["forgetting_rate"]),
            "early_share_of_optimal": spread(m["early"]),
        }
    diffs = {name: compare(metrics[BASE], m) for name, m in metrics.items() if name != BASE}
    schedule, tasks, _ = WORLDS[world]
    return {
        "schedule": schedule,
        "tasks": tasks,
        "every": cfg.every,
        "optimal_rate_per_task": [optimal_rate(world, t) for t in range(tasks)],
        "conditions": conds,
        "difference": diffs,
    }


def state_bytes(plan: RunPlan) -> int:
    """Bytes of one seed's agent state (the leaves of init's shapes; nothing is computed)."""
    import jax

    start = jax.eval_shape(
        lambda k: plan.agent.init(k, plan.handle.obs_spec, plan.handle.action_spec), jax.random.key(0)
    )
    return int(sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(start[0])))


def run_one(name: str, plan: RunPlan, progress: Callable[[str, int], None]) -> tuple[Any, float]:
    """(result, CPU seconds of the stream after compiling): the CPU clock starts at the first
    progress event (the lab reports `Started` once compiled)."""
    marks: list[float] = []

    def on(n: str, step: int) -> None:
        if not marks:
            marks.append(time.process_time())
        progress(n, step)

    result = run_plan(name, plan, on)
    return result, time.process_time() - (marks[0] if marks else time.process_time())


def plot(path, cfg: MemoryStudyConfig, curves: dict, summary: dict, command: str) -> None:
    """Per world: goal-reach rate / optimal over the lifetime, and recovery steps per change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worlds = list(curves)
    fig, axes = plt.subplots(len(worlds), 2, figsize=(13, 3.8 * len(worlds)), squeeze=False)
    for row, world in zip(axes, worlds, strict=True):
        ax = row[0]
        for i, (name, (mid, c)) in enumerate(curves[world].items()):
            m = c.mean(0)
            se = c.std(0, ddof=1) / np.sqrt(c.shape[0]) if c.shape[0] > 1 else 0 * m
            ax.plot(mid, m, lw=1.1, label=name, color=f"C{i}")
            ax.fill_between(mid, m - se, m + se, alpha=0.2, color=f"C{i}")
        for c in range(1, cfg.segments):
            ax.axvline(c * cfg.every, color="k", lw=0.5, ls=":")
        ax.axhline(cfg.threshold, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("step")
        ax.set_ylabel("goal reaches / optimal rate")
        ax.set_title(f"{world} ({WORLDS[world][0]}, {WORLDS[world][1]} tasks, cyclic)", fontsize=9)
        ax.legend(fontsize=8)
        ax = row[1]
        conds = summary["worlds"][world]["conditions"]
        width = 0.8 / len(conds)
        for i, (name, c) in enumerate(conds.items()):
            x = np.arange(1, cfg.segments) + (i - (len(conds) - 1) / 2) * width
            ax.bar(x, c["recovery_steps"]["per_change"], width, label=name, color=f"C{i}")
        ax.axhline(cfg.every, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("change")
        ax.set_ylabel("recovery steps (seed mean; K = never)")
        ax.legend(fontsize=8)
    fig.suptitle(f"stream-q with vs without episodic memory, {cfg.seeds} seeds", fontsize=10)
    save_study_figure(fig, path, command)
    plt.close(fig)


def rate_curve(world: str, cfg: MemoryStudyConfig, seed_col, step, ret) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, [S, bins] goal reaches per step / optimal rate), 10 bins per segment."""
    _, tasks, _ = WORLDS[world]
    size = max(1, cfg.every // 10)
    bins = np.arange(0, cfg.steps + 1, size)
    seg = np.minimum(bins[:-1] // cfg.every, cfg.segments - 1)
    rates = np.array([optimal_rate(world, int(s) % tasks) for s in seg])
    out = []
    for s in range(cfg.seeds):
        counts, _ = np.histogram(step[(seed_col == s) & (ret > 0)], bins=bins)
        out.append(counts / (size * rates))
    return (bins[:-1] + bins[1:]) / 2, np.asarray(out)


def study_memory(
    cfg: MemoryStudyConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Runs every world and condition; writes summary.json, metrics.parquet, figure.png under `out`.
    Every input is checked (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine
    from oakrl.lab.run import prepare

    cfg.check()
    plans = {(w, c): prepare(run_spec(cfg, w, c)) for w in cfg.envs for c in cfg.conditions}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    config.pop("memory_tables")
    path, cmd = start_study(out, config)
    width = max(len(f"{w} {c}") for w, c in plans)
    progress = step_progress(cfg.steps, cfg.every * max(1, cfg.segments // 2), width, log)
    t0 = time.perf_counter()
    worlds: dict[str, Any] = {}
    cost: dict[str, Any] = {}
    curves: dict[str, dict] = {}
    table: dict[str, list] = {"world": [], "condition": [], "seed": [], "change": [], "recovery_steps": []}
    for world in cfg.envs:
        metrics, curves[world], cost[world] = {}, {}, {}
        for cond in cfg.conditions:
            plan = plans[(world, cond)]
            result, cpu = run_one(f"{world} {cond}", plan, progress)
            ep = result.episodes
            cols = (np.asarray(ep["seed"]), np.asarray(ep["step"]), np.asarray(ep["return"], np.float64))
            metrics[cond] = seed_metrics(world, cfg, *cols, np.asarray(ep["task"]))
            curves[world][cond] = rate_curve(world, cfg, *cols)
            cost[world][cond] = {
                **timing(result),
                "cpu_seconds": cpu,
                "agent_steps_per_cpu_second": cfg.steps * cfg.seeds / cpu if cpu > 0 else None,
                "state_bytes_per_seed": state_bytes(plan),
            }
            for s in range(cfg.seeds):
                for c in range(cfg.segments - 1):
                    table["world"].append(world)
                    table["condition"].append(cond)
                    table["seed"].append(s)
                    table["change"].append(c + 1)
                    table["recovery_steps"].append(float(metrics[cond]["recovery"][s, c]))
        worlds[world] = summarize_world(world, cfg, metrics)
        base = cost[world][BASE]["agent_steps_per_cpu_second"]
        for cond in cfg.conditions[1:]:
            mine = cost[world][cond]["agent_steps_per_cpu_second"]
            cost[world][cond]["cpu_speed_vs_no_memory"] = mine / base if mine and base else None
    summary = {
        "study": "memory",
        "command": cmd,
        "agent": "stream-q",
        "definitions": {
            "recovery_steps": (
                f"steps after a change until the goal reaches in the last {cfg.window} steps since "
                f"the change number at least {cfg.threshold} x {cfg.window} x the optimal rate; "
                f"{cfg.every} (censored) if never; per seed the mean over the changes"
            ),
            "forgetting": "lab task_metrics forgetting (last quarter of a visit - first quarter of the next "
            "visit, episode returns), per seed the mean over revisited tasks; positive = worse on return",
            "forgetting_rate": "goal-reach rate / optimal over the last quarter of a task's visit minus "
            "over the first quarter of its next visit, per seed the mean over the returns",
            "early_share_of_optimal": "goal reaches per step in the first segment / the optimal rate",
            "beyond_spread": "|memory mean - no-memory mean| > the larger of the two seed sds",
        },
        "worlds": worlds,
        "cost": cost,
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", {k: np.asarray(v) for k, v in table.items()})
    write_json(path / "summary.json", summary)
    plot(path / "figure.png", cfg, curves, summary, cmd)
    echo_table(summary, echo)
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png ({summary['wall_seconds']:.0f} s)")
    return summary


def _fmt(s: dict) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean']:.3g} (sd {s['sd']:.2g}, {s['min']:.3g}..{s['max']:.3g})"


def echo_table(summary: dict[str, Any], echo: Callable[[str], None]) -> None:
    """One line per world and condition, then memory - no-memory per metric."""
    for world, w in summary["worlds"].items():
        echo(f"{world} ({w['schedule']}, {w['tasks']} tasks, K={w['every']})")
        for name, c in w["conditions"].items():
            cost = summary["cost"][world][name]
            rec = c["recovery_steps"]
            echo(
                f"  {name:>10}  recovery {_fmt(rec)} [{rec['censored']} censored]"
                f"  forgetting {_fmt(c['forgetting'])}  forgetting (rate) {_fmt(c['forgetting_rate'])}"
                f"  early {_fmt(c['early_share_of_optimal'])}"
                f"  {cost['agent_steps_per_cpu_second'] or 0:,.0f} steps/cpu-s"
                f"  {cost['state_bytes_per_seed']:,} B/seed"
            )
        for name, d in w["difference"].items():
            parts = []
            for metric, v in d.items():
                if v["difference"] is None:
                    parts.append(f"{metric} n/a")
                    continue
                flag = "beyond spread" if v["beyond_spread"] else "within spread"
                parts.append(f"{metric} {v['difference']:+.3g} ({flag}, sd {v['spread']:.2g})")
            echo(f"  {name} - {BASE}: " + "; ".join(parts))
    wins = {
        w: {
            n: {m: v["memory_better_beyond_spread"] for m, v in d.items()} for n, d in x["difference"].items()
        }
        for w, x in summary["worlds"].items()
    }
    echo(f"memory better beyond the seed spread: {json.dumps(wins)}")
