"""Priors that experience corrects: demonstrations, behaviour cloning, language-model priors.

oakrl.priors.demos   the demonstrations format, its reader/writer, recording (scripted or agent)
oakrl.priors.bc      behaviour cloning and value fitting, jittable (run inside an agent's init)
oakrl.priors.agent   prior-ac: stream AC from a cloned and/or LM prior, KL pull that decays/adapts
oakrl.priors.llm     GLAM-style action scores from a local Hugging Face causal LM (extra oakrl[llm])
"""

# oakrl.agents registers prior-ac from this package: loading it first keeps the import order
# the same whichever package is imported first.
import oakrl.agents  # noqa: F401, I001
from oakrl.priors.agent import PriorACState, prior_ac
from oakrl.priors.demos import Demos, read_demos, record_agent, record_scripted, write_demos

__all__ = [
    "Demos",
    "PriorACState",
    "prior_ac",
    "read_demos",
    "record_agent",
    "record_scripted",
    "write_demos",
]
