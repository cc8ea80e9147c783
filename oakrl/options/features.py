"""Features: the observation's components, each with a running activity and a running utility.

A feature is one component of the (flattened) observation: on Rooms-v0 a cell, on Foraging-v0
"an item of kind k at this offset from me". Nothing is chosen per environment: every
component is a candidate, and what the agent learns about each, every step, is

  activity  a running mean of the component's value (a feature that never fires cannot be
            reached, so it cannot make a subtask), and
  utility   a running record of how much planning gained from the option built on it
            (written by the agent from the option pool's utilities; it outlives the option).

New subtasks draw their feature from the active components that no option uses yet.
Where the observation is not a one-hot code of the state, OaK can hand these functions a learned
code instead (`oak --opt features=code`, oakrl/learn/sparse_code.py): a component is then a code
unit, and its activity how often that unit is the active one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class FeatureStats(NamedTuple):
    activity: Array  # [D] running mean of each observation component
    utility: Array  # [D] utility of the option last built on each component (0: never used)


def features_init(dim: int) -> FeatureStats:
    return FeatureStats(jnp.zeros(dim, jnp.float32), jnp.zeros(dim, jnp.float32))


def features_update(stats: FeatureStats, x: Array, rate: float) -> FeatureStats:
    """Running activity: a <- a + rate (x - a), for the observation x [D] just seen."""
    return stats._replace(activity=stats.activity + rate * (x - stats.activity))


def propose_feature(stats: FeatureStats, taken: Array, key: Array, min_activity: float = 1e-4) -> Array:
    """int32[]: a new feature, uniform over active components not in `taken` (bool [D]).

    Falls back to any free component while nothing has been active yet (the start of life).
    """
    free = ~taken
    active = free & (stats.activity > min_activity)
    pool = jnp.where(active.any(), active, free)
    logits = jnp.where(pool, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)
