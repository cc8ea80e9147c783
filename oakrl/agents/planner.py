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

import math

import jax
import jax.numpy as jnp

from oakrl.agents.common import STREAM_DEFAULTS
from oakrl.agents.dyna import MODEL_DEFAULTS, DynaState, finish, make_learner
from oakrl.core.types import Agent, TimeStep
from oakrl.errors import ConfigError
from oakrl.plan.goal import check_goal_table, goal_arrays, goal_reward

DEFAULTS = dict(
    **STREAM_DEFAULTS,
    kappa=2.0,
    **{**MODEL_DEFAULTS, "planning_steps": 0},
    num_simulations=16,
    prior_temperature=0.1,  # prior logits = q / temperature
    gumbel_scale=1.0,  # 0: deterministic search (no exploration at the root)
    goal={},  # {observation index (str): value}: plan towards this instead of reward
    goal_tolerance=0.25,  # r_goal = max(0, 1 - ||s' - g||^2 / tol^2) over the goal's entries
)


def planner(**overrides) -> Agent:
    """Stream Q(lambda) + online model; acts by Gumbel MuZero search over the model."""
    cfg = {**DEFAULTS, **overrides}
    if not isinstance(cfg["num_simulations"], int) or cfg["num_simulations"] < 1:
        raise ConfigError(
            f"planner num_simulations must be a positive integer, got {cfg['num_simulations']!r}"
        )
    if not cfg["prior_temperature"] > 0 or not cfg["goal_tolerance"] > 0:
        raise ConfigError("planner prior_temperature and goal_tolerance must be > 0")
    if not cfg["gumbel_scale"] >= 0:
        raise ConfigError(f"planner gumbel_scale must be >= 0, got {cfg['gumbel_scale']!r}")
    goal = check_goal_table(cfg["goal"])
    cfg["goal"] = goal
    learner = make_learner(cfg, "planner")
    from oakrl.plan.search import tree_search  # mctx (and chex) load only when a planner is built

    model, gamma = learner.model, cfg["gamma"]

    def step(state: DynaState, ts: TimeStep, key: jax.Array):
        k_learn, k_search = jax.random.split(key)
        state, obs, raw, info = learner.learn(state, ts, k_learn)
        n_actions = int(state.q["head"]["kernel"].shape[-1])
        params = state.model.params

        if goal:
            values, mask = (jnp.asarray(x) for x in goal_arrays(goal, raw.shape[0]))

            def evaluate(emb):
                return jnp.zeros(n_actions), jnp.zeros(())

            def transition(emb, a):
                nxt = model.rollout(params, emb, a)
                return goal_reward(nxt, values, mask, cfg["goal_tolerance"]), jnp.asarray(gamma), nxt
        else:

            def evaluate(emb):
                q = learner.q_values(state, emb)
                return q / cfg["prior_temperature"], jnp.max(q)

            def transition(emb, a):
                pred = model.predict(params, emb, a)
                return learner.model_reward(state, pred.reward), gamma * (1.0 - pred.term), model.mode(pred)

        # 6. Act by tree search from s' over the model just learned.
        result = tree_search(
            k_search, raw, evaluate, transition, cfg["num_simulations"], gumbel_scale=cfg["gumbel_scale"]
        )
        greedy = jnp.argmax(learner.q_values(state, raw)).astype(jnp.int32)
        info = {**info, "search_value": result.value}
        if goal:  # how near the commanded goal the agent is now (1: on it); the run's mean is its time there
            info["goal_score"] = goal_reward(raw, values, mask, cfg["goal_tolerance"])
        return finish(state, obs, raw, result.action, greedy), result.action, info

    def init(key: jax.Array, obs_spec, action_spec) -> DynaState:
        check_goal_table(goal, math.prod(obs_spec.shape))  # indices inside this observation
        return learner.init(key, obs_spec, action_spec)

    return Agent("planner", init, step, cfg)
