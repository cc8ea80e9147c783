"""Stream Q(lambda): Watkins' Q(lambda) from one transition at a time (Elsayed et al. 2024, Alg. 5).

Each call to `step`:
  1. normalise the observation and scale the reward with running statistics;
  2. delta = r + gamma (1 - done) max_a' q(s', a') - q(s, a);
  3. ObGD with the trace of grad q(s, a); the trace is reset after an episode ends or after
     an exploratory (non-greedy) action, as Watkins' Q(lambda) requires;
  4. act epsilon-greedily in s' with the new parameters; epsilon decays linearly from
     `epsilon_start` to `epsilon_end` over `exploration_steps` steps, then stays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.agents.common import (
    DiscreteOnly,
    EpsilonGreedyOptions,
    PlasticityOptions,
    configure,
    epsilon_schedule,
    head_width,
    make_optimizer,
    net,
    q_lambda_update,
    redefault,
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.plasticity import RemedyOptState, with_remedy
from oakrl.memory.episodic import combine, memory_init, observe_reward, read, write


class StreamQState(NamedTuple):
    """Stream Q's learner state (inside the skeleton's StreamState)."""

    q: Any  # Q-network parameters (Flax pytree), one output per action
    opt: RemedyOptState  # ObGD state (trace, last step size) and the plasticity remedy's
    prev_explored: jax.Array  # [] bool: the last action was not greedy
    memory: Any = ()  # MemoryState with `memory` on (oakrl/memory/episodic.py); () (no leaves) off


@dataclasses.dataclass(frozen=True)
class StreamQConfig(DiscreteOnly, PlasticityOptions, EpsilonGreedyOptions):
    """Stream Q(lambda)'s options: the stream options, kappa, the epsilon schedule, plasticity."""

    NAME = "stream-q"
    PLASTICITY_ALWAYS_LISTED = True
    # None: the paper's schedule, epsilon decays over the first 5% of the run (`resolve`).
    exploration_steps: int | None = redefault(EpsilonGreedyOptions, "exploration_steps", None)
    memory: dict = option({}, "episodic memory {size = 512, k = 8, mix = 0.5}; {}: off")

    def validate(self) -> None:
        super().validate()
        memory_options(self.memory)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not d.get("memory"):  # runs without memory keep the config.json (and identity) they had
            d.pop("memory", None)
        return d


MEMORY_DEFAULTS = {"size": 512, "k": 8, "mix": 0.5}


def memory_options(table: Any) -> dict[str, Any]:
    """The checked `memory` option: {} (off) or {size, k, mix} with the defaults filled in."""
    if not isinstance(table, dict):
        raise ConfigError(f"memory must be a table like {{size = 512, k = 8, mix = 0.5}}, got {table!r}")
    if not table:
        return {}
    bad = sorted(set(table) - set(MEMORY_DEFAULTS))
    if bad:
        raise ConfigError(f"memory takes {', '.join(MEMORY_DEFAULTS)}; unknown: {', '.join(bad)}")
    out = {**MEMORY_DEFAULTS, **table}
    for name in ("size", "k"):
        if not isinstance(out[name], int) or isinstance(out[name], bool) or out[name] < 1:
            raise ConfigError(f"memory {name} must be a positive integer, got {out[name]!r}")
    if out["k"] > out["size"]:
        raise ConfigError(f"memory k ({out['k']}) must not exceed its size ({out['size']})")
    if not isinstance(out["mix"], int | float) or not 0 <= out["mix"] <= 1:
        raise ConfigError(f"memory mix must be in [0, 1], got {out['mix']!r}")
    return out


def stream_q(config: StreamQConfig | None = None, **overrides) -> Agent:
    """Stream Q(lambda) for discrete actions."""
    cfg = configure(StreamQConfig, config, overrides)
    gamma = cfg.gamma
    opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa), cfg.remedy())
    epsilon = epsilon_schedule(cfg)
    mem = memory_options(cfg.memory)

    def q_net(obs_shape, actions: int):
        return net(obs_shape, actions, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("stream-q needs discrete actions; use stream-ac for continuous ones")
        params = q_net(obs_spec.shape, action_spec.num_values).init(key, obs_spec.shape)
        memory = memory_init(mem["size"], math.prod(obs_spec.shape)) if mem else ()
        return Start(
            StreamQState(q=params, opt=opt.init(params), prev_explored=jnp.zeros((), bool), memory=memory),
            zero_action(action_spec),
        )

    def step(state: StreamQState, t: Transition, key: jax.Array):
        n_actions = head_width(state.q)
        qn = q_net(t.obs.shape, n_actions)

        key, q, opt_state, q_sa, delta, pl_info = q_lambda_update(opt, qn, state, t, gamma, key)

        k_explore, k_action = jax.random.split(key)
        if mem:
            return step_with_memory(state, t, q, opt_state, q_sa, delta, pl_info, qn, k_explore, k_action)
        greedy = jnp.argmax(qn.apply(q, t.next_obs)).astype(jnp.int32)
        random_action = jax.random.randint(k_action, (), 0, n_actions, jnp.int32)
        eps = epsilon(t.steps)
        explore = jax.random.uniform(k_explore) < eps
        action = jnp.where(explore, random_action, greedy)

        new_state = StreamQState(
            q=q, opt=opt_state, prev_explored=jnp.logical_and(explore, random_action != greedy)
        )
        info = {**pl_info, "td_error": delta, "q": q_sa, "epsilon": eps, "step_size": opt_state.opt.step_size}
        return new_state, action, info

    def step_with_memory(state, t, q, opt_state, q_sa, delta, pl_info, qn, k_explore, k_action):
        """Acting on the semi-parametric value: the weights learned as above; the memory gets the
        last reward, is read at s' (kNN, per action), and takes (s', action) as a new entry."""
        n_actions = head_width(q)
        memory = observe_reward(state.memory, t.reward * t.learn, t.done, gamma)
        key = t.next_obs.reshape(-1)
        q_param = qn.apply(q, t.next_obs)
        est, found, memory = read(memory, key, n_actions, mem["k"])
        q_now = combine(q_param, est, found, mem["mix"])
        greedy = jnp.argmax(q_now).astype(jnp.int32)
        random_action = jax.random.randint(k_action, (), 0, n_actions, jnp.int32)
        eps = epsilon(t.steps)
        explore = jax.random.uniform(k_explore) < eps
        action = jnp.where(explore, random_action, greedy)
        memory = write(memory, key, action)
        # Watkins' trace cut is about the target policy (greedy on the weights' q).
        explored = action != jnp.argmax(q_param).astype(jnp.int32)
        new_state = StreamQState(q=q, opt=opt_state, prev_explored=explored, memory=memory)
        info = {
            **pl_info,
            "td_error": delta,
            "q": q_sa,
            "epsilon": eps,
            "step_size": opt_state.opt.step_size,
            "memory_found": jnp.mean(found.astype(jnp.float32)),
        }
        return new_state, action, info

    return streaming("stream-q", cfg, Learner(init, step))
