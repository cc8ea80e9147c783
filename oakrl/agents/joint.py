"""N learners in one world, composed into one agent: the lab runs them as it runs one.

A multi-learner world's single-agent view (oakrl/envs/multi.py, `JointView`) hands the joint
agent an observation [N, D + 1]: row i is learner i's observation (D entries) and, last, the
reward learner i earned on the transition that led here. Each step the joint agent gives
learner i its own `TimeStep(row[:D], row[D], terminated, truncated)`, lets every learner learn
and act with its own key, and returns the N actions as one int32 [N] array. Its state is the
tuple of the learners' states (one pytree: checkpoints and resume need nothing new).

Diagnostics: every learner's own, prefixed `l{i}/`, plus `l{i}/reward` (its reward per step,
whose chunk mean is its average reward). The learners are independent: none sees another's
state; each sees the others only through the world.

    oakrl run --env Market-v0 --agent tabular-q --learners 2      # two of the same kind
    oakrl run --env Market-v0 --agent tabular-q,stream-q           # one agent per learner
"""

from __future__ import annotations

import dataclasses
from typing import Self

import jax
import jax.numpy as jnp

from oakrl.core.config import Config, RunFacts, option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep
from oakrl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class JointConfig(Config):
    """The learners, by agent name, each with its own defaults resolved for one learner's view."""

    NAME = "joint"
    agents: str = option("tabular-q,tabular-q", "comma list of agent names, one per learner")
    steps: int = option(0, "steps per seed of the run (set by resolve; learners' schedules use it)", ge=0)
    obs_dim: int = option(0, "one learner's observation size D (set by resolve)", ge=0)
    num_actions: int = option(0, "one learner's discrete action count (set by resolve)", ge=0)

    def validate(self) -> None:
        from oakrl.agents import AGENTS

        if not self.names():
            raise ConfigError("joint needs at least one learner's agent name")
        for name in self.names():
            if name not in AGENTS or name == "joint":
                valid = ", ".join(n for n in AGENTS if n != "joint")
                raise ConfigError(f"unknown learner agent {name!r}; valid: {valid}")

    def resolve(self, run: RunFacts) -> Self:
        n = len(self.names())
        if len(run.obs_shape) != 2 or run.obs_shape[0] != n:
            raise ConfigError(
                f"{n} learners need a world of {n} learners "
                f"(observation [N, D + 1]); got observation shape {run.obs_shape}"
            )
        if not isinstance(run.action_spec, DiscreteSpec):
            raise ConfigError("joint learners need discrete actions (the multi-learner worlds' kind)")
        out = self.replace(
            steps=run.steps, obs_dim=run.obs_shape[1] - 1, num_actions=run.action_spec.num_values
        )
        out.learner_configs()  # each learner's own checks now, before anything runs
        return out

    def names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.agents.split(",") if s.strip())

    def num_learners(self) -> int:
        """How many learners share the world (the lab builds the world for this many)."""
        return len(self.names())

    def learner_configs(self) -> tuple[Config, ...]:
        """Each learner's config: its defaults, resolved for one learner's observation."""
        from oakrl.agents import AGENTS

        facts = RunFacts(self.steps, (self.obs_dim,), DiscreteSpec(self.num_actions))
        return tuple(AGENTS[name].config().resolve(facts) for name in self.names())


def joint(config: JointConfig | None = None, **overrides) -> Agent:
    """The joint agent of `config.agents` (resolved: obs_dim and num_actions set)."""
    from oakrl.agents import make_agent
    from oakrl.agents.common import configure

    cfg = configure(JointConfig, config, overrides)
    n = cfg.num_learners()
    # The learners are built for one learner's view: from the resolved config (the lab's way),
    # else from the specs `init` sees (an agent made outside a run).
    built: dict[str, tuple[Agent, ...]] = {}

    def learners_for(obs_dim: int, num_actions: int) -> tuple[Agent, ...]:
        if "learners" not in built:
            c = cfg if cfg.obs_dim else cfg.replace(obs_dim=obs_dim, num_actions=num_actions)
            built["learners"] = tuple(
                make_agent(name, lc) for name, lc in zip(c.names(), c.learner_configs(), strict=True)
            )
        return built["learners"]

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec):
        d = obs_spec.shape[-1] - 1
        learners = learners_for(d, action_spec.num_values)
        spec = ArraySpec((d,), jnp.float32)
        keys = jax.random.split(key, n)
        return tuple(agent.init(keys[i], spec, action_spec) for i, agent in enumerate(learners))

    def step(state, ts: TimeStep, key: jax.Array):
        d = ts.observation.shape[-1] - 1
        learners = learners_for(d, 0)  # built by init (or from the resolved config)
        keys = jax.random.split(key, n)
        states, actions, info = [], [], {}
        for i, agent in enumerate(learners):
            own = TimeStep(ts.observation[i, :d], ts.observation[i, d], ts.terminated, ts.truncated)
            s, a, inf = agent.step(state[i], own, keys[i])
            states.append(s)
            actions.append(jnp.asarray(a).astype(jnp.int32))
            info.update({f"l{i}/{k}": v for k, v in inf.items()})
            info[f"l{i}/reward"] = own.reward
        return tuple(states), jnp.stack(actions), info

    return Agent("joint", init, step, cfg)


def joint_options(agent: str, learners: int) -> tuple[int, tuple[str, ...]] | None:
    """`--agent A[,B,...]` with `--learners N` -> (N, one agent name per learner), or None for a
    run of one learner. ConfigError where the list and N disagree."""
    names = tuple(s.strip() for s in agent.split(",") if s.strip())
    if len(names) == 1 and learners == 1:
        return None
    if len(names) == 1:
        names = names * learners
    elif learners not in (1, len(names)):
        raise ConfigError(f"--agent lists {len(names)} learners but --learners is {learners}")
    return len(names), names
