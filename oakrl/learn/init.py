"""Sparse initialisation (Elsayed et al. 2024, Algorithm 1).

Each output unit starts connected to only (1 - sparsity) of its inputs, with weights drawn
from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases start at zero. Sparse features interfere
less with each other, which matters when every update comes from a single sample.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def sparse_init(sparsity: float = 0.9, distribution: str = "uniform"):
    """A Flax-style initialiser `(key, shape, dtype) -> array`.

    shape: Dense kernels (fan_in, fan_out); Conv kernels (*window, in, out). The last axis
    is the output unit; each unit gets exactly ceil(sparsity * fan_in) zero weights.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")

    def init(key, shape, dtype=jnp.float32):
        fan_in = math.prod(shape[:-1])
        fan_out = shape[-1]
        k_w, k_mask = jax.random.split(key)
        scale = 1.0 / math.sqrt(fan_in)
        if distribution == "uniform":
            w = jax.random.uniform(k_w, (fan_in, fan_out), dtype, -scale, scale)
        else:
            w = scale * jax.random.normal(k_w, (fan_in, fan_out), dtype)
        # ceil as stream-x, guarded against float noise (0.7 * 10 = 7.000000000000001).
        num_zeros = math.ceil(sparsity * fan_in - 1e-9)
        # A random permutation per output unit: the first num_zeros inputs are cut.
        ranks = jnp.argsort(jax.random.uniform(k_mask, (fan_in, fan_out)), axis=0).argsort(axis=0)
        w = jnp.where(ranks < num_zeros, jnp.zeros_like(w), w)
        return w.reshape(shape)

    return init
