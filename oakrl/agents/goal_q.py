"""Goal-conditioned stream Q(lambda): one action-value function Q(s, a, g) for every goal g,
learned from one stream, at every step, for the commanded goal and for goals relabelled in
hindsight (Kaelbling 1993 "Learning to achieve goals"; Schaul et al. 2015 UVFA; Andrychowicz
et al. 2017 HER), and acted on with no search.

A goal is the `--goal` table of oakrl/plan/goal.py: target values for some observation entries
(`18=1`: "be in cell 18" on Rooms-v0). Its reward is r_goal(s') = max(0, 1 - ||m (s' - g)||^2 /
tol^2) on the raw observation, the planner's goal score, so Q(s, a, g) is the discounted number
of steps spent at g from (s, a) (continuing: reaching g does not end anything; the world's own
episode ends do). The network reads [normalised s, m * g, m] (the goal's values and mask).

Each call to `step`:
  1. the goal store: slot 0 holds the commanded goal the last action was taken for, slots
     1..H goals the agent achieved (hindsight); invalid (empty) slots learn nothing;
  2. for every slot i (vmapped): Watkins' Q(lambda) with ObGD on the last transition with reward
     r_goal_i(s'), each with its own eligibility trace (`q_lambda_update`, stream-q's step); the
     trace of slot i is cut where the episode ended, where the action taken was not greedy for
     goal i, and where slot i's goal is replaced now. The parameters move by the mean of the
     per-goal ObGD steps (each bounded against overshooting its own target, so their mean is too);
  3. the store is written: slot 0 takes the goal commanded now (fixed, or the goal schedule's),
     and with probability `hindsight_write` the goal achieved in s' replaces a uniformly drawn
     hindsight slot (its trace starts empty). So a hindsight goal lives about H / hindsight_write
     steps: long enough for its trace to carry the reward of reaching it again back along the
     path, short enough that the store follows what the agent sees now;
  4. act epsilon-greedily on Q(s', ., commanded goal).

Why a store of achieved goals and no transition replay: a streaming agent keeps no past
transitions, so HER's "future" relabelling (a goal reached later in the same episode) is out of
reach. Instead each stored goal is learned on the live stream for hundreds of steps with its
own trace: when the agent passes through it again, the reward flows back along the trace, the
backward view of relabelling the path that led there. The store costs H goals (2 x obs floats
each) and H traces (one parameter-sized array each): memory grows with H, not with time.

The goal schedule (`goal_every` > 0): a new commanded goal every `goal_every` steps, `I=goal_value`
for an entry I drawn from `goal_pool` (a seeded draw per segment), and from step `heldout_from`
on, the entries of `goal_heldout` in turn (never commanded before). Per step the agent reports
`goal_score` (1 at the commanded goal, so a segment's mean is its share of steps at the goal)
and `goal_unreached` (1 until the commanded goal is first reached in this segment: a segment's
sum is its steps to first reach). With `--chunk goal_every` the diagnostics are per segment.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Self

import jax
import jax.numpy as jnp

from oakrl.agents.common import (
    DiscreteOnly,
    EpsilonGreedyOptions,
    configure,
    epsilon_schedule,
    head_width,
    make_optimizer,
    net,
    q_lambda_update,
    redefault,
)
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.config import RunFacts, option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.plasticity import RemedyOptState, with_remedy
from oakrl.plan.goal import check_goal_table, goal_arrays, goal_reward

ACHIEVED = ("argmax", "commanded")
GOAL_INPUTS = ("concat", "outer")


class GoalQState(NamedTuple):
    """Goal-q's learner state (inside the skeleton's StreamState). G = 1 + hindsight slots."""

    q: Any  # Q-network parameters: input [D (obs) + 2 D (goal values, mask)], one output per action
    opt: RemedyOptState  # per-slot ObGD states: every leaf [G, ...] (one trace per goal)
    prev_explored: jax.Array  # [G] bool: the last action was not greedy for slot i's goal
    goal_values: jax.Array  # [G, D] float32 m * g per slot (slot 0: the commanded goal)
    goal_mask: jax.Array  # [G, D] float32 m per slot
    valid: jax.Array  # [G] bool: the slot holds a goal
    reached: jax.Array  # [] bool: the commanded goal was reached in this segment
    schedule_seed: jax.Array  # [] uint32: the goal schedule's draws (fixed for a life)


@dataclasses.dataclass(frozen=True)
class GoalQConfig(DiscreteOnly, EpsilonGreedyOptions):
    """Goal-q's options: stream Q(lambda)'s, the goal, the hindsight store and the goal schedule."""

    NAME = "goal-q"
    exploration_steps: int | None = redefault(EpsilonGreedyOptions, "exploration_steps", None)
    goal: dict = option({}, "{observation index: value}: the commanded goal (--goal)")
    goal_tolerance: float = option(
        0.25, "r_goal = max(0, 1 - ||s' - g||^2 / tol^2) over the goal's entries", gt=0
    )
    hindsight: int = option(8, "slots of achieved goals learned alongside the commanded one", ge=0)
    hindsight_write: float = option(
        0.02, "per step, probability that s' replaces a hindsight goal", ge=0, le=1
    )
    achieved: str = option(
        "argmax",
        "achieved goal of s': its largest entry = its value (one-hot worlds), or the "
        "commanded goal's entries at their values in s'",
        choices=ACHIEVED,
    )
    goal_input: str = option(
        "concat",
        "network input: [s, m g, m], or outer(s, m g) (with hidden=() a table over (s, g) pairs)",
        choices=GOAL_INPUTS,
    )
    goal_every: int = option(0, "steps between commanded goals of the schedule; 0: the fixed goal", ge=0)
    goal_pool: tuple[int, ...] = option((), "observation entries the schedule commands (entry = goal_value)")
    goal_heldout: tuple[int, ...] = option((), "entries commanded only from heldout_from on, in turn")
    heldout_from: int = option(0, "step from which the schedule commands the held-out entries", ge=0)
    goal_value: float = option(1.0, "value the schedule's goals give their entry")

    def validate(self) -> None:
        super().validate()
        check_goal_table(self.goal)
        if self.goal_every > 0 and not self.goal_pool and not self.goal_heldout:
            raise ConfigError("goal-q's goal schedule (goal_every > 0) needs goal_pool entries to command")
        if set(self.goal_pool) & set(self.goal_heldout):
            raise ConfigError("goal_heldout must not share entries with goal_pool (they are never commanded)")
        if any(i < 0 for i in (*self.goal_pool, *self.goal_heldout)):
            raise ConfigError("goal_pool and goal_heldout are observation entries (>= 0)")

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)
        dim = math.prod(run.obs_shape)
        if any(i >= dim for i in (*cfg.goal_pool, *cfg.goal_heldout)):
            raise ConfigError(f"goal_pool and goal_heldout entries must be below the observation size {dim}")
        return cfg.replace(goal=check_goal_table(cfg.goal, dim))


class GoalNet(NamedTuple):
    """A Q network read with a goal appended to its input (the `Net` interface q_lambda_update uses)."""

    base: Any  # agents.common.Net over goal_input(D) inputs
    goal: jax.Array  # [2 D] m * g and m
    outer: bool  # input outer(s, m g) [D * D] instead of [s, m g, m] [3 D]

    def input(self, x: jax.Array) -> jax.Array:
        if self.outer:
            return jnp.outer(x, self.goal[: x.shape[0]]).ravel()
        return jnp.concatenate([x, self.goal])

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return self.base.apply(params, self.input(x))

    def apply_features(self, params: Any, x: jax.Array):
        return self.base.apply_features(params, self.input(x))


def achieved_goal(raw_obs: jax.Array, commanded_mask: jax.Array, kind: str) -> tuple[jax.Array, jax.Array]:
    """(values [D], mask [D]) of the goal that the raw observation `raw_obs` [D] achieves."""
    if kind == "argmax":
        mask = jax.nn.one_hot(jnp.argmax(raw_obs), raw_obs.shape[0], dtype=jnp.float32)
    else:
        mask = commanded_mask
    return raw_obs * mask, mask


def mix(seed: jax.Array, n: jax.Array) -> jax.Array:
    """[] uint32 hash of (seed, n) (murmur3's finaliser): the schedule's draw for segment n,
    independent of the run's PRNG implementation and of the agent's key stream."""
    h = seed.astype(jnp.uint32) ^ (n.astype(jnp.uint32) * jnp.uint32(0x9E3779B9))
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def schedule_goal(cfg: GoalQConfig, fixed: tuple, seed: jax.Array, step: jax.Array, dim: int):
    """(values [D], mask [D]) commanded at agent step `step` ([] int32); seed [] uint32."""
    if cfg.goal_every <= 0:
        return jnp.asarray(fixed[0]), jnp.asarray(fixed[1])
    segment = step // cfg.goal_every
    pool = jnp.asarray(cfg.goal_pool or cfg.goal_heldout, jnp.int32)
    entry = pool[(mix(seed, segment) % jnp.uint32(pool.shape[0])).astype(jnp.int32)]
    if cfg.goal_heldout:
        heldout = jnp.asarray(cfg.goal_heldout, jnp.int32)
        first = -(-cfg.heldout_from // cfg.goal_every)  # the first segment starting at or after it
        late = segment >= first
        entry = jnp.where(late, heldout[jnp.maximum(segment - first, 0) % heldout.shape[0]], entry)
    mask = jax.nn.one_hot(entry, dim, dtype=jnp.float32)
    return mask * cfg.goal_value, mask


def goal_q(config: GoalQConfig | None = None, **overrides) -> Agent:
    """Goal-conditioned stream Q(lambda) with hindsight goals; acts toward the commanded goal."""
    cfg = configure(GoalQConfig, config, overrides)
    goal = check_goal_table(cfg.goal)
    cfg = cfg.replace(goal=goal)
    gamma, slots = cfg.gamma, 1 + cfg.hindsight
    opt = with_remedy(make_optimizer(cfg.optimizer, cfg.lr, gamma, cfg.lamda, cfg.kappa))
    epsilon = epsilon_schedule(cfg)

    outer = cfg.goal_input == "outer"

    def in_dim(dim: int) -> int:
        return dim * dim if outer else 3 * dim

    def q_net(dim: int, actions: int):
        return net((in_dim(dim),), actions, cfg.hidden, cfg.sparsity)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("goal-q needs discrete actions")
        if len(obs_spec.shape) != 1:
            raise ConfigError(f"goal-q needs flat observations, got shape {tuple(obs_spec.shape)}")
        dim = obs_spec.shape[0]
        if not goal and cfg.goal_every <= 0:
            raise ConfigError(
                "goal-q needs a commanded goal: --goal I=V, or a schedule (goal_every, goal_pool)"
            )
        check_goal_table(goal, dim)
        if any(i >= dim for i in (*cfg.goal_pool, *cfg.goal_heldout)):
            raise ConfigError(f"goal_pool and goal_heldout entries must be below the observation size {dim}")
        k_net, k_schedule = jax.random.split(key)
        params = q_net(dim, action_spec.num_values).init(k_net, (in_dim(dim),))
        one = opt.init(params)
        sched = jax.random.bits(k_schedule, (), jnp.uint32)
        values = jnp.zeros((slots, dim), jnp.float32)
        mask = jnp.zeros((slots, dim), jnp.float32)
        fixed = goal_arrays(goal, dim)
        first_values, first_mask = schedule_goal(cfg, fixed, sched, jnp.zeros((), jnp.int32), dim)
        state = GoalQState(
            q=params,
            opt=jax.tree.map(lambda x: jnp.broadcast_to(x, (slots, *x.shape)), one),
            prev_explored=jnp.zeros(slots, bool),
            goal_values=values.at[0].set(first_values),
            goal_mask=mask.at[0].set(first_mask),
            valid=jnp.zeros(slots, bool).at[0].set(True),
            reached=jnp.zeros((), bool),
            schedule_seed=sched,
        )
        return Start(state, zero_action(action_spec))

    def step(state: GoalQState, t: Transition, key: jax.Array):
        dim = t.obs.shape[0]
        n_actions = head_width(state.q)
        base = q_net(dim, n_actions)
        raw = t.ts.observation.astype(jnp.float32)
        fixed = goal_arrays(goal, dim)
        now_values, now_mask = schedule_goal(cfg, fixed, state.schedule_seed, t.steps, dim)
        changed = jnp.any(now_values != state.goal_values[0]) | jnp.any(now_mask != state.goal_mask[0])

        # 1. Which hindsight slot (if any) the goal achieved in s' replaces after this update.
        key, k_write, k_slot = jax.random.split(key, 3)
        write = (jax.random.uniform(k_write) < cfg.hindsight_write) & (cfg.hindsight > 0) & t.has_prev
        slot = jax.random.randint(k_slot, (), 1, max(slots, 2))
        replaced = (jnp.arange(slots) == slot) & write
        replaced = replaced.at[0].set(changed)

        # 2. Watkins Q(lambda) for every slot's goal, each with its own trace; shared weights.
        def learn_one(values, mask, opt_state, explored, cut, valid):
            qn = GoalNet(base, jnp.concatenate([values, mask]), outer)
            r = goal_reward(raw, values, mask, cfg.goal_tolerance)
            tg = t._replace(reward=r, learn=t.learn * valid.astype(jnp.float32))
            s = GoalQState(
                state.q, opt_state, explored | cut, values, mask, valid, state.reached, state.schedule_seed
            )
            _, q, opt_state, q_sa, delta, _ = q_lambda_update(opt, qn, s, tg, gamma, key)
            return q, opt_state, q_sa, delta

        qs, opt_state, q_sa, delta = jax.vmap(learn_one)(
            state.goal_values, state.goal_mask, state.opt, state.prev_explored, replaced, state.valid
        )
        q = jax.tree.map(lambda old, new: old + jnp.sum(new - old, axis=0), state.q, qs)

        # 3. The store: the goal commanded now, and perhaps the goal just achieved.
        ach_values, ach_mask = achieved_goal(raw, now_mask, cfg.achieved)
        w = replaced[:, None]
        goal_values = jnp.where(w, ach_values, state.goal_values).at[0].set(now_values)
        goal_mask = jnp.where(w, ach_mask, state.goal_mask).at[0].set(now_mask)
        valid = state.valid | replaced

        # 4. Act epsilon-greedily toward the commanded goal.
        def greedy_for(values, mask):
            return jnp.argmax(
                GoalNet(base, jnp.concatenate([values, mask]), outer).apply(q, t.next_obs)
            ).astype(jnp.int32)

        greedy_all = jax.vmap(greedy_for)(goal_values, goal_mask)
        k_explore, k_action = jax.random.split(key)
        greedy = greedy_all[0]
        random_action = jax.random.randint(k_action, (), 0, n_actions, jnp.int32)
        eps = epsilon(t.steps)
        explore = jax.random.uniform(k_explore) < eps
        action = jnp.where(explore, random_action, greedy)

        score = goal_reward(raw, now_values, now_mask, cfg.goal_tolerance)
        at_goal = score >= 1.0
        reached = jnp.where(changed, at_goal, state.reached | at_goal)
        new_state = GoalQState(
            q=q,
            opt=opt_state,
            prev_explored=action != greedy_all,
            goal_values=goal_values,
            goal_mask=goal_mask,
            valid=valid,
            reached=reached,
            schedule_seed=state.schedule_seed,
        )
        hs = state.valid.at[0].set(False)
        info = {
            "td_error": delta[0],
            "q": q_sa[0],
            "epsilon": eps,
            "step_size": opt_state.opt.step_size[0],
            "goal_score": score,
            "goal_unreached": 1.0 - reached.astype(jnp.float32),
            "hindsight_td": jnp.sum(jnp.abs(delta) * hs) / jnp.maximum(jnp.sum(hs), 1),
        }
        return new_state, action, info

    return streaming("goal-q", cfg, Learner(init, step))
