"""Stream AC(lambda): actor-critic from one transition at a time (Elsayed et al. 2024, Alg. 6).

Each call to `step`, read top to bottom (1 and the bookkeeping are the skeleton's):
  1. normalise the observation and scale the reward with running statistics;
  2. TD error of the critic on the last transition: delta = r + gamma (1 - done) v(s') - v(s);
  3. critic: ObGD with trace of grad v(s), kappa_value;
  4. actor: ObGD with trace of grad [log pi(a|s) + entropy * sign(delta) * H(pi(.|s))], kappa_policy;
  5. traces reset where the episode ended; the plasticity remedy, if any, after each update;
  6. act from pi(.|s') with the new parameters.
Discrete actions use a softmax policy; continuous actions a diagonal Gaussian whose standard
deviation is a softplus of a second head (as stream-x).

Steps 2-5 are `actor_critic`, shared with the agents that are stream AC plus something: an
`Actor` says what the policy network outputs, the actor's objective from that output, and how
to act (prior-ac adds a KL pull and a prior's logits; sft-tool a tool head and a memory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.agents.common import (
    ActorCriticOptions,
    Net,
    PlasticityOptions,
    configure,
    head_width,
    make_optimizer,
    net,
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep
from oakrl.learn.normalize import Normalizers
from oakrl.learn.plasticity import RemedyOptState, remedy, split_keys, with_remedy


class ACState(NamedTuple):
    """An actor-critic learner's state (inside the skeleton's StreamState); `extra`'s fields
    read through (`state.calls`)."""

    value: Any  # critic parameters (Flax pytree)
    policy: Any  # actor parameters (Flax pytree)
    value_opt: RemedyOptState  # ObGD state (critic trace, last step size) and the remedy's
    policy_opt: RemedyOptState  # the same for the actor
    extra: Any = ()  # what the Actor keeps besides (prior-ac: the prior; sft-tool: its memory)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.extra, name)


class ActorStart(NamedTuple):
    value: Any  # initial critic parameters
    policy: Any  # initial actor parameters
    prev_action: jax.Array  # a zero action
    extra: Any = ()
    norm: Normalizers | None = None  # None: fresh normalisers


class Actor(NamedTuple):
    """What an agent built on stream AC supplies. `nets(obs_shape, policy_out)` -> (v_net, p_net)."""

    # (key, obs_spec, action_spec, nets) -> ActorStart
    init: Callable[..., ActorStart]
    # (extra, t) -> what the objective and act read that does not depend on the actor's parameters
    context: Callable[[Any, Transition], Any]
    # (policy output at s [P], extra, t, delta, context) -> (objective, (entropy, aux))
    objective: Callable[..., tuple[jax.Array, tuple[jax.Array, Any]]]
    # (extra, policy params, p_net, t, aux, delta, context, key) -> (extra, policy params, action, info)
    act: Callable[..., tuple[Any, Any, jax.Array, dict]]
    # (extra, timestep) -> the timestep to learn from (a cost on the reward); None: as given
    observe: Callable[[Any, TimeStep], TimeStep] | None = None


def actor_critic(name: str, cfg: ActorCriticOptions, actor: Actor) -> Agent:
    """Stream AC(lambda)'s critic and actor updates (steps 2-5) around `actor`, in the skeleton."""
    gamma = cfg.gamma
    rem = cfg.remedy() if isinstance(cfg, PlasticityOptions) else remedy("none")
    value_opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa_value), rem)
    policy_opt = with_remedy(
        make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa_policy, "policy"), rem
    )

    def nets(obs_shape, policy_out: int) -> tuple[Net, Net]:
        return net(obs_shape, 1, cfg.hidden, cfg.sparsity), net(
            obs_shape, policy_out, cfg.hidden, cfg.sparsity
        )

    def apply(n: Net, p: Any, x: jax.Array) -> tuple[jax.Array, dict]:
        if rem.active:  # the hidden features come out of the same forward pass
            return n.apply_features(p, x)
        return n.apply(p, x), {}

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        s = actor.init(key, obs_spec, action_spec, nets)
        state = ACState(s.value, s.policy, value_opt.init(s.value), policy_opt.init(s.policy), s.extra)
        return Start(state, s.prev_action, s.norm)

    def step(state: ACState, t: Transition, key: jax.Array):
        # Network shapes are static facts of the state (no spec needed here).
        v_net, p_net = nets(t.obs.shape, head_width(state.policy))
        ctx = actor.context(state.extra, t)

        # Critic: TD error of the last transition and the gradient of v(s).
        def value_fn(p):
            out, feats = apply(v_net, p, t.obs)
            return out[0], feats

        (v_s, v_feats), g_v = jax.value_and_grad(value_fn, has_aux=True)(state.value)
        v_next = v_net.apply(state.value, t.next_obs)[0]
        delta = (t.reward + gamma * (1.0 - t.done) * v_next - v_s) * t.learn

        # Actor: gradient of the actor's objective (stream AC: log pi(a|s) + entropy * sign(delta) * H).
        def actor_objective(p):
            out, feats = apply(p_net, p, t.obs)
            objective, aux = actor.objective(out, state.extra, t, delta, ctx)
            return objective, (aux, feats)

        (_, ((ent, aux), p_feats)), g_p = jax.value_and_grad(actor_objective, has_aux=True)(state.policy)

        # No transition yet on the very first step: nothing enters the traces.
        g_v, g_p = jax.tree.map(lambda g: g * t.learn, (g_v, g_p))
        key, (k_v, k_p) = split_keys(key, rem.active, 2)
        value, v_opt, info_v = value_opt.update(
            state.value, state.value_opt, g_v, k_v, v_feats, delta=delta, reset=t.done
        )
        policy, p_opt, info_p = policy_opt.update(
            state.policy, state.policy_opt, g_p, k_p, p_feats, delta=delta, reset=t.done
        )

        # Act in s' with the parameters just learned.
        extra, policy, action, act_info = actor.act(state.extra, policy, p_net, t, aux, delta, ctx, key)
        info = {
            **{f"value_{k}": x for k, x in info_v.items()},
            **{f"policy_{k}": x for k, x in info_p.items()},
            "td_error": delta,
            "value": v_s,
            "entropy": ent,
            "step_size_value": v_opt.opt.step_size,
            "step_size_policy": p_opt.opt.step_size,
            **act_info,
        }
        return ACState(value, policy, v_opt, p_opt, extra), action, info

    observe = None
    if actor.observe is not None:
        observe = lambda state, ts: actor.observe(state.extra, ts)  # noqa: E731
    return streaming(name, cfg, Learner(init, step, observe))


