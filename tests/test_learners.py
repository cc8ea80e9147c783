"""The streaming learners of 2026 (issue 22) against updates worked out by hand in plain numpy.

Adaptive Q(lambda) (oakrl/learn/adaptive.py) and Intentional TD / PG (oakrl/learn/intentional.py).
Each expected value is computed here from the papers' formulas with numpy, never by the code
under test. Each test says which bug it catches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.learn.adaptive import adaptive_q
from oakrl.learn.intentional import intentional
from oakrl.learn.traces import trace_in_effect

PARAMS = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([[3.0]])}
G1 = {"a": jnp.array([0.5, -1.0]), "b": jnp.array([[2.0]])}
G2 = {"a": jnp.array([1.0, 0.0]), "b": jnp.array([[-1.0]])}


def flat(tree) -> np.ndarray:
    return np.concatenate(
        [np.asarray(tree["a"], np.float64).ravel(), np.asarray(tree["b"], np.float64).ravel()]
    )


def close(actual, expected, rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol
    )


# --------------------------------------------------------------------------- Adaptive Q(lambda)


def test_adaptive_q_two_steps_by_hand():
    # gamma lambda = 0.5 * 0.5 = 0.25; eta 0.1, eps 0.1, clip 1.
    # Catches: the TD error not clipped (step 1's delta is 2), the second moment at the wrong
    # rate (it must decay at gamma lambda), the old v used instead of the new, eps inside the sqrt,
    # the trace not decayed, or not reset after `reset`.
    opt = adaptive_q(0.1, gamma=0.5, lamda=0.5, eps=0.1, clip=1.0)
    s = opt.init(PARAMS)
    g1, g2 = flat(G1), flat(G2)
    u1, s = opt.update(G1, s, PARAMS, delta=jnp.float32(2.0), reset=False)
    z1 = g1  # z = 0.25 * 0 + g1
    v1 = 0.75 * g1**2  # v = 0.25 * 0 + 0.75 g^2 = [0.1875, 0.75, 3.0]
    close(flat(u1), 0.1 * 1.0 * z1 / (np.sqrt(v1) + 0.1))  # delta 2 clipped to 1
    close(flat(u1), [0.05 / 0.5330127, -0.1 / 0.9660254, 0.2 / 1.8320508])  # the same, by hand
    close(s.step_size, np.mean(0.1 / (np.sqrt(v1) + 0.1)))

    u2, s = opt.update(G2, s, PARAMS, delta=jnp.float32(-0.5), reset=True)
    z2 = 0.25 * z1 + g2
    v2 = 0.25 * v1 + 0.75 * g2**2
    close(flat(u2), 0.1 * -0.5 * z2 / (np.sqrt(v2) + 0.1))
    close(flat(trace_in_effect(s)), [0.0, 0.0, 0.0])  # reset after use (deferred: reset_pending)
    assert bool(s.reset_pending)
    close(flat(s.nu), v2)  # the second moment is not reset
    # The next update starts from a zero trace: z3 = 0.25 * 0 + g1.
    u3, s = opt.update(G1, s, PARAMS, delta=jnp.float32(1.0))
    v3 = 0.25 * v2 + 0.75 * g1**2
    close(flat(u3), 0.1 * 1.0 * g1 / (np.sqrt(v3) + 0.1))
    assert not bool(s.reset_pending)


def test_adaptive_q_beta2_overrides_the_decay():
    # beta2 0.9: v = 0.1 g^2 after one step. Catches beta2 ignored.
    opt = adaptive_q(1.0, gamma=0.5, lamda=0.5, eps=0.0, beta2=0.9)
    u, s = opt.update(G1, opt.init(PARAMS), PARAMS, delta=jnp.float32(0.5))
    close(flat(s.nu), 0.1 * flat(G1) ** 2)
    close(flat(u), 0.5 * flat(G1) / np.sqrt(0.1 * flat(G1) ** 2))


# --------------------------------------------------------------------------- Intentional TD / PG


def intentional_by_hand(grads, deltas, eta, gl, beta2=0.999, normalize=False, c=20.0, bc=0.9998, bn=0.9998):
    """The authors' update (optimizer.py's order of operations), one flat vector, in numpy."""
    n = grads[0].size
    v, z, sigma, dsq, dabs = np.zeros(n), np.zeros(n), 0.0, 1.0, 0.0
    out = []
    for t, (g, delta) in enumerate(zip(grads, deltas, strict=True), start=1):
        v = beta2 * v + (1 - beta2) * g**2
        vh = np.sqrt(v / (1 - beta2**t)) + 1e-8
        norm_grad = np.sum(g**2 / vh)
        z = gl * z + g
        z_sum = np.sum(z**2 / vh)
        sigma = sigma + (1 - gl) * (norm_grad - sigma)
        alpha = eta / max(np.sqrt(sigma / (1 - gl**t) * z_sum), 1e-8)
        dsq = bc * dsq + (1 - bc) * delta**2
        cap = c * np.sqrt(dsq / (1 - bc**t))
        d = np.sign(delta) * min(abs(delta), cap)
        if normalize:
            dabs = bn * dabs + (1 - bn) * abs(d)
            d = d / max(dabs / (1 - bn**t), 1e-12)
        out.append((alpha * d * z / vh, alpha))
    return out


@pytest.mark.parametrize("normalize", [False, True])
def test_intentional_two_steps_by_hand(normalize):
    # Catches: nu_hat without its bias correction, sigma at the wrong rate or without its
    # correction, z_sum taken without the diagonal metric, the policy's delta not normalised
    # (or the value's normalised), and a sign error.
    eta, gl = (0.05 if normalize else 0.5), 0.25
    opt = intentional(eta, gamma=0.5, lamda=0.5, normalize_delta=normalize)
    s = opt.init(PARAMS)
    u1, s = opt.update(G1, s, PARAMS, delta=jnp.float32(0.7))
    u2, s = opt.update(G2, s, PARAMS, delta=jnp.float32(-1.3))
    (e1, a1), (e2, a2) = intentional_by_hand([flat(G1), flat(G2)], [0.7, -1.3], eta, gl, normalize=normalize)
    close(flat(u1), e1, rtol=2e-5)
    close(flat(u2), e2, rtol=2e-5)
    close(s.step_size, a2, rtol=2e-5)


def test_intentional_td_moves_a_linear_prediction_by_eta_delta():
    # The paper's intent, checked on its own terms: without traces (lambda 0) a linear
    # prediction v = w.x moves by exactly eta * delta (delta below the clip). Catches any error
    # in alpha's normaliser (sigma, z_sum, nu_hat must cancel).
    x = {"a": jnp.array([0.3, -2.0]), "b": jnp.array([[1.5]])}
    opt = intentional(0.5, gamma=0.99, lamda=0.0)
    s = opt.init(PARAMS)
    for delta in (0.4, -0.9, 2.0):
        u, s = opt.update(x, s, PARAMS, delta=jnp.float32(delta))
        change = float(np.dot(flat(u), flat(x)))
        close(change, 0.5 * delta, rtol=1e-4)


def test_intentional_clips_an_outlying_td_error():
    # 2000 steps of |delta| = 1 keep the running mean of delta^2 at 1 (its EMA starts at 1);
    # then delta = 1000 is capped at 20 x the bias-corrected RMS (~494), so the output moves by
    # eta * cap, not eta * 1000. (After only ~400 steps the correction 1 / (1 - 0.9998^t) still
    # inflates the cap above any outlier: the clip only bites on long streams.) Catches the clip
    # missing, applied before the EMA update, or without its bias correction.
    x = {"a": jnp.array([1.0, 0.0]), "b": jnp.array([[0.0]])}
    opt = intentional(0.5, gamma=0.99, lamda=0.0)
    deltas = jnp.where(jnp.arange(2000) % 2 == 0, -1.0, 1.0)
    s, _ = jax.lax.scan(lambda s, d: (opt.update(x, s, PARAMS, delta=d)[1], None), opt.init(PARAMS), deltas)
    u, s = opt.update(x, s, PARAMS, delta=jnp.float32(1000.0))
    bc, t = 0.9998, 2001
    dsq = bc * 1.0 + (1 - bc) * 1000.0**2
    cap = 20 * np.sqrt(dsq / (1 - bc**t))
    assert 450 < cap < 550
    close(float(u["a"][0]), 0.5 * cap, rtol=1e-3)


# --------------------------------------------------------------------------- agents


PARAM_FIELDS = {"stream-ac": ("value", "policy"), "stream-q": ("q",), "stream-td": ("v",)}


@pytest.mark.parametrize("agent", ["stream-q", "stream-td", "stream-ac"])
@pytest.mark.parametrize("optimizer", ["adaptive-q", "intentional"])
def test_agents_take_the_new_learners(agent, optimizer):
    # 40 steps in one lax.scan on random observations with reward 1 (episodes of 10): every
    # parameter group moves and stays finite. Catches a learner that is not wired (`optimizer`
    # ignored: then the state type is ObGD's) or NaNs from the masked first step (zero gradient
    # and delta; intentional's step is eta / 1e-8 there).
    from oakrl.agents import make_agent
    from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep
    from oakrl.learn.adaptive import AdaptiveQState
    from oakrl.learn.intentional import IntentionalState

    ag = make_agent(agent, optimizer=optimizer, hidden=(16,))
    state = ag.init(jax.random.key(0), ArraySpec((4,), jnp.float32), DiscreteSpec(2))
    obs = jax.random.normal(jax.random.key(1), (40, 4))
    done = (jnp.arange(40) % 10) == 9
    tss = TimeStep(obs, jnp.ones(40), done, jnp.zeros(40, bool))
    keys = jax.random.split(jax.random.key(2), 40)

    def body(s, x):
        t, k = x
        s, _, _ = ag.step(s, t, k)
        return s, None

    end, _ = jax.lax.scan(body, state, (tss, keys))
    kind = AdaptiveQState if optimizer == "adaptive-q" else IntentionalState
    for f in PARAM_FIELDS[agent]:
        before, after = jax.tree.leaves(getattr(state, f)), jax.tree.leaves(getattr(end, f))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in after)
        assert any(
            not np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(before, after, strict=True)
        ), f
        opt_state = getattr(
            end, {"q": "opt", "v": "opt", "value": "value_opt", "policy": "policy_opt"}[f]
        ).opt
        assert isinstance(opt_state, kind)
    if agent == "stream-ac" and optimizer == "intentional":
        # The actor is Intentional PG (normalised advantage), the critic Intentional TD.
        assert float(end.policy_opt.opt.delta_abs) > 0.0
        assert float(end.value_opt.opt.delta_abs) == 0.0


def test_default_optimizer_is_still_obgd():
    # Catches a changed default (existing agents' numbers must not change).
    from oakrl.agents import StreamQConfig
    from oakrl.agents.stream_ac import StreamACConfig
    from oakrl.agents.stream_td import StreamTDConfig

    assert {StreamQConfig().optimizer, StreamACConfig().optimizer, StreamTDConfig().optimizer} == {"obgd"}


def test_unknown_optimizer_is_one_config_error():
    # Catches a traceback (or a silent default) on a misspelt learner.
    from oakrl.agents import make_agent
    from oakrl.errors import ConfigError

    with pytest.raises(ConfigError, match="intentional"):
        make_agent("stream-q", optimizer="intentinal")


def test_resume_with_intentional_state_is_bit_identical(tmp_path):
    # stream-ac with Intentional TD (critic) and PG (actor): 400 steps straight, against 200
    # steps, a checkpoint written and read back (the lab's npz), then the last 200 steps.
    # Catches new optimiser state (int32 count, scalar statistics) lost or altered by a resume.
    from oakrl.lab.spec import RunSpec
    from tests.test_resume import assert_chunk_resume_is_bit_identical

    options = {"optimizer": "intentional", "hidden": (16,)}
    spec = RunSpec(env="CartPole-v1", agent="stream-ac", steps=400, seeds=2, chunk=200, agent_options=options)
    assert_chunk_resume_is_bit_identical(spec, tmp_path)
