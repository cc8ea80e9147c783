"""stream-ac's continuous update against the stream-x update written out from its description.

Issue 21's audit: stream AC on Walker2d learned ~3x slower than the paper, so every piece of
the update is checked here against an independent transcription of what stream-x's
`update_params` and ObGD do (Elsayed, Vasan & Mahmood 2024): the critic's trace of -grad v(s)
and the actor's trace of grad[-log pi(a|s) - entropy * sign(delta) * H], each net's own ObGD
bound over all its parameters (biases included), delta_bar = max(|delta|, 1), kappa 2 / 3,
theta <- theta - step * delta * z, and the traces zeroed after an update where the episode
ended (terminated or truncated: no bootstrap there either). The log-probability is of the
unclipped action. Normalisation is off here: tests/test_obs_raw_tail.py and
tests/test_agents.py cover it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.agents import make_agent
from oakrl.core.types import ArraySpec, TimeStep, first_timestep
from oakrl.learn.nets import make_network
from oakrl.learn.traces import trace_in_effect

OBS = ArraySpec((5,), jnp.float32)
ACT = ArraySpec((2,), jnp.float32, -1.0, 1.0)
GAMMA, LAMDA, ENT, KAPPA_V, KAPPA_P = 0.99, 0.8, 0.01, 2.0, 3.0
HIDDEN = (16, 16)


def _reference(v, p, zv, zp, s, a, r, s2, done):
    """One stream-x update of (critic v, actor p) with traces (zv, zp); returns the same four."""
    v_net, p_net = make_network((5,), 1, HIDDEN, 0.9), make_network((5,), 4, HIDDEN, 0.9)
    value = lambda q, x: v_net.apply({"params": q}, x)[0]  # noqa: E731
    delta = r + GAMMA * (0.0 if done else 1.0) * value(v, s2) - value(v, s)

    def actor_loss(q):
        out = p_net.apply({"params": q}, s)
        mu, std = out[:2], jax.nn.softplus(out[2:])
        log_prob = jnp.sum(-((a - mu) ** 2) / (2 * std**2) - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))
        entropy = jnp.sum(0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(std))
        return -log_prob - ENT * entropy * jnp.sign(delta)

    def obgd(params, z, loss_grad, kappa):
        z = jax.tree.map(lambda e, g: GAMMA * LAMDA * e + g, z, loss_grad)
        z_sum = sum(float(jnp.sum(jnp.abs(e))) for e in jax.tree.leaves(z))
        m = max(abs(float(delta)), 1.0) * z_sum * 1.0 * kappa
        step = 1.0 / m if m > 1 else 1.0
        params = jax.tree.map(lambda w, e: w - step * delta * e, params, z)
        if done:
            z = jax.tree.map(jnp.zeros_like, z)
        return params, z

    gv = jax.grad(lambda q: -value(q, s))(v)
    gp = jax.grad(actor_loss)(p)
    v, zv = obgd(v, zv, gv, KAPPA_V)
    p, zp = obgd(p, zp, gp, KAPPA_P)
    return v, p, zv, zp


def close(x, y) -> None:
    np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6)


def test_continuous_update_equals_stream_x_update():
    # Catches: a sign or scale error in the actor's or critic's trace, the ObGD bound taken over
    # both nets or without biases, a kappa swapped, the entropy term's sign, the log-probability
    # of the clipped action, a bootstrap or a kept trace where the episode ended.
    agent = make_agent("stream-ac", hidden=HIDDEN, normalize_obs=False, scale_reward=False)
    step = jax.jit(agent.step)
    rng = np.random.default_rng(3)
    obs = [jnp.asarray(rng.normal(0, 1, 5), jnp.float32) for _ in range(5)]
    state = agent.init(jax.random.PRNGKey(0), OBS, ACT)
    state, action, _ = step(state, first_timestep(obs[0]), jax.random.PRNGKey(1))
    v, p = state.value, state.policy
    zv, zp = jax.tree.map(jnp.zeros_like, (v, p))
    # Two steps within an episode, then one that ends it (truncated), then one in the next.
    ends = [(False, False), (False, False), (False, True), (False, False)]
    for i, (term, trunc) in enumerate(ends):
        r = jnp.float32(0.5 + i)
        ts = TimeStep(obs[i + 1], r, jnp.bool_(term), jnp.bool_(trunc))
        v, p, zv, zp = _reference(v, p, zv, zp, obs[i], action, r, obs[i + 1], term or trunc)
        state, action, _ = step(state, ts, jax.random.PRNGKey(10 + i))
        jax.tree.map(close, state.value, v)
        jax.tree.map(close, state.policy, p)
        # oakrl's traces are of the prediction (grad v, grad log pi): stream-x's are their negatives.
        jax.tree.map(lambda x, y: close(-x, y), trace_in_effect(state.value_opt.opt), zv)
        jax.tree.map(lambda x, y: close(-x, y), trace_in_effect(state.policy_opt.opt), zp)
    assert float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(state.value_opt.opt.trace))) > 0
