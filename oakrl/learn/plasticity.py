"""Remedies for loss of plasticity, and cheap diagnostics of it.

(Longer than 400 lines on purpose: the four remedies share one state, one unit bookkeeping and
one masked update, `plasticity_update`, which reads best in one place.)

Networks trained on a long non-stationary stream lose the ability to learn (Dohare et al.,
Nature 2024). Each remedy here is applied to the parameters *after* the optimiser's update,
so it composes with ObGD (or any optax-style learner):

  cbp             continual backprop (Dohare et al. 2024): a per-unit contribution utility
                  u <- eta u + (1 - eta) |h| sum_k |w_out|; every step, a fraction `rate` of
                  the units older than `maturity` is due for replacement (fractional counts
                  carried); the lowest-utility (bias-corrected) eligible units get fresh
                  incoming weights from the sparse initial distribution, zero bias and zero
                  outgoing weights (so the new unit adds nothing to the output yet); their
                  utility and age restart at 0.
  redo            ReDo (Sokar et al. 2023): every `every` steps, units whose running mean
                  |h|, divided by the layer's mean, is <= `tau` (dormant) are reset the same way.
  shrink-perturb  Ash & Adams 2020, per step: theta <- (1 - shrink) theta + sigma * noise, the
                  noise uniform with variance 1 (cheaper than N(0, 1) on CPU, same variance),
                  hashed from a per-step seed and each weight's index (`counter_uniform`).
  l2-init         Kumar et al. 2023, per step: theta <- theta - l2 (theta - theta_0).

Units are those of the hidden Dense layers of a Flax param tree {"Dense_0", ..., "head"}: the
incoming weights of unit j of `Dense_i` are kernel[:, j] and bias[j]; its outgoing weights
are row j of the next Dense layer's kernel (or of "head"). Conv layers are left alone by the
unit resets (their units feed the next layer through a flatten).

Where an optimiser state with a `trace` field (ObGD, AdaptiveObGD, TIDBD-ObGD) is passed, the
eligibility-trace entries of a replaced unit's incoming and outgoing weights are zeroed too.
Agents do not wire this themselves: `with_remedy(optimiser, remedy)` is the one piece (a
RemedyOptimizer) that steps a network's optimiser and then applies its remedy.

Everything is fixed-shape and jittable: resets are masks. At most `max_resets` units per layer
are replaced per step (static, so the fresh weights are drawn for that many columns only);
units due beyond it wait for the next step (CBP carries the count, ReDo the next check).
Choosing and drawing run only at steps where a unit may be due (`when_any`: a lax.cond that
stays a branch under vmap), so cbp and redo cost little more than their running averages.

Diagnostics (`diagnostics=True`, returned in `info`): `dormant` (fraction of hidden units whose
running |h| over the layer mean is <= tau), `weight_mag` (mean |w| of all kernels), `eff_rank`
(effective rank, Roy & Vetterli 2007, of the last `rank_window` feature vectors of the last
hidden layer, recomputed every `rank_every` steps with lax.cond and carried in between; off by
default: under vmap lax.cond becomes a select, so the SVD runs every step and the compiled lab
is ~10x slower (benchmarks/plasticity_throughput.py)), `replaced` (units replaced this step).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from oakrl.learn.nets import layer_norm, leaky_relu

PyTree = Any

REMEDIES = ("none", "cbp", "redo", "shrink-perturb", "l2-init")
# kind="all" (not offered to agents): every mechanism on, with magnitudes from the config, which
# may then be traced arrays. Studies use it to vmap over methods with one compilation: rate=0
# switches CBP off, a huge `every` ReDo, shrink=sigma=0 shrink & perturb, l2=0 L2-init.


def _does(cfg, mechanism: str) -> bool:
    return cfg.kind in (mechanism, "all")


class PlasticityConfig(NamedTuple):
    kind: str = "none"
    diagnostics: bool = False
    decay: float = 0.99  # eta: utility and activity running averages
    maturity: int = 100  # cbp: steps before a unit may be replaced
    rate: float = 1e-4  # cbp: replacement rate rho, fraction of eligible units per step
    max_resets: int = 1  # cbp/redo: at most this many units per layer per step
    tau: float = 0.1  # redo and the dormant diagnostic: dormancy threshold
    every: int = 1000  # redo: steps between checks
    shrink: float = 1e-4  # shrink-perturb
    sigma: float = 1e-4  # shrink-perturb
    l2: float = 1e-4  # l2-init
    sparsity: float = 0.9  # re-initialisation of replaced units (as the network's init)
    rank_every: int = 0  # eff_rank: steps between recomputations (0: off; ~10x slower under vmap)
    rank_window: int = 64  # eff_rank: feature vectors kept


def make_config(kind: str = "none", diagnostics: bool = False, **options) -> PlasticityConfig:
    """Validated config; raises ValueError (one line) on unknown names or impossible values."""
    if kind not in REMEDIES:
        raise ValueError(f"unknown plasticity remedy {kind!r}; valid: {', '.join(REMEDIES)}")
    unknown = sorted(set(options) - set(PlasticityConfig._fields) - {"kind", "diagnostics"})
    if unknown:
        raise ValueError(
            f"unknown plasticity option {unknown[0]!r}; valid: {', '.join(PlasticityConfig._fields[2:])}"
        )
    cfg = PlasticityConfig(kind=kind, diagnostics=bool(diagnostics), **options)
    if not 0.0 <= cfg.decay < 1.0:
        raise ValueError(f"plasticity decay must be in [0, 1), got {cfg.decay}")
    for name in ("rate", "shrink", "sigma", "l2", "tau"):
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"plasticity {name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("max_resets", "every", "rank_window"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"plasticity {name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.maturity < 0 or cfg.rank_every < 0:
        raise ValueError("plasticity maturity and rank_every must be >= 0")
    return cfg


def hidden_layers(params: PyTree) -> list[tuple[str, str]]:
    """(layer, next layer) for every hidden Dense layer, in order."""
    dense = sorted((k for k in params if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    names = [*dense, "head"]
    return list(zip(names[:-1], names[1:], strict=True))


def hidden_features(module: nn.Module, params: PyTree, x: jax.Array) -> tuple[jax.Array, dict]:
    """(output, {Dense_i: post-activation features}) of an oakrl.learn.nets network.

    One forward pass: the Dense outputs are captured and put through the same
    layer_norm -> leaky_relu as the network does.
    """
    out, state = module.apply(
        {"params": params},
        x,
        capture_intermediates=lambda mdl, _: isinstance(mdl, nn.Dense) and mdl.name != "head",
        mutable=["intermediates"],
    )
    inter = state["intermediates"]
    feats = {k: leaky_relu(layer_norm(v["__call__"][0])) for k, v in inter.items() if k.startswith("Dense_")}
    return out, feats


class PlasticityState(NamedTuple):
    utility: dict  # layer -> [width] running contribution utility
    activity: dict  # layer -> [width] running mean |h|
    age: dict  # layer -> [width] int32 steps since the unit was (re)initialised
    pending: dict  # layer -> [] float32 fractional replacements carried (cbp)
    anchor: PyTree  # initial parameters (l2-init), else ()
    window: Any  # [rank_window, width] last features of the last hidden layer, else ()
    count: jax.Array  # [] int32 updates so far
    eff_rank: jax.Array  # [] float32 last computed effective rank
    replaced: jax.Array  # [] float32 units replaced so far


def _tracks_units(cfg: PlasticityConfig) -> bool:
    return cfg.kind in ("cbp", "redo", "all") or cfg.diagnostics


def _rank_on(cfg: PlasticityConfig) -> bool:
    return cfg.diagnostics and cfg.rank_every > 0


def plasticity_init(cfg: PlasticityConfig, params: PyTree) -> PlasticityState:
    layers = hidden_layers(params) if _tracks_units(cfg) else []
    width = {name: params[name]["bias"].shape[-1] for name, _ in layers}
    zeros = {n: jnp.zeros((w,), jnp.float32) for n, w in width.items()}
    window: Any = ()
    if _rank_on(cfg) and layers:
        window = jnp.zeros((cfg.rank_window, width[layers[-1][0]]), jnp.float32)
    return PlasticityState(
        utility=zeros,
        activity=dict(zeros),
        age={n: jnp.zeros((w,), jnp.int32) for n, w in width.items()},
        pending={n: jnp.zeros((), jnp.float32) for n in width},
        anchor=jax.tree.map(jnp.copy, params) if _does(cfg, "l2-init") else (),
        window=window,
        count=jnp.zeros((), jnp.int32),
        eff_rank=jnp.zeros((), jnp.float32),
        replaced=jnp.zeros((), jnp.float32),
    )


def effective_rank(features: jax.Array, eps: float = 1e-12) -> jax.Array:
    """exp(entropy of the normalised singular values) of a [n, d] matrix (Roy & Vetterli 2007)."""
    s = jnp.linalg.svd(features, compute_uv=False)
    p = s / jnp.maximum(jnp.sum(s), eps)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, eps)), 0.0)))


def ranks(score: jax.Array) -> jax.Array:
    """int32[width]: each entry's position in ascending order (ties: lowest index first).

    Up to 512 entries by counting, for each entry, the entries that come before it: O(width^2)
    comparisons, but XLA:CPU's sort is slow, and at width 32 (the plasticity-rl study's ReDo)
    counting is about 7x faster than two argsorts, 5x at 128. Wider layers use the sorts.
    """
    if score.shape[-1] > 512:
        return jnp.argsort(jnp.argsort(score, stable=True), stable=True)
    i = jnp.arange(score.shape[-1])
    before = (score[None, :] < score[:, None]) | (
        (score[None, :] == score[:, None]) & (i[None, :] < i[:, None])
    )
    return jnp.sum(before, axis=1, dtype=jnp.int32)


def lowest(score: jax.Array, n: jax.Array, most: int) -> jax.Array:
    """Mask of the min(n, most) lowest finite entries of `score` (ties: lowest index first).

    Up to 4: `most` argmins rather than ranks (on CPU two argsorts of 128 cost more than the
    whole rest of a remedy step); more: `ranks`.
    """
    if most > 4:  # many at once (ReDo): ranks beat `most` sequential argmins
        return (ranks(score) < jnp.minimum(n, most)) & jnp.isfinite(score)
    mask = jnp.zeros(score.shape, bool)
    for r in range(most):
        i = jnp.argmin(score)
        take = (r < n) & jnp.isfinite(score[i])
        mask = mask.at[i].set(mask[i] | take)
        score = score.at[i].set(jnp.inf)
    return mask


def fresh_columns(key: jax.Array, fan_in: int, count: int, sparsity: float, dtype=jnp.float32) -> jax.Array:
    """[fan_in, count] weights from the sparse initial distribution: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    each weight zero with probability `sparsity` (sparse_init zeroes exactly ceil(sparsity * fan_in)
    per unit; a Bernoulli mask has the same expected sparsity and avoids a sort per step).

    More than 4 columns (ReDo resets a whole layer's worth) are drawn from a threefry key made
    from `key`: the lab's keys are `unsafe_rbg`, whose large draws are slow on XLA:CPU (a
    [64, 32] plus a [32, 32] block for 5 seeds: 550 us a step with rbg, 110 with threefry),
    and under vmap the draw happens at every step, due or not."""
    if count > 4:
        key = jax.random.wrap_key_data(jax.random.bits(key, (2,), jnp.uint32), impl="threefry2x32")
    k_w, k_m = jax.random.split(key)
    scale = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_w, (fan_in, count), dtype, -scale, scale)
    if sparsity > 0:
        w = jnp.where(jax.random.uniform(k_m, (fan_in, count)) < sparsity, 0.0, w)
    return w


def counter_uniform(seed: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Noise uniform on (-1, 1) (variance 1/3), one value per entry of `shape`, from a uint32 seed.

    Entry i is the murmur3 finaliser (fmix32: two multiplies, three xor-shifts) of
    i * 0x9E3779B9 + seed, its top 24 bits made an odd integer v in [-(2^24 - 1), 2^24 - 1] and
    scaled by 2^-24: values on a lattice symmetric about 0, so the mean is exactly 0. A
    counter-based hash rather than jax.random: shrink & perturb needs a fresh draw for every
    weight at every step, and on XLA:CPU threefry (or the lab's unsafe_rbg keys) made that
    draw cost 5-10x the whole learning step; these integer ops fuse into the update itself.
    Statistically weaker than threefry (no cryptographic claims), ample for perturbation noise.
    """
    n = math.prod(shape)
    h = jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9) + seed.astype(jnp.uint32)
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    v = ((h >> 7) | jnp.uint32(1)).astype(jnp.int32) - (1 << 24)  # odd, |v| < 2^24: exact in f32
    return (v.astype(jnp.float32) * (1.0 / (1 << 24))).astype(dtype).reshape(shape)