@dataclasses.dataclass(frozen=True)
class StreamACConfig(PlasticityOptions, ActorCriticOptions):
    """Stream AC(lambda)'s options: the stream options, the actor-critic's, plasticity."""

    NAME = "stream-ac"
    PLASTICITY_ALWAYS_LISTED = True


def _gaussian(out: jax.Array):
    mu, pre_std = jnp.split(out, 2)
    return mu, jax.nn.softplus(pre_std)


def _gaussian_log_prob(mu, std, a):
    return jnp.sum(-0.5 * jnp.square((a - mu) / std) - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))


def _gaussian_entropy(std):
    return jnp.sum(0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(std))


def policy_actor(entropy: float) -> Actor:
    """Stream AC's own actor: softmax over discrete actions, a diagonal Gaussian over Box ones."""

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec, nets) -> ActorStart:
        k_v, k_p = jax.random.split(key)
        discrete = isinstance(action_spec, DiscreteSpec)
        out = action_spec.num_values if discrete else 2 * int(action_spec.shape[0])
        v_net, p_net = nets(obs_spec.shape, out)
        v, p = v_net.init(k_v, obs_spec.shape), p_net.init(k_p, obs_spec.shape)
        return ActorStart(v, p, zero_action(action_spec))

    def objective(out: jax.Array, extra: Any, t: Transition, delta: jax.Array, ctx: Any):
        if t.action.ndim == 0:
            logp = jax.nn.log_softmax(out)
            log_prob, ent = logp[t.action], -jnp.sum(jnp.exp(logp) * logp)
        else:
            mu, std = _gaussian(out)
            log_prob, ent = _gaussian_log_prob(mu, std, t.action), _gaussian_entropy(std)
        return log_prob + entropy * jnp.sign(delta) * ent, (ent, ())

    def act(extra, policy, p_net: Net, t: Transition, aux, delta, ctx, key: jax.Array):
        out = p_net.apply(policy, t.next_obs)
        if t.action.ndim == 0:
            action = jax.random.categorical(key, out).astype(jnp.int32)
        else:
            mu, std = _gaussian(out)
            action = mu + std * jax.random.normal(key, mu.shape)
        return extra, policy, action, {}

    return Actor(init, lambda extra, t: (), objective, act)


def stream_ac(config: StreamACConfig | None = None, **overrides) -> Agent:
    """Stream AC(lambda) for discrete or continuous (Box) actions, chosen from the action spec."""
    cfg = configure(StreamACConfig, config, overrides)
    return actor_critic("stream-ac", cfg, policy_actor(cfg.entropy))
