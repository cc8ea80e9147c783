"""Planner: tree search over the learned model at every step; learning continues at every step.

Each call to `step`:
  1-5. learn exactly as `dyna` does (stream Q(lambda) on the real transition, the transition
       model on the same transition, search control; background planning off by default);
  6.   act by Gumbel MuZero search (mctx) from s' over the learned model: the Q-network gives
       the prior (softmax of q / prior_temperature) and the value (max q) at every node; the
       model gives reward (in the values' units), discount gamma (1 - p(termination)) and the
       next observation (its most likely one). Gumbel noise at the root is the exploration.

With a `goal` (a table {observation index: value}, e.g. from `oakrl run --goal 40=1`) the
search scores predicted observations by closeness to the goal (oakrl/plan/goal.py) instead
of predicted reward, with no value bootstrap (the values know only the environment's
reward). The same goal-agnostic model serves any goal; the agent keeps learning its values
and model from the real stream as usual.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Self

import jax
import jax.numpy as jnp

from oakrl.agents.common import DiscreteOnly, PlasticityOptions, StreamLearnerOptions, configure, redefault
from oakrl.agents.dyna import DynaState, ModelOptions, finish, make_learner
from oakrl.agents.skeleton import Learner, Transition, streaming
from oakrl.core.config import RunFacts, option
from oakrl.core.types import Agent
from oakrl.plan.goal import check_goal_table, goal_arrays, goal_reward


@dataclasses.dataclass(frozen=True)
class PlannerConfig(DiscreteOnly, PlasticityOptions, ModelOptions, StreamLearnerOptions):
    """The planner's options: stream Q(lambda)'s, the model's, the search's and the goal."""

    NAME = "planner"
    planning_steps: int = redefault(ModelOptions, "planning_steps", 0)  # the search plans instead
    num_simulations: int = option(16, "search simulations per step", ge=1)
    prior_temperature: float = option(0.1, "prior logits = q / temperature", gt=0)
    gumbel_scale: float = option(1.0, "Gumbel noise at the root; 0: deterministic search", ge=0)
    goal: dict = option({}, "{observation index: value}: plan towards this instead of reward")
    goal_tolerance: float = option(
        0.25, "r_goal = max(0, 1 - ||s' - g||^2 / tol^2) over the goal's entries", gt=0
    )

    def validate(self) -> None:
        super().validate()
        check_goal_table(self.goal)

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)  # indices inside this observation, values as floats
        return cfg.replace(goal=check_goal_table(cfg.goal, math.prod(run.obs_shape)))


def planner(config: PlannerConfig | None = None, **overrides) -> Agent:
    """Stream Q(lambda) + online model; acts by Gumbel MuZero search over the model."""
    cfg = configure(PlannerConfig, config, overrides)
    goal = check_goal_table(cfg.goal)
    cfg = cfg.replace(goal=goal)
    learner = make_learner(cfg, "planner")
    from oakrl.plan.search import tree_search  # mctx (and chex) load only when a planner is built

    model, gamma = learner.model, cfg.gamma

    def step(state: DynaState, t: Transition, key: jax.Array):
        k_learn, k_search = jax.random.split(key)
        state, raw, info = learner.learn(state, t, k_learn)
        n_actions = int(state.q["head"]["kernel"].shape[-1])
        params = state.model.params

        def q_values(emb):
            return learner.q_values(state, t.norm, emb, t.obs.shape)

        if goal:
            values, mask = (jnp.asarray(x) for x in goal_arrays(goal, raw.shape[0]))

            def evaluate(emb):
                return jnp.zeros(n_actions), jnp.zeros(())

            def transition(emb, a):
                nxt = model.rollout(params, emb, a)
                return goal_reward(nxt, values, mask, cfg.goal_tolerance), jnp.asarray(gamma), nxt
        else:

            def evaluate(emb):
                q = q_values(emb)
                return q / cfg.prior_temperature, jnp.max(q)

            def transition(emb, a):
                pred = model.predict(params, emb, a)
                return learner.model_reward(t.norm, pred.reward), gamma * (1.0 - pred.term), model.mode(pred)

        # 6. Act by tree search from s' over the model just learned.
        result = tree_search(
            k_search, raw, evaluate, transition, cfg.num_simulations, gumbel_scale=cfg.gumbel_scale
        )
        greedy = jnp.argmax(q_values(raw)).astype(jnp.int32)
        info = {**info, "search_value": result.value}
        if goal:  # how near the commanded goal the agent is now (1: on it); the run's mean is its time there
            info["goal_score"] = goal_reward(raw, values, mask, cfg.goal_tolerance)
        return finish(state, raw, result.action, greedy), result.action, info

    def init(key: jax.Array, obs_spec, action_spec):
        check_goal_table(goal, math.prod(obs_spec.shape))  # indices inside this observation
        return learner.init(key, obs_spec, action_spec)

    return streaming("planner", cfg, Learner(init, step))
