"""Uniform outputs for gymnax environments: float32 observations and `info["task"]`.

gymnax environments differ in small ways (MinAtar grids may be bool or int, SpaceInvaders
reports an int discount). Agents and the lab should not care, so every environment that
`make_env` returns is wrapped in `GymnaxAdapter`, which fixes dtypes and adds the task
index the lab groups its metrics by.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from oakrl.core.types import ArraySpec, DiscreteSpec, Spec

Array = jax.Array


def specs_of(env: Any, params: Any) -> tuple[ArraySpec, Spec]:
    """The oakrl observation and action specs of a gymnax environment.

    Observations are always float32 (the adapter casts them). Discrete actions become
    `DiscreteSpec(n)`; Box actions `ArraySpec(shape, float32, low, high)` with scalar bounds
    (every gymnax Box action space has the same bound on every dimension).
    """
    obs_space = env.observation_space(params)
    obs_spec = ArraySpec(tuple(int(d) for d in obs_space.shape), jnp.float32)
    act_space = env.action_space(params)
    if isinstance(act_space, spaces.Discrete):
        return obs_spec, DiscreteSpec(int(act_space.n))
    if isinstance(act_space, spaces.Box):
        low, high = _scalar_bound(act_space.low), _scalar_bound(act_space.high)
        shape = tuple(int(d) for d in act_space.shape)
        return obs_spec, ArraySpec(shape, jnp.float32, low, high)
    raise TypeError(f"unsupported gymnax action space {type(act_space).__name__}")


def _scalar_bound(bound: Any) -> float | None:
    """One Python float for a Box bound (None when infinite)."""
    value = float(jnp.max(jnp.asarray(bound)))
    return value if math.isfinite(value) else None


class GymnaxAdapter:
    """Wraps a gymnax environment: float32 observations and rewards, `info["task"] = 0`.

    Same functional API as gymnax 1.0 (`reset(key, params)`, `step(key, state, action,
    params)`), auto-resetting like the wrapped environment. The `info` dict always holds
    `discount` (float32), `terminated`, `truncated` (bool), `final_observation` (float32,
    the observation the transition actually reached, before any auto-reset) and `task`
    (int32).
    """

    def __init__(self, env: Any):
        self.env = env

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def observation_space(self, params: Any) -> Any:
        return self.env.observation_space(params)

    def action_space(self, params: Any) -> Any:
        return self.env.action_space(params)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: Array, params: Any) -> tuple[Array, Any]:
        """Returns (obs float32 `obs_spec.shape`, state)."""
        obs, state = self.env.reset(key, params)
        return jnp.asarray(obs, jnp.float32), state

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self, key: Array, state: Any, action: Array, params: Any
    ) -> tuple[Array, Any, Array, Array, Array, dict[str, Array]]:
        """Returns (obs, state, reward f32[], terminated bool[], truncated bool[], info)."""
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool)
        info = {
            "discount": jnp.asarray(info.get("discount", 1.0 - terminated), jnp.float32),
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": jnp.asarray(info.get("final_observation", obs), jnp.float32),
            "task": jnp.zeros((), jnp.int32),
        }
        reward = jnp.asarray(reward, jnp.float32).reshape(())
        return jnp.asarray(obs, jnp.float32), state, reward, terminated, truncated, info
