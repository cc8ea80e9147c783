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
    oakrl run --env Market-v0 --agent tabular-q --learners 2 --opt "learner_options={'1': {'alpha': 0.05}}"
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

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
    learner_options: dict = option(
        {}, "each learner's own options by its index, e.g. {'0': {'lr': 0.5}, '1': {'epsilon': 0.1}}"
    )

    def validate(self) -> None:
        from oakrl.agents import AGENTS

        if not self.names():
            raise ConfigError("joint needs at least one learner's agent name")
        for name in self.names():
            if name not in AGENTS or name == "joint":
                valid = ", ".join(n for n in AGENTS if n != "joint")
                raise ConfigError(f"unknown learner agent {name!r}; valid: {valid}")
        self.own_options()

    def own_options(self) -> tuple[dict, ...]:
        """Each learner's own options (checked: indexes in range, tables of that agent's options)."""
        n = len(self.names())
        out: list[dict] = [{} for _ in range(n)]
        for key, table in self.learner_options.items():
            index = int(key) if str(key).isdigit() else -1
            if not 0 <= index < n:
                raise ConfigError(
                    f"learner_options key {key!r} is not a learner index; valid: "
                    f"{', '.join(repr(str(i)) for i in range(n))}"
                )
            if not isinstance(table, dict):
                raise ConfigError(f"learner_options[{key!r}] must be a table of options, got {table!r}")
            out[index] = table
        return tuple(out)

    def to_dict(self) -> dict:
        d = super().to_dict()
        # A learner's option at its previous default is left out, as Config.to_dict does for one
        # agent: a run made before that learner's default changed listed nothing.
        kinds = self.learner_kinds(self.names())
        tables = {}
        for key, table in d["learner_options"].items():
            index = int(key) if str(key).isdigit() else -1
            kind = kinds[index] if 0 <= index < len(kinds) else Config
            kept = kind.without_previous(table) if isinstance(table, dict) else table
            if kept:
                tables[key] = kept
        d["learner_options"] = tables
        if not tables:  # runs without them keep the config.json they had
            d.pop("learner_options")
        return d

    @classmethod
    def as_run(cls, stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Config.as_run for the joint agent and for each learner's own options."""
        out = super().as_run(stored, given)
        names = cls(agents=str(stored.get("agents", cls.agents))).names()
        kept = stored.get("learner_options") or {}
        tables = dict(out.get("learner_options") or {})
        for i, kind in enumerate(cls.learner_kinds(names)):
            had = kept.get(str(i))
            table = kind.as_run(had if isinstance(had, dict) else {}, tables.get(str(i)) or {})
            if table:
                tables[str(i)] = table
        if tables:
            out["learner_options"] = tables
        return out

    @staticmethod
    def learner_kinds(names: tuple[str, ...]) -> tuple[type[Config], ...]:
        """Each learner's config type (Config itself for a name that is no agent's)."""
        from oakrl.agents import AGENTS

        return tuple(AGENTS[name].config if name in AGENTS else Config for name in names)

    def resolve(self, run: RunFacts) -> Self:
        n = len(self.names())
        if len(run.obs_shape) != 2 or run.obs_shape[0] != n:
            raise ConfigError(
                f"{n} learners need a world of {n} learners "
                f"(observation [N, D + 1]); got observation shape {run.obs_shape}"
            )
        if not isinstance(run.action_spec, DiscreteSpec):
            raise ConfigError("joint learners need discrete actions (the multi-learner worlds' kind)")
        # Each learner's options whose default changed are written down at today's value, so that
        # config.json tells this run from one made before the change (see to_dict, as_run).
        tables, own = dict(self.learner_options), self.own_options()
        for i, kind in enumerate(self.learner_kinds(self.names())):
            now = {k: kind.defaults()[k] for k in kind.PREVIOUS_DEFAULTS}
            if now:
                tables[str(i)] = {**now, **own[i]}
        out = self.replace(
            steps=run.steps,
            obs_dim=run.obs_shape[1] - 1,
            num_actions=run.action_spec.num_values,
            learner_options=tables,
        )
        out.learner_configs()  # each learner's own checks now, before anything runs
        return out

    def names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.agents.split(",") if s.strip())

    def num_learners(self) -> int:
        """How many learners share the world (the lab builds the world for this many)."""
        return len(self.names())

    def learner_configs(self) -> tuple[Config, ...]:
        """Each learner's config: its defaults and its own options, resolved for one learner's
        observation."""
        from oakrl.agents import AGENTS

        facts = RunFacts(self.steps, (self.obs_dim,), DiscreteSpec(self.num_actions))
        return tuple(
            AGENTS[name].config.build(opts, where=f"learner {i} ({name}) option").resolve(facts)
            for i, (name, opts) in enumerate(zip(self.names(), self.own_options(), strict=True))
        )


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


