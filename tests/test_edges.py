"""Dependable at the edges (issue 24): sizes refused before any work or write, a lock on every
results directory, write errors as one line, checkpoint.json trusted only through its checksum.

Runs are tiny (hidden 16,16, a few hundred steps). Each test says which bug it catches.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

import oakrl.io
from oakrl.cli import main
from oakrl.errors import ConfigError
from oakrl.lab import checkpoint as ckpt
from oakrl.lab.outdir import LOCK, default_out, lock_dir
from oakrl.lab.run import prepare, run
from oakrl.lab.spec import RunSpec

TINY_OPTS = {"hidden": (16, 16)}
TINY = ["--opt", "hidden=16,16", "--steps", "600", "--chunk", "200", "--no-plot"]


def one_line_error(capsys) -> str:
    """The one error line of the last command (after any progress lines); no traceback."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("oakrl:")]
    assert len(lines) == 1 and err.endswith(lines[0]), err
    assert "Traceback" not in err
    return lines[0]


def carry_bytes(out: Path) -> bytes:
    meta = ckpt.read_pointer(out)
    with np.load(out / meta["file"]) as archive:
        return archive["carry"].tobytes()


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--seeds", "100000"], "state for 100,000 seeds"),
        (["--opt", "hidden=100000,100000"], "state for 1 seeds"),
        (["--steps", "2147483647", "--seeds", "5000"], "of records"),
    ],
)
def test_runs_that_cannot_fit_are_refused_at_once_and_write_nothing(
    flags, words, tmp_path, capsys, monkeypatch
):
    # Bug: these ran for minutes and died in XLA's out-of-memory (exit 1, a traceback, a
    # config.json left behind that refused the corrected command).
    monkeypatch.setenv("OAKRL_MEMORY_LIMIT", str(8e9))  # the same limit on every machine
    prepare(RunSpec(steps=100))  # imports and first traces out of the timing
    out = tmp_path / "big"
    t0 = time.perf_counter()
    assert main(["run", "--out", str(out), "--no-plot", *flags]) == 2
    took = time.perf_counter() - t0
    err = one_line_error(capsys)
    assert "needs at least" in err and words in err and "8.00 GB" in err, err
    assert not out.exists()  # nothing written
    assert took < 5  # abstract evaluation only: ~0.9 s at load 10 on 2 cores


def test_range_checks_before_any_write(tmp_path, capsys):
    # Bug: --seed 2**63 / --every 2**31 / --steps 10**15 were tracebacks from JAX.
    for flags in (["--seed", str(2**63)], ["--every", str(2**31)], ["--steps", str(10**15)]):
        out = tmp_path / "r"
        assert main(["run", "--out", str(out), *flags]) == 2
        assert "must be at most" in one_line_error(capsys)
        assert not out.exists()
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 1e20\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "seed must be" in one_line_error(capsys)


def test_a_refused_default_directory_is_not_left_behind(tmp_path, capsys, monkeypatch):
    # Bug: a refused run without --out would leave an empty runs/ENV_AGENT_TIME behind.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OAKRL_MEMORY_LIMIT", "1000")
    assert main(["run", *TINY]) == 2
    one_line_error(capsys)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_failed_compile_leaves_nothing_that_refuses_the_corrected_command(tmp_path, capsys, monkeypatch):
    # Bug: config.json was written before compiling, so an XLA failure left a directory that
    # refused the corrected command ("already holds a run with a different config").
    from oakrl.lab import stream

    def fail(*a, **k):
        raise MemoryError("XLA out of memory (simulated)")

    out = tmp_path / "o"
    monkeypatch.setattr(stream, "compiler_options", fail)
    with pytest.raises(MemoryError):
        run(RunSpec(steps=400, chunk=200, agent_options={"hidden": (16, 16)}, out=str(out)))
    monkeypatch.undo()
    assert not (out / "config.json").exists()
    assert main(["run", "--out", str(out), *TINY]) == 0


# --------------------------------------------------------------------------- locks


def test_a_locked_directory_is_refused_naming_the_holder(tmp_path, capsys):
    # Bug: two runs on one --out both ran to the end, adopting each other's checkpoints.
    out = tmp_path / "o"
    with lock_dir(out):  # another open file description: flock conflicts as with another process
        assert main(["run", "--out", str(out), *TINY]) == 2
        err = one_line_error(capsys)
        assert f"in use by another run (PID {os.getpid()})" in err
        assert not (out / "config.json").exists()
    assert main(["run", "--out", str(out), *TINY]) == 0  # released: the same command runs


