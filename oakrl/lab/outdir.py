"""A results directory: what identifies its run, whether it holds this run, and its clean-up.

A directory holds one run. Its config.json (`identity`) is written first; a later run pointed at
the same directory continues it only when the identities agree (`prepare_out` refuses another
config, naming the first field that differs), and summary.json, written last, marks it finished.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from oakrl import __version__
from oakrl.errors import ConfigError
from oakrl.io import StorageError, json_default
from oakrl.lab.checkpoint import config_hash
from oakrl.lab.spec import RunSpec


def identity(spec: RunSpec, continuing: bool, agent_config: dict[str, Any]) -> dict[str, Any]:
    """What config.json holds: the spec, the oakrl version and the agent's full (resolved) config."""
    d = {
        **spec.to_json(),
        "oakrl_version": __version__,
        "continuing": continuing,
        "agent_config": agent_config,
    }
    return json.loads(json.dumps(d, default=json_default))


# Fields of config.json that may differ between the runs of one results directory.
FREE_FIELDS = ("checkpoint_every",)


def compat_hash(ident: dict[str, Any]) -> str:
    return config_hash({k: v for k, v in ident.items() if k not in FREE_FIELDS})


def compare_config(stored: Any, ident: dict[str, Any], out: Any) -> None:
    """Refuses (one line naming the first differing field) a directory of another run."""
    if not isinstance(stored, dict):
        raise ConfigError(f"--out {out} already holds a run whose config.json is not a JSON object")
    version = stored.get("oakrl_version")
    if version is not None and version != __version__:
        raise ConfigError(
            f"--out {out} already holds a run of oakrl {version}, this is {__version__}; use another --out"
        )
    for key in [*ident, *(k for k in stored if k not in ident)]:
        if key in FREE_FIELDS:
            continue
        if key not in stored:
            raise ConfigError(
                f"--out {out} already holds a run with a different config: {key} is missing there"
            )
        if key not in ident:
            raise ConfigError(f"--out {out} already holds a run with a different config: unknown field {key}")
        a, b = stored[key], ident[key]
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                sub = next(k for k in [*b, *a] if a.get(k, _MISSING) != b.get(k, _MISSING))
                key, a, b = f"{key}.{sub}", a.get(sub, "unset"), b.get(sub, "unset")
            raise ConfigError(
                f"--out {out} already holds a run with a different config: {key} is {json.dumps(a)} there, "
                f"{json.dumps(b)} here; use another --out or the same settings"
            )


_MISSING = object()


def prepare_out(out: str | os.PathLike, ident: dict[str, Any] | None = None) -> tuple[Path, str] | Path:
    """Creates the results directory.

    Without `ident`: refuses one that already holds a run, returns the path.
    With `ident` (see `identity`): returns (path, state), state one of "fresh", "resume" (the
    directory holds an unfinished run of this config) or "complete" (a finished one); refuses
    a directory of another config or oakrl version. Nothing is written to a refused directory.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    holds = path.is_dir() and any((path / name).exists() for name in ("config.json", "summary.json"))
    if holds and ident is None:
        raise ConfigError(f"--out {out} already holds a run; choose another directory")
    state = "fresh"
    if holds:
        try:
            stored = json.loads((path / "config.json").read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"--out {out} already holds a run but no config.json; choose another directory"
            ) from None
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"--out {out} already holds a run with an unreadable config.json ({e})"
            ) from None
        compare_config(stored, ident, out)
        state = "complete" if (path / "summary.json").exists() else "resume"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {out}: {e.strerror}") from None
    return path if ident is None else (path, state)


def clean_temporaries(path: Path) -> None:
    """Removes half-written files a killed run left behind (hidden names from `tmp_path`)."""
    for p in path.iterdir():
        stem = p.name[1:].split(".", 1)[0]
        if (
            p.name.startswith(".")
            and p.is_file()
            and (stem in RESULT_STEMS or stem.startswith("checkpoint-"))
        ):
            p.unlink(missing_ok=True)


RESULT_STEMS = ("config", "summary", "episodes", "diagnostics", "curve", "checkpoint", "records")


LOCK = ".oakrl.lock"


class DirLock:
    """An exclusive OS lock (flock) on a results directory, held while a run writes there.

    The kernel drops it when the process ends, however it ends (exit, crash, SIGKILL), so a
    stale lock never blocks a resume. The file holds the holder's PID, for the refusal message.
    """

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            # Removed while still held, so a directory is left as the run made it; a process that
            # opened the old file meanwhile sees it unlinked and tries again (`lock_dir`).
            try:
                (self.path / LOCK).unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_dir(out: str | os.PathLike) -> DirLock:
    """Creates the directory and locks it; refuses (ConfigError) one locked by a running process."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another path")
    for _ in range(100):
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise ConfigError(
                f"--out {out} is in use by another run (PID {holder}); wait for it or use another --out"
            ) from None
        try:
            current = os.stat(path / LOCK).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return DirLock(fd, path)
        os.close(fd)  # the holder released (and removed) it between our open and flock: again
    raise ConfigError(f"--out {out}: could not take its lock; try again")


def default_out(env: str, agent: str, root: str | os.PathLike = "runs") -> str:
    """A new results directory runs/ENV_AGENT_TIME, created here so that no other run gets it.

    Two runs started in the same second get TIME and TIME-2 (an exclusive mkdir decides, also
    between machines on one shared file system).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{env.replace(':', '_').replace('/', '_')}_{agent}_{stamp}"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(base.parent, e) from None
    for i in range(1, 10_000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise StorageError(path, e) from None
        return str(path)
    raise ConfigError(f"{base}: 10,000 runs started this second already; give --out")


def discard_unused(out: str | os.PathLike) -> None:
    """Removes a directory `default_out` made when the run was refused before writing there."""
    path = Path(out)
    try:
        if {p.name for p in path.iterdir()} <= {LOCK}:
            (path / LOCK).unlink(missing_ok=True)
            path.rmdir()
    except OSError:
        pass
