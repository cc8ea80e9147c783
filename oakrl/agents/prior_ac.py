"""prior-ac: stream AC(lambda) that starts from a prior and lets reward correct it.

Two kinds of prior, usable together, both living in the agent state (so the whole thing runs
in the compiled, vmapped lab like any agent):

* **Imitation** (`demos=PATH`, a dataset from `oakrl record`): `init` behaviour-clones the
  policy (and, with `bc_value`, fits the critic to the demonstrations' returns) from the
  dataset, per seed, inside JAX (oakrl.priors.bc). The cloned policy is the starting point
  and, frozen, the prior q(.|s) that an optional KL term pulls towards.
* **Language model** (`lm_table=PATH`, from oakrl.priors.llm): for worlds whose observation is
  a one-hot over a finite set of sentences (TextWorld-v0), a table [obs_dim, A] of the LM's
  log-likelihood of each action sentence given the observation. The policy acts from
  softmax(f_theta(s) + beta_t * table[s]): the prior times a learned correction (a product of
  experts), the correction trained by reward (GLAM-style scores, Carta et al. 2023).

The actor's traced objective is stream AC's plus a KL pull, the same way stream-x adds its
entropy bonus (scaled by sign(delta), so its update is |delta|-weighted and ObGD-bounded):

    log pi(a|s) + entropy sign(delta) H(pi(.|s)) - kl_t sign(delta) KL(pi(.|s) || q(.|s))

kl_t = kl * 0.5^(t / kl_half_life) * clip(trust, 0, 1). `trust` (starting at 1, adapting at
rate `kl_adapt`; 0 keeps it at 1) is a running mean of sign(delta) * sign(log q(a|s) -
E_pi log q(.|s)): positive while actions the prior favours turn out better than expected,
negative when reward contradicts the prior, which then stops pulling. beta_t decays the same
way with `beta_half_life`. Without a prior this is stream AC (discrete actions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.agents.common import (
    ActorCriticOptions,
    DiscreteOnly,
    PlasticityOptions,
    configure,
    net,
)
from oakrl.agents.skeleton import Transition
from oakrl.agents.stream_ac import Actor, ActorStart, actor_critic
from oakrl.core.config import option
from oakrl.core.types import Agent, ArraySpec, DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.normalize import normalizers_init


class PriorExtra(NamedTuple):
    """What prior-ac keeps besides stream AC's state (ACState.extra)."""

    prev_raw: jax.Array  # [*obs_shape] the last action's observation as the world gave it (for the table)
    prior: Any  # frozen cloned policy parameters, or () without demonstrations
    table: jax.Array  # [obs_dim, A] LM log-likelihoods, or [0, A] without one
    trust: jax.Array  # [] float32 in [-1, 1]: does reward agree with the prior?


@dataclasses.dataclass(frozen=True)
class PriorACConfig(DiscreteOnly, PlasticityOptions, ActorCriticOptions):
    """prior-ac's options: stream AC's, the demonstrations to clone, the LM table and the KL pull."""

    NAME = "prior-ac"
    demos: str = option("", "oakrl record dataset to clone at init (empty: none)")
    bc_steps: int = option(2000, "Adam steps of behaviour cloning (and as many for the value)", ge=0)
    bc_batch: int = option(64, "behaviour cloning batch", ge=1)
    bc_lr: float = option(1e-3, "behaviour cloning step size", ge=0)
    bc_smoothing: float = option(
        0.05, "label smoothing: keeps the cloned policy from being certain", ge=0, lt=1
    )
    bc_value: bool = option(False, "also fit the critic to the returns (measured: worse on CartPole)")
    kl: float = option(0.0, "initial strength of the pull towards the prior", ge=0)
    kl_half_life: int = option(0, "steps for kl to halve (0: constant)", ge=0)
    kl_adapt: float = option(0.0, "rate of the trust estimate that scales kl (0: trust stays 1)", ge=0)
    lm_table: str = option("", ".npz with `table` [obs_dim, A] from oakrl.priors.llm (empty: none)")
    prior_beta: float = option(1.0, "weight of the table prior in the logits", ge=0)
    beta_half_life: int = option(0, "steps for prior_beta to halve (0: constant)", ge=0)


def _decay(t: jax.Array, half_life: int) -> jax.Array:
    return 0.5 ** (t.astype(jnp.float32) / half_life) if half_life > 0 else jnp.ones((), jnp.float32)


