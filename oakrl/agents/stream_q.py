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
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.plasticity import RemedyOptState, with_remedy


class StreamQState(NamedTuple):
    """Stream Q's learner state (inside the skeleton's StreamState)."""

    q: Any  # Q-network parameters (Flax pytree), one output per action
    opt: RemedyOptState  # ObGD state (trace, last step size) and the plasticity remedy's
    prev_explored: jax.Array  # [] bool: the last action was not greedy


@dataclasses.dataclass(frozen=True)
class StreamQConfig(DiscreteOnly, PlasticityOptions, EpsilonGreedyOptions):
    """Stream Q(lambda)'s options: the stream options, kappa, the epsilon schedule, plasticity."""

    NAME = "stream-q"
    PLASTICITY_ALWAYS_LISTED = True
    # None: the paper's schedule, epsilon decays over the first 5% of the run (`resolve`).
    exploration_steps: int | None = redefault(EpsilonGreedyOptions, "exploration_steps", None)


def stream_q(config: StreamQConfig | None = None, **overrides) -> Agent:
    """Stream Q(lambda) for discrete actions."""
    cfg = configure(StreamQConfig, config, overrides)
    gamma = cfg.gamma
    opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa), cfg.remedy())
    epsilon = epsilon_schedule(cfg)

    def q_net(obs_shape, actions: int):
        return net(obs_shape, actions, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("stream-q needs discrete actions; use stream-ac for continuous ones")
        params = q_net(obs_spec.shape, action_spec.num_values).init(key, obs_spec.shape)
        return Start(
            StreamQState(q=params, opt=opt.init(params), prev_explored=jnp.zeros((), bool)),
            zero_action(action_spec),
        )

    def step(state: StreamQState, t: Transition, key: jax.Array):
        n_actions = head_width(state.q)
        qn = q_net(t.obs.shape, n_actions)

        key, q, opt_state, q_sa, delta, pl_info = q_lambda_update(opt, qn, state, t, gamma, key)

        k_explore, k_action = jax.random.split(key)
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

    return streaming("stream-q", cfg, Learner(init, step))
