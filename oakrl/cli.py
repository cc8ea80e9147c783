"""oakrl's command line: run, resume, sweep, envs, agents, runs, report, record, cache, study.

Bad input never produces a traceback: one line on stderr saying what is wrong and what is
valid, exit code 2. A diverged run (NaN/inf in the agent state or metrics) exits with code 3
and one line naming the seed, the step and the quantity; a run stopped by SIGINT/SIGTERM
checkpoints first and exits with 128 + the signal number. A file that cannot be written or read
(no space, read-only file system, permission) exits with code 4 and one line naming the path
and the cause; the run's last good checkpoint stays usable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from oakrl.errors import ConfigError, Diverged, Interrupted
from oakrl.io import StorageError
from oakrl.lab.cpu import cpu_threads_option

EXIT_DIVERGED = 3  # a run's agent state or metrics turned non-finite; its last checkpoint is kept
EXIT_STORAGE = 4  # a file could not be written or read (no space, read-only, permission)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=True,
)
@click.version_option(package_name="oakrl", prog_name="oakrl")
def app() -> None:
    """Agents that learn from their own experience, continually."""


@app.command()
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    help="Config file (TOML; YAML with pyyaml): RunSpec fields and an [agent_options] table. "
    "Flags given on the command line override it.",
)
@click.option(
    "--env", default="CartPole-v1", show_default=True, help="Environment id (see `oakrl envs`), or gym:ID."
)
@click.option("--agent", default="stream-ac", show_default=True, help="Agent (see `oakrl agents`).")
@click.option("--steps", default=100_000, show_default=True, help="Steps per seed.")
@click.option("--seeds", default=1, show_default=True, help="Independent seeds, run at once (vmap).")
@click.option("--seed", default=0, show_default=True, help="Base random seed.")
@click.option(
    "--out",
    default=None,
    help="Results directory [default: runs/ENV_AGENT_TIME]. One holding an unfinished run of the same "
    "config is resumed from its last checkpoint.",
)
@click.option("--schedule", default=None, help="Continual schedule: switch, permute, reward or drift.")
@click.option("--every", default=50_000, show_default=True, help="Steps per task segment.")
@click.option("--tasks", default=2, show_default=True, help="Number of tasks in the schedule.")
@click.option("--order", default="cyclic", show_default=True, help="Task order: cyclic or random.")
@click.option(
    "--opt", multiple=True, metavar="KEY=VALUE", help="Agent option (repeatable; see `oakrl agents`)."
)
@click.option(
    "--env-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="gym: environment option (time_feature, vector, param).",
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
@click.option(
    "--checkpoint-every",
    default=None,
    type=int,
    help="Steps between checkpoints [default: every chunk]; 0: only at the end and on SIGINT/SIGTERM.",
)
@click.option(
    "--goal",
    default=None,
    metavar="GOAL",
    help="Goal for a goal-conditioned agent (planner): I=V[,I=V...] (observation entry I should be V, "
    "e.g. 40=1: Rooms-v0 cell 40) or one value per observation entry ('*': any).",
)
@click.option(
    "--learners",
    default=1,
    show_default=True,
    help="Learners sharing a multi-learner world (Market-v0); --agent A,B gives one agent per learner.",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write curve.png.")
@cpu_threads_option(
    "XLA:CPU threads, or all [default: 1 for up to 16 seeds of a small network, where one thread "
    "is faster; else all CPUs] (oakrl/lab/cpu.py). Results are the same.",
    expose=True,
)
@click.pass_context
def run(ctx, config_file, out, opt, plot, cpu_threads, **flags) -> None:
    """Run an agent on a stream of experience and write a results directory.

    \b
    Exit codes: 0 done (or already complete), 2 bad input, 3 diverged (NaN/inf; the last good
    checkpoint is kept), 4 a file could not be written (no space, read-only, permission; the last
    good checkpoint is kept), 128+N stopped by signal N after checkpointing (resume it).
    """
    from click.core import ParameterSource

    from oakrl.lab.cpu import limit_cpu_threads, run_threads
    from oakrl.lab.parse import read_file, spec_from_cli

    given = {k: v for k, v in flags.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if cpu_threads is None:  # before the spec is built: that starts JAX, which sizes its pool once
        limit_cpu_threads(run_threads({**(read_file(config_file) if config_file else {}), **given}, opt))
    spec = spec_from_cli(config_file, given, opt)
    if out or spec.out:
        _run_with_progress(spec.replace(out=out or spec.out), plot)
        return
    from oakrl.lab.outdir import default_out, discard_unused

    claimed = default_out(spec.env, spec.agent)  # a new directory, never another run's
    try:
        _run_with_progress(spec.replace(out=claimed), plot)
    except ConfigError:
        discard_unused(claimed)  # refused before anything was written: leave no empty directory
        raise


def _run_with_progress(spec, plot: bool) -> None:
    """prepare, then execute with a progress bar; prints where the results are."""
    from rich.console import Console

    from oakrl.lab.progress import PlainProgress, ProgressBar
    from oakrl.lab.run import execute, prepare

    console = Console(stderr=True)
    plan = prepare(spec)  # everything that can be refused is refused before the bar appears
    out = str(plan.path)
    if plan.status == "complete":
        console.print(f"{out} already holds this finished run; nothing to do")
        print(f"results: {out}")
        return
    if plan.status == "resume":
        step = plan.resume_step
        console.print(f"resuming {out} from step {step:,}" if step else f"restarting {out} (no checkpoint)")
    label = f"{spec.agent} on {spec.env} x{spec.seeds}"
    if console.is_terminal:
        bar = ProgressBar(console, label, spec.steps, spec.seeds)
    else:  # a log file or a pipe: plain lines as the run goes
        bar = PlainProgress(sys.stderr, label, spec.steps, spec.seeds)
    with bar:
        result = execute(plan, bar)
    if plot:
        write_curve(result)
    summary = result.summary
    fr = summary["final_return"]["mean"]
    sps = summary["steps_per_second"]
    speed = "no steps left to run" if sps is None else f"{sps:,.0f} steps/s"
    console.print(
        f"final return {fr if fr is None else round(fr, 2)} | average reward "
        f"{summary['average_reward']['mean']:.4f} | {speed} (compile {summary['compile_seconds']:.1f} s)"
    )
    print(f"results: {out}")
    if plot:
        print(f"plot:    {os.path.join(out, 'curve.png')}")


def write_curve(result) -> None:
    """curve.png of a finished run's directory (a sweep's `finish` too: module-level, picklable)."""
    from oakrl.report.plots import plot_run

    config = json.loads((result.path / "config.json").read_text())
    run = {"config": config, "episodes": result.episodes, "diagnostics": result.diagnostics}
    plot_run(run, result.path / "curve.png")


@app.command()
@click.argument("directory")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write curve.png.")
@click.option(
    "--steps",
    type=int,
    default=None,
    metavar="N",
    help="Lengthen the run's lifetime to N steps per seed: a finished run goes on from its last step, "
    "as a run made with N steps would (oakrl/lab/extend.py).",
)
@cpu_threads_option("As for `oakrl run`.", expose=True)
def resume(directory, plot, steps, cpu_threads) -> None:
    """Continue the run in DIRECTORY from its last checkpoint (same config, bit-identical)."""
    from oakrl.lab.cpu import limit_cpu_threads, run_threads
    from oakrl.lab.extend import extend
    from oakrl.lab.parse import read_file, spec_of_run

    if cpu_threads is None:
        try:
            fields = read_file(f"{directory}/config.json")
        except ConfigError:
            fields = {}  # spec_of_run below says what is wrong with the directory
        limit_cpu_threads(run_threads(fields))

    spec = spec_of_run(directory) if steps is None else extend(directory, steps)
    _run_with_progress(spec.replace(out=directory), plot)


@app.command()
@click.argument("spec")
@click.option("--out", required=True, help="Sweep directory: one results directory per trial.")
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine; ray: a ray cluster (pip install oakrl[ray]).",
)
@click.option(
    "--address",
    default=None,
    metavar="HOST:PORT",
    help="ray backend: the cluster's head (`ray start --head`) [default: RAY_ADDRESS, else a local one].",
)
@click.option("--workers", default=1, show_default=True, help="Trials at once (local backend).")
@click.option("--plot/--no-plot", default=False, show_default=True, help="Write each trial's curve.png.")
@cpu_threads_option(
    "XLA:CPU threads per trial [default: all CPUs]; --workers 2 --cpu-threads 1 suits 2 cores.", expose=True
)
def sweep(spec, out, backend, address, workers, plot, cpu_threads) -> None:
    """Run a grid of trials (configs x seeds x environments) from the TOML file SPEC.

    \b
    SPEC holds [base] (RunSpec fields, [base.agent_options]) and [grid]: field -> list of
    values; "agent_options.KEY" sweeps an agent option. Each trial is an ordinary resumable
    run in OUT/NAME; re-running the sweep skips finished trials and resumes unfinished ones.
    Exit code 3 when a trial diverged, 1 when one failed otherwise.
    """
    from oakrl.lab.sweep import run_sweep

    if address is not None and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    results = run_sweep(
        spec, out, backend=backend, workers=workers, finish=write_curve if plot else None, log=print,
        cpu_threads=None if cpu_threads == "all" else cpu_threads, address=address,
    )  # fmt: skip
    statuses = [r["status"] for r in results]
    print(
        f"sweep: {len(results)} trials, {statuses.count('complete') + statuses.count('skipped')} complete "
        f"({statuses.count('skipped')} skipped as already finished), {statuses.count('diverged')} diverged, "
        f"{statuses.count('failed')} failed; see {os.path.join(out, 'sweep.json')}"
    )
    if "diverged" in statuses:
        raise click.exceptions.Exit(3)
    if "failed" in statuses:
        raise click.exceptions.Exit(1)


# `oakrl envs` and `oakrl agents` print this file, written from the registries (`listing()`):
# reading them would import JAX and every world and agent, seconds for a fixed list.
# tests/test_cli.py checks it against the registries; rewrite it with
#   python -c "from oakrl.cli import write_listing; write_listing()"
LISTING = Path(__file__).with_name("listing.json")


def listing() -> dict:
    """The environments and agents, with descriptions and options, from the registries."""
    from oakrl.agents import AGENTS
    from oakrl.envs import list_envs

    return {
        "envs": [[env_id, desc] for env_id, desc in list_envs()],
        "agents": [
            [name, info.description, ", ".join(f"{k}={d}" for k, d, _ in info.config.describe())]
            for name, info in AGENTS.items()
        ],
    }


def write_listing() -> None:
    from oakrl.io import write_text

    write_text(LISTING, json.dumps(listing(), indent=1) + "\n")


def _listing() -> dict:
    try:
        return json.loads(LISTING.read_text())
    except (OSError, ValueError):  # a source tree without it: ask the registries
        return listing()


@app.command()
def envs() -> None:
    """List environment ids, one line each."""
    gym = ["gym:ID", "any gymnasium env with Box observations and Discrete/Box actions"]
    rows = [*_listing()["envs"], gym]
    width = max(len(i) for i, _ in rows)
    for env_id, desc in rows:
        print(f"{env_id:<{width}}  {desc}")


@app.command()
def agents() -> None:
    """List agents, one line each, and their options (--opt KEY=VALUE)."""
    rows = _listing()["agents"]
    width = max(len(name) for name, _, _ in rows)
    for name, description, opts in rows:
        print(f"{name:<{width}}  {description}")
        print(f"{'':<{width}}  options: {opts}")


@app.command("runs")
@click.argument("directory", default="runs")
@click.option(
    "--where", multiple=True, metavar="COLUMN=VALUE", help="Keep rows where COLUMN is VALUE (repeatable)."
)
@click.option("--sort", default=None, metavar="COLUMN", help="Sort by COLUMN ('-COLUMN': descending).")
@click.option(
    "--sql",
    default=None,
    metavar="QUERY",
    help="DuckDB SQL over the views runs, episodes and diagnostics (all runs' rows, a `run` column "
    "naming each run's path); pip install 'oakrl[query]'.",
)
def runs(directory, where, sort, sql) -> None:
    """One table of every run and study under DIRECTORY [default: runs], or an SQL query over them."""
    from oakrl.lab import catalog

    if sql is not None:
        columns, rows = catalog.query(directory, sql)
        print(catalog.format_table([dict(zip(columns, r, strict=True)) for r in rows], columns))
        return
    print(catalog.format_table(catalog.select(catalog.find_runs(directory), list(where), sort)))


@app.command()
@click.option("--clear", is_flag=True, help="Remove every cached compilation.")
def cache(clear) -> None:
    """Where compiled streams are cached (OAKRL_COMPILE_CACHE: a directory, or off), and its size."""
    from oakrl.lab import cache as compile_cache

    if clear:
        path, removed = compile_cache.clear()
        print(f"removed {removed} cached compilations" + (f" under {path.parent}" if path else ""))
        return
    path = compile_cache.cache_dir()
    if path is None:
        print(f"compile cache: off ({compile_cache.ENV}={os.environ.get(compile_cache.ENV)})")
        return
    entries, size = compile_cache.usage(path)
    limit = compile_cache.MAX_BYTES / 2**30
    print(f"compile cache: {path} ({entries} entries, {size / 2**20:.1f} MiB of at most {limit:.0f} GiB)")
    count, size = compile_cache.usage(path, programs=True)
    bound = compile_cache.PROGRAM_MAX_BYTES / 2**20
    print(f"programs (chunks kept whole): {count}, {size / 2**20:.1f} MiB of at most {bound:.0f} MiB")


@app.command()
@click.argument("dirs", nargs=-1, required=True)
@click.option("--out", default=None, help="Figure path (.png/.pdf/.svg).")
def report(dirs, out) -> None:
    """Re-plot one run, or compare several in one figure and a table."""
    from oakrl.report.report import report as make_report

    print(make_report(list(dirs), out))


@app.command()
@click.option("--out", required=True, help="Dataset file (.npz added if missing).")
@click.option("--env", default="CartPole-v1", show_default=True, help="JAX environment id.")
@click.option("--steps", default=20_000, show_default=True, help="Transitions to record.")
@click.option(
    "--quality",
    default="expert",
    show_default=True,
    help="expert: as the policy acts; mediocre: random action with probability --noise; "
    "wrong: the next action, (a + 1) mod n.",
)
@click.option("--noise", default=0.5, show_default=True, help="mediocre: probability of a random action.")
@click.option("--seed", default=0, show_default=True)
@click.option("--agent", default=None, help="Record this agent, trained here first [default: scripted].")
@click.option("--train-steps", default=100_000, show_default=True, help="--agent: steps before recording.")
@click.option("--opt", multiple=True, metavar="KEY=VALUE", help="--agent option (repeatable).")
@click.option("--from-run", default=None, metavar="DIR", help="Record the agent of a results directory.")
@click.option("--run-seed", default=0, show_default=True, help="--from-run: which seed's agent.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def record(out, env, steps, quality, noise, seed, agent, train_steps, opt, from_run, run_seed, force) -> None:
    """Record demonstrations (a scripted expert, an agent, or a run) for imitation priors.

    \b
    The dataset format is documented in oakrl/priors/demos.py: one .npz with observations,
    actions, rewards, terminated, truncated, episode and a JSON header.
    """
    from oakrl.lab.parse import parse_options
    from oakrl.lab.record_demos import record as do_record

    options = parse_options(agent, opt) if agent is not None else {}
    if opt and agent is None:
        raise ConfigError("--opt needs --agent")
    path, demos = do_record(
        out, env, steps, quality, noise, seed, agent, options, train_steps, from_run, run_seed, force
    )
    h = demos.header
    print(
        f"{path}: {h['steps']:,} steps, {h['episodes']} finished episodes, mean return "
        f"{h['mean_return'] if h['mean_return'] is None else round(h['mean_return'], 2)} "
        f"({h['source']}, {h['quality']})"
    )


def _one_line(message) -> str:
    """Every kind of line break (what str.splitlines splits on) becomes a space."""
    return " ".join(str(message).splitlines())


# The studies live with their own code (oakrl/study/); the command group is registered here.
from oakrl.study.cli import study  # noqa: E402

app.add_command(study)


def main(argv: list[str] | None = None) -> int:
    """Entry point: turns every kind of bad input into one line and exit code 2."""
    from oakrl.lab import cache

    cache.enable()  # compiled streams are reused by the next run of the same configuration
    try:
        code = app.main(args=argv, prog_name="oakrl", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx else "usage: oakrl COMMAND")
        return 0
    except click.UsageError as e:
        hint = ""
        if e.ctx is not None:
            hint = f" (see `{e.ctx.command_path} --help`)"
        print(f"oakrl: {_one_line(e.format_message())}{hint}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"oakrl: {_one_line(e)}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"oakrl: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as e:
        print(f"oakrl: {_one_line(e)}", file=sys.stderr)
        if e.abandoned:
            # A chunk is still computing in XLA, and the interpreter's exit would wait for it
            # (minutes, hours): leave now. Every file is complete on disk; the lock goes with us.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + e.signum)
        return 128 + e.signum
    except OSError as e:  # StorageError names the path; any other names its file when it has one
        where = f"{e.filename}: " if getattr(e, "filename", None) and not isinstance(e, StorageError) else ""
        print(f"oakrl: {where}{_one_line(e.strerror or e)}", file=sys.stderr)
        return EXIT_STORAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("oakrl: interrupted", file=sys.stderr)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
