"""Agents composed from the learn/ pieces. Each is `Agent(name, init, step, config)`.

Adding an agent is one file (its state, its frozen `Config` subclass, its factory
`make(config) -> Agent`) plus one line in `AGENTS` below. The lab reads an agent's options only
through its config class:

    info = AGENTS["stream-q"]
    config = info.config.build({"lr": 0.5}).resolve(RunFacts(steps, obs_shape, action_spec))
    agent = info.make(config)          # agent.config is config; agent.config.to_dict() -> config.json
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from oakrl.agents.dyna import DynaConfig, dyna
from oakrl.agents.goal_q import GoalQConfig, goal_q
from oakrl.agents.joint import JointConfig, joint, joint_options
from oakrl.agents.oak import OakConfig, oak, option_records
from oakrl.agents.planner import PlannerConfig, planner
from oakrl.agents.prior_ac import PriorACConfig, prior_ac
from oakrl.agents.sft_tool import SFTToolConfig, sft_tool
from oakrl.agents.stream_ac import StreamACConfig, stream_ac
from oakrl.agents.stream_q import StreamQConfig, stream_q
from oakrl.agents.stream_sarsa import StreamSarsaConfig, stream_sarsa
from oakrl.agents.stream_td import StreamTDConfig, stream_td
from oakrl.agents.tabular_q import TabularQConfig, tabular_q
from oakrl.core.config import Config
from oakrl.core.types import Agent
from oakrl.errors import ConfigError


class AgentInfo(NamedTuple):
    make: Callable[[Config], Agent]  # the agent from its checked, resolved config
    config: type[Config]  # its typed, frozen config: defaults, bounds, `resolve`
    description: str
    # state (seed-batched) -> {column: [S, K] array}: what the lab records per chunk
    # (records.parquet), e.g. oak's option pool; None for agents with nothing to add.
    records: Callable[[Any], dict] | None = None


AGENTS: dict[str, AgentInfo] = {
    "stream-ac": AgentInfo(
        stream_ac,
        StreamACConfig,
        "Stream AC(lambda): actor-critic with ObGD; softmax or Gaussian policy (Elsayed et al. 2024)",
    ),
    "stream-q": AgentInfo(
        stream_q,
        StreamQConfig,
        "Stream Q(lambda): Watkins' Q(lambda) with ObGD, epsilon-greedy; discrete actions only",
    ),
    "stream-sarsa": AgentInfo(stream_sarsa, StreamSarsaConfig, "Stream Sarsa(lambda): on-policy, ObGD"),
    "stream-td": AgentInfo(
        stream_td,
        StreamTDConfig,
        "Stream TD(lambda): prediction only; evaluates a random policy and reports value error",
    ),
    "dyna": AgentInfo(
        dyna,
        DynaConfig,
        "Dyna: stream Q(lambda) + online transition model + n simulated updates per step (prioritised)",
    ),
    "planner": AgentInfo(
        planner,
        PlannerConfig,
        "Planner: stream Q(lambda) + online model; acts by Gumbel MuZero search (mctx); --goal",
    ),
    "goal-q": AgentInfo(
        goal_q,
        GoalQConfig,
        "Goal-conditioned Q-learning of every cell-goal at once from each transition (Kaelbling 1993); "
        "--goal, a goal schedule; no search",
    ),
    "oak": AgentInfo(
        oak,
        OakConfig,
        "OaK: features -> subtasks -> options -> option models -> planning, all learned every step",
        option_records,
    ),
    "prior-ac": AgentInfo(
        prior_ac,
        PriorACConfig,
        "Stream AC(lambda) from a prior: behaviour-cloned demonstrations (demos=) and/or an LM table "
        "(lm_table=), KL pull that decays/adapts",
    ),
    "sft-tool": AgentInfo(
        sft_tool,
        SFTToolConfig,
        "Stream AC(lambda) with an extra action: supervised learning on its best recent episodes "
        "(SFT as a tool call)",
    ),
    "tabular-q": AgentInfo(
        tabular_q,
        TabularQConfig,
        "Tabular Q-learning as in Calvano et al. 2020: Q table over integer observations, "
        "epsilon_t = exp(-beta t)",
    ),
    "joint": AgentInfo(
        joint,
        JointConfig,
        "N learners in one multi-learner world (--agent A,B or --learners N), each its own agent",
    ),
}


def multi_learner(agent: str, learners: int = 1) -> tuple[str, dict[str, Any], int]:
    """`--agent A[,B,...]` with `--learners N` -> (the agent to build, the options that choice
    implies, the learner count): one learner's agent unchanged, several the joint agent of them."""
    if not isinstance(agent, str) or hasattr(AGENTS.get(agent, AgentInfo).config, "num_learners"):
        return agent, {}, learners  # already an agent of several learners (the joint agent)
    found = joint_options(agent, learners)
    if found is None:
        return agent, {}, 1
    return "joint", {"agents": ",".join(found[1])}, found[0]


def list_agents() -> list[tuple[str, str]]:
    return [(name, info.description) for name, info in AGENTS.items()]


def agent_info(name: str) -> AgentInfo:
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; valid: {', '.join(AGENTS)}")
    return AGENTS[name]


def make_agent(name: str, config: Config | None = None, /, **options) -> Agent:
    """Agent `name` from `config` (default: its defaults) with `options` (typed values) over it.

    The config is checked (bounds and cross-field rules) but not resolved: to fill what depends
    on a run (stream-q's exploration schedule, the planner's goal against the observation,
    discrete-only agents refusing continuous actions), pass `config.resolve(RunFacts(...))`.
    """
    info = agent_info(name)
    if config is None:
        cfg = info.config.build(options)
    elif not isinstance(config, info.config):
        raise ConfigError(f"{name} takes a {info.config.__name__}, got a {type(config).__name__}")
    else:
        cfg = type(config).build({**config.to_dict(), **options}) if options else config
        cfg.check()
    return info.make(cfg)


__all__ = [
    "AGENTS",
    "AgentInfo",
    "DynaConfig",
    "JointConfig",
    "GoalQConfig",
    "OakConfig",
    "PlannerConfig",
    "PriorACConfig",
    "SFTToolConfig",
    "StreamACConfig",
    "StreamQConfig",
    "StreamTDConfig",
    "TabularQConfig",
    "agent_info",
    "dyna",
    "joint",
    "goal_q",
    "list_agents",
    "make_agent",
    "multi_learner",
    "oak",
    "planner",
    "prior_ac",
    "sft_tool",
    "stream_ac",
    "stream_q",
    "stream_td",
    "tabular_q",
]