def test_prepare_then_execute_refuses_a_directory_changed_meanwhile(tmp_path):
    # Bug: a plan prepared as fresh would run over a run another process started meanwhile.
    spec = RunSpec(steps=400, chunk=200, agent_options={"hidden": (16, 16)}, out=str(tmp_path / "o"))
    plan = prepare(spec)
    run(spec)  # another "process" runs it to the end in between
    from oakrl.lab.run import execute

    with pytest.raises(ConfigError, match="changed by another run"):
        execute(plan)


def _claim(args) -> str:
    root, barrier = args
    barrier.wait()
    return default_out("CartPole-v1", "stream-ac", root)


@pytest.mark.filterwarnings("ignore:os.fork")  # the children only make directories, no JAX
def test_twenty_parallel_default_directories_never_collide(tmp_path):
    # Bug: runs started in the same second got the same runs/ENV_AGENT_TIME.
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(20)
        with ctx.Pool(20) as pool:
            names = pool.map(_claim, [(str(tmp_path), barrier)] * 20)
    assert len(set(names)) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(n).name for n in names)


# --------------------------------------------------------------------------- write errors


def test_no_space_is_one_line_exit_4_and_the_last_checkpoint_resumes(tmp_path, capsys, monkeypatch):
    # Bug: ENOSPC was a 40-line traceback with exit 1. The failure is injected at the fsync of
    # the second checkpoint's archive (where NFS and full disks report it).
    ref, out = tmp_path / "ref", tmp_path / "o"
    assert main(["run", "--out", str(ref), *TINY]) == 0
    real, seen = oakrl.io._fsync, []

    def full_disk(path, directory=False):
        if Path(path).name.startswith(".checkpoint-") and Path(path).suffix == ".npz":
            seen.append(path)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, directory)

    monkeypatch.setattr(oakrl.io, "_fsync", full_disk)
    assert main(["run", "--out", str(out), *TINY]) == 4
    err = one_line_error(capsys)
    assert "checkpoint-000000000400.npz" in err and "No space left on device" in err, err
    monkeypatch.undo()
    assert ckpt.read_pointer(out)["step"] == 200  # the last good checkpoint
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK]
    assert main(["run", "--out", str(out), *TINY]) == 0  # resumes from it
    assert carry_bytes(out) == carry_bytes(ref)


def test_a_read_only_directory_is_one_line_exit_4(tmp_path, capsys, monkeypatch):
    # Bug: an existing --out on a read-only mount (or without permission) was a traceback.
    out = tmp_path / "o"
    out.mkdir()
    real = os.open

    def read_only(path, flags, *a, **k):
        if Path(path).parent == out and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["run", "--out", str(out), *TINY]) == 4
    err = one_line_error(capsys)
    assert str(out) in err and "Read-only file system" in err, err


# --------------------------------------------------------------------------- checkpoint.json


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    out = tmp_path_factory.mktemp("edges") / "run"
    run(RunSpec(steps=600, chunk=200, agent_options={"hidden": (16, 16)}, out=str(out)))
    (out / "summary.json").unlink()
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_an_edited_checkpoint_json_is_refused(unfinished, tmp_path, capsys):
    # Bug: an edited step was trusted (wrong metrics with exit 0, or a traceback).
    out = _copy(unfinished, tmp_path / "a")
    pointer = out / "checkpoint.json"
    meta = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**meta, "step": 200}))
    assert main(["resume", str(out), "--no-plot"]) == 2
    assert "was edited or damaged" in one_line_error(capsys)
    # Edited with its checksum recomputed: the archive's own record of the step refuses it.
    edited = {k: v for k, v in meta.items() if k != "checksum"} | {"step": 200}
    pointer.write_text(json.dumps({**edited, "checksum": ckpt._checksum(edited)}))
    assert main(["resume", str(out), "--no-plot"]) == 2
    err = one_line_error(capsys)
    assert "does not match" in err and "step" in err, err


def test_a_rehashed_damaged_archive_is_one_line(unfinished, tmp_path, capsys):
    # Bug: a damaged zip whose sha256 was updated gave BadZipFile (a traceback).
    import hashlib

    out = _copy(unfinished, tmp_path / "b")
    pointer = out / "checkpoint.json"
    meta = json.loads(pointer.read_text())
    npz = out / meta["file"]
    data = bytearray(npz.read_bytes())
    data[-30:] = b"\0" * 30  # the zip's central directory
    npz.write_bytes(bytes(data))
    fixed = {k: v for k, v in meta.items() if k != "checksum"} | {"sha256": hashlib.sha256(data).hexdigest()}
    pointer.write_text(json.dumps({**fixed, "checksum": ckpt._checksum(fixed)}))
    assert main(["resume", str(out), "--no-plot"]) == 2
    assert "not a readable checkpoint" in one_line_error(capsys)


