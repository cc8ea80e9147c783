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
    Normalizers,
    PlasticityOptions,
    configure,
    epsilon_schedule,
    head_width,
    make_optimizer,
    net,
    normalizers_init,
    preprocess,
    q_lambda_update,
    redefault,
)
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep
from oakrl.errors import ConfigError


class StreamQState(NamedTuple):
    q: Any  # Q-network parameters (Flax pytree), one output per action
    opt: Any  # ObGD state: trace, last step size
    norm: Normalizers
    prev_obs: jax.Array  # [*obs_shape] normalised observation the last action was taken in
    prev_action: jax.Array  # [] int32
    prev_explored: jax.Array  # [] bool: the last action was not greedy
    has_prev: jax.Array  # [] bool: a transition exists to learn from
    steps: jax.Array  # [] int32
    plasticity: Any = ()  # PlasticityState when a remedy or diagnostics is on


@dataclasses.dataclass(frozen=True)
class StreamQConfig(DiscreteOnly, PlasticityOptions, EpsilonGreedyOptions):
    """Stream Q(lambda)'s options: the stream options, kappa, the epsilon schedule, plasticity."""

    NAME = "stream-q"
    # None: the paper's schedule, epsilon decays over the first 5% of the run (`resolve`).
    exploration_steps: int | None = redefault(EpsilonGreedyOptions, "exploration_steps", None)


def stream_q(config: StreamQConfig | None = None, **overrides) -> Agent:
    """Stream Q(lambda) for discrete actions."""
    cfg = configure(StreamQConfig, config, overrides)
    gamma = cfg.gamma
    opt = make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa)
    remedy = cfg.remedy()
    epsilon = epsilon_schedule(cfg)

    def q_net(obs_shape, actions: int):
        return net(obs_shape, actions, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> StreamQState:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("stream-q needs discrete actions; use stream-ac for continuous ones")
        params = q_net(obs_spec.shape, action_spec.num_values).init(key, obs_spec.shape)
        return StreamQState(
            q=params,
            opt=opt.init(params),
            norm=normalizers_init(obs_spec),
            prev_obs=jnp.zeros(obs_spec.shape, jnp.float32),
            prev_action=jnp.zeros((), jnp.int32),
            prev_explored=jnp.zeros((), bool),
            has_prev=jnp.zeros((), bool),
            steps=jnp.zeros((), jnp.int32),
            plasticity=remedy.init(params) if remedy.active else (),
        )

    def step(state: StreamQState, ts: TimeStep, key: jax.Array):
        n_actions = head_width(state.q)
        qn = q_net(state.prev_obs.shape, n_actions)
        norm, obs, reward = preprocess(state.norm, ts, gamma, cfg.normalize_obs, cfg.scale_reward)
        done = ts.done
        learn = state.has_prev.astype(jnp.float32)

        def q_fn(p):
            if remedy.active:  # the hidden features come out of the same forward pass
                out, feats = qn.apply_features(p, state.prev_obs)
                return out[state.prev_action], feats
            return qn.apply(p, state.prev_obs)[state.prev_action], {}

        bootstrap = gamma * (1.0 - done) * jnp.max(qn.apply(state.q, obs))
        reset = jnp.logical_or(done, state.prev_explored)
        q, opt_state, q_sa, delta, feats = q_lambda_update(opt, q_fn, state, bootstrap, reward, learn, reset)
        plasticity, pl_info = state.plasticity, {}
        if remedy.active:
            key, k_pl = jax.random.split(key)
            q, opt_state, plasticity, pl_info = remedy.update(q, state.plasticity, feats, k_pl, opt_state)

        k_explore, k_action = jax.random.split(key)
        greedy = jnp.argmax(qn.apply(q, obs)).astype(jnp.int32)
        random_action = jax.random.randint(k_action, (), 0, n_actions, jnp.int32)
        eps = epsilon(state.steps)
        explore = jax.random.uniform(k_explore) < eps
        action = jnp.where(explore, random_action, greedy)

        new_state = StreamQState(
            q=q,
            opt=opt_state,
            norm=norm,
            prev_obs=obs,
            prev_action=action,
            prev_explored=jnp.logical_and(explore, random_action != greedy),
            has_prev=jnp.ones((), bool),
            steps=state.steps + 1,
            plasticity=plasticity,
        )
        info = {**pl_info, "td_error": delta, "q": q_sa, "epsilon": eps, "step_size": opt_state.step_size}
        return new_state, action, info

    return Agent("stream-q", init, step, cfg)
