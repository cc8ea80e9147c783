"""Prior vs scratch: does starting from demonstrations help, and does reward overrule a bad prior?

The same agent (prior-ac: stream AC(lambda), oakrl.agents.prior_ac) on the same environment and
seeds, started four ways: from nothing (scratch), or behaviour-cloned from demonstrations of
an expert, a mediocre (noisy) expert or a wrong (adversarial) teacher. The demonstrations are
recorded first from the environment's scripted expert (oakrl.priors.demos; written to
OUT/demos/QUALITY.npz) unless a directory of datasets is given. Scratch is one lab run (a
RunSpec, vmapped over the seeds), the prior conditions another (over conditions x seeds, each
stream started from its cloned agent); every condition uses the same seed keys.

Per condition and seed:
  steps_to_threshold  agent steps until the mean return of the last `window` finished episodes
                      first reaches `threshold`; seeds that never reach it count as the full
                      stream in the mean (`reached` says how many did; per_seed holds null)
  final_return        mean return of the episodes that end in the last 10% of the stream
  average_reward      total reward / steps
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import per_chunk, run_plan, step_progress, timing
from oakrl.study.prior_figures import plot_prior

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan
    from oakrl.lab.spec import RunSpec

CONDITIONS = ("scratch", "expert", "mediocre", "wrong")
THRESHOLDS = {"CartPole-v1": 400.0, "TextWorld-v0": 0.9}


@dataclass
class PriorConfig:
    env: str = "CartPole-v1"
    steps: int = 100_000  # per seed and condition
    seeds: int = 5
    seed: int = 0
    conditions: tuple[str, ...] = CONDITIONS
    threshold: float | None = None  # None: the environment's default (THRESHOLDS)
    window: int = 10  # finished episodes averaged for steps_to_threshold
    demo_steps: int = 20_000  # transitions per recorded dataset
    noise: float = 0.5  # mediocre: probability of a random action
    demos_dir: str | None = None  # use DIR/{expert,mediocre,wrong}.npz instead of recording
    hidden: tuple[int, ...] = (128, 128)
    bc_steps: int = 2000
    bc_value: bool = False
    kl: float = 0.0
    kl_half_life: int = 0
    kl_adapt: float = 0.0
    bins: int = 50  # points of the learning curves
    chunk: int = 10_000

    def check(self) -> None:
        for name in ("steps", "seeds", "window", "demo_steps", "bins", "chunk", "bc_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.conditions or any(c not in CONDITIONS for c in self.conditions):
            raise ConfigError(
                f"conditions must be among {', '.join(CONDITIONS)}, got {','.join(self.conditions)}"
            )
        if len(set(self.conditions)) != len(self.conditions):
            raise ConfigError(f"conditions repeat: {','.join(self.conditions)}")
        if not 0 <= self.noise <= 1:
            raise ConfigError(f"noise must be in [0, 1], got {self.noise!r}")
        for name in ("kl", "kl_adapt"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.kl_half_life, int) or self.kl_half_life < 0:
            raise ConfigError(f"kl_half_life must be a non-negative integer, got {self.kl_half_life!r}")
        if self.threshold is None and self.env not in THRESHOLDS:
            raise ConfigError(
                f"no default threshold for {self.env!r} (defaults: "
                f"{', '.join(f'{k}={v}' for k, v in THRESHOLDS.items())}); give --threshold"
            )
        if self.demos_dir is None and any(c != "scratch" for c in self.conditions):
            from oakrl.priors.demos import SCRIPTED

            if self.env not in SCRIPTED:
                raise ConfigError(
                    f"no scripted expert for {self.env!r} (there are for {', '.join(SCRIPTED)}); "
                    "record datasets with `oakrl record` and pass --demos-dir"
                )
        if self.demos_dir is not None:
            for c in self.conditions:
                if c != "scratch" and not (Path(self.demos_dir) / f"{c}.npz").is_file():
                    raise ConfigError(
                        f"--demos-dir {self.demos_dir} has no {c}.npz (make it with `oakrl record`)"
                    )

    @property
    def thresh(self) -> float:
        return float(self.threshold if self.threshold is not None else THRESHOLDS[self.env])


def steps_to_threshold(step: np.ndarray, ret: np.ndarray, threshold: float, window: int) -> int | None:
    """First episode-end step where the mean of the last `window` returns reaches `threshold`.

    step, ret [E]: one seed's finished episodes in order. None when it never does.
    """
    if len(ret) == 0:
        return None
    csum = np.concatenate([[0.0], np.cumsum(ret, dtype=np.float64)])
    idx = np.arange(1, len(ret) + 1)
    lo = np.maximum(idx - window, 0)
    mean = (csum[idx] - csum[lo]) / (idx - lo)
    hit = np.nonzero(mean >= threshold)[0]
    return int(step[hit[0]]) if len(hit) else None


def learning_curve(step: np.ndarray, ret: np.ndarray, steps: int, bins: int) -> np.ndarray:
    """Mean return of the episodes ending in each of `bins` equal spans of the stream: [bins]
    (a span with no episode end repeats the previous value; NaN before the first)."""
    edges = np.linspace(0, steps, bins + 1)
    which = np.clip(np.searchsorted(edges, step, side="left") - 1, 0, bins - 1)
    total = np.bincount(which, weights=ret, minlength=bins)
    count = np.bincount(which, minlength=bins)
    out = np.full(bins, np.nan)
    last = np.nan
    for i in range(bins):
        last = total[i] / count[i] if count[i] else last
        out[i] = last
    return out


def record_datasets(cfg: PriorConfig, handle, out: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """The demonstrations of each prior condition: recorded to out/demos/ or taken from demos_dir."""
    from oakrl.lab.run import one_key
    from oakrl.priors.demos import record_scripted, write_demos

    paths = {}
    for i, c in enumerate(x for x in cfg.conditions if x != "scratch"):
        if cfg.demos_dir is not None:
            paths[c] = Path(cfg.demos_dir) / f"{c}.npz"
            continue
        # A recording's key, not a run's: its own base seed, folded with the dataset's index.
        key = one_key(cfg.seed + 10_007, i)
        demos = record_scripted(handle, cfg.demo_steps, key, c, cfg.noise)
        paths[c] = write_demos(out / "demos" / f"{c}.npz", demos)
        h = demos.header
        log(f"recorded {c}: {h['steps']} steps, {h['episodes']} episodes, mean return {h['mean_return']}")
    return paths


def _condition_summary(cfg: PriorConfig, seed, step, ret, reward_sum, info) -> tuple[dict, np.ndarray]:
    """One condition's entry of summary.json and its learning curves [S, bins] from its episodes."""
    hits, finals, curve = [], [], []
    for s in range(cfg.seeds):
        sel = seed == s
        hits.append(steps_to_threshold(step[sel], ret[sel], cfg.thresh, cfg.window))
        late = sel & (step > 0.9 * cfg.steps)
        finals.append(float(ret[late].mean()) if late.any() else float("nan"))
        curve.append(learning_curve(step[sel], ret[sel], cfg.steps, cfg.bins))
    censored = [h if h is not None else cfg.steps for h in hits]
    avg = np.asarray(reward_sum, np.float64) / cfg.steps
    entry = {
        "steps_to_threshold": {
            "mean": float(np.mean(censored)),
            "per_seed": hits,
            "reached": sum(h is not None for h in hits),
        },
        "final_return": {"mean": float(np.nanmean(finals)), "per_seed": finals},
        "average_reward": {"mean": float(avg.mean()), "per_seed": [float(a) for a in avg]},
        "diagnostics": {k: float(np.nanmean(v)) for k, v in info.items()},
    }
    return entry, np.stack(curve)


