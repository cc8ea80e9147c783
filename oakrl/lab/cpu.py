"""How many threads XLA:CPU computes with (`oakrl run --cpu-threads N`).

XLA's CPU client sizes its thread pool once, when JAX first computes, from the CPUs the
process may run on. A small step (one or a few seeds of a 128-unit network, a MinAtar conv
net) is split across that pool kernel by kernel and pays for the hand-offs; a wide one (many
seeds, OaK's large models) gains from it. Measured on the 2 vCPU machine
(benchmarks/RESULTS.md, "Threads"): one thread runs stream AC on CartPole 1.3-1.7x faster
for 1-16 seeds and MinAtar Breakout 1.7x faster for one seed, but 256 seeds 1.8x slower and
OaK with 5 seeds 1.4x slower. Results are the same either way.
"""

from __future__ import annotations

import os
from typing import Any

from oakrl.errors import ConfigError


def limit_cpu_threads(threads: int | None) -> None:
    """Size XLA:CPU's pool to `threads` (None: all usable CPUs, XLA's default).

    Takes effect only if JAX has not computed yet in this process: it narrows the process's
    CPU affinity while JAX's CPU client starts, then restores it.
    """
    if threads is None:
        return
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--cpu-threads must be a positive integer, got {threads!r}")
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("--cpu-threads needs Linux (CPU affinity); leave it out here")
    cpus = sorted(os.sched_getaffinity(0))
    if threads >= len(cpus):
        return
    os.sched_setaffinity(0, set(cpus[:threads]))
    try:
        import jax

        jax.devices("cpu")  # starts the CPU client, which sizes its pool now
    finally:
        # Every thread started inside the window (XLA's pool among them) inherited the narrowed
        # set; give them all back the full one, or two `--cpu-threads 1` processes would share
        # the first CPU and leave the others idle.
        _restore_affinity(set(cpus[:threads]), set(cpus))


def _restore_affinity(narrowed: set[int], cpus: set[int]) -> None:
    """Every thread of this process whose CPU set is `narrowed` gets `cpus`."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: at least the calling thread
        tids = [0]
    for tid in tids:
        try:
            if os.sched_getaffinity(tid) == narrowed:
                os.sched_setaffinity(tid, cpus)
        except OSError:  # the thread has exited meanwhile
            pass


# Agents whose step is one small network (a few 128-unit layers, or MinAtar's conv net) per seed.
NETWORK_AGENTS = ("stream-ac", "stream-q", "stream-td", "stream-sarsa", "prior-ac", "sft-tool", "goal-q")
# seeds x weights per layer pair up to which one thread wins: 16 seeds of 128x128 measured 1.3x
# faster with one thread, 64 seeds 0.73x (benchmarks/RESULTS.md, "Threads").
NARROW_WORK = 16 * 128 * 128


def auto_threads(agent: str, seeds: int, hidden: Any = None) -> int | None:
    """The XLA:CPU pool size for a run, from its width: 1 for a few seeds of a small network
    (where the pool's hand-offs cost more than they save), None (all CPUs) otherwise.

    Measured (benchmarks/RESULTS.md, "Threads"; the same results either way): one thread runs
    stream AC on CartPole 1.3-1.7x faster for 1-16 seeds, MinAtar Breakout 1.7x for one seed,
    the gym bridge 1.1x; 64-256 seeds 0.55-0.73x, OaK with 5 seeds 0.73x. OaK with one seed on
    Rooms-v0 runs 1.6x faster on one thread (2 vCPU Intel Xeon, session 17; 2 seeds tie, 4 and 8
    are faster on all CPUs). dyna and planner with one or two seeds run 1.1-1.4x faster on one
    thread (2 vCPU AMD EPYC, idle, session 23: two rounds each of 1, 2, 4 and 8 seeds; 4 and 8 tie);
    the multi-learner runs keep all CPUs.
    """
    if agent == "oak":
        return 1 if seeds == 1 else None
    if agent in ("dyna", "planner"):
        return 1 if seeds <= 2 else None
    if agent not in NETWORK_AGENTS:
        return None
    if hidden is None:
        widths = [128, 128]  # the agents' default network
    elif isinstance(hidden, (list, tuple)):
        widths = [int(h) for h in hidden] or [1]  # () is linear: narrow
    else:
        text = str(hidden).strip("()[] ")
        widths = [int(h) for h in text.split(",") if h.strip().isdigit()] or [1]
    pairs = [a * b for a, b in zip(widths, widths[1:], strict=False)] or [widths[0] * widths[0]]
    return 1 if seeds * max(pairs) <= NARROW_WORK else None


def parse_threads(value: Any) -> int | str:
    """The value of `--cpu-threads`: a positive integer, or "all" (XLA's default pool)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ConfigError(f"--cpu-threads must be a positive integer or 'all', got {value!r}")


def cpu_threads_option(help: str, expose: bool = False) -> Any:
    """The `--cpu-threads N|all` click option: applied while the command line is parsed
    (eagerly), so before the command computes anything. `expose`: the command also gets
    `cpu_threads` (None when not given: the command may then choose, see `auto_threads`)."""
    import click

    class ThreadsType(click.ParamType):
        name = "N|all"

        def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
            try:
                return parse_threads(value)
            except ConfigError as e:
                self.fail(str(e).removeprefix("--cpu-threads "), param, ctx)

    def apply(_ctx: Any, _param: Any, value: int | str | None) -> int | str | None:
        limit_cpu_threads(value if isinstance(value, int) else None)
        return value

    return click.option(
        "--cpu-threads",
        type=ThreadsType(),
        default=None,
        is_eager=True,
        expose_value=expose,
        callback=apply,
        help=help,
    )


def run_threads(fields: dict[str, Any], opts: tuple[str, ...] = ()) -> int | None:
    """`auto_threads` for a run given as raw RunSpec fields (a config file's, a command line's,
    a results directory's config.json) and `--opt KEY=VALUE` pairs: read without building the
    RunSpec, which would start JAX (and size its pool) first."""
    # Malformed input is the spec's to refuse, in one line, right after this: here it only
    # means "no choice" (XLA's default pool).
    try:
        options = dict(fields.get("agent_options") or {})
        for pair in opts:
            key, _, value = pair.partition("=")
            options[key.strip()] = value
        seeds = fields.get("seeds", 1)
        if not isinstance(seeds, int) or seeds < 1:
            return None
        return auto_threads(str(fields.get("agent", "stream-ac")), seeds, options.get("hidden"))
    except (TypeError, ValueError, AttributeError):
        return None
