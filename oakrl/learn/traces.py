"""Accumulating eligibility traces (Sutton & Barto 2018, ch. 12).

    z <- gamma * lambda * z + grad

The trace remembers which weights shaped recent predictions so that one TD error can
credit them all. It is reset to zero where an episode ends (and, for Watkins' Q(lambda),
after an exploratory action).

ObGD, AdaptiveObGD, Adaptive Q(lambda) and the intentional optimisers defer that reset: their
state keeps the flag (`reset_pending`) and the next update decays the trace by 0 instead of
gamma * lambda (`trace_decay`), inside the pass that updates it anyway. The values are the same
as zeroing it at once, and so are the results, bit for bit (benchmarks/fingerprint.py); a
separate pass over every trace is saved (12 of a stream AC step's 159 kernels).
`trace_in_effect` reads a state's trace as its next update will. TIDBD-ObGD still zeroes its
trace at once: deferred there, XLA compiled its update into other last bits.
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


def trace_decay(decay: float, reset_pending: jax.Array) -> jax.Array:
    """[] the decay of the next trace update: 0 where the last update ended an episode.

    0 * z + g = g for a finite z, so this is the reset applied late, at no extra pass.
    """
    return jnp.where(reset_pending, 0.0, decay)


def trace_in_effect(state: Any) -> PyTree:
    """The trace an optimiser state's next update reads: zeros where a reset is pending."""
    return trace_reset(TraceState(state.trace), getattr(state, "reset_pending", False)).trace
