"""Errors that carry a message meant for the user (the CLI prints them as one line, exit 2)."""


class ConfigError(ValueError):
    """Bad input: an unknown name, an impossible value, a malformed config.

    The message says what is wrong and what is valid, in one line.
    """


class Diverged(RuntimeError):
    """A run's agent state or metrics turned non-finite (NaN/inf) at a chunk boundary.

    The message names the seed, the step and the quantity, in one line; the CLI exits with
    code 3 and the run's last good checkpoint is kept.
    """


class Interrupted(RuntimeError):
    """A run stopped on SIGINT/SIGTERM after checkpointing; resumable. Exit code 128 + signal."""

    def __init__(self, signum: int, step: int, out: str, abandoned: bool = False):
        if not abandoned:
            message = f"interrupted at step {step}; checkpoint saved, continue with `oakrl resume {out}`"
        elif step:
            message = (
                f"interrupted; the running chunk was abandoned, the last checkpoint is at step {step}: "
                f"continue with `oakrl resume {out}`"
            )
        else:
            message = f"interrupted before the first checkpoint; `oakrl resume {out}` starts the run over"
        super().__init__(message)
        # abandoned: a chunk was still computing (the process should exit without waiting for it)
        self.signum, self.step, self.out, self.abandoned = signum, step, out, abandoned
