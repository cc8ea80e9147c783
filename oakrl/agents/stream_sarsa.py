"""Stream Sarsa(lambda): on-policy TD control from one transition at a time, with ObGD.

The README's example of an agent written against the streaming skeleton (oakrl/agents/
skeleton.py): this file plus one line in `AGENTS` is the whole agent. The skeleton keeps the
previous transition, normalises observations and rewards and masks the first step; the learner
below only learns and acts. Each step (Sutton & Barto 2018, section 12.7, with ObGD's bounded
step in place of a fixed alpha):
  1. a' ~ epsilon-greedy over q(s', .), with the parameters before this update;
  2. delta = r + gamma (1 - done) q(s', a') - q(s, a);
  3. ObGD with the accumulating trace of grad q(s, a), reset where the episode ended;
  4. act a'.
Unlike Watkins' Q(lambda) (stream-q) the trace is never cut after an exploratory action: Sarsa
evaluates the epsilon-greedy policy it follows.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.agents.common import (
    DiscreteOnly,
    EpsilonGreedyOptions,
    configure,
    epsilon_schedule,
    head_width,
    make_optimizer,
    net,
    redefault,
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.types import Agent, ArraySpec, Spec


class SarsaState(NamedTuple):
    q: Any  # Q-network parameters (Flax pytree), one output per action
    opt: Any  # ObGD state: trace, last step size


@dataclasses.dataclass(frozen=True)
class StreamSarsaConfig(DiscreteOnly, EpsilonGreedyOptions):
    """The stream options, kappa and the epsilon schedule (decaying over 5% of the run)."""

    NAME = "stream-sarsa"
    SWIFT_TD_FITS = True  # linear q(s, a), on-policy, unbroken traces: SwiftTD's update applies
    exploration_steps: int | None = redefault(EpsilonGreedyOptions, "exploration_steps", None)


def stream_sarsa(config: StreamSarsaConfig | None = None, **overrides) -> Agent:
    """Stream Sarsa(lambda) for discrete actions."""
    cfg = configure(StreamSarsaConfig, config, overrides)
    opt = make_optimizer(cfg.optimizer, cfg.lr, cfg.gamma, cfg.lamda, cfg.kappa)
    epsilon = epsilon_schedule(cfg)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        q = net(obs_spec.shape, action_spec.num_values, cfg.hidden, cfg.sparsity).init(key, obs_spec.shape)
        return Start(SarsaState(q, opt.init(q)), zero_action(action_spec))

    def step(state: SarsaState, t: Transition, key: jax.Array):
        n = head_width(state.q)
        qn = net(t.obs.shape, n, cfg.hidden, cfg.sparsity)
        k_explore, k_action = jax.random.split(key)
        q_next = qn.apply(state.q, t.next_obs)
        explore = jax.random.uniform(k_explore) < epsilon(t.steps)
        action = jnp.where(explore, jax.random.randint(k_action, (), 0, n), jnp.argmax(q_next))
        action = action.astype(jnp.int32)

        q_sa, grad = jax.value_and_grad(lambda p: qn.apply(p, t.obs)[t.action])(state.q)
        delta = (t.reward + cfg.gamma * (1.0 - t.done) * q_next[action] - q_sa) * t.learn
        grad = jax.tree.map(lambda g: g * t.learn, grad)  # nothing enters the trace before a transition
        updates, opt_state = opt.update(grad, state.opt, delta=delta, reset=t.done)
        info = {"td_error": delta, "q": q_sa, "step_size": opt_state.step_size}
        return SarsaState(optax.apply_updates(state.q, updates), opt_state), action, info

    return streaming("stream-sarsa", cfg, Learner(init, step))
