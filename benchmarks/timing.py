"""What every throughput script measures the same way: timed compiled streams, bytes per step."""

from __future__ import annotations

import statistics

import jax

from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import compiler_options, init_carry, make_chunk, run_jax


def timed_jax(config: RunSpec, repeats: int) -> tuple[float, float, list[float]]:
    """(median agent-steps/s over seeds, compile seconds, every run's rate) of `repeats` runs
    of the same compiled stream; compile time is excluded from the rates."""
    handle, agent = build(config)
    keys = seed_keys(config.seed, config.seeds, config.prng)
    rates, compile_s = [], 0.0
    for _ in range(repeats):
        _, compile_s, stream_s = run_jax(agent, handle, config.steps, keys, config.chunk, config.window)
        rates.append(config.steps * config.seeds / stream_s)
    return statistics.median(rates), compile_s, rates


def bytes_per_agent_step(config: RunSpec) -> float:
    """XLA's own count of bytes accessed by one step of the vmapped stream, per seed."""
    handle, agent = build(config)
    carry = jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k)))(
        seed_keys(config.seed, config.seeds, config.prng)
    )
    one = jax.jit(jax.vmap(make_chunk(agent, handle, 1, config.window)))
    one = one.lower(carry).compile(compiler_options())
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["bytes accessed"]) / config.seeds
