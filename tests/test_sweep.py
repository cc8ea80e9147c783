"""Sweeps: a grid of ordinary resumable runs; re-running skips finished trials."""

from __future__ import annotations

import json
import os
from pathlib import Path

from oakrl.cli import main
from oakrl.lab.parse import sweep_specs

SPEC = """
[base]
steps = 500
chunk = 500
seeds = 1
[base.agent_options]
hidden = [16, 16]

[grid]
env = ["CartPole-v1", "Acrobot-v1"]
"agent_options.lr" = [1.0]
"""


def test_sweep_local_runs_then_skips(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    names = [name for name, _, _ in sweep_specs(spec)]
    assert names == ["0000_env=CartPole-v1,lr=1.0", "0001_env=Acrobot-v1,lr=1.0"]
    out = tmp_path / "sweep"
    # Trial 0 made beforehand (as if by an earlier, interrupted sweep): only trial 1 runs, in a
    # spawned worker process (one process keeps the test's compile cost to one run).
    first = tmp_path / "first.toml"
    first.write_text(SPEC.replace('"Acrobot-v1"', ""))
    assert main(["sweep", str(first), "--out", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "2", "--cpu-threads", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 trials, 2 complete (1 skipped" in capsys.readouterr().out
    index = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in index["trials"]] == ["skipped", "complete"]
    for name in names:
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["steps"] == 500
    assert json.loads((out / names[1] / "config.json").read_text())["env"] == "Acrobot-v1"
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.parent != out}
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.parent != out} == mtimes
    index = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in index["trials"]] == ["skipped", "skipped"]


def test_sweep_bad_spec_refused_before_running(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC.replace('"Acrobot-v1"', '"Nope-v0"'))
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trial 0001" in err and "Nope-v0" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_sweep_refuses_a_directory_that_holds_a_run(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a sweep" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


RAY_SPEC = """
[base]
steps = 300
chunk = 300
[base.agent_options]
hidden = [16, 16]

[grid]
"agent_options.lr" = [0.5, 1.0]
seed = [0, 1]
"""


def test_sweep_ray_backend_two_configs_two_seeds(tmp_path, capsys, monkeypatch):
    """The ray backend on a local ray instance: 2 configs x 2 seeds, then a re-run skips all."""
    ray = __import__("pytest").importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token written under the home directory
    spec = tmp_path / "sweep.toml"
    spec.write_text(RAY_SPEC)
    out = tmp_path / "sweep"
    try:
        assert main(["sweep", str(spec), "--out", str(out), "--backend", "ray"]) == 0, capsys.readouterr().err
        assert "4 trials, 4 complete" in capsys.readouterr().out
        index = json.loads((out / "sweep.json").read_text())
        assert [t["status"] for t in index["trials"]] == ["complete"] * 4
        assert main(["sweep", str(spec), "--out", str(out), "--backend", "ray"]) == 0
        assert "4 skipped" in capsys.readouterr().out
    finally:
        ray.shutdown()


def test_sweep_on_a_ray_head_started_with_ray_start(tmp_path):
    """A cluster as users run one: `ray start --head`, then `oakrl sweep --address HOST:PORT`.

    Catches a sweep that ignores --address (it would start its own instance) or cannot reach a
    separately started head. Subprocesses: the head and the sweep are other processes.
    """
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    pytest = __import__("pytest")
    pytest.importorskip("ray")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    if not Path(ray_cli).exists():
        ray_cli = shutil.which("ray") or pytest.skip("no ray command")
    with socket.socket() as s:  # a free port for the head
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", JAX_PLATFORMS="cpu")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: ray's socket paths have a length limit
    head = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--disable-usage-stats"]
    head += ["--include-dashboard=false", f"--temp-dir={temp}", "--block"]
    # --block: the head lives as long as this process, so ending it ends only this cluster
    # (`ray stop` would end every ray process on the machine, other users' included).
    proc_head = subprocess.Popen(head, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spec = tmp_path / "sweep.toml"
        spec.write_text(RAY_SPEC)
        out = tmp_path / "sweep"
        argv = [sys.executable, "-m", "oakrl", "sweep", str(spec), "--out", str(out), "--backend", "ray"]
        argv += ["--address", f"127.0.0.1:{port}"]
        for _ in range(120):  # the head's port opens once it is up
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc_head.poll() is None, "ray start failed"
            time.sleep(1)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "4 trials, 4 complete" in proc.stdout
    finally:
        proc_head.terminate()
        try:
            proc_head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc_head.kill()
        shutil.rmtree(temp, ignore_errors=True)
