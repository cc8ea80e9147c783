"""The plasticity studies at a tiny scale: results directory, summary shape, bad input."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from oakrl.errors import ConfigError
from oakrl.study.cli import study
from oakrl.study.common import retention_summary


def test_retention_summary_by_hand():
    # 1 method, 2 seeds, 10 tasks: early = task 0, late = task 9.
    per_task = np.ones((1, 2, 10))
    per_task[0, :, 0] = [0.5, 1.0]
    per_task[0, :, 9] = [0.25, 0.5]
    m = retention_summary(per_task, ("backprop",))["methods"]["backprop"]
    assert m["early"] == pytest.approx(0.75) and m["late"] == pytest.approx(0.375)
    assert m["retention"] == pytest.approx(0.5)
    assert m["per_seed"]["retention"] == pytest.approx([0.5, 0.5])


def test_rl_verdict_by_hand():
    from oakrl.study.rl import verdict

    # 3 methods, 3 seeds, 10 changes: late = the last change.
    per = np.zeros((3, 3, 10))
    per[0, :, 9] = [100, 110, 120]  # backprop: mean 110, sd 10
    per[1, :, 9] = [200, 190, 210]  # cbp: mean 200, sd 10 -> margin 90 > 10
    per[2, :, 9] = [100, 150, 170]  # redo: mean 140, sd 36.06 -> margin 30 < 36.06
    v = verdict(per, ("backprop", "cbp", "redo"))
    assert v["changes_per_window"] == 1
    cbp, redo = v["remedies"]["cbp"], v["remedies"]["redo"]
    assert cbp["margin"] == pytest.approx(90) and cbp["spread"] == pytest.approx(10)
    assert cbp["beats_backprop"] is True
    assert cbp["paired_difference"]["per_seed"] == pytest.approx([100, 80, 90])
    assert cbp["paired_difference"]["standard_error"] == pytest.approx(10 / np.sqrt(3))
    assert cbp["paired_difference"]["seeds_ahead"] == 1.0
    assert redo["paired_difference"]["seeds_ahead"] == pytest.approx(2 / 3)  # 0, +40, +50
    assert redo["margin"] == pytest.approx(30) and redo["spread"] == pytest.approx(np.sqrt(1300))
    assert redo["beats_backprop"] is False
    assert verdict(per[1:], ("cbp", "redo")) == {"remedies": {}}


def _check_dir(path, methods):
    summary = json.loads((path / "summary.json").read_text())
    assert set(summary["methods"]) == set(methods)
    for m in summary["methods"].values():
        assert {"early", "late", "retention", "per_seed"} <= set(m)
        assert len(m["per_seed"]["early"]) == 2
    assert (path / "figure.png").stat().st_size > 1000
    table = pq.read_table(path / "metrics.parquet").to_pydict()
    assert set(table["method"]) == set(methods)
    return summary, table


def test_plasticity_supervised_tiny(tmp_path):
    out = tmp_path / "sup"
    r = CliRunner().invoke(
        study,
        [
            "plasticity-supervised",
            "--out",
            str(out),
            "--tasks",
            "10",
            "--steps-per-task",
            "30",
            "--seeds",
            "2",
            "--hidden",
            "8",
            "--methods",
            "backprop,cbp",
            "--cbp-rate",
            "0.05",
            "--maturity",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output + repr(r.exception)
    summary, table = _check_dir(out, ("backprop", "cbp"))
    assert len(table["accuracy"]) == 2 * 2 * 10
    # Online accuracy over a task's 30 samples: a multiple of 1/30. Catches an accuracy taken
    # on something other than the task's own stream (a probe batch, a running average).
    assert all(abs(a * 30 - round(a * 30)) < 1e-4 for a in table["accuracy"])
    # early / late: task 0 / task 9 of each seed (10% of 10 tasks). Catches a summary read from
    # the wrong metric, task or seed.
    for m in ("backprop", "cbp"):
        rows = zip(table["method"], table["seed"], table["task"], table["accuracy"], strict=True)
        acc = {(s, t): a for mm, s, t, a in rows if mm == m}
        per_seed = summary["methods"][m]["per_seed"]
        assert per_seed["early"] == pytest.approx([acc[(s, 0)] for s in (0, 1)])
        assert per_seed["late"] == pytest.approx([acc[(s, 9)] for s in (0, 1)])
    assert "retention" in r.output


@pytest.mark.parametrize(
    ("agent", "schedule", "env"),
    [("stream-q", "switch", "CartPole-v1"), ("stream-q", "permute", None), ("stream-ac", "permute", None)],
)
def test_plasticity_rl_tiny(tmp_path, agent, schedule, env):
    out = tmp_path / "rl"
    t0 = time.perf_counter()
    r = CliRunner().invoke(
        study,
        [
            "plasticity-rl",
            "--out",
            str(out),
            *(["--env", env] if env else []),  # the default is CodedGrid-v0
            "--agent",
            agent,
            "--schedule",
            schedule,
            "--changes",
            "10",
            "--every",
            "100",
            "--seeds",
            "2",
            "--hidden",
            "8",
            "--methods",
            "cbp",
        ],
    )
    elapsed = time.perf_counter() - t0
    assert r.exit_code == 0, r.output + repr(r.exception)
    summary, table = _check_dir(out, ("cbp",))
    assert len(table["return"]) == 2 * 10
    timing = summary["timing"]["cbp"]
    # Catches a throughput that forgets the seeds or the changes, or divides by the compile or
    # wall time; and timings that are not seconds of this run (units, a clock started early).
    assert timing["agent_steps_per_second"] == pytest.approx(10 * 100 * 2 / timing["stream_seconds"])
    assert timing["compile_seconds"] + timing["stream_seconds"] <= summary["wall_seconds"] <= elapsed
    # The dormant-unit diagnostic is kept for either agent (stream Q names it without a prefix).
    dormant = table["dormant" if agent == "stream-q" else "value_dormant"]
    assert all(0 <= d <= 1 for d in dormant)
    assert summary["verdict"] == {"remedies": {}}  # no backprop to compare against
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"] == schedule and config["env"] == (env or "CodedGrid-v0")
    assert config["gamma"] == 0.9 and config["epsilon_end"] == 0.1
    assert summary["cycle_matched"] is None  # 200 tasks: every change is a new world


@pytest.mark.parametrize(
    "args",
    [
        ["plasticity-supervised", "--methods", "backprop,nope"],
        ["plasticity-supervised", "--tasks", "5"],
        ["plasticity-rl", "--agent", "stream-td"],
        ["plasticity-rl", "--schedule", "reward"],
        ["plasticity-rl", "--schedule", "switch"],  # CodedGrid-v0 has no dynamics variants
        ["plasticity-rl", "--env", "CartPol-v1"],
        ["plasticity-rl", "--gamma", "1.5"],
        ["plasticity-rl", "--epsilon-end", "-0.1"],
        ["plasticity-supervised", "--hidden", "a,b"],
        ["plasticity-rl", "--remedy-options", '{"cbp": {"nope": 1}}'],
        ["plasticity-rl", "--remedy-options", "[1]"],
    ],
)
def test_study_bad_input_is_a_config_error(tmp_path, args):
    r = CliRunner().invoke(study, [*args, "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError), r.output
    assert not (tmp_path / "x").exists()  # nothing is written before the input is checked


def test_rl_per_change_by_hand():
    """A run's episodes and chunk diagnostics -> per-change values. Catches an episode that ends
    on a change's last step counted in the next change, and a chunk mean spread over the wrong
    changes."""
    from oakrl.lab.run import RunResult
    from oakrl.study.rl import RLConfig, per_change

    cfg = RLConfig(changes=10, every=100, seeds=2)  # the first fifth of a change: steps 1-20
    episodes = {
        "seed": np.array([0, 0, 0, 1], np.int32),
        "step": np.array([10, 100, 101, 150], np.int64),  # 100: change 0's last step
        "return": np.array([1.0, 3.0, 5.0, 7.0], np.float32),
        "task": np.zeros(4, np.int32),
    }
    diagnostics = {  # chunks ending at steps 250 and 1000
        "seed": np.array([0, 1, 0, 1], np.int32),
        "step": np.array([250, 250, 1000, 1000], np.int64),
        "dormant": np.array([0.1, 0.2, 0.3, 0.4], np.float32),
    }
    out = per_change(cfg, RunResult({}, episodes, diagnostics, {}, None, None))
    nan = np.nan
    np.testing.assert_array_equal(out["return"][:, :2], [[2.0, 5.0], [nan, 7.0]])
    np.testing.assert_array_equal(out["early_return"][:, :2], [[1.0, 5.0], [nan, nan]])
    assert np.isnan(out["return"][:, 2:]).all()
    # The first chunk (steps 1-250) covers changes 0 and 1; the second the rest.
    np.testing.assert_allclose(out["dormant"][0], [0.1] * 2 + [0.3] * 8, rtol=1e-6)
    np.testing.assert_allclose(out["dormant"][1], [0.2] * 2 + [0.4] * 8, rtol=1e-6)
    assert set(out) == {"return", "early_return", "dormant"}


def test_rl_runs_are_lab_runs_with_the_study_options():
    """Each method is a RunSpec of the study's world and schedule with unsafe_rbg keys of the
    base seed and window 1000 (what the study always used), and stream-q explores over the
    first 5% of the run, so the study's numbers stay those measured before the lab ran it."""
    from oakrl.study.rl import RLConfig, run_spec

    cfg = RLConfig(changes=10, every=500, seeds=2, seed=3, hidden=(8,))
    spec = run_spec(cfg, "cbp")
    world = (spec.env, spec.schedule, spec.every, spec.tasks, spec.order)
    assert world == ("CodedGrid-v0", "permute", 500, 200, "cyclic")
    assert (spec.steps, spec.seeds, spec.seed, spec.prng, spec.window) == (5000, 2, 3, "unsafe_rbg", 1000)
    c = spec.agent_config
    assert (c.plasticity, c.hidden, c.gamma, c.epsilon_end) == ("cbp", (8,), 0.9, 0.1)
    assert c.plasticity_options == {"rate": 1e-4, "maturity": 100, "rank_every": 0}
    from oakrl.lab.run import prepare

    assert prepare(spec).agent.config.exploration_steps == 250