def load_table(path: str) -> np.ndarray:
    """The [obs_dim, A] table of an LM prior file (ConfigError when it is not one)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            table = np.asarray(f["table"], np.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"lm_table {path!r} is not an LM prior table (.npz with 'table'): {e}") from None
    if table.ndim != 2 or not np.isfinite(table).all():
        raise ConfigError(f"lm_table {path!r}: 'table' must be a finite [obs_dim, actions] array")
    return table


class DemoArrays(NamedTuple):
    """What behaviour cloning reads from a dataset, as arrays (they may be traced)."""

    observations: jax.Array  # [N, *obs_shape]
    actions: jax.Array  # [N] int32
    rewards: jax.Array  # [N]
    done: jax.Array  # [N] bool: terminated or truncated


def demo_arrays(demos) -> DemoArrays:
    return DemoArrays(
        jnp.asarray(demos.observations),
        jnp.asarray(demos.actions, jnp.int32),
        jnp.asarray(demos.rewards),
        jnp.asarray(demos.terminated | demos.truncated),
    )


def prior_ac(config: PriorACConfig | None = None, **overrides) -> Agent:
    """Stream AC(lambda) from an imitation and/or language-model prior (see module docstring)."""
    return prior_ac_parts(config, **overrides)[0]


def prior_ac_parts(config: PriorACConfig | None = None, **overrides) -> tuple[Agent, Any]:
    """(agent, init_with): init_with(key, obs_spec, action_spec, data: DemoArrays | None) is the
    agent's init cloning `data` instead of the configured dataset (None: no cloning, the prior
    left at the initial policy; same state structure). Conditions that differ only in their
    dataset share one compiled init and one compiled stream this way (oakrl.study.prior)."""
    cfg = configure(PriorACConfig, config, overrides)
    demos = None
    if cfg.demos:
        from oakrl.priors.demos import read_demos

        demos = read_demos(cfg.demos)
        if "discrete" not in demos.header["action"]:
            raise ConfigError(f"prior-ac clones discrete actions; {cfg.demos} holds continuous ones")
    table_np = load_table(cfg.lm_table) if cfg.lm_table else None

    def agent_cloning(data: Callable[[], DemoArrays | None]) -> Agent:
        return actor_critic("prior-ac", cfg, prior_actor(cfg, demos, table_np, data))

    agent = agent_cloning(lambda: demo_arrays(demos) if demos is not None else None)

    def init_with(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec, data: DemoArrays | None):
        return agent_cloning(lambda: data).init(key, obs_spec, action_spec)

    return agent, init_with


def prior_actor(cfg: PriorACConfig, demos, table_np: np.ndarray | None, data) -> Actor:
    """Stream AC's actor with a prior: its logits, the KL pull, the trust estimate, BC at init.

    data: () -> the DemoArrays to clone at init (None: none)."""
    gamma, entropy = cfg.gamma, cfg.entropy
    use_net, use_table = demos is not None, table_np is not None
    has_prior = use_net or use_table

    def check_fit(obs_spec: ArraySpec, action_spec: Spec) -> None:
        if not isinstance(action_spec, DiscreteSpec):
            raise ConfigError("prior-ac needs discrete actions; use stream-ac for continuous ones")
        n = action_spec.num_values
        if demos is not None:
            h = demos.header
            if list(h["obs_shape"]) != list(obs_spec.shape) or h["action"]["discrete"] != n:
                raise ConfigError(
                    f"demonstrations {cfg.demos} are of {h['env']} (obs {h['obs_shape']}, "
                    f"{h['action']['discrete']} actions), not of this environment "
                    f"(obs {list(obs_spec.shape)}, {n} actions)"
                )
        if table_np is not None and (len(obs_spec.shape) != 1 or table_np.shape != (obs_spec.shape[0], n)):
            raise ConfigError(
                f"lm_table {cfg.lm_table} has shape {list(table_np.shape)}; this environment needs "
                f"[{', '.join(map(str, obs_spec.shape))}, {n}] (one-hot observations x actions)"
            )

    def init(key: jax.Array, obs_spec: ArraySpec, action_spec: Spec, nets) -> ActorStart:
        check_fit(obs_spec, action_spec)
        arrays = data()
        n = action_spec.num_values
        k_v, k_p, k_bc, k_val = jax.random.split(key, 4)
        v_net, p_net = nets(obs_spec.shape, n)
        v, p = v_net.init(k_v, obs_spec.shape), p_net.init(k_p, obs_spec.shape)
        norm = normalizers_init(obs_spec)
        prior: Any = ()
        if demos is not None and arrays is None:
            prior = p
        if demos is not None and arrays is not None:
            from oakrl.priors.bc import bc_policy_loss, discounted_returns, fit, stream_stats, value_loss

            obs, done, rewards = arrays.observations, arrays.done, arrays.rewards
            norm_fit, z, scaled = stream_stats(norm, obs, rewards, done, gamma)
            if cfg.normalize_obs:
                norm = norm._replace(obs=norm_fit.obs)
            else:
                z = obs
            if cfg.scale_reward:
                norm = norm._replace(reward=norm_fit.reward)
            else:
                scaled = rewards
            rows = int(obs.shape[0])
            steps, batch, lr = cfg.bc_steps, cfg.bc_batch, cfg.bc_lr
            loss = bc_policy_loss(p_net.apply, z, arrays.actions, n, cfg.bc_smoothing)
            p, _ = fit(p, loss, rows, steps, batch, lr, k_bc)
            if cfg.bc_value:
                targets = discounted_returns(scaled, done, gamma)
                v, _ = fit(v, value_loss(v_net.apply, z, targets), rows, steps, batch, lr, k_val)
            prior = p
        table = jnp.asarray(table_np) if table_np is not None else jnp.zeros((0, n), jnp.float32)
        extra = PriorExtra(
            prev_raw=jnp.zeros(obs_spec.shape, jnp.float32),
            prior=prior,
            table=table,
            trust=jnp.ones((), jnp.float32),
        )
        return ActorStart(v, p, jnp.zeros((), jnp.int32), extra, norm)

    def table_logits(extra: PriorExtra, beta_t, x_raw):
        return beta_t * (x_raw @ extra.table) if use_table else 0.0

    def context(extra: PriorExtra, t: Transition):
        """(beta_t, log q(.|s) or None, kl_t): the prior's side of this step."""
        beta_t = cfg.prior_beta * _decay(t.steps, cfg.beta_half_life)
        logq = None
        if has_prior:  # q(.|s): the cloned policy and/or the LM table, as one distribution
            logits = jnp.zeros(extra.table.shape[1])
            if use_net:
                logits = logits + net(t.obs.shape, extra.table.shape[1], cfg.hidden, cfg.sparsity).apply(
                    extra.prior, t.obs
                )
            if use_table:
                logits = logits + extra.prev_raw @ extra.table
            logq = jax.nn.log_softmax(logits)
        kl_t = cfg.kl * _decay(t.steps, cfg.kl_half_life) * jnp.clip(extra.trust, 0.0, 1.0)
        return beta_t, logq, kl_t

    def objective(out: jax.Array, extra: PriorExtra, t: Transition, delta: jax.Array, ctx):
        # log pi(a|s) + entropy sign(delta) H(pi(.|s)) - kl_t sign(delta) KL(pi(.|s) || q(.|s))
        beta_t, logq, kl_t = ctx
        logp = jax.nn.log_softmax(out + table_logits(extra, beta_t, extra.prev_raw))
        pi = jnp.exp(logp)
        ent = -jnp.sum(pi * logp)
        obj = logp[t.action] + entropy * jnp.sign(delta) * ent
        kl = jnp.sum(pi * (logp - logq)) if has_prior else jnp.zeros(())
        if has_prior and cfg.kl > 0:
            obj = obj - kl_t * jnp.sign(delta) * kl
        return obj, (ent, (kl, pi))

    def act(extra: PriorExtra, policy, p_net, t: Transition, aux, delta, ctx, key: jax.Array):
        beta_t, logq, kl_t = ctx
        kl, pi = aux
        trust = extra.trust
        if has_prior and cfg.kl_adapt > 0:
            pref = logq[t.action] - jnp.sum(pi * logq)
            signal = jnp.sign(delta) * jnp.sign(pref)
            trust = trust + t.learn * cfg.kl_adapt * (signal - trust)
        raw = t.ts.observation.astype(jnp.float32)
        logits = p_net.apply(policy, t.next_obs) + table_logits(extra, beta_t, raw)
        action = jax.random.categorical(key, logits).astype(jnp.int32)
        info = dict(kl=kl, kl_strength=kl_t, trust=trust, prior_beta=beta_t) if has_prior else {}
        return extra._replace(prev_raw=raw, trust=trust), policy, action, info

    return Actor(init, context, objective, act)
