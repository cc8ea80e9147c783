"""The option-planning study's worlds, exact values, planning count and a short run (issue 18)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from oakrl.envs.grids import (
    NINE_GOALS,
    NINE_ROOMS,
    TWO_ROOMS,
    Grid,
    Layout,
    hallway_cells,
    optimal_values,
    transitions,
)
from oakrl.errors import ConfigError
from oakrl.study.option_planning import (
    OptionPlanningConfig,
    _ratio_bar,
    backups_to_tolerance,
    hallway_models,
    plan_trace,
    plan_traces,
    study_option_planning,
    sweep_orders,
)

# A corridor: S . G with one penalty cell between (reward -0.5 on entering it).
TINY = Layout("tiny", "#####\n#S.G#\n#####", penalty=-0.5)


def test_tiny_world_exact_values():
    # Catches a wrong reward on entering a penalty cell or the goal, or a goal that bootstraps.
    g = 0.9
    v = optimal_values(TINY, g)
    s, mid, goal = 6, 7, 8
    assert v[goal] == 0.0
    assert v[mid] == pytest.approx(1.0)  # step into G: +1, then nothing
    assert v[s] == pytest.approx(-0.5 + g * 1.0)  # into the penalty cell, then G (beats 0 forever)
    nxt, rew, term = transitions(TINY)
    assert term[goal] and not term[s]
    assert nxt[s, 1] == mid and nxt[s, 3] == s  # right moves, left bumps the wall
    assert rew[s, 1] == -0.5 and rew[mid, 1] == 1.0


def test_worlds_shape_and_two_rooms_values():
    # Catches a layout that lost its hallway, rooms or cell count (the issue asks >= 300 cells).
    assert len(NINE_ROOMS.free) == 336 and len(hallway_cells(NINE_ROOMS)) == 12
    assert len(hallway_cells(TWO_ROOMS)) == 1 and TWO_ROOMS.start == 3 * 15 + 1
    v = optimal_values(TWO_ROOMS, 0.95)
    # The best way from S goes round the -1 block: 18 steps, no penalty (by hand: down 3,
    # right 5 along the bottom, up 3, right 2 through H, down 3, right 2 into G).
    assert v[TWO_ROOMS.start] == pytest.approx(0.95**17, rel=1e-6)
    assert all(NINE_ROOMS.walls[g] == 0 for g in NINE_GOALS)


def test_grid_env_steps_and_rewards():
    # Catches the gymnax env disagreeing with the exact MDP (reward, termination, start cell).
    env = Grid(TINY)
    params = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(0), params)
    assert int(obs.argmax()) == 6
    obs, st, r, done, _ = env.step_env(jax.random.PRNGKey(1), st, 1, params)
    assert float(r) == -0.5 and not bool(done)
    obs, st, r, done, _ = env.step_env(jax.random.PRNGKey(2), st, 1, params)
    assert float(r) == 1.0 and bool(done)


def test_planning_count_hand_computed():
    # Chain of 3 cells 0 -> 1 -> 2(goal, +1), gamma 0.5, one action "right"; backups in order
    # [0, 1, 0, 1]: v0 = 0, v1 = 1, v0 = 0.5, v1 = 1. v*(0) = 0.5: within 10% after backup 3.
    # Catches an off-by-one in the count or a backup that reads stale values.
    c = 3
    reward = np.array([[0.0, 1.0, 0.0]], np.float32)
    outcome = np.zeros((1, c, c), np.float32)
    outcome[0, 1, 0] = 0.5  # from 0: gamma * e_1
    v_star = np.array([0.5, 1.0, 0.0], np.float32)
    avail = np.ones((c, 1), bool)
    states = np.array([True, True, False])
    vs, err, v = plan_trace(reward, outcome, avail, np.array([0, 1, 0, 1]), v_star, 0, states)
    np.testing.assert_allclose(vs, [0.0, 0.0, 0.5, 0.5])
    np.testing.assert_allclose(err, [0.75, 0.25, 0.0, 0.0])
    assert backups_to_tolerance(vs, 0.5, 0.1) == (3, 3)
    # Touching the band once and leaving it is not "settled".
    assert backups_to_tolerance(np.array([0.5, 0.0, 0.1]), 0.5, 0.1) == (-1, 1)


def test_hallway_option_models_exact():
    # From S the hallway option walks straight through the -1 block (it ignores reward): 6 steps,
    # 4 of them into penalty cells. Catches a wrong discount or reward accumulation.
    g = 0.9
    r, o, avail = hallway_models(TWO_ROOMS, TWO_ROOMS.goal, g)
    s, h = TWO_ROOMS.start, int(hallway_cells(TWO_ROOMS)[0])
    assert o[0, h, s] == pytest.approx(g**6)
    assert r[0, s] == pytest.approx(-(1 + g + g**2 + g**3))
    assert avail[s, 0] and not avail[h, 0]


def test_bad_config_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown world"):
        study_option_planning(OptionPlanningConfig(worlds=("Rooms-v1",)), str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="multiple of points"):
        study_option_planning(OptionPlanningConfig(steps=1001), str(tmp_path / "y"))
    with pytest.raises(ConfigError, match="orders must be a positive integer"):
        study_option_planning(OptionPlanningConfig(orders=0), str(tmp_path / "z"))
    assert not (tmp_path / "x").exists()


def test_short_study_run(tmp_path):
    # The whole pipeline on the two-room world: summary.json with model_sets and every set per point.
    cfg = OptionPlanningConfig(worlds=("TwoRooms-v0",), steps=600, points=2, seeds=2, max_sweeps=4,
                               error_sweeps=(1, 2), orders=2)  # fmt: skip
    study_option_planning(cfg, str(tmp_path / "op"), echo=lambda s: None)
    s = json.loads((tmp_path / "op" / "summary.json").read_text())
    assert set(s["model_sets"]) == {"primitive", "reward-respecting", "reward-ignoring", "hallway"}
    pts = s["worlds"]["TwoRooms-v0"]["points"]
    assert [p["step"] for p in pts] == [300, 600]
    for k in s["model_sets"]:
        assert len(pts[-1][k]["backups_to_10pct"]["per_seed"]) == 2
        assert len(pts[-1][k]["backups_to_10pct_orders"]["per_seed"]) == 2
    bar = s["worlds"]["TwoRooms-v0"]["bar"]["reward-respecting"]
    assert {"ratio_mean", "fraction_at_most_half", "met"} <= set(bar) and "met" in bar["orders"]
    assert s["orders"] == 2
    assert (tmp_path / "op" / "figure.png").exists()


def test_oak_study_accepts_nine_rooms_with_its_optimal_rates():
    # Catches the oak study measuring recovery on NineRooms-v0 against Rooms-v0's rates.
    from oakrl.envs.grids import NINE_ROOMS, shortest_paths
    from oakrl.study.oak import OakStudyConfig, grid_rates

    cfg = OakStudyConfig(env="NineRooms-v0", every=1000, relocations=3, second_world=None)
    cfg.check()
    rates = grid_rates(cfg)
    d = shortest_paths(NINE_ROOMS, int(NINE_GOALS[0]))
    starts = [c for c in NINE_ROOMS.free if c != NINE_GOALS[0]]
    assert rates[0] == pytest.approx(1 / np.mean(d[starts]))
    assert d[int(NINE_GOALS[0])] == 0 and d[NINE_ROOMS.walls].max() == -1
    with pytest.raises(ConfigError, match="env must be one of"):
        OakStudyConfig(env="CartPole-v1", second_world=None).check()


def test_orders_batched_equal_one_at_a_time():
    # Catches the vmapped planner mixing orders (wrong in_axes) or order 0 drifting from the
    # one-order measure of earlier sessions (sweep_orders seeded with the plain base seed).
    rng = np.random.default_rng(0)
    c, m = 6, 3
    reward = rng.uniform(-1, 1, (m, c)).astype(np.float32)
    outcome = (0.3 * rng.uniform(0, 1, (m, c, c))).astype(np.float32)
    avail = rng.uniform(size=(c, m)) < 0.7
    avail[:, 0] = True
    v_star = rng.uniform(size=c).astype(np.float32)
    states = np.ones(c, bool)
    cells = np.arange(c, dtype=np.int32)
    orders = np.stack([sweep_orders(cells, 5, 11 if k == 0 else (11, k)) for k in range(3)])
    assert not np.array_equal(orders[0], orders[1])
    vs_o, err_o, v_o = plan_traces(reward, outcome, avail, orders, v_star, 2, states)
    for k in range(3):
        vs, err, v = plan_trace(reward, outcome, avail, orders[k], v_star, 2, states)
        np.testing.assert_allclose(vs_o[k], vs, rtol=1e-6)
        np.testing.assert_allclose(v_o[k], v, rtol=1e-6)
    np.testing.assert_array_equal(orders[0], sweep_orders(cells, 5, 11))


def test_ratio_bar_mean_sd_and_fraction():
    # Catches a censored seed counted as a ratio, or the fraction taken over the wrong seeds:
    # ratios 0.4, 0.5, 0.8 (seed 3 censored): mean 0.567, 2 of 3 at or under 0.5, not met.
    a = np.array([100.0, 100.0, 100.0, 100.0])
    b = np.array([40.0, 50.0, 80.0, 10.0])
    bar = _ratio_bar(a, b, 4, np.array([False, False, False, True]))
    assert bar["seeds_compared"] == 3 and bar["censored_seeds"] == 1
    assert bar["ratio_mean"] == pytest.approx(1.7 / 3)
    assert bar["fraction_at_most_half"] == pytest.approx(2 / 3)
    assert not bar["met"]
    ok = _ratio_bar(a, np.array([30.0, 35.0, 40.0, 32.0]), 4, np.zeros(4, bool))
    assert ok["met"] and ok["fraction_at_most_half"] == 1.0


def test_snapshot_reads_a_just_replaced_slot_as_zero():
    # oak defers zeroing a replaced option's models to its next update (the slot's age is 0
    # until then). Catches a snapshot that plans with the stale rows of the old option.
    from types import SimpleNamespace

    from oakrl.agents.oak import oak
    from oakrl.core.types import ArraySpec, DiscreteSpec
    from oakrl.study.option_planning import snapshot

    state = oak(options=2).init(jax.random.key(0), ArraySpec((5,)), DiscreteSpec(3))
    ones = jax.tree.map(lambda m: m + 1.0, state.opt)
    state = state._replace(opt=ones, pool=state.pool._replace(age=state.pool.age.at[1].set(7)))
    batched = jax.tree.map(lambda x: x[None], state)
    snap = snapshot(SimpleNamespace(agent=batched))
    assert np.all(snap["opt_outcome"][0, 0] == 0) and np.all(snap["opt_reward"][0, 0] == 0)  # age 0
    assert np.all(snap["opt_outcome"][0, 1] == 1) and np.all(snap["opt_reward"][0, 1] == 1)
