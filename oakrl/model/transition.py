"""An action-conditioned transition model learned online, one transition at a time.

Given an observation s and an action a it predicts the next observation s', the reward r and
whether the episode terminates. Each part is a Flax MLP (dense -> parameter-free LayerNorm ->
leaky ReLU, sparse init: the agents' torso) on [s, one_hot(a)], learned from every real
transition the agent sees; there is no separate training phase.

* Next observation, `head`:
  - `deterministic`: predicts the change s' - s; squared error;
  - `gaussian`: a diagonal Gaussian around s + change with a learned log standard deviation;
    negative log likelihood; `sample` draws from it;
  - `categorical`: a softmax over the observation's entries, for one-hot observations (grid
    cells); cross-entropy against the observed s'; `sample` draws a one-hot, `mean` gives
    the probabilities (the expected next observation).
  Learned with `optax.adam` (a vector loss: Adam's per-weight scaling suits it).
* Reward and termination: each its own small network with one output, learned with ObGD
  (oakrl.learn.obgd, no trace) on its prediction error, as a regression (the termination
  probability is the output clipped to [0, 1]; a logit learns far slower near 0 and 1).
  Rewards are rare events (Rooms-v0: one transition in hundreds): Adam's normalised steps
  leave a noise floor of about lr x width on a rarely-corrected output, and plain SGD on
  LayerNorm features overshoots (their squared norm is about the width); ObGD's bounded step
  learns a changed reward in a few visits without either problem. That matters because the
  planners sum predicted rewards over ~1/(1 - gamma) steps.

Errors are measured on each transition *before* learning from it (online, like a test
error): `model_obs_error` = ||E[s'] - s'||^2 summed over entries, `model_reward_error`,
`model_term_error` (squared error of the probability), and `model_kstep_error`: the
observation error after rolling the model k steps from the observation k steps ago with the
actions actually taken (only where those k transitions lie in one episode; NaN otherwise, so
the lab leaves them out of its means).

Where an episode ended the next observation is already the next episode's first one: the
observation network does not learn from such transitions (reward and termination do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from oakrl.learn.nets import MLP
from oakrl.learn.obgd import obgd

HEADS = ("deterministic", "gaussian", "categorical")
_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0


class Prediction(NamedTuple):
    next_obs: jax.Array  # [D] expected next observation (probabilities for `categorical`)
    reward: jax.Array  # [] expected reward
    term: jax.Array  # [] probability that the transition terminates the episode
    aux: jax.Array  # [D] logits (categorical), log std (gaussian), zeros (deterministic)


class ModelParams(NamedTuple):
    obs: Any  # next-observation network
    reward: Any  # reward network
    term: Any  # termination network (probability, clipped)


class ModelState(NamedTuple):
    params: ModelParams
    obs_opt: Any  # adam state of the observation network
    reward_opt: Any  # ObGD state of the reward network
    term_opt: Any  # ObGD state of the termination network
    hist_obs: jax.Array  # [k, D] the last k observations acted in (oldest first), for k-step error
    hist_action: jax.Array  # [k] int32 the actions taken in them
    hist_valid: jax.Array  # [k] bool: that transition stayed within one episode


class TransitionModel(NamedTuple):
    """The optax-like pieces of one model (shapes: D observation entries, A actions).

    init(key, obs_dim, n_actions) -> ModelState
    predict(params, obs [D], action []) -> Prediction
    sample(prediction, key) -> next observation [D] drawn from the head
    mode(prediction) -> the most likely next observation [D] (a one-hot for `categorical`)
    rollout(params, obs [D], action []) -> mode of the next observation (observation net only)
    update(state, obs, action, reward, next_obs, terminated, done, valid) -> (state, errors dict)
    """

    init: Callable[..., ModelState]
    predict: Callable[..., Prediction]
    sample: Callable[..., jax.Array]
    mode: Callable[..., jax.Array]
    rollout: Callable[..., jax.Array]
    update: Callable[..., tuple[ModelState, dict]]
    config: dict


def transition_model(
    head: str = "categorical",
    hidden: Sequence[int] = (128,),
    lr: float = 1e-3,
    sparsity: float = 0.9,
    kstep: int = 5,
    reward_lr: float = 1.0,
    reward_kappa: float = 2.0,
) -> TransitionModel:
    """An online transition model. `kstep` (>= 1) sets the horizon of `model_kstep_error`."""
    if head not in HEADS:
        raise ValueError(f"model head must be one of {', '.join(HEADS)}, got {head!r}")
    if kstep < 1:
        raise ValueError(f"model kstep must be >= 1, got {kstep}")
    obs_opt = optax.adam(lr)
    scalar_opt = obgd(reward_lr, 0.0, 0.0, reward_kappa)  # no trace: one transition at a time

    def obs_net(obs_dim: int) -> MLP:
        return MLP(hidden=tuple(hidden), out=obs_dim * (2 if head == "gaussian" else 1), sparsity=sparsity)

    scalar_net = MLP(hidden=tuple(hidden), out=1, sparsity=sparsity)

    def inputs(params: ModelParams, obs: jax.Array, action: jax.Array) -> jax.Array:
        # The input is [obs, one_hot(action)]: its width less the observation's is the action count.
        n_actions = int(params.reward["Dense_0"]["kernel"].shape[0]) - obs.shape[-1]
        return jnp.concatenate([obs, jax.nn.one_hot(action, n_actions, dtype=jnp.float32)])

    def init(key: jax.Array, obs_dim: int, n_actions: int) -> ModelState:
        k_o, k_r, k_t = jax.random.split(key, 3)
        x = jnp.zeros(obs_dim + n_actions, jnp.float32)
        params = ModelParams(
            obs=obs_net(obs_dim).init(k_o, x)["params"],
            reward=scalar_net.init(k_r, x)["params"],
            term=scalar_net.init(k_t, x)["params"],
        )
        return ModelState(
            params=params,
            obs_opt=obs_opt.init(params.obs),
            reward_opt=scalar_opt.init(params.reward),
            term_opt=scalar_opt.init(params.term),
            hist_obs=jnp.zeros((kstep, obs_dim), jnp.float32),
            hist_action=jnp.zeros((kstep,), jnp.int32),
            hist_valid=jnp.zeros((kstep,), bool),
        )

    def obs_head(obs_params, x: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(expected next observation, aux) from the observation network."""
        out = obs_net(obs.shape[-1]).apply({"params": obs_params}, x)
        if head == "categorical":
            return jax.nn.softmax(out), out
        if head == "gaussian":
            d = obs.shape[-1]
            return obs + out[:d], jnp.clip(out[d:], _LOG_STD_MIN, _LOG_STD_MAX)
        return obs + out, jnp.zeros_like(obs)

    def scalar(p, x: jax.Array) -> jax.Array:
        return scalar_net.apply({"params": p}, x)[0]

    def predict(params: ModelParams, obs: jax.Array, action: jax.Array) -> Prediction:
        x = inputs(params, obs, action)
        mean, aux = obs_head(params.obs, x, obs)
        return Prediction(mean, scalar(params.reward, x), jnp.clip(scalar(params.term, x), 0.0, 1.0), aux)

    def sample(pred: Prediction, key: jax.Array) -> jax.Array:
        if head == "categorical":
            return jax.nn.one_hot(
                jax.random.categorical(key, pred.aux), pred.aux.shape[-1], dtype=jnp.float32
            )
        if head == "gaussian":
            return pred.next_obs + jnp.exp(pred.aux) * jax.random.normal(key, pred.next_obs.shape)
        return pred.next_obs

    def mode(pred: Prediction) -> jax.Array:
        if head == "categorical":
            return jax.nn.one_hot(jnp.argmax(pred.aux), pred.aux.shape[-1], dtype=jnp.float32)
        return pred.next_obs

    def rollout(params: ModelParams, obs: jax.Array, action: jax.Array) -> jax.Array:
        mean, aux = obs_head(params.obs, inputs(params, obs, action), obs)
        return mode(Prediction(mean, jnp.zeros(()), jnp.zeros(()), aux))

    def obs_loss_fn(obs_params, x, obs, next_obs):
        mean, aux = obs_head(obs_params, x, obs)
        if head == "categorical":
            target = next_obs / jnp.maximum(jnp.sum(next_obs), 1e-6)
            return -jnp.sum(target * jax.nn.log_softmax(aux)), (mean, aux)
        if head == "gaussian":
            z = (next_obs - mean) * jnp.exp(-aux)
            return jnp.sum(0.5 * jnp.square(z) + aux), (mean, aux)
        return 0.5 * jnp.sum(jnp.square(next_obs - mean)), (mean, aux)

    def kstep_error(params, hist_obs, hist_action, hist_valid, target):
        def roll(x, a):
            return rollout(params, x, a), None

        final, _ = jax.lax.scan(roll, hist_obs[0], hist_action)
        return jnp.where(jnp.all(hist_valid), jnp.sum(jnp.square(final - target)), jnp.nan)

    def update(
        state: ModelState,
        obs: jax.Array,
        action: jax.Array,
        reward: jax.Array,
        next_obs: jax.Array,
        terminated: jax.Array,
        done: jax.Array,
        valid: jax.Array,
    ) -> tuple[ModelState, dict]:
        """Learns from one transition (obs, action) -> (reward, next_obs, terminated).

        done: the episode ended here (terminated or truncated), so `next_obs` starts the next one
        and only the reward and termination learn. valid: a transition exists at all (False on a
        stream's first step: nothing is learned and the errors are NaN).
        """
        params = state.params
        obs_valid = jnp.logical_and(valid, jnp.logical_not(done))
        x = inputs(params, obs, action)

        # Observation network: adam on the head's loss, only within an episode.
        (_, (mean, _)), g = jax.value_and_grad(obs_loss_fn, has_aux=True)(params.obs, x, obs, next_obs)
        updates, new_obs_opt = obs_opt.update(g, state.obs_opt, params.obs)
        keep = obs_valid.astype(jnp.float32)
        obs_params = jax.tree.map(lambda p, u: p + keep * u, params.obs, updates)
        obs_opt_state = jax.tree.map(lambda n, o: jnp.where(obs_valid, n, o), new_obs_opt, state.obs_opt)

        # Reward and termination: ObGD on each one's prediction error.
        w = valid.astype(jnp.float32)
        r_hat, g_r = jax.value_and_grad(scalar)(params.reward, x)
        t_hat, g_t = jax.value_and_grad(scalar)(params.term, x)
        delta_r = (reward - r_hat) * w
        delta_t = (terminated.astype(jnp.float32) - t_hat) * w
        t_err = terminated.astype(jnp.float32) - jnp.clip(t_hat, 0.0, 1.0)
        u_r, reward_opt = scalar_opt.update(g_r, state.reward_opt, delta=delta_r, reset=True)
        u_t, term_opt = scalar_opt.update(g_t, state.term_opt, delta=delta_t, reset=True)
        new_params = ModelParams(
            obs_params, optax.apply_updates(params.reward, u_r), optax.apply_updates(params.term, u_t)
        )

        # k-step error of the model before this update: from the observation k steps ago.
        hist_obs = jnp.concatenate([state.hist_obs[1:], obs[None]])
        hist_action = jnp.concatenate([state.hist_action[1:], action[None].astype(jnp.int32)])
        hist_valid = jnp.concatenate([state.hist_valid[1:], obs_valid[None]])
        k_err = kstep_error(params, hist_obs, hist_action, hist_valid, next_obs)

        nan = jnp.nan
        errors = {
            "model_obs_error": jnp.where(obs_valid, jnp.sum(jnp.square(mean - next_obs)), nan),
            "model_reward_error": jnp.where(valid, jnp.square(delta_r), nan),
            "model_term_error": jnp.where(valid, jnp.square(t_err), nan),
            "model_kstep_error": k_err,
        }
        new = ModelState(new_params, obs_opt_state, reward_opt, term_opt, hist_obs, hist_action, hist_valid)
        return new, errors

    cfg = dict(head=head, hidden=tuple(hidden), lr=lr, sparsity=sparsity, kstep=kstep)
    return TransitionModel(init, predict, sample, mode, rollout, update, cfg)
