"""The plasticity studies at a tiny scale: results directory, summary shape, bad input."""

from __future__ import annotations

import json

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
    assert all(0 <= a <= 1 for a in table["accuracy"])
    assert "retention" in r.output


def test_plasticity_rl_tiny(tmp_path):
    out = tmp_path / "rl"
    r = CliRunner().invoke(
        study,
        [
            "plasticity-rl",
            "--out",
            str(out),
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
    assert r.exit_code == 0, r.output + repr(r.exception)
    summary, table = _check_dir(out, ("cbp",))
    assert len(table["return"]) == 2 * 10
    assert summary["timing"]["cbp"]["agent_steps_per_second"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["plasticity-supervised", "--methods", "backprop,nope"],
        ["plasticity-supervised", "--tasks", "5"],
        ["plasticity-rl", "--agent", "stream-td"],
        ["plasticity-supervised", "--hidden", "a,b"],
        ["plasticity-rl", "--remedy-options", '{"cbp": {"nope": 1}}'],
        ["plasticity-rl", "--remedy-options", "[1]"],
    ],
)
def test_study_bad_input_is_a_config_error(tmp_path, args):
    r = CliRunner().invoke(study, [*args, "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError), r.output
    assert not (tmp_path / "x" / "summary.json").exists()
