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
    state: SearchControlState, key: jax.Array, alpha: float = 1.0, floor: float = 1e-3
) -> tuple[jax.Array, jax.Array]:
    """(slot, observation) drawn with probability ~ (priority + floor) ** alpha over filled slots.

    The floor keeps every recent state reachable (a zero TD error can become non-zero once
    the model or the values change). Sampling from an empty buffer returns slot 0 (zeros);
    callers mask that case.
    """
    logits = alpha * jnp.log(state.priority + floor)
    logits = jnp.where(state.filled, logits, -jnp.inf)
    logits = jnp.where(jnp.any(state.filled), logits, 0.0)
    i = jax.random.categorical(key, logits)
    return i, state.obs[i]


def search_control_set_priority(
    state: SearchControlState, slot: jax.Array, priority: jax.Array
) -> SearchControlState:
    return state._replace(priority=state.priority.at[slot].set(jnp.abs(priority)))
