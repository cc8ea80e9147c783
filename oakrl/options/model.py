"""Linear models of primitive actions and of options, learned from the one stream.

Both predict, from the features x(s) [D] of the state where they start, what they lead to
(Sutton, Precup & Singh 1999; Sutton et al. 2008, linear Dyna):

  reward   r(s)  expected discounted reward collected until the end   [D] weights per model
  outcome  m(s)  expected gamma^tau [x(s_tau); 1] at the end           [D+1, D] per model

so the value of starting one at s, given the main value v(s) = theta . x(s), is

    Q(s) = r . x(s) + theta . m(s)[:D]          and m(s)[D] = E[gamma^tau], the discount.

A primitive action ends after one step (tau = 1). An option ends where it stops; its model
is a set of general value functions whose continuation is gamma * (1 - beta(s')), learned by
TD(lambda) off-policy (the option's greedy policy is the target, so the per-decision
importance ratio truncated at 1 is 1[a = pi(s)]: updates and traces happen only on the
actions the option would have taken).


The episode's terminal state ends everything with outcome 0 (its value is 0). Step sizes
are normalised by x . x (NLMS).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


def _with_one(x: Array) -> Array:
    """[D+1]: x with a constant 1 appended (its model row is the discount)."""
    return jnp.concatenate([x, jnp.ones((1,), x.dtype)])


class ActionModels(NamedTuple):
    reward: Array  # [A, D]
    outcome: Array  # [A, D+1, D]


def action_models_init(actions: int, dim: int) -> ActionModels:
    return ActionModels(
        jnp.zeros((actions, dim), jnp.float32), jnp.zeros((actions, dim + 1, dim), jnp.float32)
    )


def action_models_update(
    models: ActionModels,
    x: Array,
    action: Array,
    reward: Array,
    x_next: Array,
    cont: Array,
    learn: Array,
    *,
    gamma: float,
    lr: float,
) -> tuple[ActionModels, Array]:
    """One LMS step of the taken action's model. Returns (models, error []: |reward error| +
    mean |outcome error|, measured before the update)."""
    step = lr * learn / jnp.maximum(x @ x, 1e-6)
    d_r = reward - models.reward[action] @ x
    d_m = gamma * cont * _with_one(x_next) - models.outcome[action] @ x  # [D+1]
    # The outcome as a dense update (zero outside the taken action's rows; the same numbers as
    # the scatter for finite values): a scatter's in-place write made XLA:CPU copy and transpose
    # the whole tensor for the projection on theta (planning.py); this pass replaces both.
    new = ActionModels(
        models.reward.at[action].add(step * d_r * x),
        models.outcome
        + jax.nn.one_hot(action, models.outcome.shape[0])[:, None, None] * (step * d_m[:, None] * x[None, :]),
    )
    return new, jnp.abs(d_r) + jnp.mean(jnp.abs(d_m))


class OptionModels(NamedTuple):
    reward: Array  # [N, D] expected discounted reward until stopping
    outcome: Array  # [N, D+1, D] gamma^tau [x; 1] at stopping
    trace: Array  # [N, D] eligibility trace (shared by both predictions)


def option_models_init(options: int, dim: int) -> OptionModels:
    return OptionModels(
        jnp.zeros((options, dim), jnp.float32),
        jnp.zeros((options, dim + 1, dim), jnp.float32),
        jnp.zeros((options, dim), jnp.float32),
    )


def option_models_reset(models: OptionModels, slot: Array, do: Array) -> OptionModels:
    """Where `do`: forget everything about slot `slot` (its option has a new subtask).

    A mask over all slots. OaK itself does not call this every step: a whole pass over the
    [N, D+1, D] outcomes for an event every `replace_every` steps was ~15% of its step. It
    leaves a replaced slot's rows as they were and the next `option_models_update` reads them
    as zero (`fresh`), which gives the same numbers; see `option_models_live`."""
    return option_models_live(models, (jnp.arange(models.outcome.shape[0]) == slot) & do)


def option_models_live(models: OptionModels, fresh: Array) -> OptionModels:
    """The models as learned: the rows of `fresh` slots [N] bool (replaced since the last
    update, whose rows are stale until then) read as zero. For readers of a stored state."""
    return OptionModels(
        jnp.where(fresh[:, None], 0.0, models.reward),
        jnp.where(fresh[:, None, None], 0.0, models.outcome),
        jnp.where(fresh[:, None], 0.0, models.trace),
    )


def option_models_update(
    models: OptionModels,
    x: Array,
    action: Array,
    reward: Array,
    x_next: Array,
    pi: Array,
    beta: Array,
    beta_next: Array,
    cont: Array,
    learn: Array,
    *,
    gamma: float,
    lamda: float,
    lr: float,
    fresh: Array | None = None,
) -> tuple[OptionModels, Array]:
    """One off-policy TD(lambda) step of every option's model on (x, action, reward, x_next).

    pi [N], beta [N]: each option's greedy action and stopping at x; beta_next [N]: its
    stopping at x_next. fresh [N] bool (optional): slots replaced since the last update, whose
    rows are read as zero (a reset deferred to this pass over the models). Returns (models,
    error [N]: |reward error| + mean |outcome error| before the update, NaN for options that
    would not have taken `action`).
    """
    reward_w, outcome, old_trace = models
    # Two matrix-vector products, not one product with two columns: XLA:CPU emits a tiled loop
    # for the former and a generic one for the latter, which took 865 us of a traced 8-seed
    # step against 350 + 314 for the two (benchmarks/RESULTS.md, "Session 17"). Kept stacked:
    # unstacked, the masking below compiled into other last bits on multi-hot observations.
    m_both = jnp.stack([outcome @ x_next, outcome @ x], axis=-1)  # [N, D+1, 2]
    if fresh is not None:
        gone = fresh.astype(bool)
        reward_w = jnp.where(gone[:, None], 0.0, reward_w)
        old_trace = jnp.where(gone[:, None], 0.0, old_trace)
        m_both = jnp.where(gone[:, None, None], 0.0, m_both)
        outcome = jnp.where(gone[:, None, None], 0.0, outcome)  # fuses into the update's pass
    m_next, m_now = m_both[..., 0], m_both[..., 1]
    rho = (pi == action).astype(jnp.float32)  # [N] truncated importance ratio
    # Returns that flowed through x continue only if the option did not stop at x.
    carry = gamma * lamda * (1.0 - beta.astype(jnp.float32))
    trace = rho[:, None] * (carry[:, None] * old_trace + x[None, :])
    go_on = gamma * cont * (1.0 - beta_next.astype(jnp.float32))  # [N]
    stop = gamma * cont * beta_next.astype(jnp.float32)
    d_r = reward + go_on * (reward_w @ x_next) - reward_w @ x  # [N]
    d_m = stop[:, None] * _with_one(x_next)[None, :] + go_on[:, None] * m_next - m_now  # [N, D+1]
    step = lr * learn / jnp.maximum(x @ x, 1e-6)
    new = OptionModels(
        reward_w + step * d_r[:, None] * trace,
        outcome + step * d_m[:, :, None] * trace[:, None, :],
        trace * learn * cont,
    )
    error = jnp.where(rho > 0, jnp.abs(d_r) + jnp.mean(jnp.abs(d_m), axis=-1), jnp.nan)
    return new, error
