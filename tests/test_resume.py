"""Checkpoints and resume: a run killed with SIGKILL and resumed ends bit-identical to an
uninterrupted one; divergence stops cleanly; incompatible or corrupt checkpoints are refused.

Runs are tiny (hidden 16,16): each costs about one compilation. The killed runs are
subprocesses (`python -m oakrl.cli run ...`) sharing a persistent compilation cache.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow.parquet as pq
import pytest

from oakrl.cli import main
from oakrl.errors import ConfigError
from oakrl.lab import run as run_module
from oakrl.lab.checkpoint import _checksum, load_checkpoint, read_pointer
from oakrl.lab.outdir import LOCK, compat_hash
from oakrl.lab.run import ChunkDone, Started, run
from oakrl.lab.spec import RunSpec

TINY = {"hidden": (16, 16)}
METRICS = ("final_return", "average_reward", "episodes", "diagnostics", "tasks", "continuing")


def checkpoint_arrays(directory: Path) -> dict[str, np.ndarray]:
    """Every array of the current checkpoint: the carry's leaves and the recorded metrics."""
    meta = read_pointer(directory)
    with np.load(directory / meta["file"]) as outer:
        # "meta" repeats checkpoint.json's step and hashes (the run's identity, not its state).
        arrays = {k: outer[k] for k in outer.files if k != "meta"}
    with np.load(io.BytesIO(arrays.pop("carry").tobytes())) as inner:
        arrays.update({f"carry/{k}": inner[k] for k in inner.files})
    return arrays


def assert_same_run(a: Path, b: Path) -> None:
    """Final state, episode rows, diagnostics and summary metrics equal exactly (not timings)."""
    assert read_pointer(a)["step"] == read_pointer(b)["step"]
    xa, xb = checkpoint_arrays(a), checkpoint_arrays(b)
    assert sorted(xa) == sorted(xb)
    for k in xa:
        assert xa[k].dtype == xb[k].dtype, k
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k, strict=True)
    for name in ("episodes.parquet", "diagnostics.parquet"):
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        assert ta.schema.equals(tb.schema), name
        for col in ta.column_names:  # NaN diagnostics compare equal here (not in Table.equals)
            np.testing.assert_array_equal(ta[col].to_numpy(), tb[col].to_numpy(), err_msg=f"{name}:{col}")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for k in METRICS:
        assert sa.get(k) == sb.get(k), k


def cli_args(config: RunSpec) -> list[str]:
    args = [
        "run",
        "--env",
        config.env,
        "--agent",
        config.agent,
        "--steps",
        str(config.steps),
        "--seeds",
        str(config.seeds),
        "--seed",
        str(config.seed),
        "--chunk",
        str(config.chunk),
        "--no-plot",
    ]
    if config.schedule:
        args += ["--schedule", config.schedule, "--every", str(config.every)]
    for k, v in config.options_given().items():
        args += ["--opt", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"]
    return args


def subprocess_env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def kill_after_checkpoint(
    argv: list[str], out: Path, target: int, env: dict, jitter: float = 0.0, timeout: float = 120
) -> int:
    """Starts the run, SIGKILLs it once a checkpoint at or past `target` exists; its step."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                meta = read_pointer(out)
            except ConfigError:  # never: the pointer is replaced atomically
                raise
            if meta is not None and meta["step"] >= target:
                time.sleep(jitter)
                break
            if proc.poll() is not None:
                raise AssertionError(f"run ended before it was killed: {proc.stderr.read().decode()}")
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return read_pointer(out)["step"]


CASES = [
    # (agent, schedule, kills)
    ("stream-ac", None, 2),
    ("stream-q", "switch", 1),
    ("stream-td", None, 1),
    # goal-q's all-goals table and the goal schedule (segments cross the kills).
    ("goal-q", None, 1),
    # The planner with goal-q's table and the goal schedule in its state (GoalPlannerState).
    ("planner", None, 1),
]
# Options beyond TINY that an agent needs to run at all.
EXTRA = {
    "goal-q": {"goal_every": 1000, "goal_pool": (0, 2), "goal_value": 0.0},
    "planner": {
        "goal_every": 1000,
        "goal_pool": (0, 2),
        "goal_value": 0.0,
        "goal_q": True,
        "num_simulations": 4,
        "model_hidden": (16,),
    },
}
# Agents without hidden layers (goal-q is a table) take no TINY.
NO_HIDDEN = ("goal-q",)


class persistent_cache:
    """JAX's persistent compilation cache in `directory`, for this process while in the block.

    The reference run here fills it, so that the killed subprocesses and the resumed run skip
    most compilation (the same programs, so the same compiled code). Without the private
    reset hook the test still works, only slower.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.saved = (
            jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs,
        )

    def _set(self, directory, min_secs) -> None:
        try:
            from jax._src import compilation_cache
        except ImportError:
            return
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_secs)
        compilation_cache.reset_cache()

    def __enter__(self):
        self._set(str(self.directory), 0.0)

    def __exit__(self, *exc):
        self._set(*self.saved)


