"""What the streaming agents share: input normalisation, flat networks, optimiser choice."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

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
from oakrl.learn.plasticity import Remedy, hidden_features, remedy
from oakrl.learn.stepsize import tidbd_obgd

# The defaults every streaming learner shares (Elsayed, Vasan & Mahmood 2024).
STREAM_DEFAULTS = dict(
    hidden=(128, 128),
    lr=1.0,
    gamma=0.99,
    lamda=0.8,
    sparsity=0.9,
    optimizer="obgd",
    normalize_obs=True,
    scale_reward=True,
)


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

    def apply_features(self, params: Any, x: jax.Array) -> tuple[jax.Array, dict]:
        """(output, {Dense_i: hidden features}) in one forward pass (for plasticity remedies)."""
        return hidden_features(self.module, params, x)


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
    if name == "tidbd-obgd":
        return tidbd_obgd(lr, gamma, lamda, kappa)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


OPTIMIZERS = ("obgd", "adaptive-obgd", "tidbd-obgd")

# Options every agent accepts for the plasticity remedies of oakrl.learn.plasticity.
PLASTICITY_DEFAULTS = dict(
    plasticity="none",  # none | cbp | redo | shrink-perturb | l2-init
    plasticity_diagnostics=False,  # dormant, weight_mag, eff_rank, replaced in info
    plasticity_options={},  # PlasticityConfig fields, e.g. {'rate': 1e-4, 'maturity': 100}
)


def make_remedy(cfg: dict) -> Remedy:
    """The plasticity remedy of an agent config (raises ConfigError on bad values)."""
    from oakrl.errors import ConfigError

    if cfg.get("plasticity", "none") != "none" and not cfg.get("hidden", (1,)):
        raise ConfigError("a plasticity remedy needs hidden layers; hidden=linear has no units to treat")
    options = dict(cfg.get("plasticity_options") or {})
    options.setdefault("sparsity", cfg.get("sparsity", 0.9))
    try:
        return remedy(
            cfg.get("plasticity", "none"), bool(cfg.get("plasticity_diagnostics", False)), **options
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def actor_critic_update(value_opt, policy_opt, state: Any, g_v: Any, g_p: Any, delta, done, learn):
    """One ObGD step of the critic and the actor of an actor-critic state, from their gradients.

    `state` has fields value, policy, value_opt, policy_opt; `learn` (0 or 1) masks the
    gradients before the first transition. Returns (value, policy, value_opt, policy_opt).
    """
    g_v, g_p = jax.tree.map(lambda g: g * learn, (g_v, g_p))
    v_upd, v_opt = value_opt.update(g_v, state.value_opt, delta=delta, reset=done)
    p_upd, p_opt = policy_opt.update(g_p, state.policy_opt, delta=delta, reset=done)
    return optax.apply_updates(state.value, v_upd), optax.apply_updates(state.policy, p_upd), v_opt, p_opt


def q_lambda_update(opt, q_fn, state: Any, bootstrap, reward, learn, reset):
    """One Watkins Q(lambda) step with a traced optimiser (ObGD...), shared by stream-q and dyna.

    q_fn: params -> (q(s, a) of the last transition, aux); bootstrap: gamma (1 - done) max_a' q(s', a');
    `state` has fields q and opt; `learn` (0 or 1) masks the very first step; `reset` clears the trace
    after the update (an episode end, or an exploratory action).
    Returns (q params, optimiser state, q(s, a), delta, aux).
    """
    (q_sa, aux), g = jax.value_and_grad(q_fn, has_aux=True)(state.q)
    delta = (reward + bootstrap - q_sa) * learn
    g = jax.tree.map(lambda x: x * learn, g)
    updates, opt_state = opt.update(g, state.opt, delta=delta, reset=reset)
    return optax.apply_updates(state.q, updates), opt_state, q_sa, delta, aux
