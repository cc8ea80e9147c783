"""The machine a run's figures were measured on (every summary records it).

Result files are written by oakrl.io. No JAX import at module level: the CLI and the studies
import this before (or without) starting a backend.
"""

from __future__ import annotations

import os
import platform
from typing import Any


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
