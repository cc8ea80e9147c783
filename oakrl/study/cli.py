"""`oakrl study ...`: studies that answer one question each and write a results directory.

    oakrl study plasticity-supervised --out results/lop-sup
    oakrl study plasticity-rl --out results/lop-rl

Each writes summary.json (the `methods` map: early, late, retention per method, with per-seed
lists), metrics.parquet (one row per method, seed and task/change), figure.png, and config.json;
the command that made them is in summary.json and at the foot of the figure.
"""

from __future__ import annotations

import json
import math
import time

import click
import numpy as np

from oakrl.errors import ConfigError
from oakrl.lab.cpu import cpu_threads_option
from oakrl.lab.files import machine, write_json, write_table
from oakrl.study.common import (
    parse_methods,
    per_task_table,
    plot_per_task,
    retention_summary,
    start_study,
    step_progress,
)


def _widths(text: str, allow_linear: bool = False, flag: str = "--hidden") -> tuple[int, ...]:
    if allow_linear and text.strip().lower() == "linear":
        return ()
    valid = "comma-separated widths like 64,64" + (" or linear" if allow_linear else "")
    try:
        widths = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ConfigError(f"{flag} takes {valid}, got {text!r}") from None
    if not widths or any(w <= 0 for w in widths):
        raise ConfigError(f"{flag} takes positive {valid}, got {text!r}")
    return widths


@click.group("study")
@cpu_threads_option("XLA:CPU threads for the study [default: all CPUs]; as for `oakrl run`.")
def study() -> None:
    """Studies: one command each, a results directory with summary.json, a table and a figure."""


