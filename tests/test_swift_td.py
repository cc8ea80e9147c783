"""SwiftTD (oakrl/learn/swift_td.py) against numbers worked out by hand and against plain numpy
transcriptions of the algorithms it builds on. Each test says which bug it catches."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.errors import ConfigError
from oakrl.learn.swift_td import swift_td


def close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def step(opt, state, x, delta, reset=False):
    u, state = opt.update({"w": jnp.asarray(x, jnp.float32)}, state, delta=jnp.float32(delta), reset=reset)
    return np.asarray(u["w"], np.float64), state


def test_two_steps_by_hand_bound_and_decay():
    # gamma lambda = 0.25, alpha_init 0.5, eta 1, decay 0.5, theta 0.1 (worked out in the comments).
    # Catches: the bound not applied or applied to the wrong quantity (tau = sum alpha x^2, not
    # sum alpha x), B taken before the trace decay, the true online correction -zd V_delta missing
    # or V_delta not the last update's dot with x, the decay not scaled by x^2, the meta-traces
    # not cleared when the bound is hit.
    opt = swift_td(eta=1.0, gamma=0.5, lamda=0.5, alpha_init=0.5, decay=0.5, meta_step=0.1)
    s = opt.init({"w": jnp.zeros(2)})
    # Step 1, x = [1, 0], delta 1: tau 0.5 <= 1, zd = z = zb = [.5, 0]; dw = delta z = [.5, 0];
    # p = 0 so beta stays; h = zb = [.5, 0]; traces decay by 0.25: z = zb = [.125, 0].
    u1, s = step(opt, s, [1.0, 0.0], 1.0)
    close(u1, [0.5, 0.0])
    close(s.z["w"], [0.125, 0.0])
    close(s.z_bar["w"], [0.125, 0.0])
    close(s.h["w"], [0.5, 0.0])
    # Step 2, x = [1, 2], delta -0.5: V_delta = [.5, 0].[1, 2] = .5; tau = .5 + .5*4 = 2.5 > 1,
    # m = 0.4, zd = .4 * .5 * [1, 2] = [.2, .4]; B = .125; z = [.125 + .2*.875, .4*.875] = [.3, .35];
    # reference delta = -.5 + .5 = 0, so dw = -zd V_delta = [-.1, -.2]; bound hit: beta +=
    # log(.5) x^2 -> alpha = [.25, .5^5], h and z_bar cleared, then h = -zd V_delta = [-.1, -.2].
    u2, s = step(opt, s, [1.0, 2.0], -0.5)
    close(u2, [-0.1, -0.2])
    close(np.exp(s.beta["w"]), [0.25, 0.5**5])
    close(s.z["w"], [0.25 * 0.3, 0.25 * 0.35])
    close(s.z_bar["w"], [0.0, 0.0])
    close(s.h["w"], [-0.1, -0.2])
    close(s.step_size, 1.0)  # m tau = eta
    close(s.rate, 2.5)


def test_three_steps_by_hand_meta_step():
    # One feature, x = 1, delta = 1 each step, gamma lambda 0.25, alpha 0.5, eta 10 (never hit).
    # Catches: p fed from h instead of the step before's h (p is 0 until step 3), the meta-step
    # using the reference's delta instead of the true online one, theta not divided by alpha.
    opt = swift_td(eta=10.0, gamma=0.5, lamda=0.5, alpha_init=0.5, decay=0.5, meta_step=0.1)
    s = opt.init({"w": jnp.zeros(1)})
    u1, s = step(opt, s, [1.0], 1.0)
    close(u1, [0.5])  # zd = z = zb = .5; h = .5; then z = zb = .125
    # Step 2: V_delta .5, B .125, z = .125 + .5*.875 = .5625, zb = .125 + .5*(1 - .125 - .125) = .5,
    # h_t = .5 - .5*.5 = .25, delta_ref 1.5: dw = 1.5*.5625 - .5*.5 = .59375; p = h_old = 0;
    # h = .25 + 1.5*.5 - .5*.5 = .75, h_old = .5.
    u2, s = step(opt, s, [1.0], 1.0)
    close(u2, [0.59375])
    close(s.h["w"], [0.75])
    close(np.exp(s.beta["w"]), [0.5])
    # Step 3: V_delta .59375, B = .140625, z = .140625 + .5*.859375 = .5703125; p = h_old = .5;
    # dw = 1.59375*.5703125 - .5*.59375 = .612060546875; beta += .1/.5 * 1 * .5 = .1.
    u3, s = step(opt, s, [1.0], 1.0)
    close(u3, [0.612060546875])
    close(s.beta["w"], [math.log(0.5) + 0.1])


def true_online_td(xs, rewards, dones, alpha, gamma, lamda):
    """van Seijen et al. (2016), Algorithm 1, scalar alpha; episodes restart e and V_old."""
    w = np.zeros(xs.shape[1])
    e, v_old = np.zeros_like(w), 0.0
    out = []
    for k in range(len(rewards)):
        x, x2 = xs[k], xs[k + 1] * (1.0 - dones[k])  # the terminal state has x' = 0
        v, v2 = w @ x, w @ x2
        delta = rewards[k] + gamma * v2 - v
        e = gamma * lamda * e + (1 - alpha * gamma * lamda * e @ x) * x
        w = w + alpha * (delta + v - v_old) * e - alpha * (v - v_old) * x
        v_old = v2
        if dones[k]:
            e, v_old = np.zeros_like(w), 0.0
        out.append(w.copy())
    return np.array(out)


def run_swift(opt, xs, rewards, dones, gamma):
    """Drives the optimiser as stream-td does: delta at the current weights, w += update."""
    w = jnp.zeros(xs.shape[1])
    state = opt.init({"w": w})

    @jax.jit  # one compiled step (300 eager steps of small ops took ~20 s on the loaded machine)
    def one(w, state, x, x2, r, done):
        delta = r + gamma * (1.0 - done) * (w @ x2) - w @ x
        u, state = opt.update({"w": x}, state, delta=delta, reset=done > 0)
        return w + u["w"], state

    out = []
    for k in range(len(rewards)):
        x, x2 = jnp.asarray(xs[k], jnp.float32), jnp.asarray(xs[k + 1], jnp.float32)
        w, state = one(w, state, x, x2, jnp.float32(rewards[k]), jnp.float32(dones[k]))
        out.append(np.asarray(w, np.float64))
    return np.array(out), state


def test_without_meta_step_or_bound_it_is_true_online_td():
    # theta 0, eta huge, decay 1: SwiftTD must be True Online TD(lambda) with alpha = alpha_init,
    # episodes included. Catches: a plain accumulating trace (no (1 - B) factor), the correction
    # term's sign, V_delta carried across an episode's end, B computed before the decay.
    rng = np.random.default_rng(0)
    n, d, gamma, lamda, alpha = 60, 5, 0.9, 0.8, 0.05
    xs = rng.normal(size=(n + 1, d))
    rewards = rng.normal(size=n)
    dones = (rng.random(n) < 0.1).astype(np.float64)
    expected = true_online_td(xs, rewards, dones, alpha, gamma, lamda)
    opt = swift_td(eta=1e9, gamma=gamma, lamda=lamda, alpha_init=alpha, decay=1.0, meta_step=0.0)
    got, _ = run_swift(opt, xs, rewards, dones, gamma)
    close(got, expected, rtol=1e-4, atol=1e-5)


def swift_td_reference_order(xs, rewards, gamma, lamda, alpha0, eta, decay, theta, meta_trace="released"):
    """SwiftTD in the authors' order of operations (SwiftTDNonSparse::Step: learn from the TD
    error of x_{t-1} -> x_t with v_old, then add x_t), one continuing stream, numpy float64,
    with the reset of meta-traces on active features only (the choice oakrl documents).
    meta_trace "2024": the h recursion of their commit cdb07ce (SwiftTDReorganizedCache::Step)."""
    d = xs.shape[1]
    w, z, zd, dw, h, h_old, h_temp, zb, p = (np.zeros(d) for _ in range(9))
    beta = np.full(d, math.log(alpha0))
    v_old = v_delta = 0.0
    out = []
    for t in range(len(xs)):
        x = xs[t]
        r = rewards[t - 1] if t > 0 else 0.0
        v = w @ x
        delta = r + gamma * v - v_old
        dw = delta * z - zd * v_delta
        w = w + dw
        beta = np.clip(beta + theta / np.exp(beta) * (delta - v_delta) * p, math.log(1e-10), math.log(eta))
        h_old = h.copy()
        if meta_trace == "released":
            h = h_temp + delta * zb - zd * v_delta
            h_temp = h.copy()
        else:
            h = h_temp.copy()
            h_temp = h + delta * zb - zd * v_delta
        z, p, zb = gamma * lamda * z, gamma * lamda * p, gamma * lamda * zb
        if t > 0:
            out.append(w.copy())
        tau = np.sum(np.exp(beta) * x * x)
        b = z @ x
        v_delta = dw @ x
        m = min(1.0, eta / tau) if tau > 0 else 1.0
        zd = m * np.exp(beta) * x
        z = z + zd * (1 - b)
        zb = zb + zd * (1 - b - zb * x)
        act = x != 0
        if meta_trace == "released":
            p = p + h_old * x
            h_temp = h - h_old * x * (z - zd) - h * zd * x
            if tau > eta:
                h_temp[act] = h[act] = h_old[act] = zb[act] = 0.0
        else:
            p = p + h * x
            h_temp = h_temp - h_old * x * (z - zd) - h * zd * x
            if tau > eta:
                h_temp[act] = h_old[act] = zb[act] = 0.0
        if tau > eta:
            beta = beta + math.log(decay) * x * x
        v_old = v
    return np.array(out)


@pytest.mark.parametrize("meta_trace", ["released", "2024"])
def test_matches_the_authors_order_of_operations(meta_trace):
    # Random features (some exactly 0), the bound hit now and then, the meta-step active.
    # Catches any slip in the half-step reordering (V_delta, the reference delta = delta +
    # V_delta, which h and beta the two halves read), which the hand examples are too short to show;
    # "2024": the same for the h recursion of the authors' 2024 commit.
    rng = np.random.default_rng(1)
    n, d, gamma, lamda = 300, 6, 0.9, 0.9
    xs = rng.normal(size=(n + 1, d)) * (rng.random((n + 1, d)) < 0.7)
    rewards = rng.normal(size=n) + xs[1:, 0]
    kw = dict(alpha0=0.02, eta=0.15, decay=0.99, theta=0.01)
    expected = swift_td_reference_order(xs, rewards, gamma, lamda, **kw, meta_trace=meta_trace)
    opt = swift_td(kw["eta"], gamma, lamda, kw["alpha0"], kw["decay"], kw["theta"], meta_trace=meta_trace)
    got, state = run_swift(opt, xs, rewards, np.zeros(n), gamma)
    close(got, expected, rtol=2e-3, atol=2e-4)
    alphas = np.exp(np.asarray(state.beta["w"]))
    assert np.ptp(alphas) > 1e-3  # the step sizes did move apart (the test exercises the meta-step)


def ring(n_states=5, d=8, scale=10.0, seed=0):
    """A deterministic ring of states with large, linearly independent features, and its values."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    feats = scale * q[:n_states]  # ||x||^2 = 100 for every state
    rewards = rng.normal(size=n_states)
    return feats, rewards