def groups(cfg: PriorConfig) -> list[tuple[str, ...]]:
    """The runs of the study: scratch alone, and the prior conditions together (they differ
    only in the dataset their agent clones at init, so they share one compiled init and stream)."""
    out: list[tuple[str, ...]] = [("scratch",)] if "scratch" in cfg.conditions else []
    priors = tuple(c for c in cfg.conditions if c != "scratch")
    return [*out, priors] if priors else out


def run_spec(cfg: PriorConfig, group: tuple[str, ...], paths: dict[str, Path]) -> RunSpec:
    """The lab run of a group of conditions: prior-ac over conditions x seeds (seed i of the
    group's j-th condition is stream j * seeds + i)."""
    from oakrl.lab.spec import RunSpec

    options: dict[str, Any] = {"hidden": tuple(cfg.hidden)}
    if group != ("scratch",):
        options.update(
            demos=str(paths[group[0]]),
            bc_steps=cfg.bc_steps,
            bc_value=cfg.bc_value,
            kl=cfg.kl,
            kl_half_life=cfg.kl_half_life,
            kl_adapt=cfg.kl_adapt,
        )
    return RunSpec(
        env=cfg.env, agent="prior-ac", steps=cfg.steps, seeds=len(group) * cfg.seeds, seed=cfg.seed,
        chunk=cfg.chunk, agent_options=options,
    )  # fmt: skip


