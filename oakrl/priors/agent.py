"""Moved to oakrl.agents.prior_ac (prior-ac lives with the agents).

Transitional re-export for oakrl/study/prior.py, which imports it from here until it imports
oakrl.agents.prior_ac; delete this file then (it imports upwards, priors -> agents).
"""

from oakrl.agents.prior_ac import (  # noqa: F401
    DemoArrays,
    PriorACConfig,
    PriorExtra,
    demo_arrays,
    load_table,
    prior_ac,
    prior_ac_parts,
)