def test_bounded_where_plain_td_with_the_same_step_diverges():
    # ||x||^2 = 100: TD(lambda) with alpha 0.1 has alpha ||x||^2 = 10 and blows up; SwiftTD
    # started at the same step size bounds its rate of learning at eta and converges to the
    # true values (exact here: the features span the states). Catches the bound missing.
    feats, r = ring()
    n_states, gamma, lamda, alpha, steps = len(feats), 0.9, 0.8, 0.1, 3000
    perm = np.roll(np.eye(n_states), 1, axis=1)
    v_true = np.linalg.solve(np.eye(n_states) - gamma * perm, r)
    idx = np.arange(steps + 1) % n_states
    xs, rewards = feats[idx], r[idx[:-1]]

    # Plain TD(lambda) with accumulating traces, numpy.
    w, e = np.zeros(feats.shape[1]), np.zeros(feats.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(200):
            delta = rewards[k] + gamma * w @ xs[k + 1] - w @ xs[k]
            e = gamma * lamda * e + xs[k]
            w = w + alpha * delta * e
    assert not np.all(np.isfinite(w)) or np.max(np.abs(w)) > 1e6

    opt = swift_td(eta=0.1, gamma=gamma, lamda=lamda, alpha_init=alpha)
    state = opt.init({"w": jnp.zeros(feats.shape[1])})

    def body(carry, k):
        w, state = carry
        x, x2 = jnp.asarray(xs)[k], jnp.asarray(xs)[k + 1]
        delta = jnp.asarray(rewards)[k] + gamma * w @ x2 - w @ x
        u, state = opt.update({"w": x}, state, delta=delta)
        return (w + u["w"], state), state.step_size

    (w, state), rates = jax.lax.scan(jax.jit(body), (jnp.zeros(feats.shape[1]), state), jnp.arange(steps))
    v = feats @ np.asarray(w, np.float64)
    assert np.all(np.asarray(rates) <= 0.1 + 1e-6)
    close(v, v_true, rtol=0.0, atol=0.05 * np.max(np.abs(v_true)))


def test_agents_take_it_where_it_fits():
    # Catches: swift-td accepted on a deep network or on an agent whose prediction it does not
    # fit (off-policy stream-q), and the linear stream-td / stream-sarsa not running it.
    from oakrl.agents import stream_sarsa, stream_td
    from oakrl.agents.stream_q import StreamQConfig
    from oakrl.agents.stream_td import StreamTDConfig
    from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep

    with pytest.raises(ConfigError, match="hidden=linear"):
        StreamTDConfig.build({"optimizer": "swift-td"})
    with pytest.raises(ConfigError, match="stream-q cannot"):
        StreamQConfig.build({"optimizer": "swift-td", "hidden": ()})
    with pytest.raises(ConfigError, match="lr scales eta"):  # not a ValueError traceback at build
        StreamTDConfig.build({"optimizer": "swift-td", "hidden": (), "lr": 1e-12})
    obs_spec, act = ArraySpec((4,), jnp.float32), DiscreteSpec(2)
    for make in (stream_td, stream_sarsa):
        agent = make(optimizer="swift-td", hidden=())
        state = agent.init(jax.random.PRNGKey(0), obs_spec, act)
        obs = jax.random.normal(jax.random.PRNGKey(1), (30, 4))

        def body(state, o, agent=agent):
            ts = TimeStep(o, jnp.float32(1.0), jnp.bool_(False), jnp.bool_(False))
            state, _, info = agent.step(state, ts, jax.random.PRNGKey(2))
            return state, info["td_error"]

        _, deltas = jax.lax.scan(jax.jit(body), state, obs)
        assert np.all(np.isfinite(np.asarray(deltas)))
        assert np.any(np.asarray(deltas) != 0)


def test_resume_with_swift_td_state_is_bit_identical(tmp_path):
    # stream-td linear with SwiftTD: 400 steps straight, against 200 steps, a checkpoint written
    # and read back (the lab's npz), then the last 200. Catches SwiftTD's state (beta, the
    # meta-traces, the last update for V_delta) lost or altered by a resume.
    from oakrl.lab.spec import RunSpec
    from tests.test_resume import assert_chunk_resume_is_bit_identical

    options = {"optimizer": "swift-td", "hidden": ()}
    spec = RunSpec(env="CartPole-v1", agent="stream-td", steps=400, seeds=2, chunk=200, agent_options=options)
    assert_chunk_resume_is_bit_identical(spec, tmp_path)
