"""Running one agent on one stream, for many seeds at once.

JAX environments: agent and environment are compiled together; a chunk of the stream is one
`lax.scan`, the seeds are one `vmap` around it, and Python only runs between chunks (to
record results and report progress). Gymnasium environments (oakrl/lab/bridge.py): a Python loop over steps
makes one jitted call per step for all seeds' agents and steps all seeds' environments as
one gymnasium vector environment (oakrl/envs/gym_vector.py); at chunk boundaries the host
snapshots the environments, so that gym runs checkpoint and resume like JAX ones.

Per step the stream emits only what the metrics need: the return of an episode that ended
at this step (NaN otherwise) and the task in force. Agent diagnostics (`info`) are summed
inside the scan and averaged per chunk.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import Agent, TimeStep, first_timestep
from oakrl.lab import cache

PyTree = Any


class Carry(NamedTuple):
    """Everything a stream needs to continue, for one seed."""

    agent: PyTree
    env: PyTree
    timestep: TimeStep
    key: jax.Array
    t: jax.Array  # [] int32 steps taken
    episode_return: jax.Array  # [] float32 return of the episode (or window) so far
    reward_sum: jax.Array  # [] float32 sum of all rewards
    info_sum: jax.Array  # [K] finite diagnostics summed over the current chunk (keys sorted)
    info_count: jax.Array  # [K] how many finite values went into each sum


class ChunkOut(NamedTuple):
    """Emitted per step: [chunk, ...] (with a leading seed axis once vmapped)."""

    episode_return: jax.Array  # float32: return of the episode that ended here, else NaN
    task: jax.Array  # int32: task in force


class ChunkRecord(NamedTuple):
    """What the host keeps from one chunk, for all seeds."""

    seed: np.ndarray  # [E] int32 one row per finished episode
    step: np.ndarray  # [E] int64 step count of that seed when it ended (1-based)
    ret: np.ndarray  # [E] float32
    task: np.ndarray  # [E] int32
    info: dict[str, np.ndarray]  # [S] chunk mean of each diagnostic
    reward_sum: np.ndarray  # [S] total reward so far
    end_step: int  # steps taken per seed after this chunk


@functools.lru_cache(maxsize=64)
def traced_step(step: Callable) -> Callable:
    """`step` under one `jax.jit` object per agent, so that its trace is made once and reused.

    `info_keys` evaluates the step abstractly and the chunk's scan calls it: with the same jit
    object (and the same per-seed shapes: vmap batches the traced step, it does not retrace it)
    the agent's Python step runs once per configuration instead of twice. XLA inlines the
    call, so the compiled chunk is the same.
    """
    return jax.jit(step)


def info_keys(agent: Agent, handle, key: jax.Array | None = None) -> list[str]:
    """The names of the agent's diagnostics, sorted (by abstract evaluation: no compute).

    key: a key of the stream's kind (e.g. unsafe_rbg), so that the step traced here is the one
    the chunk reuses (`traced_step`); any key gives the same names.
    """
    key = jax.random.key(0) if key is None else key
    state = jax.eval_shape(lambda k: agent.init(k, handle.obs_spec, handle.action_spec), key)
    obs = jax.ShapeDtypeStruct(handle.obs_spec.shape, jnp.float32)
    ts = jax.eval_shape(first_timestep, obs)
    _, _, info = jax.eval_shape(traced_step(agent.step), state, ts, key)
    return sorted([*info, *(f"world/{k}" for k in getattr(handle, "world_metrics", ()))])


def init_carry(agent: Agent, handle, key: jax.Array, n_keys: int | None = None) -> Carry:
    """The start of a stream for one seed (vmap it over seed keys). n_keys: the number of the
    agent's diagnostics where the caller knows it (else found by tracing the step)."""
    k_agent, k_env, k_run = jax.random.split(key, 3)
    agent_state = agent.init(k_agent, handle.obs_spec, handle.action_spec)
    obs, env_state = handle.env.reset(k_env, handle.params)
    zero = jnp.zeros((), jnp.float32)
    if n_keys is None:
        n_keys = len(info_keys(agent, handle, k_agent))  # the chunk reuses this trace of the step
    return Carry(
        agent=agent_state,
        env=env_state,
        timestep=first_timestep(obs.astype(jnp.float32)),
        key=k_run,
        t=jnp.zeros((), jnp.int32),
        episode_return=zero,
        reward_sum=zero,
        info_sum=jnp.zeros(n_keys, jnp.float32),
        info_count=jnp.zeros(n_keys, jnp.float32),
    )


