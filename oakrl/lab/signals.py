"""SIGINT/SIGTERM during a run: finish the chunk, checkpoint, stop (the lab's signal handlers).

A chunk that does not end within `GRACE` seconds of the signal is abandoned (oakrl/lab/run.py):
the run stops at its last checkpoint, so a stop never waits for a long chunk.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

# Seconds a running chunk may take to end after SIGINT/SIGTERM before it is abandoned; the
# environment variable OAKRL_STOP_GRACE changes it (0: stop at once, at the last checkpoint).
GRACE = float(os.environ.get("OAKRL_STOP_GRACE", "3"))


class Signals:
    """SIGINT/SIGTERM set a flag; the run checkpoints at the next chunk boundary and stops."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self.at = 0.0  # time.monotonic() of the first signal
        self.old: dict[int, Any] = {}

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
            # A Ctrl-C that came before (while jax imported) and that Python swallowed: honour it.
            if getattr(self.old[signal.SIGINT], "received", None) is not None:
                self.received, self.at = signal.SIGINT, time.monotonic()
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # a second signal: stop now
            signal.signal(signum, self.old.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received, self.at = signum, time.monotonic()

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False
