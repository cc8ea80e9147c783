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


def cpu_threads_option(help: str, expose: bool = False) -> Any:
    """The `--cpu-threads N` click option: applied while the command line is parsed (eagerly),
    so before the command computes anything. `expose`: the command also gets `cpu_threads`
    (to pass on to the worker processes it starts)."""
    import click

    def apply(_ctx: Any, _param: Any, value: int | None) -> int | None:
        limit_cpu_threads(value)
        return value

    return click.option(
        "--cpu-threads",
        type=click.IntRange(min=1),
        default=None,
        is_eager=True,
        expose_value=expose,
        callback=apply,
        help=help,
    )