def make_chunk(agent: Agent, handle, length: int, window: int) -> Callable[[Carry], tuple]:
    """A function running `length` steps of one stream: Carry -> (Carry, ChunkOut).

    window: for continuing worlds (no episodes), a reporting "episode" is every `window`
    steps; the agent never sees these boundaries.
    """
    env, params = handle.env, handle.params
    step = traced_step(agent.step)

    def one_step(c: Carry, _) -> tuple[Carry, ChunkOut]:
        key, k_agent, k_env = jax.random.split(c.key, 3)
        agent_state, action, info = step(c.agent, c.timestep, k_agent)
        obs, env_state, reward, terminated, truncated, env_info = env.step(k_env, c.env, action, params)
        reward = reward.astype(jnp.float32)
        # a multi-learner world's own metrics (e.g. the market's profit gain) sit beside the
        # agent's diagnostics, averaged per chunk the same way
        info = {**info, **{f"world/{k}": env_info[k] for k in getattr(handle, "world_metrics", ())}}
        values = jnp.stack([info[k].astype(jnp.float32) for k in keys]) if keys else jnp.zeros(0)
        t = c.t + 1
        ep_return = c.episode_return + reward
        ended = (t % window == 0) if handle.continuing else jnp.logical_or(terminated, truncated)
        out = ChunkOut(jnp.where(ended, ep_return, jnp.nan), env_info["task"].astype(jnp.int32))
        carry = Carry(
            agent=agent_state,
            env=env_state,
            timestep=TimeStep(obs.astype(jnp.float32), reward, terminated, truncated),
            key=key,
            t=t,
            episode_return=jnp.where(ended, 0.0, ep_return),
            reward_sum=c.reward_sum + reward,
            # One vector for all diagnostics: two fused kernels per step instead of a few per key.
            info_sum=c.info_sum + jnp.where(jnp.isfinite(values), values, 0.0),
            info_count=c.info_count + jnp.isfinite(values),
        )
        return carry, out

    keys: list[str] = []

    def chunk(c: Carry) -> tuple[Carry, ChunkOut]:
        keys[:] = info_keys(agent, handle, c.key)  # with the stream's key: reuses init's trace
        zeros = jnp.zeros_like(c.info_sum)
        c = c._replace(info_sum=zeros, info_count=zeros)
        return jax.lax.scan(one_step, c, None, length=length)

    return chunk


