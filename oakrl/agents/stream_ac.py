"""Stream AC(lambda): actor-critic from one transition at a time (Elsayed et al. 2024, Alg. 6).

Each call to `step`, read top to bottom:
  1. normalise the observation and scale the reward with running statistics;
  2. TD error of the critic on the last transition: delta = r + gamma (1 - done) v(s') - v(s);
  3. critic: ObGD with trace of grad v(s), kappa_value;
  4. actor: ObGD with trace of grad [log pi(a|s) + entropy * sign(delta) * H(pi(.|s))], kappa_policy;
  5. traces reset where the episode ended;
  6. act from pi(.|s') with the new parameters.
Discrete actions use a softmax policy; continuous actions a diagonal Gaussian whose standard
deviation is a softplus of a second head (as stream-x).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.agents.common import (
    ActorCriticOptions,
    Normalizers,
    PlasticityOptions,
    actor_critic_update,
    configure,
    head_width,
    make_optimizer,
    net,
    normalizers_init,
    preprocess,
)
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep


class StreamACState(NamedTuple):
    value: Any  # critic parameters (Flax pytree)
    policy: Any  # actor parameters (Flax pytree)
    value_opt: Any  # ObGD state: critic trace, last step size
    policy_opt: Any  # ObGD state: actor trace, last step size
    norm: Normalizers
    prev_obs: jax.Array  # [*obs_shape] normalised observation the last action was taken in
    prev_action: jax.Array  # [] int32 or [action_dim] float32
    has_prev: jax.Array  # [] bool: a transition exists to learn from
    steps: jax.Array  # [] int32
    plasticity: Any = ()  # (critic, actor) PlasticityState when a remedy or diagnostics is on


@dataclasses.dataclass(frozen=True)
class StreamACConfig(PlasticityOptions, ActorCriticOptions):
    """Stream AC(lambda)'s options: the stream options, the actor-critic's, plasticity."""

    NAME = "stream-ac"


def _gaussian(out: jax.Array):
    mu, pre_std = jnp.split(out, 2)
    return mu, jax.nn.softplus(pre_std)


def _gaussian_log_prob(mu, std, a):
    return jnp.sum(-0.5 * jnp.square((a - mu) / std) - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))


def _gaussian_entropy(std):
    return jnp.sum(0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(std))


def stream_ac(config: StreamACConfig | None = None, **overrides) -> Agent:
    """Stream AC(lambda) for discrete or continuous (Box) actions, chosen from the action spec."""
    cfg = configure(StreamACConfig, config, overrides)
    gamma, entropy = cfg.gamma, cfg.entropy
    value_opt = make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa_value)
    policy_opt = make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa_policy)
    remedy = cfg.remedy()

    def nets(obs_shape, policy_out: int):
        value = net(obs_shape, 1, cfg.hidden, cfg.sparsity)
        policy = net(obs_shape, policy_out, cfg.hidden, cfg.sparsity)
        return value, policy

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> StreamACState:
        k_v, k_p = jax.random.split(key)
        discrete = isinstance(action_spec, DiscreteSpec)
        out = action_spec.num_values if discrete else 2 * int(action_spec.shape[0])
        v_net, p_net = nets(obs_spec.shape, out)
        v, p = v_net.init(k_v, obs_spec.shape), p_net.init(k_p, obs_spec.shape)
        prev_action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros(action_spec.shape, jnp.float32)
        return StreamACState(
            value=v,
            policy=p,
            value_opt=value_opt.init(v),
            policy_opt=policy_opt.init(p),
            norm=normalizers_init(obs_spec),
            prev_obs=jnp.zeros(obs_spec.shape, jnp.float32),
            prev_action=prev_action,
            has_prev=jnp.zeros((), bool),
            steps=jnp.zeros((), jnp.int32),
            plasticity=(remedy.init(v), remedy.init(p)) if remedy.active else (),
        )

    def step(state: StreamACState, ts: TimeStep, key: jax.Array):
        # Network shapes are static facts of the state (no spec needed here).
        discrete = state.prev_action.ndim == 0
        v_net, p_net = nets(state.prev_obs.shape, head_width(state.policy))

        norm, obs, reward = preprocess(state.norm, ts, gamma, cfg.normalize_obs, cfg.scale_reward)
        done = ts.done
        learn = state.has_prev.astype(jnp.float32)

        # Critic: TD error of the last transition and the gradient of v(s).
        def value_fn(p):
            if remedy.active:  # the hidden features come out of the same forward pass
                out, feats = v_net.apply_features(p, state.prev_obs)
                return out[0], feats
            return v_net.apply(p, state.prev_obs)[0], {}

        (v_s, v_feats), g_v = jax.value_and_grad(value_fn, has_aux=True)(state.value)
        v_next = v_net.apply(state.value, obs)[0]
        delta = (reward + gamma * (1.0 - done) * v_next - v_s) * learn

        # Actor: gradient of log pi(a|s) + entropy * sign(delta) * H(pi(.|s)).
        def actor_objective(p, x, a):
            if remedy.active:
                out, feats = p_net.apply_features(p, x)
            else:
                out, feats = p_net.apply(p, x), {}
            if discrete:
                logp = jax.nn.log_softmax(out)
                log_prob, ent = logp[a], -jnp.sum(jnp.exp(logp) * logp)
            else:
                mu, std = _gaussian(out)
                log_prob, ent = _gaussian_log_prob(mu, std, a), _gaussian_entropy(std)
            return log_prob + entropy * jnp.sign(delta) * ent, (ent, feats)

        (_, (ent, p_feats)), g_p = jax.value_and_grad(actor_objective, has_aux=True)(
            state.policy, state.prev_obs, state.prev_action
        )

        # No transition yet on the very first step: nothing enters the traces.
        value, policy, v_opt, p_opt = actor_critic_update(
            value_opt, policy_opt, state, g_v, g_p, delta, done, learn
        )
        plasticity, pl_info = state.plasticity, {}
        if remedy.active:
            key, k_v, k_p = jax.random.split(key, 3)
            value, v_opt, pl_v, info_v = remedy.update(value, state.plasticity[0], v_feats, k_v, v_opt)
            policy, p_opt, pl_p, info_p = remedy.update(policy, state.plasticity[1], p_feats, k_p, p_opt)
            plasticity = (pl_v, pl_p)
            pl_info = {
                **{f"value_{k}": x for k, x in info_v.items()},
                **{f"policy_{k}": x for k, x in info_p.items()},
            }

        # Act in s' with the parameters just learned.
        out = p_net.apply(policy, obs)
        if discrete:
            action = jax.random.categorical(key, out).astype(jnp.int32)
        else:
            mu, std = _gaussian(out)
            action = mu + std * jax.random.normal(key, mu.shape)

        new_state = StreamACState(
            value=value,
            policy=policy,
            value_opt=v_opt,
            policy_opt=p_opt,
            norm=norm,
            prev_obs=obs,
            prev_action=action,
            has_prev=jnp.ones((), bool),
            steps=state.steps + 1,
            plasticity=plasticity,
        )
        info = {
            **pl_info,
            "td_error": delta,
            "value": v_s,
            "entropy": ent,
            "step_size_value": v_opt.step_size,
            "step_size_policy": p_opt.step_size,
        }
        return new_state, action, info

    return Agent("stream-ac", init, step, cfg)
