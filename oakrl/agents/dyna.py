"""Dyna: stream Q(lambda) + a transition model learned at every step + background planning.

Each call to `step`, read top to bottom:
  1. normalise the observation and scale the reward with running statistics;
  2. stream Q(lambda) on the real transition, exactly as `stream-q` (ObGD, Watkins' trace);
  3. the transition model learns from the same real transition (raw observations; reward,
     termination), after measuring its one-step and k-step prediction errors on it;
  4. the state the last action was taken in enters the search-control buffer with priority
     |TD error|;
  5. `planning_steps` simulated one-step Q-learning updates from model predictions, starting
     from buffer states drawn by priority (oakrl/plan/dyna.py); 0 = model-free stream Q;
  6. act epsilon-greedily in s' with the new parameters.

The model is never trained apart from the stream: it learns from every transition of the
lifetime, and so does the value function. `make_learner` (steps 1-5) is shared with the
`planner` agent, which acts by tree search instead of step 6.
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
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.config import Config, option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.normalize import Normalizers, welford_var
from oakrl.learn.obgd import obgd
from oakrl.learn.plasticity import RemedyOptState, with_remedy
from oakrl.model import HEADS, ModelState, transition_model
from oakrl.plan.dyna import PlanCarry, dyna_updates
from oakrl.plan.search_control import SearchControlState, search_control_add, search_control_init


class DynaState(NamedTuple):
    """Dyna's (and the planner's) learner state (inside the skeleton's StreamState)."""

    q: Any  # Q-network parameters (Flax pytree), one output per action
    opt: RemedyOptState  # ObGD state of the real updates (trace, last step size) and the remedy's
    plan_opt: Any  # ObGD state of the simulated updates (trace always zero between them)
    model: ModelState  # transition model parameters, optimiser state, k-step history
    control: SearchControlState  # recent states and their priorities
    prev_raw: jax.Array  # [D] the last action's observation raw and flat (what the model sees)
    prev_explored: jax.Array  # [] bool: the last action was not greedy


@dataclasses.dataclass(frozen=True)
class ModelOptions(Config):
    """What the model and background planning add to stream Q(lambda)'s options."""

    planning_steps: int = option(5, "simulated updates per real step (0: model-free)", ge=0)
    buffer_size: int = option(1024, "search control: the most recent states kept", ge=1)
    priority_alpha: float = option(
        1.0, "sampling ~ (|TD error| + 1e-3) ** alpha; 0: uniform over recent states", ge=0
    )
    model_head: str = option(
        "categorical", "next-observation head (categorical: one-hot worlds)", choices=HEADS
    )
    model_hidden: tuple[int, ...] = option((128,), "hidden widths of the model network", each_gt=0)
    model_lr: float = option(1e-3, "adam step size of the next-observation network", gt=0)
    model_kstep: int = option(5, "horizon of model_kstep_error", ge=1)

    def validate(self) -> None:
        super().validate()
        if not self.model_hidden:
            raise ConfigError(f"{self.agent_name()} model_hidden takes positive widths like 128, got ()")


@dataclasses.dataclass(frozen=True)
class DynaConfig(DiscreteOnly, PlasticityOptions, ModelOptions, EpsilonGreedyOptions):
    """Dyna's options: stream Q(lambda)'s, the model's and planning's."""

    NAME = "dyna"


class ModelLearner(NamedTuple):
    """Steps 2-5 of the module docstring, shared by `dyna` and `planner`."""

    init: Any  # (key, obs_spec, action_spec) -> Start
    learn: Any  # (state, t: Transition, key) -> (state, raw obs [D], info)
    q_values: Any  # (state, norm, raw obs [D], obs_shape) -> q [A], in the normalisers' units
    model: Any  # the TransitionModel
    model_reward: Any  # (norm, raw reward) -> reward in the units the values learn in


def make_learner(cfg: Any, name: str) -> ModelLearner:
    gamma = cfg.gamma
    opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa), cfg.remedy())
    plan_opt = obgd(cfg.lr, gamma, 0.0, cfg.kappa)
    model = transition_model(cfg.model_head, cfg.model_hidden, cfg.model_lr, cfg.sparsity, cfg.model_kstep)

    def q_net(obs_shape, actions: int):
        return net(obs_shape, actions, cfg.hidden, cfg.sparsity)

    def normalise(norm: Normalizers, raw: jax.Array, obs_shape) -> jax.Array:
        """A raw (flat) observation in the units the Q-network learns in (statistics not updated)."""
        x = raw.reshape(obs_shape)
        if cfg.normalize_obs:
            stats = norm.obs.stats
            x = (x - stats.mean) / jnp.sqrt(welford_var(stats) + 1e-8)
        return x

    def scale(norm: Normalizers, reward: jax.Array) -> jax.Array:
        if cfg.scale_reward:
            return reward / jnp.sqrt(welford_var(norm.reward.stats) + 1e-8)
        return reward

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError(f"{name} needs discrete actions")
        k_q, k_m = jax.random.split(key)
        n_actions = action_spec.num_values
        obs_dim = math.prod(obs_spec.shape)
        params = q_net(obs_spec.shape, n_actions).init(k_q, obs_spec.shape)
        state = DynaState(
            q=params,
            opt=opt.init(params),
            plan_opt=plan_opt.init(params),
            model=model.init(k_m, obs_dim, n_actions),
            control=search_control_init(cfg.buffer_size, obs_dim),
            prev_raw=jnp.zeros((obs_dim,), jnp.float32),
            prev_explored=jnp.zeros((), bool),
        )
        return Start(state, zero_action(action_spec))

    def q_values(state: DynaState, norm: Normalizers, raw: jax.Array, obs_shape) -> jax.Array:
        qn = q_net(obs_shape, head_width(state.q))
        return qn.apply(state.q, normalise(norm, raw, obs_shape))

    def learn(state: DynaState, t: Transition, key: jax.Array):
        n_actions = head_width(state.q)
        obs_shape = t.obs.shape
        qn = q_net(obs_shape, n_actions)
        ts, norm = t.ts, t.norm
        raw = ts.observation.astype(jnp.float32).reshape(-1)

        # 2. Stream Q(lambda) on the real transition (and the plasticity remedy, if any).
        key, q, opt_state, q_sa, delta, pl_info = q_lambda_update(opt, qn, state, t, gamma, key)

        # 3. The model learns from the same transition (raw observation and reward).
        model_state, model_info = model.update(
            state.model,
            state.prev_raw,
            t.action,
            ts.reward.astype(jnp.float32),
            raw,
            # A time limit is not a termination (some environments flag both at once).
            jnp.logical_and(ts.terminated, jnp.logical_not(ts.truncated)),
            t.done,
            t.has_prev,
        )

        # 4. Search control: the state just acted in, prioritised by |TD error|.
        control = search_control_add(state.control, state.prev_raw, delta, t.has_prev)

        # 5. Background planning with the model just updated.
        def q_apply(p, x_raw):
            return qn.apply(p, normalise(norm, x_raw, obs_shape))

        def model_sample(x_raw, a, k):
            pred = model.predict(model_state.params, x_raw, a)
            return scale(norm, pred.reward), model.sample(pred, k), pred.term

        planned = dyna_updates(
            PlanCarry(q, state.plan_opt, control, jnp.zeros(())),
            key,
            cfg.planning_steps,
            n_actions,
            q_apply,
            model_sample,
            plan_opt,
            gamma,
            cfg.priority_alpha,
        )
        new_state = state._replace(
            q=planned.q, opt=opt_state, plan_opt=planned.opt, model=model_state, control=planned.control
        )
        info = {
            **pl_info,
            **model_info,
            "td_error": delta,
            "q": q_sa,
            "step_size": opt_state.opt.step_size,
            "plan_td_error": planned.td_abs / max(cfg.planning_steps, 1),
        }
        return new_state, raw, info

    return ModelLearner(init, learn, q_values, model, scale)


