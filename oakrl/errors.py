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
