"""A learned sparse code: streaming competitive learning (online k-means) with dead-unit re-seeding.

K prototype vectors p_k [D] compete for each input x [D]; the nearest one (squared Euclidean
distance) is the active unit, and the code of x is its one-hot vector [K]. Every step:

  1. winner    w = argmin_k ||x - p_k||^2 over the live units (a unit is live once seeded);
  2. move      p_w <- p_w + rate (x - p_w): the winner moves towards the input (MacQueen 1967's
               online k-means with a constant step size, so the code keeps tracking a world
               that changes; competitive learning, Rumelhart & Zipser 1985);
  3. re-seed   if the least-used unit is dead (its running win rate is below `dead / K`) and x
               is badly represented (its distance to the winner is above the running mean
               distance), that unit is set to x and becomes x's unit. Units that stop winning
               (the inputs moved away, or they never won) are recycled into places the inputs
               now are: the codebook-reset remedy of vector quantisation (random restarts of
               dead codes, Dhariwal et al. 2020 Jukebox, sec. 2.2; code expiry, Zeghidour et al.
               2021 SoundStream) and the streaming analogue of continual backprop's
               re-initialisation of the least useful units (Dohare et al. 2024).

Units start unseeded, so the first distinct inputs seed them one by one (MacQueen initialises
with the first K points). Where the world has fewer distinct observations than K (a grid world
seen through any code), every observation ends with a unit of its own and the code is the
one-hot code of the state; with more, units are the cluster centres of the inputs seen lately.

No library piece does this under jit/scan/vmap one sample at a time (optax and flax have no
vector quantiser), so it is written here as an optax-style (init, update) pair over a
NamedTuple state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class CodeState(NamedTuple):
    protos: Array  # [K, D] prototypes
    live: Array  # [K] bool: seeded at least once (only live units compete)
    usage: Array  # [K] running fraction of steps each unit was the active one
    error: Array  # [K] running mean squared distance of the inputs a unit won to its prototype
    mean_error: Array  # [] running mean squared distance of every input to its winner
    seeded: Array  # [] int32 re-seeds over the lifetime


def code_init(units: int, dim: int) -> CodeState:
    """K = `units` unseeded prototypes of inputs of D = `dim` components."""
    return CodeState(
        protos=jnp.zeros((units, dim), jnp.float32),
        live=jnp.zeros(units, bool),
        usage=jnp.zeros(units, jnp.float32),
        error=jnp.zeros(units, jnp.float32),
        mean_error=jnp.zeros((), jnp.float32),
        seeded=jnp.zeros((), jnp.int32),
    )


def distances(state: CodeState, x: Array) -> Array:
    """[K]: ||x - p_k||^2 for each live unit, +inf for the unseeded ones."""
    d = jnp.sum((state.protos - x[None, :]) ** 2, axis=1)
    return jnp.where(state.live, d, jnp.inf)


def code_encode(state: CodeState, x: Array) -> Array:
    """float32[K]: the one-hot code of x [D] (zeros while no unit is live). Does not learn."""
    d = distances(state, x)
    return jax.nn.one_hot(jnp.argmin(d), d.shape[0]) * jnp.isfinite(d.min())


def code_update(
    state: CodeState,
    x: Array,
    *,
    rate: float = 0.1,
    stat_rate: float = 0.001,
    dead: float = 0.1,
) -> tuple[CodeState, Array]:
    """Learns from one input x [D]; returns (new state, float32[K] one-hot code of x after it).

    rate: step size of the winner's move; stat_rate: step size of the running usage and errors;
    dead: a unit is dead when its usage is below dead / K (and may then be re-seeded).
    """
    k = state.protos.shape[0]
    x = x.astype(jnp.float32)
    d = distances(state, x)
    w = jnp.argmin(d)
    err = d[w]  # +inf while nothing is live: every unit is then dead and x is novel
    # Re-seed: the least-used unit, when dead, takes x if x is worse represented than average.
    j = jnp.argmin(jnp.where(state.live, state.usage, -1.0))  # unseeded units first
    reseed = (state.usage[j] < dead / k) & (err > state.mean_error)
    winner = jnp.where(reseed, j, w)
    onehot = jax.nn.one_hot(winner, k)
    moved = state.protos[w] + rate * (x - state.protos[w])
    protos = state.protos.at[winner].set(jnp.where(reseed, x, moved))
    # A re-seeded unit starts at usage 1 / K, so it lives for ~ln(10) / stat_rate steps before
    # it can be found dead again; its error starts at 0 (it codes x exactly).
    usage = jnp.where(reseed & (jnp.arange(k) == j), 1.0 / k, state.usage)
    usage = usage + stat_rate * (onehot - usage)
    won_err = jnp.where(reseed, 0.0, err)
    error = state.error.at[winner].set(
        jnp.where(reseed, 0.0, state.error[winner] + stat_rate * (won_err - state.error[winner]))
    )
    finite_err = jnp.where(jnp.isfinite(err), err, 0.0)
    new = CodeState(
        protos=protos,
        live=state.live.at[winner].set(True),
        usage=usage,
        error=error,
        mean_error=state.mean_error + stat_rate * (finite_err - state.mean_error),
        seeded=state.seeded + reseed.astype(jnp.int32),
    )
    return new, onehot
