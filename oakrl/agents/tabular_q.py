"""Tabular Q-learning as in Calvano, Calzolari, Denicolò & Pastorello (AER 2020), section III.

One table Q[s, a] over a finite state set; each step (the paper's eq. 4 and 6):
  1. learn from the transition (s, a, r, s'):
        Q[s, a] <- (1 - alpha) Q[s, a] + alpha (r + gamma max_a' Q[s', a'])
     (no bootstrap past a terminal state; the paper's market never ends);
  2. act epsilon-greedily in s' with epsilon_t = exp(-beta t), t the periods already played
     (epsilon_0 = 1: the first action is uniform).
No traces, no normalisation, no function approximation: the paper's learner exactly. The paper
initialises Q with the discounted payoff of each action against rivals who randomise uniformly
(its eq. 8); that depends on the world, so the world supplies it
(`oakrl.envs.market.paper_q0`) through `init_table`; the agent built by `tabular_q` starts
from the constant `init_value`.

States: the observation is a vector of integers in [0, levels) (the market's last prices,
levels = the price count), read as one index in [0, levels^len) with entry 0 the fastest
digit, the same order as `oakrl.envs.market.state_index`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Self

import jax
import jax.numpy as jnp

from oakrl.agents.common import DiscreteOnly, configure
from oakrl.core.config import RunFacts, option
from oakrl.core.types import Agent, ArraySpec, Spec, TimeStep
from oakrl.errors import ConfigError

# The paper's state space is levels^len; past this many table cells a table is the wrong tool.
MAX_TABLE_CELLS = 50_000_000


class TabularQState(NamedTuple):
    q: jax.Array  # [S, A] action values
    obs: jax.Array  # [D] the observation acted on last
    action: jax.Array  # [] int32, the action taken there
    t: jax.Array  # [] int32, actions taken so far (the paper's period t)


@dataclasses.dataclass(frozen=True)
class TabularQConfig(DiscreteOnly):
    """Calvano et al.'s baseline learner: alpha 0.15, beta 4e-6, delta 0.95 (their section IV)."""

    NAME = "tabular-q"
    alpha: float = option(0.15, "learning rate", gt=0, le=1)
    gamma: float = option(0.95, "discount (the paper's delta)", ge=0, lt=1)
    beta: float = option(4e-6, "exploration decay: epsilon_t = exp(-beta t)", ge=0)
    init_value: float = option(0.0, "initial Q everywhere (the market study uses the paper's eq. 8)")
    levels: int | None = option(None, "values per observation entry; None: the action count", ge=2)

    def resolve(self, run: RunFacts) -> Self:
        out = super().resolve(run)
        levels = out.levels or run.action_spec.num_values
        dims = run.obs_shape[0] if len(run.obs_shape) == 1 else 0
        cells = levels**dims * run.action_spec.num_values
        if dims == 0 or cells > MAX_TABLE_CELLS:
            raise ConfigError(
                f"tabular-q needs a vector observation of integers in [0, levels) and a table of at "
                f"most {MAX_TABLE_CELLS} cells; got observation shape {run.obs_shape} ({cells} cells)"
            )
        return out


# --- the learner's pure pieces (the market study calls these directly) -----------------------


def obs_index(obs: jax.Array, levels: int) -> jax.Array:
    """Observation [..., D] of integers in [0, levels) -> state index [...] int32."""
    d = obs.shape[-1]
    return (obs.astype(jnp.int32) * (levels ** jnp.arange(d, dtype=jnp.int32))).sum(-1)


def q_update(
    q: jax.Array, s: jax.Array, a: jax.Array, r: jax.Array, s2: jax.Array, alpha, gamma, bootstrap=1.0
) -> tuple[jax.Array, jax.Array]:
    """(Q with Q[s, a] moved towards r + gamma max Q[s2], whether argmax Q[s] changed).

    q: [S, A]; s, a, s2: int32 scalars; r: scalar. Only row s changes, so the greedy strategy
    changes iff that row's argmax does (the paper's convergence test needs only this).
    """
    row = q[s]
    new_row = row_update(row, a, r + gamma * bootstrap * q[s2].max(), alpha)
    changed = jnp.argmax(new_row) != jnp.argmax(row)
    return q.at[s].set(new_row), changed


def row_update(row: jax.Array, a: jax.Array, target: jax.Array, alpha) -> jax.Array:
    """Row [A] of Q with entry a moved a fraction alpha towards target (the paper's eq. 4).

    The market study updates rows itself: selecting whole tables (live sessions only) each
    period copied every table every step and cost ten times the update."""
    return row.at[a].set((1.0 - alpha) * row[a] + alpha * target)


def epsilon_greedy(row: jax.Array, epsilon: jax.Array, key: jax.Array) -> jax.Array:
    """int32 action: uniform with probability epsilon, else argmax of row [A] (first on ties)."""
    return epsilon_greedy_u(row, epsilon, jax.random.uniform(key, (2,)))


def epsilon_greedy_u(row: jax.Array, epsilon: jax.Array, u: jax.Array) -> jax.Array:
    """`epsilon_greedy` from two uniforms u [2] already drawn (explore?, which action): lets a
    caller draw every learner's randomness in one call (the market study's hot loop)."""
    n = row.shape[-1]
    random_action = jnp.minimum((u[1] * n).astype(jnp.int32), n - 1)
    return jnp.where(u[0] < epsilon, random_action, jnp.argmax(row).astype(jnp.int32))


def epsilon_at(t: jax.Array, beta) -> jax.Array:
    """The paper's exploration rate exp(-beta t)."""
    return jnp.exp(-beta * t.astype(jnp.float32))


def init_table(q0: jax.Array, obs: jax.Array) -> TabularQState:
    """A state from a given table q0 [S, A] (e.g. the paper's eq. 8 init), before any action."""
    return TabularQState(q0, obs, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def tabular_q(config: TabularQConfig | None = None, **overrides) -> Agent:
    """The paper's Q-learner as an oakrl agent (learns, then acts, each step)."""
    cfg = configure(TabularQConfig, config, overrides)

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec) -> TabularQState:
        del key
        levels = cfg.levels or action_spec.num_values
        states = levels ** obs_spec.shape[-1]
        q = jnp.full((states, action_spec.num_values), cfg.init_value, jnp.float32)
        return init_table(q, jnp.zeros(obs_spec.shape, jnp.float32))

    def step(state: TabularQState, ts: TimeStep, key: jax.Array):
        levels = cfg.levels or state.q.shape[-1]
        s, s2 = obs_index(state.obs, levels), obs_index(ts.observation, levels)
        bootstrap = 1.0 - ts.terminated.astype(jnp.float32)
        q, _ = q_update(state.q, s, state.action, ts.reward, s2, cfg.alpha, cfg.gamma, bootstrap)
        learn = state.t > 0  # the first step has no transition behind it
        q = jnp.where(learn, q, state.q)
        epsilon = epsilon_at(state.t, cfg.beta)
        action = epsilon_greedy(q[s2], epsilon, key)
        td = (ts.reward + cfg.gamma * bootstrap * state.q[s2].max() - state.q[s, state.action]) * learn
        info = {"td_error": td, "q": q[s2, action], "epsilon": epsilon}
        return TabularQState(q, ts.observation, action, state.t + 1), action, info

    return Agent("tabular-q", init, step, cfg)
