"""The test suite compiles through the same persistent cache as the command line (oakrl/lab/
cache.py): the CLI runs it starts as subprocesses share it too, so a configuration compiled by
one test (or by an earlier run of the suite) loads from disk in the next."""

from oakrl.lab import cache

cache.enable()
