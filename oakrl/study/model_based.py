"""Does a learned model speed recovery when the rewards move and the dynamics stay?

Rooms-v0 (four rooms, one-hot cell observation) with the `switch` schedule: the goal jumps to
another room's corner every K steps; walls and moves never change. The stream has
`changes` + 1 segments of K steps: the first is learning from scratch, each later one starts
with a relocated goal. Three agents with the same value learner (stream Q(lambda), the same
network and step sizes), each a RunSpec run by the lab (compiled, vmapped over seeds), every
seed with the same keys. By default that learner is linear in the one-hot cell (`hidden=()`: a
table, as in Sutton & Barto's Dyna mazes); `--hidden 64,64` gives all three the same neural network instead
(measured in benchmarks/RESULTS.md: with it the three recover alike, because unlearning the
old goal flattens the values everywhere at once and leaves a blind search for the new one):

* `stream-q`: model-free;
* `dyna`: + a transition model learned at every step + `planning_steps` simulated updates;
* `planner`: + the same model and background planning, acting by Gumbel MuZero search with
  `simulations` simulations (`--planning-steps 0` leaves it search-only).

Recovery after a change (the definition summary.json and the README state):
  optimal rate = 1 / (mean over start cells of the shortest-path length to the new goal), the
  goal reaches per step of the best policy (starts are uniform over free cells);
  recovery steps = the first step tau after the change at which the goal reaches in the last
  `window` steps since the change, (max(change, tau - window), tau], number at least
  `threshold` x window x optimal rate. Not reached within the segment: K (censored, counted).
Model error over the lifetime: the model's one-step observation error (measured on each
transition before learning from it) averaged per tenth of every segment and per segment.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import per_chunk, run_plan, save_study_figure, timing

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan
    from oakrl.lab.spec import RunSpec

AGENT_NAMES = ("stream-q", "dyna", "planner")


@dataclass
class ModelBasedConfig:
    every: int = 10_000  # steps between goal relocations (K)
    changes: int = 4  # relocations measured (segments after the first)
    seeds: int = 5
    seed: int = 0
    agents: tuple[str, ...] = AGENT_NAMES
    planning_steps: int = 5  # dyna and planner: simulated (background) updates per real step
    simulations: int = 16  # planner: search simulations per step
    hidden: tuple[int, ...] = ()  # value learner's hidden widths; () = linear (tabular on one-hot cells)
    model_hidden: tuple[int, ...] = (64,)  # dyna and planner: the transition model's hidden widths
    gamma: float = 0.95
    epsilon: float = 0.1  # stream-q and dyna: exploration after the first half-segment
    window: int = 1_000  # steps of the reward-rate window
    threshold: float = 0.3  # fraction of the optimal rate that counts as recovered

    def check(self) -> None:
        for name in ("every", "changes", "seeds", "window", "simulations"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {v!r}")
        if not isinstance(self.planning_steps, int) or self.planning_steps < 0:
            raise ConfigError(f"--planning-steps must be an integer >= 0, got {self.planning_steps!r}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        if self.every % 10 or self.every < 100:
            raise ConfigError(f"--every must be a multiple of 10 and >= 100, got {self.every}")
        if self.window > self.every:
            raise ConfigError(f"--window ({self.window}) must not exceed --every ({self.every})")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"--threshold must be in (0, 1], got {self.threshold}")
        if not 0 < self.gamma < 1:
            raise ConfigError(f"--gamma must be in (0, 1), got {self.gamma}")
        if not self.model_hidden or any(not isinstance(h, int) or h <= 0 for h in self.model_hidden):
            raise ConfigError(f"--model-hidden takes positive widths like 64, got {self.model_hidden!r}")
        if not 0 <= self.epsilon <= 1:
            raise ConfigError(f"--epsilon must be in [0, 1], got {self.epsilon}")
        bad = [a for a in self.agents if a not in AGENT_NAMES]
        if bad or not self.agents:
            raise ConfigError(f"--agents takes a subset of {','.join(AGENT_NAMES)}, got {bad or self.agents}")
        if "stream-q" not in self.agents or not ({"dyna", "planner"} & set(self.agents)):
            raise ConfigError("--agents must include stream-q (the model-free baseline) and dyna or planner")

    @property
    def steps(self) -> int:
        return (self.changes + 1) * self.every


def agent_options(cfg: ModelBasedConfig, name: str) -> dict[str, Any]:
    """The same value learner for every agent; only the model and planning differ."""
    opts: dict[str, Any] = {
        "hidden": tuple(cfg.hidden),
        "gamma": cfg.gamma,
        "scale_reward": False,
        # A linear learner on one-hot cells is a table; running normalisation would make it dense.
        "normalize_obs": bool(cfg.hidden),
    }
    if name in ("stream-q", "dyna"):
        opts.update(epsilon_end=cfg.epsilon, exploration_steps=max(1, cfg.every // 2))
    if name in ("dyna", "planner"):
        opts["model_hidden"] = tuple(cfg.model_hidden)
    if name == "dyna":
        opts["planning_steps"] = cfg.planning_steps
    if name == "planner":  # decision-time search on top of the same background planning
        opts.update(num_simulations=cfg.simulations, planning_steps=cfg.planning_steps)
    return opts


def optimal_rates(cfg: ModelBasedConfig) -> np.ndarray:
    """[changes + 1] goal reaches per step of the best policy in each segment."""
    from oakrl.envs.rooms import FREE, GOALS, shortest_paths

    rates = []
    for segment in range(cfg.changes + 1):
        goal = int(GOALS[segment % 4])  # the switch schedule: task k has goal GOALS[k % 4], cyclic
        dist = shortest_paths(goal)
        starts = [c for c in FREE if c != goal]
        rates.append(1.0 / float(np.mean(dist[starts])))
    return np.asarray(rates)


def recovery_steps(
    success_steps: np.ndarray, start: int, length: int, window: int, need: float
) -> int | None:
    """Steps after `start` until `need` goal reaches fall in the last `window` steps since `start`.

    success_steps: steps (1-based, per seed) at which an episode reached the goal. None: never
    within `length` steps.
    """
    hits = np.zeros(length + 1, np.int64)
    inside = success_steps[(success_steps > start) & (success_steps <= start + length)] - start
    np.add.at(hits, inside, 1)
    cum = np.cumsum(hits)  # cum[t]: reaches in (start, start + t]
    t = np.arange(length + 1)
    in_window = cum - cum[np.maximum(t - window, 0)]
    ok = np.nonzero(in_window[1:] >= need)[0]
    return int(ok[0] + 1) if ok.size else None


def run_spec(cfg: ModelBasedConfig, name: str) -> RunSpec:
    """The lab run of one agent: Rooms-v0 under `switch` (the goal cycles through the four
    corners), ten chunks (diagnostics points) per segment, the unsafe_rbg keys of `cfg.seed`."""
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env="Rooms-v0", agent=name, steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed, schedule="switch",
        every=cfg.every, tasks=4, chunk=cfg.every // 10, agent_options=agent_options(cfg, name),
    )  # fmt: skip


def run_study(
    cfg: ModelBasedConfig,
    progress: Callable[[str, int], None] | None = None,
    plans: dict[str, RunPlan] | None = None,
) -> dict[str, Any]:
    """Runs every agent; returns per-agent episodes, diagnostics and timing (host arrays)."""
    plans = plans if plans is not None else prepare_runs(cfg)
    results = {}
    for name, plan in plans.items():
        result = run_plan(name, plan, progress)
        _, chunks = per_chunk(result.diagnostics, cfg.seeds)
        ep = result.episodes
        results[name] = {
            "seed": ep["seed"],
            "step": ep["step"],
            "return": ep["return"],
            "diagnostics": {k: np.asarray(v, np.float64) for k, v in sorted(chunks.items())},  # [S, chunks]
            "timing": timing(result),
        }
    return results


def prepare_runs(cfg: ModelBasedConfig) -> dict[str, RunPlan]:
    """Every agent's run, built and checked before any runs."""
    from oakrl.lab.run import prepare

    cfg.check()
    return {name: prepare(run_spec(cfg, name)) for name in cfg.agents}


