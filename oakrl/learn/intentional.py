"""Intentional TD(lambda) and Intentional policy gradient: the step that achieves an intended change.

Sharifnassab, Elsayed, De Asis, Mahmood & Sutton (2026), "Intentional Updates for Streaming
Reinforcement Learning", arXiv 2604.19033. A step size in parameter units does not give a
predictable change of the function's output; an intentional update first states the change it
wants and solves (to first order) for the step that makes it, as normalised LMS does for linear
regression:
  * Intentional TD: move v(s) by a fixed fraction eta of the TD error (eta = 0.5);
  * Intentional PG: move log pi(a|s) by a bounded amount, eta times the advantage normalised by
    its running mean magnitude (eta = 0.05), which bounds the local KL change of the policy.
With eligibility traces and RMSProp-style diagonal scaling, per step (g = grad of the
prediction, t counts updates):

    nu    <- beta2 nu + (1 - beta2) g^2;     nu_hat = sqrt(nu / (1 - beta2^t)) + 1e-8
    z     <- gamma lambda z + g
    sigma <- sigma + (1 - gamma lambda) (sum_i g_i^2 / nu_hat_i - sigma)   (scale of the gradients)
    u      = sqrt( sigma / (1 - (gamma lambda)^t) * sum_i z_i^2 / nu_hat_i )
    alpha  = eta / max(u, 1e-8)
    delta' = clip(delta) [/ running mean |clip(delta)|, policy only]
    theta <- theta + alpha delta' z / nu_hat

where clip(delta) caps |delta| at C = 20 times the bias-corrected running RMS of delta (decay
0.9998; its EMA starts at 1). Without traces (lambda = 0) sigma = ||g||^2_D and u = ||g||^2_D,
so the change of the output, alpha delta' <g, g>_D = eta delta': the intended fraction exactly.

Where this was read, and the choices made: the stored pages corpus holds the paper's abstract
and introduction only; the algorithm above follows the authors' released optimiser
(github.com/sharifnassab/Intentional_RL, optimizer.py: `IntentionalOptimizerValue` with eta 0.5
and `IntentionalOptimizerPolicy` with eta 0.05 and delta normalisation), written here anew
in JAX. Choices and differences:
  * the convention is ObGD's (oakrl/learn/obgd.py): `grads` is the gradient of the prediction
    (v(s), q(s, a) or log pi(a|s) plus the entropy bonus), `delta` the TD error, updates are
    added. The authors differentiate -v and subtract: the same update;
  * the agents mask the very first step (zero gradient, zero delta); it still counts in t and
    in the delta statistics, a one-step offset from the authors' loop;
  * for stream-q the trace is also reset after an exploratory action (Watkins), as for ObGD;
    the authors' MinAtar Q script is not reproduced here.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.learn.traces import TraceState, trace_decay, trace_update

PyTree = Any

VALUE_ETA = 0.5  # the intended fraction of the TD error removed (the authors' value default)
POLICY_ETA = 0.05  # the intended change of log pi per unit normalised advantage (policy default)


def _one_minus_power(beta: float, t: jax.Array) -> jax.Array:
    """1 - beta^t without float32's cancellation (1 - 0.9998 loses 4 digits in float32)."""
    if beta <= 0.0:
        return jnp.ones_like(t)
    return -jnp.expm1(t * math.log(beta))


def _sum_tree(tree: PyTree) -> jax.Array:
    return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


class IntentionalState(NamedTuple):
    trace: PyTree  # eligibility trace z, like params (read through `reset_pending`)
    nu: PyTree  # RMSProp second moment of the gradient, like params
    sigma: jax.Array  # [] running mean of ||g||^2 in the diagonal metric 1/nu_hat
    delta_sq: jax.Array  # [] running mean of delta^2 (for the clip), starts at 1
    delta_abs: jax.Array  # [] running mean of |clipped delta| (policy normalisation), starts at 0
    count: jax.Array  # [] int32 updates so far
    step_size: jax.Array  # [] alpha of the last update
    reset_pending: jax.Array = False  # [] bool: z ended an episode and counts as 0 (traces.py)


def intentional(
    eta: float = VALUE_ETA,
    gamma: float = 0.99,
    lamda: float = 0.8,
    beta2: float = 0.999,
    normalize_delta: bool = False,
    clip_mult: float = 20.0,
    beta_clip: float = 0.9998,
    beta_norm: float = 0.9998,
) -> optax.GradientTransformationExtraArgs:
    """Intentional TD (normalize_delta=False) or Intentional PG (True, with eta = POLICY_ETA)."""
    gl = gamma * lamda

    def init_fn(params: PyTree) -> IntentionalState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        count = jnp.zeros((), jnp.int32)
        return IntentionalState(zeros, zeros, f(0.0), f(1.0), f(0.0), count, f(0.0), jnp.zeros((), bool))

    def update_fn(grads, state, params=None, *, delta, reset=False, **_):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        nu = jax.tree.map(lambda v, g: beta2 * v + (1.0 - beta2) * jnp.square(g), state.nu, grads)
        nu_hat = jax.tree.map(lambda v: jnp.sqrt(v / _one_minus_power(beta2, t)) + 1e-8, nu)
        norm_grad = _sum_tree(jax.tree.map(lambda g, n: jnp.square(g) / n, grads, nu_hat))
        z = trace_update(TraceState(state.trace), grads, trace_decay(gl, state.reset_pending)).trace
        z_sum = _sum_tree(jax.tree.map(lambda e, n: jnp.square(e) / n, z, nu_hat))
        sigma = state.sigma + (1.0 - gl) * (norm_grad - state.sigma)
        # gl = 1 (no decay) would leave sigma at 0 and divide 0 by 0: keep sigma uncorrected then.
        sigma_bc = sigma / _one_minus_power(gl, t) if gl < 1 else sigma
        alpha = eta / jnp.maximum(jnp.sqrt(sigma_bc * z_sum), 1e-8)

        # A robust delta: |delta| capped at clip_mult x its bias-corrected running RMS.
        delta_sq = beta_clip * state.delta_sq + (1.0 - beta_clip) * jnp.square(delta)
        cap = clip_mult * jnp.sqrt(delta_sq / _one_minus_power(beta_clip, t))
        d = jnp.sign(delta) * jnp.minimum(jnp.abs(delta), cap)
        delta_abs = state.delta_abs
        if normalize_delta:  # Intentional PG: the advantage in units of its running mean magnitude
            delta_abs = beta_norm * state.delta_abs + (1.0 - beta_norm) * jnp.abs(d)
            d = d / jnp.maximum(delta_abs / _one_minus_power(beta_norm, t), 1e-12)

        updates = jax.tree.map(lambda e, n: (alpha * d) * e / n, z, nu_hat)
        return updates, IntentionalState(
            z, nu, sigma, delta_sq, delta_abs, count, alpha, jnp.asarray(reset, bool)
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def intentional_td(eta: float = VALUE_ETA, gamma: float = 0.99, lamda: float = 0.8, **kw):
    """Intentional TD(lambda): v(s) (or q(s, a)) moves by about eta x the TD error."""
    return intentional(eta, gamma, lamda, normalize_delta=False, **kw)


def intentional_pg(eta: float = POLICY_ETA, gamma: float = 0.99, lamda: float = 0.8, **kw):
    """Intentional policy gradient: log pi(a|s) moves by about eta x the normalised advantage."""
    return intentional(eta, gamma, lamda, normalize_delta=True, **kw)
