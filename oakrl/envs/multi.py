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

import jax.numpy as jnp
import numpy as np

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


class JointView:
    """A world of N learners seen as one single-agent world (gymnax API), for a joint agent.

    The lab drives one agent per stream; `oakrl.agents.joint` composes N learners into that one
    agent, and this view hands it what each learner needs in a single array:

      observation [N, D + 1] float32: row i = learner i's observation (flattened, D entries)
        followed by the reward learner i earned on the transition that led here;
      action [N] int32: one action per learner, applied at once;
      reward: the learners' mean reward (what the lab's returns report: the world's average);
      info: "task", plus the world's `world_metrics` (e.g. the market's price, profit_gain).
    """

    def __init__(self, world: Any, num_learners: int, world_metrics: tuple[str, ...]):
        self.world = world
        self.num_learners = num_learners
        self.world_metrics = world_metrics

    def _view(self, obs, rewards):
        flat = obs.reshape(self.num_learners, -1).astype(jnp.float32)
        return jnp.concatenate([flat, rewards.astype(jnp.float32)[:, None]], axis=1)

    def reset(self, key, params):
        obs, state = self.world.reset(key, params)
        return self._view(obs, jnp.zeros(self.num_learners)), state

    def step(self, key, state, action, params):
        obs, state, rewards, terminated, truncated, info = self.world.step(key, state, action, params)
        out = {"task": info["task"], **{k: info[k] for k in self.world_metrics}}
        return self._view(obs, rewards), state, rewards.mean(), terminated, truncated, out


def joint_view(handle: MultiEnvHandle) -> tuple[JointView, ArraySpec]:
    """The single-agent view of a multi-learner world and its observation spec [N, D + 1]."""
    d = int(np.prod(handle.obs_spec.shape))
    view = JointView(handle.env, handle.num_learners, handle.world_metrics)
    return view, ArraySpec((handle.num_learners, d + 1), jnp.float32)
