"""The streaming skeleton: what every streaming agent does around its learner, written once.

Each call to an agent's `step(state, ts, key)`:
  1. the learner may adjust the timestep first (`Learner.observe`, e.g. a tool's cost);
  2. the observation and reward update the running normalisers and come out normalised
     (oakrl/learn/normalize.py, as the config's `normalize_obs` and `scale_reward` say);
  3. the learner learns from the last transition (s, a, r, s', done), masked out before the
     first one (`learn` = 0), resets its traces where the episode ended, and acts in s';
  4. the action and s' become the previous transition's, and the step count advances.

An agent supplies a `Learner` (its own state and step) and gets `Agent(name, init, step, config)`:

    def my_agent(config: MyConfig) -> Agent:
        def init(key, obs_spec, action_spec) -> Start: ...
        def step(learner_state, t: Transition, key) -> (learner_state, action, info): ...
        return streaming("my-agent", config, Learner(init, step))

OaK is not built on it: it learns linearly from the raw observation (no normalisers, which
would turn its one-hot codes dense) and skips truncated transitions rather than bootstrapping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.agents.common import StreamOptions
from oakrl.core.types import Agent, ArraySpec, Spec, TimeStep
from oakrl.learn.normalize import Normalizers, normalizers_init, preprocess


class StreamState(NamedTuple):
    """An agent's whole state: its learner's, and the bookkeeping every streaming agent needs.

    The learner's fields read through (`state.q`, `state.policy`): `state.learner.q` in full.
    """

    learner: Any  # the agent's own state: parameters, optimiser states, memories
    norm: Normalizers
    prev_obs: jax.Array  # [*obs_shape] normalised observation the last action was taken in
    prev_action: jax.Array  # [] int32 or [action_dim] float32
    has_prev: jax.Array  # [] bool: a transition exists to learn from
    steps: jax.Array  # [] int32 steps taken

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.learner, name)


class Transition(NamedTuple):
    """The last transition as a learner sees it (normalised), and this step's facts."""

    obs: jax.Array  # [*obs_shape] s, normalised
    action: jax.Array  # a taken in s
    reward: jax.Array  # [] float32 r, scaled
    next_obs: jax.Array  # [*obs_shape] s', normalised with the statistics just updated
    done: jax.Array  # [] bool: the episode ended with s' (terminated or truncated)
    learn: jax.Array  # [] float32: 1 when (s, a, r, s') is a real transition, 0 at the first step
    has_prev: jax.Array  # [] bool: the same as a mask
    steps: jax.Array  # [] int32 steps taken before this one
    ts: TimeStep  # the timestep as the world gave it (raw observation and reward)
    norm: Normalizers  # the normalisers after this timestep


class Start(NamedTuple):
    """What a learner's `init` returns."""

    learner: Any  # the learner's initial state
    prev_action: jax.Array  # a zero action of the right shape and dtype
    norm: Normalizers | None = None  # initial normalisers; None: fresh ones (a prior may fit them)


class Learner(NamedTuple):
    init: Callable[[jax.Array, ArraySpec, Spec], Start]
    # (learner state, transition, key) -> (learner state, action in s', info)
    step: Callable[[Any, Transition, jax.Array], tuple[Any, jax.Array, dict]]
    # (learner state, timestep) -> the timestep to normalise and learn from; None: as given
    observe: Callable[[Any, TimeStep], TimeStep] | None = None


def zero_action(action_spec: Spec) -> jax.Array:
    if isinstance(action_spec, ArraySpec):
        return jnp.zeros(action_spec.shape, jnp.float32)
    return jnp.zeros((), jnp.int32)


def start_state(start: Start, obs_spec: ArraySpec) -> StreamState:
    """The skeleton's initial state around a learner's start."""
    return StreamState(
        learner=start.learner,
        norm=start.norm if start.norm is not None else normalizers_init(obs_spec),
        prev_obs=jnp.zeros(obs_spec.shape, jnp.float32),
        prev_action=start.prev_action,
        has_prev=jnp.zeros((), bool),
        steps=jnp.zeros((), jnp.int32),
    )


def stream_step(cfg: StreamOptions, learner: Learner):
    """The skeleton's step around `learner` (see the module docstring)."""

    # Actor-critic configs may keep the last observation entries (a time feature) unnormalised.
    raw_tail = int(getattr(cfg, "obs_raw_tail", 0))

    def step(state: StreamState, ts: TimeStep, key: jax.Array):
        seen = learner.observe(state.learner, ts) if learner.observe is not None else ts
        norm, obs, reward = preprocess(
            state.norm, seen, cfg.gamma, cfg.normalize_obs, cfg.scale_reward, raw_tail
        )
        t = Transition(
            obs=state.prev_obs,
            action=state.prev_action,
            reward=reward,
            next_obs=obs,
            done=ts.done,
            learn=state.has_prev.astype(jnp.float32),
            has_prev=state.has_prev,
            steps=state.steps,
            ts=ts,
            norm=norm,
        )
        inner, action, info = learner.step(state.learner, t, key)
        new_state = StreamState(
            learner=inner,
            norm=norm,
            prev_obs=obs,
            prev_action=action,
            has_prev=jnp.ones((), bool),
            steps=state.steps + 1,
        )
        return new_state, action, info

    return step


def streaming(name: str, cfg: StreamOptions, learner: Learner) -> Agent:
    """The agent `name`: the skeleton around `learner`, configured by `cfg`."""

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> StreamState:
        return start_state(learner.init(key, obs_spec, action_spec), obs_spec)

    return Agent(name, init, stream_step(cfg, learner), cfg)