def test_a_checkpoint_from_before_pointer_checksums_still_resumes(unfinished, tmp_path, capsys):
    # Bug: a run written by oakrl 0.2.0 before checkpoint.json carried a checksum (and before the
    # archive repeated its step) was refused as "edited or damaged; remove it to start over",
    # which told the owner of a long run to throw it away.
    import hashlib

    out = _copy(unfinished, tmp_path / "legacy")
    pointer = out / "checkpoint.json"
    meta = json.loads(pointer.read_text())
    npz = out / meta["file"]
    with np.load(npz) as archive:
        old = {k: archive[k] for k in archive.files if k != "meta"}
    buf = io.BytesIO()
    np.savez(buf, **old)
    npz.write_bytes(buf.getvalue())
    legacy = {k: v for k, v in meta.items() if k != "checksum"}
    legacy["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    pointer.write_text(json.dumps(legacy))
    assert main(["resume", str(out), "--no-plot"]) == 0, one_line_error(capsys)
    assert (out / "summary.json").exists()


def test_a_current_pointer_stripped_of_its_checksum_is_still_checked(unfinished, tmp_path, capsys):
    # The legacy path must not open a hole: without a checksum and with an edited step (file
    # name kept), or with the step and file name both edited, the archive's meta refuses it.
    out = _copy(unfinished, tmp_path / "stripped")
    pointer = out / "checkpoint.json"
    meta = {k: v for k, v in json.loads(pointer.read_text()).items() if k != "checksum"}
    pointer.write_text(json.dumps({**meta, "step": 400}))
    assert main(["resume", str(out), "--no-plot"]) == 2
    assert "was edited or damaged" in one_line_error(capsys)
    renamed = f"checkpoint-{400:012d}.npz"
    (out / meta["file"]).rename(out / renamed)
    pointer.write_text(json.dumps({**meta, "step": 400, "file": renamed}))
    assert main(["resume", str(out), "--no-plot"]) == 2
    err = one_line_error(capsys)
    assert "does not match" in err and "step" in err, err


def test_the_archive_records_its_step(unfinished):
    # The field the pointer is checked against: written by save_checkpoint itself.
    meta = ckpt.read_pointer(unfinished)
    with np.load(unfinished / meta["file"]) as archive:
        inner = json.loads(archive["meta"].tobytes())
    assert inner["step"] == meta["step"] == 600


# --------------------------------------------------------------------------- prompt stops


def test_sigterm_stops_a_long_chunk_at_once_and_the_run_resumes_bit_identically(tmp_path):
    # Bug: SIGTERM/SIGINT waited for the running chunk (the main thread sat in XLA; a chunk can
    # take hours). With OAKRL_STOP_GRACE=0 the second chunk is abandoned at once; the run stops
    # at its first checkpoint, exit 143, and resumes to the same final state as a run never
    # stopped.
    import signal
    import subprocess
    import sys

    # Chunks of 50,000 steps take seconds here; the signal goes 0.3 s after the first checkpoint,
    # so it lands inside the second chunk (at 10,000 it could land before that chunk began, and
    # the run then stopped cleanly at the boundary: correct, but not the path under test).
    steps, chunk = 100_000, 50_000
    flags = ["--steps", str(steps), "--chunk", str(chunk), "--opt", "hidden=16,16", "--no-plot"]
    out = tmp_path / "stopped"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OAKRL_STOP_GRACE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "oakrl", "run", "--out", str(out), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while (ckpt.read_pointer(out) or {}).get("step") != chunk:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.01)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    err = proc.stderr.read().decode().strip().splitlines()[-1]
    proc.stderr.close()
    assert rc == 128 + signal.SIGTERM, err
    assert f"abandoned, the last checkpoint is at step {chunk}" in err, err
    assert took < 5, took  # whatever the chunk's length
    assert ckpt.read_pointer(out)["step"] == chunk and not (out / "summary.json").exists()
    assert main(["resume", str(out), "--no-plot"]) == 0  # the lock went with the process
    ref = tmp_path / "ref"
    run(RunSpec(steps=steps, chunk=chunk, agent_options={"hidden": (16, 16)}, out=str(ref)))
    assert carry_bytes(out) == carry_bytes(ref)


