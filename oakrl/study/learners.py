"""The streaming learners compared at equal steps on one suite (issue 22).

Each learner is an agent with its `optimizer` option set (`agent:optimizer`, e.g.
`stream-q:adaptive-q`), run in the compiled, vmapped lab (one RunSpec per learner and
environment) with the same network (the agent's default: two 128-unit LayerNorm layers, or the
MinAtar convolution on MinAtar grids), the same steps and the same seed keys. Per environment
and seed it records:
  * final return: the mean return of the episodes that ended in the last `final_frac` (10%) of
    the steps;
  * AUC: the area under the learning curve divided by its length, i.e. the mean over `bins`
    equal windows of the stream of the mean return of the episodes that ended in each window
    (a window with none takes the previous window's value).
Scores are normalised per environment, (score - random) / (reference - random):
  * random: the mean return of the uniformly random policy, measured here with the same seeds
    (stream-td acts uniformly at random) over `random_steps` steps;
  * reference: a best-known score. Given ones (`reference`, e.g. from a paper) come first; then
    the return cap of CartPole-v1 (500, the episode limit of its gymnax / gymnasium spec: the most
    any policy can score); else the best final return of any learner and seed in this study
    (summary.json says which was used per environment). Published best-known MinAtar scores
    could not be read from the corpus here, hence the in-study fallback.
The aggregate over environments is the interquartile mean (IQM, the mean of the middle 50% of
all runs' normalised scores) with a 95% percentile confidence interval from a stratified
bootstrap (seeds resampled with replacement within each environment), the rliable protocol
(Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"). The `rliable` package
itself installs here but does not import (arch 7.2 against this venv's pandas 3.1: a TypeError in
`deprecate_kwarg`), so the IQM and bootstrap are the few lines below, checked against their
definitions in tests/test_learners_study.py.

A learner beats its baseline (the same agent with ObGD) when the stratified-bootstrap 95% CI of
the IQM difference, paired by seed (every learner of a seed uses the same keys), lies above 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import run_plan, save_study_figure, start_study, step_progress, timing

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan, RunResult
    from oakrl.lab.spec import RunSpec

DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "Breakout-MinAtar", "Asterix-MinAtar", "SpaceInvaders-MinAtar")
DEFAULT_LEARNERS = (
    "stream-q:obgd",
    "stream-q:adaptive-q",
    "stream-q:intentional",
    "stream-ac:obgd",
    "stream-ac:intentional",
)
# Which optimisers each agent takes in this study (the learners of issue 22 and the baselines).
AGENT_OPTIMIZERS = {
    "stream-q": ("obgd", "adaptive-obgd", "tidbd-obgd", "adaptive-q", "intentional"),
    "stream-ac": ("obgd", "adaptive-obgd", "tidbd-obgd", "adaptive-q", "intentional"),
}
# The most any policy can score (the episode cap of the environment's spec).
KNOWN_MAX = {"CartPole-v1": 500.0}


@dataclass(frozen=True)
class LearnersConfig:
    envs: tuple[str, ...] = DEFAULT_ENVS
    learners: tuple[str, ...] = DEFAULT_LEARNERS  # agent:optimizer
    steps: int = 100_000  # per seed, every learner and environment
    seeds: int = 5
    seed: int = 0
    chunk: int = 10_000
    bins: int = 20  # windows of the learning curve (AUC, figure)
    final_frac: float = 0.1  # final return: episodes ending in the last 10% of the steps
    random_steps: int = 20_000  # steps of the random policy per seed (the normaliser's floor)
    boot: int = 2000  # bootstrap resamples
    reference: dict[str, float] = field(default_factory=dict)  # env -> best-known score

    def check(self) -> None:
        from oakrl.envs.registry import list_envs

        known = {name for name, _ in list_envs()}
        for env in self.envs:
            if env not in known:
                raise ConfigError(f"unknown env {env!r} in --envs; see `oakrl envs`")
        if not self.envs or not self.learners:
            raise ConfigError("--envs and --learners each need at least one name")
        for name in self.learners:
            agent, _, opt = name.partition(":")
            if agent not in AGENT_OPTIMIZERS or opt not in AGENT_OPTIMIZERS[agent]:
                valid = ", ".join(f"{a}:{{{'|'.join(o)}}}" for a, o in AGENT_OPTIMIZERS.items())
                raise ConfigError(f"unknown learner {name!r}; valid: {valid}")
        if len(set(self.learners)) != len(self.learners):
            raise ConfigError("--learners lists a learner twice")
        for name, lo in (
            ("steps", 10),
            ("seeds", 1),
            ("chunk", 1),
            ("bins", 1),
            ("random_steps", 10),
            ("boot", 10),
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {lo}, got {v!r}")
        if not 0 < self.final_frac <= 1:
            raise ConfigError(f"final_frac must be in (0, 1], got {self.final_frac!r}")
        for env in self.reference:
            if env not in self.envs:
                raise ConfigError(f"--reference names {env!r}, which is not in --envs")


def parse_reference(text: str | None) -> dict[str, float]:
    """'CartPole-v1=500,Breakout-MinAtar=30' -> {env: score}."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        env, sep, value = part.partition("=")
        try:
            out[env.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"--reference takes ENV=SCORE,... got {part!r}")
    return out