def chunk_lengths(steps: int, target: int) -> list[int]:
    """Splits `steps` into chunks near `target`, preferring equal ones (one compilation)."""
    if steps <= target:
        return [steps]
    for size in range(target, target // 2, -1):
        if steps % size == 0:
            return [size] * (steps // size)
    full, rest = divmod(steps, target)
    return [target] * full + ([rest] if rest else [])


def record_chunk(out: ChunkOut, carry: Carry, start_step: int, length: int, keys: list[str]) -> ChunkRecord:
    """Host side: turns per-step outputs [S, T] into episode rows."""
    ret = np.asarray(out.episode_return)
    seed, offset = np.nonzero(~np.isnan(ret))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.asarray(carry.info_sum) / np.asarray(carry.info_count)  # [S, K]
        info = {k: mean[:, i] for i, k in enumerate(keys)}
    return ChunkRecord(
        seed=seed.astype(np.int32),
        step=(start_step + offset + 1).astype(np.int64),
        ret=ret[seed, offset].astype(np.float32),
        task=np.asarray(out.task)[seed, offset].astype(np.int32),
        info=info,
        reward_sum=np.asarray(carry.reward_sum),
        end_step=start_step + length,
    )


# XLA:CPU options for the compiled stream (measured in benchmarks/RESULTS.md, "Throughput").
# A single agent's step is bound by the number of kernels XLA launches, not by arithmetic:
#  - the tree-reduction rewriter splits every reduction (ObGD's L1 norms, LayerNorm statistics)
#    into a reduce-window + reduce pair, which also stops producers fusing into them;
#  - with that pass off, XLA hands the large reductions to YNNPACK, whose calls cost more than
#    the kernels saved, so YNN fusion is off too;
#  - region analysis in copy insertion drops the copies of carry entries in the scan body.
# Together: 254 -> 158 kernels per stream AC step on CartPole. Same maths; float rounding
# differs from XLA's defaults in the last bits.
CPU_COMPILER_OPTIONS: dict[str, str | bool] = {
    "xla_disable_hlo_passes": "tree_reduction_rewriter",
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_cpu_copy_insertion_use_region_analysis": True,
}


def compiler_options() -> dict[str, str | bool]:
    """The compile options of the stream for the current backend ({} off the CPU)."""
    return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else {}


def run_jax(
    agent: Agent,
    handle,
    steps: int,
    seed_keys: jax.Array,
    chunk: int = 10_000,
    window: int = 1000,
    on_chunk: Callable[[ChunkRecord], None] | None = None,
    restore: Callable[[Carry], tuple[int, Carry]] | None = None,
    on_boundary: Callable[[int, Carry], None] | None = None,
    on_start: Callable[[int, float], None] | None = None,
    poll: Callable[[], None] | None = None,
    program: dict[str, Any] | None = None,
) -> tuple[Carry, float, float]:
    """Runs `steps` steps for every seed key [S]. Returns (final carry, compile s, stream s).

    Compilation happens up front so the stream's wall time excludes it.

    restore(fresh carry) -> (steps done, carry) continues a stream from a checkpoint; the
    steps done must fall on a chunk boundary of `chunk_lengths(steps, chunk)`, so that the
    rest of the stream runs the same compiled chunks as an uninterrupted run (bit-identical).
    on_boundary(steps done, carry) is called after every chunk's on_chunk (to check and save
    the carry; it may raise to stop the stream). on_start(steps done, compile seconds) is
    called once, when compilation is over and the stream starts. poll() is called about every
    50 ms while a chunk computes (the chunk runs asynchronously; the main thread waits in
    Python, so signal handlers run): it may raise to abandon the chunk, the stream then ends at
    its last boundary whatever the chunk's length. The computation itself is unchanged.
    program: what determines the compiled stream besides this process's code and libraries (the
    lab passes the run's identity for oakrl's own agents): its chunks are then kept in and
    loaded from the compile cache's programs (oakrl/lab/cache.py), which skips tracing them.
    """
    t0 = time.perf_counter()
    options = compiler_options()
    lengths = chunk_lengths(steps, chunk)
    stored: dict[int, Any] = {}  # chunk length -> a program loaded from the cache
    keys: list[str] = []
    meta: dict[str, Any] = {}
    if program is not None:
        parts = {**program, "seeds": int(seed_keys.shape[0]), "window": window, "options": options}
        slots = {n: cache.program_key({**parts, "length": n}) for n in set(lengths)}
        for n, slot in slots.items():
            found = cache.load_program(slot)
            if found is not None:
                stored[n], meta = found
                keys = meta["keys"]
    if len(stored) < len(set(lengths)):
        stored = {}  # some chunk must be traced anyway, and with it the agent's step

    def init(n_keys: int | None) -> Carry:
        return jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k, n_keys)))(seed_keys)

    # The stream's start is a pure function of what the program's key holds (the run's identity,
    # its seed among them, and the seed count): kept beside the program, it spares tracing init.
    carry = _carry_from(stored[lengths[0]], meta.get("start")) if stored else None
    if carry is None:
        carry = init(len(keys) if stored else None)
    if stored and not all(_takes(p, carry, n) for n, p in stored.items()):
        stored = {}  # programs for other inputs (never called): trace and compile as usual
        carry = init(None)
    start = _host_leaves(carry) if program is not None and not stored else None
    done = 0
    if restore is not None:
        done, carry = restore(carry)
        bounds = np.cumsum([0, *lengths]).tolist()
        if done not in bounds:
            raise ValueError(f"checkpoint at step {done} is not on a chunk boundary of this run")
        lengths = lengths[bounds.index(done) :]
    if not stored:
        keys = info_keys(agent, handle, seed_keys[0])
    compiled = {}
    for length in sorted(set(lengths)):
        if length in stored:
            compiled[length] = stored[length]
            continue
        fn = jax.jit(jax.vmap(make_chunk(agent, handle, length, window)), donate_argnums=0)
        with cache.loads_from_disk() as loaded:
            compiled[length] = fn.lower(carry).compile(options)
        if program is not None and not loaded:
            cache.store_program(slots[length], compiled[length], {"keys": keys, "start": start})
    compile_s = time.perf_counter() - t0

    if on_start is not None:
        on_start(done, compile_s)
    t1 = time.perf_counter()
    for length in lengths:
        carry, out = compiled[length](carry)
        if poll is not None:
            _wait(out.task, poll)
        record = record_chunk(out, carry, done, length, keys)  # blocks until the chunk is done
        done += length
        if on_chunk is not None:
            on_chunk(record)
        if on_boundary is not None:
            on_boundary(done, carry)
    jax.block_until_ready(carry)
    return carry, compile_s, time.perf_counter() - t1


