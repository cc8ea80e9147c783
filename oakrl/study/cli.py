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
from oakrl.lab.files import machine, write_json, write_table
from oakrl.study.common import (
    command_line,
    parse_methods,
    per_task_table,
    plot_per_task,
    prepare_out,
    retention_summary,
)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ConfigError(f"--hidden takes comma-separated widths like 64,64, got {text!r}") from None
    if not widths or any(w <= 0 for w in widths):
        raise ConfigError(f"--hidden takes positive widths, got {text!r}")
    return widths


@click.group("study")
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
    path = prepare_out(out)
    cmd = command_line()
    write_json(path / "config.json", {**config_json(cfg), "command": cmd})
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
@click.option("--env", default="CartPole-v1", show_default=True)
@click.option("--agent", default="stream-ac", show_default=True, help="stream-ac | stream-q")
@click.option("--changes", default=50, show_default=True, help="dynamics changes over the lifetime")
@click.option("--every", default=2000, show_default=True, help="steps between changes")
@click.option("--tasks", default=4, show_default=True, help="distinct dynamics, visited cyclically")
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
    out, env, agent, changes, every, tasks, seeds, seed, hidden, methods, remedy_options
) -> None:
    """Streaming RL whose dynamics change every K steps: per-change return per remedy."""
    from oakrl.study.rl import RLConfig, config_json, fill_nan, run_rl

    if agent not in ("stream-ac", "stream-q"):
        raise ConfigError(f"--agent must be stream-ac or stream-q, got {agent!r}")
    cfg = RLConfig(
        env=env,
        agent=agent,
        changes=changes,
        every=every,
        tasks=tasks,
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
    path = prepare_out(out)
    cmd = command_line()
    write_json(path / "config.json", {**config_json(cfg), "command": cmd})
    t0 = time.perf_counter()
    last = {}

    def progress(method, step):
        if last.get(method, -1) // 50_000 != step // 50_000 or step == cfg.steps:
            click.echo(f"{method:>15}  step {step}/{cfg.steps}", err=True)
        last[method] = step

    result = run_rl(cfg, progress)
    metrics = result["metrics"]
    perf = fill_nan(metrics["return"])
    summary = {
        "study": "plasticity-rl",
        "command": cmd,
        "performance": "mean return of the episodes that ended within each change (segment of --every steps)",
        **retention_summary(perf, cfg.methods),
        # Tasks cycle: windows of whole cycles (>= 10% of the changes) compare like with like.
        "cycle_matched": retention_summary(
            perf, cfg.methods, window=cfg.tasks * math.ceil(0.1 * cfg.changes / cfg.tasks)
        ),
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
            "value_dormant": fill_nan(metrics["value_dormant"]),
        },
        cfg.methods,
        f"{cfg.env} {cfg.agent}, dynamics switch every {cfg.every} steps, "
        f"{cfg.changes} changes, {cfg.seeds} seeds",
        cmd,
        smooth=max(1, cfg.changes // 25),
    )
    _echo_methods(summary)
    click.echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")


def _echo_methods(summary) -> None:
    for name, m in summary["methods"].items():
        ret = m["retention"]
        click.echo(
            f"{name:>15}  early {m['early']:.3f}  late {m['late']:.3f} (sd {m['late_spread']:.3f})  "
            f"retention {ret if ret is None else round(ret, 3)}"
        )
