"""`oakrl study memory`: end to end at a tiny size, bad input, and its metrics by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from oakrl.errors import ConfigError
from oakrl.study.cli import study


def test_memory_study_tiny_writes_its_results(tmp_path):
    # Catches: a condition or world missing from summary.json, a figure not written, the memory
    # condition run without memory (its state would be as small as no-memory's).
    out = tmp_path / "mem"
    r = CliRunner().invoke(
        study,
        ["memory", "--out", str(out), "--envs", "CodedGrid-v0", "--steps", "600", "--segments", "3",
         "--seeds", "2", "--window", "100", "--memory", "{size=32,k=4,mix=0.5}"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert (out / "figure.png").stat().st_size > 0 and (out / "metrics.parquet").exists()
    s = json.loads((out / "summary.json").read_text())
    assert s["study"] == "memory" and set(s["worlds"]) == {"CodedGrid-v0"}
    w = s["worlds"]["CodedGrid-v0"]
    assert set(w["conditions"]) == {"no-memory", "memory"}
    for c in w["conditions"].values():
        assert {"recovery_steps", "forgetting", "early_share_of_optimal"} <= set(c)
        assert len(c["recovery_steps"]["per_seed"]) == 2 and len(c["recovery_steps"]["per_change"]) == 2
    assert w["conditions"]["memory"]["memory"] == {"size": 32, "k": 4, "mix": 0.5}
    assert set(w["difference"]["memory"]) == {"recovery", "forgetting", "forgetting_rate", "early"}
    cost = s["cost"]["CodedGrid-v0"]
    assert cost["memory"]["state_bytes_per_seed"] > cost["no-memory"]["state_bytes_per_seed"]
    assert cost["memory"]["cpu_speed_vs_no_memory"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["--envs", "Roms-v0"],
        ["--memory", "{size=0}"],
        ["--memory", "{size=8,k=16}"],
        ["--memory", "{nope=1}"],
        ["--memory", "not a table"],
        ["--steps", "1001", "--segments", "10"],
        ["--segments", "1"],
        ["--window", "5000", "--steps", "1000"],
        ["--threshold", "0"],
    ],
)
def test_memory_study_bad_input_is_a_config_error(tmp_path, args):
    r = CliRunner().invoke(study, ["memory", *args, "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError), r.output
    assert "\n" not in str(r.exception)
    assert not (tmp_path / "x").exists()  # nothing is written before the input is checked


def test_recovery_forgetting_and_early_by_hand():
    # A synthetic lifetime on CodedGrid-v0 (2 tasks, optimal rate 1/3.5): 4 segments of 1000
    # steps, 1 seed. Catches: recovery counted from the lifetime's start rather than the change,
    # censoring not at K, forgetting's sign flipped, early not normalised by the optimal rate.
    from oakrl.study.memory import MemoryStudyConfig, compare, optimal_rate, seed_metrics

    cfg = MemoryStudyConfig(
        envs=("CodedGrid-v0",), steps=4000, segments=4, seeds=1, window=100, threshold=0.5
    )
    cfg.check()
    rate = optimal_rate("CodedGrid-v0", 0)
    assert rate == pytest.approx(1 / 3.5)  # mean Manhattan distance to the centre of 7x7: 168 / 48
    # Goal reaches (return 1) every 5 steps in segments 0 and 2, from step 1300 on in segment 1,
    # none in segment 3; failures (return 0) every 5 steps elsewhere.
    steps = np.arange(5, 4001, 5)
    hit = ((steps <= 1000) | ((steps > 1300) & (steps <= 2000)) | ((steps > 2000) & (steps <= 3000))).astype(
        float
    )
    task = ((steps - 1) // 1000) % 2
    m = seed_metrics("CodedGrid-v0", cfg, np.zeros_like(steps), steps, hit, task)
    # need = 0.5 * 100 / 3.5 = 14.3 reaches in the window: 15 reaches at 5 steps apart.
    # change 1 (at 1000): first reach at 1305, the 15th at 1375 -> 375 steps.
    # change 2 (at 2000): reaches from 2005, the 15th at 2075 -> 75. change 3: never -> K = 1000.
    assert m["recovery"][0].tolist() == [375, 75, 1000]
    assert m["censored"][0].tolist() == [False, False, True]
    # forgetting: task 0 left at 1 (last quarter of segment 0), back at 1 (segment 2) -> 0;
    # task 1 left at 1 (segment 1's last quarter), back at 0 (segment 3) -> 1; mean 0.5.
    assert m["forgetting"][0] == pytest.approx(0.5)
    # forgetting in rate: 50 reaches in 250 steps = 0.2 / rate = 0.7 of optimal before each
    # return; task 0 comes back at 0.7 (drop 0), task 1 at 0 (drop 0.7); mean 0.35.
    assert m["forgetting_rate"][0] == pytest.approx(0.5 * 0.2 / rate)
    # early: 200 reaches in the first 1000 steps / (1000 * rate) = 200 / 285.7 = 0.7.
    assert m["early"][0] == pytest.approx(200 / (1000 * rate))
    # memory - no-memory: lower recovery by more than the spread is memory's win.
    same = {"forgetting": np.array([0.5, 0.4]), "forgetting_rate": np.zeros(2), "early": np.array([0.1, 0.2])}
    base = {"recovery": np.array([[900.0], [1000.0]]), **same}
    mem = {"recovery": np.array([[100.0], [200.0]]), **same}
    d = compare(base, mem)
    assert d["recovery"]["difference"] == pytest.approx(-800) and d["recovery"]["memory_better_beyond_spread"]
    assert d["forgetting"]["difference"] == 0 and not d["forgetting"]["beyond_spread"]