def baseline_of(learner: str, learners: tuple[str, ...]) -> str | None:
    """The ObGD learner of the same agent, when the study runs it (and `learner` is not it)."""
    base = learner.partition(":")[0] + ":obgd"
    return base if base in learners and base != learner else None


def run_spec(cfg: LearnersConfig, env: str, learner: str) -> RunSpec:
    """One learner on one environment: the agent's defaults but `optimizer` (same network)."""
    from oakrl.lab.spec import RunSpec

    agent, _, opt = learner.partition(":")
    return RunSpec(
        env=env, agent=agent, steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed,
        chunk=min(cfg.chunk, cfg.steps), agent_options={"optimizer": opt},
    )  # fmt: skip


def random_spec(cfg: LearnersConfig, env: str) -> RunSpec:
    """The uniformly random policy (stream-td's behaviour) on `env`, same seeds."""
    from oakrl.lab.spec import RunSpec

    steps = cfg.random_steps
    return RunSpec(
        env=env, agent="stream-td", steps=steps, seeds=cfg.seeds, seed=cfg.seed, chunk=min(cfg.chunk, steps)
    )


def prepare_runs(cfg: LearnersConfig) -> dict[tuple[str, str], RunPlan]:
    """Every run, built and checked before any runs: (env, learner) and (env, "random")."""
    from oakrl.lab.run import prepare

    cfg.check()
    plans = {}
    for env in cfg.envs:
        plans[(env, "random")] = prepare(random_spec(cfg, env))
        for learner in cfg.learners:
            plans[(env, learner)] = prepare(run_spec(cfg, env, learner))
    return plans


