"""All seeds of a run's gymnasium environment as one vector environment, with schedules.

Schedules (`make_gym(..., schedule=...)`) run on the host between steps, with the same task
order and the same per-task transforms as the JAX schedules (oakrl/envs/schedules.py):
permute (observation permutation per task), reward (reward multiplied by c_k), switch (task k
scales the physical parameter `param` by PHYSICS_SCALES[k % len]) and drift (the scale moves
along a half cosine between consecutive tasks' scales). The physical hook is
`BridgeWrapper.set_physics(scale)`: it multiplies the parameter's values at construction by
`scale`, so a user's own environment joins in by exposing `model.body_mass` /
`model.geom_friction` (MuJoCo) or by overriding `set_physics`.

Checkpoints (`GymVector.snapshot` / `restore`): each environment is pickled (gymnasium's
EzPickle re-creates MuJoCo environments from their arguments), then its exact state is put back:
the MuJoCo integration state (mj_getState / mj_setState: qpos, qvel, act, warm start, time),
the unwrapped environment's RNG (np_random's bit generator state, so future resets draw the
same initial states), the time limit's step count, and the bridge's own counters. Environments
whose state lives elsewhere than in these (a custom simulator holding state outside its
pickled attributes) are restored only as far as pickling them restores them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import numpy as np

from oakrl.envs.schedules import check_schedule, permutations, reward_scales, task_of_segment

# switch/drift on a bridged environment: task k scales the physical parameter by
# PHYSICS_SCALES[k % len] (task 0 the environment as built).
PHYSICS_SCALES = (1.0, 0.5, 2.0, 0.25, 1.5, 0.75, 3.0, 0.125)


class GymSchedule(NamedTuple):
    """A continual schedule run by the host around a vector environment (see the module doc)."""

    kind: str
    every: int
    tasks: int
    order: str
    seed: int

    def task(self, step: int) -> int:
        """The task in force at step `step` (0-based) of every seed's stream."""
        return self.task_of(step // self.every)

    def task_of(self, segment: int) -> int:
        return _task_of(segment, self.tasks, self.order, self.seed)


@functools.lru_cache(maxsize=64)
def _task_of(segment: int, tasks: int, order: str, seed: int) -> int:
    # The JAX schedules' task order for the same seed (cached: asked every step).
    if order == "cyclic" or tasks == 1:
        return segment % tasks
    return int(task_of_segment(segment, tasks, order, jax.random.PRNGKey(seed)))


class GymVector:
    """S seeds' environments as one gymnasium vector environment, auto-resetting on the step
    an episode ends (gymnasium's SAME_STEP mode: that step returns the episode's last reward
    and flags with the next episode's first observation, the TimeStep contract).

        vec = handle.vector([seed_0, ..., seed_S-1])
        obs = vec.reset()                                  # float32 [S, *obs_shape]
        obs, reward, terminated, truncated = vec.step(actions)   # actions [S, ...]

    Environment i is reset with seed seeds[i] once; later resets continue its RNG (as
    GymStream does, so one seed's stream equals GymStream's). With a schedule the task of
    step n is schedule.task(n), applied before the step is taken.
    """

    def __init__(self, handle: Any, seeds: list[int], schedule: GymSchedule | None = None):
        # handle: an oakrl.envs.gym_bridge.GymHandle (not imported: the bridge imports this module)
        self.handle = handle
        self.seeds = [int(s) for s in seeds]
        opts = handle.options
        fns = [handle.make_env for _ in self.seeds]
        mode = gym.vector.AutoresetMode.SAME_STEP
        if opts["vector"] == "loop":
            self.env = _Loop(fns)
        elif opts["vector"] == "async":
            self.env = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="fork", copy=False)
        else:
            # copy=False: gymnasium would deep-copy the observations every step (measured: 627 vs
            # 281 us per step of 8 CartPoles); _encode copies them once, into float32, instead.
            self.env = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode, copy=False)
        space = self.env.single_action_space
        self._discrete = isinstance(space, gym.spaces.Discrete)
        self._start = int(space.start) if self._discrete else 0
        if not self._discrete:
            self._shape = (len(self.seeds), *space.shape)
            self._low = np.where(np.isfinite(space.low), space.low, -np.inf).astype(np.float32)
            self._high = np.where(np.isfinite(space.high), space.high, np.inf).astype(np.float32)
        self.schedule = schedule
        self.t = 0  # steps taken (the schedule's clock)
        self._task = -1
        self._scale = 1.0
        if schedule is not None and schedule.kind == "permute":
            size = math.prod(handle.obs_spec.shape)
            self._perms = permutations(schedule.seed, schedule.tasks, size)
        if schedule is not None and schedule.kind == "reward":
            self._scales = reward_scales(schedule.tasks)

    def reset(self) -> np.ndarray:
        """Starts every environment (seeded); float32 [S, *obs_shape]."""
        self._set_task()
        obs, _ = self.env.reset(seed=self.seeds)
        return self._encode(np.asarray(obs, np.float32))

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(obs [S, ...] float32, reward [S] float32, terminated [S] bool, truncated [S] bool)."""
        self._set_task()
        obs, reward, terminated, truncated, _ = self.env.step(self._convert(actions))
        self.t += 1
        reward = np.asarray(reward, np.float32)
        if self.schedule is not None and self.schedule.kind == "reward":
            reward = reward * self._scales[self._task]
        # Observations are encoded with the task of the next step (as the JAX schedules do).
        self._set_task()
        obs = self._encode(np.asarray(obs, np.float32))
        return obs, reward, np.asarray(terminated, bool), np.asarray(truncated, bool)

    @property
    def task(self) -> int:
        """The task in force for the next step (0 without a schedule)."""
        return self.schedule.task(self.t) if self.schedule is not None else 0

    def _set_task(self) -> None:
        if self.schedule is None:
            self._task = 0
            return
        sch = self.schedule
        segment, offset = divmod(self.t, sch.every)
        task = sch.task_of(segment)
        if sch.kind == "switch" and task != self._task:
            self._physics(PHYSICS_SCALES[task % len(PHYSICS_SCALES)])
        elif sch.kind == "drift":
            a = PHYSICS_SCALES[task % len(PHYSICS_SCALES)]
            b = PHYSICS_SCALES[sch.task_of(segment + 1) % len(PHYSICS_SCALES)]
            w = 0.5 - 0.5 * math.cos(math.pi * offset / sch.every)
            self._physics((1 - w) * a + w * b)
        self._task = task

    def _physics(self, scale: float) -> None:
        if scale != self._scale or self._task < 0:
            self.env.call("set_physics", float(scale))
            self._scale = scale

    def _encode(self, obs: np.ndarray) -> np.ndarray:
        obs = np.array(obs, np.float32)  # a copy: the vector environment reuses its buffer
        if self.schedule is None or self.schedule.kind != "permute":
            return obs
        flat = obs.reshape(len(obs), -1)[:, self._perms[self._task]]
        return flat.reshape(obs.shape)

    def _convert(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        if self._discrete:
            return actions.reshape(-1).astype(np.int64) + self._start
        return np.clip(actions.astype(np.float32).reshape(self._shape), self._low, self._high)

    def snapshot(self) -> list[bytes]:
        """Every environment's exact state (see the module docstring), one bytes each."""
        return list(self.env.call("snapshot"))

    def restore(self, snapshots: list[bytes], t: int) -> None:
        """Puts back the environments' states of `snapshot()` taken after `t` steps."""
        if len(snapshots) != len(self.seeds):
            raise ValueError(f"{len(snapshots)} environment snapshots for {len(self.seeds)} seeds")
        if isinstance(self.env, (gym.vector.SyncVectorEnv, _Loop)):
            for env, data in zip(self.env.envs, snapshots, strict=True):
                env.get_wrapper_attr("load")(data)
        else:  # AsyncVectorEnv.call sends the same arguments to every worker: one at a time
            for i, data in enumerate(snapshots):
                self._call_one(i, "load", data)
        self.t = t
        self._task, self._scale = -1, 1.0
        self._set_task()

    def _call_one(self, i: int, name: str, *args: Any) -> Any:
        env = self.env
        env._assert_is_running()
        env.parent_pipes[i].send(("_call", (name, args, {})))
        result, ok = env.parent_pipes[i].recv()
        if not ok:
            raise RuntimeError(f"environment {i}: {name} failed: {result}")
        return result

    def close(self) -> None:
        self.env.close()


