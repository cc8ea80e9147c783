"""SharedForaging-v0: N learners forage on one torus; an item one of them eats is gone for all.

A `size x size` torus (default 8x8) holds `items` food items (default 6). Every learner moves
up, right, down or left each step, all at once. A learner that ends its move on an item's cell
eats it: reward 1, shared equally among the learners on that cell; the item respawns at once
on a uniformly random cell. Learners compete for the same food, so what each should do depends
on what the others have learned to do: the world is non-stationary for each of them.

Observation of learner i (egocentric, float32 [size, size, 2], rolled so that learner i is at
cell (size // 2, size // 2)): channel 0 counts the items on each cell, channel 1 the other
learners. Continuing: never terminates. info: task (0), items_eaten (items eaten this step).
The multi-agent protocol is oakrl/envs/multi.py's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.core.types import ArraySpec, DiscreteSpec
from oakrl.envs.multi import MultiEnvHandle

Array = jax.Array
_MOVES = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)


class SharedForagingParams(NamedTuple):
    size: int = 8
    items: int = 6


class SharedForagingState(NamedTuple):
    agents: Array  # [N, 2] int32 (row, col)
    items: Array  # [I, 2] int32
    time: Array  # [] int32


class SharedForaging:
    def __init__(self, num_learners: int = 2, size: int = 8, items: int = 6):
        self.num_learners, self.size, self.num_items = num_learners, size, items

    @property
    def default_params(self) -> SharedForagingParams:
        return SharedForagingParams(self.size, self.num_items)

    def observe(self, state: SharedForagingState) -> Array:
        size = self.size
        items = jnp.zeros((size, size), jnp.float32).at[state.items[:, 0], state.items[:, 1]].add(1.0)

        def view(i):
            others = jnp.zeros((size, size), jnp.float32).at[state.agents[:, 0], state.agents[:, 1]].add(1.0)
            others = others.at[state.agents[i, 0], state.agents[i, 1]].add(-1.0)
            grid = jnp.stack([items, others], -1)
            shift = size // 2 - state.agents[i]
            return jnp.roll(grid, (shift[0], shift[1]), axis=(0, 1))

        return jax.vmap(view)(jnp.arange(self.num_learners))

    def reset(self, key: Array, params: Any = None) -> tuple[Array, SharedForagingState]:
        ka, ki = jax.random.split(key)
        agents = jax.random.randint(ka, (self.num_learners, 2), 0, self.size, jnp.int32)
        items = jax.random.randint(ki, (self.num_items, 2), 0, self.size, jnp.int32)
        state = SharedForagingState(agents, items, jnp.zeros((), jnp.int32))
        return self.observe(state), state

    def step(self, key: Array, state: SharedForagingState, actions: Array, params: Any = None):
        agents = (state.agents + _MOVES[actions.astype(jnp.int32)]) % self.size
        on = jnp.all(agents[None, :, :] == state.items[:, None, :], axis=-1)  # [I, N]
        count = on.sum(1)  # learners on each item's cell
        eaten = count > 0
        # an item is shared equally by the learners that reach it in the same step
        rewards = (on / jnp.maximum(count, 1)[:, None]).sum(0).astype(jnp.float32)
        fresh = jax.random.randint(key, state.items.shape, 0, self.size, jnp.int32)
        items = jnp.where(eaten[:, None], fresh, state.items)
        new = SharedForagingState(agents, items, state.time + 1)
        info = {"task": jnp.zeros((), jnp.int32), "items_eaten": eaten.sum().astype(jnp.float32)}
        false = jnp.zeros((), bool)
        return self.observe(new), new, rewards, false, false, info


def make_shared_foraging(num_learners: int = 2, size: int = 8, items: int = 6) -> MultiEnvHandle:
    env = SharedForaging(num_learners, size, items)
    return MultiEnvHandle(
        id="SharedForaging-v0",
        env=env,
        params=env.default_params,
        num_learners=num_learners,
        obs_spec=ArraySpec((size, size, 2), jnp.float32),
        action_spec=DiscreteSpec(4),
        continuing=True,
        description="N learners forage on one 8x8 torus; eaten items are gone for all (--learners)",
        world_metrics=("items_eaten",),
    )
