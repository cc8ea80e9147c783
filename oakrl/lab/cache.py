"""JAX's persistent compilation cache, on by default for oakrl's command line and its tests.

A run compiles its stream (3-13 s on 2 cores); a second run of the same configuration loads the
compiled code from disk instead. JAX keys each entry on the whole computation (its HLO), the
compile options, the XLA flags and the jax/jaxlib and backend versions, so a changed agent,
world or option compiles afresh and results are bit-identical with or without the cache.

Where: `$OAKRL_COMPILE_CACHE` if set (a directory, or `off` to disable), else
`$XDG_CACHE_HOME/oakrl/jax` (default `~/.cache/oakrl/jax`), one subdirectory per processor
model and instruction set, so that a home directory shared between machines never loads code
compiled for another CPU. A `JAX_COMPILATION_CACHE_DIR` the user set is left alone.

Concurrent runs: the cache is size-bounded (LRU, `MAX_BYTES`), which makes JAX take a file lock
around every read and write, so two runs compiling the same configuration at once do not read a
half-written entry. An unreadable entry (a run killed while writing it) makes JAX warn and
compile afresh. `oakrl cache` shows the directory and its size; `oakrl cache --clear` empties it.

Programs: JAX's cache keys on the traced program, so even a warm run first traces and lowers its
stream (about 0.9 s of CPU for the README's main job). For the lab's own runs of oakrl's own
agents, the compiled chunk itself is also kept, under `programs/`, keyed on what determines it
without tracing: the run's identity (config.json without its length), the chunk's length and
seed count, every oakrl source file, the versions of JAX and of every library traced into it,
the backend, this CPU and the XLA flags. A later identical run loads it and skips tracing; a
loaded program is used only if its inputs match the stream's exactly, and one that cannot be
read is deleted and compiled afresh. Only a chunk compiled afresh is kept (one JAX loaded
from its own cache cannot be serialised whole, see `loads_from_disk`): after an oakrl upgrade
whose chunks JAX still has, runs trace as before until those entries are compiled again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import platform
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from oakrl.io import write_bytes

ENV = "OAKRL_COMPILE_CACHE"
MAX_BYTES = 2 * 1024**3  # LRU bound; a stream AC chunk is about 0.3 MB, OaK's a few MB
# Entries cost a file read per compile: caching the many tiny eager computations (key splits,
# conversions, each compiled in milliseconds) would cost about as much as it saves.
MIN_COMPILE_SECONDS = 0.05

_enabled: Path | None = None

PROGRAMS = "programs"  # subdirectory of compiled chunks (see the module's doc)
PROGRAM_MAX_BYTES = 512 * 1024**2  # oldest (by last use) removed past this
PROGRAM_FORMAT = 1  # bumped when what a program entry holds changes
# Agents whose compiled stream is fixed by their resolved config alone: no arrays read from files
# (prior-ac's prior, sft-tool's corpus) and no other agents inside (joint).
PROGRAM_AGENTS = frozenset(
    {"stream-ac", "stream-q", "stream-sarsa", "stream-td", "tabular-q", "dyna", "planner", "oak", "goal-q"}
)
# Libraries whose code is traced into a stream (a new version may compile to something else).
TRACED_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "mctx", "gymnax", "chex", "numpy")


def machine_tag() -> str:
    """A short name for this processor model and its instruction set (cached code is per CPU)."""
    ident = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        ident += "".join(sorted(set(lines)))
    except OSError:
        ident += platform.processor()
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def cache_dir() -> Path | None:
    """The directory this process would cache compiled code in (None: disabled)."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "false", "no", "none"):
        return None
    if value:
        root = Path(value).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "oakrl" / "jax"
    return root / machine_tag()


def enable() -> Path | None:
    """Turns the persistent compilation cache on for this process and the processes it starts
    (idempotent). Returns the directory in effect, or None when disabled or when the directory
    cannot be created or written (then runs compile as before; a cache is never a reason for a
    run to fail). A `JAX_COMPILATION_CACHE_DIR` already set (by the user, or by the oakrl
    process that started this one) is kept as it is.
    """
    global _enabled
    if _enabled is not None:
        return _enabled
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        _enabled = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
        return _enabled
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    settings = {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        "jax_compilation_cache_max_size": MAX_BYTES,
    }
    # JAX reads these from the environment when it is imported: setting them there keeps
    # commands that never compute (`oakrl envs`) from importing JAX, and passes them on to
    # worker processes.
    os.environ.update({k.upper(): str(v) for k, v in settings.items()})
    if "jax" in sys.modules:
        import jax
        from jax.experimental.compilation_cache import compilation_cache

        for name, value in settings.items():
            jax.config.update(name, value)
        # JAX decides once, at its first compilation, whether to cache; importing oakrl's
        # worlds already compiles a few constants, so start its decision afresh.
        compilation_cache.reset_cache()
    _enabled = path
    return path


