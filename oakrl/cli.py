"""oakrl's command line: run, envs, agents, report.

Bad input never produces a traceback: one line on stderr saying what is wrong and what is
valid, exit code 2.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import click

from oakrl.errors import ConfigError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=True,
)
@click.version_option(package_name="oakrl", prog_name="oakrl")
def app() -> None:
    """Agents that learn from their own experience, continually."""


def _parse_value(text: str, default):
    """Parses an --opt value to the type of the option's default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, tuple):
        items = [s for s in text.replace(" ", "").split(",") if s]
        return tuple(int(s) for s in items)
    if isinstance(default, str):
        return text
    return ast.literal_eval(text)


def parse_agent_options(agent: str, pairs: list[str]) -> dict:
    from oakrl.agents import AGENTS

    if agent not in AGENTS:
        raise ConfigError(f"unknown agent {agent!r}; valid: {', '.join(AGENTS)}")
    defaults = AGENTS[agent].defaults
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--opt takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in defaults:
            raise ConfigError(f"{agent} has no option {key!r}; valid: {', '.join(sorted(defaults))}")
        try:
            options[key] = _parse_value(value.strip(), defaults[key])
        except (ValueError, SyntaxError) as e:
            raise ConfigError(f"--opt {key}={value}: {e}; default is {defaults[key]!r}") from None
        _check_option(key, options[key])
    return options


def _check_option(key: str, value) -> None:
    """Impossible values of the common agent options."""
    if key in ("lr", "kappa", "kappa_value", "kappa_policy") and not value > 0:
        raise ConfigError(f"--opt {key} must be > 0, got {value}")
    if key in ("gamma", "lamda") and not 0 <= value <= 1:
        raise ConfigError(f"--opt {key} must be in [0, 1], got {value}")
    if key in ("entropy",) and not value >= 0:
        raise ConfigError(f"--opt {key} must be >= 0, got {value}")
    if key in ("epsilon_start", "epsilon_end") and not 0 <= value <= 1:
        raise ConfigError(f"--opt {key} must be in [0, 1], got {value}")
    if key in ("return_horizon", "exploration_steps") and not value >= 1:
        raise ConfigError(f"--opt {key} must be a positive integer, got {value}")
    if key == "sparsity" and not 0 <= value < 1:
        raise ConfigError(f"--opt sparsity must be in [0, 1), got {value}")
    if key == "hidden" and (not value or any(h <= 0 for h in value)):
        raise ConfigError(f"--opt hidden takes positive widths like 128,128, got {value}")
    if key == "optimizer":
        from oakrl.agents.common import OPTIMIZERS

        if value not in OPTIMIZERS:
            raise ConfigError(f"--opt optimizer must be one of {', '.join(OPTIMIZERS)}, got {value!r}")


