"""A run's tables on disk: episodes.parquet (with its schema) and any other parquet table.

Columns come back as 1-D numpy arrays, `{column: array}`, the form every metric and the
RunResult use. Writes are atomic (oakrl.io).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from oakrl.io import write_table

# The schema of episodes.parquet: column name -> numpy dtype.
EPISODE_COLUMNS: dict[str, type] = {
    "seed": np.int32,
    "step": np.int64,
    "return": np.float32,
    "task": np.int32,
}


def read_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Any parquet table as {column: 1-D numpy array}."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def read_episodes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an ``episodes.parquet`` into ``{column: 1-D numpy array}``.

    The known columns (``seed``, ``step``, ``return``, ``task``) come back in their schema
    dtypes; a missing ``task`` column reads as zeros (a run without schedule); other columns
    are passed through.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out = {name: table.column(name).to_numpy() for name in table.column_names}
    n = table.num_rows
    if "task" not in out:
        out["task"] = np.zeros(n, dtype=np.int32)
    for name, dtype in EPISODE_COLUMNS.items():
        if name in out:
            out[name] = np.asarray(out[name]).astype(dtype, copy=False)
    return out


def write_episodes(path: str | os.PathLike, columns: Mapping[str, Sequence | np.ndarray]) -> None:
    """Write ``{column: 1-D array}`` to a parquet file atomically (:func:`oakrl.io.write_table`).

    The known columns are cast to their schema dtypes (``seed`` int32, ``step`` int64,
    ``return`` float32, ``task`` int32). A reader never sees a half-written file.
    """
    arrays = {}
    for name, values in columns.items():
        arr = np.asarray(values)
        if name in EPISODE_COLUMNS:
            arr = arr.astype(EPISODE_COLUMNS[name], copy=False)
        arrays[name] = arr.ravel()
    write_table(path, arrays)