class _Loop:
    """The part of gymnasium's vector API that GymVector uses, as a plain loop over the
    environments with the same-step auto-reset. SyncVectorEnv does the same work with per-step
    bookkeeping and a key-by-key merge of every environment's info dict that this bridge never
    reads; measured slower with 8 CartPoles and with MuJoCo (benchmarks/bridge.py)."""

    def __init__(self, fns: list[Callable[[], gym.Env]]):
        self.envs = [fn() for fn in fns]
        self.single_action_space = self.envs[0].action_space

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict]:
        return np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, seed, strict=True)]), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        n = len(self.envs)
        obs, reward = [None] * n, np.empty(n, np.float64)
        terminated, truncated = np.empty(n, bool), np.empty(n, bool)
        for i, env in enumerate(self.envs):
            o, reward[i], terminated[i], truncated[i], _ = env.step(actions[i])
            obs[i] = env.reset()[0] if terminated[i] or truncated[i] else o
        return np.stack(obs), reward, terminated, truncated, {}

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        return tuple(env.get_wrapper_attr(name)(*args) for env in self.envs)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def gym_schedule(kind: str, every: int, tasks: int, order: str, seed: int) -> GymSchedule:
    """A schedule for a bridged environment (ConfigError, one line, on bad settings)."""
    every, tasks = check_schedule(kind, every, tasks, order)
    return GymSchedule(kind, every, tasks, order, int(seed))