# --------------------------------------------------------------------------- logs


def test_logs_get_one_plain_line_per_chunk(tmp_path, capsys):
    # Bug: with stderr not a terminal the progress bar was cut with "..." and shown at the end.
    assert main(["run", "--out", str(tmp_path / "o"), *TINY]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " steps/s | return" in line]
    assert [line.split("step ")[1].split("/")[0] for line in lines] == ["200", "400", "600"], err
    assert "…" not in err and "..." not in err


def test_a_resume_from_the_final_step_reports_no_fake_speed(unfinished, tmp_path, capsys):
    # Bug: it reported steps_per_second 0.0 (nothing ran in that process).
    out = _copy(unfinished, tmp_path / "f")
    assert main(["resume", str(out), "--no-plot"]) == 0
    assert "no steps left to run" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["steps_per_second"] is None


def test_a_sweep_without_a_grid_is_refused(tmp_path, capsys):
    # Bug: an empty or missing [grid] silently ran one trial.
    for text in ("[base]\nsteps = 100\n", "[base]\nsteps = 100\n[grid]\n"):
        spec = tmp_path / "s.toml"
        spec.write_text(text)
        assert main(["sweep", str(spec), "--out", str(tmp_path / "sw")]) == 2
        assert "no [grid]" in one_line_error(capsys)
        assert not (tmp_path / "sw").exists()


# --------------------------------------------------------------------------- TensorBoard


def test_a_run_writes_tensorboard_scalars_that_tensorboard_reads(tmp_path):
    # Bug: no TensorBoard output at all. Read back with our reader (CRCs checked) and, where
    # tensorboard is installed, with its own loader (the format is what TensorBoard expects).
    from oakrl.lab.tensorboard import read_scalars

    out = tmp_path / "o"
    result = run(RunSpec(steps=600, chunk=200, agent_options={"hidden": (16, 16)}, out=str(out)))
    (events,) = out.glob("events.out.tfevents.*")
    scalars = read_scalars(events)
    assert [s for s, _ in scalars["average_reward"]] == [200, 400, 600]
    assert [s for s, _ in scalars["steps_per_second"]] == [400, 600]
    assert any(tag.startswith("diagnostics/") for tag in scalars)
    assert scalars["average_reward"][-1][1] == pytest.approx(result.summary["average_reward"]["mean"])
    ep = result.episodes
    last = ep["return"][ep["step"] > 400]
    assert scalars["return/mean"][-1][1] == pytest.approx(float(np.mean(last)), rel=1e-6)
    loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")
    tags = {v.tag for e in loader.EventFileLoader(str(events)).Load() for v in e.summary.value}
    assert {"average_reward", "steps_per_second", "return/mean"} <= tags


# --------------------------------------------------------------------------- oakrl runs


def test_runs_lists_runs_and_a_study_and_sql_counts_their_episodes(tmp_path, capsys):
    # Bug: comparing runs meant opening their summary.json files one by one.
    from oakrl.study.common import start_study

    root = tmp_path / "runs"
    results = [
        run(RunSpec(steps=400, chunk=200, seed=s, agent_options=TINY_OPTS, out=str(root / f"r{s}")))
        for s in range(3)
    ]
    study, _ = start_study(root / "study", {"study": "demo"})
    oakrl.io.write_json(study / "summary.json", {"study": "demo"})
    assert main(["runs", str(root), "--sort", "-final_return"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 4 and lines[0].split()[:3] == ["kind", "status", "env"]
    assert sum(line.startswith("run ") for line in lines) == 3 and sum("study" in x for x in lines) == 1
    finals = [r.summary["final_return"]["mean"] for r in results]
    finals = [f for f in finals if f is not None]
    if finals:
        assert f"{max(finals):.4g}" in lines[1]  # sorted, best first (runs without one last)
    assert main(["runs", str(root), "--where", "kind=study"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    pytest.importorskip("duckdb")
    sql = "SELECT count(*) AS n, count(DISTINCT run) AS k FROM episodes"
    assert main(["runs", str(root), "--sql", sql]) == 0
    n, k = capsys.readouterr().out.strip().splitlines()[1].split()
    assert (int(n), int(k)) == (sum(len(r.episodes["return"]) for r in results), 3)
    assert main(["runs", str(root), "--sql", "SELECT nonsense FROM nowhere"]) == 2
    assert "--sql" in one_line_error(capsys)
