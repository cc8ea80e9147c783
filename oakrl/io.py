"""Atomic file writes: the one place in oakrl that puts a file where a reader may look.

Every writer here writes to a hidden temporary next to the target, `.<stem>.<pid>.<8 hex><suffix>`
(same directory, so the rename stays within one file system; same suffix, for writers that pick
the format from it), syncs it to disk, renames it over the target and syncs the directory. A
reader, or a kill at any moment, sees the old file or the whole new one, never half of one. A
killed writer leaves at most its hidden temporary; the lab's `clean_temporaries` removes those of
a results directory by their `.<stem>.` prefix, so keep the name scheme when changing this.

    atomic_path(path)             context manager: yields the temporary path for any writer
    write_bytes / write_text      bytes or text
    write_json(path, data)        indented JSON with a final newline; numpy scalars as numbers
    write_table(path, columns)    {name: 1-D array} as a parquet table
    save_figure(fig, path, dpi)   a matplotlib Figure, format from the suffix

Bottom layer (with oakrl.errors): imports no other oakrl module and neither JAX nor matplotlib,
so the CLI can write before a backend starts. pyarrow is imported only by `write_table`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike


class StorageError(OSError):
    """A file could not be written or read (no space, read-only file system, permission).

    The message names the path and the cause, in one line; the CLI exits with code 4. Files are
    replaced whole (oakrl.io), so a run's last good checkpoint stays usable.
    """

    def __init__(self, path: object, cause: OSError):
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(cause.errno, f"cannot write {path}: {reason}")
        self.path, self.cause = str(path), cause

    def __str__(self) -> str:
        return self.strerror or ""


def tmp_path(path: PathLike) -> str:
    """A fresh hidden name next to `path`, with its suffix: `.<stem>.<pid>.<8 hex><suffix>`.

    The writer creates the file, so it gets the usual permissions (`mkstemp` would make it
    private).
    """
    path = Path(path)
    return str(path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}"))


def _fsync(path: PathLike, directory: bool = False) -> None:
    """Flushes a file's (or a directory's) data to disk.

    A file's fsync error is raised: on NFS and full disks ENOSPC/EIO often surface only here,
    and the data did not reach the disk. A directory's is ignored (some file systems refuse it).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on leaving the block, the file replaces `path` whole.

    If the block raises (or is interrupted), the temporary is removed and `path` is untouched.
    An OSError (no space, read-only file system, permission) becomes a StorageError naming
    `path` and the cause in one line.
    """
    path = Path(path)
    tmp = tmp_path(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass  # the directory itself refuses: there is no temporary either
        if isinstance(e, OSError) and not isinstance(e, StorageError):
            raise StorageError(path, e) from e
        raise
    _fsync(path.parent, directory=True)


def write_bytes(path: PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def json_default(x: Any) -> Any:
    """numpy scalars in JSON, as Python numbers; anything else JSON does not know is an error."""
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def write_json(path: PathLike, data: Any) -> Path:
    """`data` as JSON indented by 2, with a final newline."""
    return write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")


def write_table(path: PathLike, columns: Mapping[str, Any]) -> Path:
    """A parquet table of equal-length 1-D columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(dict(columns))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def save_figure(fig: Any, path: PathLike, dpi: float | None = None) -> str:
    """A matplotlib Figure (any object with `savefig`); the suffix selects the format."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return str(path)
