"""Dyna background planning: n simulated one-step updates per real step from a learned model.

Each simulated update (Sutton & Barto 2018, ch. 8, Dyna-Q with prioritised search control):
  1. draw a recent state s from the search-control buffer (priority ~ |TD error|) and an
     action a uniformly (the model generalises to actions not yet taken there);
  2. ask the model: reward r, next observation s' (a sample from its head), termination p;
  3. one-step Q-learning target r + gamma (1 - p) max_a' q(s', a'), and an ObGD step on
     grad q(s, a) with a fresh trace (lambda plays no part in a single simulated step);
  4. the state's priority becomes |TD error| of this update.
The n updates are one `lax.fori_loop`, so the whole thing stays inside the compiled step.
n = 0 leaves the value function as model-free learning made it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.plan.search_control import (
    SearchControlState,
    search_control_sample,
    search_control_set_priority,
)

PyTree = Any


class PlanCarry(NamedTuple):
    q: PyTree  # value-function parameters
    opt: PyTree  # ObGD state (its trace is zero between simulated updates)
    control: SearchControlState
    td_abs: jax.Array  # [] sum of |TD error| of the simulated updates (for diagnostics)


def dyna_updates(
    carry: PlanCarry,
    key: jax.Array,
    n: int,
    n_actions: int,
    q_apply: Callable[[PyTree, jax.Array], jax.Array],
    model_sample: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]],
    opt: optax.GradientTransformationExtraArgs,
    gamma: float,
    alpha: float = 1.0,
) -> PlanCarry:
    """n simulated Q-learning updates.

    q_apply(params, raw_obs [D]) -> q [A] (normalisation inside);
    model_sample(raw_obs, action, key) -> (reward as learned on, next raw_obs, termination prob).

    The n start states are drawn together from the priorities at the start of planning and the
    model is asked about all n at once (one batched call: the model does not change while
    planning); the n value updates then run one after another, each seeing the last.
    """
    if n <= 0:
        return carry
    usable = jnp.any(carry.control.filled)
    k_states, k_actions, k_model = jax.random.split(key, 3)
    slots, starts = search_control_sample(carry.control, k_states, alpha, shape=(n,))
    actions = jax.random.randint(k_actions, (n,), 0, n_actions, jnp.int32)
    rewards, next_obs, p_term = jax.vmap(model_sample)(starts, actions, jax.random.split(k_model, n))

    def body(i, c: PlanCarry) -> PlanCarry:
        s, a = starts[i], actions[i]
        q_next = jnp.max(q_apply(c.q, next_obs[i]))
        target = jax.lax.stop_gradient(rewards[i] + gamma * (1.0 - p_term[i]) * q_next)
        q_sa, g = jax.value_and_grad(lambda p: q_apply(p, s)[a])(c.q)
        delta = (target - q_sa) * usable
        updates, opt_state = opt.update(g, c.opt, delta=delta, reset=True)
        q = optax.apply_updates(c.q, updates)
        control = search_control_set_priority(c.control, slots[i], jnp.where(usable, delta, 0.0))
        return PlanCarry(q, opt_state, control, c.td_abs + jnp.abs(delta))

    return jax.lax.fori_loop(0, n, body, carry)
