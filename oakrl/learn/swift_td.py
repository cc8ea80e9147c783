"""SwiftTD: True Online TD(lambda) with per-feature step sizes, a bound on the rate of learning,
and step-size decay, for *linear* predictions.

Javed, Sharifnassab & Sutton (2024), "SwiftTD: A Fast and Robust Algorithm for Temporal
Difference Learning", Reinforcement Learning Journal 2, pp. 840-863 (RLC 2024). Four ideas:
  * True Online TD(lambda) (van Seijen et al. 2016): dutch traces and the correction term that
    makes the online updates equal the online lambda-return's;
  * one step size per feature, alpha_i = exp(beta_i), meta-learned IDBD-style (Sutton 1992) by
    the gradient of the squared TD error with respect to beta_i, through the traces h and p;
  * a bound on the rate of learning tau = sum_i alpha_i x_i^2 (how far one update moves the
    prediction of the current features towards its target): the step sizes entering the trace
    are scaled by min(1, eta / tau), so no update overshoots;
  * step-size decay: where tau exceeded eta, every active beta_i drops by x_i^2 log(decay) and
    its meta-traces restart, so step sizes that are too large shrink for good.

Per step, with the features x of the state just left (`grads`: the gradient of the linear
prediction w.x), the TD error delta = r + gamma v(s') - v(s) at the current weights, and dw the
previous update (all per feature, sums over features):

    V_delta = sum dw x                      (how much the last update moved v(s): V - V_old)
    tau  = sum exp(beta) x^2;   m = min(1, eta / tau);   B = sum z x
    zd   = m exp(beta) x
    z   += zd (1 - B)                       (the dutch trace with per-feature steps)
    p   += h_old x
    zb  += zd (1 - B - zb x)
    h_t  = h - h_old x (z - zd) - h zd x
    if tau > eta: beta -= x^2 |log decay|;  h_t, h, h_old, zb <- 0 where x != 0
    dw   = (delta + V_delta) z - zd V_delta (True Online TD's update)
    beta += theta / exp(beta) * delta * p,  clipped to [log eta_min, log eta]
    h_old <- h;   h <- h_t + (delta + V_delta) zb - zd V_delta
    z, p, zb *= gamma lambda                (zeroed where the episode ended)

Where this was read, and the choices made. The stored corpus holds the paper's abstract only
(RLJ and OpenReview pages). The algorithm above follows the authors' released implementation
(github.com/khurramjaved96/SwiftTD, src/cpp/SwiftTD.cpp, `SwiftTDNonSparse::Step`, the pip
package `swifttd`, whose commit 9b18097 of 2025-10-07 "removes small discrepancies between the
pseudocode and implementations"), written here anew in JAX, vectorised over a parameter pytree:
  * order: the reference learns from the TD error of (x_{t-1} -> x_t) first and then adds x_t
    to the traces; here one call adds x(s) and then learns from delta(s -> s'), the same
    sequence of operations shifted by half a step. Its TD error uses the previous step's
    prediction v_old; oakrl's `delta` uses the current weights, so the reference's delta is
    delta + V_delta and the true online TD error (delta_ref - V_delta) is `delta` itself;
  * the meta-step uses that true online TD error and theta / exp(beta), as the released code
    and a survey note's transcription of the paper's Algorithm 1 both do. Two older or
    secondary texts differ in the h recursion: the commit "match camera ready submission"
    (cdb07ce, LinearLearner.cpp, July 2024) and that transcription set h <- h_temp before adding
    delta zb - zd V_delta and feed p from h, not h_old (a one-step lag of the meta-trace between
    the two); the 2024 commit also used the reference delta in the meta-step. The released
    order is the default; `meta_trace="2024"` gives that commit's h recursion (with the true
    online TD error), to measure the difference (benchmarks/RESULTS.md, "SwiftTD": at most 0.002
    of the lifetime error at theta <= 1e-3 on three MinAtar prediction tasks);
  * the reset of the meta-traces when tau > eta touches the active features only (x_i != 0), as
    the reference's sparse versions (the ones the Atari experiments need) do; its dense version
    resets every feature;
  * the lower bound exp(beta) >= eta_min is applied (the pseudocode clips beta to
    [log eta_min, log eta]; the released dense code compares exp(beta) with log(eta_min), a test
    that never fires); without it decay could underflow exp(beta) to 0 and the meta step
    theta / exp(beta) to infinity;
  * episodes: the reference is written for one continuing stream. Here the traces z, zb, p are
    zeroed where the episode ended (like every oakrl trace) and V_delta restarts at 0; h (the
    sensitivity of the weights to beta) carries over;
  * defaults are the authors' README example: eta 0.1, alpha_init 0.01, decay 0.999, theta 1e-3,
    eta_min 1e-10 (gamma and lambda are the agent's). The survey note quotes the paper's
    Algorithm 1 defaults as decay 0.99, eta 0.1, eta_min e^-15, alpha_init 1e-7 (for 201,619
    binary Atari features).
With theta = 0 and tau <= eta throughout, SwiftTD is True Online TD(lambda) with constant
per-feature step sizes (tests/test_swift_td.py checks this against van Seijen's pseudo-code).
Only linear predictions make the algebra exact (V_delta = dw.x needs v linear in w).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any

ETA = 0.1  # bound on the rate of learning (the reference's `max_step_size`)
ALPHA_INIT = 0.01
DECAY = 0.999  # step-size decay factor where the bound was hit
META_STEP = 1e-3  # theta
ETA_MIN = 1e-10


def _sum(tree: PyTree) -> jax.Array:
    return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


def _map(f, *trees: PyTree) -> PyTree:
    return jax.tree.map(f, *trees)


class SwiftTDState(NamedTuple):
    """All trees are shaped like the parameters (one entry per weight = per feature)."""

    beta: PyTree  # log step sizes
    z: PyTree  # dutch eligibility trace (step sizes included)
    z_bar: PyTree  # trace for the meta-gradient (zb)
    p: PyTree  # trace of h x: d v / d beta, decayed like z
    h: PyTree  # d w / d beta (IDBD's h)
    h_old: PyTree  # h of the step before
    h_temp: PyTree  # the reference's h_temp (equal to h between calls in the released order)
    dw: PyTree  # the last update (V_delta = dw . x at the next step)
    step_size: jax.Array  # [] rate of learning applied: m tau (<= eta)
    rate: jax.Array  # [] unbounded rate of learning tau = sum exp(beta) x^2


def swift_td(
    eta: float = ETA,
    gamma: float = 0.99,
    lamda: float = 0.8,
    alpha_init: float = ALPHA_INIT,
    decay: float = DECAY,
    meta_step: float = META_STEP,
    eta_min: float = ETA_MIN,
    meta_trace: str = "released",
) -> optax.GradientTransformationExtraArgs:
    """SwiftTD for a linear prediction; `update(x, state, delta=..., reset=...)` as ObGD's.

    meta_trace: "released" (the authors' released code, the default) or "2024" (the h recursion
    of their 2024 "camera ready" commit: h <- h_temp before adding delta zb - zd V_delta, p fed
    from h, the bound clearing zb, h_temp, h_old), to measure what that difference does."""
    if not 0 < decay <= 1 or eta <= 0 or not 0 < alpha_init or not 0 < eta_min <= eta:
        raise ValueError("swift_td needs eta > 0, alpha_init > 0, 0 < eta_min <= eta, 0 < decay <= 1")
    if meta_trace not in ("released", "2024"):
        raise ValueError(f"meta_trace must be 'released' or '2024', got {meta_trace!r}")
    released = meta_trace == "released"
    gl = gamma * lamda
    log_decay, log_eta, log_eta_min = math.log(decay), math.log(eta), math.log(eta_min)

    def init_fn(params: PyTree) -> SwiftTDState:
        zeros = _map(jnp.zeros_like, params)
        beta = _map(lambda w: jnp.full_like(w, math.log(alpha_init)), params)
        f = jnp.float32(0.0)
        return SwiftTDState(beta, zeros, zeros, zeros, zeros, zeros, zeros, zeros, f, f)

    def update_fn(grads, state: SwiftTDState, params=None, *, delta, reset=False, **_):
        del params
        x = grads
        s = state
        # 1. Add x(s) to the traces, with step sizes bounded so that tau <= eta.
        v_delta = _sum(_map(lambda dw, xi: dw * xi, s.dw, x))
        alpha = _map(jnp.exp, s.beta)
        tau = _sum(_map(lambda a, xi: a * xi * xi, alpha, x))
        b = _sum(_map(lambda z, xi: z * xi, s.z, x))
        over = tau > eta
        m = jnp.where(over, eta / jnp.where(over, tau, 1.0), 1.0)
        zd = _map(lambda a, xi: m * a * xi, alpha, x)
        z = _map(lambda z, d: z + d * (1.0 - b), s.z, zd)
        z_bar = _map(lambda zb, d, xi: zb + d * (1.0 - b - zb * xi), s.z_bar, zd, x)
        hit = _map(lambda xi: jnp.logical_and(over, xi != 0), x)  # where the meta-traces restart
        clear = lambda t, c: jnp.where(c, jnp.zeros_like(t), t)  # noqa: E731
        if released:
            p = _map(lambda p, ho, xi: p + ho * xi, s.p, s.h_old, x)
            h_temp = _map(
                lambda h, ho, xi, zz, d: h - ho * xi * (zz - d) - h * d * xi, s.h, s.h_old, x, z, zd
            )
            h_temp, h, h_old, z_bar = (_map(clear, t, hit) for t in (h_temp, s.h, s.h_old, z_bar))
        else:
            p = _map(lambda p, h, xi: p + h * xi, s.p, s.h, x)
            h_temp = _map(
                lambda ht, h, ho, xi, zz, d: ht - ho * xi * (zz - d) - h * d * xi,
                s.h_temp,
                s.h,
                s.h_old,
                x,
                z,
                zd,
            )
            h_temp, h_old, z_bar = (_map(clear, t, hit) for t in (h_temp, s.h_old, z_bar))
            h = s.h
        # Step-size decay where the bound was hit.
        beta = _map(lambda bt, xi: bt + jnp.where(over, log_decay * xi * xi, 0.0), s.beta, x)

        # 2. True Online TD's update from delta(s -> s'), and the meta-step on beta.
        d_ref = delta + v_delta  # the reference's TD error (prediction of s before the last update)
        dw = _map(lambda zz, d: d_ref * zz - d * v_delta, z, zd)
        beta = _map(lambda bt, pp: bt + meta_step / jnp.exp(bt) * delta * pp, beta, p)
        beta = _map(lambda bt: jnp.clip(bt, log_eta_min, log_eta), beta)
        h_old = h
        if released:
            h = _map(lambda ht, zb, d: ht + d_ref * zb - d * v_delta, h_temp, z_bar, zd)
            h_temp = h
        else:
            h = h_temp
            h_temp = _map(lambda hh, zb, d: hh + d_ref * zb - d * v_delta, h, z_bar, zd)

        keep = gl * (1.0 - jnp.asarray(reset, jnp.float32))  # decay, or zero at an episode's end
        z, p, z_bar = (_map(lambda t: keep * t, t) for t in (z, p, z_bar))
        dw_next = _map(lambda d: jnp.where(reset, jnp.zeros_like(d), d), dw)
        new = SwiftTDState(beta, z, z_bar, p, h, h_old, h_temp, dw_next, m * tau, tau)
        return dw, new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