def curves(episodes: dict[str, np.ndarray], steps: int, seeds: int, bins: int) -> np.ndarray:
    """[S, bins]: per seed, the mean return of the episodes ending in each window of the stream;
    a window with none takes the previous one's value (the first ones: the first seen; NaN if none)."""
    seed, step, ret = (np.asarray(episodes[k]) for k in ("seed", "step", "return"))
    out = np.full((seeds, bins), np.nan)
    idx = np.minimum((step - 1) * bins // steps, bins - 1)
    for s in range(seeds):
        for b in range(bins):
            sel = (seed == s) & (idx == b)
            if sel.any():
                out[s, b] = ret[sel].mean()
        row = out[s]
        seen = np.flatnonzero(~np.isnan(row))
        if seen.size:
            row[: seen[0]] = row[seen[0]]
            for b in range(1, bins):
                if np.isnan(row[b]):
                    row[b] = row[b - 1]
    return out


def final_returns(episodes: dict[str, np.ndarray], steps: int, seeds: int, frac: float) -> np.ndarray:
    """[S]: the mean return of the episodes that ended in the last `frac` of the steps (if none
    did, the last episode's; NaN if the seed finished no episode)."""
    seed, step, ret = (np.asarray(episodes[k]) for k in ("seed", "step", "return"))
    out = np.full(seeds, np.nan)
    start = steps - max(1, int(round(frac * steps)))
    for s in range(seeds):
        mine = seed == s
        late = mine & (step > start)
        if late.any():
            out[s] = ret[late].mean()
        elif mine.any():
            out[s] = ret[mine][np.argmax(step[mine])]
    return out


def iqm(x: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean of the middle 50% (rliable's definition,
    scipy.stats.trim_mean(x, 0.25) over the flattened scores)."""
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(x, np.float64).ravel(), 0.25))


def stratified_bootstrap(
    scores: list[np.ndarray], stat: Callable[[list[np.ndarray]], float], boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """95% percentile CI of `stat` when each stratum's runs (scores[e] [S, ...]: the first axis is
    the seed) are resampled with replacement within the stratum; several learners' scores of one
    stratum share axis 1 of scores[e] ([S, L]), so a resample keeps them paired by seed."""
    vals = np.empty(boot)
    for i in range(boot):
        vals[i] = stat([x[rng.integers(0, x.shape[0], x.shape[0])] for x in scores])
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def aggregate(
    norm: dict[str, dict[str, np.ndarray]], learners: tuple[str, ...], boot: int, seed: int
) -> dict[str, Any]:
    """norm[env][learner] [S] normalised scores -> per learner IQM and CI; per learner with a
    baseline, the paired IQM difference and its CI."""
    envs = list(norm)
    rng = np.random.default_rng(seed)
    stacked = [np.stack([norm[e][name] for name in learners], axis=1) for e in envs]  # [S, L] per env
    out: dict[str, Any] = {"learners": {}, "comparisons": {}}
    for j, name in enumerate(learners):
        lo, hi = stratified_bootstrap(
            stacked, lambda xs, j=j: iqm(np.concatenate([x[:, j] for x in xs])), boot, rng
        )
        out["learners"][name] = {"iqm": iqm(np.concatenate([x[:, j] for x in stacked])), "ci95": [lo, hi]}
    for j, name in enumerate(learners):
        base = baseline_of(name, learners)
        if base is None:
            continue
        b = learners.index(base)

        def diff(xs, j=j, b=b):
            return iqm(np.concatenate([x[:, j] for x in xs])) - iqm(np.concatenate([x[:, b] for x in xs]))

        lo, hi = stratified_bootstrap(stacked, diff, boot, rng)
        d = diff(stacked)
        out["comparisons"][name] = {
            "baseline": base,
            "iqm_difference": d,
            "ci95": [lo, hi],
            "beats_baseline": bool(lo > 0),
            "worse_than_baseline": bool(hi < 0),
        }
    return out


def study_learners(
    cfg: LearnersConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: runs, summary.json, metrics.parquet, figure.png; every input checked
    (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine

    plans = prepare_runs(cfg)
    path, cmd = start_study(out, {**dataclasses.asdict(cfg), "study": "learners"})
    t0 = time.perf_counter()
    width = max(len(f"{e} {n}") for e, n in plans)
    progress = step_progress(cfg.steps, max(cfg.chunk, cfg.steps // 4), width, log)
    progress_random = step_progress(cfg.random_steps, cfg.random_steps, width, log)
    results: dict[tuple[str, str], RunResult] = {}
    for (env, name), plan in plans.items():
        results[(env, name)] = run_plan(
            f"{env} {name}", plan, progress_random if name == "random" else progress
        )

    per_env: dict[str, Any] = {}
    final_norm: dict[str, dict[str, np.ndarray]] = {}
    auc_norm: dict[str, dict[str, np.ndarray]] = {}
    curve_of: dict[tuple[str, str], np.ndarray] = {}
    rows: dict[str, list] = {
        k: [] for k in ("env", "learner", "seed", "final", "auc", "final_norm", "auc_norm")
    }
    for env in cfg.envs:
        rnd = results[(env, "random")]
        random_score = float(np.nanmean(final_returns(rnd.episodes, cfg.random_steps, cfg.seeds, 1.0)))
        finals, aucs = {}, {}
        for name in cfg.learners:
            c = curves(results[(env, name)].episodes, cfg.steps, cfg.seeds, cfg.bins)
            curve_of[(env, name)] = c
            finals[name] = final_returns(results[(env, name)].episodes, cfg.steps, cfg.seeds, cfg.final_frac)
            aucs[name] = c.mean(axis=1)
        if env in cfg.reference:
            ref, source = cfg.reference[env], "given (--reference)"
        elif env in KNOWN_MAX:
            ref, source = KNOWN_MAX[env], "the episode return cap of the environment's spec"
        else:
            ref, source = (
                float(np.nanmax(np.stack(list(finals.values())))),
                "best final return seen in this study",
            )
        scale = ref - random_score
        if not scale > 0:  # nothing beat random: keep the raw gap visible rather than divide by ~0
            scale, source = 1.0, source + " (not above random: scores are minus random, unscaled)"
        final_norm[env] = {n: np.nan_to_num((v - random_score) / scale) for n, v in finals.items()}
        auc_norm[env] = {n: np.nan_to_num((v - random_score) / scale) for n, v in aucs.items()}
        per_env[env] = {
            "random": random_score,
            "reference": ref,
            "reference_source": source,
            "learners": {
                n: {
                    "final": {
                        "mean": float(np.nanmean(finals[n])),
                        "sd": _sd(finals[n]),
                        "per_seed": _list(finals[n]),
                    },
                    "auc": {
                        "mean": float(np.nanmean(aucs[n])),
                        "sd": _sd(aucs[n]),
                        "per_seed": _list(aucs[n]),
                    },
                    "final_normalised": float(final_norm[env][n].mean()),
                    "auc_normalised": float(auc_norm[env][n].mean()),
                    "timing": timing(results[(env, n)]),
                }
                for n in cfg.learners
            },
        }
        for n in cfg.learners:
            for s in range(cfg.seeds):
                rows["env"].append(env)
                rows["learner"].append(n)
                rows["seed"].append(s)
                rows["final"].append(finals[n][s])
                rows["auc"].append(aucs[n][s])
                rows["final_norm"].append(final_norm[env][n][s])
                rows["auc_norm"].append(auc_norm[env][n][s])

    summary = {
        "study": "learners",
        "command": cmd,
        "steps": cfg.steps,
        "seeds": cfg.seeds,
        "final": f"mean return of the episodes ending in the last {cfg.final_frac:.0%} of the steps",
        "auc": f"mean over {cfg.bins} equal windows of the mean episode return in each",
        "normalised": "(score - random) / (reference - random) per environment",
        "aggregate": {
            "method": "IQM over all (env, seed) runs; 95% percentile CI, stratified bootstrap over seeds "
            f"within each env ({cfg.boot} resamples); comparisons paired by seed",
            "final": aggregate(final_norm, cfg.learners, cfg.boot, cfg.seed),
            "auc": aggregate(auc_norm, cfg.learners, cfg.boot, cfg.seed + 1),
        },
        "envs": per_env,
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(
        path / "metrics.parquet",
        {
            k: np.asarray(v, np.float32 if k not in ("env", "learner", "seed") else None)
            for k, v in rows.items()
        },
    )
    write_json(path / "summary.json", summary)
    plot(path / "figure.png", cfg, curve_of, summary, cmd)
    echo_summary(summary, cfg, echo)
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")
    return summary


def _sd(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.std(ddof=1)) if x.size > 1 else 0.0


def _list(x: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in x]


def echo_summary(summary: dict[str, Any], cfg: LearnersConfig, echo: Callable[[str], None]) -> None:
    """The table (final / AUC per env and learner) and the aggregate, as plain lines."""
    w = max(len(n) for n in cfg.learners)
    for env, e in summary["envs"].items():
        echo(f"{env}  (random {e['random']:.3g}, reference {e['reference']:.3g}: {e['reference_source']})")
        for n, v in e["learners"].items():
            echo(
                f"  {n:>{w}}  final {v['final']['mean']:9.3g} (sd {v['final']['sd']:.3g})  "
                f"auc {v['auc']['mean']:9.3g}  normalised final {v['final_normalised']:.3f}"
            )
    for kind in ("final", "auc"):
        agg = summary["aggregate"][kind]
        echo(f"IQM of normalised {kind}:")
        for n, v in agg["learners"].items():
            echo(f"  {n:>{w}}  {v['iqm']:.3f}  [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]")
        for n, c in agg["comparisons"].items():
            verdict = "beats" if c["beats_baseline"] else "worse than" if c["worse_than_baseline"] else "ties"
            echo(
                f"  {n:>{w}}  - {c['baseline']}: {c['iqm_difference']:+.3f} "
                f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]: {verdict} its baseline"
            )


def plot(path, cfg: LearnersConfig, curve_of, summary: dict[str, Any], cmd: str) -> None:
    """One panel per environment (mean curve over seeds, band: min-max) and the aggregate IQMs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cfg.envs) + 1
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = (np.arange(cfg.bins) + 1) * cfg.steps / cfg.bins
    for i, env in enumerate(cfg.envs):
        ax = axes.flat[i]
        for name in cfg.learners:
            c = curve_of[(env, name)]
            (line,) = ax.plot(x, np.nanmean(c, axis=0), label=name)
            ax.fill_between(x, np.nanmin(c, axis=0), np.nanmax(c, axis=0), color=line.get_color(), alpha=0.12)
        ax.axhline(summary["envs"][env]["random"], color="grey", lw=0.8, ls=":")
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("steps")
        ax.set_ylabel("episode return")
    ax = axes.flat[len(cfg.envs)]
    for k, kind in enumerate(("final", "auc")):
        agg = summary["aggregate"][kind]["learners"]
        ys = np.arange(len(cfg.learners)) + 0.2 * k
        vals = np.array([agg[n]["iqm"] for n in cfg.learners])
        lo = vals - np.array([agg[n]["ci95"][0] for n in cfg.learners])
        hi = np.array([agg[n]["ci95"][1] for n in cfg.learners]) - vals
        ax.errorbar(vals, ys, xerr=[lo, hi], fmt="o", capsize=3, label=f"IQM normalised {kind}")
    ax.set_yticks(np.arange(len(cfg.learners)) + 0.1, cfg.learners, fontsize=7)
    ax.set_title("aggregate (95% stratified bootstrap CI)", fontsize=9)
    ax.legend(fontsize=7)
    for j in range(n, rows * cols):
        axes.flat[j].axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"streaming learners, {cfg.steps} steps, {cfg.seeds} seeds", fontsize=10)
    save_study_figure(fig, path, cmd)
    plt.close(fig)
