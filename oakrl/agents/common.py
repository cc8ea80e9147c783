"""What the streaming agents share: their option groups, input normalisation, flat networks,
optimiser choice.

Option groups are frozen `Config` dataclasses that agent configs inherit, so no option is
declared twice. A dataclass orders inherited fields by reverse MRO: in
`class StreamQConfig(PlasticityOptions, EpsilonGreedyOptions)` the epsilon group (and the stream
options it extends) come first and the plasticity options last, which keeps each agent's
`to_dict()` (config.json) in the order it always had.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Self

import flax.linen as nn
import jax
import jax.numpy as jnp

from oakrl.core.config import Config, RunFacts, option
from oakrl.core.types import DiscreteSpec, Spec
from oakrl.errors import ConfigError
from oakrl.learn.adaptive import adaptive_q
from oakrl.learn.intentional import POLICY_ETA, VALUE_ETA, intentional
from oakrl.learn.nets import make_network
from oakrl.learn.obgd import adaptive_obgd, obgd
from oakrl.learn.plasticity import REMEDIES, Remedy, RemedyOptimizer, hidden_features, remedy, split_keys
from oakrl.learn.stepsize import tidbd_obgd
from oakrl.learn.swift_td import ETA as SWIFT_TD_ETA
from oakrl.learn.swift_td import ETA_MIN as SWIFT_TD_ETA_MIN
from oakrl.learn.swift_td import swift_td

OPTIMIZERS = ("obgd", "adaptive-obgd", "tidbd-obgd", "adaptive-q", "intentional", "swift-td")
# The learners of 2026 take their paper's own step parameter; `lr` scales it (1.0: the paper's).
ADAPTIVE_Q_ETA = 4.6e-4  # eta of Adaptive Q(lambda) (oakrl/learn/adaptive.py says where it is from)

# Stream Q and Dyna explore over this many steps when built outside a run (no RunFacts to take
# 5% of): what `stream_q()` has always done from Python.
EXPLORATION_STEPS_OUTSIDE_A_RUN = 50_000


def redefault(group: type[Config], name: str, default: Any) -> Any:
    """`group`'s option `name` with another default (its meaning and bounds kept, its place too)."""
    f = group.__dataclass_fields__[name]
    return dataclasses.field(default=default, metadata=f.metadata)


def check_discrete(name: str, action_spec: Spec) -> None:
    """One-line ConfigError where a discrete-only agent meets continuous actions."""
    if not isinstance(action_spec, DiscreteSpec):
        raise ConfigError(
            f"{name} needs discrete actions and this environment's are continuous; use stream-ac"
        )


@dataclasses.dataclass(frozen=True)
class DiscreteOnly(Config):
    """Marks an agent config whose agent acts in discrete actions only; `resolve` refuses others."""

    def resolve(self, run: RunFacts) -> Self:
        check_discrete(self.agent_name(), run.action_spec)
        return super().resolve(run)


@dataclasses.dataclass(frozen=True)
class StreamOptions(Config):
    """What every streaming learner shares (Elsayed, Vasan & Mahmood 2024)."""

    hidden: tuple[int, ...] = option((128, 128), "hidden layer widths; () (linear) has none", each_gt=0)
    lr: float = option(
        1.0, "ObGD step size; adaptive-q, intentional, swift-td: a multiple of the paper's", gt=0
    )
    gamma: float = option(0.99, "discount", ge=0, le=1)
    lamda: float = option(0.8, "trace decay lambda", ge=0, le=1)
    sparsity: float = option(0.9, "fraction of initial weights set to zero", ge=0, lt=1)
    optimizer: str = option("obgd", "the traced optimiser", choices=OPTIMIZERS)
    normalize_obs: bool = option(True, "standardise observations with running statistics")
    scale_reward: bool = option(True, "divide rewards by the running std of the discounted return")

    # SwiftTD's algebra (True Online TD's correction) holds for a prediction linear in its weights
    # learned on-policy from one unbroken stream: agents where that holds set this.
    SWIFT_TD_FITS = False

    def validate(self) -> None:
        super().validate()
        if self.optimizer == "swift-td":
            if not self.SWIFT_TD_FITS:
                raise ConfigError(
                    f"optimizer=swift-td is for linear on-policy prediction; {self.agent_name()} cannot "
                    "take it (use stream-td or stream-sarsa with hidden=linear)"
                )
            if self.hidden:
                raise ConfigError("optimizer=swift-td needs a linear prediction: set hidden=linear")
            if self.lr * SWIFT_TD_ETA < SWIFT_TD_ETA_MIN:
                raise ConfigError(
                    f"optimizer=swift-td: lr scales eta ({SWIFT_TD_ETA}) and must keep it >= "
                    f"{SWIFT_TD_ETA_MIN:g}, got lr={self.lr!r}"
                )