def kill_resume_compare(
    agent: str, schedule: str | None, kills: int, tmp: Path, options: dict | None = None
) -> None:
    """Kills the CLI run `kills` times at random checkpoints (SIGKILL), resumes it, compares."""
    steps, chunk = 12_000, 500
    config = RunSpec(
        env="CartPole-v1",
        agent=agent,
        steps=steps,
        seeds=2,
        chunk=chunk,
        schedule=schedule,
        every=3000,
        agent_options={
            **({} if agent in NO_HIDDEN else TINY),
            **(EXTRA.get(agent, {}) if options is None else options),
        },
    )
    cache = tmp / "cache"
    with persistent_cache(cache):
        reference = tmp / "reference"
        run(config.replace(out=str(reference)))
        out = tmp / "killed"
        argv = [sys.executable, "-m", "oakrl.cli", *cli_args(config), "--out", str(out)]
        env = subprocess_env(cache)
        rng = random.Random()
        seen: list[int] = []
        for _ in range(kills):
            low = (seen[-1] // chunk + 1) if seen else 1
            target = rng.randrange(low, low + 8) * chunk
            # Killed at a random moment after that checkpoint: mid-chunk or mid-write.
            step = kill_after_checkpoint(argv, out, target, env, jitter=rng.uniform(0, 0.05))
            assert step < steps and not (out / "summary.json").exists()
            # A killed run is still readable: metrics up to its last checkpoint.
            assert pq.read_table(out / "episodes.parquet").num_rows > 0
            seen.append(step)
        # The same command again resumes (here in-process, through the same CLI entry point).
        assert main(cli_args(config)[0:] + ["--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == seen[-1]
    assert_same_run(reference, out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK]
    assert len(list(out.glob("checkpoint-*.npz"))) == 1


@pytest.mark.parametrize("agent, schedule, kills", CASES, ids=[c[0] for c in CASES])
def test_sigkill_and_resume_is_bit_identical(agent, schedule, kills, tmp_path, capsys):
    """Stream AC (killed twice), stream Q (with a task schedule) and stream TD."""
    kill_resume_compare(agent, schedule, kills, tmp_path)
    assert "resuming" in capsys.readouterr().err


def test_sigkill_and_resume_with_episodic_memory_is_bit_identical(tmp_path, capsys):
    """Stream Q with its episodic store (keys, returns filled in online, LRU clock) in the state."""
    kill_resume_compare("stream-q", None, 1, tmp_path, {"memory": {"size": 64, "k": 4}})
    assert "resuming" in capsys.readouterr().err


# --------------------------------------------------------------------------- one finished run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    config = RunSpec(steps=1000, seeds=1, chunk=500, agent_options=dict(TINY))
    out = tmp_path_factory.mktemp("finished") / "run"
    run(config.replace(out=str(out)))
    return config, out


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_rerun_of_a_finished_run_changes_nothing(finished, capsys):
    config, out = finished
    before = snapshot(out)
    summary = run(config.replace(out=str(out))).summary
    assert summary == json.loads((out / "summary.json").read_text())
    assert main([*cli_args(config), "--out", str(out)]) == 0
    assert "already holds this finished run" in capsys.readouterr().err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "change, field",
    [
        ({"steps": 2000}, "steps"),
        ({"agent_options": {"hidden": (8, 8)}}, "agent_options.hidden"),
        ({"seed": 3}, "seed"),
    ],
)
def test_rerun_with_another_config_is_refused(finished, change, field, capsys):
    config, out = finished
    before = snapshot(out)
    other = config.replace(**change)
    with pytest.raises(ConfigError, match=f"different config: {field} is"):
        run(other.replace(out=str(out)))
    assert main([*cli_args(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and field in err
    assert snapshot(out) == before


def unfinished_copy(out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "summary.json").unlink()
    return copy


def test_resume_from_final_checkpoint(finished, tmp_path, capsys):
    config, out = finished
    copy = unfinished_copy(out, tmp_path)
    assert main(["resume", str(copy), "--no-plot"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert_same_run(out, copy)


def test_corrupt_checkpoint_is_refused(finished, tmp_path, capsys):
    config, out = finished
    copy = unfinished_copy(out, tmp_path)
    npz = copy / read_pointer(copy)["file"]
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    before = snapshot(copy)
    assert main(["resume", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "corrupt (sha256 mismatch)" in err and len(err.strip().splitlines()) == 1
    assert snapshot(copy) == before


def test_checkpoint_of_another_version_or_config_is_refused(finished, tmp_path):
    config, out = finished
    copy = unfinished_copy(out, tmp_path)
    pointer = copy / "checkpoint.json"
    meta = json.loads(pointer.read_text())
    template = None

    def write(**changes):  # a pointer another oakrl wrote, so with a valid checksum
        fields = {k: v for k, v in meta.items() if k != "checksum"} | changes
        pointer.write_text(json.dumps({**fields, "checksum": _checksum(fields)}))

    with pytest.raises(ConfigError, match="written by oakrl 0.0.1"):
        write(oakrl_version="0.0.1")
        load_checkpoint(copy, template, meta["config_hash"])
    with pytest.raises(ConfigError, match="different config"):
        write()
        load_checkpoint(copy, template, compat_hash({"other": 1}))
    # config.json of another version: refused before anything runs.
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "oakrl_version": "0.0.1"}))
    with pytest.raises(ConfigError, match="oakrl 0.0.1"):
        run(config.replace(out=str(copy)))


# --------------------------------------------------------------------------- divergence


def nan_after(agent, steps: int):
    """Wraps an agent so that its state turns NaN once it has taken `steps` steps."""

    def init(key, obs_spec, action_spec):
        return agent.init(key, obs_spec, action_spec), jnp.zeros((), jnp.int32)

    def step(state, timestep, key):
        inner, n = state
        inner, action, info = agent.step(inner, timestep, key)
        poison = jnp.where(n + 1 >= steps, jnp.nan, 1.0)
        inner = jax.tree_util.tree_map(
            lambda x: x * poison.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, inner
        )
        return (inner, n + 1), action, info

    return agent._replace(init=init, step=step)


def test_divergence_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real = run_module.make_agent
    monkeypatch.setattr(run_module, "make_agent", lambda *a, **k: nan_after(real(*a, **k), 1200))
    out = tmp_path / "nan"
    code = main(
        [
            "run",
            "--steps",
            "2000",
            "--chunk",
            "500",
            "--seeds",
            "2",
            "--opt",
            "hidden=16,16",
            "--no-plot",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("oakrl:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert "diverged: seed 0, step 1500: agent state" in line and "not finite" in line
    assert "last good checkpoint: step 1000" in line
    assert read_pointer(out)["step"] == 1000
    assert not (out / "summary.json").exists()
    # The kept checkpoint is complete and finite.
    arrays = checkpoint_arrays(out)
    for k, v in arrays.items():
        if k.startswith("carry/") and np.issubdtype(v.dtype, np.floating):
            assert np.isfinite(v).all(), k
    assert pq.read_table(out / "episodes.parquet").num_rows > 0


def test_checkpoint_every(tmp_path):
    config = RunSpec(steps=1000, chunk=250, checkpoint_every=0, agent_options=dict(TINY))
    written = []

    def progress(event):
        if not isinstance(event, Started | ChunkDone):
            return
        meta = read_pointer(tmp_path / "r")
        written.append(None if meta is None else meta["step"])

    run(config.replace(out=str(tmp_path / "r")), progress)
    assert written == [None, None, None, None, None]  # no checkpoint until the end
    assert read_pointer(tmp_path / "r")["step"] == 1000


def assert_chunk_resume_is_bit_identical(spec, tmp_path) -> None:
    """`spec` (2 chunks) run straight through, against its first chunk, a checkpoint written and
    read back (the lab's npz), then the second chunk: every leaf of the final carry bit-equal.
    Catches new agent state lost or altered by a resume (the tests of new learners use it)."""
    import jax
    import jax.numpy as jnp

    from oakrl.lab.checkpoint import load_checkpoint, save_checkpoint
    from oakrl.lab.run import build, seed_keys
    from oakrl.lab.stream import run_jax

    handle, agent = build(spec)
    keys = seed_keys(spec.seed, spec.seeds, spec.prng)
    mid = {}

    def keep(done, carry):
        if done == spec.chunk:
            save_checkpoint(tmp_path, done, carry, {}, "h")  # as the lab does, before the next chunk
            mid["ok"] = True

    def host(tree):  # key arrays as their bits, everything as numpy
        def one(x):
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                x = jax.random.key_data(x)
            return np.asarray(x)

        return [one(x) for x in jax.tree.leaves(tree)]

    full, _, _ = run_jax(agent, handle, spec.steps, keys, spec.chunk, on_boundary=keep)
    assert mid
    full = host(full)

    def restore(fresh):
        step, carry, _ = load_checkpoint(tmp_path, fresh, "h")
        return step, carry

    resumed, _, _ = run_jax(agent, handle, spec.steps, keys, spec.chunk, restore=restore)
    for a, b in zip(full, host(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
