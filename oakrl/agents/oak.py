"""OaK: options and knowledge, in one never-ending loop (Sutton, Bowling & Pilarski 2022, steps 10-11).

Every call to `step` runs the whole FC-STOMP cycle once, on the transition (x, a, r, x') that
just happened (x: the flattened observation, D components; A primitive actions; N options):

  F  features      each feature's running activity is updated; the features x are the observation
                   (`features=observation`) or a learned sparse code of it (`features=code`: the
                   one-hot code of the nearest of `code_size` prototypes learned from the stream
                   every step, oakrl/learn/sparse_code.py), for worlds whose observation is not a
                   one-hot code of the state (CodedGrid-v0, Foraging-v0's image);
  S  subtasks      slot k's subtask is "collect reward, and be paid v(s) + bonus * x_{f_k}(s)
                   for stopping in s" (reward-respecting, oakrl/options/option.py; `stop_value`
                   weights the v(s) term, 0 making the options independent of v);
  O  options       all N options learn off-policy by Q(lambda) with a stopping choice;
  M  models        the taken action's model (one step) and all N option models (reward until
                   stopping, discount, features at stopping; off-policy TD(lambda));
  P  planning      the main value theta . x is backed up towards the best model value over
                   primitive actions and options at x', x and `planning_states` recent states
                   (Dyna-style value iteration with option models, oakrl/options/planning.py),
                   each target clipped to +-max|r| / (1 - gamma) (`bound_targets`);
     utility       each option's share of planning's gain (the margin by which it beat the
                   best primitive action) is a running utility, copied to its feature;
     replacement   every `replace_every` steps the least useful option older than `maturity`
                   is replaced: a new active feature, a new subtask, a fresh option and model.
                   The pools never freeze.

Then it acts: an option being executed goes on until it stops (beta), the episode ends, or
`max_option_steps`; otherwise the agent picks greedily among the A primitive actions and the
options available at x' (those that would not stop at once and are older than
`option_warmup`), all valued through their models. An option is chosen only where its model
values it above every primitive action (`ties_to_actions`, the default since session 19): an
option carries the agent to a subgoal it already knows, and taken on ties, broken at random
(`ties_to_actions=false`, the default before), it kept an agent that knows nothing yet from
exploring (benchmarks/RESULTS.md "Session 18" and "Session 19"). With probability
`epsilon` it takes a random primitive action instead (`explore_options=true`: a random action
or option; measured worse on Rooms, see benchmarks/RESULTS.md). A chosen option's first
action is its greedy action.

Everything is linear in the features x and nothing is pretrained or environment-specific:
the same defaults run Rooms-v0 and Foraging-v0. The observation is used as is (no running
normalisation: it would turn a one-hot code into a dense one); step sizes are normalised by
x . x instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.agents.common import DiscreteOnly, configure
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec, TimeStep
from oakrl.errors import ConfigError
from oakrl.learn.sparse_code import CodeState, code_init, code_update
from oakrl.options.features import FeatureStats, features_init, features_update, propose_feature
from oakrl.options.model import (
    ActionModels,
    OptionModels,
    action_models_init,
    action_models_update,
    option_models_init,
    option_models_update,
)
from oakrl.options.option import OptionPool, policy_and_stopping, pool_init, pool_reset, pool_update
from oakrl.options.planning import backup_values, plan, projections

Array = jax.Array


class OptionStats(NamedTuple):
    """What the agent knows about how its options are doing, per slot [N]."""

    usage: Array  # running fraction of steps spent executing the option
    utility: Array  # running planning gain credited to the option (see planning.py)
    duration: Array  # running mean length (steps) of its completed executions
    model_error: Array  # running mean TD error of its model (on the steps it would have acted)
    calls: Array  # int32 executions started since the slot was created


class OakState(NamedTuple):
    theta: Array  # [D] main value weights: v(s) = theta . x(s)
    act: ActionModels  # primitive action models
    pool: OptionPool  # features behind the options, option values and traces
    opt: OptionModels  # option models
    feats: FeatureStats  # activity and utility of every observation component
    stats: OptionStats
    buffer: Array  # [B, D] recent observations, the states planning backs up
    prev_obs: Array  # [D] observation the last action was taken in
    prev_action: Array  # [] int32
    executing: Array  # [] int32 option being executed, -1 when none
    exec_steps: Array  # [] int32 steps the executing option has taken
    has_prev: Array  # [] bool a transition exists to learn from
    replaced: Array  # [] int32 options replaced over the lifetime
    steps: Array  # [] int32
    # features=code: the learned code (K = code_size units over the D_obs observation components);
    # None (no arrays) for features=observation, so those states and checkpoints are unchanged.
    code: CodeState | None = None
    # bound_targets: [] the largest |reward| seen; None for runs made without it (before session
    # 20), so their checkpoints still fit.
    reward_max: Array | None = None
    # subgoal_states > 0: [N, D] the last observation in which each option's feature was on (its
    # subgoal as a state); None otherwise, so other runs' states and checkpoints are unchanged.
    subgoals: Array | None = None


@dataclasses.dataclass(frozen=True)
class OakConfig(DiscreteOnly):
    """OaK's options. Linear in the observation: no network, no stream options."""

    NAME = "oak"
    # Ties went to a random draw among actions and options until session 19 (config.json of
    # those runs does not list the option, and they resume as they were made).
    # Planning targets were unbounded until session 20 (`bound_targets`), likewise.
    PREVIOUS_DEFAULTS = {"ties_to_actions": False, "bound_targets": False}
    options: int = option(8, "option slots N (one subtask and one option each)", ge=1)
    bonus: float = option(1.0, "subtask bonus for stopping where the option's feature is on")
    stop_value: float = option(
        1.0, "weight of v(s) in the stopping value: 1 reward-respecting, 0 v-free (option.py)", ge=0, le=1
    )
    subtask_reward: float = option(
        1.0,
        "weight of the environment's reward in each subtask: 1 reward-respecting, 0 reward-ignoring "
        "(with stop_value=0: a feature-attainment / bottleneck subtask, Sutton et al. 2023)",
        ge=0,
        le=1,
    )
    gamma: float = option(0.95, "discount", ge=0, le=1)
    lamda: float = option(0.8, "trace decay lambda", ge=0, le=1)
    lr_value: float = option(1.0, "step size of the planning backups of the main value", gt=0, le=1)
    lr_model: float = option(0.5, "step size of the action and option models", gt=0, le=1)
    lr_option: float = option(0.5, "step size of the option action values", gt=0, le=1)
    epsilon: float = option(0.1, "exploration (constant: the world keeps changing)", ge=0, le=1)
    planning_states: int = option(4, "recent states backed up per step, besides x and x'", ge=1)
    subgoal_states: int = option(
        0,
        "of the planning_states, how many are the options' subgoals (the last state where each "
        "option's feature was on) instead of recent states: value iteration over the subgoals, "
        "which option models join across the world (Goal-Space Planning, Lo et al. 2024)",
        ge=0,
    )
    buffer: int = option(128, "recent observations kept for planning", ge=1)
    replace_every: int = option(1000, "steps between replacements of the least useful option", ge=1)
    maturity: int = option(2000, "an option is replaceable once this old", ge=0)
    option_warmup: int = option(500, "an option is planned with and executed once this old", ge=0)
    max_option_steps: int = option(50, "an execution is cut after this many steps", ge=1)
    utility_rate: float = option(0.001, "step size of the running utility", gt=0, le=1)
    stat_rate: float = option(0.001, "step size of the running usage, model error and activity", gt=0, le=1)
    use_options: bool = option(True, "false: options learn but are never planned with or executed (ablation)")
    execute_options: bool = option(True, "false: options are planned with but never executed (ablation)")
    explore_options: bool = option(
        False, "epsilon also draws options (temporally extended), else only actions"
    )
    ties_to_actions: bool = option(
        True,
        "an option is chosen only when its model values it above every primitive action; ties "
        "(a world where nothing is known yet) go to the actions",
    )
    bound_targets: bool = option(
        True,
        "clip every planning target to the range of any value, +-(largest |reward| seen) / (1 - "
        "gamma): value iteration through learned linear models can diverge on dense features",
    )
    features: str = option(
        "observation",
        "what x is: the observation (one-hot worlds) or code, the one-hot code of the nearest of "
        "code_size prototypes learned online (oakrl/learn/sparse_code.py)",
        choices=("observation", "code"),
    )
    code_size: int = option(64, "features=code: code units K (the features options are built on)", ge=2)
    code_rate: float = option(0.1, "features=code: step size of the winning prototype", gt=0, le=1)
    code_dead: float = option(
        0.1,
        "features=code: a unit winning less than code_dead / K of steps is dead, and re-seeded by the "
        "next input coded worse than average (1.0 frees units sooner when the code changes: RESULTS.md)",
        ge=0,
        le=1,
    )
    reset_on_surprise: float = option(
        0.0,
        "forget every option (values, model, age) when a primitive model predicted this much more "
        "reward than came: the reward has moved and the options' models still promise it; 0 never",
        ge=0,
    )
    surprise_forgets: str = option(
        "options",
        "what reset_on_surprise forgets: the options, the main value v (theta = 0: the old goal's "
        "value stops pulling the agent back, and its next moves are chosen among ties), or both",
        choices=("options", "value", "both"),
    )

    def validate(self) -> None:
        super().validate()
        if self.subgoal_states > self.planning_states:
            raise ConfigError(
                f"oak subgoal_states={self.subgoal_states} must be <= planning_states="
                f"{self.planning_states} (the subgoals take some of the planning states' places)"
            )
        if self.surprise_forgets != "options" and self.reset_on_surprise == 0:
            raise ConfigError(
                f"oak surprise_forgets={self.surprise_forgets} acts only on a surprise: set "
                "reset_on_surprise > 0 too (e.g. 0.25)"
            )

    def to_dict(self) -> dict[str, Any]:
        # The learned code's options are listed only with features=code, so that the config (and
        # identity) of every earlier oak run stays as it was and its directory still resumes.
        d = super().to_dict()
        # Options added later are listed only when set, so earlier runs' configs stay as they were.
        if d["surprise_forgets"] == "options":
            del d["surprise_forgets"]
        if d["subgoal_states"] == 0:
            del d["subgoal_states"]
        if d["features"] == "observation":
            for name in ("features", "code_size", "code_rate", "code_dead"):
                del d[name]
        return d


