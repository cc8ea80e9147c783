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
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

ENV = "OAKRL_COMPILE_CACHE"
MAX_BYTES = 2 * 1024**3  # LRU bound; a stream AC chunk is about 0.3 MB, OaK's a few MB
# Entries cost a file read per compile: caching the many tiny eager computations (key splits,
# conversions, each compiled in milliseconds) would cost about as much as it saves.
MIN_COMPILE_SECONDS = 0.05

_enabled: Path | None = None


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


def usage(path: Path) -> tuple[int, int]:
    """(entries, bytes) in a cache directory."""
    files = [p for p in path.glob("*-cache") if p.is_file()] if path.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def clear() -> tuple[Path | None, int]:
    """Removes every cached entry under the cache root (each CPU's directory). Only JAX's
    entry files go, never anything else a user keeps there. Returns (this CPU's directory,
    entries removed)."""
    path = cache_dir()
    if path is None:
        return None, 0
    removed = 0
    for sub in [d for d in path.parent.iterdir() if d.is_dir()] if path.parent.is_dir() else []:
        for f in [*sub.glob("*-cache"), *sub.glob("*-atime")]:
            removed += f.name.endswith("-cache")
            f.unlink(missing_ok=True)
    return path, removed
