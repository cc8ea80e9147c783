"""Overshooting-bounded gradient descent (ObGD) and its adaptive variant.

Elsayed, Vasan & Mahmood (2024), "Streaming Deep Reinforcement Learning Finally Works",
Algorithms 2 and 3. A TD(lambda)-style update `theta += alpha * delta * z` with one sample
can overshoot the target; ObGD shrinks the step so that the effective change of the
prediction is bounded:

    delta_bar = max(|delta|, 1)
    M = alpha * kappa * delta_bar * ||z||_1
    step = alpha / M  if M > 1  else alpha
    theta += step * delta * z

Both are `optax.GradientTransformationExtraArgs`: `update(grads, state, params, delta=...,
reset=...)`. Convention: `grads` is the gradient of the *prediction* that `delta` corrects
(the value, or the log-probability of the action taken); the returned updates are added to
the parameters with `optax.apply_updates`. Where `reset` is true the trace counts as zero from
the next update on (a deferred reset, `reset_pending`: oakrl/learn/traces.py). The state
records the effective step size of the last update.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.learn.traces import TraceState, trace_decay, trace_init, trace_update

PyTree = Any


def _l1(tree: PyTree) -> jax.Array:
    return sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree))


def _bounded_step(delta: jax.Array, z_l1: jax.Array, lr: float, kappa: float) -> jax.Array:
    delta_bar = jnp.maximum(jnp.abs(delta), 1.0)
    m = lr * kappa * delta_bar * z_l1
    return jnp.where(m > 1.0, lr / jnp.maximum(m, 1.0), lr)


class ObGDState(NamedTuple):
    trace: PyTree  # eligibility trace z, like params (read through `reset_pending`)
    step_size: jax.Array  # [] effective step size of the last update
    reset_pending: jax.Array = False  # [] bool: z ended an episode and counts as 0 (traces.py)


def obgd(
    learning_rate: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0
) -> optax.GradientTransformationExtraArgs:
    """ObGD (Algorithm 3 of Elsayed et al. 2024)."""

    def init_fn(params: PyTree) -> ObGDState:
        return ObGDState(
            trace_init(params).trace, jnp.asarray(learning_rate, jnp.float32), jnp.zeros((), bool)
        )

    def update_fn(grads, state, params=None, *, delta, reset=False, **_):
        del params
        if gamma * lamda == 0:
            # No trace to carry (one-step updates, e.g. Dyna's simulated ones): z is the
            # gradient, and the state's trace stays at zeros, so neither is read nor written.
            step = _bounded_step(delta, _l1(grads), learning_rate, kappa)
            return jax.tree.map(lambda g: (step * delta) * g, grads), state._replace(step_size=step)
        decay = trace_decay(gamma * lamda, state.reset_pending)  # an episode end resets z here
        z = trace_update(TraceState(state.trace), grads, decay).trace
        step = _bounded_step(delta, _l1(z), learning_rate, kappa)
        updates = jax.tree.map(lambda e: (step * delta) * e, z)
        return updates, ObGDState(z, step, jnp.asarray(reset, bool))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdaptiveObGDState(NamedTuple):
    trace: PyTree  # eligibility trace z (read through `reset_pending`)
    nu: PyTree  # running second moment of delta * z
    count: jax.Array  # [] int32, updates so far (bias correction)
    step_size: jax.Array  # [] effective scalar step size of the last update
    reset_pending: jax.Array = False  # [] bool: z ended an episode and counts as 0 (traces.py)


def adaptive_obgd(
    learning_rate: float = 1.0,
    gamma: float = 0.99,
    lamda: float = 0.8,
    kappa: float = 2.0,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """AdaptiveObGD (Algorithm 2 of Elsayed et al. 2024): ObGD on an RMS-normalised trace.

    nu <- beta2 * nu + (1 - beta2) * (delta * z)^2
    z_hat = z / sqrt(nu / (1 - beta2^t) + eps)
    theta += step * delta * z_hat,  step bounded as in ObGD with ||z_hat||_1
    """

    def init_fn(params: PyTree) -> AdaptiveObGDState:
        zeros = trace_init(params).trace
        return AdaptiveObGDState(
            zeros,
            zeros,
            jnp.zeros((), jnp.int32),
            jnp.asarray(learning_rate, jnp.float32),
            jnp.zeros((), bool),
        )

    def update_fn(grads, state, params=None, *, delta, reset=False, **_):
        del params
        count = state.count + 1
        decay = trace_decay(gamma * lamda, state.reset_pending)  # an episode end resets z here
        z = trace_update(TraceState(state.trace), grads, decay).trace
        nu = jax.tree.map(lambda v, e: beta2 * v + (1 - beta2) * (delta * e) ** 2, state.nu, z)
        correction = 1.0 - beta2 ** count.astype(jnp.float32)
        z_hat = jax.tree.map(lambda e, v: e / jnp.sqrt(v / correction + eps), z, nu)
        step = _bounded_step(delta, _l1(z_hat), learning_rate, kappa)
        updates = jax.tree.map(lambda e: (step * delta) * e, z_hat)
        return updates, AdaptiveObGDState(z, nu, count, step, jnp.asarray(reset, bool))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
