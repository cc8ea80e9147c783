"""Planning: search control, Dyna's simulated updates (hand-computed), tree search with a goal,
the dyna and planner agents in the lab, and `oakrl run --goal`.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow.parquet as pq
import pytest

from oakrl.cli import main
from oakrl.errors import ConfigError
from oakrl.learn.obgd import obgd
from oakrl.plan.dyna import PlanCarry, dyna_updates
from oakrl.plan.goal import check_goal_table, goal_arrays, goal_reward, parse_goal
from oakrl.plan.search_control import (
    search_control_add,
    search_control_init,
    search_control_sample,
    search_control_set_priority,
)

TRUE, FALSE = jnp.ones((), bool), jnp.zeros((), bool)


def test_search_control_keeps_recent_states_and_samples_by_priority():
    sc = search_control_init(3, 2)
    _, obs = search_control_sample(sc, jax.random.key(0))  # empty: slot 0 of zeros, callers mask
    assert obs.tolist() == [0.0, 0.0]
    for i, p in enumerate([0.0, 5.0, 0.0, 1.0]):  # the fourth overwrites the oldest (slot 0)
        sc = search_control_add(sc, jnp.array([i, -i], jnp.float32), jnp.asarray(p), TRUE)
    sc = search_control_add(sc, jnp.array([9.0, 9.0]), jnp.asarray(100.0), FALSE)  # not valid: ignored
    assert sc.obs[:, 0].tolist() == [3.0, 1.0, 2.0] and sc.priority.tolist() == [1.0, 5.0, 0.0]
    assert int(sc.position) == 1
    slots, _ = jax.vmap(lambda k: search_control_sample(sc, k))(jax.random.split(jax.random.key(1), 4000))
    freq = np.bincount(np.asarray(slots), minlength=3) / 4000
    # (p + 1e-3) / sum: 1.001 / 6.003, 5.001 / 6.003, 0.001 / 6.003
    assert freq == pytest.approx([1.001 / 6.003, 5.001 / 6.003, 0.001 / 6.003], abs=0.03)
    sc = search_control_set_priority(sc, jnp.asarray(1), jnp.asarray(-0.5))
    assert sc.priority.tolist() == [1.0, 0.5, 0.0]


def test_search_control_draws_many_at_once_and_never_an_empty_slot():
    # The inverse-CDF draw: shape=(n,) gives n independent draws in one call, and only filled
    # slots are chosen (2 of 5 filled; priorities 0 and 3, so ~ 0.001 : 3.001).
    sc = search_control_init(5, 1)
    for p in (0.0, 3.0):
        sc = search_control_add(sc, jnp.ones(1), jnp.asarray(p), TRUE)
    slots, obs = search_control_sample(sc, jax.random.key(2), shape=(20000,))
    assert slots.shape == (20000,) and obs.shape == (20000, 1) and slots.dtype == jnp.int32
    freq = np.bincount(np.asarray(slots), minlength=5) / 20000
    assert freq[2:].tolist() == [0.0, 0.0, 0.0]
    assert freq[1] == pytest.approx(3.001 / 3.002, abs=0.002)
    # alpha 0 is uniform over the filled slots, whatever the priorities.
    slots, _ = search_control_sample(sc, jax.random.key(3), alpha=0.0, shape=(20000,))
    assert np.bincount(np.asarray(slots), minlength=5)[:2] / 20000 == pytest.approx([0.5, 0.5], abs=0.02)


def test_dyna_updates_match_hand_computed_q_learning():
    # Tabular q (one-hot states, one action), a model that says: reward 1, next state s + 1, no end.
    # ObGD with lr 0.1, kappa 2: ||grad||_1 = 1 so M = 0.2 max(|delta|, 1) <= 1 and the step is 0.1.
    n_states, gamma = 4, 0.9
    opt = obgd(0.1, gamma, 0.0, 2.0)

    def q_apply(p, x):
        return x @ p  # [S] @ [S, 1]

    def model_sample(x, a, k):
        return jnp.asarray(1.0), jnp.roll(x, 1), jnp.asarray(0.0)

    q = jnp.zeros((n_states, 1)).at[3, 0].set(2.0)
    sc = search_control_add(
        search_control_init(4, n_states), jax.nn.one_hot(2, n_states), jnp.asarray(1.0), TRUE
    )
    out = dyna_updates(PlanCarry(q, opt.init(q), sc, jnp.zeros(())), jax.random.key(0), 2, 1, q_apply,
                       model_sample, opt, gamma)  # fmt: skip
    # Update 1 from s=2: delta = 1 + 0.9 * 2 - 0 = 2.8 -> M = 0.2 * 2.8 = 0.56 <= 1: q = 0.28.
    # Update 2: delta = 1 + 1.8 - 0.28 = 2.52 -> q = 0.28 + 0.252 = 0.532.
    assert float(out.q[2, 0]) == pytest.approx(0.532, rel=1e-5)
    assert float(out.td_abs) == pytest.approx(2.8 + 2.52, rel=1e-5)
    assert float(out.control.priority[0]) == pytest.approx(2.52, rel=1e-5)
    assert out.q[[0, 1, 3], 0].tolist() == [0.0, 0.0, 2.0]
    # n = 0 is model-free: nothing changes.
    same = dyna_updates(PlanCarry(q, opt.init(q), sc, jnp.zeros(())), jax.random.key(0), 0, 1, q_apply,
                        model_sample, opt, gamma)  # fmt: skip
    assert bool(jnp.all(same.q == q))
    # An empty buffer plans nothing.
    empty = search_control_init(4, n_states)
    out = dyna_updates(PlanCarry(q, opt.init(q), empty, jnp.zeros(())), jax.random.key(0), 3, 1, q_apply,
                       model_sample, opt, gamma)  # fmt: skip
    assert bool(jnp.all(out.q == q))


def test_parse_goal_forms_and_one_line_errors():
    assert parse_goal("40=1", 169) == {"40": 1.0}
    assert parse_goal(" 3=0.5, 0=-1 ", 4) == {"3": 0.5, "0": -1.0}
    assert parse_goal("*,1,*,0", 4) == {"1": 1.0, "3": 0.0}
    for bad, words in [
        ("169=1", "outside"),
        ("1,2,3", "3 value(s) but the observation has 4"),
        ("a=1", "INDEX=VALUE"),
        ("1,x,2,3", "not a number"),
        ("*,*,*,*", "names no entry"),
        ("1=1,2", "mixes"),
        ("", "takes"),
        ("1=nan", "finite"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(words)) as e:
            parse_goal(bad, 4 if "169" not in bad else 169)
        assert "\n" not in str(e.value)
    assert check_goal_table({"2": 1}) == {"2": 1.0}
    with pytest.raises(ConfigError):
        check_goal_table({"x": 1.0})
    values, mask = goal_arrays({"1": 1.0}, 3)
    assert float(goal_reward(jnp.array([0.0, 1.0, 0.0]), values, mask, 0.25)) == 1.0
    assert float(goal_reward(jnp.array([0.3, 0.9, 0.0]), values, mask, 0.25)) == pytest.approx(
        1 - 0.01 / 0.0625
    )
    assert float(goal_reward(jnp.array([0.0, 0.0, 1.0]), values, mask, 0.25)) == 0.0  # exactly: no floor


@pytest.fixture(scope="module")
def rooms_model():
    """A transition model learned from a random stream in Rooms-v0 (as in tests/test_model.py)."""
    from test_model import _rooms_stream

    from oakrl.model import transition_model

    model = transition_model("categorical", hidden=(64,), lr=3e-3, kstep=1)
    ms, _ = jax.jit(lambda k: _rooms_stream(model, 15_000, k))(jax.random.key(0))
    return model, ms


def test_one_model_serves_any_commanded_goal(rooms_model):
    from oakrl.plan.search import tree_search

    model, ms = rooms_model
    start = 3 * 13 + 3  # the middle of the top-left room
    # Goals two cells up, right, down and left of the start: the search's first move heads there
    # (64 simulations: with value 0 everywhere, the children of a root action are tried in index order,
    # so reaching "left, left" takes a root action visited five times).
    for goal, first_move in [(start - 26, 0), (start + 2, 1), (start + 26, 2), (start - 2, 3)]:
        values, mask = (jnp.asarray(x) for x in goal_arrays({str(goal): 1.0}, 169))

        def transition(emb, a, values=values, mask=mask):
            nxt = model.rollout(ms.params, emb, a)
            return goal_reward(nxt, values, mask, 0.25), jnp.asarray(0.9), nxt

        def evaluate(emb):
            return jnp.zeros(4), jnp.zeros(())

        result = jax.jit(
            lambda k, transition=transition, evaluate=evaluate: tree_search(
                k, jax.nn.one_hot(start, 169), evaluate, transition, 64, gumbel_scale=0.0
            )
        )(jax.random.key(0))
        assert int(result.action) == first_move, f"goal {goal}"
        assert float(result.value) > 0.2  # the goal, two discounted steps away, is in the tree


def rooms_cells(handle, agent, steps: int, seed: int = 3) -> np.ndarray:
    """The cell a Rooms-v0 agent is in after each of `steps` steps of one compiled stream."""
    from oakrl.core.types import TimeStep, first_timestep

    env, params = handle.env, handle.params

    def run(key):
        k0, k1, k2 = jax.random.split(key, 3)
        state = agent.init(k0, handle.obs_spec, handle.action_spec)
        obs, es = env.reset(k1, params)

        def body(c, k):
            state, es, ts = c
            ka, ke = jax.random.split(k)
            state, action, _ = agent.step(state, ts, ka)
            obs, es, r, term, trunc, _ = env.step(ke, es, action, params)
            return (state, es, TimeStep(obs, r, term, trunc)), es.cell

        _, cells = jax.lax.scan(body, (state, es, first_timestep(obs)), jax.random.split(k2, steps))
        return cells

    return np.asarray(jax.jit(run)(jax.random.key(seed)))


def _occupancy(goal: str | None, steps: int, target: int) -> float:
    """Fraction of the last third of `steps` a planner built through the CLI's path spends on `target`."""
    from oakrl.lab.run import build
    from oakrl.lab.spec import RunSpec

    config = RunSpec(
        env="Rooms-v0",
        agent="planner",
        goal=goal,
        agent_options={"hidden": (16, 16), "model_hidden": (64,), "model_lr": 3e-3, "num_simulations": 8},
    )
    handle, agent = build(config)
    cells = rooms_cells(handle, agent, steps)
    return float(np.mean(cells[-steps // 3 :] == target))


def test_planner_goes_to_the_goal_given_on_the_command_line():
    target = 1 * 13 + 5  # top-left room, top-right corner (not the environment's goal, cell 14)
    with_goal = _occupancy(f"{target}=1", 4500, target)
    without = _occupancy(None, 4500, target)
    assert with_goal > 0.2, with_goal
    assert with_goal > 5 * without, (with_goal, without)


@pytest.mark.parametrize("tolerance, elsewhere", [(0.25, 0.0), (2.0, 0.75)])
def test_goal_score_is_the_time_at_the_goal_by_hand(tolerance, elsewhere):
    """A planner fed a stream whose one-hot cell is the goal (18) at 6 of 12 steps: its goal score
    is 1 on those steps and 1 - 1 / tolerance^2 (floored at 0) elsewhere, step by step."""
    from oakrl.agents import make_agent
    from oakrl.core.types import TimeStep
    from oakrl.envs import make_env

    handle = make_env("Rooms-v0")
    agent = make_agent("planner", goal={"18": 1.0}, goal_tolerance=tolerance,
                       hidden=(8,), model_hidden=(8,), num_simulations=4)  # fmt: skip
    cells = np.array([42, 18, 18, 5, 18, 30, 18, 18, 100, 0, 18, 7])
    at_goal = cells == 18
    obs = jax.nn.one_hot(cells, 169).reshape(-1, *handle.obs_spec.shape)
    no = jnp.zeros(cells.size, bool)
    stream = TimeStep(obs, jnp.zeros(cells.size), no, no)

    def run(key):
        state = agent.init(key, handle.obs_spec, handle.action_spec)

        def body(state, x):
            ts, k = x
            state, _, info = agent.step(state, ts, k)
            return state, info["goal_score"]

        return jax.lax.scan(body, state, (stream, jax.random.split(key, cells.size)))[1]

    score = np.asarray(jax.jit(run)(jax.random.key(0)))
    # Catches a goal score taken from the normalised observation, the model's prediction or the
    # search value instead of the observation the agent is at, and a wrong distance formula.
    np.testing.assert_allclose(score, np.where(at_goal, 1.0, elsewhere), atol=1e-6)
    assert float(score.mean()) == pytest.approx((6 + 6 * elsewhere) / 12, abs=1e-6)


def test_run_goal_flag_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--env", "Rooms-v0", "--agent", "planner", "--goal", "18=1", "--steps", "300",
                 "--seeds", "2", "--chunk", "150", "--opt", "hidden=8", "--opt", "model_hidden=8",
                 "--opt", "num_simulations=4", "--out", str(out), "--no-plot"])  # fmt: skip
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["goal"] == "18=1" and cfg["agent_config"]["goal"] == {"18": 1.0}
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["diagnostics"]["search_value"])
    # Catches the goal score not reaching the summary (its value is checked by hand in
    # test_goal_score_is_the_time_at_the_goal_by_hand; 300 steps here never reach cell 18).
    assert summary["diagnostics"]["goal_score"] is not None
    # Runs without a goal keep their config.json exactly as before (no goal field).
    code = main(["run", "--env", "Rooms-v0", "--agent", "stream-q", "--steps", "100", "--opt", "hidden=8",
                 "--out", str(tmp_path / "plain"), "--no-plot"])  # fmt: skip
    assert code == 0 and "goal" not in json.loads((tmp_path / "plain" / "config.json").read_text())


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--agent", "planner", "--goal", "200=1"], "outside the observation"),
        (["--agent", "planner", "--goal", "1,0,1"], "3 value(s) but the observation has 169"),
        (["--agent", "planner", "--goal", "here"], "not a number"),
        (["--agent", "stream-q", "--goal", "3=1"], "goal-conditioned agent (planner, goal-q)"),
        (["--agent", "dyna", "--opt", "planning_steps=-1"], "planning_steps"),
        (["--agent", "planner", "--opt", "model_head=mixture"], "model_head"),
    ],
)
def test_bad_goals_and_options_are_one_line_exit_2(tmp_path, capsys, argv, words):
    code = main(["run", "--env", "Rooms-v0", *argv, "--steps", "10", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_dyna_runs_vmapped_in_the_lab():
    from oakrl.agents import make_agent
    from oakrl.envs import make_env
    from oakrl.lab.stream import run_jax

    handle = make_env("Rooms-v0", schedule="switch", every=100, tasks=4)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0, impl="unsafe_rbg"), i))(np.arange(2))
    # (the planner runs vmapped in the lab in test_run_goal_flag_end_to_end)
    for name, extra in [("dyna", {"planning_steps": 3, "buffer_size": 8})]:
        agent = make_agent(name, hidden=(8,), model_hidden=(8,), **extra)
        infos = []
        carry, _, _ = run_jax(agent, handle, 200, keys, chunk=100, on_chunk=infos.append)
        assert int(carry.t[0]) == 200 and carry.agent.steps.tolist() == [200, 200]
        last = infos[-1].info
        for k in ("model_obs_error", "model_kstep_error", "model_reward_error", "td_error"):
            assert np.all(np.isfinite(last[k])), k
        # Each seed learned its own model from its own stream.
        w = carry.agent.model.params.obs["head"]["kernel"]
        assert not bool(jnp.all(w[0] == w[1]))


