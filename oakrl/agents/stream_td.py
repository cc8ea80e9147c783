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
import optax

from oakrl.agents.common import (
    Normalizers,
    StreamLearnerOptions,
    StreamOptions,
    configure,
    make_optimizer,
    net,
    normalizers_init,
    preprocess,
    redefault,
)
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep


class ReturnBuffer(NamedTuple):
    """The last H predictions and what followed them, oldest at `pos`."""

    value: jax.Array  # [H] v(s) predicted for each of the last H transitions
    reward: jax.Array  # [H] reward of each
    cont: jax.Array  # [H] 1 - done of each
    pos: jax.Array  # [] int32 next slot to write (= the oldest entry)
    count: jax.Array  # [] int32 entries written (saturates at H)


class StreamTDState(NamedTuple):
    v: Any  # value-network parameters (Flax pytree)
    opt: Any  # ObGD state
    norm: Normalizers
    prev_obs: jax.Array
    has_prev: jax.Array
    returns: ReturnBuffer
    action_low: jax.Array  # [action_dim] or [] bounds of the random behaviour policy
    action_high: jax.Array
    steps: jax.Array


@dataclasses.dataclass(frozen=True)
class StreamTDConfig(StreamLearnerOptions):
    """Stream TD(lambda)'s options: the stream options, kappa, the value-error horizon."""

    NAME = "stream-td"
    # A prediction agent reports value error in the reward's own units.
    scale_reward: bool = redefault(StreamOptions, "scale_reward", False)
    return_horizon: int = option(500, "steps H of the return the value error compares with", ge=1)


def stream_td(config: StreamTDConfig | None = None, **overrides) -> Agent:
    """Stream TD(lambda) evaluating the uniformly random policy."""
    cfg = configure(StreamTDConfig, config, overrides)
    gamma, horizon = cfg.gamma, int(cfg.return_horizon)
    opt = make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa)
    discounts = gamma ** jnp.arange(horizon, dtype=jnp.float32)

    def v_net(obs_shape):
        return net(obs_shape, 1, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> StreamTDState:
        params = v_net(obs_spec.shape).init(key, obs_spec.shape)
        if isinstance(action_spec, DiscreteSpec):
            # Discrete: sample integers in [low, high).
            low, high = jnp.zeros((), jnp.float32), jnp.float32(action_spec.num_values)
        else:
            low = jnp.broadcast_to(jnp.float32(action_spec.low), action_spec.shape)
            high = jnp.broadcast_to(jnp.float32(action_spec.high), action_spec.shape)
        zeros = jnp.zeros((horizon,), jnp.float32)
        return StreamTDState(
            v=params,
            opt=opt.init(params),
            norm=normalizers_init(obs_spec),
            prev_obs=jnp.zeros(obs_spec.shape, jnp.float32),
            has_prev=jnp.zeros((), bool),
            returns=ReturnBuffer(zeros, zeros, zeros, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)),
            action_low=low,
            action_high=high,
            steps=jnp.zeros((), jnp.int32),
        )

    def value_error(buf: ReturnBuffer) -> jax.Array:
        """(v(s_oldest) - G_oldest)^2 once the buffer is full, else NaN."""
        order = (buf.pos + jnp.arange(horizon)) % horizon
        reward, cont = buf.reward[order], buf.cont[order]
        # Rewards after the first episode end do not belong to the oldest state's return.
        alive = jnp.concatenate([jnp.ones((1,)), jnp.cumprod(cont)[:-1]])
        ret = jnp.sum(discounts * alive * reward)
        return jnp.where(buf.count >= horizon, jnp.square(buf.value[order[0]] - ret), jnp.nan)

    def step(state: StreamTDState, ts: TimeStep, key: jax.Array):
        vn = v_net(state.prev_obs.shape)
        norm, obs, reward = preprocess(state.norm, ts, gamma, cfg.normalize_obs, cfg.scale_reward)
        done = ts.done.astype(jnp.float32)
        learn = state.has_prev.astype(jnp.float32)
        v_s, g = jax.value_and_grad(lambda p: vn.apply(p, state.prev_obs)[0])(state.v)
        v_next = vn.apply(state.v, obs)[0]
        delta = (reward + gamma * (1.0 - done) * v_next - v_s) * learn
        updates, opt_state = opt.update(
            jax.tree.map(lambda x: x * learn, g), state.opt, delta=delta, reset=ts.done
        )
        v = optax.apply_updates(state.v, updates)

        # Record the transition just learned from; the oldest entry's return is now complete.
        buf = state.returns
        write = state.has_prev
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

        new_state = StreamTDState(
            v=v,
            opt=opt_state,
            norm=norm,
            prev_obs=obs,
            has_prev=jnp.ones((), bool),
            returns=buf,
            action_low=state.action_low,
            action_high=state.action_high,
            steps=state.steps + 1,
        )
        info = {
            "td_error": delta,
            "value": v_s,
            "value_error": value_error(buf),
            "step_size": opt_state.step_size,
        }
        return new_state, action, info

    return Agent("stream-td", init, step, cfg)
