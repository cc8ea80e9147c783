"""The learned sparse code (oakrl/learn/sparse_code.py) and OaK built on it (oak features=code)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents import make_agent
from oakrl.envs.coded_grid import CodedGrid
from oakrl.errors import ConfigError
from oakrl.lab.run import run
from oakrl.lab.spec import RunSpec
from oakrl.learn.sparse_code import CodeState, code_encode, code_init, code_update
from oakrl.report.report import report


def _state(protos, usage, live=None, mean_error=0.0) -> CodeState:
    protos = jnp.asarray(protos, jnp.float32)
    k = protos.shape[0]
    return CodeState(
        protos=protos,
        live=jnp.ones(k, bool) if live is None else jnp.asarray(live),
        usage=jnp.asarray(usage, jnp.float32),
        error=jnp.zeros(k, jnp.float32),
        mean_error=jnp.asarray(mean_error, jnp.float32),
        seeded=jnp.zeros((), jnp.int32),
    )


def test_the_winner_is_the_nearest_unit_and_moves_towards_the_input_by_hand():
    # Catches a winner that is not the nearest prototype, or a move of the wrong unit / size.
    s = _state([[0.0, 0.0], [1.0, 1.0], [4.0, 0.0]], usage=[0.5, 0.5, 0.5], mean_error=100.0)
    x = jnp.array([0.8, 1.0])  # distances 1.64, 0.04, 11.24: unit 1
    s2, code = code_update(s, x, rate=0.5, stat_rate=0.1, dead=0.1)
    np.testing.assert_array_equal(code, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(code_encode(s, x), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(s2.protos[1], [0.9, 1.0])  # 1 + 0.5 * (0.8 - 1)
    np.testing.assert_array_equal(s2.protos[np.array([0, 2])], s.protos[np.array([0, 2])])
    np.testing.assert_allclose(s2.usage, [0.45, 0.55, 0.45])  # u + 0.1 (onehot - u)
    np.testing.assert_allclose(s2.error[1], 0.1 * 0.04, rtol=1e-5)
    assert int(s2.seeded) == 0


def test_random_inputs_pick_the_nearest_live_unit():
    # Catches an argmin over the wrong axis or unseeded units competing.
    k1, k2 = jax.random.split(jax.random.key(0))
    protos = jax.random.normal(k1, (16, 5))
    live = jnp.arange(16) % 3 != 0
    s = _state(protos, usage=jnp.full(16, 0.5), live=live, mean_error=1e9)
    xs = jax.random.normal(k2, (50, 5))
    d = ((xs[:, None] - protos[None]) ** 2).sum(-1)
    want = jnp.argmin(jnp.where(live[None], d, jnp.inf), axis=1)
    codes = jax.vmap(lambda x: code_update(s, x)[1])(xs)
    np.testing.assert_array_equal(codes.argmax(1), want)
    np.testing.assert_array_equal(codes.sum(1), 1.0)


def test_a_dead_unit_is_reseeded_with_a_badly_represented_input_only():
    # Catches re-seeding that never happens (a code that loses its plasticity), or that happens
    # to units still in use or for inputs already well coded (a code that thrashes).
    far = jnp.array([10.0, 10.0])
    s = _state([[0.0, 0.0], [-5.0, -5.0]], usage=[0.9, 0.0], mean_error=1.0)
    s2, code = code_update(s, far, rate=0.1, dead=0.1)
    np.testing.assert_array_equal(code, [0.0, 1.0])  # the re-seeded unit codes x
    np.testing.assert_array_equal(s2.protos[1], far)
    np.testing.assert_array_equal(s2.protos[0], [0.0, 0.0])  # the old winner did not move
    assert int(s2.seeded) == 1 and float(s2.error[1]) == 0.0
    # The same input when the unit is in use: no re-seed, the nearest moves.
    s3, _ = code_update(s._replace(usage=jnp.array([0.5, 0.5])), far, rate=0.1, dead=0.1)
    assert int(s3.seeded) == 0 and not np.array_equal(s3.protos[1], far)
    # A well-coded input (below the mean error): no re-seed either.
    s4, code4 = code_update(s, jnp.array([0.1, 0.0]), rate=0.1, dead=0.1)
    assert int(s4.seeded) == 0
    np.testing.assert_array_equal(code4, [1.0, 0.0])


def _feed(state, xs, rate=0.1):
    def one(s, x):
        s, c = code_update(s, x, rate=rate)
        return s, c.argmax()

    return jax.jit(lambda s, xs: jax.lax.scan(one, s, xs))(state, xs)


def test_a_coded_grid_gets_one_unit_per_cell_and_relearns_it_when_permuted():
    # Catches a code that merges cells (OaK's features would alias states), and one that cannot
    # follow a new code of the same world (CodedGrid's permute schedule): dead units re-seeded.
    env = CodedGrid()
    cells = jnp.asarray(env.code)  # [49, 64]
    order = jax.random.randint(jax.random.key(1), (6000,), 0, 49)
    state, _ = _feed(code_init(64, 64), cells[order])
    units = jax.vmap(lambda x: code_encode(state, x).argmax())(cells)
    assert len(set(np.asarray(units).tolist())) == 49
    assert int(state.live.sum()) == 49
    perm = jax.random.permutation(jax.random.key(2), 64)
    state2, _ = _feed(state, cells[:, perm][order])  # the same world through a new code
    units2 = jax.vmap(lambda x: code_encode(state2, x).argmax())(cells[:, perm])
    assert len(set(np.asarray(units2).tolist())) == 49
    assert int(state2.seeded) > int(state.seeded)
    # Each new cell is coded by a prototype that is (nearly) its code.
    d = jnp.sum((state2.protos[units2] - cells[:, perm]) ** 2, axis=1)
    assert float(d.max()) < 1.0


def test_oak_on_codes_under_jit_and_vmap_records_its_units_and_report_names_their_cells(tmp_path):
    # Catches features=code not reaching the agent (D would be the 64 bits, not K), a code state
    # outside OakState (lost by vmap/scan), option records without the unit columns, and a
    # report that does not map each option's unit to the cell it codes.
    spec = RunSpec(env="CodedGrid-v0", agent="oak", steps=1200, seeds=2, chunk=600,
                   agent_options={"features": "code", "code_size": 56, "replace_every": 200,
                                  "maturity": 200, "option_warmup": 100})  # fmt: skip
    result = run(spec.replace(out=str(tmp_path / "run")))
    st = result.final.agent
    assert st.theta.shape == (2, 56) and st.code.protos.shape == (2, 56, 64)
    assert st.act.outcome.shape == (2, 4, 57, 56)
    assert (np.asarray(st.code.live.sum(1)) == 48).all()  # every cell but the goal, once each
    assert not np.array_equal(st.code.protos[0], st.code.protos[1])  # seeds run apart
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(st) if x.dtype.kind == "f")
    rec = result.records
    assert {"unit_usage", "unit_error"} <= set(rec)
    assert (rec["feature"] < 56).all() and (rec["unit_usage"] >= 0).all()
    assert float(result.summary["average_reward"]["mean"]) > 0
    text = report([str(tmp_path / "run")])
    assert "unit_usage" in text and "as a cell of the world" in text
    table = text.split("as a cell of the world:\n")[1].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 2 * 8
    # A live unit is exactly one cell's code (distance 0) and codes that one cell only.
    live = [r.split() for r in table if "never seeded" not in r]
    assert live and all(float(r[-2]) == 0.0 and r[-1] == "1" for r in live)


def test_observation_features_keep_their_state_and_bad_sizes_are_refused():
    # Catches a features=observation state that gained arrays (old checkpoints and fingerprints)
    # and a code smaller than the option slots.
    from oakrl.core.types import ArraySpec, DiscreteSpec

    obs, act = ArraySpec((64,), jnp.float32), DiscreteSpec(4)
    assert make_agent("oak").init(jax.random.key(0), obs, act).code is None
    with pytest.raises(ConfigError, match="code_size 4, got 8"):
        make_agent("oak", features="code", code_size=4).init(jax.random.key(0), obs, act)
    with pytest.raises(ConfigError, match="features"):
        make_agent("oak", features="pixels")


def test_oak_code_resume_is_bit_identical(tmp_path):
    # Catches code state that a checkpoint loses or alters (prototypes, usage, live, re-seeds).
    from tests.test_resume import assert_chunk_resume_is_bit_identical

    spec = RunSpec(env="CodedGrid-v0", agent="oak", steps=1000, seeds=2, chunk=500,
                   agent_options={"features": "code"})  # fmt: skip
    assert_chunk_resume_is_bit_identical(spec, tmp_path)


def test_oak_default_config_lists_no_code_options_so_earlier_runs_resume():
    # Bug: the four code options were always in oak's config.json, so a results directory of oak
    # written before they existed was refused ("agent_config.features is unset there").
    from oakrl.agents.oak import OakConfig

    listed = OakConfig().to_dict()
    assert not {"features", "code_size", "code_rate", "code_dead"} & listed.keys()
    coded = OakConfig(features="code", code_size=32)
    assert coded.to_dict()["code_size"] == 32 and OakConfig.build(coded.to_dict()) == coded
