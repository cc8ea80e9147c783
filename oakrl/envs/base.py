"""What the lab needs to know about an environment."""

from __future__ import annotations

from typing import Any, NamedTuple

from oakrl.core.types import ArraySpec, Spec


class EnvHandle(NamedTuple):
    """A pure-JAX environment in gymnax's functional API, plus what the lab needs about it.

    env: `reset(key, params) -> (obs, state)` and
         `step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`,
         auto-resetting: on an episode's end `obs` is the next episode's first observation.
         `info["task"]` is always present: an int32 scalar, the index of the task in force
         (0 when there is no schedule).
    params: the environment parameters passed to reset/step.
    """

    id: str
    env: Any
    params: Any
    obs_spec: ArraySpec
    action_spec: Spec
    continuing: bool  # never resets: returns are reported over fixed windows instead
    num_tasks: int  # 1 without a schedule
    description: str
    # Multi-learner worlds (oakrl/envs/multi.py): learners sharing the world (1: a single agent),
    # and the names of the per-world metrics in the step's info that the lab records per chunk.
    num_learners: int = 1
    world_metrics: tuple[str, ...] = ()
