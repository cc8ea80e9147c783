"""Environment ids -> `EnvHandle`s, with an optional continual schedule on top.

    handle = make_env("CartPole-v1", schedule="switch", every=50_000, tasks=2)
    obs, state = handle.env.reset(key, handle.params)
    obs, state, reward, terminated, truncated, info = handle.env.step(
        key, state, action, handle.params)            # info["task"]: int32 task index

gymnasium environments ("gym:<id>") do not run in JAX and go through
`oakrl.envs.gym_bridge.make_gym` instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnax

from oakrl.envs.adapter import GymnaxAdapter, specs_of
from oakrl.envs.base import EnvHandle
from oakrl.envs.coded_grid import CodedGrid
from oakrl.envs.foraging import Foraging
from oakrl.envs.grids import NINE_ROOMS, TWO_ROOMS, Grid
from oakrl.envs.multi import MultiEnvHandle, joint_view
from oakrl.envs.rooms import Rooms
from oakrl.envs.schedules import Scheduled, as_int, check_schedule
from oakrl.envs.variants import VARIANTS, Variants, foraging_variants
from oakrl.errors import ConfigError


class _Entry(NamedTuple):
    make: Callable[[], tuple[Any, Any]]  # () -> (gymnax env, default params)
    description: str
    continuing: bool


def _gymnax(env_id: str) -> Callable[[], tuple[Any, Any]]:
    return lambda: gymnax.make(env_id)


def _foraging() -> tuple[Any, Any]:
    env = Foraging()
    return env, env.default_params


def _rooms() -> tuple[Any, Any]:
    env = Rooms()
    return env, env.default_params


def _grid(layout) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        env = Grid(layout)
        return env, env.default_params

    return make


def _coded_grid() -> tuple[Any, Any]:
    env = CodedGrid()
    return env, env.default_params


def _text_world() -> tuple[Any, Any]:
    from oakrl.envs.text_world import TextWorld

    env = TextWorld()
    return env, env.default_params


_ENVS: dict[str, _Entry] = {
    "CartPole-v1": _Entry(_gymnax("CartPole-v1"), "balance a pole on a cart (gymnax)", False),
    "Acrobot-v1": _Entry(_gymnax("Acrobot-v1"), "swing a two-link arm up (gymnax)", False),
    "MountainCar-v0": _Entry(
        _gymnax("MountainCar-v0"), "drive an underpowered car up a hill (gymnax)", False
    ),
    "Pendulum-v1": _Entry(_gymnax("Pendulum-v1"), "swing up and hold a pendulum, Box action (gymnax)", False),
    "MountainCarContinuous-v0": _Entry(
        _gymnax("MountainCarContinuous-v0"), "mountain car with a Box action (gymnax)", False
    ),
    "Asterix-MinAtar": _Entry(_gymnax("Asterix-MinAtar"), "MinAtar Asterix, 10x10x4 grid, 5 actions", False),
    "Breakout-MinAtar": _Entry(
        _gymnax("Breakout-MinAtar"), "MinAtar Breakout, 10x10x4 grid, 3 actions", False
    ),
    "Freeway-MinAtar": _Entry(_gymnax("Freeway-MinAtar"), "MinAtar Freeway, 10x10x7 grid, 3 actions", False),
    "Seaquest-MinAtar": _Entry(
        _gymnax("Seaquest-MinAtar"), "MinAtar Seaquest, 10x10x10 grid, 6 actions", False
    ),
    "SpaceInvaders-MinAtar": _Entry(
        _gymnax("SpaceInvaders-MinAtar"), "MinAtar Space Invaders, 10x10x6 grid, 4 actions", False
    ),
    "Foraging-v0": _Entry(
        _foraging,
        "continuing 8x8 torus foraging, item values rotate over time, 8x8x3 grid, 4 actions",
        True,
    ),
    "Rooms-v0": _Entry(
        _rooms,
        "four rooms (13x13), reach the goal; switch moves the goal between rooms, one-hot cell obs",
        False,
    ),
    "TwoRooms-v0": _Entry(
        _grid(TWO_ROOMS),
        "Sutton et al. 2023's two rooms (8x15): fixed start, goal +1, a -1 block before the hallway; "
        "one-hot cell obs",
        False,
    ),
    "NineRooms-v0": _Entry(
        _grid(NINE_ROOMS),
        "nine 6x6 rooms (22x22, 336 cells, 12 hallways), reach the goal; switch moves it between rooms",
        False,
    ),
    "CodedGrid-v0": _Entry(
        _coded_grid,
        "7x7 grid, reach the centre; the cell is seen through a fixed dense 64-bit random code "
        "(permute re-codes it)",
        False,
    ),
    "TextWorld-v0": _Entry(
        _text_world,
        "find the apple in 5 rooms; sentences in and out (one-hot over 15 sentences, 4 actions)",
        False,
    ),
}


def _market(learners: int) -> MultiEnvHandle:
    from oakrl.envs.market import make_market

    return make_market(num_sellers=learners)


def _shared_foraging(learners: int) -> MultiEnvHandle:
    from oakrl.envs.shared_foraging import make_shared_foraging

    return make_shared_foraging(num_learners=learners)


class _MultiEntry(NamedTuple):
    make: Callable[[int], MultiEnvHandle]  # learners -> the world's handle
    description: str
    min_learners: int


# Worlds of several learners (oakrl/envs/multi.py); `make_env(..., learners=N)` gives their
# single-agent view (`JointView`) for a joint agent of N learners (oakrl/agents/joint.py).
_MULTI: dict[str, _MultiEntry] = {
    "Market-v0": _MultiEntry(
        _market,
        "Calvano et al. 2020 repeated Bertrand market, logit demand, 15 prices; N sellers (--learners)",
        2,
    ),
    "SharedForaging-v0": _MultiEntry(
        _shared_foraging,
        "N learners forage on one 8x8 torus; items one eats are gone for the others (--learners)",
        2,
    ),
}


def list_envs() -> list[tuple[str, str]]:
    """Every environment id `make_env` accepts, with a one-line description."""
    return [(env_id, entry.description) for env_id, entry in _ENVS.items()] + [
        (env_id, entry.description) for env_id, entry in _MULTI.items()
    ]


def _make_multi(env_id: str, schedule: str | None, learners: int) -> EnvHandle:
    entry = _MULTI[env_id]
    if schedule is not None:
        raise ConfigError(f"'{env_id}' takes no schedule yet (multi-learner worlds run unscheduled)")
    if learners < entry.min_learners:
        raise ConfigError(f"'{env_id}' needs --learners >= {entry.min_learners}, got {learners}")
    world = entry.make(learners)
    view, obs_spec = joint_view(world)
    return EnvHandle(
        env_id, view, world.params, obs_spec, world.action_spec, world.continuing, 1,
        world.description, learners, world.world_metrics,
    )  # fmt: skip


def _variants_for(env_id: str, env: Any) -> Variants | None:
    if isinstance(env, Foraging):
        return foraging_variants(env.num_kinds)
    return VARIANTS.get(env_id)


def check_env_id(env_id: str) -> None:
    """ConfigError (one line, with close matches) unless `env_id` is a registered JAX environment."""
    if not isinstance(env_id, str):
        raise ConfigError(f"environment id must be a string, got {env_id!r}")
    if env_id.startswith("gym:"):
        raise ConfigError(f"'{env_id}' is a gymnasium environment: use oakrl.envs.make_gym, not make_env")
    if env_id not in _ENVS and env_id not in _MULTI:
        ids = [*_ENVS, *_MULTI]
        close = difflib.get_close_matches(env_id, ids, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown environment '{env_id}'{hint}; valid: {', '.join(ids)}")


def make_env(
    env_id: str,
    schedule: str | None = None,
    every: int = 50_000,
    tasks: int = 2,
    order: str = "cyclic",
    seed: int = 0,
    learners: int = 1,
) -> EnvHandle:
    """The environment `env_id`, optionally under a continual schedule.

    schedule: None, or one of "switch", "drift", "permute", "reward" (see
      oakrl/envs/schedules.py); the task changes every `every` steps among `tasks` tasks,
      in `order` "cyclic" or "random" (drawn from `seed`, which also draws permutations).
    learners: how many learners share the world; > 1 only for multi-learner worlds (Market-v0),
      whose handle is then their single-agent view (oakrl/envs/multi.py, `JointView`).
    Raises ConfigError (one line) on an unknown id or schedule, or impossible settings.
    """
    check_env_id(env_id)
    if env_id in _MULTI:
        return _make_multi(env_id, schedule, learners)
    if learners != 1:
        raise ConfigError(
            f"'{env_id}' is a world of one learner; --learners > 1 needs one of: {', '.join(_MULTI)}"
        )
    if schedule is not None:
        every, tasks = check_schedule(schedule, every, tasks, order)
    seed = as_int("seed", seed)

    entry = _ENVS[env_id]
    raw_env, raw_params = entry.make()
    obs_spec, action_spec = specs_of(raw_env, raw_params)
    env: Any = GymnaxAdapter(raw_env)
    params: Any = raw_params
    description = entry.description
    if schedule is None:
        return EnvHandle(env_id, env, params, obs_spec, action_spec, entry.continuing, 1, description)

    variants = _variants_for(env_id, raw_env)
    if schedule in ("switch", "drift") and variants is None:
        raise ConfigError(
            f"'{env_id}' has no task variants for schedule '{schedule}'; it works on: "
            f"{', '.join(VARIANTS)} (permute and reward work on every environment)"
        )
    wrapper = Scheduled(env, schedule, every, tasks, order, variants)
    params = wrapper.make_params(raw_params, obs_spec.shape, seed)
    description += f"; {schedule} every {every} steps over {tasks} tasks ({order})"
    return EnvHandle(env_id, wrapper, params, obs_spec, action_spec, entry.continuing, tasks, description)