def active() -> Path | None:
    """The cache directory this process uses (None: `enable` was not called, or it is off)."""
    return _enabled


def usage(path: Path, programs: bool = False) -> tuple[int, int]:
    """(entries, bytes) in a cache directory: JAX's entries, or with `programs`, oakrl's programs."""
    found = path.glob(f"{PROGRAMS}/*.pkl" if programs else "*-cache") if path.is_dir() else []
    files = [p for p in found if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def clear() -> tuple[Path | None, int]:
    """Removes every cached entry under the cache root (each CPU's directory). Only JAX's
    entry files and oakrl's programs go, never anything else a user keeps there. Returns (this
    CPU's directory, entries removed)."""
    path = cache_dir()
    if path is None:
        return None, 0
    removed = 0
    for sub in [d for d in path.parent.iterdir() if d.is_dir()] if path.parent.is_dir() else []:
        for f in [*sub.glob("*-cache"), *sub.glob("*-atime"), *sub.glob(f"{PROGRAMS}/*.pkl")]:
            removed += f.name.endswith(("-cache", ".pkl"))
            f.unlink(missing_ok=True)
    return path, removed


@functools.cache
def source_digest() -> str:
    """sha256 over every oakrl source file (name and bytes): a program depends on all of them."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in TRACED_LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def program_key(parts: dict[str, Any]) -> str:
    """The key of a compiled program: `parts` (what the caller knows determines it) and
    everything of this process that could change the compiled code."""
    import jax

    everything = {
        "format": PROGRAM_FORMAT,
        "parts": parts,
        "source": source_digest(),
        "versions": _versions(),
        "python": sys.version_info[:2],
        "backend": jax.default_backend(),
        "devices": [str(d.device_kind) for d in jax.local_devices()],
        "machine": machine_tag(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "x64": bool(jax.config.jax_enable_x64),
        "prng": str(jax.config.jax_default_prng_impl),
    }
    text = json.dumps(everything, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _program_dir() -> Path | None:
    if _enabled is None or cache_dir() is None:  # off, or a JAX_COMPILATION_CACHE_DIR of the user's
        return None
    return _enabled / PROGRAMS


def load_program(key: str) -> tuple[Any, dict[str, Any]] | None:
    """(compiled program, its metadata) stored under `key`, or None. A damaged entry (a run killed
    while writing it cannot leave one: entries are written atomically; a library changed under
    the same version can) is deleted: the caller compiles afresh."""
    folder = _program_dir()
    path = folder / f"{key}.pkl" if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        from jax.experimental import serialize_executable

        entry = pickle.loads(path.read_bytes())
        compiled = serialize_executable.deserialize_and_load(*entry["program"])
        os.utime(path)  # last use, for the size bound
        return compiled, entry["meta"]
    except Exception:  # noqa: BLE001 (any failure to load means: compile)
        path.unlink(missing_ok=True)
        return None


@contextlib.contextmanager
def loads_from_disk() -> Iterator[list[str]]:
    """Within the block, the returned list gets one entry per compilation JAX loaded from its
    persistent cache. Such an executable cannot be kept as a program: XLA:CPU serialises a
    loaded executable without its kernels (measured: 717 kB instead of 930 kB for the README's
    job, and the copy fails with "Function wrapped_broadcast.1 not found" when run)."""
    import jax

    hits: list[str] = []

    def listener(event: str, **_: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    jax.monitoring.register_event_listener(listener)
    try:
        yield hits
    finally:
        jax.monitoring.unregister_event_listener(listener)


def store_program(key: str, compiled: Any, meta: dict[str, Any]) -> None:
    """Keeps `compiled` under `key` (atomically; silently nothing if it cannot be serialised or
    written: a cache is never a reason for a run to fail), then bounds the directory's size."""
    folder = _program_dir()
    if folder is None:
        return
    try:
        from jax.experimental import serialize_executable

        data = pickle.dumps({"program": serialize_executable.serialize(compiled), "meta": meta})
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / f"{key}.pkl", data)
        entries = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for entry in entries:
            total += entry.stat().st_size
            if total > PROGRAM_MAX_BYTES:
                entry.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001
        return
