"""Accumulating eligibility traces (Sutton & Barto 2018, ch. 12).

    z <- gamma * lambda * z + grad

The trace remembers which weights shaped recent predictions so that one TD error can
credit them all. It is reset to zero where an episode ends (and, for Watkins' Q(lambda),
after an exploratory action).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any


class TraceState(NamedTuple):
    trace: PyTree  # same structure and shapes as the parameters


def trace_init(params: PyTree) -> TraceState:
    return TraceState(jax.tree.map(jnp.zeros_like, params))


def trace_update(state: TraceState, grads: PyTree, decay: float | jax.Array) -> TraceState:
    """z <- decay * z + grads, with decay = gamma * lambda."""
    return TraceState(jax.tree.map(lambda z, g: decay * z + g, state.trace, grads))


def trace_reset(state: TraceState, reset: jax.Array) -> TraceState:
    """Zeroes the trace where `reset` is true (a mask, so it stays jittable)."""
    return TraceState(jax.tree.map(lambda z: jnp.where(reset, jnp.zeros_like(z), z), state.trace))