def start_from_clones(plan: RunPlan, cfg: PriorConfig, group: tuple[str, ...], paths: dict[str, Path]):
    """(the plan whose streams start from each condition's cloned states, the datasets' headers).

    Every condition uses the same seed keys: condition j's seed i starts from `seed_keys(...)[i]`,
    its agent cloned from the condition's dataset with that key. (Under unsafe_rbg a vmapped
    stream's draws also depend on its place in the batch, so only the first condition replays
    scratch's draws exactly.) The plan's fresh state only gives the shapes (its init skips cloning)."""
    from oakrl.agents.prior_ac import demo_arrays, prior_ac_parts
    from oakrl.lab.run import seed_keys
    from oakrl.lab.stream import init_carry
    from oakrl.priors.demos import read_demos

    handle = plan.handle
    _, init_with = prior_ac_parts(plan.agent.config)
    datasets, headers = {}, {}
    for c in group:
        demos = read_demos(paths[c])
        h = demos.header
        if h["env"] != cfg.env:
            raise ConfigError(f"{paths[c]} holds demonstrations of {h['env']}, not of {cfg.env}")
        datasets[c] = demo_arrays(demos)
        headers[c] = {k: h.get(k) for k in ("source", "quality", "noise", "steps", "episodes", "mean_return")}
    keys = seed_keys(cfg.seed, cfg.seeds, plan.spec.prng)

    def clone_one(k, d):
        return init_with(k, handle.obs_spec, handle.action_spec, d)

    clone = jax.jit(jax.vmap(clone_one, in_axes=(0, None)))
    cloned = jax.tree.map(lambda *x: jnp.concatenate(x), *[clone(keys, datasets[c]) for c in group])
    agent = plan.agent._replace(init=lambda k, o, a: init_with(k, o, a, None))

    def start(fresh):
        run_keys = jnp.concatenate([keys] * len(group))
        carry = jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k)))(run_keys)
        return carry._replace(agent=cloned)

    return plan._replace(agent=agent, start=start), headers