def _mean_abs(h: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(h).reshape(-1, h.shape[-1]), axis=0)


def _zero_unit(tree: PyTree, name: str, nxt: str, replace: jax.Array) -> PyTree:
    """Zeroes unit entries (incoming column, bias, outgoing row) of a params-like tree."""
    tree = {**tree, name: dict(tree[name]), nxt: dict(tree[nxt])}
    tree[name]["kernel"] = jnp.where(replace[None, :], 0.0, tree[name]["kernel"])
    tree[name]["bias"] = jnp.where(replace, 0.0, tree[name]["bias"])
    tree[nxt]["kernel"] = jnp.where(replace[:, None], 0.0, tree[nxt]["kernel"])
    return tree


def when_any(pred: jax.Array, true_fn, false_fn, operand: PyTree) -> PyTree:
    """`lax.cond(pred, true_fn, false_fn, operand)` that stays a branch under vmap.

    Under vmap, lax.cond with a batched predicate becomes a select: both branches run for every
    member at every step. Here the batched version runs `false_fn` for all members when no
    member's `pred` holds, else `true_fn` for all and keeps, per member, its own branch's result
    (`where(pred, true, false)`): each member gets exactly what lax.cond would give it, and the
    costly branch runs only at steps where some member needs it. Nested vmaps (methods x seeds)
    gate on any member of all of them.

    true_fn and false_fn must be pure functions of `operand` (no traced values closed over) with
    the same output structure.
    """

    @jax.custom_batching.custom_vmap
    def gated(pred, operand):
        return jax.lax.cond(pred, true_fn, false_fn, operand)

    @gated.def_vmap
    def batched(axis_size, in_batched, pred, operand):
        pred_b, op_b = in_batched
        grow = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))  # noqa: E731
        operand = jax.tree.map(grow, operand, op_b)
        pred = grow(pred, pred_b)

        def each(p, x):
            return jax.tree.map(lambda t, f: jnp.where(p, t, f), true_fn(x), false_fn(x))

        out = when_any(
            jnp.any(pred),
            lambda po: jax.vmap(each)(*po),
            lambda po: jax.vmap(false_fn)(po[1]),
            (pred, operand),
        )
        return out, jax.tree.map(lambda _: True, out)

    return gated(pred, operand)


