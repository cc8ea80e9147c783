"""What the streaming agents share: input normalisation, flat networks, optimiser choice."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

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


class Net(NamedTuple):
    """A Flax module whose parameters live in the agent state as a plain pytree.

    Parameters stay a pytree of per-layer arrays: on XLA:CPU concatenating them into one
    vector and slicing it back each step costs several times more than it saves.
    """

    module: nn.Module

    def init(self, key: jax.Array, obs_shape) -> Any:
        return self.module.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return self.module.apply({"params": params}, x)


def net(obs_shape, out: int, hidden, sparsity: float) -> Net:
    return Net(make_network(obs_shape, out, hidden, sparsity))


def head_width(params: Any) -> int:
    """Output width of a network from its parameters (static: read off a shape).

    Agents derive their network shapes from the state this way, so `step` needs no spec.
    """
    return int(params["head"]["kernel"].shape[-1])


def make_optimizer(name: str, lr: float, gamma: float, lamda: float, kappa: float):
    if name == "obgd":
        return obgd(lr, gamma, lamda, kappa)
    if name == "adaptive-obgd":
        return adaptive_obgd(lr, gamma, lamda, kappa)
    raise ValueError(f"optimizer must be 'obgd' or 'adaptive-obgd', got {name!r}")


OPTIMIZERS = ("obgd", "adaptive-obgd")