def summarize(cfg: ModelBasedConfig, results: dict[str, Any]) -> dict[str, Any]:
    """The `agents` map of summary.json and the per-change table."""
    rates = optimal_rates(cfg)
    agents: dict[str, Any] = {}
    table: dict[str, list] = {"agent": [], "seed": [], "change": [], "recovery_steps": [], "censored": []}
    for name, r in results.items():
        per_seed_rec, per_seed_final, censored = [], [], 0
        rec_matrix = np.zeros((cfg.seeds, cfg.changes))
        for s in range(cfg.seeds):
            mine = r["seed"] == s
            succ = r["step"][mine & (r["return"] > 0)]
            for c in range(1, cfg.changes + 1):
                need = cfg.threshold * cfg.window * rates[c]
                rec = recovery_steps(succ, c * cfg.every, cfg.every, cfg.window, need)
                table["agent"].append(name)
                table["seed"].append(s)
                table["change"].append(c)
                table["recovery_steps"].append(cfg.every if rec is None else rec)
                table["censored"].append(rec is None)
                censored += rec is None
                rec_matrix[s, c - 1] = cfg.every if rec is None else rec
            per_seed_rec.append(float(rec_matrix[s].mean()))
            last = mine & (r["step"] > int(0.9 * cfg.steps))
            per_seed_final.append(float(r["return"][last].mean()) if last.any() else float("nan"))
        entry: dict[str, Any] = {
            "recovery_steps": {
                "mean": float(np.mean(per_seed_rec)),
                "per_seed": per_seed_rec,
                "per_change": [float(x) for x in rec_matrix.mean(axis=0)],
                "censored": int(censored),
            },
            "final_return": {
                "mean": float(np.nanmean(per_seed_final)),
                "per_seed": per_seed_final,
            },
            "agent_steps_per_second": r["timing"]["agent_steps_per_second"],
            "options": {
                k: list(v) if isinstance(v, tuple) else v for k, v in agent_options(cfg, name).items()
            },
        }
        err = r["diagnostics"].get("model_obs_error")
        if err is not None:
            per_tenth = np.nanmean(err, axis=0)  # [chunks] mean over seeds
            per_segment = np.nanmean(err.reshape(cfg.seeds, cfg.changes + 1, 10), axis=(0, 2))
            kstep = r["diagnostics"].get("model_kstep_error")
            entry["model_error"] = {
                "one_step_per_tenth_of_segment": [float(x) for x in per_tenth],
                "one_step_per_segment": [float(x) for x in per_segment],
                "first_tenth": float(per_tenth[0]),
                "last_tenth": float(per_tenth[-1]),
                "falls": bool(per_segment[-1] < per_segment[0] and per_tenth[-1] < per_tenth[0]),
                "kstep_per_segment": None
                if kstep is None
                else [
                    float(x) for x in np.nanmean(kstep.reshape(cfg.seeds, cfg.changes + 1, 10), axis=(0, 2))
                ],
                "reward_per_segment": [
                    float(x)
                    for x in np.nanmean(
                        r["diagnostics"]["model_reward_error"].reshape(cfg.seeds, cfg.changes + 1, 10),
                        axis=(0, 2),
                    )
                ],
            }
        agents[name] = entry
    base = agents["stream-q"]["recovery_steps"]["mean"]
    ratios = {
        name: agents[name]["recovery_steps"]["mean"] / base
        for name in agents
        if name != "stream-q" and base > 0
    }
    best = min(ratios, key=ratios.get) if ratios else None
    verdict = {
        "recovery_ratio_vs_model_free": ratios,
        "best": best,
        "at_most_half": bool(best is not None and ratios[best] <= 0.5),
        "model_error_falls": {n: a["model_error"]["falls"] for n, a in agents.items() if "model_error" in a},
    }
    return {
        "agents": agents,
        "verdict": verdict,
        "optimal_rate_per_segment": [float(x) for x in rates],
    }, table