START_MAX_BYTES = 64 * 1024**2  # a larger stream start is computed each time, not kept


def _host_leaves(carry: Carry) -> list[tuple[str, np.ndarray]] | None:
    """The carry's leaves as host copies, keys as (implementation, key data); None if large."""
    leaves = []
    for x in jax.tree.leaves(carry):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            leaves.append((str(jax.random.key_impl(x)), np.array(jax.random.key_data(x))))
        else:
            leaves.append(("", np.array(x)))
    return leaves if sum(a.nbytes for _, a in leaves) <= START_MAX_BYTES else None


def _carry_from(compiled: Any, leaves: list[tuple[str, np.ndarray]] | None) -> Carry | None:
    """The carry of `_host_leaves` back on the device, in the tree the program takes."""
    if leaves is None or len(leaves) != compiled.in_tree.num_leaves:
        return None
    # One device_put for all (jnp.asarray per leaf first compiles a conversion: 0.6 s here).
    arrays = jax.device_put([a for _, a in leaves])
    arrays = [
        jax.random.wrap_key_data(x, impl=impl) if impl else x
        for (impl, _), x in zip(leaves, arrays, strict=True)
    ]
    (carry,), _ = jax.tree.unflatten(compiled.in_tree, arrays)
    return carry


def _takes(compiled: Any, carry: Carry, length: int) -> bool:
    """Whether a loaded program is a chunk of `length` steps taking exactly this carry: its tree,
    and each leaf's shape and dtype (else it is compiled afresh, never called). Weak types are
    a tracing notion: the executable is the same for both."""
    (expected,), _ = compiled.in_avals
    _, out = compiled.out_info
    if out.episode_return.shape[-1:] != (length,):
        return False
    have = [jax.typeof(x) for x in jax.tree.leaves(carry)]
    want = jax.tree.leaves(expected)
    if jax.tree.structure(carry) != jax.tree.structure(expected) or len(have) != len(want):
        return False
    return all((a.shape, a.dtype) == (b.shape, b.dtype) for a, b in zip(have, want, strict=True))


def _wait(x: jax.Array, poll: Callable[[], None], every: float = 0.05) -> None:
    """Waits for `x` in Python (not inside XLA), calling poll() every `every` seconds.

    A helper thread blocks on the array and wakes the main thread the moment it is ready (no
    polling latency on short chunks); the main thread's timed wait lets signal handlers run.
    """
    if x.is_ready():
        return
    ready = threading.Event()

    def block() -> None:
        x.block_until_ready()
        ready.set()

    threading.Thread(target=block, daemon=True).start()
    while not ready.wait(every):
        poll()
