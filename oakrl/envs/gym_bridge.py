"""Any gymnasium environment as an auto-resetting stream, for the lab's Python-loop path.

gymnasium environments run in Python, so the lab keeps the agent's step jitted and drives
the environment itself:

    handle = make_gym("CartPole-v1")          # or "gym:CartPole-v1"
    stream = handle.make(seed)
    obs = stream.reset()                      # float32 obs_spec.shape
    obs, reward, terminated, truncated = stream.step(action)

Like the JAX environments the stream auto-resets: when an episode ends, `step` returns
that episode's last reward and flags with the *next* episode's first observation (the
TimeStep contract). Supported: Box observations (any dtype, cast to float32) and Discrete
or Box actions. Box actions are clipped to the space's finite bounds, since many
gymnasium environments assert or misbehave on out-of-range actions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError

PREFIX = "gym:"


class GymStream:
    """One running gymnasium environment that never needs resetting by hand."""

    def __init__(self, env: gym.Env, seed: int):
        self.env = env
        self._seed: int | None = seed  # used by the first reset only, later ones continue
        space = env.action_space
        self._discrete = isinstance(space, gym.spaces.Discrete)
        self._start = int(space.start) if self._discrete else 0
        if not self._discrete:
            self._shape = space.shape
            self._low = np.where(np.isfinite(space.low), space.low, -np.inf).astype(np.float32)
            self._high = np.where(np.isfinite(space.high), space.high, np.inf).astype(np.float32)

    def reset(self) -> np.ndarray:
        """Starts an episode; returns its first observation, float32 obs_spec.shape."""
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return np.asarray(obs, np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool]:
        """(obs, reward, terminated, truncated); obs is the next episode's first on an end."""
        obs, reward, terminated, truncated, _ = self.env.step(self._convert(action))
        terminated, truncated = bool(terminated), bool(truncated)
        if terminated or truncated:
            return self.reset(), float(reward), terminated, truncated
        return np.asarray(obs, np.float32), float(reward), terminated, truncated

    def _convert(self, action: Any) -> Any:
        if self._discrete:
            return int(np.asarray(action).reshape(())) + self._start
        action = np.asarray(action, np.float32).reshape(self._shape)
        return np.clip(action, self._low, self._high)

    def close(self) -> None:
        self.env.close()


class GymHandle(NamedTuple):
    """What the lab needs about a gymnasium environment; `make(seed)` starts a stream."""

    id: str
    obs_spec: ArraySpec
    action_spec: Spec
    make: Callable[[int], GymStream]


def _bound(values: np.ndarray) -> float | tuple[float, ...] | None:
    """A Box bound as one float when uniform (a tuple otherwise, None when infinite)."""
    values = np.asarray(values, np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        return None
    if np.all(values == values[0]):
        return float(values[0])
    return tuple(float(v) for v in values)


def _specs(gym_id: str, env: gym.Env) -> tuple[ArraySpec, Spec]:
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise ConfigError(
            f"gymnasium '{gym_id}' has a {type(obs_space).__name__} observation space; "
            "only Box observations are supported"
        )
    obs_spec = ArraySpec(tuple(int(d) for d in obs_space.shape), jnp.float32)
    if isinstance(act_space, gym.spaces.Discrete):
        return obs_spec, DiscreteSpec(int(act_space.n))
    if isinstance(act_space, gym.spaces.Box):
        shape = tuple(int(d) for d in act_space.shape)
        low, high = _bound(act_space.low), _bound(act_space.high)
        return obs_spec, ArraySpec(shape, jnp.float32, low, high)
    raise ConfigError(
        f"gymnasium '{gym_id}' has a {type(act_space).__name__} action space; "
        "only Discrete and Box actions are supported"
    )


def _make(gym_id: str) -> gym.Env:
    try:
        return gym.make(gym_id)
    except (gym.error.Error, ImportError) as error:
        reason = " ".join(str(error).split())  # one line, whatever gymnasium wrote
        known = gym_id in gym.registry  # then the id is fine and a dependency is missing
        close = [] if known else difflib.get_close_matches(gym_id, list(gym.registry), n=3)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ConfigError(f"cannot make gymnasium environment '{gym_id}': {reason}{hint}") from None


def make_gym(gym_id: str) -> GymHandle:
    """A handle on gymnasium environment `gym_id` (the "gym:" prefix is optional).

    Raises ConfigError (one line) for unknown ids, missing dependencies and unsupported
    spaces (observations must be Box; actions Discrete or Box).
    """
    if not isinstance(gym_id, str):
        raise ConfigError(f"gymnasium environment id must be a string, got {gym_id!r}")
    name = gym_id.removeprefix(PREFIX)
    probe = _make(name)
    try:
        obs_spec, action_spec = _specs(name, probe)
    finally:
        probe.close()

    def make(seed: int) -> GymStream:
        return GymStream(_make(name), seed)

    return GymHandle(PREFIX + name, obs_spec, action_spec, make)
