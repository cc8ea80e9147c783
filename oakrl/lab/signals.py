"""SIGINT/SIGTERM during a run: finish the chunk, checkpoint, stop (the lab's signal handlers)."""

from __future__ import annotations

import signal
import threading
from typing import Any


class Signals:
    """SIGINT/SIGTERM set a flag; the run checkpoints at the next chunk boundary and stops."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self.old: dict[int, Any] = {}

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
            # A Ctrl-C that came before (while jax imported) and that Python swallowed: honour it.
            if getattr(self.old[signal.SIGINT], "received", None) is not None:
                self.received = signal.SIGINT
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # a second signal: stop now
            signal.signal(signum, self.old.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False