def route_options(names: tuple[str, ...], options: dict[str, Any]) -> dict[str, Any]:
    """A joint agent's options from what a user gives for a run of learners `names`.

    The joint agent's own options stay; `KEY=VALUE` that is a learner's option goes to every
    learner whose agent has it; `lI.KEY=VALUE` to learner I only. Both end in `learner_options`
    (learner index -> that learner's options), where the more specific wins: a shared value,
    then the `learner_options` table, then `lI.KEY`. Values stay as given (each learner's
    config checks them). ConfigError, one line, for a key no learner has or a bad index.
    """
    from oakrl.agents import AGENTS

    own = JointConfig.option_info()
    out = {k: v for k, v in options.items() if k in own}
    table = out.get("learner_options") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"learner_options must be a table (learner index -> options), got {table!r}")
    shared: dict[str, dict] = {}
    single: dict[str, dict] = {}
    for key, value in options.items():
        if key in own:
            continue
        index, _, sub = key.partition(".")
        if sub and index[:1] == "l" and index[1:].isdigit():
            i = int(index[1:])
            if i >= len(names):
                raise ConfigError(f"{key}: there are {len(names)} learners (l0 to l{len(names) - 1})")
            if sub not in AGENTS[names[i]].config.option_info():
                valid = ", ".join(sorted(AGENTS[names[i]].config.option_info()))
                raise ConfigError(f"{key}: learner {i} ({names[i]}) has no option {sub!r}; valid: {valid}")
            single.setdefault(str(i), {})[sub] = value
            continue
        having = [i for i, n in enumerate(names) if key in AGENTS[n].config.option_info()]
        if not having:
            valid = sorted({k for n in set(names) for k in AGENTS[n].config.option_info()} | set(own))
            raise ConfigError(
                f"no learner ({', '.join(names)}) has option {key!r}; valid: {', '.join(valid)}, "
                "or lI.KEY for learner I only"
            )
        for i in having:
            shared.setdefault(str(i), {})[key] = value
    for k, v in table.items():
        if not isinstance(v, dict):
            raise ConfigError(f"learner_options[{k!r}] must be a table of options, got {v!r}")
    merged = {}
    for i in range(len(names)):
        k = str(i)
        opts = {**shared.get(k, {}), **(table.get(k) or table.get(i) or {}), **single.get(k, {})}
        if opts:
            merged[k] = opts
    unknown = [k for k in table if str(k) not in {str(i) for i in range(len(names))}]
    if unknown:
        merged.update({str(k): table[k] for k in unknown})  # JointConfig.validate names them
    if merged or "learner_options" in out:
        out["learner_options"] = merged
    return out


def option_parser(names: tuple[str, ...], key: str) -> tuple[Any, str] | None:
    """(the config type that parses `--opt key=...` text, the option name it parses it as) for a
    run of learners `names`; None where nothing takes the key (route_options then says why)."""
    from oakrl.agents import AGENTS

    if key in JointConfig.option_info():
        return JointConfig, key
    index, _, sub = key.partition(".")
    if sub and index[:1] == "l" and index[1:].isdigit():
        i = int(index[1:])
        ok = i < len(names) and sub in AGENTS[names[i]].config.option_info()
        return (AGENTS[names[i]].config, sub) if ok else None
    for n in names:
        if key in AGENTS[n].config.option_info():
            return AGENTS[n].config, key
    return None


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
