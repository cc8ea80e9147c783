"""What the streaming agents share: input normalisation, flat networks, optimiser choice."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from oakrl.core.flat import Flat
from oakrl.core.types import ArraySpec, TimeStep
from oakrl.learn.nets import make_network
from oakrl.learn.normalize import (
    ObsNormState,
    RewardScaleState,
    obs_norm_init,
    obs_norm_update,
    reward_scale_init,
    reward_scale_update,
)
from oakrl.learn.obgd import adaptive_obgd, obgd


class Normalizers(NamedTuple):
    obs: ObsNormState
    reward: RewardScaleState


def normalizers_init(obs_spec: ArraySpec) -> Normalizers:
    return Normalizers(obs_norm_init(tuple(obs_spec.shape)), reward_scale_init())


def preprocess(
    norm: Normalizers, ts: TimeStep, gamma: float, normalize_obs: bool, scale_reward: bool
) -> tuple[Normalizers, jax.Array, jax.Array]:
    """Updates the running statistics with this timestep; returns (norm, obs, reward) as learned on."""
    obs = ts.observation.astype(jnp.float32)
    reward = ts.reward.astype(jnp.float32)
    obs_state, reward_state = norm.obs, norm.reward
    if normalize_obs:
        obs_state, obs = obs_norm_update(norm.obs, obs)
    if scale_reward:
        reward_state, reward = reward_scale_update(norm.reward, reward, ts.done, gamma)
    return Normalizers(obs_state, reward_state), obs, reward


class FlatNet(NamedTuple):
    """A Flax module applied to parameters stored as one `Flat` vector."""

    module: nn.Module

    def init(self, key: jax.Array, obs_shape) -> Flat:
        params = self.module.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]
        return Flat.ravel(params)

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        """params: the unravelled pytree (call `flat.unravel()` once per step)."""
        return self.module.apply({"params": params}, x)


def flat_net(obs_shape, out: int, hidden, sparsity: float) -> FlatNet:
    return FlatNet(make_network(obs_shape, out, hidden, sparsity))


def head_width(flat: Flat) -> int:
    """Output width of a network stored in `flat` (static: read off the layout).

    Agents derive their network shapes from the state this way, so `step` needs no spec.
    The head is the layer named "head", whose kernel is the last leaf in sorted order.
    """
    (shape, _) = flat.layout[1][-1]
    return int(shape[-1])


def value_and_flat_grad(fn, flat: Flat, *args):
    """(fn(params, *args), d fn / d flat vector), the gradient as one concatenated vector."""
    value, grads = jax.value_and_grad(fn)(flat.unravel(), *args)
    return value, flat.ravel_like(grads)


def make_optimizer(name: str, lr: float, gamma: float, lamda: float, kappa: float):
    if name == "obgd":
        return obgd(lr, gamma, lamda, kappa)
    if name == "adaptive-obgd":
        return adaptive_obgd(lr, gamma, lamda, kappa)
    raise ValueError(f"optimizer must be 'obgd' or 'adaptive-obgd', got {name!r}")


def apply_flat(flat: Flat, updates: jax.Array) -> Flat:
    return flat.replace(optax.apply_updates(flat.vector, updates))


OPTIMIZERS = ("obgd", "adaptive-obgd")
