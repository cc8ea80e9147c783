"""The OaK pieces (oakrl/options) against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.options.features import features_init, features_update, propose_feature
from oakrl.options.model import (
    action_models_init,
    action_models_update,
    option_models_init,
    option_models_live,
    option_models_reset,
    option_models_update,
)
from oakrl.options.option import option_values, pool_init, pool_reset, pool_update, stopping_values
from oakrl.options.planning import plan, projections
from oakrl.report.rooms import render_option

E = np.eye(3, dtype=np.float32)
G = 0.9


def test_feature_activity_and_proposal():
    import jax

    s = features_update(features_init(3), jnp.asarray(E[1]), 0.5)
    np.testing.assert_allclose(s.activity, [0, 0.5, 0])
    taken = jnp.array([False, False, True])
    for i in range(20):  # only component 1 is active and free
        assert int(propose_feature(s, taken, jax.random.key(i))) == 1
    # Nothing active yet: any free component.
    picks = {int(propose_feature(features_init(3), taken, jax.random.key(i))) for i in range(40)}
    assert picks == {0, 1}


def test_option_q_step_towards_stopping_bonus():
    pool = pool_init(jnp.array([2]), actions=2, dim=3)
    # x = e0 --a=1--> e2 (the option's feature): target = r + gamma * max(stop, q) = 0 + 0.9 * (0 + 1 * 1)
    kw = dict(bonus=1.0, gamma=G, lamda=0.5, lr=0.5)
    pool, delta = pool_update(pool, E[0], jnp.int32(1), 0.0, E[2], 0.0, 0.0, 1.0, 1.0, **kw)
    np.testing.assert_allclose(delta, [G], rtol=1e-6)
    np.testing.assert_allclose(pool.q[0, 1], [0.5 * G, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(stopping_values(pool, jnp.asarray(E[2]), 0.25, 1.0), [1.25])
    # Next: e1 --a=1--> e0, reward 1. At e1 the option's q is 0 and stopping is worth v=0: it
    # stops, so the trace of e0 is cut (carry 0); only e1 is updated.
    # target = 1 + 0.9 * max(stop(e0) = 0, max q(e0) = 0.45) = 1.405
    pool, delta = pool_update(pool, E[1], jnp.int32(1), 1.0, E[0], 0.0, 0.0, 1.0, 1.0, **kw)
    np.testing.assert_allclose(delta, [1 + G * 0.5 * G], rtol=1e-6)
    np.testing.assert_allclose(pool.q[0, 1], [0.5 * G, 0.5 * (1 + 0.5 * G * G), 0], rtol=1e-6)
    np.testing.assert_allclose(pool.trace[0, 1], [0, 1, 0])
    # Termination (cont = 0): no bootstrapping, traces cleared.
    pool, delta = pool_update(pool, E[2], jnp.int32(0), 2.0, E[0], 0.0, 0.0, 0.0, 1.0, **kw)
    np.testing.assert_allclose(delta, [2.0])
    assert float(jnp.abs(pool.trace).sum()) == 0.0


def test_option_trace_carries_only_on_greedy_continuing_actions():
    pool = pool_init(jnp.array([2]), actions=2, dim=3)
    pool = pool._replace(q=pool.q.at[0, 1, 1].set(1.0), trace=pool.trace.at[0, 0, 0].set(1.0))
    kw = dict(bonus=1.0, gamma=G, lamda=0.5, lr=0.0)
    # At e1 the greedy action is 1 and q = 1 > stop = 0: taking a=1 keeps the trace (x gamma*lambda).
    kept, _ = pool_update(pool, E[1], jnp.int32(1), 0.0, E[0], 0.0, 0.0, 1.0, 1.0, **kw)
    np.testing.assert_allclose(kept.trace[0, 0, 0], G * 0.5)
    # Taking a=0 (not the option's action) cuts it (Watkins).
    cut, _ = pool_update(pool, E[1], jnp.int32(0), 0.0, E[0], 0.0, 0.0, 1.0, 1.0, **kw)
    assert float(cut.trace[0, 0, 0]) == 0.0 and float(cut.trace[0, 0, 1]) == 1.0


def test_pool_reset_only_the_slot():
    pool = pool_init(jnp.array([0, 1]), actions=2, dim=3)
    pool = pool._replace(q=pool.q + 1.0, age=pool.age + 7)
    new = pool_reset(pool, jnp.int32(1), jnp.int32(2), jnp.bool_(True))
    np.testing.assert_array_equal(new.feature, [0, 2])
    np.testing.assert_array_equal(new.age, [7, 0])
    assert float(new.q[0].sum()) == 6.0 and float(new.q[1].sum()) == 0.0
    same = pool_reset(pool, jnp.int32(1), jnp.int32(2), jnp.bool_(False))
    np.testing.assert_array_equal(same.feature, [0, 1])
    np.testing.assert_allclose(option_values(new, jnp.asarray(E[0])), [[1, 1], [0, 0]])


def test_action_model_learns_one_step():
    m = action_models_init(2, 3)
    m, err = action_models_update(m, E[0], jnp.int32(1), 0.5, E[2], 1.0, 1.0, gamma=G, lr=1.0)
    assert float(err) == pytest.approx(0.5 + G * 2 / 4)
    np.testing.assert_allclose(m.reward[1] @ E[0], 0.5)
    np.testing.assert_allclose(m.outcome[1] @ E[0], [0, 0, G, G], rtol=1e-6)
    np.testing.assert_allclose(m.outcome[0], 0.0)  # other actions untouched
    # Termination: nothing follows.
    m, _ = action_models_update(m, E[0], jnp.int32(1), 0.5, E[2], 0.0, 1.0, gamma=G, lr=1.0)
    np.testing.assert_allclose(m.outcome[1] @ E[0], 0.0, atol=1e-7)


def test_option_model_off_policy_and_stopping():
    m = option_models_init(2, 3)
    pi = jnp.array([1, 0])  # option 0 would take action 1, option 1 action 0
    no, yes = jnp.array([False, False]), jnp.array([True, True])
    m, err = option_models_update(
        m, E[0], jnp.int32(1), 0.5, E[1], pi, no, yes, 1.0, 1.0, gamma=G, lamda=0.5, lr=0.5
    )
    # Option 0 took its own action and stopped at e1: reward 0.5, outcome gamma [e1; 1].
    np.testing.assert_allclose(m.reward[0], [0.25, 0, 0])
    np.testing.assert_allclose(m.outcome[0] @ E[0], [0, 0.5 * G, 0, 0.5 * G], rtol=1e-6)
    # Option 1 would not have taken action 1: ratio 0, nothing learned, error undefined.
    np.testing.assert_allclose(m.reward[1], 0.0)
    assert np.isfinite(err[0]) and np.isnan(err[1])
    # Going on through e1 (no stop) to e2 where it stops, reward 1: the trace credits e0 too.
    m2, _ = option_models_update(
        m, E[1], jnp.int32(1), 1.0, E[2], pi, no, yes, 1.0, 1.0, gamma=G, lamda=0.5, lr=0.5
    )
    assert float(m2.trace[0, 0]) == pytest.approx(G * 0.5) and float(m2.trace[0, 1]) == 1.0
    np.testing.assert_allclose(m2.reward[0, 0], 0.25 + 0.5 * 1.0 * G * 0.5, rtol=1e-6)
    cleared = option_models_reset(m2, jnp.int32(0), jnp.bool_(True))
    assert float(jnp.abs(cleared.outcome[0]).sum()) == 0.0


def test_deferred_reset_equals_the_explicit_one_bit_for_bit():
    """OaK leaves a replaced slot's model rows stale and has the next update read them as zero
    (`fresh`), to skip a pass over the whole outcome tensor. Catches a deferred reset that leaks
    any stale row (reward, outcome or trace) into the next step's predictions or weights."""
    import jax

    k = jax.random.split(jax.random.key(0), 6)
    n, d = 3, 5
    m = option_models_init(n, d)
    m = m._replace(
        reward=jax.random.normal(k[0], (n, d)),
        outcome=jax.random.normal(k[1], (n, d + 1, d)),
        trace=jax.random.uniform(k[2], (n, d)),
    )
    x, x_next = jax.random.uniform(k[3], (d,)), jax.random.uniform(k[4], (d,))
    pi, beta = jnp.array([2, 2, 1]), jnp.array([False, False, True])
    args = (x, jnp.int32(2), 0.7, x_next, pi, beta, beta, 1.0, 1.0)
    kw = dict(gamma=G, lamda=0.5, lr=0.5)
    explicit, err_e = option_models_update(option_models_reset(m, jnp.int32(1), jnp.bool_(True)), *args, **kw)
    fresh = jnp.array([False, True, False])
    deferred, err_d = option_models_update(m, *args, **kw, fresh=fresh)
    for a, b in zip(explicit, deferred, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(err_e, err_d)
    # A reader of a stored state sees the replaced slot's rows as zero, the others as stored.
    live = option_models_live(m, fresh)
    assert float(jnp.abs(live.outcome[1]).sum()) == 0.0
    np.testing.assert_array_equal(live.outcome[0], m.outcome[0])


def test_planning_backup_and_option_credit():
    a = action_models_init(1, 3)
    o = option_models_init(2, 3)
    # Action: from e0 reward 0, lands in e1 (gamma). Option 0: from e0 reward 1 and stops in e2.
    a = a._replace(outcome=a.outcome.at[0, 1, 0].set(G))
    o = o._replace(reward=o.reward.at[0, 0].set(1.0), outcome=o.outcome.at[0, 2, 0].set(G * G))
    theta = jnp.array([0.0, 2.0, 1.0])
    u_act, u_opt = projections(theta, a, o)
    states = jnp.asarray(E[:1])
    avail = jnp.array([[True, True]])
    new, err, use = plan(theta, u_act, u_opt, avail, states, lr=1.0)
    # Q_act = 0.9 * 2 = 1.8; Q_opt0 = 1 + 0.81 * 1 = 1.81; option 1 = 0. Backup to 1.81.
    np.testing.assert_allclose(new[0], 1.81, rtol=1e-6)
    np.testing.assert_allclose(err, 1.81, rtol=1e-6)
    np.testing.assert_allclose(use, [1 + 0.01, 0], rtol=1e-5)
    # Unavailable options are not used.
    new, _, use = plan(theta, u_act, u_opt, jnp.array([[False, False]]), states, lr=1.0)
    np.testing.assert_allclose(new[0], 1.8, rtol=1e-6)
    np.testing.assert_allclose(use, 0.0)


def test_planning_bound_keeps_an_expansive_model_finite():
    """Dense features: a learned linear model that predicts 1.2x the features it starts from (no
    true model does, a fitted one can) makes value iteration grow theta by 1.2x a round without
    limit; clipped to the bound, the values planned at the states stay inside it and theta stays
    finite. A target inside the bound is left as it is."""
    a = action_models_init(1, 2)
    a = a._replace(reward=a.reward.at[0].set(0.1), outcome=a.outcome.at[0, :2].set(1.2 * jnp.eye(2)))
    o = option_models_init(1, 2)
    states = jnp.array([[1.0, 0.5], [0.3, 1.0]])
    avail = jnp.zeros((2, 1), bool)

    def rounds(bound, n=300):
        theta = jnp.zeros(2)
        for _ in range(n):
            u_act, u_opt = projections(theta, a, o)
            theta, _, _ = plan(theta, u_act, u_opt, avail, states, lr=1.0, bound=bound)
        return theta

    assert float(jnp.abs(states @ rounds(None)).max()) > 1e6  # 1.2 ** 300: it diverges
    theta = rounds(jnp.asarray(2.0))
    assert np.isfinite(np.asarray(theta)).all()
    assert float(jnp.abs(states @ theta).max()) <= 2.0 * (1 + 1e-5)
    # One round from theta = 0 stays inside the bound: the same numbers as with no bound.
    np.testing.assert_array_equal(rounds(jnp.asarray(100.0), 1), rounds(None, 1))


def test_render_option_on_rooms():
    q = np.zeros((4, 169), np.float32)
    q[1, 1 * 13 + 1] = 0.5  # at (1,1) go right, towards the feature at (1,2)
    text = render_option(q, np.zeros(169, np.float32), 1 * 13 + 2, 1.0).splitlines()
    assert text[0] == "#" * 13
    assert text[1][1:3] == ">*"
    assert text[2][1] == "o"  # q = 0 = stopping value: it stops


def test_projections_leave_out_the_discount_row():
    # projections() pads theta with a 0 for the outcome's last row (the discount); a pad in the
    # wrong place, or none, would add the discount row into U and inflate every model value.
    rng = np.random.default_rng(0)
    theta = jnp.asarray(rng.normal(size=3), jnp.float32)
    a = action_models_init(2, 3)._replace(outcome=jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32))
    o = option_models_init(3, 3)._replace(
        reward=jnp.asarray(rng.normal(size=(3, 3)), jnp.float32),
        outcome=jnp.asarray(rng.normal(size=(3, 4, 3)), jnp.float32),
    )
    u_act, u_opt = projections(theta, a, o)
    np.testing.assert_allclose(u_act, a.reward + np.einsum("aod,o->ad", a.outcome[:, :3], theta), rtol=1e-5)
    np.testing.assert_allclose(u_opt, o.reward + np.einsum("nod,o->nd", o.outcome[:, :3], theta), rtol=1e-5)
