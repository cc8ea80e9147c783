"""The option pool: a reward-respecting subtask per feature, and the option that solves it.

Subtask of slot k (Sutton et al. 2023, "Reward-Respecting Subtasks for Model-Based RL"):
collect the environment's reward and, when the option stops in state s, receive the stopping
value

    stop_k(s) = v(s) + bonus * x_{f_k}(s)

where v is the agent's main value function and x_{f_k}(s) the option's feature. The option
therefore respects reward (it may not wreck the main task on its way) and is paid for ending
where its feature is on. The agent may weight v (its `stop_value` option, kappa): kappa = 0
gives a feature-attainment subtask that still collects reward on the way but whose policy,
stopping and model do not depend on v, so they do not go stale when v changes (the functions
here take kappa * v as v). Measured worse on Rooms-v0 (benchmarks/RESULTS.md).
The agent may also weight the reward the subtask collects (its `subtask_reward`):
0 with kappa = 0 is the reward-ignoring subtask of the paper's comparison (reach the feature
the shortest way; a bottleneck option when the feature is a hallway cell); the functions here
take the weighted reward as `reward`.

Each option is a linear action-value function q_k(s, a) = Q[k, a] . x(s) learned by Q(lambda)
with the stopping choice in the max:

    delta_k = r + gamma * cont * max(stop_k(s'), max_a' q_k(s', a')) - q_k(s, a)

The option's policy is greedy in q_k and it stops where stopping is worth at least as much
as going on: beta_k(s) = [stop_k(s) >= max_a q_k(s, a)]. All N options learn at every step
from the one stream of experience, whatever the agent was doing (off-policy). Their traces
are Watkins' (a truncated importance ratio min(1, pi_k / mu), which for a greedy target
policy is 1[a = pi_k(s)]): a trace is cut where the action taken was not the option's
greedy one, and where the option would have stopped.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class OptionPool(NamedTuple):
    feature: Array  # [N] int32: the observation component behind each option (its subtask)
    q: Array  # [N, A, D] linear action values of each option's subtask
    trace: Array  # [N, A, D] eligibility traces of the q weights
    age: Array  # [N] int32: steps since the slot was (re)created


def pool_init(features: Array, actions: int, dim: int) -> OptionPool:
    n = features.shape[0]
    zeros = jnp.zeros((n, actions, dim), jnp.float32)
    return OptionPool(features.astype(jnp.int32), zeros, zeros, jnp.zeros(n, jnp.int32))


def pool_reset(pool: OptionPool, slot: Array, feature: Array, do: Array) -> OptionPool:
    """Where `do`: slot `slot` gets feature `feature`, fresh (zero) weights and traces, age 0."""

    hit = (jnp.arange(pool.feature.shape[0]) == slot) & do  # [N]
    keep = ~hit[:, None, None]
    return OptionPool(
        feature=jnp.where(hit, feature, pool.feature),
        q=jnp.where(keep, pool.q, 0.0),
        trace=jnp.where(keep, pool.trace, 0.0),
        age=jnp.where(hit, 0, pool.age),
    )


def option_values(pool: OptionPool, x: Array) -> Array:
    """[N, A]: q_k(x, a) for every option and action, x [D]."""
    return jnp.einsum("nad,d->na", pool.q, x)


def stopping_values(pool: OptionPool, x: Array, v: Array, bonus: float) -> Array:
    """[N]: stop_k(x) = v(x) + bonus * x[f_k], the subtask's value of stopping in x."""
    return v + bonus * x[pool.feature]


def policy_and_stopping(pool: OptionPool, x: Array, v: Array, bonus: float) -> tuple[Array, Array, Array]:
    """(pi [N] int32 greedy actions, beta [N] bool stop here, q [N, A]) at x [D] with v = v(x)."""
    q = option_values(pool, x)
    beta = stopping_values(pool, x, v, bonus) >= q.max(axis=-1)
    return jnp.argmax(q, axis=-1).astype(jnp.int32), beta, q


def pool_update(
    pool: OptionPool,
    x: Array,
    action: Array,
    reward: Array,
    x_next: Array,
    v: Array,
    v_next: Array,
    cont: Array,
    learn: Array,
    *,
    bonus: float,
    gamma: float,
    lamda: float,
    lr: float,
) -> tuple[OptionPool, Array]:
    """One Q(lambda) step of every option on the transition (x, action, reward, x_next).

    v, v_next: the main value at x and x_next; cont: 0 where the episode terminated at
    x_next (no bootstrapping), 1 otherwise; learn: 0 where there is no transition to learn
    from (the stream's first step, a truncated episode), which also clears the traces.
    Returns (pool, delta [N]). The step size is normalised by x . x (NLMS), so that one
    step size suits any scale of observation.
    """
    pi, beta, q = policy_and_stopping(pool, x, v, bonus)
    # The options' returns that flowed through x go on only if each would have continued
    # from x with the action that was taken (Watkins' cut, see module docstring).
    carry = gamma * lamda * (1.0 - beta) * (pi == action)  # [N]
    grad = jax.nn.one_hot(action, pool.q.shape[1])[:, None] * x[None, :]  # [A, D]
    trace = carry[:, None, None] * pool.trace + grad[None]
    q_next = option_values(pool, x_next).max(axis=-1)
    stop_next = stopping_values(pool, x_next, v_next, bonus)
    target = reward + gamma * cont * jnp.maximum(stop_next, q_next)
    delta = (target - q[:, action]) * learn
    step = lr / jnp.maximum(x @ x, 1e-6)
    new_q = pool.q + (step * delta)[:, None, None] * trace
    # An episode's end (or a transition not learned from) cuts every trace.
    keep = learn * cont
    return pool._replace(q=new_q, trace=trace * keep, age=pool.age + 1), delta
