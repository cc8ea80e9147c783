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

The lab steps all seeds of a run as one vector environment (oakrl/envs/gym_vector.py: the
vector modes, schedules on bridged environments, checkpoints). Environment options
(`make_gym(id, options)`, `--env-opt KEY=VALUE`, a run's `env_options`):

    time_feature  append the time in the episode, -0.5 + k / max_episode_steps after k steps,
                  as one more observation entry (stream-x's MuJoCo setting; off by default).
                  stream-x appends it after normalising: give stream-ac `obs_raw_tail=1` so
                  that its normaliser leaves it raw
    vector        loop (default: a plain loop), sync (gymnasium's SyncVectorEnv) or async
                  (AsyncVectorEnv, one process per seed)
    param         what a switch/drift schedule changes: mass (every body's mass) or friction
                  (every geom's sliding friction), scaled per task (MuJoCo environments)
"""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import ArraySpec, DiscreteSpec, Spec
from oakrl.envs.gym_vector import GymVector
from oakrl.errors import ConfigError

PREFIX = "gym:"

# The environment options a gymnasium environment takes (name -> (default, valid values, what)).
ENV_OPTIONS: dict[str, tuple[Any, tuple[Any, ...], str]] = {
    "time_feature": (False, (False, True), "append -0.5 + steps in episode / max_episode_steps"),
    "vector": (
        "loop",
        ("loop", "sync", "async"),
        "step the seeds in a plain loop, gymnasium's SyncVectorEnv, or one process each (AsyncVectorEnv)",
    ),
    "param": ("mass", ("mass", "friction"), "what switch/drift schedules scale (MuJoCo)"),
}


def check_env_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The environment options with defaults filled in; ConfigError (one line) on a bad one."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ConfigError(f"env_options must be a table of environment options, got {options!r}")
    out = {}
    for name, value in options.items():
        if name not in ENV_OPTIONS:
            raise ConfigError(f"unknown environment option {name!r}; valid: {', '.join(ENV_OPTIONS)}")
        valid = ENV_OPTIONS[name][1]
        if isinstance(value, str) and isinstance(valid[0], bool) and value.lower() in ("true", "false"):
            value = value.lower() == "true"  # from --env-opt time_feature=true
        if value not in valid or type(value) is not type(valid[0]):
            raise ConfigError(
                f"environment option {name} must be one of {', '.join(map(str, valid))}, got {value!r}"
            )
        out[name] = value
    return {name: out.get(name, default) for name, (default, _, _) in ENV_OPTIONS.items()}


class BridgeWrapper(gym.Wrapper):
    """The bridge's per-environment wrapper: the time feature, the physical-parameter hook and
    exact snapshots. Lives inside each sub-environment of the vector environment, so that
    `call` reaches it in sync and async vector environments alike."""

    def __init__(self, env: gym.Env, time_feature: bool, param: str):
        super().__init__(env)
        self._time_feature = time_feature
        self._limit = env.spec.max_episode_steps if env.spec is not None else None
        if time_feature:
            if not self._limit:
                name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
                raise ConfigError(f"time_feature needs an environment with a time limit; {name} has none")
            box = env.observation_space
            low = np.append(np.asarray(box.low, np.float32).reshape(-1), np.float32(-0.5))
            high = np.append(np.asarray(box.high, np.float32).reshape(-1), np.float32(0.5))
            if len(box.shape) != 1:
                raise ConfigError("time_feature needs a flat (1-D) observation")
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._k = 0  # steps taken in the episode
        self._param = param
        self._base: np.ndarray | None = None  # the parameter's values as built

    def _obs(self, obs: Any) -> Any:
        if not self._time_feature:
            return obs
        return np.append(np.asarray(obs, np.float32), np.float32(-0.5 + self._k / self._limit))

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._k = 0
        return self._obs(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._k += 1
        return self._obs(obs), reward, terminated, truncated, info

    def _target(self) -> np.ndarray:
        model = getattr(self.env.unwrapped, "model", None)
        if model is None or not hasattr(model, "body_mass"):
            raise ConfigError(
                f"switch/drift on a gymnasium environment need a MuJoCo model (body_mass, geom_friction); "
                f"{self.env.unwrapped.__class__.__name__} has none: override BridgeWrapper.set_physics"
            )
        return model.body_mass if self._param == "mass" else model.geom_friction[:, 0]

    def set_physics(self, scale: float) -> None:
        """Sets the physical parameter to `scale` times its value as built (in place)."""
        target = self._target()
        if self._base is None:
            self._base = np.array(target, copy=True)
        target[...] = self._base * scale

    def snapshot(self) -> bytes:
        """The environment's whole state as bytes (see the module docstring for what is exact)."""
        return pickle.dumps(_capture(self))

    def load(self, data: bytes) -> None:
        """Replaces this environment's state by a snapshot's."""
        _apply(self, pickle.loads(data))


def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


# Per-wrapper counters that gymnasium keeps outside the simulator (TimeLimit, OrderEnforcing, ...).
_COUNTERS = ("_elapsed_steps", "_has_reset", "_k", "_base", "checked_reset", "checked_step")


def _capture(bridge: BridgeWrapper) -> dict[str, Any]:
    chain = _wrappers(bridge)
    inner = chain[-1]
    state: dict[str, Any] = {
        "counters": [{k: getattr(w, k) for k in _COUNTERS if k in vars(w)} for w in chain],
        "rng": inner._np_random.bit_generator.state if inner._np_random is not None else None,
        "inner": None,
    }
    if hasattr(inner, "model") and hasattr(inner, "data"):
        import mujoco  # only MuJoCo environments have model and data

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(inner.model, spec), np.float64)
        mujoco.mj_getState(inner.model, inner.data, buf, spec)
        state["mujoco"] = buf
        state["physics"] = (np.array(inner.model.body_mass), np.array(inner.model.geom_friction))
    else:
        state["inner"] = pickle.dumps(inner)  # classic control and the like: attributes are the state
    return state


def _apply(bridge: BridgeWrapper, state: dict[str, Any]) -> None:
    chain = _wrappers(bridge)
    if state["inner"] is not None:
        chain[-2].env = pickle.loads(state["inner"])  # the innermost wrapper now wraps the copy
        chain = _wrappers(bridge)
    inner = chain[-1]
    for w, counters in zip(chain, state["counters"], strict=True):
        for k, v in counters.items():
            setattr(w, k, v)
    if state["rng"] is not None:
        if inner._np_random is None:
            inner._np_random, _ = gym.utils.seeding.np_random(0)
        inner._np_random.bit_generator.state = state["rng"]
    if "mujoco" in state:
        import mujoco

        inner.model.body_mass[...], inner.model.geom_friction[...] = state["physics"]
        mujoco.mj_setState(inner.model, inner.data, state["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)


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
    """What the lab needs about a gymnasium environment; `make(seed)` starts a stream,
    `vector(seeds, schedule)` all seeds of a run as one vector environment."""

    id: str
    obs_spec: ArraySpec
    action_spec: Spec
    make: Callable[[int], GymStream]
    make_env: Callable[[], gym.Env] = None  # one wrapped environment (BridgeWrapper outermost)
    options: dict[str, Any] = {}

    def vector(self, seeds: list[int], schedule=None):
        """All `seeds` as one GymVector (oakrl/envs/gym_vector.py) under `schedule`."""
        return GymVector(self, seeds, schedule)


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


def make_gym(gym_id: str, options: dict[str, Any] | None = None) -> GymHandle:
    """A handle on gymnasium environment `gym_id` (the "gym:" prefix is optional), with the
    environment options of ENV_OPTIONS (module docstring).

    Raises ConfigError (one line) for unknown ids, missing dependencies, bad options and
    unsupported spaces (observations must be Box; actions Discrete or Box).
    """
    if not isinstance(gym_id, str):
        raise ConfigError(f"gymnasium environment id must be a string, got {gym_id!r}")
    name = gym_id.removeprefix(PREFIX)
    opts = check_env_options(options)

    def make_env() -> gym.Env:
        return BridgeWrapper(_make(name), opts["time_feature"], opts["param"])

    probe = make_env()
    try:
        obs_spec, action_spec = _specs(name, probe)
    finally:
        probe.close()

    def make(seed: int) -> GymStream:
        return GymStream(make_env(), seed)

    return GymHandle(PREFIX + name, obs_spec, action_spec, make, make_env, opts)
