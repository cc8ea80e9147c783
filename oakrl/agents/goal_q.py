"""Goal-conditioned Q-learning for every goal at once (Kaelbling 1993, "Learning to achieve
goals"): one action-value Q(s, a, g) per goal g of a finite goal set, all of them learned
off-policy from every transition of the one stream, and acted on with no search.

The goal set: "observation entry g takes the value v" for every entry g of the observation
(Rooms-v0, one-hot cells: "be in cell g", 169 goals of which the 104 free cells are reachable).
A commanded goal (`--goal g=v`, or the goal schedule's) is one of them. The reach signal of
goal g in s' is the planner's goal score on entry g, r_g(s') = max(0, 1 - (s'_g - v)^2 / tol^2)
(oakrl/plan/goal.py); it is 1 exactly at the goal on one-hot worlds.

Values: Q(s, a, g) = E[gamma^(k-1)] for the first step k at which g is reached (reaching g
ends g's "episode"; the world's own episode ends end every goal's), so Q is in [0, 1], its
greedy policy goes to g by the shortest path, and at g it stays if some action stays there
(Q = 1) or steps off and back (Q = gamma) otherwise: the best share of steps at g.

Q is linear in the observation, Q(s, a, g) = w[g, a] . x(s): on a one-hot world it is exactly a
table over (cell, action, goal), and it runs on any flat observation.

Each call to `step` on the last transition (s, a, s') (the skeleton's Transition):
  1. for every goal g at once (one [G]-wide update, HER's relabelling taken to all goals):
        target_g = r_g(s') + gamma (1 - r_g(s')) max_a' Q(s', a', g)   (no bootstrap past the
        world's terminal state, whose observation the agent never sees: target 0 there)
        w[g, a] += lr / max(1, |x(s)|^2) (target_g - Q(s, a, g)) x(s)
     One-step Q-learning, not Q(lambda): the behaviour follows one commanded goal, so for almost
     every other goal the action taken is not greedy and Watkins' trace would be cut at once;
     a per-goal trace would also cost one table per goal. A transition cut by the time limit
     is skipped: its s' was replaced by the next episode's start, which the agent cannot tell
     from a move;
  2. the commanded goal: the fixed `goal`, or the schedule's (`goal_every` > 0) goal for this
     step; `reached` records whether it was reached in this segment;
  3. act epsilon-greedily on Q(s', ., commanded goal), ties broken at random (the table starts
     flat: argmax's first-index rule would walk into the same wall every step).

Why no store of transitions and no hindsight slots: the goal set is finite, so every
transition is relabelled for every goal the moment it happens; there is nothing to keep. The
state is the table, [G, A, D] floats (Rooms-v0: 169 x 4 x 169 x 4 bytes = 457 KB per seed),
fixed for the whole life.

The goal schedule (`goal_every` > 0): a new commanded goal every `goal_every` steps,
`I=goal_value` for an entry I drawn from `goal_pool` (a seeded draw per segment), and from step
`heldout_from` on, the entries of `goal_heldout` in turn (never commanded before). Per step the
agent reports `goal_score` (1 at the commanded goal, so a segment's mean is its share of steps
at the goal) and `goal_unreached` (1 until the commanded goal is first reached in this segment:
a segment's sum is its steps to first reach). With `--chunk goal_every` the diagnostics are per
segment. The planner takes the same goal options and, with `goal_q=true`, this table as its
search's value and prior (oakrl/agents/planner.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Self

import jax
import jax.numpy as jnp

from oakrl.agents.common import DiscreteOnly, configure
from oakrl.agents.skeleton import Learner, Start, Transition, streaming, zero_action
from oakrl.core.config import Config, RunFacts, option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.plan.goal import check_goal_table, goal_arrays, goal_reward


@dataclasses.dataclass(frozen=True)
class GoalOptions(Config):
    """A commanded goal: fixed (`goal`) or a schedule of goals; shared by goal-q and the planner."""

    goal: dict = option({}, "{observation index: value}: the commanded goal (--goal)")
    goal_tolerance: float = option(
        0.25, "r_goal = max(0, 1 - ||s' - g||^2 / tol^2) over the goal's entries", gt=0
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
            raise ConfigError(f"{self.agent_name()}'s goal schedule (goal_every > 0) needs goal_pool entries")
        if set(self.goal_pool) & set(self.goal_heldout):
            raise ConfigError("goal_heldout must not share entries with goal_pool (they are never commanded)")
        if any(i < 0 for i in (*self.goal_pool, *self.goal_heldout)):
            raise ConfigError("goal_pool and goal_heldout are observation entries (>= 0)")

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)
        check_goal_entries(cfg, math.prod(run.obs_shape))
        return cfg.replace(goal=check_goal_table(cfg.goal, math.prod(run.obs_shape)))

    @property
    def scheduled(self) -> bool:
        return self.goal_every > 0


def check_goal_entries(cfg: GoalOptions, dim: int) -> None:
    if any(i >= dim for i in (*cfg.goal_pool, *cfg.goal_heldout)):
        raise ConfigError(f"goal_pool and goal_heldout entries must be below the observation size {dim}")


def single_goal(cfg: GoalOptions) -> tuple[int, float]:
    """(entry, value) of the fixed goal, which a table over single-entry goals needs it to be."""
    if len(cfg.goal) != 1:
        raise ConfigError(
            f"{cfg.agent_name()} learns single-entry goals I=V (e.g. --goal 18=1: a cell of a "
            f"one-hot world); got {cfg.goal!r}"
        )
    (entry, value), *_ = cfg.goal.items()
    return int(entry), float(value)


def reach_value(cfg: GoalOptions) -> float:
    """v of the goal set {entry g = v}: the schedule's goal_value, or the fixed goal's value."""
    return cfg.goal_value if cfg.scheduled else single_goal(cfg)[1]


@dataclasses.dataclass(frozen=True)
class GoalQConfig(DiscreteOnly, GoalOptions):
    """Goal-q's options: the all-goals table's learning, its exploration, and the goals."""

    NAME = "goal-q"
    lr: float = option(0.5, "step size (a table's learning rate on one-hot observations)", gt=0, le=1)
    gamma: float = option(0.95, "discount per step to the goal", ge=0, lt=1)
    init_value: float = option(0.0, "Q(s, a, g) at the start, every goal (1: optimistic)", ge=0, le=1)
    relabel: bool = option(
        True, "learn every goal from each transition; false: only the goal it was commanded for"
    )
    epsilon_start: float = option(1.0, "exploration at the first step", ge=0, le=1)
    epsilon_end: float = option(0.05, "exploration after the decay", ge=0, le=1)
    exploration_steps: int | None = option(None, "steps of the decay; none: 5% of the run", ge=1)
    normalize_obs: bool = option(False, "standardise observations (off: one-hot cells stay a table)")
    scale_reward: bool = option(False, "unused: goal-q learns its goals' reach signal, not the reward")

    def validate(self) -> None:
        super().validate()
        if not self.scheduled and self.goal:
            single_goal(self)

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)
        if cfg.exploration_steps is None:
            cfg = cfg.replace(exploration_steps=max(1, int(0.05 * run.steps)))
        return cfg


class GoalQState(NamedTuple):
    """The all-goals table and the commanded goal's bookkeeping (inside the skeleton's state)."""

    w: jax.Array  # [G, A, D] float32: Q(s, a, g) = w[g, a] . x(s); G = D goals (entry g = v)
    reached: jax.Array  # [] bool: the commanded goal was reached in this segment
    schedule_seed: jax.Array  # [] uint32: the goal schedule's draws (fixed for a life)


# --- the pure pieces (the planner uses them too) --------------------------------------------


def mix(seed: jax.Array, n: jax.Array) -> jax.Array:
    """[] uint32 hash of (seed, n) (murmur3's finaliser): the schedule's draw for segment n,
    independent of the run's PRNG implementation and of the agent's key stream."""
    h = seed.astype(jnp.uint32) ^ (n.astype(jnp.uint32) * jnp.uint32(0x9E3779B9))
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def schedule_goal(cfg: GoalOptions, fixed: tuple, seed: jax.Array, step: jax.Array, dim: int):
    """(values [D], mask [D]) commanded at agent step `step` ([] int32); seed [] uint32;
    `fixed`: the fixed goal's (values, mask), used when there is no schedule."""
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


def commanded_goal(cfg: GoalOptions, seed: jax.Array, step: jax.Array, dim: int):
    """(values [D], mask [D], changed [] bool) of the goal commanded at `step`; `changed`: a new
    schedule segment starts here (the fixed goal never changes)."""
    fixed = goal_arrays(cfg.goal, dim)
    values, mask = schedule_goal(cfg, fixed, seed, step, dim)
    if not cfg.scheduled:
        return values, mask, jnp.zeros((), bool)
    return values, mask, (step % cfg.goal_every == 0) & (step > 0)


def goal_table_init(dim: int, actions: int, init_value: float) -> jax.Array:
    """[G = dim, A, dim] weights whose Q is `init_value` on every one-hot observation."""
    return jnp.full((dim, actions, dim), init_value, jnp.float32)


def goal_q_values(w: jax.Array, x: jax.Array, goal_mask: jax.Array) -> jax.Array:
    """[A] Q(x, ., g) of the goal whose entry is the one `goal_mask` [D] names; x [D]."""
    return jnp.einsum("gad,g,d->a", w, goal_mask, x)


def reach(cfg: GoalOptions, raw: jax.Array, value: float) -> jax.Array:
    """[D] r_g(s') for every goal g "entry g = value", from the raw observation s' [D]."""
    return jnp.maximum(0.0, 1.0 - jnp.square(raw - value) / cfg.goal_tolerance**2)


def all_goals_update(
    w: jax.Array,
    t: Transition,
    r: jax.Array,
    lr: float,
    gamma: float,
    x: jax.Array,
    x_next: jax.Array,
    goals: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """One Q-learning step for every goal at once on the transition (x, t.action, x_next).

    w [G, A, D]; r [G] the goals' reach signal in s'; x, x_next [D] the features of s, s';
    goals [G] (optional) 1 for the goals that learn, 0 for those that do not.
    Returns (w, delta [G]). Masked (delta 0, w unchanged) before the first transition and on a
    time-limit cut; a terminal transition of the world has target 0 for every goal.
    """
    terminated = t.ts.terminated.astype(jnp.float32)
    cut = jnp.logical_and(t.ts.truncated, jnp.logical_not(t.ts.terminated)).astype(jnp.float32)
    learn = t.learn * (1.0 - cut)
    q_next = jnp.einsum("gad,d->ga", w, x_next).max(axis=1)  # [G]
    target = (1.0 - terminated) * (r + gamma * (1.0 - r) * q_next)
    w_a = w[:, t.action, :]  # [G, D]
    delta = (target - w_a @ x) * learn
    if goals is not None:
        delta = delta * goals
    step = lr / jnp.maximum(1.0, x @ x)  # exact table step on one-hot x; bounded on dense x
    return w.at[:, t.action, :].set(w_a + step * delta[:, None] * x[None, :]), delta


def random_argmax(q: jax.Array, key: jax.Array) -> jax.Array:
    """[] int32: an index of q's maximum, uniform among ties."""
    noise = jax.random.uniform(key, q.shape)
    return jnp.argmax(jnp.where(q >= q.max() - 1e-7, noise, -1.0)).astype(jnp.int32)


def goal_q(config: GoalQConfig | None = None, **overrides) -> Agent:
    """Q-learning of every single-entry goal at once; acts toward the commanded goal."""
    cfg = configure(GoalQConfig, config, overrides)
    cfg = cfg.replace(goal=check_goal_table(cfg.goal))
    eps_steps = cfg.exploration_steps if cfg.exploration_steps is not None else 50_000

    def epsilon(t: jax.Array) -> jax.Array:
        frac = jnp.clip(t.astype(jnp.float32) / eps_steps, 0.0, 1.0)
        return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> Start:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("goal-q needs discrete actions")
        if len(obs_spec.shape) != 1:
            raise ConfigError(f"goal-q needs flat observations, got shape {tuple(obs_spec.shape)}")
        dim = obs_spec.shape[0]
        if not cfg.goal and not cfg.scheduled:
            raise ConfigError(
                "goal-q needs a commanded goal: --goal I=V, or a schedule (goal_every, goal_pool)"
            )
        check_goal_table(cfg.goal, dim)
        check_goal_entries(cfg, dim)
        state = GoalQState(
            w=goal_table_init(dim, action_spec.num_values, cfg.init_value),
            reached=jnp.zeros((), bool),
            schedule_seed=jax.random.bits(key, (), jnp.uint32),
        )
        return Start(state, zero_action(action_spec))

    value = reach_value(cfg) if (cfg.scheduled or cfg.goal) else 1.0

    def step(state: GoalQState, t: Transition, key: jax.Array):
        dim = t.obs.shape[0]
        raw = t.ts.observation.astype(jnp.float32)

        # 1. Every goal learns from (s, a, s').
        r = reach(cfg, raw, value)
        # Without relabelling (the ablation) only the goal the action was taken for learns.
        only = None if cfg.relabel else commanded_goal(cfg, state.schedule_seed, t.steps - 1, dim)[1]
        w, delta = all_goals_update(state.w, t, r, cfg.lr, cfg.gamma, t.obs, t.next_obs, only)

        # 2. The goal commanded now, and whether it has been reached in this segment.
        now_values, now_mask, changed = commanded_goal(cfg, state.schedule_seed, t.steps, dim)
        score = goal_reward(raw, now_values, now_mask, cfg.goal_tolerance)
        at_goal = score >= 1.0
        reached = jnp.where(changed, at_goal, state.reached | at_goal)

        # 3. Act epsilon-greedily toward it.
        k_tie, k_explore, k_action = jax.random.split(key, 3)
        q = goal_q_values(w, t.next_obs, now_mask)
        greedy = random_argmax(q, k_tie)
        eps = epsilon(t.steps)
        random_action = jax.random.randint(k_action, (), 0, q.shape[0], jnp.int32)
        action = jnp.where(jax.random.uniform(k_explore) < eps, random_action, greedy)

        info = {
            "td_error": jnp.sum(delta * now_mask),  # the commanded goal's
            "goal_td": jnp.mean(jnp.abs(delta)),  # every goal's, mean |delta|
            "q": q[greedy],
            "epsilon": eps,
            "goal_score": score,
            "goal_unreached": 1.0 - reached.astype(jnp.float32),
        }
        return GoalQState(w, reached, state.schedule_seed), action, info

    return streaming("goal-q", cfg, Learner(init, step))
