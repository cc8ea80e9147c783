"""Behaviour cloning: fit a policy (and a value) to demonstrations, inside JAX.

Everything here is a pure, jittable function of arrays, so an agent's `init` can run it per
seed under `vmap` (the lab's init is compiled and vmapped like its steps).

The fit sees observations as the streaming agent will: standardised by the agent's own
running statistics after it has "seen" the dataset (`stream_stats` scans the agent's Welford
updates over it), so the cloned network needs no other input scaling. Values are fitted to the
discounted return of the agent's scaled rewards, cut where the agent cuts bootstrapping (at
termination and at truncation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from oakrl.learn.normalize import Normalizers, obs_norm_update, reward_scale_update, welford_var


def stream_stats(
    norm: Normalizers, obs: jax.Array, rewards: jax.Array, done: jax.Array, gamma: float
) -> tuple[Normalizers, jax.Array, jax.Array]:
    """Feeds the dataset through the agent's normalisers, in order.

    obs [N, *shape], rewards [N], done [N] -> (normalisers after all of it, standardised obs
    [N, *shape] under the final statistics, rewards [N] scaled by the final return std).
    """

    def one(n: Normalizers, x):
        o, r, d = x
        obs_state, _ = obs_norm_update(n.obs, o)
        rew_state, _ = reward_scale_update(n.reward, r, d, gamma)
        return Normalizers(obs_state, rew_state), None

    norm, _ = jax.lax.scan(one, norm, (obs, rewards, done))
    stats = norm.obs.stats
    z = (obs - stats.mean) / jnp.sqrt(welford_var(stats) + 1e-8)
    scaled = rewards / jnp.sqrt(welford_var(norm.reward.stats) + 1e-8)
    return norm, z, scaled


def discounted_returns(rewards: jax.Array, done: jax.Array, gamma: float) -> jax.Array:
    """G_i = r_i + gamma (1 - done_i) G_{i+1}, the dataset's end cutting like an episode end: [N]."""

    def back(g, x):
        r, d = x
        g = r + gamma * (1.0 - d) * g
        return g, g

    _, g = jax.lax.scan(back, jnp.zeros(()), (rewards, done.astype(jnp.float32)), reverse=True)
    return g


def fit(
    params: Any,
    loss: Callable[[Any, jax.Array], jax.Array],
    n: int,
    steps: int,
    batch: int,
    lr: float,
    key: jax.Array,
) -> tuple[Any, jax.Array]:
    """`steps` Adam steps on loss(params, idx [batch]) with rows drawn uniformly from [0, n).

    Returns (params, mean loss of the last tenth of the steps).
    """
    opt = optax.adam(lr)

    def one(carry, k):
        p, s = carry
        idx = jax.random.randint(k, (batch,), 0, n)
        value, g = jax.value_and_grad(loss)(p, idx)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), value

    (params, _), losses = jax.lax.scan(one, (params, opt.init(params)), jax.random.split(key, steps))
    return params, jnp.mean(losses[-max(1, steps // 10) :])


def bc_policy_loss(apply: Callable, z: jax.Array, actions: jax.Array, num_actions: int, smoothing: float):
    """Cross-entropy of a softmax policy on the rows `idx` (labels smoothed by `smoothing`)."""

    def loss(params, idx):
        logits = jax.vmap(lambda x: apply(params, x))(z[idx])
        labels = optax.smooth_labels(jax.nn.one_hot(actions[idx], num_actions), smoothing)
        return jnp.mean(optax.softmax_cross_entropy(logits, labels))

    return loss


def value_loss(apply: Callable, z: jax.Array, targets: jax.Array):
    """Mean squared error of v(s_i) against targets_i on the rows `idx`."""

    def loss(params, idx):
        v = jax.vmap(lambda x: apply(params, x)[0])(z[idx])
        return jnp.mean(jnp.square(v - targets[idx]))

    return loss
