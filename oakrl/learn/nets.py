"""Networks for streaming learners (Flax linen), as in Elsayed et al. 2024.

Every hidden layer is Dense/Conv -> parameter-free LayerNorm -> leaky ReLU, all weights
sparse-initialised, biases zero. LayerNorm without a learned scale or shift keeps the
pre-activations well conditioned when the input distribution moves under the agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from oakrl.learn.init import sparse_init


def layer_norm(x: jax.Array, axes: Sequence[int] | None = None, eps: float = 1e-5) -> jax.Array:
    """Normalises x over `axes` (default: all axes of one sample), no affine parameters."""
    axes = tuple(range(x.ndim)) if axes is None else tuple(axes)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """Leaky ReLU with slope `negative_slope` at exactly 0, like PyTorch.

    jax.nn.leaky_relu has slope 1 at 0; with sparse init many pre-activations start at
    exactly 0 and the ObGD bound amplifies the difference.
    """
    return jnp.where(x > 0, x, negative_slope * x)


@jax.custom_vjp
def held_cotangent(x: jax.Array) -> jax.Array:
    """Identity whose cotangent XLA:CPU computes once, in a kernel of its own.

    Without it XLA fuses a layer's whole LayerNorm and leaky-ReLU backward into the loop that
    forms its [in, out] weight gradient (an outer product, which it writes as a broadcast
    multiply) and recomputes it for every weight: `in` times per unit. A reduction is never fused
    into its consumer, so the cotangent passes through one: the max of it and -inf, which is the
    cotangent itself, bit for bit (NaN stays NaN).
    """
    return x


def _held_fwd(x):
    return x, None


def _held_bwd(_, g):
    return (jnp.max(jnp.stack([g, jnp.full_like(g, -jnp.inf)]), axis=0),)


held_cotangent.defvjp(_held_fwd, _held_bwd)


def _hold(on: bool):
    return held_cotangent if on else lambda y: y


class MLP(nn.Module):
    """x [obs_dim...] -> [out]. Inputs are flattened."""

    hidden: Sequence[int] = (128, 128)
    out: int = 1
    sparsity: float = 0.9
    # Hold each hidden layer's cotangent (see `held_cotangent`): on for the streaming learners
    # (`make_network`), where results stay bit-identical. A batch's weight gradient is a matrix
    # product that reads the cotangent once anyway; the transition model (one sample, Adam) keeps
    # it off because held there its last bits move, and with them the dyna and planner studies'
    # figures (benchmarks/RESULTS.md, "Session 24").
    hold: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.ravel(x)
        hold = _hold(self.hold)
        for width in self.hidden:
            x = hold(nn.Dense(width, kernel_init=sparse_init(self.sparsity))(x))
            x = leaky_relu(layer_norm(x))
        # No hidden layer: a linear function of the observation, without a bias (one-hot inputs
        # stay tabular; a shared bias would move every state's value at once).
        return nn.Dense(
            self.out, kernel_init=sparse_init(self.sparsity), name="head", use_bias=bool(self.hidden)
        )(x)


class MinAtarCNN(nn.Module):
    """x [10, 10, C] -> [out]: a 16-filter 3x3 conv, then `hidden` units (stream-x's MinAtar net)."""

    hidden: Sequence[int] = (128,)
    out: int = 1
    features: int = 16
    sparsity: float = 0.9
    hold: bool = False  # as MLP's

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        x = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=sparse_init(self.sparsity))(x[None])[
            0
        ]
        x = leaky_relu(layer_norm(x)).reshape(-1)  # LayerNorm over the whole feature map
        hold = _hold(self.hold)
        for width in self.hidden:
            x = hold(nn.Dense(width, kernel_init=sparse_init(self.sparsity))(x))
            x = leaky_relu(layer_norm(x))
        return nn.Dense(self.out, kernel_init=sparse_init(self.sparsity), name="head")(x)


def make_network(obs_shape: Sequence[int], out: int, hidden: Sequence[int], sparsity: float):
    """Picks the torso from the observation shape: a CNN for image-like [H, W, C] grids."""
    if len(obs_shape) == 3:
        return MinAtarCNN(hidden=tuple(hidden[-1:]), out=out, sparsity=sparsity, hold=True)
    return MLP(hidden=tuple(hidden), out=out, sparsity=sparsity, hold=True)
