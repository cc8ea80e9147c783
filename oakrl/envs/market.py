"""Market-v0: Calvano, Calzolari, Denicolò & Pastorello (AER 2020)'s repeated Bertrand oligopoly.

N sellers (2 by default) of differentiated goods set prices every period, all at once. Demand
is logit (the paper's section II, eq. 1): seller i sells

    q_i = exp((a_i - p_i) / mu) / (sum_j exp((a_j - p_j) / mu) + exp(a_0 / mu))

and earns the period's profit pi_i = (p_i - c_i) q_i, its reward. Prices come from a grid of
m points (the paper's section II.B): equally spaced over

    [p^N - xi (p^M - p^N),  p^M + xi (p^M - p^N)]

where p^N is the one-shot Bertrand-Nash price and p^M the price that maximises the sellers'
joint profit, both with continuous prices (computed here, per seller). The state is last
period's prices (memory k = 1), every seller sees all of them (a shared view), and the world is
continuing: it never resets.

The baseline (the paper's section IV): n = 2, c_i = 1, a_i = 2 (a_i - c_i = 1), a_0 = 0,
mu = 1/4, m = 15, xi = 0.1; the sellers' discount delta = 0.95 is the learners', not the
world's. p^N ~ 1.473, p^M ~ 1.925 (computed by `market_params`, checked in tests/test_market.py).
Asymmetric costs or qualities are `market_params(c=(1.0, 0.9))` etc.

Protocol (oakrl/envs/multi.py): actions [N] int32 price indices; observations [N, N] float32,
row i = every seller's last price index (the same for all); rewards [N] profits;
info: task (0), price (mean price this period), profit_gain (mean over sellers of
Delta_i = (pi_i - pi^N_i) / (pi^M_i - pi^N_i), the paper's profit gain, section V.A).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import ArraySpec, DiscreteSpec
from oakrl.envs.multi import MultiEnvHandle
from oakrl.errors import ConfigError

Array = jax.Array


class MarketParams(NamedTuple):
    """The market, N sellers and m prices each (float32 arrays, a pytree: vmappable)."""

    a: Array  # [N] product quality indices a_i
    a0: Array  # [] outside good's index a_0
    mu: Array  # [] horizontal differentiation (logit scale)
    c: Array  # [N] marginal costs
    prices: Array  # [N, m] each seller's price grid
    nash_price: Array  # [N] one-shot Bertrand-Nash prices (continuous)
    monopoly_price: Array  # [N] joint-profit-maximising prices (continuous)
    nash_profit: Array  # [N] per-period profits at the Nash prices
    monopoly_profit: Array  # [N] per-period profits at the monopoly prices


class MarketState(NamedTuple):
    last: Array  # [N] int32, last period's price indices (the state, memory one)
    time: Array  # [] int32, periods played


# --- demand and profit (host numpy float64 for the equilibria, jnp for the world) -------------


def _demand_np(p: np.ndarray, a: np.ndarray, a0: float, mu: float) -> np.ndarray:
    e = np.exp((a - p) / mu)
    return e / (e.sum() + np.exp(a0 / mu))


def demand(p: Array, params: MarketParams) -> Array:
    """Logit demand [N] at prices p [N] (the paper's eq. 1)."""
    e = jnp.exp((params.a - p) / params.mu)
    return e / (e.sum(-1, keepdims=True) + jnp.exp(params.a0 / params.mu))


def profits(p: Array, params: MarketParams) -> Array:
    """Per-period profits [N] at prices p [N]: (p_i - c_i) q_i."""
    return (p - params.c) * demand(p, params)


def _nash(a: np.ndarray, a0: float, mu: float, c: np.ndarray) -> np.ndarray:
    """One-shot Nash prices: each seller's first-order condition p_i = c_i + mu / (1 - q_i),
    iterated to its fixed point (a contraction for logit demand)."""
    p = c + mu
    for _ in range(10_000):
        q = _demand_np(p, a, a0, mu)
        new = c + mu / (1.0 - q)
        if np.max(np.abs(new - p)) < 1e-13:
            return new
        p = new
    raise RuntimeError("Nash prices did not converge")


def _monopoly(a: np.ndarray, a0: float, mu: float, c: np.ndarray) -> np.ndarray:
    """Joint-profit-maximising prices. With logit demand the optimal markups are equal across
    products: p_i - c_i = m with m = mu / (1 - sum_j q_j) (first-order conditions of
    sum_j (p_j - c_j) q_j), solved as a fixed point in the common markup m."""
    m = mu
    for _ in range(100_000):
        q = _demand_np(c + m, a, a0, mu)
        new = mu / (1.0 - q.sum())
        if abs(new - m) < 1e-13:
            return c + new
        m = 0.5 * (m + new)  # damped: the plain iteration oscillates for small a_0
    raise RuntimeError("monopoly prices did not converge")


def market_params(
    n: int = 2,
    m: int = 15,
    xi: float = 0.1,
    a: float | tuple[float, ...] = 2.0,
    a0: float = 0.0,
    c: float | tuple[float, ...] = 1.0,
    mu: float = 0.25,
) -> MarketParams:
    """The market's params; the defaults are the paper's baseline (section IV)."""
    if n < 1 or m < 2:
        raise ConfigError(f"Market needs n >= 1 sellers and m >= 2 prices, got n={n}, m={m}")
    if mu <= 0:
        raise ConfigError(f"Market's mu must be > 0, got {mu}")
    av = np.broadcast_to(np.asarray(a, np.float64), (n,)).copy()
    cv = np.broadcast_to(np.asarray(c, np.float64), (n,)).copy()
    pn, pm = _nash(av, a0, mu, cv), _monopoly(av, a0, mu, cv)
    lo, hi = pn - xi * (pm - pn), pm + xi * (pm - pn)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, m)[None, :]
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return MarketParams(
        a=f32(av),
        a0=f32(a0),
        mu=f32(mu),
        c=f32(cv),
        prices=f32(grid),
        nash_price=f32(pn),
        monopoly_price=f32(pm),
        nash_profit=f32((pn - cv) * _demand_np(pn, av, a0, mu)),
        monopoly_profit=f32((pm - cv) * _demand_np(pm, av, a0, mu)),
    )


