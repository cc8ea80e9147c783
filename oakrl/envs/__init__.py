"""Environments: pure-JAX worlds (gymnax, Foraging), continual schedules, gymnasium bridge.

make_env(env_id, schedule=None, every=50_000, tasks=2, order="cyclic", seed=0)
    -> EnvHandle (gymnax functional API, info["task"] always present)
list_envs() -> [(env_id, description), ...]
make_gym(gym_id, options=None) -> GymHandle, whose make(seed) gives an auto-resetting GymStream
    and vector(seeds, schedule=None) all seeds as one auto-resetting GymVector
"""

from oakrl.envs.base import EnvHandle
from oakrl.envs.gym_bridge import GymHandle, GymStream, make_gym
from oakrl.envs.gym_vector import GymSchedule, GymVector
from oakrl.envs.registry import list_envs, make_env

__all__ = [
    "EnvHandle",
    "GymHandle",
    "GymSchedule",
    "GymStream",
    "GymVector",
    "list_envs",
    "make_env",
    "make_gym",
]
