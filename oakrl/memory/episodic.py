"""A fixed-size episodic store: keys (observation embeddings), the action taken, and the discounted
return observed after it, filled in online; read by k nearest neighbours (Blundell et al. 2016
"Model-Free Episodic Control"; Pritzel et al. 2017 "Neural Episodic Control").

Everything is a pure function over `MemoryState` (fixed shapes: jit, scan and vmap apply; the
lab checkpoints it like any other leaf).

Write (every step, `write`): the new entry (key, action) takes a slot with value 0 and weight 1.
Eviction: the slot used least recently (written or read as a neighbour) is overwritten; empty
slots count as never used, so they fill first (in slot order).

Returns filled in online (`observe_reward`): each entry has a weight w = gamma^(steps since it
was written) while its episode lasts; a reward r arriving now adds w * r to its value, then w
decays by gamma; an episode's end sets every open weight to 0 (the return after an entry is
within its episode). So an entry's value is exactly the discounted return observed after its
(state, action), truncated at the present: complete once its episode has ended.

Read (`read`): for action a, the k stored entries of action a nearest to the key (squared
Euclidean distance), weighted by NEC's kernel 1 / (d^2 + delta); the estimate is their weighted
mean value. Only entries whose return is complete (episode ended) are read.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class MemoryState(NamedTuple):
    """N slots of embedding size E."""

    keys: jax.Array  # [N, E] float32
    actions: jax.Array  # [N] int32 action taken at the key
    values: jax.Array  # [N] float32 discounted return observed after (key, action) so far
    weights: jax.Array  # [N] float32 gamma^(age) while the entry's episode lasts, else 0
    used: jax.Array  # [N] int32 step at which the slot was last written or read (-1: empty)
    filled: jax.Array  # [N] bool: the slot holds an entry
    clock: jax.Array  # [] int32 steps so far


def memory_init(size: int, embed: int) -> MemoryState:
    return MemoryState(
        keys=jnp.zeros((size, embed), jnp.float32),
        actions=jnp.zeros(size, jnp.int32),
        values=jnp.zeros(size, jnp.float32),
        weights=jnp.zeros(size, jnp.float32),
        used=jnp.full(size, -1, jnp.int32),
        filled=jnp.zeros(size, bool),
        clock=jnp.zeros((), jnp.int32),
    )


def observe_reward(m: MemoryState, reward: jax.Array, done: jax.Array, gamma: float) -> MemoryState:
    """The reward of the last transition added to every open entry's return (see module doc)."""
    values = m.values + m.weights * reward
    weights = jnp.where(done, 0.0, m.weights * gamma)
    return m._replace(values=values, weights=weights)


def write(m: MemoryState, key: jax.Array, action: jax.Array) -> MemoryState:
    """A new entry (key [E], action []) over the least recently used slot; its return starts now."""
    slot = jnp.argmin(m.used)  # -1 (empty) first, lowest index on ties
    return MemoryState(
        keys=m.keys.at[slot].set(key),
        actions=m.actions.at[slot].set(action),
        values=m.values.at[slot].set(0.0),
        weights=m.weights.at[slot].set(1.0),
        used=m.used.at[slot].set(m.clock),
        filled=m.filled.at[slot].set(True),
        clock=m.clock + 1,
    )


def read(m: MemoryState, key: jax.Array, num_actions: int, k: int, delta: float = 1e-3):
    """(estimate [A], found [A] bool, memory with the neighbours' use refreshed) for key [E].

    found[a] is False where no complete entry of action a exists (estimate 0 there).
    """
    d2 = jnp.sum(jnp.square(m.keys - key), axis=1)  # [N]
    complete = m.filled & (m.weights == 0.0)

    def one(a):
        ok = complete & (m.actions == a)
        score = jnp.where(ok, -d2, -jnp.inf)
        top, idx = jax.lax.top_k(score, k)
        valid = jnp.isfinite(top)
        w = jnp.where(valid, 1.0 / (-jnp.where(valid, top, 0.0) + delta), 0.0)
        est = jnp.sum(w * m.values[idx]) / jnp.maximum(jnp.sum(w), 1e-12)
        return est, jnp.any(valid), jnp.where(valid, idx, -1)

    est, found, idx = jax.vmap(one)(jnp.arange(num_actions))
    hit = jnp.zeros(m.used.shape[0], bool).at[jnp.where(idx >= 0, idx, 0).ravel()].max((idx >= 0).ravel())
    used = jnp.where(hit, m.clock, m.used)
    return est, found, m._replace(used=used)


def combine(q: jax.Array, est: jax.Array, found: jax.Array, mix: float) -> jax.Array:
    """[A] q_param + mix (q_mem - q_param) where memory has an estimate: the semi-parametric value."""
    return jnp.where(found, q + mix * (est - q), q)
