"""Environments: registry, gymnax adapter, Foraging, continual schedules, gymnasium bridge.

Every jit here is a compile on a shared 2-core machine, so each test compiles once or twice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.core.types import ArraySpec, DiscreteSpec
from oakrl.envs import list_envs, make_env, make_gym
from oakrl.envs.foraging import Foraging, ForagingState, item_values
from oakrl.envs.schedules import permutations, reward_scales, task_of_segment
from oakrl.envs.variants import VARIANTS, blend, select
from oakrl.errors import ConfigError

ALL_IDS = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Foraging-v0",
    "Rooms-v0",
    "TwoRooms-v0",
    "NineRooms-v0",
    "CodedGrid-v0",
    "TextWorld-v0",
]
# worlds of several learners (make_env(..., learners=N)); tests/test_market.py covers them
MULTI_IDS = ["Market-v0", "SharedForaging-v0"]


def _action(spec, key):
    """A random valid action for a spec."""
    if isinstance(spec, DiscreteSpec):
        return jax.random.randint(key, (), 0, spec.num_values)
    return jax.random.uniform(key, spec.shape, minval=spec.low, maxval=spec.high)


def _rollout(handle, steps: int, action=None):
    """A jittable (key -> outputs of every step) rollout; random actions unless given."""

    def run(key):
        obs0, state = handle.env.reset(key, handle.params)

        def body(carry, key):
            state, _ = carry
            key_act, key_step = jax.random.split(key)
            a = _action(handle.action_spec, key_act) if action is None else action
            obs, new_state, reward, term, trunc, info = handle.env.step(key_step, state, a, handle.params)
            out = dict(obs=obs, state=state, reward=reward, term=term, trunc=trunc, info=info)
            out["key"], out["action"] = key_step, a
            return (new_state, obs), out

        _, outs = jax.lax.scan(body, (state, obs0), jax.random.split(key, steps))
        return obs0, outs

    return run


# ---------------------------------------------------------------- registry and errors


def test_registry_lists_every_id_with_a_description():
    listed = dict(list_envs())
    assert sorted(listed) == sorted(ALL_IDS + MULTI_IDS)
    assert all(isinstance(d, str) and d and "\n" not in d for d in listed.values())


def _one_step(handle):
    def go(key):
        obs0, state = handle.env.reset(key, handle.params)
        a = _action(handle.action_spec, key)
        return obs0, handle.env.step(key, state, a, handle.params)

    return jax.jit(go)(jax.random.key(0))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_env_resets_and_steps_under_jit(env_id):
    handle = make_env(env_id)
    assert handle.id == env_id and handle.num_tasks == 1
    assert handle.continuing == (env_id == "Foraging-v0")
    assert handle.obs_spec.dtype == jnp.float32
    obs0, (obs, _, reward, term, trunc, info) = _one_step(handle)
    for o in (obs0, obs, info["final_observation"]):
        assert o.shape == handle.obs_spec.shape and o.dtype == jnp.float32
    assert reward.shape == () and reward.dtype == jnp.float32
    assert term.dtype == jnp.bool_ and trunc.dtype == jnp.bool_
    assert info["task"].dtype == jnp.int32 and int(info["task"]) == 0


def test_specs():
    assert make_env("CartPole-v1").obs_spec == ArraySpec((4,), jnp.float32)
    assert make_env("CartPole-v1").action_spec == DiscreteSpec(2)
    assert make_env("Pendulum-v1").action_spec == ArraySpec((1,), jnp.float32, -2.0, 2.0)
    assert make_env("Seaquest-MinAtar").obs_spec.shape == (10, 10, 10)
    assert make_env("Foraging-v0").obs_spec.shape == (8, 8, 3)
    assert make_env("Foraging-v0").action_spec == DiscreteSpec(4)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(env_id="CartPole-v2"), ["unknown environment", "CartPole-v1", "valid:"]),
        (dict(env_id="gym:CartPole-v1"), ["make_gym"]),
        (dict(env_id="CartPole-v1", schedule="swtich"), ["unknown schedule", "switch"]),
        (dict(env_id="CartPole-v1", schedule="switch", every=0), ["every", ">= 1"]),
        (dict(env_id="CartPole-v1", schedule="reward", every=2.5), ["every", "integer"]),
        (dict(env_id="CartPole-v1", seed="zero"), ["seed", "integer"]),
        (dict(env_id="CartPole-v1", schedule="switch", tasks=0), ["tasks", ">= 1"]),
        (dict(env_id="CartPole-v1", schedule="switch", order="shuffle"), ["cyclic, random"]),
        (dict(env_id="Breakout-MinAtar", schedule="switch"), ["no task variants", "Pendulum"]),
        (dict(env_id="Breakout-MinAtar", schedule="drift"), ["no task variants", "permute"]),
    ],
)
def test_bad_input_raises_one_line_config_error(kwargs, words):
    with pytest.raises(ConfigError) as error:
        make_env(**kwargs)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# ---------------------------------------------------------------- schedules


def test_switch_swaps_cartpole_params_at_the_switch_step_and_reports_the_task():
    every, tasks, steps = 5, 3, 20
    handle = make_env("CartPole-v1", schedule="switch", every=every, tasks=tasks)
    raw = make_env("CartPole-v1")
    variants = VARIANTS["CartPole-v1"]
    expected_task = (np.arange(steps) // every) % tasks

    def check(key):
        _, outs = _rollout(handle, steps, action=jnp.int32(1))(key)

        # Replays every step on the unscheduled env with variant `task`'s params.
        def replay(task):
            def one(key, state, action, task):
                params = select(variants, raw.params, task)
                return raw.env.step(key, state.inner, action, params)[0]

            return jax.vmap(one)(outs["key"], outs["state"], outs["action"], task)

        return outs, replay(jnp.asarray(expected_task)), replay(jnp.zeros(steps, jnp.int32))

    keys = jax.random.split(jax.random.key(1), 2)
    outs, right, wrong = jax.jit(jax.vmap(check))(keys)  # vmap over keys works too
    np.testing.assert_array_equal(outs["info"]["task"], np.stack([expected_task] * 2))
    np.testing.assert_allclose(outs["obs"], right, rtol=1e-6, atol=1e-6)
    # Before the first switch, task 0 is the default dynamics; after it, it is not.
    np.testing.assert_allclose(outs["obs"][:, :every], wrong[:, :every], rtol=1e-6)
    assert not np.allclose(outs["obs"][:, every], wrong[:, every])
    assert not np.array_equal(outs["obs"][0], outs["obs"][1])  # different keys


def test_variant_tables_select_and_blend():
    params = make_env("CartPole-v1").params
    variants = VARIANTS["CartPole-v1"]
    long = select(variants, params, 1)
    assert float(long.length) == 1.0 and float(long.masspole) == 0.5
    np.testing.assert_allclose(float(long.total_mass), 1.5)
    np.testing.assert_allclose(float(long.polemass_length), 0.5)
    assert float(select(variants, params, 3).force_mag) == -10.0
    assert float(select(variants, params, 4).length) == 0.5  # tasks beyond the table cycle
    half = blend(variants, params, 0, 1, 0.5)
    np.testing.assert_allclose(float(half.length), 0.75)
    np.testing.assert_allclose(float(half.polemass_length), 0.3 * 0.75, rtol=1e-6)
    for table in VARIANTS.values():
        assert len({v.shape[0] for v in table.table.values()}) == 1


# Random order over 3 tasks, segments int32[n] -> tasks int32[n] (one compile, two tests).
_random_tasks = jax.jit(jax.vmap(lambda s, key: task_of_segment(s, 3, "random", key), in_axes=(0, None)))


def test_random_order_is_deterministic_and_changes_task_at_every_boundary():
    tasks, segments = 3, 60
    seq = _random_tasks
    a = np.asarray(seq(jnp.arange(segments), jax.random.PRNGKey(7)))
    b = np.asarray(seq(jnp.arange(segments), jax.random.PRNGKey(7)))
    c = np.asarray(seq(jnp.arange(segments), jax.random.PRNGKey(8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(segments) % tasks)
    for block in a.reshape(-1, tasks):
        assert sorted(block) == list(range(tasks))
    assert np.all(a[1:] != a[:-1])
    cyclic = task_of_segment(jnp.int32(7), tasks, "cyclic", jax.random.PRNGKey(0))
    assert int(cyclic) == 1


def test_permute_shows_a_permutation_of_the_observation_and_identity_on_task_0():
    every, tasks, steps = 4, 3, 24
    handle = make_env("CartPole-v1", schedule="permute", every=every, tasks=tasks, order="random", seed=3)
    _, outs = jax.jit(_rollout(handle, steps))(jax.random.key(2))
    perms = np.asarray(handle.params.perms)
    # The observation after step n is encoded with the task of step n + 1.
    segments = np.asarray(_random_tasks(jnp.arange(60), handle.params.key))  # cached shape
    upcoming = segments[(np.arange(steps) + 1) // every]
    reported = segments[np.arange(steps) // every]
    np.testing.assert_array_equal(outs["info"]["task"], reported)
    inner = jax.tree.map(lambda x: x[1:], outs["state"].inner)  # state after step n
    raw = np.stack([inner.x, inner.x_dot, inner.theta, inner.theta_dot], axis=-1)
    obs = np.asarray(outs["obs"])[:-1]
    for n in range(steps - 1):
        np.testing.assert_array_equal(np.sort(obs[n]), np.sort(raw[n]))
        np.testing.assert_array_equal(obs[n], raw[n][perms[upcoming[n]]])
    assert {0, 1, 2} <= set(upcoming.tolist())
    first = upcoming == 0
    np.testing.assert_array_equal(obs[first[:-1]], raw[first[:-1]])
    assert not np.array_equal(obs[~first[:-1]], raw[~first[:-1]])


def test_permutation_tables():
    perms = permutations(seed=0, tasks=4, size=400)
    np.testing.assert_array_equal(perms[0], np.arange(400))
    for row in perms:
        np.testing.assert_array_equal(np.sort(row), np.arange(400))
    assert len({tuple(r) for r in perms}) == 4
    np.testing.assert_array_equal(perms, permutations(seed=0, tasks=4, size=400))


def test_reward_schedule_multiplies_rewards_per_task():
    np.testing.assert_array_equal(reward_scales(8), [1, -1, 0.5, -0.5, 2, -2, 0.25, -0.25])
    every, tasks, steps = 3, 4, 15
    handle = make_env("CartPole-v1", "reward", every=np.int64(every), tasks=np.int32(tasks))
    assert handle.num_tasks == tasks and isinstance(handle.num_tasks, int)
    _, outs = jax.jit(_rollout(handle, steps, action=jnp.int32(0)))(jax.random.key(0))
    # CartPole pays 1 on every step, so the reward is exactly the task's factor.
    expected = reward_scales(tasks)[(np.arange(steps) // every) % tasks]
    np.testing.assert_array_equal(outs["reward"], expected)


def test_drift_blends_between_variants_and_reports_the_nearer_task():
    handle = make_env("Pendulum-v1", schedule="drift", every=4, tasks=2)
    _, outs = jax.jit(_rollout(handle, 12))(jax.random.key(0))
    np.testing.assert_array_equal(outs["info"]["task"], [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1])
    assert make_env("Foraging-v0", schedule="drift").num_tasks == 2


# ---------------------------------------------------------------- Foraging


def test_foraging_never_ends_conserves_items_and_vmaps():
    handle = make_env("Foraging-v0")
    env = handle.env.env
    run = jax.jit(jax.vmap(_rollout(handle, 300)))
    obs0, outs = run(jax.random.split(jax.random.key(0), 4))
    assert not np.any(outs["term"]) and not np.any(outs["trunc"])
    counts = np.asarray(outs["obs"]).sum(axis=(2, 3))  # [keys, steps, kinds]
    np.testing.assert_array_equal(counts, env.items_per_kind)
    rewards = np.asarray(outs["reward"])
    assert np.any(rewards > 0) and np.any(rewards < 0)  # items get eaten, good and bad
    # Egocentric: the agent never stands on an item after it has eaten (items respawn away).
    centre = env.size // 2
    assert not np.any(np.asarray(outs["obs"])[:, :, centre, centre, :])
    assert not np.array_equal(obs0[0], obs0[1])


def test_foraging_item_values_change_over_time():
    env = Foraging()
    params = env.default_params.replace(period=600)
    values = [np.asarray(item_values(jnp.int32(t), params, 3)) for t in (0, 200, 300)]
    assert np.argmax(values[0]) == 0 and np.argmax(values[1]) == 1
    np.testing.assert_allclose(values[0].sum(), 0.0, atol=1e-6)
    frozen = params.replace(period=0, phase=2 / 3)
    assert np.argmax(np.asarray(item_values(jnp.int32(123), frozen, 3))) == 2

    # The same move onto the same item earns +1 at t = 0 and -1 half a period later.
    items = jnp.array([[[3, 4], [0, 0], [0, 1]], [[7, 7], [7, 6], [7, 5]], [[6, 0], [6, 1], [6, 2]]])
    step = jax.jit(lambda state: env.step(jax.random.key(0), state, 0, params))  # 0 = up
    rewards = []
    for t in (0, 300):
        state = ForagingState(agent=jnp.array([4, 4]), items=items, time=jnp.int32(t))
        _, new_state, reward, term, trunc, _ = step(state)
        rewards.append(float(reward))
        np.testing.assert_array_equal(new_state.agent, [3, 4])
        assert not np.all(new_state.items[0, 0] == new_state.agent)  # respawned elsewhere
        assert not bool(term) and not bool(trunc)
    np.testing.assert_allclose(rewards, [1.0, -1.0], atol=1e-5)


# ---------------------------------------------------------------- Rooms


def test_rooms_walls_goal_and_relocation():
    from oakrl.envs.rooms import GOALS, NEXT, SIZE, WALLS, Rooms, RoomsState, shortest_paths

    assert int((~WALLS).sum()) == 104
    # Walls block: from (1, 1) going up or left stays put; right moves to (1, 2).
    cell = 1 * SIZE + 1
    assert NEXT[cell, 0] == cell and NEXT[cell, 3] == cell and NEXT[cell, 1] == cell + 1
    # The hallway between the top rooms is at (3, 6): from (3, 5) right passes through it.
    assert NEXT[3 * SIZE + 5, 1] == 3 * SIZE + 6 and NEXT[3 * SIZE + 6, 1] == 3 * SIZE + 7
    # Hand-counted: from the top-right goal corner (1, 11) to (1, 1): down 2 to row 3,
    # left 10 through the hallway to column 1, up 2 = 14 steps.
    assert shortest_paths(int(GOALS[0]))[int(GOALS[1])] == 14

    env = Rooms()
    params = env.default_params
    state = RoomsState(cell=jnp.int32(int(GOALS[0]) + 1), time=jnp.int32(0))
    obs, state2, reward, term, trunc, _ = env.step(jax.random.key(0), state, 3, params)  # left
    assert float(reward) == 1.0 and bool(term) and not bool(trunc)
    # The goal moves with params.goal: the same step now earns nothing and goes on.
    moved = params.replace(goal=float(GOALS[2]))
    obs, state2, reward, term, trunc, _ = env.step(jax.random.key(0), state, 3, moved)
    assert float(reward) == 0.0 and not bool(term)
    assert int(jnp.argmax(obs)) == int(GOALS[0]) and float(obs.sum()) == 1.0
    # The time limit truncates, it does not terminate (values must bootstrap through it).
    last = RoomsState(cell=jnp.int32(3 * SIZE + 3), time=jnp.int32(params.max_steps_in_episode - 1))
    _, _, reward, term, trunc, info = env.step(jax.random.key(0), last, 0, params)
    assert float(reward) == 0.0 and not bool(term) and bool(trunc)
    assert int(jnp.argmax(info["final_observation"])) == 2 * SIZE + 3

    # Under `switch`, task k's goal is GOALS[k]: a reward is only ever earned on that cell.
    handle = make_env("Rooms-v0", schedule="switch", every=100, tasks=4)
    run = jax.jit(_rollout(handle, 2000))
    _, outs = run(jax.random.key(3))
    assert np.all(np.asarray(outs["obs"]).sum(-1) == 1.0)
    reward = np.asarray(outs["reward"])
    reached = np.asarray(outs["info"]["final_observation"]).argmax(-1)
    task = np.asarray(outs["info"]["task"])
    assert reward.sum() >= 3 and set(task) == {0, 1, 2, 3}
    np.testing.assert_array_equal(reached[reward > 0], GOALS[task[reward > 0]])


# ---------------------------------------------------------------- CodedGrid


def test_coded_grid_codes_moves_goal_and_permute():
    from oakrl.envs.coded_grid import CodedGrid, CodedGridState, cell_codes, next_cells

    env = CodedGrid()
    params = env.default_params
    assert env.goal == 24 and params.max_steps_in_episode == 18  # the centre; 3 x distance 6
    code = cell_codes(7, 64, 0)
    assert code.shape == (49, 64) and set(np.unique(code)) == {0.0, 1.0}
    assert len(np.unique(code, axis=0)) == 49  # every cell distinguishable
    np.testing.assert_array_equal(code, env.code)  # fixed by code_seed, not by the run's key
    assert not np.array_equal(code, cell_codes(7, 64, 1))
    assert 0.4 < code.mean() < 0.6  # dense: half the bits on
    nxt = next_cells(7)
    assert nxt[0, 0] == 0 and nxt[0, 3] == 0 and nxt[0, 1] == 1 and nxt[0, 2] == 7  # corner
    # From the cell left of the centre, "right" reaches the goal: reward 1, terminated.
    state = CodedGridState(cell=jnp.int32(23), time=jnp.int32(0))
    obs, _, reward, term, trunc, _ = env.step(jax.random.key(0), state, 1, params)
    assert float(reward) == 1.0 and bool(term) and not bool(trunc)
    # Any other move earns nothing; the observation is the new cell's code.
    obs, state2, reward, term, _, _ = env.step(jax.random.key(0), state, 0, params)
    assert float(reward) == 0.0 and not bool(term) and int(state2.cell) == 16
    np.testing.assert_array_equal(np.asarray(obs), code[16])
    # The time limit truncates, it does not terminate.
    last = CodedGridState(cell=jnp.int32(0), time=jnp.int32(17))
    _, _, reward, term, trunc, _ = env.step(jax.random.key(0), last, 0, params)
    assert float(reward) == 0.0 and not bool(term) and bool(trunc)
    # Resets never start on the goal and cover the other 48 cells.
    starts = jax.vmap(lambda k: env.reset(k, params)[1].cell)(jax.random.split(jax.random.key(1), 2000))
    assert 24 not in set(np.asarray(starts).tolist()) and len(set(np.asarray(starts).tolist())) == 48
    six = CodedGrid(size=6)  # goal (3, 3); the farthest cell, (0, 0), is 6 steps away
    assert six.goal == 21 and six.default_params.max_steps_in_episode == 18
    with pytest.raises(ValueError, match="distinct codes"):
        CodedGrid(size=7, bits=5)

    # Under `permute`, task k shows every cell's code through permutation k: the same bits,
    # reordered, and the reward is still earned only at the goal.
    handle = make_env("CodedGrid-v0", schedule="permute", every=50, tasks=3)
    run = jax.jit(_rollout(handle, 600))
    _, outs = run(jax.random.key(2))
    obs = np.asarray(outs["obs"])
    task = np.asarray(outs["info"]["task"])
    assert set(task) == {0, 1, 2}
    perms = np.asarray(handle.params.perms)
    # obs[t] is encoded with the task of step t + 1, for the cell after step t.
    nxt_cell = np.asarray(outs["state"].inner.cell)[1:]
    for t in range(len(nxt_cell)):
        if not bool(outs["term"][t]) and not bool(outs["trunc"][t]):
            np.testing.assert_array_equal(obs[t], code[nxt_cell[t]][perms[task[t + 1]]])
    assert np.asarray(outs["reward"]).sum() >= 1


# ---------------------------------------------------------------- gymnasium bridge


def test_gym_bridge_cartpole_auto_resets():
    handle = make_gym("CartPole-v1")
    assert handle.id == "gym:CartPole-v1"
    assert handle.obs_spec == ArraySpec((4,), jnp.float32)
    assert handle.action_spec == DiscreteSpec(2)
    stream = handle.make(0)
    obs = stream.reset()
    np.testing.assert_array_equal(obs, handle.make(0).reset())  # seeded
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(300):
        obs, reward, terminated, truncated = stream.step(np.int64(rng.integers(2)))
        assert obs.dtype == np.float32 and obs.shape == (4,) and reward == 1.0
        if terminated or truncated:
            ends += 1
            assert np.all(np.abs(obs) <= 0.05)  # a fresh episode's first observation
    assert ends >= 3  # random play drops the pole every ~20 steps


def test_gym_bridge_pendulum_box_actions_and_truncation():
    handle = make_gym("gym:Pendulum-v1")
    assert handle.obs_spec == ArraySpec((3,), jnp.float32)
    assert handle.action_spec == ArraySpec((1,), jnp.float32, -2.0, 2.0)
    stream = handle.make(1)
    stream.reset()
    truncations = []
    for n in range(300):
        action = np.array([5.0 if n % 2 else -5.0], np.float32)  # out of range: clipped
        obs, reward, terminated, truncated = stream.step(action)
        assert obs.shape == (3,) and obs.dtype == np.float32 and not terminated
        if truncated:
            truncations.append(n)
            assert abs(obs[2]) <= 1.0  # reset speed is in [-1, 1]
    assert truncations == [199]  # gymnasium's 200-step time limit


@pytest.mark.parametrize(
    "gym_id, words",
    [
        ("FrozenLake-v1", ["Discrete observation", "Box"]),
        ("CartPol-v1", ["cannot make", "CartPole-v1"]),
    ],
)
def test_gym_bridge_rejects_cleanly(gym_id, words):
    with pytest.raises(ConfigError) as error:
        make_gym(gym_id)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message
