"""Step-size adaptation: IDBD, Autostep (linear learners) and TIDBD-ObGD (deep streaming learners).

All three are `optax.GradientTransformationExtraArgs` with the ObGD convention:
`update(grads, state, params, delta=...)`, where `grads` is the gradient of the prediction that
`delta` (target - prediction) corrects; for a linear learner y = w.x that gradient is x. The
returned updates are added with `optax.apply_updates`. Each state records `step_size`, the mean
effective per-weight step size of the last update.

IDBD (Sutton 1992), per weight i:
    beta_i <- beta_i + theta * delta * x_i * h_i
    alpha_i = exp(beta_i)
    w_i    <- w_i + alpha_i * delta * x_i
    h_i    <- h_i * max(0, 1 - alpha_i x_i^2) + alpha_i * delta * x_i

Autostep (Mahmood, Sutton, Degris & Pilarski 2012), per weight i, then globally:
    v_i     <- max(|delta x_i h_i|, v_i + (1/tau) alpha_i x_i^2 (|delta x_i h_i| - v_i))
    alpha_i <- alpha_i * exp(mu * delta x_i h_i / v_i)        (where v_i > 0)
    M        = max(sum_i alpha_i x_i^2, 1);  alpha_i <- alpha_i / M
    w_i     <- w_i + alpha_i delta x_i
    h_i     <- h_i (1 - alpha_i x_i^2) + alpha_i delta x_i

TIDBD-ObGD: IDBD's per-weight meta-learned step sizes on an eligibility trace (TIDBD, Kearney
et al. 2019) with ObGD's overshooting bound (Elsayed et al. 2024) on top, for deep networks:
    z      <- gamma lambda z + g
    beta_i <- clip(beta_i + theta * delta * z_i * h_i, beta_min, beta_max)
    s       = 1 / max(1, kappa * max(|delta|, 1) * sum_i exp(beta_i) |z_i|)
    a_i     = s * exp(beta_i)                                  (effective step size)
    w_i    <- w_i + a_i delta z_i
    h_i    <- h_i * max(0, 1 - a_i z_i g_i) + a_i delta z_i
  and z is reset where `reset` (episode end). g_i plays the role of x_i: the diagonal
  curvature of a linear learner, x_i^2, is approximated by z_i g_i.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def _mean(tree: PyTree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return sum(jnp.sum(x) for x in leaves) / sum(x.size for x in leaves)


class IDBDState(NamedTuple):
    beta: PyTree  # log step sizes
    h: PyTree  # trace of recent weight changes
    step_size: jax.Array  # [] mean alpha of the last update


def idbd(meta_lr: float = 0.01, init_lr: float = 0.01) -> optax.GradientTransformationExtraArgs:
    """IDBD for a linear learner (Sutton 1992)."""

    def init_fn(params):
        beta = jax.tree.map(lambda p: jnp.full_like(p, math.log(init_lr)), params)
        return IDBDState(beta, jax.tree.map(jnp.zeros_like, params), jnp.asarray(init_lr, jnp.float32))

    def update_fn(grads, state, params=None, *, delta, **_):
        del params
        beta = jax.tree.map(lambda b, x, h: b + meta_lr * delta * x * h, state.beta, grads, state.h)
        alpha = jax.tree.map(jnp.exp, beta)
        updates = jax.tree.map(lambda a, x: a * delta * x, alpha, grads)
        h = jax.tree.map(
            lambda h, a, x: h * jnp.maximum(0.0, 1.0 - a * x * x) + a * delta * x, state.h, alpha, grads
        )
        return updates, IDBDState(beta, h, _mean(alpha))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AutostepState(NamedTuple):
    alpha: PyTree  # per-weight step sizes
    v: PyTree  # running normaliser of |delta x h|
    h: PyTree
    step_size: jax.Array  # [] mean alpha of the last update


def autostep(
    meta_lr: float = 0.01, init_lr: float = 0.01, tau: float = 1e4
) -> optax.GradientTransformationExtraArgs:
    """Autostep for a linear learner (Mahmood et al. 2012)."""

    def init_fn(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        alpha = jax.tree.map(lambda p: jnp.full_like(p, init_lr), params)
        return AutostepState(alpha, zeros, zeros, jnp.asarray(init_lr, jnp.float32))

    def update_fn(grads, state, params=None, *, delta, **_):
        del params
        dxh = jax.tree.map(lambda x, h: delta * x * h, grads, state.h)
        v = jax.tree.map(
            lambda v, a, x, d: jnp.maximum(jnp.abs(d), v + (1.0 / tau) * a * x * x * (jnp.abs(d) - v)),
            state.v,
            state.alpha,
            grads,
            dxh,
        )
        alpha = jax.tree.map(
            lambda a, d, v: a * jnp.exp(meta_lr * jnp.where(v > 0, d / jnp.where(v > 0, v, 1.0), 0.0)),
            state.alpha,
            dxh,
            v,
        )
        m = jnp.maximum(
            sum(
                jnp.sum(a * x * x)
                for a, x in zip(jax.tree.leaves(alpha), jax.tree.leaves(grads), strict=True)
            ),
            1.0,
        )
        alpha = jax.tree.map(lambda a: a / m, alpha)
        updates = jax.tree.map(lambda a, x: a * delta * x, alpha, grads)
        h = jax.tree.map(lambda h, a, x: h * (1.0 - a * x * x) + a * delta * x, state.h, alpha, grads)
        return updates, AutostepState(alpha, v, h, _mean(alpha))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class TIDBDObGDState(NamedTuple):
    trace: PyTree  # eligibility trace z
    beta: PyTree  # log step sizes
    h: PyTree
    step_size: jax.Array  # [] mean effective step size of the last update


def tidbd_obgd(
    learning_rate: float = 1.0,
    gamma: float = 0.99,
    lamda: float = 0.8,
    kappa: float = 2.0,
    meta_lr: float = 1e-3,
    beta_min: float = -14.0,
    beta_max: float = 2.0,
) -> optax.GradientTransformationExtraArgs:
    """Per-weight meta-learned step sizes for deep streaming learners (see module docstring)."""

    def init_fn(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        beta = jax.tree.map(lambda p: jnp.full_like(p, math.log(learning_rate)), params)
        return TIDBDObGDState(zeros, beta, zeros, jnp.asarray(learning_rate, jnp.float32))

    def update_fn(grads, state, params=None, *, delta, reset=False, **_):
        del params
        z = jax.tree.map(lambda z, g: gamma * lamda * z + g, state.trace, grads)
        beta = jax.tree.map(
            lambda b, e, h: jnp.clip(b + meta_lr * delta * e * h, beta_min, beta_max), state.beta, z, state.h
        )
        alpha = jax.tree.map(jnp.exp, beta)
        weighted = sum(
            jnp.sum(a * jnp.abs(e)) for a, e in zip(jax.tree.leaves(alpha), jax.tree.leaves(z), strict=True)
        )
        m = kappa * jnp.maximum(jnp.abs(delta), 1.0) * weighted
        scale = 1.0 / jnp.maximum(m, 1.0)
        eff = jax.tree.map(lambda a: scale * a, alpha)
        updates = jax.tree.map(lambda a, e: a * delta * e, eff, z)
        h = jax.tree.map(
            lambda h, a, e, g: h * jnp.maximum(0.0, 1.0 - a * e * g) + a * delta * e, state.h, eff, z, grads
        )
        z = jax.tree.map(lambda e: jnp.where(reset, jnp.zeros_like(e), e), z)
        return updates, TIDBDObGDState(z, beta, h, _mean(eff))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
