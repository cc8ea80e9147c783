"""Result files written atomically, and the machine they were measured on.

Every writer goes to a temporary name in the same folder and renames it over the target, so
a reader (or a kill) never sees a half-written file. No JAX import here: the CLI and the
studies use these before (or without) starting a backend.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.lab.metrics import tmp_path


def json_default(x: Any) -> Any:
    """numpy scalars and tuples in JSON."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


def write_json(path: Path, data: Any) -> None:
    tmp = tmp_path(path)
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=json_default)
        f.write("\n")
    os.replace(tmp, path)


def write_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    """A parquet table of equal-length columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = tmp_path(path)
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)


def machine() -> dict[str, Any]:
    """What every summary records about where its figures were measured."""
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }
