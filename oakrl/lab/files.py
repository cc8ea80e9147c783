"""Result files written atomically, and the machine they were measured on.

The writes are oakrl.io's (hidden temporary in the same folder, synced, renamed over the
target), so a reader (or a kill) never sees a half-written file. The names below stay importable
from here because the lab and the studies use them (lab/run.py, study/cli.py, study/common.py,
study/oak.py). No JAX import at module level: the CLI and the studies use these before (or
without) starting a backend.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from oakrl.io import json_default, tmp_path, write_json, write_table

__all__ = ["json_default", "machine", "tmp_path", "write_json", "write_table"]


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
