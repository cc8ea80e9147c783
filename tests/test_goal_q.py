"""goal-q: the goal input, the hindsight store, the goal schedule (hand-made streams, no world).

The stream visits one-hot cells 0 -> 1 -> 2 -> 0 ... whatever the agent does, so what Q(s, a, g)
must learn is known: the reward of goal "cell 2" arrives on every move out of cell 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents import make_agent
from oakrl.agents.common import net
from oakrl.agents.goal_q import GoalNet, mix, schedule_goal
from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep, first_timestep
from oakrl.errors import ConfigError

D, A = 4, 2
OBS, ACT = ArraySpec((D,)), DiscreteSpec(A)
TABLE = {"hidden": (), "goal_input": "outer", "normalize_obs": False, "scale_reward": False, "gamma": 0.9}


def cycle_stream(agent, steps: int = 300):
    """The agent's state after `steps` steps of the cycle 0 -> 1 -> 2 -> 0 (episodes never end)."""
    cells = jnp.arange(steps) % 3
    state = agent.init(jax.random.key(0), OBS, ACT)
    state, _, _ = agent.step(state, first_timestep(jax.nn.one_hot(3, D)), jax.random.key(1))

    def body(s, xs):
        cell, i = xs
        ts = TimeStep(jax.nn.one_hot(cell, D), jnp.zeros(()), jnp.zeros((), bool), jnp.zeros((), bool))
        s, _, info = agent.step(s, ts, jax.random.fold_in(jax.random.key(2), i))
        return s, info

    return jax.jit(lambda s: jax.lax.scan(body, s, (cells, jnp.arange(steps))))(state)


def q_of(state, cell: int, goal_cell: int) -> np.ndarray:
    """[A] Q(cell, ., goal "goal_cell = 1") of a tabular (outer) goal-q state."""
    base = net((D * D,), A, (), 0.9)
    g = jax.nn.one_hot(goal_cell, D)
    return np.asarray(GoalNet(base, jnp.concatenate([g, g]), True).apply(state.q, jax.nn.one_hot(cell, D)))


def test_commanded_goal_is_learned_for_that_goal_only():
    """Catches a broken goal input: Q must rise toward the commanded goal (cell 2) from cell 1,
    and stay put for another goal (cell 0) that was never commanded or relabelled."""
    agent = make_agent("goal-q", goal={"2": 1.0}, hindsight=0, **TABLE)
    state, info = cycle_stream(agent)
    assert q_of(state, 1, 2).max() > 0.5
    assert np.abs(q_of(state, 1, 0)).max() < 1e-6
    # goal_score is 1 exactly on the steps that see cell 2 (every third); reached once seen.
    np.testing.assert_array_equal(
        np.asarray(info["goal_score"]), (np.arange(300) % 3 == 2).astype(np.float32)
    )
    assert float(info["goal_unreached"][0]) == 1.0 and float(info["goal_unreached"][-1]) == 0.0


def test_hindsight_learns_goals_never_commanded():
    """Catches broken hindsight relabelling: with the commanded goal never reached (cell 3), only
    relabelled achieved goals can teach Q(1, ., cell 2); without the store it stays at zero."""
    on = make_agent("goal-q", goal={"3": 1.0}, hindsight=2, hindsight_write=0.05, **TABLE)
    off = make_agent("goal-q", goal={"3": 1.0}, hindsight=0, **TABLE)
    s_on, _ = cycle_stream(on, 600)
    s_off, _ = cycle_stream(off, 600)
    assert q_of(s_on, 1, 2).max() > 0.3
    assert np.abs(q_of(s_off, 1, 2)).max() < 1e-6


def test_hindsight_store_write_and_eviction_by_hand():
    """hindsight_write = 1: every step after the first writes the goal achieved in s' (its
    one-hot) into one of the slots 1..H; slot 0 always holds the commanded goal."""
    agent = make_agent("goal-q", goal={"3": 1.0}, hindsight=2, hindsight_write=1.0, **TABLE)
    state = agent.init(jax.random.key(0), OBS, ACT)
    step = jax.jit(agent.step)
    state, _, _ = step(state, first_timestep(jax.nn.one_hot(0, D)), jax.random.key(1))
    assert state.valid.tolist() == [True, False, False]  # no transition yet: nothing written
    for i, cell in enumerate([1, 2, 1]):
        ts = TimeStep(jax.nn.one_hot(cell, D), jnp.zeros(()), jnp.zeros((), bool), jnp.zeros((), bool))
        before = np.asarray(state.goal_values)
        state, _, _ = step(state, ts, jax.random.key(10 + i))
        after = np.asarray(state.goal_values)
        changed = [j for j in range(3) if not np.array_equal(before[j], after[j])]
        assert set(changed) <= {1, 2}
        written = [j for j in (1, 2) if np.array_equal(after[j], np.eye(D)[cell])]
        assert written, f"step {i}: cell {cell} not in the store {after}"
        np.testing.assert_array_equal(after[0], np.eye(D)[3])
        np.testing.assert_array_equal(np.asarray(state.goal_mask[0]), np.eye(D)[3])
    assert bool(state.valid[1]) or bool(state.valid[2])


def test_goal_schedule_segments_pool_and_heldout():
    """Each segment commands one pool entry (a seeded draw); from heldout_from on the held-out
    entries in turn, and never before."""
    agent = make_agent(
        "goal-q", goal_every=10, goal_pool=(0, 1), goal_heldout=(2, 3), heldout_from=50, **TABLE
    )
    cfg = agent.config
    seed = jnp.uint32(12345)
    entries = []
    for step in range(0, 100, 10):
        values, mask = schedule_goal(cfg, None, seed, jnp.int32(step), D)
        assert float(mask.sum()) == 1.0
        np.testing.assert_array_equal(np.asarray(values), np.asarray(mask))
        entries.append(int(jnp.argmax(mask)))
    assert set(entries[:5]) <= {0, 1} and entries[5:] == [2, 3, 2, 3, 2]
    assert int(mix(seed, jnp.int32(3))) != int(mix(seed, jnp.int32(4)))


def test_goal_q_needs_a_goal():
    agent = make_agent("goal-q", **TABLE)
    with pytest.raises(ConfigError, match="needs a commanded goal"):
        agent.init(jax.random.key(0), OBS, ACT)
    with pytest.raises(ConfigError, match="goal_pool"):
        make_agent("goal-q", goal_every=10)


def test_optimal_goal_rate_by_hand():
    """Catches a wrong renewal ratio or an off-by-one in what a step observes. Horizon 1: each
    episode observes only its start, uniform over the 103 free cells other than the world's
    goal: 1/103. Horizon 2: the start and one move; cell 18 is reached in one move from 18
    (right is a wall), 17 and 31: 4/103 per episode; and from 15 and 27 (beside the world's goal,
    14) the best move ends the episode at once (one step instead of two, no goal either way), so
    the mean length is 2 - 2/103: rate 4 / 204."""
    from oakrl.study.goals_optimum import optimal_goal_rate

    assert optimal_goal_rate(18, horizon=1) == pytest.approx(1 / 103, abs=1e-8)
    assert optimal_goal_rate(18, horizon=2) == pytest.approx(4 / 204, abs=1e-8)
    assert 0.9 < optimal_goal_rate(18) < 1.0
