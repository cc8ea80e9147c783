"""A run, described: `RunSpec`, typed and frozen, checked when it is made.

    spec = RunSpec(env="CartPole-v1", agent="stream-q", steps=50_000, seeds=4,
                   agent_config=StreamQConfig(lr=0.5))        # or agent_options={"lr": 0.5}

Every way of starting a run (CLI flags, a TOML/YAML/JSON file, a sweep grid, a study, a
notebook) ends in a RunSpec (oakrl/lab/parse.py turns text into one); `oakrl.lab.run.prepare`
turns it into a plan and `execute` runs the plan. A spec knows its fields and their rules; what
depends on the environment (the agent's fit to its observations and actions) is checked by
`prepare`, which builds the environment and the agent once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import InitVar, dataclass
from typing import Any

from oakrl.core.config import Config
from oakrl.errors import ConfigError

SCHEDULES = ("switch", "permute", "reward", "drift")
PRNGS = ("unsafe_rbg", "rbg", "threefry2x32")
ORDERS = ("cyclic", "random")
# JAX holds seeds and step counters in 32 bits (uint32 keys, int32 counters in the scan).
MAX_SEED = 2**32 - 1
MAX_STEPS = 2**31 - 1
MAX_LEARNERS = 64


def agent_config_type(agent: str) -> type[Config]:
    from oakrl.agents import AGENTS

    if not isinstance(agent, str) or agent not in AGENTS:
        raise ConfigError(f"unknown agent {agent!r}; valid: {', '.join(AGENTS)}")
    return AGENTS[agent].config


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Checked on construction (ConfigError, one line)."""

    env: str = "CartPole-v1"  # an id of `oakrl envs`, or gym:ID
    agent: str = "stream-ac"  # an agent of `oakrl agents`
    steps: int = 100_000  # per seed
    seeds: int = 1  # independent seeds, run at once (vmap)
    seed: int = 0  # base seed: seed i of the run uses fold_in(key(seed), i)
    schedule: str | None = None  # switch | permute | reward | drift
    every: int = 50_000  # steps per task segment
    tasks: int = 2
    order: str = "cyclic"  # cyclic | random
    chunk: int = 10_000  # steps per compiled chunk (progress is reported between chunks)
    window: int = 1_000  # continuing worlds: steps per reported "episode"
    prng: str = "unsafe_rbg"  # jax.random implementation of the run's keys
    # The agent's typed config; None: its defaults. `agent_options` (typed values, e.g. from a
    # file) are built into it, so a spec always holds one complete, checked config.
    agent_config: Config | None = None
    agent_options: InitVar[dict[str, Any] | None] = None
    # Steps between checkpoints (taken at the first chunk boundary past each multiple);
    # None: after every chunk; 0: only at the end and on SIGINT/SIGTERM. Does not change results.
    checkpoint_every: int | None = None
    # A commanded goal for goal-conditioned agents, as written after --goal: "I=V,..." or one
    # value per observation entry; checked against the observation by `prepare`.
    goal: str | None = None
    # The results directory; None: nothing is written (the tables come back in memory).
    out: str | None = None
    # Learners sharing a multi-learner world (Market-v0): `agent` names one agent for all of
    # them or a comma list, one per learner; the lab then runs their joint agent (agents/joint.py).
    learners: int = 1
    # gym: environments' options (oakrl.envs.gym_bridge.ENV_OPTIONS: time_feature, vector, param).
    env_options: dict[str, Any] | None = None

    def __post_init__(self, agent_options: dict[str, Any] | None) -> None:
        for name in ("env", "agent", "order", "prng"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        if self.out is not None and not isinstance(self.out, str | os.PathLike):
            raise ConfigError(f"out must be a path, got {self.out!r}")
        if self.schedule is not None and not isinstance(self.schedule, str):
            raise ConfigError(f"schedule must be a string ({', '.join(SCHEDULES)}), got {self.schedule!r}")
        ce = self.checkpoint_every
        if ce is not None and (not isinstance(ce, int) or isinstance(ce, bool) or not 0 <= ce <= MAX_STEPS):
            raise ConfigError(
                f"checkpoint_every must be a non-negative integer (0: only at the end), got {ce!r}"
            )
        for name in ("steps", "every", "chunk", "window"):
            _integer(name, getattr(self, name), 1, MAX_STEPS)
        _integer("seeds", self.seeds, 1, MAX_SEED)
        _integer("tasks", self.tasks, 1, MAX_STEPS)
        _integer("seed", self.seed, 0, MAX_SEED, "a non-negative integer")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.order not in ORDERS:
            raise ConfigError(f"order must be 'cyclic' or 'random', got {self.order!r}")
        if self.prng not in PRNGS:
            raise ConfigError(f"unknown prng {self.prng!r}; valid: {', '.join(PRNGS)}")
        if self.gym and self.learners != 1:
            raise ConfigError("--learners > 1 needs a multi-learner JAX world (Market-v0), not a gym: one")
        if self.env_options is not None:
            if not self.gym:
                raise ConfigError("env_options apply to gym: environments only")
            from oakrl.envs.gym_bridge import check_env_options

            checked = check_env_options(self.env_options)  # typed: "true" from the CLI becomes True
            object.__setattr__(self, "env_options", {k: checked[k] for k in self.env_options} or None)
        if not self.gym:
            from oakrl.envs.registry import check_env_id

            check_env_id(self.env)
        _integer("learners", self.learners, 1, MAX_LEARNERS)
        agent_options = {} if agent_options is None else agent_options
        if not isinstance(agent_options, dict):
            raise ConfigError(f"agent_options must be a table of agent options, got {agent_options!r}")
        from oakrl.agents import multi_learner

        name, implied, learners = multi_learner(self.agent, self.learners)
        if implied:
            from oakrl.agents.joint import route_options

            object.__setattr__(self, "agent", name)
            object.__setattr__(self, "learners", learners)
            names = tuple(implied["agents"].split(","))
            agent_options = route_options(names, {**implied, **agent_options})
        kind = agent_config_type(self.agent)
        config = self.agent_config
        if config is None:
            config = kind.build(agent_options)
        elif type(config) is not kind:
            raise ConfigError(
                f"agent_config is a {type(config).__name__}; {self.agent} takes a {kind.__name__}"
            )
        elif agent_options:
            config = kind.build({**config.to_dict(), **agent_options})
        else:
            config.check()
        object.__setattr__(self, "agent_config", config)
        count = getattr(config, "num_learners", None)
        if count is not None:  # an agent of several learners decides how many share the world
            if self.learners not in (1, count()):
                raise ConfigError(f"learners is {self.learners} but the agent has {count()} learners")
            object.__setattr__(self, "learners", count())
        if self.goal is not None:
            if not isinstance(self.goal, str):
                raise ConfigError(f"goal must be a string like '40=1', got {self.goal!r}")
            if "goal" not in kind.option_info():
                from oakrl.agents import AGENTS

                takes = [n for n, a in AGENTS.items() if "goal" in a.config.option_info()]
                raise ConfigError(
                    f"--goal needs a goal-conditioned agent ({', '.join(takes)}), not {self.agent}"
                )

    @property
    def gym(self) -> bool:
        return self.env.startswith("gym:")

    def replace(self, **changes: Any) -> RunSpec:
        """A new spec with fields changed (a changed agent keeps no options of the old one)."""
        if "agent" in changes and changes["agent"] != self.agent and "agent_config" not in changes:
            changes["agent_config"] = None
        return dataclasses.replace(self, **changes)

    def options_given(self) -> dict[str, Any]:
        """The agent options that differ from the agent's defaults.

        An option whose default changed (`Config.PREVIOUS_DEFAULTS`) is measured against its
        previous default, so config.json lists it as it did before the change, and runs made
        then, with or without it, still match their config.json."""
        kind = type(self.agent_config)
        defaults = {**kind.defaults(), **kind.PREVIOUS_DEFAULTS}
        return {k: v for k, v in self.agent_config.to_dict().items() if v != defaults[k]}

    def to_json(self) -> dict[str, Any]:
        """The spec as config.json records it (the agent's full config is added by the lab)."""
        schedule = None
        if self.schedule is not None:
            schedule = {"kind": self.schedule, "every": self.every, "tasks": self.tasks, "order": self.order}
        d = {
            "env": self.env,
            "agent": self.agent,
            "steps": self.steps,
            "seeds": self.seeds,
            "seed": self.seed,
            "schedule": schedule,
            "every": self.every,
            "tasks": self.tasks,
            "order": self.order,
            "chunk": self.chunk,
            "window": self.window,
            "prng": self.prng,
            "agent_options": self.options_given(),
            "checkpoint_every": self.checkpoint_every,
        }
        if self.goal is not None:  # runs without a goal keep the config.json they always had
            d["goal"] = self.goal
        if self.learners != 1:  # likewise runs of one learner
            d["learners"] = self.learners
        if self.env_options:  # the same for runs without environment options
            d["env_options"] = dict(self.env_options)
        return d


# The fields a config file, a sweep grid or config.json may set (agent options as a table).
FIELDS = tuple(f.name if f.name != "agent_config" else "agent_options" for f in dataclasses.fields(RunSpec))


def _integer(name: str, value: Any, low: int, high: int, what: str = "a positive integer") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    if value > high:
        raise ConfigError(f"{name} must be at most {high:,}, got {value:,}")
