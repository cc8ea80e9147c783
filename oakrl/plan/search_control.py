"""Search control for background planning: which states to plan from.

A fixed-size ring buffer of the most recent states the agent acted in, each with a priority:
the |TD error| of its last update (real or simulated). Planning starts from states drawn in
proportion to priority ** alpha (Dyna with prioritised search control, Sutton & Barto 8.4,
Moore & Atkeson's prioritized sweeping restricted to recent states). Fixed shapes and masks
only, so it lives in the agent state under jit, scan and vmap.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SearchControlState(NamedTuple):
    obs: jax.Array  # [B, D] recent observations (raw, as the model sees them)
    priority: jax.Array  # [B] float32 |TD error| of the last update from that state
    filled: jax.Array  # [B] bool: the slot holds a state
    position: jax.Array  # [] int32 the next slot to overwrite


def search_control_init(size: int, obs_dim: int) -> SearchControlState:
    return SearchControlState(
        obs=jnp.zeros((size, obs_dim), jnp.float32),
        priority=jnp.zeros((size,), jnp.float32),
        filled=jnp.zeros((size,), bool),
        position=jnp.zeros((), jnp.int32),
    )


def search_control_add(
    state: SearchControlState, obs: jax.Array, priority: jax.Array, valid: jax.Array
) -> SearchControlState:
    """Writes `obs` over the oldest slot (only where `valid`)."""
    i = state.position
    size = state.priority.shape[0]
    return SearchControlState(
        obs=state.obs.at[i].set(jnp.where(valid, obs, state.obs[i])),
        priority=state.priority.at[i].set(jnp.where(valid, jnp.abs(priority), state.priority[i])),
        filled=state.filled.at[i].set(jnp.logical_or(valid, state.filled[i])),
        position=jnp.where(valid, (i + 1) % size, i),
    )


def search_control_sample(
    state: SearchControlState,
    key: jax.Array,
    alpha: float = 1.0,
    floor: float = 1e-3,
    shape: tuple[int, ...] = (),
) -> tuple[jax.Array, jax.Array]:
    """(slot [*shape], observation [*shape, D]) drawn with probability ~ (priority + floor) ** alpha
    over filled slots, independently for each entry of `shape`.

    The floor keeps every recent state reachable (a zero TD error can become non-zero once
    the model or the values change). Sampling from an empty buffer draws uniformly over the
    (zero) slots; callers mask that case. Drawn by inverse CDF: one uniform per draw, where a
    Gumbel-max draw (`jax.random.categorical`) takes random bits and two logs per slot per draw.
    """
    weight = jnp.exp(alpha * jnp.log(state.priority + floor)) if alpha != 1.0 else state.priority + floor
    weight = jnp.where(state.filled, weight, 0.0)
    weight = jnp.where(jnp.any(state.filled), weight, 1.0)
    cdf = jnp.cumsum(weight)
    u = jax.random.uniform(key, shape) * cdf[-1]
    # The first slot whose cumulative weight exceeds u: a slot of weight 0 (empty) never is,
    # except past the end when u rounds up to the total, where the last weighted slot is taken.
    i = jnp.sum(cdf[None, :] <= u.reshape(-1, 1), axis=-1).reshape(shape)
    last = weight.shape[0] - 1 - jnp.argmax(weight[::-1] > 0)
    i = jnp.minimum(i, last).astype(jnp.int32)
    return i, state.obs[i]


def search_control_set_priority(
    state: SearchControlState, slot: jax.Array, priority: jax.Array
) -> SearchControlState:
    return state._replace(priority=state.priority.at[slot].set(jnp.abs(priority)))
