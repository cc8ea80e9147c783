"""Continual task schedules: a wrapper that changes the world every `every` steps.

Time is cut into segments of `every` steps; segment i runs task `task_of_segment(i)`:

    cyclic  task = i % tasks                      (0, 1, ..., tasks-1, 0, 1, ...)
    random  each block of `tasks` segments visits every task once, in an order drawn from
            fold_in(key(seed), block); the first task of a block is swapped with the second
            if it would repeat the last one, so every segment boundary is a real change.

The step counter lives in the wrapper's state and never resets (episodes do, the schedule
does not): step n (counting from 0 after `reset`) runs under task_of_segment(n // every),
which is what `info["task"]` reports. Kinds:

    switch   the environment's own dynamics variants (oakrl/envs/variants.py): task k uses
             variant k % len(table), swapped into the gymnax params inside `step`.
    drift    the same variants, blended continuously: over segment i the params move from
             the variant of task(i) to that of task(i+1) along a half cosine, so with the
             cyclic order they sweep through every variant with period every * tasks.
             info["task"] is the nearer of the two. Only for environments with variants.
    permute  task k shows the flattened observation through a fixed random permutation
             (task 0: identity), drawn from the seed.
    reward   task k multiplies rewards by c_k, c = [1, -1, 0.5, -0.5, 2, -2, 0.25, ...]:
             the sign flips every task, the magnitude halves or doubles every second one.

When the task changes the ongoing episode just continues under the new task; the inner
environment's auto-reset uses the new task's params too. Observations returned by `step`
(and `info["final_observation"]`) are encoded with the task of the *next* step, the one
the agent will act under; the reward and dynamics are those of the step just taken.
"""

from __future__ import annotations

import difflib
import math
import operator
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from oakrl.envs.variants import Variants, blend, select
from oakrl.errors import ConfigError

Array = jax.Array

KINDS: dict[str, str] = {
    "switch": "swap the dynamics variant every `every` steps",
    "drift": "blend continuously between dynamics variants",
    "permute": "a fixed random permutation of the observation per task",
    "reward": "multiply rewards by 1, -1, 0.5, -0.5, 2, -2, ... per task",
}
ORDERS = ("cyclic", "random")


@struct.dataclass
class ScheduleState:
    inner: Any  # the wrapped environment's state
    segment: Array  # int32[]: index of the current segment (global step // every)
    offset: Array  # int32[]: steps taken in the current segment, in [0, every)


@struct.dataclass
class ScheduleParams:
    inner: Any  # the wrapped environment's params (task variants are applied on top)
    key: Array  # uint32[2]: draws the random task order
    table: dict[str, Array]  # switch/drift: field -> [num_variants, ...]; else empty
    perms: Array | None  # permute: int32[tasks, obs size], row 0 the identity
    scales: Array | None  # reward: float32[tasks]


def reward_scales(tasks: int) -> np.ndarray:
    """c = [1, -1, 0.5, -0.5, 2, -2, 0.25, -0.25, 4, ...][:tasks], float32[tasks]."""
    pair = np.arange(tasks) // 2
    exponent = (pair + 1) // 2 * np.where(pair % 2 == 1, -1, 1)
    sign = np.where(np.arange(tasks) % 2 == 1, -1.0, 1.0)
    return (sign * 2.0**exponent).astype(np.float32)


def permutations(seed: int, tasks: int, size: int) -> np.ndarray:
    """One permutation of range(size) per task, int32[tasks, size]; task 0 the identity."""
    rows = [np.arange(size)]
    rows += [np.random.default_rng([seed % 2**32, k]).permutation(size) for k in range(1, tasks)]
    return np.stack(rows).astype(np.int32)


def task_of_segment(segment: Array, tasks: int, order: str, key: Array) -> Array:
    """The task (int32[]) that runs in segment `segment`; traceable, deterministic in key."""
    segment = jnp.asarray(segment, jnp.int32)
    if order == "cyclic" or tasks == 1:
        return segment % tasks
    block, pos = segment // tasks, segment % tasks
    perm = jax.random.permutation(jax.random.fold_in(key, block), tasks)
    previous = jax.random.permutation(jax.random.fold_in(key, jnp.maximum(block - 1, 0)), tasks)
    # Never run the same task twice in a row across a block boundary.
    clash = (block > 0) & (perm[0] == previous[-1])
    swapped = perm.at[0].set(perm[1]).at[1].set(perm[0])
    return jnp.where(clash, swapped, perm)[pos].astype(jnp.int32)