@dataclasses.dataclass(frozen=True)
class StreamLearnerOptions(StreamOptions):
    """A learner of one network (a value or action-value function)."""

    kappa: float = option(2.0, "ObGD overshooting bound", gt=0)


@dataclasses.dataclass(frozen=True)
class EpsilonGreedyOptions(StreamLearnerOptions):
    """Epsilon-greedy exploration decaying linearly over `exploration_steps`, then flat."""

    epsilon_start: float = option(1.0, "exploration at the first step", ge=0, le=1)
    epsilon_end: float = option(0.01, "exploration after the decay", ge=0, le=1)
    exploration_steps: int | None = option(50_000, "steps of the decay; none: 5% of the run", ge=1)

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)
        if cfg.exploration_steps is None:  # the paper's schedule: explore over the first 5% of the stream
            cfg = cfg.replace(exploration_steps=max(1, int(0.05 * run.steps)))
        return cfg


def epsilon_schedule(cfg: EpsilonGreedyOptions):
    """t [] int32 -> epsilon [] float32 of an epsilon-greedy config."""
    steps = cfg.exploration_steps if cfg.exploration_steps is not None else EXPLORATION_STEPS_OUTSIDE_A_RUN

    def epsilon(t: jax.Array) -> jax.Array:
        frac = jnp.clip(t.astype(jnp.float32) / max(steps, 1), 0.0, 1.0)
        return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)

    return epsilon


@dataclasses.dataclass(frozen=True)
class ActorCriticOptions(StreamOptions):
    """A critic and an actor network, each with its own ObGD bound; stream-x's entropy bonus."""

    kappa_value: float = option(2.0, "ObGD overshooting bound of the critic", gt=0)
    kappa_policy: float = option(3.0, "ObGD overshooting bound of the actor", gt=0)
    entropy: float = option(0.01, "entropy bonus, scaled by sign(delta)", ge=0)
    obs_raw_tail: int = option(
        0,
        "last N observation entries left out of normalisation (1 with --env-opt time_feature=true: "
        "stream-x appends the time feature after normalising)",
        ge=0,
    )

    def resolve(self, run: RunFacts) -> Self:
        cfg = super().resolve(run)
        if cfg.obs_raw_tail:
            if len(run.obs_shape) != 1:
                raise ConfigError(f"obs_raw_tail needs a flat observation, got shape {run.obs_shape}")
            if cfg.obs_raw_tail > run.obs_shape[0]:
                raise ConfigError(
                    f"obs_raw_tail={cfg.obs_raw_tail} is more than the {run.obs_shape[0]} observation entries"
                )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        # Listed only when set, so that the config (and identity) of every earlier run stays as it was.
        d = super().to_dict()
        if not d["obs_raw_tail"]:
            del d["obs_raw_tail"]
        return d


@dataclasses.dataclass(frozen=True)
class PlasticityOptions(Config):
    """The loss-of-plasticity remedy and diagnostics of oakrl.learn.plasticity.

    Every network agent takes them (one RemedyOptimizer per network). OaK does not: it is linear
    in the observation, with no hidden units for cbp/redo/dormancy to act on.
    """

    plasticity: str = option("none", "remedy for loss of plasticity", choices=REMEDIES)
    plasticity_diagnostics: bool = option(False, "dormant, weight_mag, eff_rank, replaced in info")
    plasticity_options: dict = option({}, "PlasticityConfig fields, e.g. {rate = 1e-4, maturity = 100}")

    # stream-ac and stream-q took these options before every network agent did: their
    # config.json always lists them. Other agents list them only when set, so the config (and
    # the identity) of every run made before they took them stays what it was.
    PLASTICITY_ALWAYS_LISTED = False

    def validate(self) -> None:
        super().validate()
        make_remedy(self)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not self.PLASTICITY_ALWAYS_LISTED:
            for name, info in PlasticityOptions.option_info().items():
                if d[name] == info.default:
                    del d[name]
        return d

    def remedy(self) -> Remedy:
        return make_remedy(self)


