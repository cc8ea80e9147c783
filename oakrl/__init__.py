"""oakrl: agents that learn from their own experience, continually."""

__version__ = "0.1.0"
