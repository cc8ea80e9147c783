"""Planning with action and option models together: Dyna-style value iteration on the main value.

At a planning state y [D] every primitive action a and every available option k is valued
through its model (see model.py), with v = theta . x:

    Q_a(y) = r_a . y + u_a . y,     u_a = m_a[:D]^T theta      (same for options)

and the main value is backed up towards the best of them:

    theta += lr * (max(max_a Q_a(y), max_k Q_k(y)) - theta . y) * y / (y . y)

With `bound`, the target is clipped to [-bound, bound] first. On one-hot features value
iteration through the learned models is a contraction (a model's predicted outcome at a state
is a discounted distribution over states, of mass at most gamma) and values stay far inside any
such bound; on dense features it need not be one, and theta can grow without limit. No true
value lies beyond max|r| / (1 - gamma), which is the bound the agent passes.

An option is available at y when it would not stop there at once and its model has had time
to learn (`mature`). The projections u (one [D] vector per model) are computed once per agent
step from theta before planning, so the planning states of one step are backed up with the
same models (Jacobi style) and sequentially (Gauss-Seidel in theta itself).

Planning also says which options it used: at each backup the best option is credited with
1 when it is (within `tol`, relative) at least as good as the best primitive action, i.e.
when planning would go that way, plus its margin over the best primitive action (what it
added to the backup). Once values have converged an option on a best path ties with the
primitive actions rather than beating them, hence the tie credit. This is the utility that
flows back to the option's feature and decides which subtasks are replaced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from oakrl.options.model import ActionModels, OptionModels

Array = jax.Array


def projections(theta: Array, act: ActionModels, opt: OptionModels) -> tuple[Array, Array]:
    """(U_act [A, D], U_opt [N, D]): reward weights plus outcome weights projected on theta,
    so that Q(y) = U . y."""
    # Every model as a vector-matrix product, theta padded with a 0 for the discount row: each
    # [D+1, D] outcome is read in place. Contracting the middle axis of all models at once
    # ("aod,o->ad") makes XLA:CPU transpose the whole tensor every step (measured: 17% of the
    # bytes an oak step touched). Summation order differs from the transposed product, so dense
    # observations can differ in the last bits; on Rooms-v0 (one-hot) the fingerprint is
    # unchanged. For the action models this form needs their update to be a dense pass
    # (model.py): next to a scatter's in-place write XLA copied the tensor three times.
    ext = jnp.concatenate([theta, jnp.zeros((1,), theta.dtype)])
    u_act = act.reward + jnp.einsum("ao,aod->ad", jnp.broadcast_to(ext, act.outcome.shape[:2]), act.outcome)
    u_opt = opt.reward + jnp.einsum("no,nod->nd", jnp.broadcast_to(ext, opt.outcome.shape[:2]), opt.outcome)
    return u_act, u_opt


def backup_values(u_act: Array, u_opt: Array, available: Array, y: Array) -> tuple[Array, Array]:
    """(Q_act [A], Q_opt [N], -inf where unavailable) at planning state y [D]."""
    return u_act @ y, jnp.where(available, u_opt @ y, -jnp.inf)


def plan(
    theta: Array,
    u_act: Array,
    u_opt: Array,
    available: Array,
    states: Array,
    lr: float,
    tol: float = 0.01,
    bound: Array | None = None,
) -> tuple[Array, Array, Array]:
    """Backs up theta at each planning state in turn.

    states [P, D]; available [P, N] (option usable at that state); bound [] (optional): each
    target is clipped to [-bound, bound] (see oak.py's `bound_targets`).
    Returns (theta, error [] mean |backup - v| before each backup, use [N] summed credit
    of the option planning would have chosen, see module docstring).
    """

    def backup(theta, inputs):
        y, avail = inputs
        q_act, q_opt = backup_values(u_act, u_opt, avail, y)
        best_act, best_opt = q_act.max(), q_opt.max()
        target = jnp.maximum(best_act, best_opt)
        if bound is not None:
            target = jnp.clip(target, -bound, bound)
        error = target - theta @ y
        theta = theta + lr * error * y / jnp.maximum(y @ y, 1e-6)
        used = best_opt >= best_act - tol * jnp.abs(best_act)
        credit = used + jnp.maximum(best_opt - best_act, 0.0)
        use = jax.nn.one_hot(jnp.argmax(q_opt), q_opt.shape[0]) * credit
        return theta, (jnp.abs(error), use)

    theta, (errors, uses) = jax.lax.scan(backup, theta, (states, available))
    return theta, errors.mean(), uses.sum(axis=0)