def make_remedy(cfg: PlasticityOptions) -> Remedy:
    """The plasticity remedy of an agent config (raises ConfigError on bad values)."""
    hidden = getattr(cfg, "hidden", (1,))
    if cfg.plasticity != "none" and not hidden:
        raise ConfigError("a plasticity remedy needs hidden layers; hidden=linear has no units to treat")
    options = dict(cfg.plasticity_options or {})
    options.setdefault("sparsity", getattr(cfg, "sparsity", 0.9))
    try:
        return remedy(cfg.plasticity, bool(cfg.plasticity_diagnostics), **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def configure(cls: type[Config], config: Config | None, overrides: dict[str, Any]) -> Any:
    """The checked config an agent factory runs with: `config` (default `cls()`) with `overrides`."""
    if config is None:
        config = cls()
    if overrides:
        return type(config).build({**config.to_dict(), **overrides})
    config.check()
    return config


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


def make_optimizer(name: str, lr: float, gamma: float, lamda: float, kappa: float, role: str = "value"):
    """The traced optimiser `name` of one network; `role` "policy" (an actor's log-probability)
    makes `intentional` Intentional PG (eta 0.05, normalised advantage), else Intentional TD.
    kappa is ObGD's bound; adaptive-q, intentional and swift-td have none (they bound their step
    otherwise). swift-td: `lr` scales eta, SwiftTD's bound on the rate of learning."""
    if name == "obgd":
        return obgd(lr, gamma, lamda, kappa)
    if name == "adaptive-obgd":
        return adaptive_obgd(lr, gamma, lamda, kappa)
    if name == "tidbd-obgd":
        return tidbd_obgd(lr, gamma, lamda, kappa)
    if name == "adaptive-q":
        return adaptive_q(lr * ADAPTIVE_Q_ETA, gamma, lamda)
    if name == "swift-td":
        return swift_td(lr * SWIFT_TD_ETA, gamma, lamda)
    if name == "intentional":
        if role == "policy":
            return intentional(lr * POLICY_ETA, gamma, lamda, normalize_delta=True)
        return intentional(lr * VALUE_ETA, gamma, lamda)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def q_lambda_update(opt: RemedyOptimizer, qn: Net, state: Any, t: Any, gamma: float, key: jax.Array):
    """One Watkins Q(lambda) step on the last transition, shared by stream-q and dyna.

    `state` has fields q, opt and prev_explored; `t` is the skeleton's Transition (its `learn`
    masks the very first step). delta = r + gamma (1 - done) max_a' q(s', a') - q(s, a); the
    trace is cleared after the update where the episode ended or the action was exploratory;
    the optimiser's plasticity remedy (if any) draws from `key`.
    Returns (key left for acting, q params, opt state, q(s, a), delta, remedy info).
    """

    def q_fn(p):  # the hidden features come out of the same forward pass, for the remedy
        out, feats = qn.apply_features(p, t.obs) if opt.active else (qn.apply(p, t.obs), {})
        return out[t.action], feats

    bootstrap = gamma * (1.0 - t.done) * jnp.max(qn.apply(state.q, t.next_obs))
    reset = jnp.logical_or(t.done, state.prev_explored)
    key, (k_pl,) = split_keys(key, opt.active, 1)
    (q_sa, feats), g = jax.value_and_grad(q_fn, has_aux=True)(state.q)
    delta = (t.reward + bootstrap - q_sa) * t.learn
    g = jax.tree.map(lambda x: x * t.learn, g)
    q, opt_state, info = opt.update(state.q, state.opt, g, k_pl, feats, delta=delta, reset=reset)
    return key, q, opt_state, q_sa, delta, info
