"""Plasticity remedies, step-size adaptation, and their use by the agents and the lab.

Remedy and step-size tests compare with updates computed by hand from the papers' formulas on
tiny trees; the agent and lab tests use tiny networks so each costs about one compilation.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow.parquet as pq
import pytest

from oakrl.errors import ConfigError
from oakrl.learn.obgd import ObGDState, obgd
from oakrl.learn.plasticity import (
    counter_uniform,
    effective_rank,
    fresh_columns,
    lowest,
    plasticity_init,
    plasticity_update,
    ranks,
    remedy,
    when_any,
)
from oakrl.learn.stepsize import autostep, idbd, tidbd_obgd


def tiny_params():
    return {
        "Dense_0": {
            "kernel": jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
            "bias": jnp.array([0.1, 0.2, 0.3]),
        },
        "head": {"kernel": jnp.array([[1.0], [-2.0], [0.25]]), "bias": jnp.array([0.5])},
    }


FEATS = {"Dense_0": jnp.array([1.0, -0.4, 2.0])}
# contribution |h_j| * sum_k |w_jk| = [1*1, 0.4*2, 2*0.25] = [1.0, 0.8, 0.5]


def test_cbp_replaces_the_lowest_utility_unit_by_hand():
    r = remedy("cbp", decay=0.5, maturity=0, rate=0.5, max_resets=1, sparsity=0.0)
    params = tiny_params()
    state = r.init(params)
    opt = ObGDState(jax.tree.map(jnp.ones_like, params), jnp.ones(()))
    key = jax.random.key(7)
    new, opt2, s, _ = r.update(params, state, FEATS, key, opt)
    # u = 0.5 * 0 + 0.5 * contribution = [0.5, 0.4, 0.25]; all 3 units eligible (age 1 > 0);
    # pending = 0.5 * 3 = 1.5 -> replace floor(1.5) = 1 unit, the lowest: unit 2; carry 0.5.
    np.testing.assert_allclose(s.utility["Dense_0"], [0.5, 0.4, 0.0])
    np.testing.assert_array_equal(s.age["Dense_0"], [1, 1, 0])
    assert float(s.pending["Dense_0"]) == pytest.approx(0.5)
    assert float(s.replaced) == 1.0
    k = np.asarray(new["Dense_0"]["kernel"])
    np.testing.assert_array_equal(k[:, :2], [[1.0, 2.0], [4.0, 5.0]])
    fresh = fresh_columns(jax.random.split(key, 2)[0], 2, 1, 0.0)[:, 0]
    np.testing.assert_allclose(k[:, 2], fresh)
    assert np.all(np.abs(k[:, 2]) <= 1 / math.sqrt(2)) and np.all(k[:, 2] != 0)
    np.testing.assert_allclose(new["Dense_0"]["bias"], [0.1, 0.2, 0.0])
    np.testing.assert_allclose(new["head"]["kernel"][:, 0], [1.0, -2.0, 0.0])
    np.testing.assert_allclose(new["head"]["bias"], [0.5])
    # Trace entries of the replaced unit's weights are zeroed, the rest kept.
    t = opt2.trace
    np.testing.assert_array_equal(t["Dense_0"]["kernel"], [[1, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(t["Dense_0"]["bias"], [1, 1, 0])
    np.testing.assert_array_equal(t["head"]["kernel"][:, 0], [1, 1, 0])
    np.testing.assert_array_equal(t["head"]["bias"], [1])


def test_cbp_maturity_and_fractional_carry_by_hand():
    r = remedy("cbp", decay=0.5, maturity=1, rate=0.5, max_resets=1, sparsity=0.0)
    params = tiny_params()
    state = r.init(params)
    p1, _, s1, _ = r.update(params, state, FEATS, jax.random.key(0))
    # Age 1 is not > maturity 1: nothing eligible, nothing carried, nothing changes.
    assert float(s1.pending["Dense_0"]) == 0.0
    jax.tree.map(np.testing.assert_array_equal, p1, params)
    p2, _, s2, _ = r.update(p1, s1, FEATS, jax.random.key(1))
    # u = 0.5 * [0.5, 0.4, 0.25] + 0.5 * [1.0, 0.8, 0.5] = [0.75, 0.6, 0.375]; all age 2 > 1;
    # pending 1.5 -> unit 2 replaced; the one after would need another step.
    np.testing.assert_allclose(s2.utility["Dense_0"], [0.75, 0.6, 0.0])
    assert float(s2.pending["Dense_0"]) == pytest.approx(0.5)
    np.testing.assert_allclose(p2["head"]["kernel"][:, 0], [1.0, -2.0, 0.0])


def test_redo_resets_dormant_units_only_at_checks():
    r = remedy(
        "redo", diagnostics=True, decay=0.0, tau=0.1, every=2, max_resets=3, rank_every=0, sparsity=0.0
    )
    params = tiny_params()
    feats = {"Dense_0": jnp.array([1.0, 0.01, 2.0])}  # unit 1: 0.01 / mean 1.0033 <= 0.1
    p1, _, s1, info1 = r.update(params, r.init(params), feats, jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, p1, params)  # step 1: no check
    assert float(info1["dormant"]) == pytest.approx(1 / 3)
    assert float(info1["replaced"]) == 0.0
    p2, _, s2, info2 = r.update(p1, s1, feats, jax.random.key(1))
    assert float(info2["replaced"]) == 1.0
    np.testing.assert_allclose(p2["head"]["kernel"][:, 0], [1.0, 0.0, 0.25])
    np.testing.assert_allclose(p2["Dense_0"]["bias"], [0.1, 0.0, 0.3])
    np.testing.assert_array_equal(s2.age["Dense_0"], [2, 0, 2])


def test_shrink_perturb_and_l2_init_by_hand():
    params = tiny_params()
    sp = remedy("shrink-perturb", shrink=0.1, sigma=0.0)
    p, _, _, _ = sp.update(params, sp.init(params), {}, jax.random.key(0))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, 0.9 * np.asarray(b), rtol=1e-6), p, params)
    sp = remedy("shrink-perturb", shrink=0.0, sigma=0.5)
    p, _, _, _ = sp.update(params, sp.init(params), {}, jax.random.key(0))
    noise = np.concatenate(
        [np.ravel(a - b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params), strict=True)]
    )
    assert 0.1 < noise.std() < 1.5 and np.all(noise != 0)

    l2 = remedy("l2-init", l2=0.25)
    state = l2.init(params)
    moved = jax.tree.map(lambda x: x + 2.0, params)
    p, _, _, _ = l2.update(moved, state, {}, jax.random.key(0))
    # theta - 0.25 (theta - theta_0) = theta_0 + 2 - 0.5
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, np.asarray(b) + 1.5, rtol=1e-6), p, params)


def test_effective_rank_and_weight_magnitude():
    assert float(effective_rank(jnp.eye(4))) == pytest.approx(4.0, rel=1e-5)
    assert float(effective_rank(jnp.outer(jnp.arange(1.0, 5.0), jnp.ones(3)))) == pytest.approx(1.0, rel=1e-4)
    # Singular values 3 and 1: p = (3/4, 1/4), exp(-(3/4 ln 3/4 + 1/4 ln 1/4)) = 1.7548...
    assert float(effective_rank(jnp.diag(jnp.array([3.0, 1.0])))) == pytest.approx(1.75476, rel=1e-4)
    r = remedy("none", diagnostics=True, rank_every=0)
    params = tiny_params()
    _, _, _, info = r.update(params, r.init(params), FEATS, jax.random.key(0))
    assert float(info["weight_mag"]) == pytest.approx((21.0 + 3.25) / 9)


def test_bad_plasticity_options():
    with pytest.raises(ValueError, match="unknown plasticity remedy"):
        remedy("cpb")
    with pytest.raises(ValueError, match="unknown plasticity option"):
        remedy("cbp", rhoo=0.1)
    from oakrl.agents import make_agent

    with pytest.raises(ConfigError, match="plasticity"):
        make_agent("stream-ac", plasticity="nope")


# --------------------------------------------------------------------------- step sizes


def test_idbd_by_hand():
    opt = idbd(meta_lr=0.5, init_lr=0.1)
    w = jnp.zeros(2)
    x = jnp.array([1.0, 2.0])
    s = opt.init(w)
    u1, s = opt.update(x, s, delta=1.0)
    # h = 0: beta unchanged, alpha = 0.1; w += 0.1 * 1 * x; h = 0.1 * x
    np.testing.assert_allclose(u1, [0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(s.h, [0.1, 0.2], rtol=1e-6)
    u2, s = opt.update(x, s, delta=0.5)
    # beta = log 0.1 + 0.5 * 0.5 * x * h = log 0.1 + [0.025, 0.1]
    alpha = 0.1 * np.exp([0.025, 0.1])
    np.testing.assert_allclose(u2, alpha * 0.5 * np.array([1.0, 2.0]), rtol=1e-5)
    h = np.array([0.1, 0.2]) * np.maximum(0, 1 - alpha * np.array([1.0, 4.0])) + alpha * 0.5 * np.array(
        [1, 2]
    )
    np.testing.assert_allclose(s.h, h, rtol=1e-5)
    assert float(s.step_size) == pytest.approx(alpha.mean(), rel=1e-5)


def test_autostep_by_hand():
    opt = autostep(meta_lr=0.5, init_lr=0.1, tau=10.0)
    x = jnp.array([1.0, 3.0])
    s = opt.init(jnp.zeros(2))
    u1, s = opt.update(x, s, delta=1.0)
    # h = 0 so v = 0 and alpha stays 0.1; M = max(0.1 * (1 + 9), 1) = 1.
    np.testing.assert_allclose(u1, [0.1, 0.3], rtol=1e-6)
    np.testing.assert_allclose(s.h, [0.1, 0.3], rtol=1e-6)
    u2, s = opt.update(x, s, delta=0.5)
    # delta x h = [0.05, 0.45]; v = max(|.|, 0 + 0.1 * 0.1 * x^2 * |.|) = [0.05, 0.45];
    # alpha = 0.1 e^{0.5} each; M = 0.1 e^{0.5} * 10 = 1.6487 > 1 -> alpha = 0.1 e^{0.5} / M = 0.1... / e^{.5}
    np.testing.assert_allclose(s.v, [0.05, 0.45], rtol=1e-6)
    a = 0.1 * math.exp(0.5) / (0.1 * math.exp(0.5) * 10)
    np.testing.assert_allclose(s.alpha, [a, a], rtol=1e-5)
    np.testing.assert_allclose(u2, a * 0.5 * np.array([1.0, 3.0]), rtol=1e-5)
    np.testing.assert_allclose(
        s.h, np.array([0.1, 0.3]) * (1 - a * np.array([1, 9])) + a * 0.5 * np.array([1, 3]), rtol=1e-5
    )


def test_tidbd_obgd_first_step_is_obgd_then_meta_learns_by_hand():
    g = {"w": jnp.array([0.5, -1.0])}
    params = {"w": jnp.zeros(2)}
    t, o = tidbd_obgd(1.0, 0.9, 0.5, 2.0, meta_lr=0.1), obgd(1.0, 0.9, 0.5, 2.0)
    ts, os_ = t.init(params), o.init(params)
    ut, ts = t.update(g, ts, delta=0.8)
    uo, os_ = o.update(g, os_, delta=0.8)
    np.testing.assert_allclose(ut["w"], uo["w"], rtol=1e-6)
    # bound: M = 2 * 1 * (0.5 + 1) = 3 -> a = 1/3 on every weight; h = a * delta * z
    a = 1 / 3
    np.testing.assert_allclose(ts.h["w"], a * 0.8 * np.array([0.5, -1.0]), rtol=1e-6)
    assert float(ts.step_size) == pytest.approx(a)
    _, ts2 = t.update(g, ts, delta=0.8)
    z = 0.45 * np.array([0.5, -1.0]) + np.array([0.5, -1.0])
    beta = 0.1 * 0.8 * z * np.asarray(ts.h["w"])  # log 1 = 0
    np.testing.assert_allclose(ts2.beta["w"], beta, rtol=1e-5)
    m = 2.0 * 1.0 * np.sum(np.exp(beta) * np.abs(z))
    np.testing.assert_allclose(float(ts2.step_size), np.mean(np.exp(beta) / max(m, 1.0)), rtol=1e-5)


# --------------------------------------------------------------------------- agents and lab


def test_stream_q_redo_and_tidbd_in_a_vmapped_scan():
    from oakrl.agents import make_agent
    from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep, first_timestep

    agent = make_agent(
        "stream-q",
        hidden=(8, 8),
        plasticity="redo",
        plasticity_diagnostics=True,
        optimizer="tidbd-obgd",
        plasticity_options={"every": 10, "tau": 0.5, "max_resets": 2, "rank_every": 20, "rank_window": 8},
    )
    obs_spec, act_spec = ArraySpec((3,)), DiscreteSpec(2)

    def stream(key):
        state = agent.init(key, obs_spec, act_spec)

        def one(c, k):
            state, ts = c
            state, _, info = agent.step(state, ts, k)
            nxt = TimeStep(jax.random.normal(k, (3,)), jnp.ones(()), jnp.zeros((), bool), jnp.zeros((), bool))
            return (state, nxt), info

        (state, _), infos = jax.lax.scan(
            one, (state, first_timestep(jnp.zeros(3))), jax.random.split(key, 60)
        )
        return state, infos

    state, infos = jax.jit(jax.vmap(stream))(jax.random.split(jax.random.key(0), 2))
    for k in ("dormant", "weight_mag", "eff_rank", "replaced", "step_size"):
        assert infos[k].shape == (2, 60) and np.all(np.isfinite(infos[k])), k
    assert float(infos["replaced"].sum()) > 0
    # eff_rank is recomputed at update 8 (the window's first fill) and every 20th (20, 40, 60) and
    # carried in between; the last one is the effective rank of the window the state holds. Catches
    # a rank of the wrong features, a window not written, or a value not carried.
    rank = np.asarray(infos["eff_rank"])
    window = np.asarray(state.opt.plasticity.window)
    for s in range(2):
        assert rank[s, -1] == pytest.approx(float(effective_rank(jnp.asarray(window[s]))), rel=1e-5)
        np.testing.assert_array_equal(rank[s, 39:59], rank[s, 39])
        np.testing.assert_array_equal(rank[s, 7:19], rank[s, 7])
        np.testing.assert_array_equal(rank[s, :7], 0.0)
    assert rank[0, 39] != rank[0, 19]


def test_lab_run_with_cbp_writes_plasticity_diagnostics(tmp_path):
    from oakrl.lab.run import run
    from oakrl.lab.spec import RunSpec

    config = RunSpec(
        steps=400,
        seeds=2,
        chunk=200,
        agent="stream-ac",
        agent_options={
            "hidden": (16, 16),
            "plasticity": "cbp",
            "plasticity_diagnostics": True,
            "plasticity_options": {"rate": 0.01, "maturity": 20, "rank_every": 100, "rank_window": 16},
        },
    )
    summary = run(config.replace(out=str(tmp_path / "r"))).summary
    diag = pq.read_table(tmp_path / "r" / "diagnostics.parquet").to_pydict()
    for k in ("value_dormant", "policy_weight_mag", "value_eff_rank", "policy_replaced"):
        assert k in diag and np.all(np.isfinite(diag[k])), k
    assert summary["diagnostics"]["value_replaced"] > 0


def test_lowest_and_fresh_columns():
    score = jnp.array([3.0, 1.0, jnp.inf, 0.5, 1.0])
    np.testing.assert_array_equal(lowest(score, jnp.asarray(2.0), 3), [False, True, False, True, False])
    np.testing.assert_array_equal(lowest(score, jnp.asarray(9.0), 2), [False, True, False, True, False])
    assert not bool(lowest(jnp.full(3, jnp.inf), jnp.asarray(3.0), 3).any())
    w = fresh_columns(jax.random.key(0), 100, 50, 0.9)
    assert 0.85 < float(jnp.mean(w == 0)) < 0.95 and float(jnp.max(jnp.abs(w))) <= 0.1


def _ranks_by_hand(score) -> list[int]:
    """Position of each entry in ascending order, ties by index: Python's sort, not XLA's."""
    order = sorted(range(len(score)), key=lambda i: (float(score[i]), i))
    out = [0] * len(score)
    for position, i in enumerate(order):
        out[i] = position
    return out


@pytest.mark.parametrize("n", [300, 600])  # 300 entries are ranked by counting, 600 by two sorts
def test_ranks_with_ties_and_inf_match_a_reference(n):
    """Catches a tie broken by something other than the index (an unstable sort, `<=` for `<`
    in the counting), or a rank off by one, in either branch."""
    score = jnp.round(jax.random.uniform(jax.random.key(5), (n,)) * 50).at[7].set(jnp.inf).at[9].set(-jnp.inf)
    np.testing.assert_array_equal(ranks(score), _ranks_by_hand(np.asarray(score)))


def test_ranks_by_hand():
    np.testing.assert_array_equal(ranks(jnp.array([2.0, 1.0, 2.0, 0.0])), [2, 1, 3, 0])
    np.testing.assert_array_equal(ranks(jnp.array([jnp.inf, 1.0, 1.0, -1.0, 1.0])), [4, 1, 2, 0, 3])
    # Pairs of ties in descending order, 600 entries (the sort branch): score[i] = (599 - i) // 2,
    # so an even i (the lower index of its pair) is at 598 - i and an odd one at 600 - i.
    score = (599 - jnp.arange(600)) // 2
    expected = np.where(np.arange(600) % 2 == 0, 598 - np.arange(600), 600 - np.arange(600))
    np.testing.assert_array_equal(ranks(score.astype(jnp.float32)), expected)


def test_lowest_by_sort_matches_by_argmin():
    score = jax.random.uniform(jax.random.key(3), (20,)).at[4].set(jnp.inf)
    for n in (0.0, 3.0, 7.0, 30.0):
        by_sort = lowest(score, jnp.asarray(n), 8)
        assert int(by_sort.sum()) == min(int(n), 8) and not bool(by_sort[4])
        np.testing.assert_array_equal(
            by_sort, lowest(score, jnp.asarray(min(n, 4.0)), 4) | (by_sort & (score > jnp.sort(score)[3]))
        )


# --------------------------------------------------------------------------- the gated replacement


def _gate_demo(pred_of):
    """A scan of 20 steps whose costly branch (x * 2, plus a host callback counting its runs)
    is taken where pred_of(step, offset) holds; returns (run(x, offset), calls)."""
    calls = []

    def costly(o):
        jax.debug.callback(lambda: calls.append(1))
        return o[0] * 2.0, o[1]

    def step(c, i):
        return when_any(pred_of(i, c[1]), costly, lambda o: o, c), None

    return (lambda x, off: jax.lax.scan(step, (x, off), jnp.arange(20))[0][0]), calls


def test_when_any_is_cond_per_member_and_runs_only_when_some_member_is_due():
    """Catches a gate that is a select in disguise (the costly branch would run 20 times per
    vmapped stream, not 4 or 8), a member given another member's branch, and nested vmaps
    (methods x seeds) broken."""
    run, calls = _gate_demo(lambda i, off: (i + off) % 5 == 0)
    assert float(jax.jit(run)(1.0, 0)) == 16.0 and len(calls) == 4  # plain lax.cond
    calls.clear()
    offsets = jnp.array([0, 0, 0])
    np.testing.assert_array_equal(jax.jit(jax.vmap(run))(jnp.ones(3), offsets), [16.0, 16.0, 16.0])
    assert len(calls) == 4  # members in step: the branch runs once per due step, for all of them
    calls.clear()
    # Members out of step: due at 0,5,10,15 and at 4,9,14,19; each member still doubles only at
    # its own 4 steps (2**4 = 16), though the branch ran at 8 steps.
    out = jax.jit(jax.vmap(run))(jnp.array([1.0, 3.0]), jnp.array([0, 1]))
    np.testing.assert_array_equal(out, [16.0, 48.0])
    assert len(calls) == 8
    calls.clear()
    out = jax.jit(jax.vmap(jax.vmap(run)))(jnp.ones((2, 2)), jnp.array([[0, 1], [0, 0]]))
    np.testing.assert_array_equal(out, [[16.0, 16.0], [16.0, 16.0]])
    assert len(calls) == 8
    calls.clear()
    # An unbatched predicate under vmap (every member due at the same steps).
    run, calls = _gate_demo(lambda i, off: i % 10 == 0)
    np.testing.assert_array_equal(jax.jit(jax.vmap(run))(jnp.ones(2), jnp.zeros(2, jnp.int32)), [4.0, 4.0])
    assert len(calls) == 2


def _remedy_stream(kind: str, gate: bool, seeds: int = 3, steps: int = 300, **options):
    """A vmapped scan of `steps` remedy updates on a two-hidden-layer tree with a trace: random
    parameter drift and features each step (members differ, so their units fall due at other
    steps). Returns every output of every step."""
    cfg = remedy(kind, **options).config
    widths = [("Dense_0", (3, 6)), ("Dense_1", (6, 5)), ("head", (5, 2))]

    def stream(key):
        k_init, k_run = jax.random.split(key)
        ks = jax.random.split(k_init, len(widths))
        params = {
            n: {"kernel": jax.random.normal(k, s), "bias": jnp.zeros(s[1])}
            for (n, s), k in zip(widths, ks, strict=True)
        }
        opt = ObGDState(jax.tree.map(jnp.ones_like, params), jnp.ones(()))
        state = plasticity_init(cfg, params)

        def one(c, k):
            params, opt, state = c
            k_drift, k_feat, k_rem = jax.random.split(k, 3)
            params = jax.tree.map(lambda x: x + 0.01 * jax.random.normal(k_drift, x.shape), params)
            feats = {
                "Dense_0": jax.random.uniform(k_feat, (6,)) * jnp.arange(6.0),  # unit 0 dormant
                "Dense_1": jax.random.normal(k_feat, (5,)),
            }
            opt = opt._replace(trace=jax.tree.map(lambda z: z + 1.0, opt.trace))
            params, opt, state, info = plasticity_update(cfg, params, state, feats, k_rem, opt, gate=gate)
            return (params, opt, state), (params, opt, state, info)

        return jax.lax.scan(one, (params, opt, state), jax.random.split(k_run, steps))[1]

    return jax.jit(jax.vmap(stream))(jax.random.split(jax.random.key(11), seeds))


@pytest.mark.parametrize(
    "kind,options",
    [
        ("cbp", {"maturity": 20, "rate": 0.02, "max_resets": 1, "diagnostics": True}),
        ("cbp", {"maturity": 10, "rate": 0.3, "max_resets": 2}),
        ("redo", {"every": 25, "tau": 0.5, "max_resets": 6, "diagnostics": True}),
    ],
)
def test_gated_replacement_is_bit_equal_to_the_masked_one(kind, options):
    """The gate (choosing and drawing only at steps where a unit is due, for some member) gives
    exactly the numbers of choosing and drawing, masked, at every step. Catches a decision made
    on stale or post-replacement values, a pending count or key that differs in the skipped
    branch, a member given another's decision, and units never replaced (checked below)."""
    diagnostics = options.pop("diagnostics", False)
    gated = _remedy_stream(kind, True, diagnostics=diagnostics, **options)
    masked = _remedy_stream(kind, False, diagnostics=diagnostics, **options)
    jax.tree.map(np.testing.assert_array_equal, gated, masked)
    replaced = np.asarray(gated[2].replaced[:, -1])
    assert np.all(replaced > 0), replaced


