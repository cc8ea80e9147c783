"""Market-v0 (Calvano et al. 2020) and the paper's tabular Q-learner, against hand-computed values."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents.tabular_q import epsilon_at, q_update, tabular_q
from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep, first_timestep
from oakrl.envs.market import (
    Market,
    demand,
    joint_profits_table,
    market_params,
    paper_q0,
    profit_gain,
    profits,
    state_index,
)
from oakrl.errors import ConfigError

P = market_params()


def test_demand_and_profit_by_hand():
    # catches a wrong logit (sign, scale mu, missing outside good): at p = (1.5, 1.5),
    # exp((2 - 1.5) / 0.25) = e^2 for each good, e^0 = 1 for the outside good
    e2 = math.exp(2.0)
    q = e2 / (2 * e2 + 1)
    np.testing.assert_allclose(demand(jnp.array([1.5, 1.5]), P), [q, q], rtol=1e-6)
    np.testing.assert_allclose(profits(jnp.array([1.5, 1.5]), P), [0.5 * q, 0.5 * q], rtol=1e-6)
    # asymmetric prices: the cheaper seller sells more
    ea, eb = math.exp((2 - 1.4) / 0.25), math.exp((2 - 1.8) / 0.25)
    want = [0.4 * ea / (ea + eb + 1), 0.8 * eb / (ea + eb + 1)]
    np.testing.assert_allclose(profits(jnp.array([1.4, 1.8]), P), want, rtol=1e-6)


def test_nash_and_monopoly_prices():
    # the baseline's p^N ~ 1.473 and p^M ~ 1.925 (as the paper's grid is built around them)
    np.testing.assert_allclose(P.nash_price, [1.4729, 1.4729], atol=2e-4)
    np.testing.assert_allclose(P.monopoly_price, [1.9250, 1.9250], atol=2e-4)
    # catches a wrong first-order condition: Nash is a best response on a fine grid ...
    grid = jnp.linspace(1.2, 2.4, 12001)
    pn = float(P.nash_price[0])
    own = jax.vmap(lambda p: profits(jnp.array([p, pn]), P)[0])(grid)
    assert abs(float(grid[jnp.argmax(own)]) - pn) < 2e-4
    # ... and monopoly maximises joint profit (over both prices, coarse 2-D grid around it)
    g = jnp.linspace(1.7, 2.15, 451)
    joint = jax.vmap(lambda a: jax.vmap(lambda b: profits(jnp.array([a, b]), P).sum())(g))(g)
    i, j = np.unravel_index(int(jnp.argmax(joint)), joint.shape)
    assert abs(float(g[i]) - 1.925) < 2e-3 and abs(float(g[j]) - 1.925) < 2e-3
    np.testing.assert_allclose(profit_gain(P.nash_profit, P), [0, 0], atol=1e-6)
    np.testing.assert_allclose(profit_gain(P.monopoly_profit, P), [1, 1], atol=1e-6)


def test_price_grid():
    # 15 equally spaced prices over [p^N - 0.1 (p^M - p^N), p^M + 0.1 (p^M - p^N)]
    pn, pm = float(P.nash_price[0]), float(P.monopoly_price[0])
    grid = np.asarray(P.prices[0])
    assert grid.shape == (15,)
    np.testing.assert_allclose(grid[[0, -1]], [pn - 0.1 * (pm - pn), pm + 0.1 * (pm - pn)], rtol=1e-6)
    np.testing.assert_allclose(np.diff(grid), (pm - pn) * 1.2 / 14, rtol=1e-4)


def test_world_step_and_paper_init():
    env = Market()
    obs, state = env.reset(jax.random.key(0), P)
    assert obs.shape == (2, 2)
    acts = jnp.array([3, 7], jnp.int32)
    obs, state, r, term, trunc, info = env.step(jax.random.key(1), state, acts, P)
    np.testing.assert_array_equal(obs, [[3, 7], [3, 7]])  # the state is last period's prices
    np.testing.assert_allclose(r, profits(P.prices[0, jnp.array([3, 7])], P), rtol=1e-6)
    assert not bool(term) and not bool(trunc)
    assert int(state_index(acts, 15)) == 3 + 7 * 15
    # the paper's eq. 8: Q0_i(a) = mean over the rival's prices of pi_i / (1 - delta)
    table = np.asarray(joint_profits_table(P))
    q0 = np.asarray(paper_q0(P, 0.95))
    by_hand = np.array([table[a, :, 0].mean() / 0.05 for a in range(15)])
    np.testing.assert_allclose(q0[0], by_hand, rtol=1e-5)
    np.testing.assert_allclose(q0[1], q0[0], rtol=1e-5)  # symmetric sellers


def test_q_update_by_hand():
    # Q[s,a] = 1, r = 0.5, max Q[s'] = 2: 0.85 * 1 + 0.15 * (0.5 + 0.95 * 2) = 1.21
    q = jnp.ones((4, 3)).at[2].set(jnp.array([0.0, 2.0, 1.0]))
    new, changed = q_update(q, 0, 1, 0.5, 2, 0.15, 0.95)
    assert float(new[0, 1]) == pytest.approx(1.21, abs=1e-6)
    assert bool(changed)  # row 0 was all ones (argmax 0); now entry 1 is largest
    np.testing.assert_array_equal(np.delete(np.asarray(new).ravel(), 1), np.delete(np.asarray(q).ravel(), 1))
    assert float(epsilon_at(jnp.int32(250_000), 4e-6)) == pytest.approx(math.exp(-1), rel=1e-6)


def test_agent_learns_then_acts():
    # catches learning on the first step (no transition yet) and a wrong transition (s, a, r, s')
    agent = tabular_q(init_value=1.0, beta=1.0)
    state = agent.init(jax.random.key(0), ArraySpec((2,)), DiscreteSpec(15))
    assert state.q.shape == (225, 15)
    state, a0, _ = agent.step(state, first_timestep(jnp.array([1.0, 2.0])), jax.random.key(1))
    assert float(jnp.abs(state.q - 1.0).max()) == 0.0
    ts = TimeStep(jnp.array([4.0, 5.0]), jnp.float32(0.5), jnp.bool_(False), jnp.bool_(False))
    state, _, _ = agent.step(state, ts, jax.random.key(2))
    s = 1 + 2 * 15
    assert float(state.q[s, a0]) == pytest.approx(0.85 + 0.15 * (0.5 + 0.95), abs=1e-6)
    assert float(jnp.abs(state.q.at[s, a0].set(1.0) - 1.0).max()) == 0.0


def test_short_study(tmp_path):
    # a fast market (exploration gone after ~1e4 periods): every session converges and freezes,
    # the limit cycle's profit gain is finite, the impulse response has its shape
    from oakrl.study.market import MarketStudyConfig, study_market

    cfg = MarketStudyConfig(
        sessions=4,
        beta=5e-4,
        converge_periods=1000,
        max_periods=60_000,
        chunk=1000,
        transient=100,
        cycle_window=120,
        impulse_periods=5,
    )
    s = study_market(cfg, tmp_path / "m", echo=lambda _: None, log=lambda _: None)
    assert s["converged_share"] == 1.0
    assert -1.0 < s["profit_gain_mean"] < 1.2
    assert s["timing"]["scan_periods"] < 60_000  # stopped once all converged
    if s["impulse"]["mean_prices"] is not None:
        assert np.asarray(s["impulse"]["mean_prices"]).shape == (7, 2)
    assert (tmp_path / "m" / "figure.png").exists() and (tmp_path / "m" / "summary.json").exists()


def test_registry_and_joint_view():
    # catches a multi-learner world reachable with one learner, or --learners on a one-learner world
    from oakrl.envs import make_env
    from oakrl.errors import ConfigError

    with pytest.raises(ConfigError, match="learners >= 2"):
        make_env("Market-v0")
    with pytest.raises(ConfigError, match="one learner"):
        make_env("CartPole-v1", learners=2)
    h = make_env("Market-v0", learners=2)
    assert h.obs_spec.shape == (2, 3) and h.num_learners == 2 and h.continuing
    obs, state = h.env.reset(jax.random.key(0), h.params)
    obs, state, r, *_, info = h.env.step(jax.random.key(1), state, jnp.array([0, 14]), h.params)
    pi = profits(h.params.prices[0, jnp.array([0, 14])], h.params)
    np.testing.assert_allclose(obs[:, 2], pi, rtol=1e-6)  # each learner's own reward, last column
    np.testing.assert_allclose(obs[:, :2], [[0, 14], [0, 14]])
    assert float(r) == pytest.approx(float(pi.mean()), rel=1e-6)
    assert set(info) == {"task", "price", "profit_gain"}


def test_impulse_response_forces_the_deviation():
    # catches a deviation that is never applied (a sign slip once left the path flat): both
    # sellers' greedy strategy is "price 10 whatever happened"; seller 0's one-shot best
    # response to price 10 is cheaper; after that one period both are back at 10
    from oakrl.study.market import MarketStudyConfig, Session, analyse_sessions

    cfg = MarketStudyConfig(sessions=1, transient=5, cycle_window=10, impulse_periods=3)
    q = jnp.zeros((1, 2, 225, 15)).at[..., 10].set(1.0)
    z = jnp.zeros((1,), jnp.int32)
    keys = jax.random.split(jax.random.key(0), 1)
    c = Session(q, jnp.array([[3, 4]], jnp.int32), z, z, jnp.ones((1,), bool), keys, jnp.zeros((1,)), z)
    per = analyse_sessions(cfg, P, c)
    rival = float(P.prices[1, 10])
    br = int(jnp.argmax(jax.vmap(lambda p: profits(jnp.array([p, rival]), P)[0])(P.prices[0])))
    assert br < 10
    imp = per["impulse"][0]  # [1 + 1 + 3, 2]
    np.testing.assert_allclose(imp[:, 1], rival)  # "always 10" never punishes
    np.testing.assert_allclose(imp[:, 0], [rival, float(P.prices[0, br]), rival, rival, rival])
    assert int(per["cycle"][0]) == 1


def test_shared_foraging_items_are_shared_and_gone():
    # catches an item paid twice (to each learner on it) or left in place after being eaten
    from oakrl.envs.shared_foraging import SharedForaging, SharedForagingState

    env = SharedForaging(num_learners=3, size=8, items=2)
    state = SharedForagingState(
        agents=jnp.array([[1, 1], [1, 3], [5, 5]], jnp.int32),
        items=jnp.array([[1, 2], [7, 7]], jnp.int32),
        time=jnp.zeros((), jnp.int32),
    )
    # learner 0 moves right, learner 1 left: both reach item 0 at (1, 2); learner 2 moves up
    obs, new, r, term, trunc, info = env.step(jax.random.key(3), state, jnp.array([1, 3, 0]))
    np.testing.assert_allclose(r, [0.5, 0.5, 0.0])
    assert float(info["items_eaten"]) == 1.0
    np.testing.assert_array_equal(new.items[1], [7, 7])  # the uneaten one stays
    assert obs.shape == (3, 8, 8, 2)
    # learner 2 at (4, 5) sees itself at the centre (4, 4): learners 0 and 1 both at (1, 2) -> (1, 1)
    assert float(obs[2, 1, 1, 1]) == 2.0 and float(obs[2, :, :, 1].sum()) == 2.0
    assert float(obs[2, :, :, 0].sum()) == 2.0  # two items, wherever they are


@pytest.mark.parametrize("args", [["--alpha", "1.5"], ["--delta", "1"], ["--sessions", "0"]])
def test_study_bad_input_is_a_config_error(tmp_path, args):
    from click.testing import CliRunner

    from oakrl.errors import ConfigError
    from oakrl.study.cli import study

    r = CliRunner().invoke(study, ["market", *args, "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError), r.output
    assert not (tmp_path / "x").exists()  # nothing written before the input is checked


def test_per_learner_metrics_curves_and_report(tmp_path):
    """A run of two learners of different kinds: summary.json, curve.png and `oakrl report` show
    each learner's own reward. Catches learners missing from any of the three, the joint agent's
    name standing in for the learners' own, and a lifetime average that is not the step-weighted
    mean of the chunk means (checked by hand from diagnostics.parquet)."""
    import json

    from oakrl.cli import main
    from oakrl.lab import metrics, tables
    from oakrl.report.report import report

    out = tmp_path / "run"
    argv = ["run", "--env", "SharedForaging-v0", "--agent", "stream-q,stream-ac", "--learners", "2"]
    argv += ["--steps", "300", "--chunk", "100", "--window", "100", "--seeds", "2", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    agents = [r["agent"] for r in summary["learners"]]
    assert agents == ["stream-q", "stream-ac"]
    diag = tables.read_table(out / "diagnostics.parquet")
    for i, row in enumerate(summary["learners"]):
        for seed in range(2):
            rates = diag[f"l{i}/reward"][diag["seed"] == seed]
            assert row["average_reward"]["per_seed"][seed] == pytest.approx(float(np.mean(rates)), rel=1e-6)
            assert row["final_reward_rate"]["per_seed"][seed] == pytest.approx(float(rates[-1]))
    rates = metrics.learner_rates(diag, 2)
    assert sorted(rates) == [0, 1] and rates[0][1].shape == (2, 3)
    text = report([str(out)])
    assert "learners (reward per step)" in text and "stream-ac" in text
    assert (out / "curve.png").stat().st_size > 0


def test_per_learner_options_reach_each_learner_and_bad_ones_are_one_line(tmp_path):
    """`--opt KEY=V` goes to every learner that has KEY, `--opt lI.KEY=V` to learner I only, and
    both are recorded and reported. Catches `--opt alpha=...` with --learners 2 being refused
    ("joint has no option 'alpha'": it was), a per-learner value reaching the wrong learner or
    none, and a bad key or index ending in a traceback instead of one line."""
    import json

    from oakrl.cli import main
    from oakrl.lab.parse import spec_from_cli
    from oakrl.lab.run import build
    from oakrl.report.report import report

    spec = spec_from_cli(
        None, {"env": "Market-v0", "agent": "tabular-q", "learners": 2}, ["alpha=0.1", "l1.alpha=0.05"]
    )
    configs = build(spec)[1].config.learner_configs()  # as the run builds them (resolved)
    assert [c.alpha for c in configs] == [0.1, 0.05]
    mixed = spec_from_cli(
        None, {"env": "SharedForaging-v0", "agent": "stream-q,stream-ac"}, ["l1.entropy=0.05", "lr=0.5"]
    )
    q, ac = build(mixed)[1].config.learner_configs()
    assert (q.lr, ac.lr, ac.entropy) == (0.5, 0.5, 0.05)

    out = tmp_path / "run"
    argv = ["run", "--env", "Market-v0", "--agent", "tabular-q", "--learners", "2", "--opt", "l1.alpha=0.05"]
    assert main([*argv, "--steps", "200", "--chunk", "100", "--no-plot", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["agent_options"] == {
        "learner_options": {"1": {"alpha": 0.05}}
    }
    rows = json.loads((out / "summary.json").read_text())["learners"]
    assert [r["agent"] for r in rows] == ["tabular-q", "tabular-q"] and rows[1]["options"] == {"alpha": 0.05}
    assert "options" not in rows[0] and "tabular-q (alpha=0.05)" in report([str(out)])
    assert main(["resume", str(out), "--no-plot"]) == 0  # the options are part of the run's identity

    for bad, says in [
        ("l2.alpha=0.1", "there are 2 learners"),
        ("l1.lr=0.1", "learner 1 (tabular-q) has no option 'lr'"),
        ("zeta=1", "no learner (tabular-q, tabular-q) has option 'zeta'"),
        ("learner_options={'1': 3}", "must be a table of options"),
        ("learner_options={'7': {'alpha': 0.1}}", "is not a learner index"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            spec_from_cli(None, {"env": "Market-v0", "agent": "tabular-q", "learners": 2}, [bad])