def test_study_recovery_steps_hand_computed():
    from oakrl.study.model_based import ModelBasedConfig, optimal_rates, recovery_steps

    # Goal reaches at steps 105, 120, 130, 190 after a change at step 100; window 50, need 3.
    hits = np.array([50, 105, 120, 130, 190, 260])
    assert recovery_steps(hits, 100, 100, 50, 3) == 30  # (100, 130] holds 105, 120, 130
    assert recovery_steps(hits, 100, 100, 20, 2) == 20  # (100, 120] holds 105, 120
    assert recovery_steps(hits, 100, 100, 10, 2) is None  # never two within 10 steps: censored
    assert recovery_steps(hits, 100, 100, 50, 0.5) == 5
    # Optimal rate: 1 / mean shortest path from the free cells (other than the goal) to the goal.
    rates = optimal_rates(ModelBasedConfig(changes=4))
    assert rates.shape == (5,) and rates[0] == rates[4] and 1 / 11 < rates[0] < 1 / 10


def test_study_model_based_summary_recovery_by_hand():
    """summarize() on goal reaches laid out by hand: per change, the step after the change at
    which the window first holds `need` reaches, or `every` (censored)."""
    from oakrl.study.model_based import ModelBasedConfig, optimal_rates, summarize

    # threshold 0.535, window 100: need = 53.5 x rate = 4.92 and 4.98 reaches after changes 1 and
    # 2 (5 reaches), but 5.07 at the first segment's rate (6 reaches).
    cfg = ModelBasedConfig(every=1000, changes=2, seeds=2, window=100, threshold=0.535,
                           agents=("stream-q", "dyna"))  # fmt: skip
    assert [int(np.ceil(53.5 * r)) for r in optimal_rates(cfg)] == [6, 5, 5]
    seed, step, ret = [], [], []

    def episodes(s, steps, r):
        seed.extend([s] * len(steps)), step.extend(steps), ret.extend([r] * len(steps))

    for s in (0, 1):
        episodes(s, range(10, 1000, 10), 1.0)  # the first segment: not a recovery
        episodes(s, range(2001, 3000, 3), 0.0)  # change 2: time-outs only (return 0), never the goal
    episodes(0, range(1010, 2000, 10), 1.0)  # change 1: a reach every 10 steps: the 5th at +50
    episodes(1, range(1500, 2001, 10), 1.0)  # change 1 from step 1500: the 5th at 1540, +540
    episodes(1, [2000] * 9, 1.0)  # at the change's own step: still change 1's segment
    order = np.argsort(step, kind="stable")
    r = {"seed": np.asarray(seed)[order], "step": np.asarray(step)[order], "return": np.asarray(ret)[order],
         "diagnostics": {}, "timing": {"agent_steps_per_second": 1.0}}  # fmt: skip
    summary, table = summarize(cfg, {"stream-q": r, "dyna": r})
    rec = summary["agents"]["stream-q"]["recovery_steps"]
    # Catches a recovery counted from the wrong change step, with the wrong segment's rate (6
    # reaches: +60, +550), counting time-outs as reaches, or averaged over the wrong axis.
    assert rec["per_seed"] == pytest.approx([(50 + 1000) / 2, (540 + 1000) / 2])
    assert rec["per_change"] == pytest.approx([(50 + 540) / 2, 1000])
    assert rec["mean"] == pytest.approx((525 + 770) / 2) and rec["censored"] == 2
    assert table["recovery_steps"][:4] == [50, 1000, 540, 1000]
    assert table["censored"][:4] == [False, True, False, True]
    assert summary["verdict"]["recovery_ratio_vs_model_free"] == {"dyna": pytest.approx(1.0)}


