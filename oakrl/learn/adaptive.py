"""Adaptive Q(lambda)'s update: an eligibility trace divided by an Adam-style second moment.

Gogianu, Lutu & Pascanu (2026), "Revisiting Adam for Streaming Reinforcement Learning",
arXiv 2605.06764, Algorithm 1 ("Adaptive Q(lambda)"). The paper's two conditions for a robust
streaming update are (i) a bounded derivative of the objective (the TD error is clipped to
[-1, 1], the derivative of the Huber / SmoothL1 loss) and (ii) a variance-adjusted step (each
weight's step divided by the RMS of its recent gradients). With g = grad q(s, a):

    z     <- gamma lambda z + g
    v     <- gamma lambda v + (1 - gamma lambda) g^2      (second moment at the trace's rate)
    theta <- theta + eta * clip(delta, -1, 1) * z / (sqrt(v) + eps)

and z is reset after an episode ends or an exploratory action (Watkins), as for ObGD.

Where this was read, and the choices it leaves open (documented because the paper's body was
not reachable here): only the abstract of arXiv 2605.06764 was in the stored pages corpus; the
update above is Algorithm 1 as transcribed in a survey note of the field and as implemented by
an independent JAX library (streax, `Adaptive`), which agree on every line. Choices:
  * the second moment decays at gamma*lambda (not Adam's beta2 = 0.999), and has no bias
    correction (both sources); `beta2` overrides the decay;
  * eps = 0.1 (not Adam's 1e-8): the paper argues a large eps acts as a signal-to-noise filter
    that damps rarely-active, noisy weights; eta = 4.6e-4 and clip 1.0 (streax's defaults);
  * the step uses the *new* v (this step's gradient included), so the first update is bounded:
    |step_i| <= eta * |z_i| / (sqrt(1 - gamma lambda) |g_i| + eps).

The convention is ObGD's (oakrl/learn/obgd.py): `update(grads, state, params, delta=...,
reset=...)` where `grads` is the gradient of the prediction that `delta` corrects, and the
returned updates are added with `optax.apply_updates`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.learn.traces import TraceState, trace_decay, trace_update

PyTree = Any


class AdaptiveQState(NamedTuple):
    trace: PyTree  # eligibility trace z, like params (read through `reset_pending`)
    nu: PyTree  # second moment v of the gradient, like params
    step_size: jax.Array  # [] mean per-weight step eta / (sqrt(v) + eps) of the last update (0 before one)
    reset_pending: jax.Array = False  # [] bool: z ended an episode and counts as 0 (traces.py)


def adaptive_q(
    learning_rate: float = 4.6e-4,
    gamma: float = 0.99,
    lamda: float = 0.8,
    eps: float = 0.1,
    clip: float = 1.0,
    beta2: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adaptive Q(lambda)'s traced, variance-adjusted update (Gogianu et al. 2026, Alg. 1).

    learning_rate: eta; eps: the denominator's floor; clip: the TD error's bound; beta2: the
    second moment's decay (None: gamma * lamda, the paper's).
    """
    decay_v = gamma * lamda if beta2 is None else beta2

    def init_fn(params: PyTree) -> AdaptiveQState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdaptiveQState(zeros, zeros, jnp.zeros((), jnp.float32), jnp.zeros((), bool))

    def update_fn(grads, state, params=None, *, delta, reset=False, **_):
        del params
        decay = trace_decay(gamma * lamda, state.reset_pending)  # an episode end resets z here
        z = trace_update(TraceState(state.trace), grads, decay).trace
        nu = jax.tree.map(lambda v, g: decay_v * v + (1.0 - decay_v) * jnp.square(g), state.nu, grads)
        d = jnp.clip(delta, -clip, clip)
        updates = jax.tree.map(lambda e, v: (learning_rate * d) * e / (jnp.sqrt(v) + eps), z, nu)
        leaves = jax.tree.leaves(nu)
        step = sum(jnp.sum(learning_rate / (jnp.sqrt(v) + eps)) for v in leaves) / sum(v.size for v in leaves)
        return updates, AdaptiveQState(z, nu, step, jnp.asarray(reset, bool))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
