"""The persistent compilation cache (oakrl/lab/cache.py) and `oakrl cache`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from oakrl.cli import main
from oakrl.lab import cache

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
    # Catches: OAKRL_COMPILE_CACHE=off ignored; `--clear` leaving entries or removing files
    # that are not JAX's entries.
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
    assert main(["cache"]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert main(["cache", "--clear"]) == 0
    assert "removed 2" in capsys.readouterr().out
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