def plasticity_update(
    cfg: PlasticityConfig,
    params: PyTree,
    state: PlasticityState,
    features: dict,
    key: jax.Array,
    opt_state: Any = None,
    gate: bool = True,
) -> tuple[PyTree, Any, PlasticityState, dict]:
    """Applies the remedy after a learning step. Returns (params, opt_state, state, info).

    features: {Dense_i: activations [..., width]} of the sample just learned on (see
    `hidden_features`); needed by cbp/redo/diagnostics, ignored otherwise.

    The running activities, ages and (cbp) utilities are updated every step (O(width) per
    layer, plus cbp's sum over the next layer's |weights|). Choosing the units to replace and
    drawing their fresh weights runs only at steps where a unit may be due, for some member of
    a vmapped batch (`when_any`; cbp: a whole replacement pending, redo: a check); the masked
    writes stay outside, one pass XLA fuses with the rest. The numbers are those of choosing
    and drawing at every step (gate=False, kept for the tests): bit for bit.
    """
    count = state.count + 1
    info: dict[str, jax.Array] = {}
    if cfg.kind == "none" and not cfg.diagnostics:
        return params, opt_state, state._replace(count=count), info
    params = {k: dict(v) for k, v in params.items()}
    trace = getattr(opt_state, "trace", None) if opt_state is not None else None
    layers = hidden_layers(params) if _tracks_units(cfg) else []
    resets = bool(layers) and (_does(cfg, "cbp") or _does(cfg, "redo"))
    utility, activity, age, pending = {}, {}, {}, {}
    d = cfg.decay

    def scores_of(activity: dict, age: dict) -> tuple[dict, dict]:
        """Per layer: the bias correction 1 - d^age (> 0 since age >= 1) and each unit's
        bias-corrected activity over the layer's mean (ReDo's score, the dormancy test)."""
        corrections, scores = {}, {}
        for name, _ in layers:
            corrections[name] = 1.0 - jnp.power(d, age[name].astype(jnp.float32))
            a_bc = activity[name] / corrections[name]
            scores[name] = a_bc / jnp.maximum(jnp.mean(a_bc), 1e-12)
        return corrections, scores

    # Every step: the running averages and ages (O(width) per layer; cbp's utility also sums the
    # next layer's |weights|) and whether any unit may be due.
    due = jnp.zeros((), bool)
    for name, nxt in layers:
        abs_h = _mean_abs(features[name])
        u, p = state.utility[name], state.pending[name]
        ag = state.age[name] + 1
        if _does(cfg, "cbp"):  # the utility is cbp's alone: redo and the diagnostics skip it
            out_mag = jnp.sum(jnp.abs(params[nxt]["kernel"]), axis=1)
            u = d * u + (1 - d) * abs_h * out_mag
            p = p + cfg.rate * jnp.sum(ag > cfg.maturity)
            due = due | (jnp.floor(p) >= 1)
        activity[name] = d * state.activity[name] + (1 - d) * abs_h
        utility[name], age[name], pending[name] = u, ag, p
    if _does(cfg, "redo"):
        due = due | ((count % cfg.every) == 0)

    dormant, units = jnp.zeros((), jnp.float32), 0
    if cfg.diagnostics and layers:  # the diagnostic: the units' scores before any replacement
        for score in scores_of(activity, age)[1].values():
            dormant = dormant + jnp.sum(score <= cfg.tau)
            units += int(score.shape[0])

    keys = None
    if _does(cfg, "shrink-perturb"):  # split outside the gate: the noise needs the last key
        keys = jax.random.split(key, len(layers) + 1)
    replaced_now = jnp.zeros((), jnp.float32)
    if resets:
        fan_in = {name: params[name]["kernel"].shape[0] for name, _ in layers}
        dtype = {name: params[name]["kernel"].dtype for name, _ in layers}

        def choose(x):
            """{layer: (units to replace [width] bool, fresh columns [fan_in, max_resets],
            pending after)}: the decisions and the draws, the part worth skipping."""
            (utility, activity, age, pending), key_or_keys, count = x
            ks = key_or_keys if keys is not None else jax.random.split(key_or_keys, len(layers) + 1)
            corrections, scores = scores_of(activity, age)
            out = {}
            for i, (name, _) in enumerate(layers):
                p = pending[name]
                replace = jnp.zeros(age[name].shape, bool)
                if _does(cfg, "cbp"):
                    eligible = age[name] > cfg.maturity
                    n = jnp.minimum(jnp.floor(p), cfg.max_resets)
                    score = jnp.where(eligible, utility[name] / corrections[name], jnp.inf)
                    replace = lowest(score, n, cfg.max_resets)
                    p = p - jnp.sum(replace)
                if _does(cfg, "redo"):
                    cand = ((count % cfg.every) == 0) & (scores[name] <= cfg.tau) & ~replace
                    score = jnp.where(cand, scores[name], jnp.inf)
                    replace = replace | lowest(score, cfg.max_resets - jnp.sum(replace), cfg.max_resets)
                fresh = fresh_columns(ks[i], fan_in[name], cfg.max_resets, cfg.sparsity, dtype[name])
                out[name] = (replace, fresh, p)
            return out

        def nothing(x):
            """What `choose` gives when no unit is due: no replacement, pending as it was (the
            fresh columns are then masked out, whatever they hold)."""
            (_, _, age, pending), _, _ = x
            return {
                name: (
                    jnp.zeros(age[name].shape, bool),
                    jnp.zeros((fan_in[name], cfg.max_resets), dtype[name]),
                    pending[name],
                )
                for name, _ in layers
            }

        # Everything the branches read goes in the operand (when_any's branches close over
        # no traced values).
        operand = ((utility, activity, age, pending), keys[:-1] if keys is not None else key, count)
        # kind "all" may carry its magnitudes as traced arrays, which the gate's branches
        # cannot close over: those runs choose at every step.
        traced = any(isinstance(getattr(cfg, f), jax.Array) for f in ("maturity", "every", "tau", "rate"))
        chosen = when_any(due, choose, nothing, operand) if gate and not traced else choose(operand)
        # The replacement itself: masked writes, as cheap as one pass that XLA fuses with the
        # optimiser's update, so it stays outside the gate (and the data flow stays visible).
        for name, nxt in layers:
            replace, fresh, pending[name] = chosen[name]
            kernel = params[name]["kernel"]
            if cfg.max_resets == 1:  # the one slot: no cumsum (a scan on XLA:CPU) every step
                new_kernel = jnp.where(replace[None, :], fresh, kernel)
            else:
                slot = jnp.clip(jnp.cumsum(replace) - 1, 0, cfg.max_resets - 1)
                new_kernel = jnp.where(replace[None, :], fresh[:, slot], kernel)
            params = _zero_unit(params, name, nxt, replace)
            params[name]["kernel"] = new_kernel
            if trace is not None:
                trace = _zero_unit(trace, name, nxt, replace)
            utility[name] = jnp.where(replace, 0.0, utility[name])
            activity[name] = jnp.where(replace, 0.0, activity[name])
            age[name] = jnp.where(replace, 0, age[name])
            replaced_now = replaced_now + jnp.sum(replace)

    if _does(cfg, "shrink-perturb"):
        leaves, treedef = jax.tree.flatten(params)
        # One 32-bit seed per leaf per step; every weight's noise hashed from (seed, index).
        seeds = jax.random.bits(keys[-1], (len(leaves),), jnp.uint32)
        scale = math.sqrt(3.0) * cfg.sigma  # U(-1, 1) has variance 1/3
        leaves = [
            (1 - cfg.shrink) * x + counter_uniform(seeds[i], x.shape, x.dtype) * scale
            for i, x in enumerate(leaves)
        ]
        params = jax.tree.unflatten(treedef, leaves)
    if _does(cfg, "l2-init"):
        params = jax.tree.map(lambda x, x0: x - cfg.l2 * (x - x0), params, state.anchor)

    window, eff_rank = state.window, state.eff_rank
    if cfg.diagnostics:
        kernels = [v["kernel"] for v in params.values() if "kernel" in v]
        info["weight_mag"] = sum(jnp.sum(jnp.abs(k)) for k in kernels) / sum(k.size for k in kernels)
        if units:
            info["dormant"] = dormant / units
        if _rank_on(cfg) and layers:
            last = layers[-1][0]
            h = features[last].reshape(-1, features[last].shape[-1])[-1]
            window = jax.lax.dynamic_update_index_in_dim(window, h, count % cfg.rank_window, 0)
            eff_rank = jax.lax.cond(
                (count % cfg.rank_every == 0) | (count == cfg.rank_window),
                lambda w: effective_rank(w),
                lambda w: eff_rank,
                window,
            )
            info["eff_rank"] = eff_rank
        info["replaced"] = replaced_now

    if trace is not None and (_does(cfg, "cbp") or _does(cfg, "redo")):
        opt_state = opt_state._replace(trace=trace)
    new_state = PlasticityState(
        utility=utility if layers else state.utility,
        activity=activity if layers else state.activity,
        age=age if layers else state.age,
        pending=pending if layers else state.pending,
        anchor=state.anchor,
        window=window,
        count=count,
        eff_rank=eff_rank,
        replaced=state.replaced + replaced_now,
    )
    return params, opt_state, new_state, info