def profit_gain(pi: Array, params: MarketParams) -> Array:
    """Delta = (pi - pi^N) / (pi^M - pi^N), per seller (the paper's section V.A)."""
    return (pi - params.nash_profit) / (params.monopoly_profit - params.nash_profit)


def state_index(last: Array, m: int) -> Array:
    """Joint price indices [..., N] -> one int32 state in [0, m^N) (seller 0 the fastest digit)."""
    n = last.shape[-1]
    return (last.astype(jnp.int32) * (m ** jnp.arange(n, dtype=jnp.int32))).sum(-1)


def joint_profits_table(params: MarketParams) -> Array:
    """Profits of every joint action, [m]*N + [N]: table[a_0, ..., a_{N-1}, i]."""
    n, m = params.prices.shape
    idx = jnp.stack(jnp.meshgrid(*[jnp.arange(m)] * n, indexing="ij"), -1).reshape(-1, n)
    p = params.prices[jnp.arange(n), idx]  # [m^N, N]
    return jax.vmap(profits, (0, None))(p, params).reshape((m,) * n + (n,))


class Market:
    """The world, gymnax style: pure `reset` and `step` over `MarketParams`."""

    def __init__(self, num_sellers: int = 2, num_prices: int = 15):
        self.num_learners = num_sellers
        self.num_prices = num_prices

    @property
    def default_params(self) -> MarketParams:
        return market_params(self.num_learners, self.num_prices)

    def observe(self, state: MarketState) -> Array:
        return jnp.broadcast_to(state.last.astype(jnp.float32), (self.num_learners, self.num_learners))

    def reset(self, key: Array, params: MarketParams) -> tuple[Array, MarketState]:
        """A uniformly random first state (the paper draws the initial prices at random)."""
        last = jax.random.randint(key, (self.num_learners,), 0, params.prices.shape[-1], jnp.int32)
        state = MarketState(last, jnp.zeros((), jnp.int32))
        return self.observe(state), state

    def step(
        self, key: Array, state: MarketState, actions: Array, params: MarketParams
    ) -> tuple[Array, MarketState, Array, Array, Array, dict[str, Any]]:
        del key  # deterministic: all randomness is the sellers'
        actions = actions.astype(jnp.int32)
        p = params.prices[jnp.arange(self.num_learners), actions]
        pi = profits(p, params)
        new = MarketState(actions, state.time + 1)
        info = {
            "task": jnp.zeros((), jnp.int32),
            "price": p.mean(),
            "profit_gain": profit_gain(pi, params).mean(),
        }
        false = jnp.zeros((), bool)
        return self.observe(new), new, pi.astype(jnp.float32), false, false, info


def make_market(num_sellers: int = 2, num_prices: int = 15, **options: Any) -> MultiEnvHandle:
    """Market-v0's handle; `options` go to `market_params` (xi, a, a0, c, mu)."""
    env = Market(num_sellers, num_prices)
    params = market_params(num_sellers, num_prices, **options)
    return MultiEnvHandle(
        id="Market-v0",
        env=env,
        params=params,
        num_learners=num_sellers,
        obs_spec=ArraySpec((num_sellers,), jnp.float32),
        action_spec=DiscreteSpec(num_prices),
        continuing=True,
        description="Calvano et al. 2020: repeated Bertrand oligopoly, logit demand, 15 prices",
        world_metrics=("price", "profit_gain"),
    )


def paper_q0(params: MarketParams, delta: float) -> Array:
    """The paper's initial Q (its eq. 8), [N, m]: seller i's discounted profit from price a_i
    when every rival randomises uniformly, sum_{a_-i} pi_i(a_i, a_-i) / ((1 - delta) m^(N-1)),
    the same in every state."""
    table = joint_profits_table(params)  # [m]*N + [N]
    n = params.prices.shape[0]
    rows = []
    for i in range(n):
        others = tuple(j for j in range(n) if j != i)
        rows.append(table[..., i].mean(axis=others) / (1.0 - delta))
    return jnp.stack(rows)