@study.command("plasticity-supervised")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--tasks", default=200, show_default=True, help="tasks (input permutations) in the stream")
@click.option("--steps-per-task", default=500, show_default=True, help="samples per task, one SGD step each")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--hidden", default="64,64", show_default=True, help="hidden widths")
@click.option("--lr", default=0.05, show_default=True, help="SGD step size")
@click.option("--activation", default="relu", show_default=True, help="relu | tanh | leaky_relu")
@click.option("--layer-norm/--no-layer-norm", default=False, show_default=True)
@click.option(
    "--methods", default=None, help="comma-separated subset of backprop,cbp,redo,shrink-perturb,l2-init"
)
@click.option("--cbp-rate", default=5e-4, show_default=True, help="CBP replacement rate rho")
@click.option("--maturity", default=100, show_default=True)
@click.option("--redo-every", default=1000, show_default=True)
@click.option("--shrink", default=1e-4, show_default=True)
@click.option("--sigma", default=1e-3, show_default=True)
@click.option("--l2", default=1e-3, show_default=True)
def plasticity_supervised(
    out,
    tasks,
    steps_per_task,
    seeds,
    seed,
    hidden,
    lr,
    activation,
    layer_norm,
    methods,
    cbp_rate,
    maturity,
    redo_every,
    shrink,
    sigma,
    l2,
) -> None:
    """Loss of plasticity on online permuted inputs: plain backprop vs each remedy."""
    from oakrl.study.supervised import SupervisedConfig, config_json, run_supervised

    cfg = SupervisedConfig(
        tasks=tasks,
        steps_per_task=steps_per_task,
        seeds=seeds,
        seed=seed,
        hidden=_widths(hidden),
        lr=lr,
        activation=activation,
        layer_norm=layer_norm,
        methods=parse_methods(methods),
        cbp_rate=cbp_rate,
        maturity=maturity,
        redo_every=redo_every,
        shrink=shrink,
        sigma=sigma,
        l2=l2,
    )
    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()

    def progress(method, done, metrics):
        click.echo(
            f"{method:>15}  task {done}/{cfg.tasks}  accuracy {float(metrics['accuracy'].mean()):.3f}  "
            f"dead {float(metrics['dead'].mean()):.3f}",
            err=True,
        )

    result = run_supervised(cfg, progress)
    metrics = result["metrics"]
    summary = {
        "study": "plasticity-supervised",
        "command": cmd,
        "performance": "online accuracy per task (predicted before learning from each sample)",
        **retention_summary(metrics["accuracy"], cfg.methods),
        "final": {
            m: {k: float(v[i, :, -1].mean()) for k, v in metrics.items()} for i, m in enumerate(cfg.methods)
        },
        "timing": result["timing"],
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", per_task_table(metrics, cfg.methods))
    write_json(path / "summary.json", summary)
    plot_per_task(
        path / "figure.png",
        {k: metrics[k] for k in ("accuracy", "dead", "eff_rank")},
        cfg.methods,
        f"online permuted inputs: {cfg.tasks} tasks x {cfg.steps_per_task} steps, {cfg.seeds} seeds",
        cmd,
        smooth=max(1, cfg.tasks // 40),
    )
    _echo_methods(summary)
    click.echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")


@study.command("plasticity-rl")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--env", default="CodedGrid-v0", show_default=True)
@click.option("--agent", default="stream-q", show_default=True, help="stream-q | stream-ac")
@click.option(
    "--schedule", default="permute", show_default=True, help="switch | permute | drift (what changes)"
)
@click.option("--changes", default=200, show_default=True, help="changes of the world over the lifetime")
@click.option("--every", default=2500, show_default=True, help="steps between changes")
@click.option("--tasks", default=200, show_default=True, help="distinct worlds, visited cyclically")
@click.option("--gamma", default=0.9, show_default=True, help="the agent's discount")
@click.option("--epsilon-end", default=0.1, show_default=True, help="stream-q's exploration after its decay")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--hidden", default="32,32", show_default=True)
@click.option(
    "--remedy-options",
    default=None,
    help='JSON merged into each remedy\'s options, e.g. \'{"l2-init": {"l2": 1e-5}}\'',
)
@click.option(
    "--methods", default=None, help="comma-separated subset of backprop,cbp,redo,shrink-perturb,l2-init"
)
def plasticity_rl(
    out,
    env,
    agent,
    schedule,
    changes,
    every,
    tasks,
    gamma,
    epsilon_end,
    seeds,
    seed,
    hidden,
    methods,
    remedy_options,
) -> None:
    """Streaming RL whose dynamics change every K steps: per-change return per remedy."""
    from oakrl.study.rl import RLConfig, config_json, fill_nan, run_rl, verdict

    if agent not in ("stream-ac", "stream-q"):
        raise ConfigError(f"--agent must be stream-ac or stream-q, got {agent!r}")
    cfg = RLConfig(
        env=env,
        agent=agent,
        schedule=schedule,
        changes=changes,
        every=every,
        tasks=tasks,
        gamma=gamma,
        epsilon_end=epsilon_end,
        seeds=seeds,
        seed=seed,
        hidden=_widths(hidden),
        methods=parse_methods(methods),
    )
    if remedy_options:
        try:
            extra = json.loads(remedy_options)
            assert isinstance(extra, dict) and all(isinstance(v, dict) for v in extra.values())
        except (ValueError, AssertionError):
            raise ConfigError(
                f"--remedy-options takes a JSON object of objects, got {remedy_options!r}"
            ) from None
        bad = sorted(set(extra) - set(cfg.options))
        if bad:
            raise ConfigError(f"--remedy-options: no remedy {bad[0]!r}; valid: {', '.join(cfg.options)}")
        cfg.options = {k: {**v, **extra.get(k, {})} for k, v in cfg.options.items()}
    cfg.check()
    from oakrl.agents.common import make_remedy

    for m in cfg.methods:  # bad option names or values fail here, before anything runs
        if m != "backprop":
            make_remedy({"plasticity": m, "plasticity_options": cfg.options.get(m, {})})
    from oakrl.envs import make_env

    # An unknown environment, or a schedule it has no variants for, fails before --out is made.
    make_env(cfg.env, schedule=cfg.schedule, every=cfg.every, tasks=cfg.tasks, seed=cfg.seed)
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    progress = step_progress(cfg.steps, 50_000, 15, lambda line: click.echo(line, err=True))

    result = run_rl(cfg, progress)
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
    _echo_methods(summary)
    for name, v in summary["verdict"]["remedies"].items():
        pd = v["paired_difference"]
        click.echo(
            # 3 significant digits: returns run from 0-1 (success rates) to hundreds (CartPole).
            f"{name:>15}  late - backprop {v['margin']:+.3g} vs seed spread {v['spread']:.3g}: "
            f"{'beats' if v['beats_backprop'] else 'does not beat'} backprop "
            f"(paired {pd['mean']:+.3g} +- {pd['standard_error']:.3g} se, "
            f"ahead on {pd['seeds_ahead']:.0%} of seeds)"
        )
    click.echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")


@study.command("oak")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--every", default=5000, show_default=True, help="steps between reward relocations")
@click.option("--relocations", default=7, show_default=True)
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--stream", default="stream-q", show_default=True, help="the model-free stream learner")
@click.option("--window", default=1000, show_default=True, help="steps of the recovery measure's window")
@click.option("--threshold", default=0.5, show_default=True, help="recovered: rate >= this x optimal rate")
@click.option("--ablation/--no-ablation", default=True, show_default=True, help="also OaK, options unused")
@click.option("--second-world", default="Foraging-v0", show_default=True, help="'' for none")
@click.option("--second-steps", default=10000, show_default=True)
def oak_study(
    out, every, relocations, seeds, seed, stream, window, threshold, ablation, second_world, second_steps
) -> None:  # fmt: skip
    """OaK vs Dyna vs a stream learner on Rooms-v0: recovery after the goal moves, options found."""
    from oakrl.study.oak import OakStudyConfig, study_oak

    cfg = OakStudyConfig(
        every=every, relocations=relocations, seeds=seeds, seed=seed, stream=stream, window=window,
        threshold=threshold, ablation=ablation, second_world=second_world or None, second_steps=second_steps,
    )  # fmt: skip
    study_oak(cfg, out, echo=lambda line: click.echo(line, err=True))


@study.command("prior-vs-scratch")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--env", default="CartPole-v1", show_default=True, help="CartPole-v1 or TextWorld-v0")
@click.option("--steps", default=100_000, show_default=True, help="agent steps per seed and condition")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--conditions", default="scratch,expert,mediocre,wrong", show_default=True)
@click.option("--threshold", default=None, type=float, help="return to reach [400 CartPole, 0.9 text]")
@click.option("--window", default=10, show_default=True, help="episodes averaged for steps to threshold")
@click.option("--demo-steps", default=20_000, show_default=True, help="transitions per recorded dataset")
@click.option("--noise", default=0.5, show_default=True, help="mediocre: probability of a random action")
@click.option("--demos-dir", default=None, help="use DIR/{expert,mediocre,wrong}.npz from `oakrl record`")
@click.option("--hidden", default="128,128", show_default=True)
@click.option("--bc-steps", default=2000, show_default=True, help="behaviour-cloning Adam steps")
@click.option("--bc-value/--no-bc-value", default=False, show_default=True, help="also fit the critic")
@click.option("--kl", default=0.0, show_default=True, help="initial pull towards the prior")
@click.option("--kl-half-life", default=0, show_default=True, help="steps for --kl to halve (0: constant)")
@click.option("--kl-adapt", default=0.0, show_default=True, help="rate at which reward's verdict scales --kl")
def prior_vs_scratch(
    out, env, steps, seeds, seed, conditions, threshold, window, demo_steps, noise, demos_dir, hidden,
    bc_steps, bc_value, kl, kl_half_life, kl_adapt,
) -> None:  # fmt: skip
    """Start from nothing or from expert / mediocre / wrong demonstrations; let reward correct."""
    from oakrl.study.prior import PriorConfig, config_json, curve_table, plot, run_prior, verdict

    cfg = PriorConfig(
        env=env, steps=steps, seeds=seeds, seed=seed,
        conditions=tuple(s.strip() for s in conditions.split(",") if s.strip()), threshold=threshold,
        window=window, demo_steps=demo_steps, noise=noise, demos_dir=demos_dir, hidden=_widths(hidden),
        bc_steps=bc_steps, bc_value=bc_value, kl=kl, kl_half_life=kl_half_life, kl_adapt=kl_adapt,
    )  # fmt: skip
    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    result = run_prior(cfg, path, log=lambda line: click.echo(line, err=True))
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
    plot(path / "figure.png", cfg, result, cmd)
    for name, c in result["conditions"].items():
        st = c["steps_to_threshold"]
        click.echo(
            f"{name:>9}  steps to {cfg.thresh:g}: {st['mean']:,.0f} ({st['reached']}/{cfg.seeds} reached)  "
            f"final return {c['final_return']['mean']:.1f}  average reward {c['average_reward']['mean']:.4f}"
        )
    click.echo(f"verdict: {json.dumps(summary['verdict'])}")
    click.echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")


@study.command("model-based")
@click.option("--out", required=True, help="results directory (must not hold a study)")
@click.option("--every", default=10_000, show_default=True, help="steps between goal relocations (K)")
@click.option("--changes", default=4, show_default=True, help="relocations measured (after a first segment)")
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True, help="base seed")
@click.option("--agents", "agents_", default="stream-q,dyna,planner", show_default=True)
@click.option("--planning-steps", default=5, show_default=True, help="dyna, planner: updates per step")
@click.option("--simulations", default=16, show_default=True, help="planner: search simulations per step")
@click.option(
    "--hidden",
    default="linear",
    show_default=True,
    help="value learner: widths like 64,64, or linear (tabular)",
)
@click.option(
    "--model-hidden", default="64", show_default=True, help="dyna, planner: transition model widths"
)
@click.option("--gamma", default=0.95, show_default=True)
@click.option("--epsilon", default=0.1, show_default=True, help="stream-q/dyna exploration after K/2 steps")
@click.option("--window", default=1000, show_default=True, help="steps of the reward-rate window")
@click.option("--threshold", default=0.3, show_default=True, help="recovered: rate >= this x optimal rate")
def model_based(
    out, every, changes, seeds, seed, agents_, planning_steps, simulations, hidden, model_hidden, gamma,
    epsilon, window, threshold,
) -> None:  # fmt: skip
    """Rewards move, dynamics stay (Rooms-v0): recovery of stream-q vs dyna vs planner, model error."""
    from oakrl.study.model_based import ModelBasedConfig, config_json, plot, run_study, summarize

    cfg = ModelBasedConfig(
        every=every, changes=changes, seeds=seeds, seed=seed,
        agents=tuple(s.strip() for s in agents_.split(",") if s.strip()), planning_steps=planning_steps,
        simulations=simulations, hidden=_widths(hidden, allow_linear=True),
        model_hidden=_widths(model_hidden, flag="--model-hidden"), gamma=gamma, epsilon=epsilon,
        window=window, threshold=threshold,
    )  # fmt: skip
    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    progress = step_progress(cfg.steps, cfg.every, 9, lambda line: click.echo(line, err=True))

    results = run_study(cfg, progress)
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
        click.echo(
            f"{name:>9}  recovery {rec['mean']:,.0f} steps ({rec['censored']} censored)  "
            f"final return {a['final_return']['mean']:.3f}{err}"
        )
    click.echo(f"verdict: {json.dumps(summary['verdict'])}")
    click.echo(f"wrote {path}/summary.json, metrics.parquet, figure.png ({summary['wall_seconds']:.0f} s)")


def _echo_methods(summary) -> None:
    for name, m in summary["methods"].items():
        ret = m["retention"]
        click.echo(
            f"{name:>15}  early {m['early']:.3f}  late {m['late']:.3f} (sd {m['late_spread']:.3f})  "
            f"retention {ret if ret is None else round(ret, 3)}"
        )
