"""The gymnasium path of a stream: Python steps the environments, the agent step stays jitted.

All seeds' environments are one vector environment (oakrl/envs/gym_vector.py) and all seeds'
agents step in one compiled, vmapped call per step. The compiled JAX path and the records both
paths share (Carry, ChunkRecord, chunking) are in oakrl/lab/stream.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import Agent, TimeStep, first_timestep
from oakrl.lab.stream import Carry, ChunkRecord, chunk_lengths

PyTree = Any


def run_gym(
    agent: Agent,
    handle,
    steps: int,
    seed_keys: jax.Array,
    seeds: list[int],
    chunk: int = 10_000,
    on_chunk: Callable[[ChunkRecord], None] | None = None,
    on_start: Callable[[int, float], None] | None = None,
    restore: Callable[[Carry], tuple[int, Carry]] | None = None,
    on_boundary: Callable[[int, Carry], None] | None = None,
    schedule: Any = None,
) -> tuple[Carry, float, float]:
    """Gymnasium environments: one vector environment steps every seed's environment, one
    jitted call steps every seed's agent. Returns (final carry, compile s, stream s).

    The Carry is the host's: agent (the agent states [S, ...]), env (one bytes snapshot per
    seed's environment, as uint8 arrays: filled at chunk boundaries, for checkpoints), timestep,
    key, t, episode_return and reward_sum (float64: the host sums in double precision).
    restore and on_boundary as in run_jax; restore's carry must hold the snapshots in env.
    schedule: an oakrl.envs.gym_vector.GymSchedule (None: the environment as it is).
    """
    t0 = time.perf_counter()
    vec = handle.vector(seeds, schedule)
    try:
        return _run_vector(
            agent, handle, vec, steps, seed_keys, chunk, on_chunk, on_start, restore, on_boundary, t0
        )
    finally:
        vec.close()


def _run_vector(agent, handle, vec, steps, seed_keys, chunk, on_chunk, on_start, restore, on_boundary, t0):
    n = len(vec.seeds)
    obs = vec.reset()
    k_agent, k_run = jax.vmap(lambda k: tuple(jax.random.split(k, 2)))(seed_keys)
    state = jax.jit(jax.vmap(lambda k: agent.init(k, handle.obs_spec, handle.action_spec)))(k_agent)
    vstep = jax.vmap(agent.step)
    pack, unpack = _packing(state)
    ts0 = jax.eval_shape(first_timestep, jax.ShapeDtypeStruct(handle.obs_spec.shape, jnp.float32))
    _, _, info_shape = jax.eval_shape(agent.step, jax.tree.map(lambda x: x[0], state), ts0, seed_keys[0])
    info_keys = sorted(info_shape)
    impl = jax.random.key_impl(seed_keys)

    def step_fn(flat, ts, k_data, acc):
        # One compiled call per step: the key split, the agent step, the diagnostics' running
        # sums, and the state held as one buffer per dtype, since a jitted call's cost grows
        # with its argument count and dozens of state leaves cost more than the step itself on
        # CPU. Keys cross the call as raw uint32 data: a typed key array returned by a jitted
        # call is re-checked on the host every step (large in a cProfile, +3-5% measured idle). The
        # barriers keep XLA from fusing the (un)packing into the step, whose arithmetic then
        # stays bit-identical.
        k_run = jax.random.wrap_key_data(k_data, impl=impl)
        k_run, k_step = jax.vmap(lambda k: tuple(jax.random.split(k, 2)))(k_run)
        state = jax.lax.optimization_barrier(unpack(flat))
        state, action, info = vstep(state, ts, k_step)
        # The finite diagnostics summed on the device, as the JAX path does (float32, [S, K]),
        # so that a step sends only its action to the host.
        if info_keys:
            values = jnp.stack([info[k].astype(jnp.float32) for k in info_keys], -1)
        else:  # an agent without diagnostics
            values = jnp.zeros((n, 0), jnp.float32)
        ok = jnp.isfinite(values)
        acc = (acc[0] + jnp.where(ok, values, 0.0), acc[1] + ok)
        return pack(jax.lax.optimization_barrier(state)), jax.random.key_data(k_run), action, acc

    # flat, the key data and the sums are donated (their buffers reused for the outputs).
    step_fn = jax.jit(step_fn, donate_argnums=(0, 2, 3))
    copy_args = jax.jit(lambda *args: jax.tree.map(jnp.copy, args))
    # Two distinct buffers (sums, counts): both are donated to the step.
    new_acc = jax.jit(
        lambda: (jnp.zeros((n, len(info_keys)), jnp.float32), jnp.zeros((n, len(info_keys)), jnp.float32))
    )
    zeros, falses = np.zeros(n, np.float32), np.zeros(n, bool)
    ts = TimeStep(obs, zeros, falses, falses)
    lengths = chunk_lengths(steps, chunk)
    done = 0
    ep_return, reward_sum = np.zeros(n, np.float64), np.zeros(n, np.float64)
    if restore is not None:
        fresh = Carry(
            state, (), ts, k_run, np.zeros(n, np.int32), ep_return, reward_sum, *[np.zeros((n, 0))] * 2
        )
        done, carry = restore(fresh)
        if done:
            bounds = np.cumsum([0, *lengths]).tolist()
            if done not in bounds:
                raise ValueError(f"checkpoint at step {done} is not on a chunk boundary of this run")
            lengths = lengths[bounds.index(done) :]
            vec.restore([np.asarray(s, np.uint8).tobytes() for s in carry.env], done)
        state, k_run = carry.agent, jnp.asarray(carry.key)
        ts = TimeStep(*(np.asarray(x) for x in carry.timestep))
        ep_return = np.array(carry.episode_return, np.float64)
        reward_sum = np.array(carry.reward_sum, np.float64)
    flat = jax.jit(pack)(state)
    k_data = jax.jit(jax.random.key_data)(k_run)
    # Compile before the clock starts, by a call on copies (the arguments are donated); a call,
    # not .lower().compile(), so that the jitted function's fast dispatch path is ready too.
    jax.block_until_ready(step_fn(*copy_args(flat, ts, k_data, new_acc())))
    # The host's copy of the stream state at a chunk boundary (copies: flat and the key data are
    # donated to the next step). Compiled here, so that the timed stream includes no compilation.
    copy_state = jax.jit(
        lambda flat, k: jax.tree.map(jnp.copy, (unpack(flat), jax.random.wrap_key_data(k, impl=impl)))
    )

    def carry_now(with_envs: bool) -> Carry:
        snaps = tuple(np.frombuffer(b, np.uint8) for b in vec.snapshot()) if with_envs else ()
        t = np.full(n, done, np.int32)
        empty = np.zeros((n, 0))
        agent_state, key = copy_state(flat, k_data)
        return Carry(agent_state, snaps, ts, key, t, ep_return.copy(), reward_sum.copy(), empty, empty)

    jax.block_until_ready(carry_now(with_envs=False))
    compile_s = time.perf_counter() - t0

    if on_start is not None:
        on_start(done, compile_s)
    t1 = time.perf_counter()
    for length in lengths:
        rows: list[tuple[int, int, float, int]] = []
        acc = new_acc()
        for i in range(length):
            task = vec.task
            flat, k_data, action, acc = step_fn(flat, ts, k_data, acc)
            obs, rew, term, trunc = vec.step(np.asarray(action))
            ts = TimeStep(obs, rew, term, trunc)
            ep_return += rew
            reward_sum += rew
            ends = term | trunc
            if ends.any():
                for j in np.flatnonzero(ends):
                    rows.append((int(j), done + i + 1, float(ep_return[j]), task))
                    ep_return[j] = 0.0
        done += length
        if on_chunk is not None:
            arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
            total, count = (np.asarray(x) for x in acc)
            mean = total / np.maximum(count, 1)
            on_chunk(
                ChunkRecord(
                    seed=arr[:, 0].astype(np.int32),
                    step=arr[:, 1].astype(np.int64),
                    ret=arr[:, 2].astype(np.float32),
                    task=arr[:, 3].astype(np.int32),
                    info={k: mean[:, i].astype(np.float32) for i, k in enumerate(info_keys)},
                    reward_sum=reward_sum.astype(np.float32),
                    end_step=done,
                )
            )
        if on_boundary is not None:
            on_boundary(done, carry_now(with_envs=True))
    final = jax.block_until_ready(carry_now(with_envs=True))
    return final, compile_s, time.perf_counter() - t1


def _packing(tree: PyTree) -> tuple[Callable, Callable]:
    """(pack, unpack) between a pytree of arrays and a dict of one flat buffer per dtype.

    Exact for every dtype (no promotion, unlike jax.flatten_util.ravel_pytree).
    """
    leaves, treedef = jax.tree.flatten(tree)
    layout = [(str(x.dtype), x.shape, x.size) for x in leaves]
    dtypes = sorted({d for d, _, _ in layout})

    def pack(tree: PyTree) -> dict[str, jax.Array]:
        leaves = jax.tree.leaves(tree)
        return {d: jnp.concatenate([x.reshape(-1) for x in leaves if str(x.dtype) == d]) for d in dtypes}

    def unpack(flat: dict[str, jax.Array]) -> PyTree:
        offset, leaves = dict.fromkeys(dtypes, 0), []
        for d, shape, size in layout:
            leaves.append(flat[d][offset[d] : offset[d] + size].reshape(shape))
            offset[d] += size
        return jax.tree.unflatten(treedef, leaves)

    return pack, unpack
