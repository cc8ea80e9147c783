"""oakrl: agents that learn from their own experience, continually."""

__version__ = "0.2.0"