def test_counter_uniform_noise():
    """Shrink & perturb's noise: catches a lattice that is not symmetric (a mean that is not
    exactly 0: the weights would drift), the wrong variance (sigma would be off), entries or
    seeds that repeat or correlate (a hash of the wrong counter), and a draw that is not a pure
    function of (seed, shape)."""
    x = np.asarray(counter_uniform(jnp.uint32(7), (600, 500)), np.float64)
    assert x.shape == (600, 500) and np.all(np.abs(x) < 1.0)
    v = np.round(x * 2**24)
    np.testing.assert_array_equal(v, x * 2**24)  # on the lattice
    assert np.all(v % 2 == 1)  # odd multiples of 2^-24: symmetric about 0
    assert abs(x.mean()) < 4 * math.sqrt(1 / 3 / x.size)
    assert abs(x.var() - 1 / 3) < 0.003
    flat = x.ravel()
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
    y = np.asarray(counter_uniform(jnp.uint32(8), (600, 500)), np.float64).ravel()
    assert abs(np.corrcoef(flat, y)[0, 1]) < 0.01
    np.testing.assert_array_equal(x, counter_uniform(jnp.uint32(7), (600, 500)))
    # The histogram is flat: 10 bins of 30,000 expected entries each, within 1.5%.
    counts, _ = np.histogram(flat, bins=10, range=(-1, 1))
    assert np.all(np.abs(counts / 30_000 - 1) < 0.015), counts
