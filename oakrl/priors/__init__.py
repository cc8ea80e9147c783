"""Priors that experience corrects: demonstrations, behaviour cloning, language-model priors.

oakrl.priors.demos   the demonstrations format, its reader/writer, recording (scripted or agent)
oakrl.priors.bc      behaviour cloning and value fitting, jittable (run inside an agent's init)
oakrl.priors.llm     GLAM-style action scores from a local Hugging Face causal LM (extra oakrl[llm])

The agent that learns from these priors, prior-ac, lives with the agents (oakrl.agents.prior_ac).
"""

from oakrl.priors.demos import Demos, read_demos, record_agent, record_scripted, write_demos

__all__ = [
    "Demos",
    "read_demos",
    "record_agent",
    "record_scripted",
    "write_demos",
]
