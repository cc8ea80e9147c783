"""The `oakrl` command (and `python -m oakrl`), with Ctrl-C honoured as early as Python allows.

The command line itself is oakrl/cli.py. This module stays import-light so that the SIGINT
handler is in place before anything heavy loads: a Ctrl-C while the CLI's modules are still
importing is one line and exit 130, not a traceback, and one that Python would swallow (raised
inside a garbage-collection callback of jax's, "Exception ignored in _xla_gc_callback") is
remembered, so that the run still stops at its next chunk boundary (oakrl/lab/run.py).
"""

from __future__ import annotations

import signal
import sys


class SigInt:
    """SIGINT handler: raise KeyboardInterrupt as Python does, and remember that it came."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum, frame) -> None:
        self.received = signum
        raise KeyboardInterrupt


def main() -> int:
    # Leave an ignored SIGINT ignored (a command started in the background by a shell).
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, SigInt())
        default_hook = sys.unraisablehook

        def quiet(unraisable) -> None:  # the swallowed Ctrl-C is remembered: no traceback for it
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                default_hook(unraisable)

        sys.unraisablehook = quiet
    try:
        from oakrl.cli import main as cli_main
    except KeyboardInterrupt:
        print("oakrl: interrupted", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
