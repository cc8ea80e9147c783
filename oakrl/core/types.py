"""Types every part of oakrl shares: what the world gives, what an agent is.

An agent is a pair of pure functions over one pytree state (optax style):

    state = agent.init(key, obs_spec, action_spec)
    state, action, info = agent.step(state, timestep, key)   # learns, then acts

`step` is the only way to use an agent. It first learns from the transition that ends
at `timestep` (the previous observation and action are in `state`), then chooses the next
action. There is no training or evaluation mode.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

PyTree = Any
Array = jax.Array


class TimeStep(NamedTuple):
    """What the environment hands the agent after each action.

    observation: the observation to act on now, shape `obs_spec.shape`. When an episode
      has just ended this is already the first observation of the next episode.
    reward: scalar reward of the transition that just happened.
    terminated: the episode reached a terminal state (no bootstrapping past it).
    truncated: the episode was cut by a time limit. Like the stream-x reference we stop
      bootstrapping here too; give the agent a time feature to keep this Markov.
    """

    observation: Array
    reward: Array
    terminated: Array
    truncated: Array

    @property
    def done(self) -> Array:
        return jnp.logical_or(self.terminated, self.truncated)


class ArraySpec(NamedTuple):
    """Observation or continuous-action spec: shape, dtype and (for actions) bounds."""

    shape: tuple[int, ...]
    dtype: Any = jnp.float32
    low: float | None = None
    high: float | None = None


class DiscreteSpec(NamedTuple):
    """A discrete action set {0, ..., num_values - 1}."""

    num_values: int
    dtype: Any = jnp.int32


Spec = ArraySpec | DiscreteSpec


class InitFn(Protocol):
    def __call__(self, key: Array, obs_spec: ArraySpec, action_spec: Spec) -> PyTree: ...


class StepFn(Protocol):
    def __call__(
        self, state: PyTree, timestep: TimeStep, key: Array
    ) -> tuple[PyTree, Array, dict[str, Array]]: ...


class Agent(NamedTuple):
    """A streaming agent: `init` builds its whole state, `step` learns then acts.

    `info` returned by `step` is a flat dict of scalar diagnostics (TD error, effective
    step size, ...) which the lab averages into its metrics.
    """

    name: str
    init: InitFn
    step: StepFn
    config: Any  # its typed, frozen config (an oakrl.core.config.Config); to_dict() for JSON


def first_timestep(observation: Array) -> TimeStep:
    """The timestep that starts a stream: no reward, nothing ended."""
    return TimeStep(
        observation=observation,
        reward=jnp.zeros((), jnp.float32),
        terminated=jnp.zeros((), bool),
        truncated=jnp.zeros((), bool),
    )
