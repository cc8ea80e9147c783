"""Foraging-v0: a continuing grid world whose rewards keep moving.

The world is a `size x size` torus (default 8x8) holding `items_per_kind` items of each of
`num_kinds` kinds (default 3 kinds x 3 items). The agent moves up, right, down or left
(4 actions, no "stay": it has to keep walking, so it must also steer around bad items).
Stepping onto a cell eats every item there: the reward is the sum of their current values,
and each eaten item respawns at once on a uniformly random cell other than the agent's.

Item values rotate slowly, so whatever the agent learned about "good" and "bad" kinds goes
stale and must be relearned:

    value_k(t) = value_scale * cos(2 pi (t / period + phase - k / num_kinds))

With 3 kinds that is a rotating pattern like [1, -0.5, -0.5]: one kind is best, the others
are worse, and the values always sum to zero (a random walk earns nothing on average).
`t` counts steps modulo `period` (default 30,000, so each kind is the best one for about a
third of that); `period <= 0` freezes the values at `phase`. `phase` is what the `switch`
and `drift` schedules move: task k sets phase = k / num_kinds, i.e. kind k % num_kinds is
the rewarding one when the task starts.

The observation is egocentric, float32 [size, size, num_kinds]: channel k counts the items
of kind k on each cell, rolled so that the agent is always at cell (size // 2, size // 2).
It never terminates or truncates (continuing=True).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

Array = jax.Array

# Action -> (row, col) move on the torus: up, right, down, left.
_MOVES = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)


@struct.dataclass
class ForagingState(environment.EnvState):
    agent: Array  # int32[2], (row, col)
    items: Array  # int32[num_kinds, items_per_kind, 2], (row, col) of every item
    time: Array  # int32[], steps modulo period (drives the value rotation)


@struct.dataclass
class ForagingParams(environment.EnvParams):
    period: int = 30_000  # steps for one full turn of the values; <= 0 freezes them
    phase: float = 0.0  # offset of the rotation, in turns; task k of a schedule sets k / K
    value_scale: float = 1.0  # the best item is worth this much
    max_steps_in_episode: int = 2**31 - 1  # unused: the world never truncates


def item_values(time: Array, params: ForagingParams, num_kinds: int) -> Array:
    """Values of every kind at `time` (steps modulo period): float32[num_kinds]."""
    period = jnp.asarray(params.period)
    turns = jnp.where(period > 0, time / jnp.maximum(period, 1), 0.0) + params.phase
    kinds = jnp.arange(num_kinds) / num_kinds
    return params.value_scale * jnp.cos(2.0 * jnp.pi * (turns - kinds)).astype(jnp.float32)


class Foraging(environment.Environment[ForagingState, ForagingParams]):
    """Continuing foraging on a torus with rotating item values (see module docstring)."""

    def __init__(self, size: int = 8, num_kinds: int = 3, items_per_kind: int = 3):
        super().__init__()
        if num_kinds * items_per_kind >= size * size:
            raise ValueError("too many items for the grid")
        self.size = size
        self.num_kinds = num_kinds
        self.items_per_kind = items_per_kind
        self.obs_shape = (size, size, num_kinds)

    @property
    def default_params(self) -> ForagingParams:
        return ForagingParams()

    def _random_cells_except(self, key: Array, cell: Array, shape: tuple[int, ...]) -> Array:
        """Uniform cells other than `cell`: int32[*shape, 2].

        Adding an offset in [1, size^2 - 1] to the cell's flat index never lands on it.
        """
        n = self.size * self.size
        offsets = jax.random.randint(key, shape, 1, n)
        flat = (cell[0] * self.size + cell[1] + offsets) % n
        return jnp.stack([flat // self.size, flat % self.size], axis=-1).astype(jnp.int32)

    def reset_env(self, key: Array, params: ForagingParams) -> tuple[Array, ForagingState]:
        key_agent, key_items = jax.random.split(key)
        agent = jax.random.randint(key_agent, (2,), 0, self.size).astype(jnp.int32)
        items = self._random_cells_except(key_items, agent, (self.num_kinds, self.items_per_kind))
        state = ForagingState(agent=agent, items=items, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self, key: Array, state: ForagingState, action: Array, params: ForagingParams
    ) -> tuple[Array, ForagingState, Array, Array, dict[str, Any]]:
        agent = (state.agent + _MOVES[action]) % self.size
        eaten = jnp.all(state.items == agent, axis=-1)  # bool[K, N]
        values = item_values(state.time, params, self.num_kinds)
        reward = jnp.sum(eaten * values[:, None])
        fresh = self._random_cells_except(key, agent, eaten.shape)
        items = jnp.where(eaten[..., None], fresh, state.items)
        period = jnp.maximum(jnp.asarray(params.period), 1)
        time = (state.time + 1) % period
        state = ForagingState(agent=agent, items=items, time=time.astype(jnp.int32))
        terminated = jnp.zeros((), bool)
        return self.get_obs(state), state, reward, terminated, {"discount": jnp.float32(1.0)}

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self, key: Array, state: ForagingState, action: Array, params: ForagingParams | None = None
    ) -> tuple[Array, ForagingState, Array, Array, Array, dict[str, Any]]:
        """gymnax's step without the auto-reset machinery: this world never ends."""
        params = self.default_params if params is None else params
        obs, state, reward, terminated, info = self.step_env(key, state, action, params)
        info = {
            **info,
            "terminated": terminated,
            "truncated": terminated,
            "final_observation": obs,
        }
        return obs, state, reward, terminated, terminated, info

    def get_obs(self, state: ForagingState, params: Any = None, key: Any = None) -> Array:
        """Egocentric item counts, float32[size, size, num_kinds], agent at the centre."""
        kinds = jnp.broadcast_to(jnp.arange(self.num_kinds)[:, None], state.items.shape[:2])
        # Item positions relative to the agent, shifted so the agent sits at the centre.
        rel = (state.items - state.agent + self.size // 2) % self.size
        grid = jnp.zeros(self.obs_shape, jnp.float32)
        return grid.at[rel[..., 0], rel[..., 1], kinds].add(1.0)

    def is_terminated(self, state: ForagingState, params: ForagingParams) -> Array:
        return jnp.zeros((), bool)

    def is_truncated(self, state: ForagingState, params: ForagingParams) -> Array:
        return jnp.zeros((), bool)

    @property
    def name(self) -> str:
        return "Foraging-v0"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: ForagingParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: ForagingParams) -> spaces.Box:
        high = float(self.num_kinds * self.items_per_kind)
        return spaces.Box(0.0, high, self.obs_shape, jnp.float32)