def as_int(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as a Python int (numpy ints welcome), or a one-line ConfigError."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def check_schedule(kind: str, every: int, tasks: int, order: str) -> tuple[int, int]:
    """(every, tasks) as ints; raises ConfigError (one line) unless the settings are valid."""
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown schedule '{kind}'{hint}; valid: {', '.join(KINDS)}")
    every = as_int("schedule 'every' (steps per task)", every, minimum=1)
    tasks = as_int("schedule 'tasks'", tasks, minimum=1)
    if order not in ORDERS:
        raise ConfigError(f"unknown task order {order!r}; valid: {', '.join(ORDERS)}")
    return every, tasks


class Scheduled:
    """A gymnax-style environment whose task changes over time (see module docstring).

    Same functional API as the wrapped environment, with `ScheduleParams` and
    `ScheduleState` around the inner ones; `info["task"]` holds the task index.
    """

    def __init__(
        self,
        env: Any,
        kind: str,
        every: int,
        tasks: int,
        order: str = "cyclic",
        variants: Variants | None = None,
    ):
        every, tasks = check_schedule(kind, every, tasks, order)
        if kind in ("switch", "drift") and variants is None:
            raise ConfigError(f"schedule '{kind}' needs an environment with task variants")
        self.env = env
        self.kind = kind
        self.every = every
        self.tasks = tasks
        self.order = order
        self.variants = variants
        self.derive = variants.derive if variants is not None else None

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def make_params(self, inner: Any, obs_shape: tuple[int, ...], seed: int) -> ScheduleParams:
        """The wrapper's params: the inner params plus every table this kind needs."""
        table, perms, scales = {}, None, None
        if self.kind in ("switch", "drift"):
            table = {k: jnp.asarray(v) for k, v in self.variants.table.items()}
        if self.kind == "permute":
            perms = jnp.asarray(permutations(seed, self.tasks, math.prod(obs_shape)))
        if self.kind == "reward":
            scales = jnp.asarray(reward_scales(self.tasks))
        key = jax.random.PRNGKey(seed)
        return ScheduleParams(inner=inner, key=key, table=table, perms=perms, scales=scales)

    def task_at(self, segment: Array, params: ScheduleParams) -> Array:
        return task_of_segment(segment, self.tasks, self.order, params.key)

    def _dynamics(self, params: ScheduleParams, segment: Array, offset: Array) -> tuple:
        """(inner params in force, task to report) at (segment, offset)."""
        task = self.task_at(segment, params)
        if self.kind == "switch":
            return select(Variants(params.table, self.derive), params.inner, task), task
        if self.kind == "drift":
            following = self.task_at(segment + 1, params)
            weight = 0.5 * (1.0 - jnp.cos(jnp.pi * offset / self.every))
            inner = blend(Variants(params.table, self.derive), params.inner, task, following, weight)
            return inner, jnp.where(weight < 0.5, task, following)
        return params.inner, task

    def _encode(self, obs: Array, params: ScheduleParams, task: Array) -> Array:
        if self.kind != "permute":
            return obs
        return obs.reshape(-1)[params.perms[task]].reshape(obs.shape)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: Array, params: ScheduleParams) -> tuple[Array, ScheduleState]:
        """Starts the schedule at step 0 (task_of_segment(0)) and the first episode."""
        zero = jnp.zeros((), jnp.int32)
        inner_params, _ = self._dynamics(params, zero, zero)
        obs, inner = self.env.reset(key, inner_params)
        task = self.task_at(zero, params)
        return self._encode(obs, params, task), ScheduleState(inner, zero, zero)

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self, key: Array, state: ScheduleState, action: Array, params: ScheduleParams
    ) -> tuple[Array, ScheduleState, Array, Array, Array, dict[str, Array]]:
        """One step of the task in force; returns gymnax's 6-tuple with info["task"]."""
        inner_params, reported = self._dynamics(params, state.segment, state.offset)
        task = self.task_at(state.segment, params)
        obs, inner, reward, terminated, truncated, info = self.env.step(
            key, state.inner, action, inner_params
        )
        offset = state.offset + 1
        rolled = offset >= self.every
        segment = state.segment + rolled.astype(jnp.int32)
        offset = jnp.where(rolled, 0, offset)
        upcoming = self.task_at(segment, params)
        if self.kind == "reward":
            reward = reward * params.scales[task]
        info = {
            **info,
            "final_observation": self._encode(info["final_observation"], params, upcoming),
            "task": jnp.asarray(reported, jnp.int32),
        }
        obs = self._encode(obs, params, upcoming)
        return obs, ScheduleState(inner, segment, offset), reward, terminated, truncated, info
