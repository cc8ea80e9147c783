"""Moved to oakrl.lab.record_demos: recording from an agent or a run needs the lab above priors.

This re-export keeps `oakrl.priors.record` importable until cli.py's `record` command imports
the new path. It is an upward import (priors -> lab) that tests/test_layers.py lists as a known
violation; delete this file then.
"""

from oakrl.lab.record_demos import agent_state_of_run, record

__all__ = ["agent_state_of_run", "record"]
