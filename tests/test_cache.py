"""The persistent compilation cache (oakrl/lab/cache.py) and `oakrl cache`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from oakrl.cli import main
from oakrl.lab import cache, stream
from oakrl.lab.run import execute, prepare, run
from oakrl.lab.spec import RunSpec

RUN = ("run", "--env", "CartPole-v1", "--agent", "stream-ac", "--steps", "600", "--chunk", "300")
RUN += ("--seeds", "2", "--no-plot")


def clean_env() -> dict[str, str]:
    """This process's environment without the JAX cache settings the suite's conftest made."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "JAX_PERSISTENT"))}


def cli(tmp_path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oakrl", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean_env(), "JAX_PLATFORMS": "cpu", **env},
        cwd=tmp_path,
    )


def test_second_run_loads_every_compilation_and_matches(tmp_path):
    # Catches: the cache not switched on in the CLI (no entries), switched on too late (JAX
    # decided at an import-time compile: no entries), keys that miss on an identical run (the
    # second run adds entries), and a loaded executable that computes something else.
    store = tmp_path / "cache"
    env = {"OAKRL_COMPILE_CACHE": str(store)}
    first = cli(tmp_path, env, *RUN, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    (tag,) = [d for d in store.iterdir()]
    assert tag.name == cache.machine_tag()
    entries = sorted(p.name for p in tag.glob("*-cache"))
    assert any(name.startswith("jit_chunk") for name in entries), entries
    second = cli(tmp_path, env, *RUN, "--out", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    # The stream's chunk was loaded, not compiled again (tiny eager computations compile near
    # the MIN_COMPILE_SECONDS threshold, so whether they are stored depends on load: not checked).
    again = sorted(p.name for p in tag.glob("*-cache"))
    chunks = [n for n in entries if n.startswith("jit_chunk")]
    assert [n for n in again if n.startswith("jit_chunk")] == chunks
    a = pq.read_table(tmp_path / "a" / "episodes.parquet").to_pandas()
    b = pq.read_table(tmp_path / "b" / "episodes.parquet").to_pandas()
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_off_and_clear(tmp_path, monkeypatch, capsys):
    # Catches: OAKRL_COMPILE_CACHE=off ignored; `--clear` leaving entries (JAX's or programs)
    # or removing files that are not cache entries.
    monkeypatch.setenv("OAKRL_COMPILE_CACHE", "off")
    assert cache.cache_dir() is None
    assert main(["cache"]) == 0
    assert "off" in capsys.readouterr().out
    monkeypatch.setenv("OAKRL_COMPILE_CACHE", str(tmp_path / "c"))
    mine = cache.cache_dir()
    other = mine.parent / "other-cpu"
    for d in (mine, other):
        d.mkdir(parents=True)
        (d / "jit_x-abc-cache").write_bytes(b"1234")
        (d / "jit_x-abc-atime").write_bytes(b"0")
    (other / "notes.txt").write_text("keep")
    (mine / cache.PROGRAMS).mkdir()
    (mine / cache.PROGRAMS / "abc.pkl").write_bytes(b"5678")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "1 entries" in out and "programs (chunks kept whole): 1," in out
    assert main(["cache", "--clear"]) == 0
    assert "removed 3" in capsys.readouterr().out  # two JAX entries and the program
    assert cache.usage(mine) == (0, 0) and cache.usage(other) == (0, 0)
    assert (other / "notes.txt").read_text() == "keep"


def test_unwritable_directory_is_no_error(tmp_path, monkeypatch):
    # Catches: a read-only or impossible cache location failing the run instead of compiling.
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("OAKRL_COMPILE_CACHE", str(blocker / "sub"))
    monkeypatch.setattr(cache, "_enabled", None)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert cache.enable() is None


# --------------------------------------------------------------------------- programs
# A run's compiled chunks kept whole (cache.store_program / load_program), so that a second run
# of one configuration skips tracing. In-process, against a cache directory of the test's own.


@pytest.fixture
def programs(tmp_path, monkeypatch) -> Iterator[Path]:
    """A compile cache of the test's own (JAX's entries and programs), the suite's restored after."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    suite = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("OAKRL_COMPILE_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setattr(cache, "_enabled", None)
    assert cache.enable() is not None
    yield cache.active() / cache.PROGRAMS
    jax.config.update("jax_compilation_cache_dir", suite)
    compilation_cache.reset_cache()


def tiny(**changes) -> RunSpec:
    base = {"steps": 600, "chunk": 300, "seeds": 2, "agent_options": {"hidden": (16, 16)}}
    return RunSpec(**{**base, **changes})


def test_a_second_run_loads_its_program_without_tracing_and_matches(programs, monkeypatch):
    # Catches: a program not stored, a key that differs between identical runs (the second one
    # traces: make_chunk below would raise), the stream's start traced again instead of read
    # back, a loaded program or start computing something else, and the diagnostics' names lost
    # on the way (they come from the entry, not from a trace).
    first = run(tiny())
    assert len(list(programs.glob("*.pkl"))) == 1

    def no_trace(*a, **k):
        raise AssertionError("traced a chunk that the cache holds")

    plan = prepare(tiny())  # (its memory estimate traces init abstractly: not the stream)
    monkeypatch.setattr(stream, "make_chunk", no_trace)
    monkeypatch.setattr(stream, "init_carry", no_trace)  # the start is kept too
    second = execute(plan)
    np.testing.assert_array_equal(first.episodes["return"], second.episodes["return"])
    assert first.diagnostics.keys() == second.diagnostics.keys()
    for k in first.diagnostics:
        np.testing.assert_array_equal(first.diagnostics[k], second.diagnostics[k])
    # A chunk JAX loads from its own cache is not kept (its copy would lack its kernels: the
    # run after would fail with "Function ... not found").
    monkeypatch.undo()
    for entry in programs.glob("*.pkl"):
        entry.unlink()
    third = run(tiny())
    assert not list(programs.glob("*.pkl"))
    np.testing.assert_array_equal(first.episodes["return"], third.episodes["return"])


def test_programs_for_other_inputs_damaged_entries_and_foreign_steps_are_not_used(programs, monkeypatch):
    # Catches: a loaded program called on a stream it was not compiled for (here forced by one
    # key for every run: other widths, so other shapes), a damaged entry failing the run
    # instead of being replaced, and a step wrapped outside oakrl (a test's, a notebook's)
    # running oakrl's stored program instead of the wrapper.
    monkeypatch.setattr(cache, "program_key", lambda parts: "one-key-for-all")
    run(tiny())
    wide = tiny(agent_options={"hidden": (24, 24)})
    plain = run(wide.replace(chunk=200))  # no program of this length yet: compiled, stored
    entry = programs / "one-key-for-all.pkl"
    entry.write_bytes(b"not a program")
    again = run(wide.replace(chunk=200))
    np.testing.assert_array_equal(plain.episodes["return"], again.episodes["return"])
    assert not entry.exists()  # removed (and not replaced: JAX had this chunk in its cache)
    mixed = run(wide)  # the stored program runs chunks of 200 steps, these are 300: not taken
    here = cache.active()
    monkeypatch.setattr(cache, "_enabled", None)  # programs off
    np.testing.assert_array_equal(mixed.episodes["return"], run(wide).episodes["return"])
    monkeypatch.setattr(cache, "_enabled", here)

    from oakrl.lab import run as run_module

    real = run_module.make_agent
    calls = []

    def wrapped(*a, **k):
        agent = real(*a, **k)

        def step(state, ts, key):
            calls.append(1)  # traced only if the chunk is traced
            return agent.step(state, ts, key)

        return agent._replace(step=step)

    monkeypatch.setattr(run_module, "make_agent", wrapped)
    run(wide.replace(chunk=200))
    assert calls, "a wrapped step ran a stored program"
