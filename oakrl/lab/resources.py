"""Memory a run will need, estimated before any work or write, and refused when it cannot fit.

`prepare` calls `check_memory(spec, handle, agent)` after building the run abstractly and
before the results directory is touched, so `--seeds 100000` or `--opt hidden=100000,100000`
end in one line giving the estimate and the limit, not in an XLA out-of-memory traceback
minutes later with a config.json left behind.

The estimate is a lower bound (what the run certainly holds at once), so it never refuses a run
that would fit:
  state     the stream state of one seed (agent, environment, timestep, key, counters), from
            `jax.eval_shape` (no compute), times the seeds
  chunk     the per-step outputs of one chunk on the device (4-byte return + 4-byte task per
            step and seed), and the same again on the host once recorded
  records   host rows kept for the whole run: the diagnostics (one row per chunk and seed) and,
            in continuing worlds, the reported episodes (one per window and seed); twice, since a
            checkpoint serialises them once more. Episodic worlds' episode rows are not counted
            (their number is not known before the run)
The limit: on a GPU/TPU the device's memory; on the CPU the memory available now (MemAvailable),
capped by the cgroup's limit where there is one (a cluster job's allocation). The environment
variable OAKRL_MEMORY_LIMIT (bytes) replaces it (a job that knows its share better; tests).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax

from oakrl.errors import ConfigError

ENV_LIMIT = "OAKRL_MEMORY_LIMIT"
ROW_BYTES = 4 + 8 + 4 + 4  # an episode row: seed int32, step int64, return float32, task int32


class Estimate(NamedTuple):
    state: int  # bytes: all seeds' stream state
    chunk: int  # bytes: one chunk's outputs (device and host)
    records: int  # bytes: host rows kept for the run (x2 for the checkpoint)

    @property
    def total(self) -> int:
        return self.state + self.chunk + self.records


def nbytes(tree: Any) -> int:
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def estimate(spec: Any, handle: Any, agent: Any) -> Estimate:
    """The run's memory estimate (see the module docstring), by abstract evaluation only."""
    from oakrl.lab.stream import info_keys, init_carry

    key = jax.random.key(0, impl=spec.prng)  # the stream's kind: the run reuses this trace of the step
    if spec.gym:
        per_seed = nbytes(jax.eval_shape(lambda k: agent.init(k, handle.obs_spec, handle.action_spec), key))
        chunk = 0  # the gym loop keeps no per-step outputs on the device
        n_keys = len(info_keys(agent, handle))
    else:
        carry = jax.eval_shape(lambda k: init_carry(agent, handle, k), key)
        per_seed = nbytes(carry)
        chunk = 2 * spec.seeds * min(spec.chunk, spec.steps) * 8
        n_keys = carry.info_sum.shape[0]
    chunks = -(-spec.steps // min(spec.chunk, spec.steps))
    rows = spec.seeds * chunks * (n_keys + 2) * 8
    if getattr(handle, "continuing", False):
        rows += spec.seeds * (spec.steps // spec.window) * ROW_BYTES
    return Estimate(per_seed * spec.seeds, chunk, 2 * rows)


def memory_limit() -> tuple[int | None, str]:
    """(bytes, where the figure comes from); (None, ...) when nothing is known."""
    env = os.environ.get(ENV_LIMIT)
    if env:
        try:
            return int(float(env)), ENV_LIMIT
        except ValueError:
            raise ConfigError(f"{ENV_LIMIT} must be a number of bytes, got {env!r}") from None
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"{device.platform} memory"
    limit, source = None, "available memory"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limit = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if limit is None:
        try:
            limit = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None, "unknown"
    cgroup = _cgroup_room()
    if cgroup is not None and cgroup < limit:
        limit, source = cgroup, "cgroup memory limit"
    return limit, source


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit, or None without one."""
    try:
        maximum = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if maximum == "max":
            return None
        current = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return int(maximum) - current
    except (OSError, ValueError):
        return None


def check_memory(spec: Any, handle: Any, agent: Any) -> Estimate:
    """Refuses (ConfigError, one line with the estimate and the limit) a run that cannot fit."""
    est = estimate(spec, handle, agent)
    limit, source = memory_limit()
    if limit is not None and est.total > limit:
        raise ConfigError(
            f"this run needs at least {_gb(est.total)} of memory ({_gb(est.state)} state for "
            f"{spec.seeds:,} seeds, {_gb(est.chunk)} per chunk of {min(spec.chunk, spec.steps):,} steps, "
            f"{_gb(est.records)} of records), more than the {_gb(limit)} {source}; "
            "use fewer --seeds, a smaller network, a shorter --chunk or fewer --steps"
        )
    return est


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e7 else f"{n / 1e6:,.2f} MB"
