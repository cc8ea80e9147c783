"""The command line: bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oakrl.cli import main

BAD = [
    ["run", "--env", "NoSuchEnv"],
    ["run", "--steps", "-5"],
    ["run", "--agent", "nope"],
    ["run", "--bogus-flag"],
    ["run", "--steps", "abc"],
    ["run", "--opt", "lr=-1"],
    ["run", "--opt", "nope=1"],
    ["run", "--opt", "hidden=x"],
    ["run", "--schedule", "nope"],
    ["run", "--env", "Breakout-MinAtar", "--schedule", "switch"],
    ["run", "--env", "Pendulum-v1", "--agent", "stream-q"],
    # An impossible option value must be refused up front, like lr=-1 (not a crash mid-run).
    ["run", "--agent", "stream-td", "--opt", "return_horizon=0", "--steps", "100", "--opt", "hidden=8"],
]


def one_line_error(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, (code, captured.out, captured.err)
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert captured.err.strip() == lines[0].strip()
    return lines[0]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[1:]) for a in BAD])
def test_bad_run_input(argv, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([*argv, "--out", str(out)])
    line = one_line_error(capsys, code)
    assert line.startswith("oakrl: ")
    assert not out.exists(), "a refused run must not create its output directory"
    assert list(tmp_path.iterdir()) == []


def test_bad_input_messages_say_what_is_valid(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["run", "--env", "NoSuchEnv", "--out", out]) == 2
    assert "CartPole-v1" in capsys.readouterr().err
    assert main(["run", "--agent", "nope", "--out", out]) == 2
    assert "stream-ac" in capsys.readouterr().err
    assert main(["run", "--opt", "nope=1", "--out", out]) == 2
    assert "lr" in capsys.readouterr().err
    assert main(["run", "--env", "Pendulum-v1", "--agent", "stream-q", "--out", out]) == 2
    assert "stream-ac" in capsys.readouterr().err


def test_report_missing_dir(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    code = main(["report", str(missing)])
    line = one_line_error(capsys, code)
    assert str(missing) in line
    assert not missing.exists()
    code = main(["report", "/no/such/dir"])
    one_line_error(capsys, code)


def test_console_script_bad_env_no_traceback(tmp_path):
    script = Path(sys.executable).with_name("oakrl")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "oakrl.cli"]
    out = tmp_path / "out"
    proc = subprocess.run(
        [*cmd, "run", "--env", "NoSuchEnv", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NoSuchEnv" in lines[0], proc.stderr
    assert not out.exists()


def test_envs(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    first = [line.split()[0] for line in out.splitlines() if line.strip()]
    for env_id in ("CartPole-v1", "Breakout-MinAtar", "Foraging-v0", "gym:ID"):
        assert first.count(env_id) == 1, env_id


def test_agents(capsys):
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    first = [line.split()[0] for line in out.splitlines() if line.strip()]
    for name in ("stream-ac", "stream-q", "stream-td"):
        assert first.count(name) == 1, name
    assert "hidden=128,128" in out


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["report", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Usage" in captured.out
    assert captured.err == ""


def test_run_then_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--steps",
            "1000",
            "--chunk",
            "1000",
            "--opt",
            "hidden=16,16",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.out + captured.err
    assert f"results: {out}" in captured.out
    for name in ("config.json", "summary.json", "episodes.parquet", "curve.png"):
        assert (out / name).is_file(), name

    code = main(["report", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "CartPole-v1" in captured.out
    assert "stream-ac" in captured.out


def test_run_refuses_existing_run_dir(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text('{"env": "CartPole-v1"}\n')
    code = main(["run", "--steps", "1000", "--opt", "hidden=16,16", "--out", str(out)])
    line = one_line_error(capsys, code)
    assert "already holds a run" in line
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text() == '{"env": "CartPole-v1"}\n'


def test_resume_or_report_a_file_says_it_is_a_file(tmp_path, capsys):
    f = tmp_path / "summary.json"
    f.write_text("{}")
    for cmd in ("resume", "report"):
        line = one_line_error(capsys, main([cmd, str(f)]))
        assert "a file" in line and "no such directory" not in line
    assert f.read_text() == "{}"


def test_record_refuses_a_non_dataset_name(tmp_path, capsys):
    """`--out DIR/summary.json` would have written summary.json.npz into a results directory."""
    line = one_line_error(capsys, main(["record", "--out", str(tmp_path / "summary.json"), "--steps", "10"]))
    assert ".npz" in line
    assert list(tmp_path.iterdir()) == []


def test_a_swallowed_ctrl_c_stops_the_run_at_its_first_chunk(tmp_path, capsys):
    """A Ctrl-C that Python swallowed before the run began (raised inside jax's gc callback while
    jax imported) is remembered by the entry point's handler; the run honours it at its first
    chunk boundary: checkpoint, one line, exit 130, resumable."""
    import signal

    from oakrl.__main__ import SigInt

    handler = SigInt()
    handler.received = signal.SIGINT
    old = signal.signal(signal.SIGINT, handler)
    try:
        code = main(["run", "--steps", "400", "--chunk", "100", "--out", str(tmp_path / "r")])
    finally:
        signal.signal(signal.SIGINT, old)
    assert code == 130
    assert "interrupted at step 100" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "r"), "--no-plot"]) == 0


def test_python_dash_m_oakrl():
    out = subprocess.run([sys.executable, "-m", "oakrl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "continually" in out.stdout


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs Linux and 2 CPUs")  # fmt: skip
def test_cpu_threads_sizes_xla_pool_and_leaves_results_alone(tmp_path):
    """--cpu-threads 1: XLA:CPU computes with one pool thread, every thread of the process keeps
    all its CPUs (else two such runs would share one CPU), and the run's checkpoint is
    bit-identical to the default's."""
    probe = (
        "import os; from oakrl.lab.cpu import limit_cpu_threads; limit_cpu_threads(1); "
        "import jax.numpy as jnp; (jnp.ones((256, 256)) @ jnp.ones((256, 256))).block_until_ready(); "
        "names = [open(f'/proc/self/task/{t}/comm').read() for t in os.listdir('/proc/self/task')]; "
        "cpus = min(len(os.sched_getaffinity(int(t))) for t in os.listdir('/proc/self/task')); "
        "print(sum(n.startswith('tf_XLAEigen') for n in names), cpus)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    pool, cpus = map(int, out.stdout.split())
    assert pool == 1 and cpus == len(os.sched_getaffinity(0))
    sums = []
    for threads in ([], ["--cpu-threads", "1"]):
        d = tmp_path / f"run{len(threads)}"
        argv = ["run", "--steps", "300", "--chunk", "150", "--opt", "hidden=8,8", "--no-plot"]
        argv += ["--out", str(d)]
        subprocess.run([sys.executable, "-m", "oakrl", *argv, *threads], check=True, capture_output=True)
        sums.append(hashlib.sha256((d / "checkpoint-000000000300.npz").read_bytes()).hexdigest())
    assert sums[0] == sums[1]


@pytest.mark.parametrize("cmd", [["run"], ["study", "--cpu-threads", "0", "oak"]])
def test_cpu_threads_must_be_positive(cmd, tmp_path, capsys):
    argv = [*cmd, "--out", str(tmp_path / "x")] + (["--cpu-threads", "0"] if cmd == ["run"] else [])
    line = one_line_error(capsys, main(argv))
    assert "--cpu-threads" in line and "positive integer or 'all'" in line
    assert list(tmp_path.iterdir()) == []


def test_auto_threads_from_the_work():
    """The default pool size: one thread for a few seeds of a small network, all CPUs for wide
    steps and for agents never measured. Catches a rule that ignores seeds, --opt hidden, the
    config file's agent_options, or a linear (hidden=()) network."""
    from oakrl.lab.cpu import auto_threads, run_threads

    assert auto_threads("stream-ac", 1) == 1
    assert auto_threads("stream-ac", 16) == 1
    assert auto_threads("stream-ac", 64) is None
    assert auto_threads("stream-q", 4, "1024,1024") is None
    assert auto_threads("stream-td", 256, ()) == 1
    assert auto_threads("oak", 1) == 1 and auto_threads("oak", 2) is None
    assert auto_threads("dyna", 2) == 1 and auto_threads("planner", 1) == 1
    assert auto_threads("dyna", 8) is None and auto_threads("tabular-q", 1) is None
    assert run_threads({"agent": "stream-ac", "seeds": 4}) == 1
    assert run_threads({"seeds": 4}, ("hidden=512,512",)) is None
    assert run_threads({"seeds": 2, "agent_options": {"hidden": [1024, 1024]}}) is None
    assert run_threads({"seeds": "x"}) is None
    # malformed fields are the spec's to refuse (one line); the choice must not crash first
    assert run_threads({"agent_options": 3}) is None and run_threads({"agent_options": [1]}) is None
    assert run_threads({"seeds": 2}, ("hidden",)) == 1 and run_threads({"agent": ["x"]}) is None


def test_cpu_threads_all_is_accepted(tmp_path):
    assert main(["run", "--steps", "200", "--chunk", "100", "--opt", "hidden=8,8", "--no-plot",
                 "--cpu-threads", "all", "--out", str(tmp_path / "r")]) == 0  # fmt: skip


def test_listing_matches_the_registries():
    """`oakrl envs` / `oakrl agents` print oakrl/listing.json (fast: no JAX). Catches a listing
    that went stale when a world, an agent or an option was added or changed."""
    import json

    from oakrl.cli import LISTING, listing

    assert json.loads(LISTING.read_text()) == listing(), (
        'oakrl/listing.json is stale: python -c "from oakrl.cli import write_listing; write_listing()"'
    )


def test_envs_answers_without_jax():
    """Catches `oakrl envs` importing JAX again (3.6 s instead of a fraction of a second)."""
    probe = "import sys; from oakrl.cli import main; main(['envs']); main(['agents']); "
    probe += "print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False" and "CartPole-v1" in out.stdout
