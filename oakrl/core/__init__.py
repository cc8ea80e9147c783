"""Types shared by every part of oakrl: timesteps, specs, the agent protocol, pytree helpers."""

from oakrl.core.serialize import load_pytree, pytree_from_bytes, pytree_to_bytes, save_pytree
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep, first_timestep

__all__ = [
    "Agent",
    "ArraySpec",
    "DiscreteSpec",
    "Spec",
    "TimeStep",
    "first_timestep",
    "load_pytree",
    "pytree_from_bytes",
    "pytree_to_bytes",
    "save_pytree",
]