def oak(config: OakConfig | None = None, **overrides) -> Agent:
    """The OaK agent (discrete actions)."""
    cfg = configure(OakConfig, config, overrides)
    n_opt, bonus, gamma, lamda = cfg.options, float(cfg.bonus), cfg.gamma, cfg.lamda
    kappa = float(cfg.stop_value)
    n_plan, n_sub = cfg.planning_states, cfg.subgoal_states
    coded = cfg.features == "code"

    def init(key: Array, obs_spec: ArraySpec, action_spec: Spec) -> OakState:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("oak needs discrete actions; use stream-ac for continuous ones")
        d, n_act = int(np.prod(obs_spec.shape)), action_spec.num_values
        code = code_init(cfg.code_size, d) if coded else None
        d = cfg.code_size if coded else d
        if n_opt > d:
            what = "code_size" if coded else "observation size"
            raise ConfigError(f"oak option options must be <= the {what} {d}, got {n_opt}")
        # The first subtasks: distinct components drawn at random; nothing is known yet.
        first = jax.random.choice(key, d, (n_opt,), replace=False).astype(jnp.int32)
        zeros_n = jnp.zeros(n_opt, jnp.float32)
        return OakState(
            theta=jnp.zeros(d, jnp.float32),
            act=action_models_init(n_act, d),
            pool=pool_init(first, n_act, d),
            opt=option_models_init(n_opt, d),
            feats=features_init(d),
            stats=OptionStats(zeros_n, zeros_n, zeros_n, zeros_n, jnp.zeros(n_opt, jnp.int32)),
            buffer=jnp.zeros((cfg.buffer, d), jnp.float32),
            prev_obs=jnp.zeros(d, jnp.float32),
            prev_action=jnp.zeros((), jnp.int32),
            executing=jnp.full((), -1, jnp.int32),
            exec_steps=jnp.zeros((), jnp.int32),
            has_prev=jnp.zeros((), bool),
            replaced=jnp.zeros((), jnp.int32),
            steps=jnp.zeros((), jnp.int32),
            code=code,
            reward_max=jnp.zeros((), jnp.float32) if cfg.bound_targets else None,
            subgoals=jnp.zeros((n_opt, d), jnp.float32) if n_sub else None,
        )

    def step(state: OakState, ts: TimeStep, key: Array):
        k_feat, k_plan, k_explore, k_choice, k_tie = jax.random.split(key, 5)
        x, a, theta, pool = state.prev_obs, state.prev_action, state.theta, state.pool
        obs = ts.observation.reshape(-1).astype(jnp.float32)
        if coded:  # F, perception: the code learns from the observation, then codes it
            code, x_next = code_update(
                state.code, obs, rate=cfg.code_rate, stat_rate=cfg.stat_rate, dead=cfg.code_dead
            )
        else:
            code, x_next = state.code, obs
        reward = ts.reward.astype(jnp.float32)
        # Truncation hands us the next episode's first observation, not the true s': skip it.
        learn = (state.has_prev & ~ts.truncated).astype(jnp.float32)
        cont = 1.0 - ts.terminated.astype(jnp.float32)
        v, v_next = theta @ x, theta @ x_next

        # F: features.
        feats = features_update(state.feats, x_next, cfg.stat_rate)

        # O and M: options, their models and the action models learn from the transition.
        pi_x, beta_x, _ = policy_and_stopping(pool, x, kappa * v, bonus)
        _, beta_next, _ = policy_and_stopping(pool, x_next, kappa * v_next, bonus)
        opt, opt_error = option_models_update(
            state.opt, x, a, reward, x_next, pi_x, beta_x, beta_next, cont, learn,
            gamma=gamma, lamda=lamda, lr=cfg.lr_model, fresh=pool.age == 0,
        )  # fmt: skip
        # The subtask's own reward (the option models below still predict the true reward).
        sub_reward = reward if cfg.subtask_reward == 1.0 else cfg.subtask_reward * reward
        pool, option_delta = pool_update(
            pool, x, a, sub_reward, x_next, kappa * v, kappa * v_next, cont, learn,
            bonus=bonus, gamma=gamma, lamda=lamda, lr=cfg.lr_option,
        )  # fmt: skip
        act, act_error = action_models_update(
            state.act, x, a, reward, x_next, cont, learn, gamma=gamma, lr=cfg.lr_model
        )
        if cfg.reset_on_surprise > 0:
            # A reward that no longer comes where the one-step model expects it (the goal moved):
            # the option models and policies learned it over many steps and would keep promising
            # it for many more (RESULTS.md, OaK), so they start again, as fresh slots do; the
            # one-step models correct themselves on the next visits. Options stay out of planning
            # and acting until `option_warmup` steps have relearned them.
            surprised = learn * (state.act.reward[a] @ x - reward) > cfg.reset_on_surprise
            if cfg.surprise_forgets in ("options", "both"):
                pool = pool._replace(
                    q=jnp.where(surprised, 0.0, pool.q),
                    trace=jnp.where(surprised, 0.0, pool.trace),
                    age=jnp.where(surprised, 0, pool.age),
                )
                opt = OptionModels(*(jnp.where(surprised, 0.0, m) for m in opt))
            if cfg.surprise_forgets in ("value", "both"):
                theta = jnp.where(surprised, 0.0, theta)

        # P: plan at x', x and recent states with the action and option models together.
        buffer = state.buffer.at[state.steps % cfg.buffer].set(x_next)
        filled = jnp.minimum(state.steps + 1, cfg.buffer)
        picks = jax.random.randint(k_plan, (n_plan - n_sub,), 0, filled)
        states = jnp.concatenate([x_next[None], x[None], buffer[picks]])  # [P, D]
        subgoals = state.subgoals
        if n_sub:
            # Search control at the subgoals: each option's subgoal (the last state its feature
            # was on in) is backed up like any state, so the values of the few states that option
            # models end in stay current, and those models carry them across the world. The same
            # states are backed up with use_options=false (primitive models only): the ablation
            # differs in the models alone. An option whose feature was never on has a zero state,
            # whose backup changes nothing.
            subgoals = jnp.where((x_next[pool.feature] > 0)[:, None], x_next[None, :], subgoals)
            chosen = jax.random.randint(jax.random.fold_in(k_plan, 1), (n_sub,), 0, n_opt)
            states = jnp.concatenate([states, subgoals[chosen]])
        mature = (pool.age >= cfg.option_warmup) & bool(cfg.use_options)

        def available(y: Array) -> Array:  # [N]: would not stop at once, and old enough
            _, beta_y, _ = policy_and_stopping(pool, y, kappa * (theta @ y), bonus)
            return ~beta_y & mature

        avail = jax.vmap(available)(states)  # [P, N]
        u_act, u_opt = projections(theta, act, opt)
        reward_max, bound = state.reward_max, None
        if cfg.bound_targets:
            # No value, true or planned, lies beyond max|r| / (1 - gamma). On one-hot features the
            # learned models are contractions and never reach it (the same numbers as without the
            # bound); on dense ones value iteration through them is not, and it diverged
            # (RESULTS.md, "Session 19"). Until a reward is seen every value is 0.
            reward_max = jnp.maximum(reward_max, jnp.abs(reward))
            bound = reward_max / (1.0 - gamma) if gamma < 1 else jnp.inf
        theta, plan_error, use = plan(theta, u_act, u_opt, avail, states, cfg.lr_value, bound=bound)

        # Utility feeds back from planning to options and to the features behind them.
        stats = state.stats
        ok = jnp.isfinite(opt_error)
        stats = stats._replace(
            utility=stats.utility + cfg.utility_rate * (use - stats.utility),
            model_error=jnp.where(
                ok, stats.model_error + cfg.stat_rate * (jnp.where(ok, opt_error, 0) - stats.model_error),
                stats.model_error,
            ),
        )  # fmt: skip

        # Replacement: the least useful mature option makes way for a new feature's subtask.
        due = (state.steps + 1) % cfg.replace_every == 0
        eligible = pool.age >= cfg.maturity
        slot = jnp.argmin(jnp.where(eligible, stats.utility, jnp.inf))
        do = due & eligible.any()
        taken = jnp.zeros(x.shape[0], bool).at[pool.feature].set(True)
        feature = propose_feature(feats, taken, k_feat)
        feats = feats._replace(utility=feats.utility.at[pool.feature].set(stats.utility))
        pool = pool_reset(pool, slot, feature, do)
        # The replaced slot's models are not zeroed here (a whole pass over them for a rare
        # event): its age is 0 now, and the next step's update reads its rows as zero.
        fresh = (jnp.arange(n_opt) == slot) & do
        stats = OptionStats(*(jnp.where(fresh, jnp.zeros_like(s), s) for s in stats))
        if n_sub:  # a new feature: the slot's subgoal is unknown until that feature is on
            subgoals = jnp.where(fresh[:, None], 0.0, subgoals)
        avail_now = avail[0] & ~fresh & bool(cfg.execute_options)

        # Act: go on with the option being executed, or choose among actions and options.
        pi_next, beta_now, _ = policy_and_stopping(pool, x_next, kappa * (theta @ x_next), bonus)
        o = state.executing
        running = o >= 0
        o_safe = jnp.maximum(o, 0)
        go_on = (
            running & ~ts.done & ~beta_now[o_safe] & (state.exec_steps < cfg.max_option_steps)
            & ~fresh[o_safe]
        )  # fmt: skip
        q_act, q_opt = backup_values(u_act, u_opt, avail_now, x_next)
        scores = jnp.concatenate([q_act, q_opt])
        valid = jnp.isfinite(scores)
        noise = jax.random.uniform(k_tie, scores.shape, maxval=1e-6)
        greedy_ok = valid
        if cfg.ties_to_actions:  # the greedy choice only: explore_options still draws any option
            greedy_ok = valid & jnp.concatenate([jnp.ones_like(q_act, bool), q_opt > q_act.max()])
        greedy = jnp.argmax(jnp.where(greedy_ok, scores + noise, -jnp.inf))
        n_act = q_act.shape[0]
        explorable = valid if cfg.explore_options else jnp.arange(scores.shape[0]) < n_act
        random_choice = jax.random.categorical(k_choice, jnp.where(explorable, 0.0, -jnp.inf))
        choice = jnp.where(jax.random.uniform(k_explore) < cfg.epsilon, random_choice, greedy)
        starts = ~go_on & (choice >= n_act)
        new_o = jnp.where(go_on, o, jnp.where(starts, choice - n_act, -1)).astype(jnp.int32)
        action = jnp.where(new_o >= 0, pi_next[jnp.maximum(new_o, 0)], choice).astype(jnp.int32)

        # Bookkeeping of executions: a finished one updates its slot's mean duration.
        ended = running & ~go_on
        ended_slot = jax.nn.one_hot(o_safe, n_opt) * ended
        dur_rate = 0.05  # recent executions count most: the option keeps changing
        stats = stats._replace(
            duration=stats.duration + ended_slot * dur_rate * (state.exec_steps - stats.duration),
            calls=stats.calls + (jax.nn.one_hot(new_o, n_opt) * starts).astype(jnp.int32),
            usage=stats.usage + cfg.stat_rate * (jax.nn.one_hot(new_o, n_opt) - stats.usage),
        )
        new_state = OakState(
            theta=theta,
            act=act,
            pool=pool,
            opt=opt,
            feats=feats,
            stats=stats,
            buffer=buffer,
            prev_obs=x_next,
            prev_action=action,
            executing=new_o,
            exec_steps=jnp.where(go_on, state.exec_steps + 1, 1).astype(jnp.int32),
            has_prev=jnp.ones((), bool),
            replaced=state.replaced + do.astype(jnp.int32),
            steps=state.steps + 1,
            code=code,
            reward_max=reward_max,
            subgoals=subgoals,
        )
        info = {
            "td_error": plan_error,
            "value": v_next,
            "model_error": act_error * learn,
            "option_model_error": jnp.nanmean(opt_error),
            "option_td_error": jnp.mean(jnp.abs(option_delta)),
            "in_option": (new_o >= 0).astype(jnp.float32),
            "option_utility": stats.utility.mean(),
            "replaced": do.astype(jnp.float32),
        }
        if cfg.reset_on_surprise > 0:
            info["options_forgotten"] = surprised.astype(jnp.float32)
        if coded:
            info["code_error"] = code.mean_error
            info["code_live"] = code.live.mean()
        return new_state, action, info

    return Agent("oak", init, step, cfg)


RECORD_FIELDS = ("feature", "usage", "utility", "duration", "model_error", "calls", "age")


def option_records(state: OakState) -> dict[str, np.ndarray]:
    """Host side: the option pool of a (seed-batched) state as columns [S, N] (see RECORD_FIELDS).

    This is what a run records per chunk: which feature is behind each option and how it is doing.
    """
    s = state.stats
    cols = {
        "feature": state.pool.feature,
        "usage": s.usage,
        "utility": s.utility,
        "duration": s.duration,
        "model_error": s.model_error,
        "calls": s.calls,
        "age": state.pool.age,
    }
    if state.code is not None:
        # features=code: an option's feature is a code unit; how often that unit is the active
        # one, and how far the inputs it wins lie from its prototype (0: it codes one
        # observation exactly, as on a grid seen through a code with enough units).
        feature = np.asarray(state.pool.feature)
        cols["unit_usage"] = np.take_along_axis(np.asarray(state.code.usage), feature, axis=-1)
        cols["unit_error"] = np.take_along_axis(np.asarray(state.code.error), feature, axis=-1)
    return {k: np.asarray(v) for k, v in cols.items()}
