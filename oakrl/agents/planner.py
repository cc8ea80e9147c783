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
and model from the real stream as usual. The goal may also come from goal-q's schedule
(`goal_every`, `goal_pool`, ...: the same options, the same draws).

With `goal_q` (single-entry goals), the planner also learns goal-q's all-goals table from the
same stream (oakrl/agents/goal_q.py) and searches with it: prior Q(s, ., g) / prior_temperature
and leaf value max_a Q(s, a, g), reward r_goal(s') and discount gamma (1 - r_goal(s')) (reaching
the goal ends its value, as the table's values are defined). This is Murphy's "plan with both
models": the goal-agnostic model and the goal-conditioned value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Self

import jax
import jax.numpy as jnp

from oakrl.agents.common import DiscreteOnly, PlasticityOptions, StreamLearnerOptions, configure, redefault
from oakrl.agents.dyna import DynaState, ModelOptions, finish, make_learner
from oakrl.agents.goal_q import (
    GoalOptions,
    all_goals_update,
    check_goal_entries,
    commanded_goal,
    goal_q_values,
    goal_table_init,
    reach,
    reach_value,
    single_goal,
)
from oakrl.agents.skeleton import Learner, Transition, streaming
from oakrl.core.config import RunFacts, option
from oakrl.core.types import Agent
from oakrl.errors import ConfigError
from oakrl.plan.goal import check_goal_table, goal_reward


class GoalPlannerState(NamedTuple):
    """The planner's state when it is commanded scheduled goals or learns goal-q's table."""

    dyna: DynaState  # values, model, search control: as without goals
    w: jax.Array  # [G, A, D] goal-q's all-goals table ([0, A, D] without goal_q)
    reached: jax.Array  # [] bool: the commanded goal was reached in this segment
    schedule_seed: jax.Array  # [] uint32: the goal schedule's draws


@dataclasses.dataclass(frozen=True)
class PlannerConfig(DiscreteOnly, PlasticityOptions, ModelOptions, StreamLearnerOptions, GoalOptions):
    """The planner's options: stream Q(lambda)'s, the model's, the search's and the goal."""

    NAME = "planner"
    planning_steps: int = redefault(ModelOptions, "planning_steps", 0)  # the search plans instead
    num_simulations: int = option(16, "search simulations per step", ge=1)
    prior_temperature: float = option(0.1, "prior logits = q / temperature", gt=0)
    gumbel_scale: float = option(1.0, "Gumbel noise at the root; 0: deterministic search", ge=0)
    goal_q: bool = option(False, "learn goal-q's all-goals table and search with it (value, prior)")
    goal_q_lr: float = option(0.5, "step size of goal-q's table", gt=0, le=1)
    goal_q_init: float = option(0.0, "goal-q's table at the start (1: optimistic)", ge=0, le=1)

    def validate(self) -> None:
        super().validate()
        if self.goal_q and not self.scheduled and self.goal:  # --goal arrives after the options
            single_goal(self)

    def resolve(self, run: RunFacts) -> Self:
        return super().resolve(run)  # indices inside this observation, values as floats

    def to_dict(self) -> dict:
        # Options the planner took after its first runs are listed only when set, so that the
        # config.json (and the identity) of a run that uses none of them stays what it was.
        d = super().to_dict()
        late = {"goal_every", "goal_pool", "goal_heldout", "heldout_from", "goal_value"}
        late |= {"goal_q", "goal_q_lr", "goal_q_init"}
        info = type(self).option_info()
        return {k: v for k, v in d.items() if k not in late or v != info[k].default}


def planner(config: PlannerConfig | None = None, **overrides) -> Agent:
    """Stream Q(lambda) + online model; acts by Gumbel MuZero search over the model."""
    cfg = configure(PlannerConfig, config, overrides)
    goal = check_goal_table(cfg.goal)
    cfg = cfg.replace(goal=goal)
    learner = make_learner(cfg, "planner")
    from oakrl.plan.search import tree_search  # mctx (and chex) load only when a planner is built

    model, gamma = learner.model, cfg.gamma
    goals = bool(goal) or cfg.scheduled
    # The state keeps its old shape (a DynaState) unless scheduled goals or goal-q need more.
    wrapped = cfg.scheduled or cfg.goal_q
    value = reach_value(cfg) if cfg.goal_q and goals else 1.0

    def step(state, t: Transition, key: jax.Array):
        inner = state.dyna if wrapped else state
        prev_raw = inner.prev_raw  # s, raw and flat (the model's units): goal-q's table reads it
        k_learn, k_search = jax.random.split(key)
        inner, raw, info = learner.learn(inner, t, k_learn)
        n_actions = int(inner.q["head"]["kernel"].shape[-1])
        params = inner.model.params

        def q_values(emb):
            return learner.q_values(inner, t.norm, emb, t.obs.shape)

        if wrapped:
            values, mask, changed = commanded_goal(cfg, state.schedule_seed, t.steps, raw.shape[0])
        elif goals:
            values, mask, changed = commanded_goal(cfg, jnp.zeros((), jnp.uint32), t.steps, raw.shape[0])
        w = None
        if cfg.goal_q:  # goal-q's table learns from the raw transition (the model's units)
            x = t.ts.observation.astype(jnp.float32)
            w, _ = all_goals_update(state.w, t, reach(cfg, x, value), cfg.goal_q_lr, gamma, prev_raw, x)

        if goals and cfg.goal_q:

            def evaluate(emb):
                q = goal_q_values(w, emb, mask)
                return q / cfg.prior_temperature, jnp.max(q)

            def transition(emb, a):
                nxt = model.rollout(params, emb, a)
                r = goal_reward(nxt, values, mask, cfg.goal_tolerance)
                return r, gamma * (1.0 - r), nxt
        elif goals:

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
        inner = finish(inner, raw, result.action, greedy)
        if goals:  # how near the commanded goal the agent is now (1: on it); the run's mean is its time there
            score = goal_reward(raw, values, mask, cfg.goal_tolerance)
            info["goal_score"] = score
        if not wrapped:
            return inner, result.action, info
        at_goal = score >= 1.0
        reached = jnp.where(changed, at_goal, state.reached | at_goal)
        info["goal_unreached"] = 1.0 - reached.astype(jnp.float32)
        new = GoalPlannerState(inner, state.w if w is None else w, reached, state.schedule_seed)
        return new, result.action, info

    def init(key: jax.Array, obs_spec, action_spec):
        dim = math.prod(obs_spec.shape)
        check_goal_table(goal, dim)  # indices inside this observation
        check_goal_entries(cfg, dim)
        if cfg.goal_q and not goals:
            raise ConfigError("planner goal_q needs a commanded goal: --goal I=V, or a goal schedule")
        if cfg.goal_q and len(obs_spec.shape) != 1:
            raise ConfigError(f"planner goal_q needs flat observations, got shape {tuple(obs_spec.shape)}")
        start = learner.init(key, obs_spec, action_spec)
        if not wrapped:
            return start
        actions = action_spec.num_values
        w = goal_table_init(dim, actions, cfg.goal_q_init) if cfg.goal_q else jnp.zeros((0, actions, dim))
        # The schedule's seed from a key of its own: the learner's draws stay what they were.
        seed = jax.random.bits(jax.random.fold_in(key, 0x60A1), (), jnp.uint32)
        return start._replace(learner=GoalPlannerState(start.learner, w, jnp.zeros((), bool), seed))

    return streaming("planner", cfg, Learner(init, step))
