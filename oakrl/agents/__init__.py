"""Agents composed from the learn/ pieces. Each is `Agent(name, init, step, config)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from oakrl.agents import dyna as _dyna
from oakrl.agents import oak as _oak
from oakrl.agents import planner as _planner
from oakrl.agents import sft_tool as _sft
from oakrl.agents import stream_ac as _ac
from oakrl.agents import stream_q as _q
from oakrl.agents import stream_td as _td
from oakrl.agents.dyna import dyna
from oakrl.agents.oak import oak
from oakrl.agents.planner import planner
from oakrl.agents.stream_ac import stream_ac
from oakrl.agents.stream_q import stream_q
from oakrl.agents.stream_td import stream_td
from oakrl.core.types import Agent, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.priors import agent as _prior  # prior-ac lives with the priors (oakrl/priors/)


class AgentInfo(NamedTuple):
    factory: Callable[..., Agent]
    defaults: dict
    discrete_only: bool
    description: str
    # state (seed-batched) -> {column: [S, K] array}: what the lab records per chunk
    # (records.parquet), e.g. oak's option pool; None for agents with nothing to add.
    records: Callable[..., dict] | None = None


AGENTS: dict[str, AgentInfo] = {
    "stream-ac": AgentInfo(
        stream_ac,
        _ac.DEFAULTS,
        False,
        "Stream AC(lambda): actor-critic with ObGD; softmax or Gaussian policy (Elsayed et al. 2024)",
    ),
    "stream-q": AgentInfo(
        stream_q,
        _q.DEFAULTS,
        True,
        "Stream Q(lambda): Watkins' Q(lambda) with ObGD, epsilon-greedy; discrete actions only",
    ),
    "stream-td": AgentInfo(
        stream_td,
        _td.DEFAULTS,
        False,
        "Stream TD(lambda): prediction only; evaluates a random policy and reports value error",
    ),
    "dyna": AgentInfo(
        dyna,
        _dyna.DEFAULTS,
        True,
        "Dyna: stream Q(lambda) + online transition model + n simulated updates per step (prioritised)",
    ),
    "planner": AgentInfo(
        planner,
        _planner.DEFAULTS,
        True,
        "Planner: stream Q(lambda) + online model; acts by Gumbel MuZero search (mctx); --goal",
    ),
    "oak": AgentInfo(
        oak,
        _oak.DEFAULTS,
        True,
        "OaK: features -> subtasks -> options -> option models -> planning, all learned every step",
        _oak.option_records,
    ),
    "prior-ac": AgentInfo(
        _prior.prior_ac,
        _prior.DEFAULTS,
        True,
        "Stream AC(lambda) from a prior: behaviour-cloned demonstrations (demos=) and/or an LM table "
        "(lm_table=), KL pull that decays/adapts",
    ),
    "sft-tool": AgentInfo(
        _sft.sft_tool,
        _sft.DEFAULTS,
        True,
        "Stream AC(lambda) with an extra action: supervised learning on its best recent episodes "
        "(SFT as a tool call)",
    ),
}


def list_agents() -> list[tuple[str, str]]:
    return [(name, info.description) for name, info in AGENTS.items()]


def make_agent(name: str, action_spec: Spec | None = None, **options) -> Agent:
    """Builds agent `name` with `options` overriding its defaults; checks that they fit."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(AGENTS)}")
    info = AGENTS[name]
    if info.discrete_only and action_spec is not None and not isinstance(action_spec, DiscreteSpec):
        raise ConfigError(
            f"{name} needs discrete actions and this environment's are continuous; use stream-ac"
        )
    unknown = sorted(set(options) - set(info.defaults))
    if unknown:
        raise ConfigError(f"{name} has no option {unknown[0]!r}; valid: {', '.join(sorted(info.defaults))}")
    return info.factory(**options)


__all__ = [
    "AGENTS",
    "AgentInfo",
    "dyna",
    "list_agents",
    "make_agent",
    "oak",
    "planner",
    "stream_ac",
    "stream_q",
    "stream_td",
]
