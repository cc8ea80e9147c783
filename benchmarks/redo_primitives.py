"""What a ReDo step costs on its own: ranking the units, and drawing a layer's fresh weights.

    .venv/bin/python benchmarks/redo_primitives.py

The studies run ReDo with `max_resets` = the layer width, so under vmap every step ranks all
units and draws fresh incoming weights for all of them, due or not. This times, per step of a
lax.scan over 5 vmapped seeds (compile excluded, median of 3):
  - ranks: oakrl.learn.plasticity.ranks (counting) against two stable argsorts, widths 32-512;
  - draws: fresh_columns for a [64, 32] and a [32, 32] block (the plasticity-rl study's
    32x32 network on CodedGrid's 64 inputs) from the lab's `unsafe_rbg` keys, against the same
    draw from an `unsafe_rbg` key used directly (what fresh_columns did before session 8).
"""

from __future__ import annotations

import math
import statistics
import time

import jax
import jax.numpy as jnp

from oakrl.learn.plasticity import fresh_columns, ranks

STEPS, SEEDS = 5_000, 5


def per_step_us(fn, make_input, impl: str = "threefry2x32") -> float:
    """Median microseconds per scan step of fn over SEEDS vmapped inputs (scan keys of `impl`)."""

    def loop(key):
        def body(acc, k):
            return acc + jnp.sum(jax.vmap(fn)(make_input(k))), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, STEPS))[0]

    run = jax.jit(loop)
    run(jax.random.key(0, impl=impl)).block_until_ready()
    times = []
    for i in range(3):
        t = time.perf_counter()
        run(jax.random.key(i + 1, impl=impl)).block_until_ready()
        times.append((time.perf_counter() - t) / STEPS * 1e6)
    return statistics.median(times)


def sorted_ranks(score):
    return jnp.argsort(jnp.argsort(score, stable=True), stable=True)


def old_fresh_columns(key, fan_in, count, sparsity=0.9):
    """fresh_columns before session 8: both draws straight from the (rbg) key."""
    k_w, k_m = jax.random.split(key)
    scale = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_w, (fan_in, count), jnp.float32, -scale, scale)
    return jnp.where(jax.random.uniform(k_m, (fan_in, count)) < sparsity, 0.0, w)


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {SEEDS} seeds vmapped, us per step")
    for width in (32, 128, 512):
        scores = lambda k, w=width: jax.random.uniform(k, (SEEDS, w))  # noqa: E731
        base = per_step_us(lambda s: jnp.zeros((), jnp.int32), scores)  # the draw of the scores
        count = per_step_us(ranks, scores) - base
        sort = per_step_us(sorted_ranks, scores) - base
        print(f"ranks, width {width:>3}: counting {count:7.1f}   two argsorts {sort:7.1f}")

    keys = lambda k: jax.random.split(k, SEEDS)  # noqa: E731  (rbg keys, as in the lab)
    rbg = "unsafe_rbg"
    base = per_step_us(lambda k: jnp.zeros(()), keys, rbg)  # splitting the keys
    new = per_step_us(
        lambda k: fresh_columns(k, 64, 32, 0.9).sum() + fresh_columns(k, 32, 32, 0.9).sum(), keys, rbg
    )
    old = per_step_us(
        lambda k: old_fresh_columns(k, 64, 32).sum() + old_fresh_columns(k, 32, 32).sum(), keys, rbg
    )
    new, old = new - base, old - base
    print(f"fresh weights [64,32]+[32,32] from rbg keys: now (threefry) {new:7.1f}   before {old:7.1f}")


if __name__ == "__main__":
    main()
