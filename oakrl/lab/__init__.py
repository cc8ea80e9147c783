"""The lab: runs agents on streams (many seeds at once), records, checkpoints, resumes, sweeps.

    from oakrl.lab import RunSpec, prepare, execute
    result = execute(prepare(RunSpec(env="CartPole-v1", agent="stream-ac", steps=20_000)))

Names resolve on first use, so `import oakrl.lab.cpu` (the CLI, before JAX starts) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "RunSpec": "oakrl.lab.spec",
    "RunPlan": "oakrl.lab.run",
    "RunResult": "oakrl.lab.run",
    "Started": "oakrl.lab.run",
    "ChunkDone": "oakrl.lab.run",
    "Finished": "oakrl.lab.run",
    "Event": "oakrl.lab.run",
    "prepare": "oakrl.lab.run",
    "execute": "oakrl.lab.run",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'oakrl.lab' has no attribute {name!r}")