def _default_out(env: str, agent: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{env.replace(':', '_').replace('/', '_')}_{agent}_{stamp}")


@app.command()
@click.option(
    "--env", default="CartPole-v1", show_default=True, help="Environment id (see `oakrl envs`), or gym:ID."
)
@click.option("--agent", default="stream-ac", show_default=True, help="Agent (see `oakrl agents`).")
@click.option("--steps", default=100_000, show_default=True, help="Steps per seed.")
@click.option("--seeds", default=1, show_default=True, help="Independent seeds, run at once (vmap).")
@click.option("--seed", default=0, show_default=True, help="Base random seed.")
@click.option("--out", default=None, help="Results directory [default: runs/ENV_AGENT_TIME].")
@click.option("--schedule", default=None, help="Continual schedule: switch, permute, reward or drift.")
@click.option("--every", default=50_000, show_default=True, help="Steps per task segment.")
@click.option("--tasks", default=2, show_default=True, help="Number of tasks in the schedule.")
@click.option("--order", default="cyclic", show_default=True, help="Task order: cyclic or random.")
@click.option(
    "--opt", multiple=True, metavar="KEY=VALUE", help="Agent option (repeatable; see `oakrl agents`)."
)
@click.option("--chunk", default=10_000, show_default=True, help="Steps per compiled chunk.")
@click.option(
    "--window", default=1_000, show_default=True, help="Continuing worlds: steps per reported return."
)
@click.option(
    "--prng",
    default="unsafe_rbg",
    show_default=True,
    help="jax.random implementation: unsafe_rbg (fast), rbg or threefry2x32.",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write curve.png.")
def run(
    env, agent, steps, seeds, seed, out, schedule, every, tasks, order, opt, chunk, window, prng, plot
) -> None:
    """Run an agent on a stream of experience and write a results directory."""
    from oakrl.lab.run import RunConfig

    config = RunConfig(
        env=env,
        agent=agent,
        steps=steps,
        seeds=seeds,
        seed=seed,
        schedule=schedule,
        every=every,
        tasks=tasks,
        order=order,
        chunk=chunk,
        window=window,
        prng=prng,
        agent_options=parse_agent_options(agent, list(opt)),
    )
    config.check()
    out = out or _default_out(env, agent)
    _run_with_progress(config, out, plot)


def _run_with_progress(config, out: str, plot: bool) -> None:
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from oakrl.lab.run import build, prepare_out, run

    console = Console(stderr=True)
    # Everything that can be refused is refused before the progress bar appears.
    build(config)
    prepare_out(out)
    recent: list[float] = []
    started = [0.0]
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} steps"),
        TextColumn("{task.fields[sps]}"),
        TextColumn("{task.fields[ret]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(
            f"{config.agent} on {config.env} x{config.seeds} (compiling)",
            total=config.steps,
            sps="",
            ret="",
        )

        def on_chunk(done: int, returns) -> None:
            now = time.perf_counter()
            if done == 0:  # compiled: the stream starts now
                started[0] = now
                progress.update(bar, description=f"{config.agent} on {config.env} x{config.seeds}")
                return
            recent.extend(np.asarray(returns).tolist())
            del recent[:-100]
            rate = done * config.seeds / max(now - started[0], 1e-9)
            ret = f"return {np.mean(recent):.1f}" if recent else "return -"
            progress.update(
                bar,
                completed=done,
                sps=f"{rate:,.0f} steps/s" if done > 0 else "",
                ret=ret,
                description=f"{config.agent} on {config.env} x{config.seeds}",
            )

        summary = run(config, out, progress=on_chunk, plot=plot)
    fr = summary["final_return"]["mean"]
    console.print(
        f"final return {fr if fr is None else round(fr, 2)} | average reward "
        f"{summary['average_reward']['mean']:.4f} | {summary['steps_per_second']:,.0f} steps/s "
        f"(compile {summary['compile_seconds']:.1f} s)"
    )
    print(f"results: {out}")
    if plot:
        print(f"plot:    {os.path.join(out, 'curve.png')}")


@app.command()
def envs() -> None:
    """List environment ids, one line each."""
    from oakrl.envs import list_envs

    rows = list_envs() + [("gym:ID", "any gymnasium env with Box observations and Discrete/Box actions")]
    width = max(len(i) for i, _ in rows)
    for env_id, desc in rows:
        print(f"{env_id:<{width}}  {desc}")


@app.command()
def agents() -> None:
    """List agents, one line each, and their options (--opt KEY=VALUE)."""
    from oakrl.agents import AGENTS

    width = max(len(n) for n in AGENTS)
    for name, info in AGENTS.items():
        print(f"{name:<{width}}  {info.description}")
        opts = ", ".join(f"{k}={_fmt(v)}" for k, v in info.defaults.items())
        print(f"{'':<{width}}  options: {opts}")


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    return str(v)


@app.command()
@click.argument("dirs", nargs=-1, required=True)
@click.option("--out", default=None, help="Figure path (.png/.pdf/.svg).")
def report(dirs, out) -> None:
    """Re-plot one run, or compare several in one figure and a table."""
    from oakrl.report.report import report as make_report

    print(make_report(list(dirs), out))


def main(argv: list[str] | None = None) -> int:
    """Entry point: turns every kind of bad input into one line and exit code 2."""
    try:
        code = app.main(args=argv, prog_name="oakrl", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx else "usage: oakrl COMMAND")
        return 0
    except click.UsageError as e:
        hint = ""
        if e.ctx is not None:
            hint = f" (see `{e.ctx.command_path} --help`)"
        print(f"oakrl: {e.format_message()}{hint}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"oakrl: {e}", file=sys.stderr)
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("oakrl: interrupted", file=sys.stderr)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