def test_study_model_based_end_to_end(tmp_path):
    out = tmp_path / "mb"
    code = main(["study", "model-based", "--out", str(out), "--every", "1000", "--changes", "1",
                 "--seeds", "2", "--window", "200", "--agents", "stream-q,dyna",
                 "--planning-steps", "2"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    table = pq.read_table(out / "metrics.parquet").to_pylist()
    for name in ("stream-q", "dyna"):
        a = summary["agents"][name]
        assert len(a["recovery_steps"]["per_seed"]) == 2
        # Catches a summary that disagrees with the per-change table it writes.
        rows = [r for r in table if r["agent"] == name]
        assert a["recovery_steps"]["per_seed"] == pytest.approx(
            [np.mean([r["recovery_steps"] for r in rows if r["seed"] == seed]) for seed in (0, 1)]
        )
        assert a["recovery_steps"]["censored"] == sum(r["censored"] for r in rows)
        assert np.isfinite(a["final_return"]["mean"])
        # The default value learner is linear in the one-hot cell, for every agent alike.
        assert a["options"]["hidden"] == [] and a["options"]["normalize_obs"] is False
    assert len(summary["agents"]["dyna"]["model_error"]["one_step_per_segment"]) == 2
    assert (out / "figure.png").exists() and (out / "metrics.parquet").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--hidden", "0"], "--hidden takes positive"),
        (["--model-hidden", "linear"], "--model-hidden takes"),
        (["--agents", "dyna"], "stream-q"),
    ],
)
def test_study_model_based_bad_input(tmp_path, capsys, argv, words):
    code = main(["study", "model-based", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_linear_value_learner_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "lin"
    code = main(["run", "--env", "Rooms-v0", "--agent", "dyna", "--steps", "200", "--opt", "hidden=linear",
                 "--opt", "normalize_obs=false", "--opt", "model_hidden=8", "--out", str(out),
                 "--no-plot"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "config.json").read_text())["agent_config"]["hidden"] == []
    capsys.readouterr()
    # An agent that cannot be linear says so before anything is written.
    code = main(["run", "--env", "CartPole-v1", "--agent", "sft-tool", "--steps", "10",
                 "--opt", "hidden=linear", "--out", str(tmp_path / "sft")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "hidden layers" in err and "\n" not in err
    assert not (tmp_path / "sft").exists()
