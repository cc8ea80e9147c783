"""Online normalisation of observations and rewards (Elsayed et al. 2024, sec. 4).

Welford's algorithm keeps an exact running mean and sample variance one sample at a time.
Observations are standardised with it; rewards are divided by the running standard
deviation of a discounted return trace (never centred, so the sign of reward is kept).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from oakrl.core.types import ArraySpec, TimeStep


class MeanStd(NamedTuple):
    mean: jax.Array  # [*shape]
    m2: jax.Array  # [*shape] sum of squared deviations
    count: jax.Array  # [] float32 samples seen


def welford_init(shape=()) -> MeanStd:
    return MeanStd(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(()))


def welford_update(stats: MeanStd, x: jax.Array) -> MeanStd:
    count = stats.count + 1.0
    delta = x - stats.mean
    mean = stats.mean + delta / count
    return MeanStd(mean, stats.m2 + delta * (x - mean), count)


def welford_var(stats: MeanStd) -> jax.Array:
    """Sample variance; 1 until two samples have been seen (as stream-x)."""
    return jnp.where(stats.count < 2, jnp.ones_like(stats.m2), stats.m2 / jnp.maximum(stats.count - 1, 1))


class ObsNormState(NamedTuple):
    stats: MeanStd


def obs_norm_init(shape) -> ObsNormState:
    return ObsNormState(welford_init(shape))


def obs_norm_update(state: ObsNormState, obs: jax.Array, eps: float = 1e-8) -> tuple[ObsNormState, jax.Array]:
    """Adds `obs` to the statistics, then returns it standardised with them."""
    stats = welford_update(state.stats, obs.astype(jnp.float32))
    return ObsNormState(stats), (obs - stats.mean) / jnp.sqrt(welford_var(stats) + eps)


class RewardScaleState(NamedTuple):
    trace: jax.Array  # [] discounted sum of past rewards
    stats: MeanStd  # of the trace


def reward_scale_init() -> RewardScaleState:
    return RewardScaleState(jnp.zeros(()), welford_init(()))


def reward_scale_update(
    state: RewardScaleState, reward: jax.Array, done: jax.Array, gamma: float, eps: float = 1e-8
) -> tuple[RewardScaleState, jax.Array]:
    """trace <- gamma * (1 - done) * trace + r; returns r / std(trace) (stream-x's ScaleReward)."""
    trace = state.trace * gamma * (1.0 - done.astype(jnp.float32)) + reward
    stats = welford_update(state.stats, trace)
    return RewardScaleState(trace, stats), reward / jnp.sqrt(welford_var(stats) + eps)


class Normalizers(NamedTuple):
    obs: ObsNormState
    reward: RewardScaleState


def normalizers_init(obs_spec: ArraySpec) -> Normalizers:
    return Normalizers(obs_norm_init(tuple(obs_spec.shape)), reward_scale_init())


def preprocess(
    norm: Normalizers,
    ts: TimeStep,
    gamma: float,
    normalize_obs: bool,
    scale_reward: bool,
    raw_tail: int = 0,
) -> tuple[Normalizers, jax.Array, jax.Array]:
    """Updates the running statistics with this timestep; returns (norm, obs, reward) as learned on.

    raw_tail: the last `raw_tail` entries of a flat observation pass through unnormalised (a
    time feature in [-0.5, 0.5], which stream-x appends after normalising: standardised with
    the rest, its value late in an episode is many standard deviations out while episodes are
    short). Their statistics are still kept, so the state's shape does not depend on it.
    """
    obs = ts.observation.astype(jnp.float32)
    reward = ts.reward.astype(jnp.float32)
    obs_state, reward_state = norm.obs, norm.reward
    if normalize_obs:
        raw = obs
        obs_state, obs = obs_norm_update(norm.obs, obs)
        if raw_tail:
            obs = jnp.concatenate([obs[:-raw_tail], raw[-raw_tail:]])
    if scale_reward:
        reward_state, reward = reward_scale_update(norm.reward, reward, ts.done, gamma)
    return Normalizers(obs_state, reward_state), obs, reward