class Remedy(NamedTuple):
    """A remedy bound to its config: init(params) -> state; update(params, state, features, key,
    opt_state) -> (params, opt_state, state, info)."""

    config: PlasticityConfig

    @property
    def active(self) -> bool:
        return self.config.kind != "none" or self.config.diagnostics

    @property
    def needs_key(self) -> bool:
        return self.config.kind in ("cbp", "redo", "shrink-perturb", "all")

    def init(self, params: PyTree) -> PlasticityState:
        return plasticity_init(self.config, params)

    def update(self, params, state, features, key, opt_state=None):
        return plasticity_update(self.config, params, state, features, key, opt_state)


def remedy(kind: str = "none", diagnostics: bool = False, **options) -> Remedy:
    return Remedy(make_config(kind, diagnostics, **options))


class RemedyOptState(NamedTuple):
    opt: Any  # the optimiser's state (ObGD...: trace, last step size)
    plasticity: Any  # PlasticityState, or () when no remedy or diagnostics is on


class RemedyOptimizer(NamedTuple):
    """A traced optimiser and a plasticity remedy as one piece, for one network.

    `update` takes the optimiser's step on the gradients, then applies the remedy to the new
    parameters (and zeroes the trace entries of units it replaced): the composition every
    network agent needs, so none wires the remedy by hand. Not an optax transform returning
    updates: the remedy acts on the parameters after the step, and expressing it as an update
    (new - old) would change their last bits.
    """

    opt: Any  # optax.GradientTransformationExtraArgs taking delta= and reset=
    remedy: Remedy

    @property
    def active(self) -> bool:
        return self.remedy.active

    def init(self, params: PyTree) -> RemedyOptState:
        return RemedyOptState(self.opt.init(params), self.remedy.init(params) if self.active else ())

    def update(
        self, params: PyTree, state: RemedyOptState, grads: PyTree, key: jax.Array, features: dict, **extra
    ) -> tuple[PyTree, RemedyOptState, dict]:
        """(params, state, info) after one step; `extra` (delta=, reset=) goes to the optimiser.

        features: {Dense_i: activations} of the sample learned on (see `hidden_features`);
        key: the remedy's randomness (unused when it is off).
        """
        import optax

        updates, opt_state = self.opt.update(grads, state.opt, **extra)
        params = optax.apply_updates(params, updates)
        if not self.active:
            return params, RemedyOptState(opt_state, state.plasticity), {}
        params, opt_state, plasticity, info = self.remedy.update(
            params, state.plasticity, features, key, opt_state
        )
        return params, RemedyOptState(opt_state, plasticity), info


def with_remedy(opt: Any, rem: Remedy | None = None) -> RemedyOptimizer:
    """`opt` followed by the remedy `rem` (none: the optimiser alone)."""
    return RemedyOptimizer(opt, rem if rem is not None else remedy("none"))


def split_keys(key: jax.Array, active: bool, n: int) -> tuple[jax.Array, list]:
    """(key, n keys for remedies): split only when a remedy is on, so an agent without one draws
    exactly the random numbers it drew before remedies existed."""
    if not active:
        return key, [key] * n
    key, *keys = jax.random.split(key, n + 1)
    return key, keys
