"""Errors that carry a message meant for the user (the CLI prints them as one line, exit 2)."""


class ConfigError(ValueError):
    """Bad input: an unknown name, an impossible value, a malformed config.

    The message says what is wrong and what is valid, in one line.
    """
