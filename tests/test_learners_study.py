"""`oakrl study learners`: its statistics against hand-worked numbers, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from oakrl.study.learners import aggregate, curves, final_returns, iqm, stratified_bootstrap


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 values: drop the 2 lowest and the 2 highest, mean of 2, 3, 4, 5 = 3.5 (not the mean 3.5
    # by accident: the outlier 100 would pull a plain mean to 15.25). Catches a plain mean or a
    # wrong cut.
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0])
    assert iqm(x) == pytest.approx(3.5)
    assert iqm(x.reshape(2, 4)) == pytest.approx(3.5)  # over all entries


def test_bootstrap_resamples_within_each_environment():
    # Env A's seeds all score 0, env B's all 1: a stratified resample always has 4 of each, so the
    # mean is 0.5 in every resample and the CI is [0.5, 0.5]. Catches pooled (unstratified)
    # resampling, which would give CIs around 0.5 of width ~0.4.
    scores = [np.zeros((4, 1)), np.ones((4, 1))]
    lo, hi = stratified_bootstrap(
        scores, lambda xs: float(np.concatenate(xs).mean()), 500, np.random.default_rng(0)
    )
    assert (lo, hi) == (0.5, 0.5)


def test_comparison_is_paired_by_seed():
    # The learner scores its baseline's score + 0.1 on every seed, while seeds differ by a lot:
    # paired by seed, the IQM difference is 0.1 in every resample, so the CI is [0.1, 0.1] and the
    # learner beats its baseline. Catches unpaired resampling (a CI spanning 0 here).
    rng = np.random.default_rng(1)
    norm = {}
    for env in ("A", "B"):
        base = rng.normal(0.0, 1.0, 8)
        norm[env] = {"stream-q:obgd": base, "stream-q:adaptive-q": base + 0.1}
    out = aggregate(norm, ("stream-q:obgd", "stream-q:adaptive-q"), 300, 0)
    c = out["comparisons"]["stream-q:adaptive-q"]
    assert c["baseline"] == "stream-q:obgd"
    assert c["iqm_difference"] == pytest.approx(0.1)
    assert c["ci95"] == pytest.approx([0.1, 0.1])
    assert c["beats_baseline"] and not c["worse_than_baseline"]
    assert "stream-q:obgd" not in out["comparisons"]  # the baseline is not compared with itself


def test_curves_and_final_returns_by_hand():
    # 100 steps, 4 windows of 25. Seed 0: episodes end at steps 10 (return 1), 20 (3), 80 (5);
    # seed 1: one at 60 (2). Windows: seed 0 [mean(1, 3) = 2, 2 (carried), 2 (carried), 5];
    # seed 1 [2, 2 (first seen, carried back), 2, 2]. Final (last 10%: steps > 90): none ends
    # there, so the last episode's return: seed 0 -> 5, seed 1 -> 2. Catches off-by-one windows
    # and a missing carry.
    ep = {
        "seed": np.array([0, 0, 0, 1]),
        "step": np.array([10, 20, 80, 60]),
        "return": np.array([1.0, 3, 5, 2]),
    }
    np.testing.assert_allclose(curves(ep, 100, 2, 4), [[2, 2, 2, 5], [2, 2, 2, 2]])
    np.testing.assert_allclose(final_returns(ep, 100, 2, 0.1), [5, 2])
    # With frac 0.5 (steps > 50): seed 0 -> 5, seed 1 -> 2; frac 1 (all): seed 0 -> mean 3.
    np.testing.assert_allclose(final_returns(ep, 100, 2, 1.0), [3, 2])


def test_study_learners_end_to_end(tmp_path):
    # The whole command on a tiny run: files written, table and aggregate present, every learner
    # with its numbers. Catches a broken wiring from flags to RunSpecs to the summary.
    from oakrl.study.cli import study

    out = tmp_path / "study"
    args = ["learners", "--out", str(out), "--envs", "CartPole-v1"]
    args += ["--learners", "stream-q:obgd,stream-q:adaptive-q", "--steps", "600", "--seeds", "2"]
    args += ["--random-steps", "200", "--chunk", "300", "--boot", "50", "--bins", "4"]
    r = CliRunner().invoke(study, args)
    assert r.exit_code == 0, r.output
    for name in ("summary.json", "metrics.parquet", "figure.png", "config.json"):
        assert (out / name).exists(), name
    s = json.loads((out / "summary.json").read_text())
    env = s["envs"]["CartPole-v1"]
    assert env["reference"] == 500.0 and 5 < env["random"] < 60  # a random CartPole policy scores ~22
    assert set(env["learners"]) == {"stream-q:obgd", "stream-q:adaptive-q"}
    assert len(env["learners"]["stream-q:adaptive-q"]["final"]["per_seed"]) == 2
    agg = s["aggregate"]["final"]
    assert set(agg["learners"]) == {"stream-q:obgd", "stream-q:adaptive-q"}
    assert agg["comparisons"]["stream-q:adaptive-q"]["baseline"] == "stream-q:obgd"
    assert "IQM of normalised final" in r.output


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--learners", "stream-q:adam"], "unknown learner"),
        (["--envs", "Pong-v9"], "unknown env"),
        (["--reference", "CartPole-v1:500"], "--reference takes"),
        (["--seeds", "0"], "--seeds must be"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, flags, words):
    # Catches tracebacks and half-made result directories on bad flags (the top-level CLI turns
    # the ConfigError into one line and exit 2).
    from oakrl.errors import ConfigError
    from oakrl.study.cli import study

    out = tmp_path / "study"
    r = CliRunner().invoke(study, ["learners", "--out", str(out), "--envs", "CartPole-v1", *flags])
    assert isinstance(r.exception, ConfigError), r.output
    assert words in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()
