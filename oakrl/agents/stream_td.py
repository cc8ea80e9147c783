"""Stream TD(lambda): prediction only. Learns the value of a fixed behaviour policy.

Each call to `step`:
  1. normalise the observation (and optionally scale the reward);
  2. delta = r + gamma (1 - done) v(s') - v(s); ObGD with the trace of grad v(s);
  3. act with the behaviour policy (uniformly random actions);
  4. report the *value error*: the squared difference between a prediction v(s_{t-H}) made
     H steps ago and the discounted return that actually followed it, truncated at H steps
     or at the episode's end. The last H rewards are kept in a ring buffer, so the error is
     exact up to gamma^H (about 0.007 of the value for gamma 0.99, H 500).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from oakrl.agents.common import (
    PlasticityOptions,
    StreamLearnerOptions,
    StreamOptions,
    configure,
    make_optimizer,
    net,
    redefault,
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.learn.plasticity import RemedyOptState, split_keys, with_remedy


class ReturnBuffer(NamedTuple):
    """The last H predictions and what followed them, oldest at `pos`."""

    value: jax.Array  # [H] v(s) predicted for each of the last H transitions
    reward: jax.Array  # [H] reward of each
    cont: jax.Array  # [H] 1 - done of each
    pos: jax.Array  # [] int32 next slot to write (= the oldest entry)
    count: jax.Array  # [] int32 entries written (saturates at H)


class StreamTDState(NamedTuple):
    """Stream TD's learner state (inside the skeleton's StreamState)."""

    v: Any  # value-network parameters (Flax pytree)
    opt: RemedyOptState  # ObGD state and the plasticity remedy's
    returns: ReturnBuffer
    action_low: jax.Array  # [action_dim] or [] bounds of the random behaviour policy
    action_high: jax.Array


@dataclasses.dataclass(frozen=True)
class StreamTDConfig(PlasticityOptions, StreamLearnerOptions):
    """Stream TD(lambda)'s options: the stream options, kappa, the value-error horizon, plasticity."""

    NAME = "stream-td"
    SWIFT_TD_FITS = True  # a linear v(s) of the behaviour policy: SwiftTD's own setting
    # A prediction agent reports value error in the reward's own units.
    scale_reward: bool = redefault(StreamOptions, "scale_reward", False)
    return_horizon: int = option(500, "steps H of the return the value error compares with", ge=1)


def stream_td(config: StreamTDConfig | None = None, **overrides) -> Agent:
    """Stream TD(lambda) evaluating the uniformly random policy."""
    cfg = configure(StreamTDConfig, config, overrides)
    gamma, horizon = cfg.gamma, int(cfg.return_horizon)
    opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa), cfg.remedy())
    discounts = gamma ** jnp.arange(horizon, dtype=jnp.float32)

    def v_net(obs_shape):
        return net(obs_shape, 1, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        params = v_net(obs_spec.shape).init(key, obs_spec.shape)
        if isinstance(action_spec, DiscreteSpec):
            # Discrete: sample integers in [low, high).
            low, high = jnp.zeros((), jnp.float32), jnp.float32(action_spec.num_values)
        else:
            low = jnp.broadcast_to(jnp.float32(action_spec.low), action_spec.shape)
            high = jnp.broadcast_to(jnp.float32(action_spec.high), action_spec.shape)
        zeros = jnp.zeros((horizon,), jnp.float32)
        state = StreamTDState(
            v=params,
            opt=opt.init(params),
            returns=ReturnBuffer(zeros, zeros, zeros, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)),
            action_low=low,
            action_high=high,
        )
        return Start(state, zero_action(action_spec))

    def value_error(buf: ReturnBuffer) -> jax.Array:
        """(v(s_oldest) - G_oldest)^2 once the buffer is full, else NaN."""
        order = (buf.pos + jnp.arange(horizon)) % horizon
        reward, cont = buf.reward[order], buf.cont[order]
        # Rewards after the first episode end do not belong to the oldest state's return.
        alive = jnp.concatenate([jnp.ones((1,)), jnp.cumprod(cont)[:-1]])
        ret = jnp.sum(discounts * alive * reward)
        return jnp.where(buf.count >= horizon, jnp.square(buf.value[order[0]] - ret), jnp.nan)

    def step(state: StreamTDState, t: Transition, key: jax.Array):
        vn = v_net(t.obs.shape)
        done, reward, learn = t.done.astype(jnp.float32), t.reward, t.learn

        def value_fn(p):
            out, feats = vn.apply_features(p, t.obs) if opt.active else (vn.apply(p, t.obs), {})
            return out[0], feats

        (v_s, feats), g = jax.value_and_grad(value_fn, has_aux=True)(state.v)
        v_next = vn.apply(state.v, t.next_obs)[0]
        delta = (reward + gamma * (1.0 - done) * v_next - v_s) * learn
        key, (k_pl,) = split_keys(key, opt.active, 1)
        v, opt_state, pl_info = opt.update(
            state.v, state.opt, jax.tree.map(lambda x: x * learn, g), k_pl, feats, delta=delta, reset=t.done
        )

        # Record the transition just learned from; the oldest entry's return is now complete.
        buf = state.returns
        write = t.has_prev
        pos = buf.pos
        buf = ReturnBuffer(
            value=jnp.where(write, buf.value.at[pos].set(v_s), buf.value),
            reward=jnp.where(write, buf.reward.at[pos].set(reward), buf.reward),
            cont=jnp.where(write, buf.cont.at[pos].set(1.0 - done), buf.cont),
            pos=jnp.where(write, (pos + 1) % horizon, pos),
            count=jnp.minimum(buf.count + write.astype(jnp.int32), horizon),
        )

        # Behaviour: uniformly random.
        u = jax.random.uniform(key, state.action_low.shape)
        action = state.action_low + u * (state.action_high - state.action_low)
        if state.action_low.ndim == 0:
            action = jnp.floor(action).astype(jnp.int32)

        info = {
            **pl_info,
            "td_error": delta,
            "value": v_s,
            "value_error": value_error(buf),
            "step_size": opt_state.opt.step_size,
        }
        return state._replace(v=v, opt=opt_state, returns=buf), action, info

    return streaming("stream-td", cfg, Learner(init, step))