def run_prior(cfg: PriorConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every condition. Returns {"conditions": {...}, "curves": {c: [S, bins]}, "timing", "demos"}.

    The prior conditions run as one compiled stream over conditions x seeds (`groups`); scratch
    is its own stream. Every condition uses the same seed keys.
    """
    from oakrl.envs import make_env
    from oakrl.lab.run import prepare

    cfg.check()
    paths = record_datasets(cfg, make_env(cfg.env), out, log)
    conditions, curves, timings, demos_info = {}, {}, {}, {}
    progress = step_progress(cfg.steps, 1, 9, log)
    for group in groups(cfg):
        plan = prepare(run_spec(cfg, group, paths))
        if group != ("scratch",):
            plan, headers = start_from_clones(plan, cfg, group, paths)
            demos_info.update(headers)
        result = run_plan("+".join(group), plan, progress)
        ep = result.episodes
        seed, step, ret = ep["seed"], ep["step"], ep["return"].astype(np.float64)
        reward_sum = np.asarray(result.final.reward_sum)
        _, chunks = per_chunk(result.diagnostics, len(group) * cfg.seeds)
        for i, c in enumerate(group):
            lo, hi = i * cfg.seeds, (i + 1) * cfg.seeds
            sel = (seed >= lo) & (seed < hi)
            info = {k: v[lo:hi, -1] for k, v in chunks.items()}  # the last chunk's means
            conditions[c], curves[c] = _condition_summary(
                cfg, seed[sel] - lo, step[sel], ret[sel], reward_sum[lo:hi], info
            )
            timings[c] = {**timing(result), "run_together_with": list(group)}
    order = [c for c in cfg.conditions]
    return {
        "conditions": {c: conditions[c] for c in order},
        "curves": {c: curves[c] for c in order},
        "timing": timings,
        "demos": demos_info,
    }


def verdict(cfg: PriorConfig, conditions: dict[str, Any]) -> dict[str, Any]:
    """The two questions of the study, answered from the numbers (None when a condition is missing)."""
    out: dict[str, Any] = {}
    if "scratch" in conditions and "expert" in conditions:
        s, e = conditions["scratch"]["steps_to_threshold"], conditions["expert"]["steps_to_threshold"]
        out["expert_steps_saved"] = s["mean"] - e["mean"]
        out["expert_faster_than_scratch"] = bool(e["mean"] < s["mean"])
    if "scratch" in conditions and "wrong" in conditions:
        s, w = conditions["scratch"]["final_return"]["mean"], conditions["wrong"]["final_return"]["mean"]
        out["wrong_final_over_scratch_final"] = w / s if s else None
        # "Overcome": within 10% of scratch's final return (it does not stay locked in).
        out["wrong_overcome"] = bool(s and w >= 0.9 * s)
    return out


def config_json(cfg: PriorConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["threshold"] = cfg.thresh
    return d


def curve_table(curves: dict[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """Long columns: condition, seed, step (end of the span), return."""
    cols: dict[str, list] = {"condition": [], "seed": [], "step": [], "return": []}
    for c, x in curves.items():
        s, b = x.shape
        ends = np.linspace(0, steps, b + 1)[1:].astype(np.int64)
        for i in range(s):
            cols["condition"] += [c] * b
            cols["seed"] += [i] * b
            cols["step"] += ends.tolist()
            cols["return"] += x[i].tolist()
    return {
        "condition": np.array(cols["condition"]),
        "seed": np.array(cols["seed"], np.int32),
        "step": np.array(cols["step"], np.int64),
        "return": np.array(cols["return"], np.float32),
    }


def study_prior(
    cfg: PriorConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: datasets, runs, summary.json, metrics.parquet, figure.png; results to
    `echo`, progress to `log`. The input is checked (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine
    from oakrl.study.common import start_study

    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    result = run_prior(cfg, path, log=log)
    summary = {
        "study": "prior-vs-scratch",
        "command": cmd,
        "env": cfg.env,
        "agent": "prior-ac",
        "threshold": cfg.thresh,
        "conditions": result["conditions"],
        "verdict": verdict(cfg, result["conditions"]),
        "demos": result["demos"],
        "timing": result["timing"],
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", curve_table(result["curves"], cfg.steps))
    write_json(path / "summary.json", summary)
    plot_prior(path / "figure.png", cfg, result, cmd)
    for name, c in result["conditions"].items():
        st = c["steps_to_threshold"]
        echo(
            f"{name:>9}  steps to {cfg.thresh:g}: {st['mean']:,.0f} ({st['reached']}/{cfg.seeds} reached)  "
            f"final return {c['final_return']['mean']:.1f}  average reward {c['average_reward']['mean']:.4f}"
        )
    echo(f"verdict: {json.dumps(summary['verdict'])}")
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")
    return summary