def finish(state: DynaState, raw: jax.Array, action: jax.Array, greedy: jax.Array) -> DynaState:
    """The learner state after acting `action` in `raw` (greedy: the action a greedy policy takes)."""
    return state._replace(prev_raw=raw, prev_explored=action != greedy)


def dyna(config: DynaConfig | None = None, **overrides) -> Agent:
    """Dyna-Q with stream Q(lambda), an online transition model and prioritised search control."""
    cfg = configure(DynaConfig, config, overrides)
    learner = make_learner(cfg, "dyna")
    epsilon = epsilon_schedule(cfg)

    def step(state: DynaState, t: Transition, key: jax.Array):
        k_learn, k_explore, k_action = jax.random.split(key, 3)
        state, raw, info = learner.learn(state, t, k_learn)

        # 6. Act epsilon-greedily with the parameters just learned (and planned).
        n_actions = head_width(state.q)
        greedy = jnp.argmax(learner.q_values(state, t.norm, raw, t.obs.shape)).astype(jnp.int32)
        random_action = jax.random.randint(k_action, (), 0, n_actions, jnp.int32)
        eps = epsilon(t.steps)
        action = jnp.where(jax.random.uniform(k_explore) < eps, random_action, greedy)
        return finish(state, raw, action, greedy), action, {**info, "epsilon": eps}

    return streaming("dyna", cfg, Learner(learner.init, step))