def test_prior_group_streams_start_from_their_own_clones(tmp_path):
    """The prior conditions run as one stream over conditions x seeds: condition j's seeds are
    streams j * seeds + i, started from that condition's clones. The first condition's streams
    are then exactly those it runs alone (a group that put another condition's clones, or other
    keys, in its place would differ). Later conditions cannot be checked this way: under
    unsafe_rbg a stream's draws depend on its place in the vmapped batch."""
    from oakrl.study.prior import PriorConfig, run_prior

    def run(conditions, out):
        cfg = PriorConfig(env="TextWorld-v0", steps=600, seeds=2, conditions=conditions, demo_steps=200,
                          bc_steps=20, hidden=(8,), chunk=300)  # fmt: skip
        return run_prior(cfg, out, log=lambda line: None)

    both = run(("expert", "wrong"), tmp_path / "both")
    alone = run(("expert",), tmp_path / "alone")
    np.testing.assert_array_equal(both["curves"]["expert"], alone["curves"]["expert"])

    # The diagnostics are float32 means whose last bits can depend on the batch's width (on a
    # 2 vCPU AMD EPYC, 2026-12-07, the entropy moved by 1e-7 relative between the batch of four
    # streams and the batch of two); another condition's clones or keys move them far more.
    def same(a, b) -> bool:
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, float):
            return a == pytest.approx(b, rel=1e-6, abs=1e-9)
        return a == b

    assert same(both["conditions"]["expert"], alone["conditions"]["expert"])
    assert both["conditions"]["wrong"]["final_return"] != both["conditions"]["expert"]["final_return"]
    assert both["timing"]["expert"]["run_together_with"] == ["expert", "wrong"]
