"""Worlds of many learners: the multi-agent protocol (gymnax style, pure functions over params).

A multi-agent world is gymnax's functional API with a leading learner axis N on what is
per learner:

    obs, state = env.reset(key, params)                       # obs: [N, *obs_shape]
    obs, state, rewards, terminated, truncated, info = env.step(key, state, actions, params)
        # actions: [N] (int32 for discrete actions), rewards: [N] float32,
        # terminated, truncated: bool scalars (the world ends for everyone at once),
        # info: flat dict of scalars or [N] arrays; info["task"] is an int32 scalar as for one agent.

Each learner i sees `obs[i]` (its own view; a shared view repeats one array N times) and earns
`rewards[i]`. All learners act at once: step applies the N actions simultaneously, so no
learner sees another's action of the same period before choosing its own. Worlds auto-reset
as single-agent ones do (continuing worlds never reset).

`MultiEnvHandle` is what the lab and the studies need about such a world; `world_metrics`
turns a batch of `info`s into per-world numbers (e.g. the market's mean price, profit gain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from oakrl.core.types import ArraySpec, Spec


class MultiEnvHandle(NamedTuple):
    """A pure-JAX world of `num_learners` learners and what the lab needs about it.

    obs_spec, action_spec: one learner's (every learner has the same here).
    world_metrics: {name: fn(info arrays [..., T] averaged over a window) -> value}; the
      names the world reports per window beside each learner's reward (e.g. "profit_gain").
    """

    id: str
    env: Any
    params: Any
    num_learners: int
    obs_spec: ArraySpec
    action_spec: Spec
    continuing: bool
    description: str
    world_metrics: tuple[str, ...] = ()
    make_params: Callable[..., Any] | None = None  # (**variant options) -> params
