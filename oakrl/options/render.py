"""Moved to oakrl.report.rooms: drawing an option on Rooms-v0 is reporting's business.

This re-export keeps `oakrl.options.render` importable until its last users import the new
path (study/oak.py's `plot_final_options`, tests/test_options.py). It is an upward import
(options -> report) that tests/test_layers.py lists as a known violation; delete this file then.
"""

from oakrl.report.rooms import ARROWS, option_map, plot_options, render_option

__all__ = ["ARROWS", "option_map", "plot_options", "render_option"]