def config_json(cfg: ModelBasedConfig) -> dict:
    return dataclasses.asdict(cfg)


def plot(path, cfg: ModelBasedConfig, results: dict[str, Any], summary: dict[str, Any], command: str) -> None:
    """Three panels: goal reaches over the lifetime, recovery per change, model error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = optimal_rates(cfg)
    bin_size = max(1, cfg.every // 20)
    bins = np.arange(0, cfg.steps + 1, bin_size)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    colors = {name: f"C{i}" for i, name in enumerate(results)}  # one colour per agent, every panel
    ax = axes[0]
    for name, r in results.items():
        curves = []
        for s in range(cfg.seeds):
            succ = r["step"][(r["seed"] == s) & (r["return"] > 0)]
            counts, _ = np.histogram(succ, bins=bins)
            seg = np.minimum((bins[:-1] // cfg.every).astype(int), cfg.changes)
            curves.append(counts / (bin_size * rates[seg]))
        curves = np.asarray(curves)
        mid = (bins[:-1] + bins[1:]) / 2
        m = curves.mean(0)
        se = curves.std(0, ddof=1) / np.sqrt(cfg.seeds) if cfg.seeds > 1 else 0 * m
        ax.plot(mid, m, label=name, lw=1.2, color=colors[name])
        ax.fill_between(mid, m - se, m + se, alpha=0.2, color=colors[name])
    for c in range(1, cfg.changes + 1):
        ax.axvline(c * cfg.every, color="k", lw=0.6, ls=":")
    ax.axhline(cfg.threshold, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("goal reaches / optimal rate")
    ax.set_title("reward rate (dotted: goal moves; dashed: recovered)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    names = list(results)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        per_change = summary["agents"][name]["recovery_steps"]["per_change"]
        ax.bar(
            np.arange(1, cfg.changes + 1) + (i - (len(names) - 1) / 2) * width,
            per_change,
            width,
            label=name,
            color=colors[name],
        )
    ax.axhline(cfg.every, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("change")
    ax.set_ylabel("recovery steps (mean over seeds; K = not recovered)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for name in names:
        me = summary["agents"][name].get("model_error")
        if me is None:
            continue
        x = (np.arange(len(me["one_step_per_tenth_of_segment"])) + 1) * (cfg.every // 10)
        ax.plot(x, me["one_step_per_tenth_of_segment"], label=f"{name} one-step", color=colors[name])
    for c in range(1, cfg.changes + 1):
        ax.axvline(c * cfg.every, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("model one-step error ||E[s'] - s'||^2")
    ax.legend(fontsize=8)
    fig.suptitle(
        f"Rooms-v0, goal moves every {cfg.every} steps, {cfg.changes} changes, {cfg.seeds} seeds", fontsize=10
    )
    save_study_figure(fig, path, command)
    plt.close(fig)


def study_model_based(
    cfg: ModelBasedConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: runs, summary.json, metrics.parquet, figure.png; results to `echo`,
    progress to `log`. Every input is checked (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine
    from oakrl.study.common import start_study, step_progress

    plans = prepare_runs(cfg)
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    results = run_study(cfg, step_progress(cfg.steps, cfg.every, 9, log), plans)
    body, table = summarize(cfg, results)
    summary = {
        "study": "model-based",
        "command": cmd,
        "env": "Rooms-v0",
        "recovery_definition": (
            f"steps after a goal relocation until the goal reaches within the last {cfg.window} steps "
            f"since the change number at least {cfg.threshold} x {cfg.window} x the optimal rate (1 / mean "
            f"shortest-path length from the uniform start cells to the new goal); {cfg.every} (censored) "
            "if never"
        ),
        **body,
        "timing": {n: r["timing"] for n, r in results.items()},
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", {k: np.asarray(v) for k, v in table.items()})
    write_json(path / "summary.json", summary)
    plot(path / "figure.png", cfg, results, summary, cmd)
    for name, a in summary["agents"].items():
        rec = a["recovery_steps"]
        me = a.get("model_error")
        err = ""
        if me is not None:
            err = f"  model error {me['one_step_per_segment'][0]:.4f} -> {me['one_step_per_segment'][-1]:.4f}"
        echo(
            f"{name:>9}  recovery {rec['mean']:,.0f} steps ({rec['censored']} censored)  "
            f"final return {a['final_return']['mean']:.3f}{err}"
        )
    echo(f"verdict: {json.dumps(summary['verdict'])}")
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png ({summary['wall_seconds']:.0f} s)")
    return summary
