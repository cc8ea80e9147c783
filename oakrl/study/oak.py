"""`oakrl study oak`: does an agent with options recover faster when the reward moves?

On Rooms-v0 whose goal jumps to another room's corner every `every` steps (schedule
`switch`), the same seeds run, each an ordinary lab run (compiled, vmapped over seeds) in
its own sub-directory of the study:

  oak             the OaK agent (oakrl/agents/oak.py), default config
  dyna            issue 4's Dyna agent with primitive actions, default config
  stream-q        the model-free stream learner
  oak-primitive   (ablation, --ablation) OaK with its options never used: the same linear
                  models and planning over primitive actions only

Recovery (`recovery_steps`) is issue 4's measure, reused from oakrl/study/model_based.py so
the two studies agree: after each relocation, the number of steps until the goal reaches in
the last `window` steps since the relocation number at least `threshold` x window x the
optimal rate (goal reaches per step of the best policy for the new goal: 1 / the mean
shortest-path length over start cells). Never within the segment: `every` steps (censored,
counted). A seed's value is the mean over relocations; the study's the mean over seeds, with
the standard deviation over seeds as the spread. `first_reach_steps` is the part of it spent
finding the new goal: steps until its first reach (censored at `every` likewise). `dyna` and
the stream learner get the options issue 4's study gives them
(oakrl.study.model_based.agent_options).

The same OaK config also runs a short stretch of a second world (`--second-world`,
Foraging-v0 by default), to show that nothing in it is specific to Rooms. The figures are drawn
by oakrl/study/oak_figures.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import run_plan
from oakrl.study.oak_figures import feature_name, plot_study, render_final_options

if TYPE_CHECKING:
    from oakrl.lab.spec import RunSpec

STUDY_AGENTS = ("oak", "dyna", "stream-q")
STUDY_ENVS = ("Rooms-v0", "NineRooms-v0")  # worlds whose optimal rate per goal the study knows
ABLATION = "oak-primitive"


@dataclass
class OakStudyConfig:
    env: str = "Rooms-v0"
    every: int = 5_000  # steps between relocations of the goal (the four corners, cyclically)
    relocations: int = 7
    seeds: int = 5
    seed: int = 0
    stream: str = "stream-q"  # the model-free stream learner
    window: int = 1_000  # steps of the reward-rate window of the recovery measure
    threshold: float = 0.5  # fraction of the optimal rate that counts as recovered
    bin: int = 250  # steps per reward-rate bin of the figure
    ablation: bool = True
    second_world: str | None = "Foraging-v0"
    second_steps: int = 10_000
    chunk: int = 5_000
    # OaK options for both OaK runs (oak, and oak-primitive on top of use_options=false): a change
    # to the agent is measured behind the same ablation; empty keeps the runs of the defaults.
    oak_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        if self.env not in STUDY_ENVS:
            raise ConfigError(
                f"env must be one of {', '.join(STUDY_ENVS)} (recovery is measured against the world's "
                f"optimal rate), got {self.env!r}"
            )
        for name in ("every", "relocations", "seeds", "bin", "window", "chunk", "second_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.every % self.bin or self.every < 4 * self.bin:
            raise ConfigError(f"every ({self.every}) must be a multiple of bin ({self.bin}), at least 4 bins")
        if self.stream != "stream-q":
            raise ConfigError(
                f"stream must be stream-q (discrete actions, as in issue 4's study), got {self.stream!r}"
            )
        if self.window > self.every:
            raise ConfigError(f"window ({self.window}) must be <= every ({self.every})")
        if self.second_world:  # checked now, as the lab will build it, not after the main study
            from oakrl.lab.run import build

            for name in ("oak", self.stream):
                build(second_world_spec(self, name))

    tasks = 4  # the switch schedule cycles the goal through the four rooms' corners

    @property
    def steps(self) -> int:
        return self.every * (self.relocations + 1)

    @property
    def agents(self) -> tuple[str, ...]:
        names = ("oak", "dyna", self.stream)
        return (*names, ABLATION) if self.ablation else names


def run_spec(cfg: OakStudyConfig, name: str, out: Path | None = None) -> RunSpec:
    """The lab run of one agent of the study (into `out`, checkpointed at its end)."""
    from oakrl.lab.spec import RunSpec
    from oakrl.study.model_based import agent_options

    agent, options = name, {}
    if name == "oak":
        options = dict(cfg.oak_options)
    if name == ABLATION:
        agent, options = "oak", {**cfg.oak_options, "use_options": False}
    if name in ("dyna", "stream-q"):  # exactly as issue 4's study runs them
        options = agent_options(model_based_config(cfg), name)
    return RunSpec(
        env=cfg.env,
        agent=agent,
        steps=cfg.steps,
        seeds=cfg.seeds,
        seed=cfg.seed,
        schedule="switch",
        every=cfg.every,
        tasks=cfg.tasks,
        chunk=cfg.chunk,
        agent_options=options,
        checkpoint_every=0,
        out=None if out is None else str(out),
    )


def reward_rate(columns: dict[str, np.ndarray], seeds: int, steps: int, bin: int) -> np.ndarray:
    """[S, steps // bin]: reward of the episodes ending in each bin of `bin` steps, per step."""
    seed, step, ret = (np.asarray(columns[k]) for k in ("seed", "step", "return"))
    idx = np.clip((step - 1) // bin, 0, steps // bin - 1)
    out = np.zeros((seeds, steps // bin))
    np.add.at(out, (seed, idx), ret)
    return out / bin


def model_based_config(cfg: OakStudyConfig):
    """Issue 4's study config with this study's schedule (for its agent options and optimal rates)."""
    from oakrl.study.model_based import ModelBasedConfig

    return ModelBasedConfig(
        every=cfg.every, changes=cfg.relocations, seeds=cfg.seeds, seed=cfg.seed, window=cfg.window,
        threshold=cfg.threshold,
    )  # fmt: skip


def recovery(columns: dict[str, np.ndarray], cfg: OakStudyConfig) -> dict[str, np.ndarray]:
    """Recovery after each relocation with issue 4's measure (see module docstring).

    Returns {"steps": [S, R] steps to recover (censored at `every`), "recovered": [S, R] bool,
    "first_reach": [S, R] steps until the new goal is first reached (censored at `every`)}.
    Recovery is at least the first reach plus about half the window, so the two split recovery
    into finding the new goal and exploiting it.
    """
    from oakrl.study.model_based import optimal_rates, recovery_steps

    rates = optimal_rates(model_based_config(cfg)) if cfg.env == "Rooms-v0" else grid_rates(cfg)
    seed, step, ret = (np.asarray(columns[k]) for k in ("seed", "step", "return"))
    steps = np.full((cfg.seeds, cfg.relocations), float(cfg.every))
    recovered = np.zeros((cfg.seeds, cfg.relocations), bool)
    first = np.full((cfg.seeds, cfg.relocations), float(cfg.every))
    for i in range(cfg.seeds):
        reaches = step[(seed == i) & (ret > 0)]
        for c in range(1, cfg.relocations + 1):
            start = c * cfg.every
            after = reaches[(reaches > start) & (reaches <= start + cfg.every)]
            if after.size:
                first[i, c - 1] = after.min() - start
            need = cfg.threshold * cfg.window * rates[c]
            r = recovery_steps(reaches, start, cfg.every, cfg.window, need)
            if r is not None:
                steps[i, c - 1], recovered[i, c - 1] = r, True
    return {"steps": steps, "recovered": recovered, "first_reach": first}


def grid_rates(cfg: OakStudyConfig) -> np.ndarray:
    """[relocations + 1] goal reaches per step of the best policy on a grid world (oakrl/envs/grids.py):
    1 / the mean shortest-path length over the start cells, per segment's goal (as optimal_rates)."""
    from oakrl.envs.grids import LAYOUTS, shortest_paths
    from oakrl.envs.variants import VARIANTS

    layout, goals = LAYOUTS[cfg.env], VARIANTS[cfg.env].table["goal"]
    rates = []
    for segment in range(cfg.relocations + 1):
        goal = int(round(float(goals[segment % len(goals)])))
        dist = shortest_paths(layout, goal)
        starts = [c for c in layout.free if c != goal]
        rates.append(1.0 / float(np.mean(dist[starts])))
    return np.asarray(rates)


def _over_seeds(x: np.ndarray) -> dict[str, Any]:
    x = np.asarray(x, float)
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "per_seed": [float(v) for v in x],
    }


def options_alive(records: dict[str, np.ndarray], env: str) -> list[dict[str, Any]]:
    """The options at the last recorded step, per seed and slot (feature, usage, utility, ...)."""
    if not records or not len(records.get("step", [])):
        return []
    last = records["step"] == records["step"].max()
    out = []
    for i in np.flatnonzero(last):
        out.append(
            {
                "seed": int(records["seed"][i]),
                "slot": int(records["slot"][i]),
                "feature": int(records["feature"][i]),
                "feature_name": feature_name(env, int(records["feature"][i])),
                "usage": float(records["usage"][i]),
                "utility": float(records["utility"][i]),
                "mean_duration": float(records["duration"][i]),
                "model_error": float(records["model_error"][i]),
                "age": int(records["age"][i]),
            }
        )
    return out


def run_study(
    cfg: OakStudyConfig, path: Path, progress: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Runs every agent of the study into path/<agent>/ (an interrupted study resumes them) and
    returns the `agents` map and extras (each run's plan under "plans")."""
    from oakrl.lab.run import prepare

    cfg.check()
    result: dict[str, Any] = {"agents": {}, "rate": {}, "recovery": {}, "records": {}, "plans": {}}
    for name in cfg.agents:
        plan = prepare(run_spec(cfg, name, path / name))
        run = run_plan(name, plan, progress)
        summary, columns, records = run.summary, run.episodes, run.records
        rate = reward_rate(columns, cfg.seeds, cfg.steps, cfg.bin)
        rec = recovery(columns, cfg)
        per_seed_recovery = rec["steps"].mean(axis=1)
        result["agents"][name] = {
            "run": name,
            "recovery_steps": {
                **_over_seeds(per_seed_recovery),
                "per_relocation": [float(v) for v in rec["steps"].mean(axis=0)],
                "recovered_fraction": float(rec["recovered"].mean()),
            },
            "first_reach_steps": _over_seeds(rec["first_reach"].mean(axis=1)),
            "final_return": summary["final_return"],
            "average_reward": summary["average_reward"],
            "steps_per_second": summary["steps_per_second"],
            "options": options_alive(records, cfg.env),
        }
        result["rate"][name] = rate
        result["recovery"][name] = rec
        result["records"][name] = records
        result["plans"][name] = plan
    return result


def compare(agents: dict[str, Any], a: str = "oak", b: str = "dyna") -> dict[str, Any]:
    """Is `a` faster to recover than `b` by more than the seed spread? (means, sds over seeds)

    margin_steps is signed: how many steps sooner `a` recovers (negative: `a` is slower);
    `faster` names whichever recovers sooner; margin_exceeds_spread is true only when `a` does,
    by more than the larger sd.
    """
    ra, rb = agents[a]["recovery_steps"], agents[b]["recovery_steps"]
    margin = rb["mean"] - ra["mean"]
    spread = max(ra["sd"], rb["sd"])
    return {
        "faster": a if margin >= 0 else b,
        "than": b if margin >= 0 else a,
        "margin_steps": margin,
        "spread_steps": spread,
        "margin_exceeds_spread": bool(margin > spread),
    }


def second_world_spec(cfg: OakStudyConfig, name: str, out: Path | None = None) -> RunSpec:
    """The lab run of agent `name` on the second world (the same OaK config as the main study's)."""
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env=cfg.second_world,
        agent=name,
        steps=cfg.second_steps,
        seeds=cfg.seeds,
        seed=cfg.seed,
        chunk=min(cfg.chunk, cfg.second_steps),
        agent_options=dict(cfg.oak_options) if name == "oak" else {},
        checkpoint_every=0,
        out=None if out is None else str(out),
    )


def second_world(cfg: OakStudyConfig, path: Path) -> dict[str, Any] | None:
    """The same OaK config (and the stream learner) for a while on another world."""
    if not cfg.second_world:
        return None
    from oakrl.lab.run import prepare

    out = {"env": cfg.second_world, "steps": cfg.second_steps, "agents": {}}
    for name in ("oak", cfg.stream):
        plan = prepare(second_world_spec(cfg, name, path / f"{cfg.second_world}_{name}"))
        summary = run_plan(f"{cfg.second_world}_{name}", plan).summary
        out["agents"][name] = {
            "average_reward": summary["average_reward"],
            "steps_per_second": summary["steps_per_second"],
            "run": f"{cfg.second_world}_{name}",
        }
    return out


def config_json(cfg: OakStudyConfig) -> dict[str, Any]:
    return {**dataclasses.asdict(cfg), "steps": cfg.steps, "agents": list(cfg.agents)}


def study_oak(cfg: OakStudyConfig, out: str, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole study: runs, summary.json, figure.png, options.png / options.txt (Rooms)."""
    import time

    from oakrl.io import write_json
    from oakrl.lab.files import machine
    from oakrl.study.common import start_study, step_progress

    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    progress = step_progress(cfg.steps, max(1, cfg.steps // 4), 14, echo)

    result = run_study(cfg, path, progress)
    agents = result["agents"]
    summary = {
        "study": "oak",
        "command": cmd,
        "env": cfg.env,
        "schedule": {
            "kind": "switch",
            "every": cfg.every,
            "tasks": cfg.tasks,
            "relocations": cfg.relocations,
        },
        "steps": cfg.steps,
        "seeds": cfg.seeds,
        "recovery_definition": (
            f"issue 4's (oakrl/study/model_based.py): per relocation and seed, steps until the goal "
            f"reaches in the last {cfg.window} steps since the relocation number >= {cfg.threshold} x "
            f"{cfg.window} x the optimal rate for the new goal; censored at {cfg.every}; per seed the "
            "mean over relocations"
        ),
        "agents": agents,
        "comparison": {"oak_vs_dyna": compare(agents, "oak", "dyna")},
    }
    if ABLATION in agents:
        summary["comparison"]["oak_vs_oak_primitive"] = compare(agents, "oak", ABLATION)
    summary["second_world"] = second_world(cfg, path)
    if cfg.env == "Rooms-v0":
        summary["rendered"] = render_final_options(cfg, path, result["plans"]["oak"])
    summary["wall_seconds"] = time.perf_counter() - t0
    summary["machine"] = machine()
    write_json(path / "summary.json", summary)
    plot_study(path / "figure.png", cfg, result, cmd)
    for name, a in agents.items():
        r = a["recovery_steps"]
        echo(
            f"{name:>14}  recovery {r['mean']:7.0f} steps (sd {r['sd']:.0f}, recovered "
            f"{r['recovered_fraction']:.0%}; first reach {a['first_reach_steps']['mean']:.0f})  "
            f"average reward {a['average_reward']['mean']:.4f}"
        )
    for key, c in summary["comparison"].items():
        echo(
            f"{key.replace('_vs_', ' vs ').replace('_', '-')}: {c['faster']} recovers "
            f"{abs(c['margin_steps']):.0f} steps sooner than {c['than']}, seed spread "
            f"{c['spread_steps']:.0f}: "
            + ("margin exceeds spread" if c["margin_exceeds_spread"] else "NOT beyond the spread")
        )
    echo(
        f"wrote {path}/summary.json, figure.png"
        + (", options.png, options.txt" if cfg.env == "Rooms-v0" else "")
    )
    return summary
