"""A multi-learner run (two tabular Q-learners in Market-v0, composed into one joint agent) killed
with SIGKILL and resumed ends bit-identical to an uninterrupted one.

Catches: learner states missing from the checkpoint (the joint state is a tuple of them), the
per-learner or world metrics not restored, the world's state (last prices) not restored.
"""

from __future__ import annotations

import json
import random
import sys

from oakrl.cli import main
from oakrl.lab.run import run
from oakrl.lab.spec import RunSpec
from tests.test_resume import assert_same_run, kill_after_checkpoint, persistent_cache, subprocess_env


def test_multi_learner_sigkill_and_resume_is_bit_identical(tmp_path, capsys):
    steps, chunk = 12_000, 500
    config = RunSpec(env="Market-v0", agent="tabular-q", learners=2, steps=steps, seeds=2, chunk=chunk)
    assert config.agent == "joint" and config.learners == 2
    args = ["run", "--env", "Market-v0", "--agent", "tabular-q", "--learners", "2", "--steps", str(steps),
            "--seeds", "2", "--chunk", str(chunk), "--no-plot"]  # fmt: skip
    cache = tmp_path / "cache"
    with persistent_cache(cache):
        reference = tmp_path / "reference"
        run(config.replace(out=str(reference)))
        out = tmp_path / "killed"
        argv = [sys.executable, "-m", "oakrl.cli", *args, "--out", str(out)]
        target = random.Random().randrange(1, 9) * chunk
        step = kill_after_checkpoint(argv, out, target, subprocess_env(cache), jitter=random.uniform(0, 0.05))
        assert step < steps and not (out / "summary.json").exists()
        assert main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == step
    assert_same_run(reference, out)
    diag = summary["diagnostics"]
    for name in ("l0/reward", "l1/reward", "world/price", "world/profit_gain"):
        assert name in diag, name  # per-learner and per-world metrics reach summary.json
    assert "resuming" in capsys.readouterr().err
