"""Loss of plasticity on a continual supervised stream (the shape of Dohare et al. 2024, Fig. 1).

The stream, generated in-process: inputs x ~ N(0, I_d) one at a time, labelled by a fixed random
teacher network (d -> 100 ReLU units with +-1 weights -> `classes` outputs, argmax). Task k
shows the learner the inputs through its own random permutation of the d coordinates (online
permuted inputs, like Online Permuted MNIST), so every task needs the mapping learned anew.
The learner predicts each sample before learning from it (online accuracy), then takes one SGD
step on the cross-entropy (plain backprop), then the method's remedy acts
(oakrl.learn.plasticity). Every method of one seed sees the same samples and starts from the
same weights.

The whole lifetime is `lax.scan` over tasks (and over the steps within each), vmapped over
seeds and over methods: the methods are one compiled program (plasticity kind "all" with each
method's magnitudes as arrays), so the comparison costs one compilation.

Per task it records: online accuracy and loss, the fraction of dead hidden units (no positive
activation on a probe batch of 256 samples of the task), the fraction of dormant units
(running |h| over the layer mean <= 0.1), mean |w|, and the effective rank of the last hidden
layer's features on the probe batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.errors import ConfigError
from oakrl.learn.init import sparse_init
from oakrl.learn.nets import layer_norm
from oakrl.learn.plasticity import PlasticityConfig, effective_rank, plasticity_init, plasticity_update
from oakrl.study.common import METHODS


@dataclass
class SupervisedConfig:
    tasks: int = 200
    steps_per_task: int = 500
    seeds: int = 5
    seed: int = 0
    input_dim: int = 16
    classes: int = 10
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 0.05
    activation: str = "relu"  # relu | tanh | leaky_relu
    layer_norm: bool = False
    sparsity: float = 0.0  # of the initial (and re-initialised) weights
    methods: tuple[str, ...] = METHODS
    decay: float = 0.99
    cbp_rate: float = 5e-4
    maturity: int = 100
    redo_every: int = 1000
    redo_tau: float = 0.1
    max_resets: int = 1
    shrink: float = 1e-4
    sigma: float = 1e-3
    l2: float = 1e-3
    chunk_tasks: int = 25  # tasks per compiled call (progress between calls)
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        for name in (
            "tasks",
            "steps_per_task",
            "seeds",
            "input_dim",
            "classes",
            "chunk_tasks",
            "maturity",
            "redo_every",
            "max_resets",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.tasks < 10:
            raise ConfigError(f"tasks must be >= 10 (early and late are 10% each), got {self.tasks}")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"hidden must be positive widths, got {self.hidden!r}")
        if self.activation not in ("relu", "tanh", "leaky_relu"):
            raise ConfigError(f"activation must be relu, tanh or leaky_relu, got {self.activation!r}")
        for name in ("lr", "cbp_rate", "redo_tau", "shrink", "sigma", "l2"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.decay < 1 or not 0 <= self.sparsity < 1:
            raise ConfigError("decay and sparsity must be in [0, 1)")
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ConfigError(f"methods must be among {', '.join(METHODS)}, got {self.methods!r}")


def plasticity_config(cfg: SupervisedConfig, method: str) -> PlasticityConfig:
    return PlasticityConfig(
        kind="none" if method == "backprop" else method,
        diagnostics=False,
        decay=cfg.decay,
        maturity=cfg.maturity,
        rate=cfg.cbp_rate,
        # ReDo resets every dormant unit at a check (Sokar et al.), CBP a few at a time.
        max_resets=max(cfg.hidden) if method == "redo" else cfg.max_resets,
        tau=cfg.redo_tau,
        every=cfg.redo_every,
        shrink=cfg.shrink,
        sigma=cfg.sigma,
        l2=cfg.l2,
        sparsity=cfg.sparsity,
    )


def _act(name: str):
    if name == "relu":
        return jax.nn.relu
    if name == "tanh":
        return jnp.tanh
    return lambda x: jnp.where(x > 0, x, 0.01 * x)


def init_learner(cfg: SupervisedConfig, key: jax.Array) -> dict:
    widths = [cfg.input_dim, *cfg.hidden, cfg.classes]
    keys = jax.random.split(key, len(widths) - 1)
    init = sparse_init(cfg.sparsity)
    params = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        name = "head" if i == len(widths) - 2 else f"Dense_{i}"
        params[name] = {"kernel": init(keys[i], (a, b)), "bias": jnp.zeros((b,), jnp.float32)}
    return params


def forward(cfg: SupervisedConfig, params: dict, x: jax.Array) -> tuple[jax.Array, dict]:
    """x [..., d] -> (logits [..., classes], {Dense_i: features})."""
    act = _act(cfg.activation)
    feats = {}
    h = x
    for i in range(len(cfg.hidden)):
        pre = h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"]
        if cfg.layer_norm:
            pre = layer_norm(pre, axes=(-1,))
        h = act(pre)
        feats[f"Dense_{i}"] = h
    return h @ params["head"]["kernel"] + params["head"]["bias"], feats


def teacher(key: jax.Array, d: int, classes: int, width: int = 100):
    k1, k2 = jax.random.split(key)
    w1 = jnp.where(jax.random.bernoulli(k1, 0.5, (d, width)), 1.0, -1.0) / math.sqrt(d)
    w2 = jax.random.normal(k2, (width, classes))
    return lambda x: jnp.argmax(jax.nn.relu(x @ w1) @ w2, axis=-1).astype(jnp.int32)


def make_lifetime(cfg: SupervisedConfig, method: str, chunk: int) -> tuple[Callable, Callable]:
    """(init(seed_key) -> carry, run(carry) -> (carry, per-task metrics [chunk])) of one method."""
    act_tau = cfg.redo_tau
    # Dormancy is tracked for every method (the diagnostic), whatever the remedy.
    track = plasticity_config(cfg, method)._replace(diagnostics=True, rank_every=0)

    def init(seed_key):
        k_teacher, k_net, k_data, k_remedy = jax.random.split(seed_key, 4)
        params = init_learner(cfg, k_net)
        return dict(
            params=params,
            pl=plasticity_init(track, params),
            data=k_data,
            remedy=k_remedy,
            teacher=k_teacher,
            task=jnp.zeros((), jnp.int32),
        )

    def loss_fn(params, x, y):
        logits, feats = forward(cfg, params, x)
        logp = jax.nn.log_softmax(logits)
        return -logp[y], (jnp.argmax(logits) == y, feats)

    def one_task(carry, _):
        label = teacher(carry["teacher"], cfg.input_dim, cfg.classes)
        k_task = jax.random.fold_in(carry["data"], carry["task"])
        k_perm, k_steps, k_probe = jax.random.split(k_task, 3)
        perm = jax.random.permutation(k_perm, cfg.input_dim)
        k_rem = jax.random.fold_in(carry["remedy"], carry["task"])

        def one_step(c, ks):
            params, pl = c
            k_x, k_r = ks
            x = jax.random.normal(k_x, (cfg.input_dim,))
            y = label(x)
            (loss, (correct, feats)), g = jax.value_and_grad(loss_fn, has_aux=True)(params, x[perm], y)
            params = jax.tree.map(lambda p, gi: p - cfg.lr * gi, params, g)
            params, _, pl, _ = plasticity_update(track, params, pl, feats, k_r)
            return (params, pl), (correct.astype(jnp.float32), loss)

        # Data keys are shared by all methods of a seed; the remedies draw from their own.
        keys = (jax.random.split(k_steps, cfg.steps_per_task), jax.random.split(k_rem, cfg.steps_per_task))
        (params, pl), (correct, loss) = jax.lax.scan(one_step, (carry["params"], carry["pl"]), keys)

        x = jax.random.normal(k_probe, (256, cfg.input_dim))
        _, feats = forward(cfg, params, x[:, perm])
        last = feats[f"Dense_{len(cfg.hidden) - 1}"]
        all_h = jnp.concatenate([f for f in feats.values()], axis=-1)
        dead = jnp.mean(jnp.all(all_h <= 0, axis=0))
        dormant = jnp.mean(
            jnp.concatenate([(a / jnp.maximum(jnp.mean(a), 1e-12)) <= act_tau for a in pl.activity.values()])
        )
        kernels = [v["kernel"] for v in params.values()]
        wmag = sum(jnp.sum(jnp.abs(k)) for k in kernels) / sum(k.size for k in kernels)
        metrics = dict(
            accuracy=jnp.mean(correct),
            loss=jnp.mean(loss),
            dead=dead,
            dormant=dormant,
            weight_mag=wmag,
            eff_rank=effective_rank(last),
        )
        carry = {**carry, "params": params, "pl": pl, "task": carry["task"] + 1}
        return carry, metrics

    def run(carry):
        return jax.lax.scan(one_task, carry, None, length=chunk)

    return init, run


def run_supervised(cfg: SupervisedConfig, progress: Callable[[int, dict], None] | None = None) -> dict:
    """Runs every method x seed; returns {metric: [M, S, tasks]} plus timing.

    One compiled program per method (the remedy is static), vmapped over seeds; all methods of a
    seed share the data stream and the initial weights.
    """
    cfg.check()
    from oakrl.lab.run import seed_keys

    # unsafe_rbg: threefry costs most of a step on CPU.
    keys = seed_keys(cfg.seed, cfg.seeds, "unsafe_rbg")
    chunks = [cfg.chunk_tasks] * (cfg.tasks // cfg.chunk_tasks)
    if cfg.tasks % cfg.chunk_tasks:
        chunks.append(cfg.tasks % cfg.chunk_tasks)
    out: dict[str, list] = {}
    timing = {}
    for method in cfg.methods:
        t0 = time.perf_counter()
        init, _ = make_lifetime(cfg, method, 1)
        carry = jax.jit(jax.vmap(init))(keys)
        compiled = {}
        for n in sorted(set(chunks)):
            _, run = make_lifetime(cfg, method, n)
            compiled[n] = jax.jit(jax.vmap(run)).lower(carry).compile()
        compile_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        parts: list[dict] = []
        done = 0
        for n in chunks:
            carry, metrics = compiled[n](carry)
            metrics = jax.tree.map(np.asarray, metrics)
            parts.append(metrics)
            done += n
            if progress is not None:
                progress(method, done, {k: v[..., -1] for k, v in metrics.items()})
        stream_s = time.perf_counter() - t1
        for k in parts[0]:
            out.setdefault(k, []).append(np.concatenate([p[k] for p in parts], axis=-1))
        steps = cfg.tasks * cfg.steps_per_task * cfg.seeds
        timing[method] = {
            "compile_seconds": compile_s,
            "stream_seconds": stream_s,
            "learner_steps_per_second": steps / max(stream_s, 1e-9),
        }
    return {"metrics": {k: np.stack(v) for k, v in out.items()}, "timing": timing}


def config_json(cfg: SupervisedConfig) -> dict:
    return dataclasses.asdict(cfg)


def study_supervised(
    cfg: SupervisedConfig, out: str, echo: Callable[[str], None] = print, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: summary.json, metrics.parquet, figure.png; results to `echo`, progress
    to `log`. The input is checked (one-line ConfigError) before `out` is made."""
    from oakrl.io import write_json, write_table
    from oakrl.lab.files import machine
    from oakrl.study.common import echo_methods, per_task_table, plot_per_task, retention_summary, start_study

    cfg.check()
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()

    def progress(method, done, metrics):
        log(
            f"{method:>15}  task {done}/{cfg.tasks}  accuracy {float(metrics['accuracy'].mean()):.3f}  "
            f"dead {float(metrics['dead'].mean()):.3f}"
        )

    result = run_supervised(cfg, progress)
    metrics = result["metrics"]
    summary = {
        "study": "plasticity-supervised",
        "command": cmd,
        "performance": "online accuracy per task (predicted before learning from each sample)",
        **retention_summary(metrics["accuracy"], cfg.methods),
        "final": {
            m: {k: float(v[i, :, -1].mean()) for k, v in metrics.items()} for i, m in enumerate(cfg.methods)
        },
        "timing": result["timing"],
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_table(path / "metrics.parquet", per_task_table(metrics, cfg.methods))
    write_json(path / "summary.json", summary)
    plot_per_task(
        path / "figure.png",
        {k: metrics[k] for k in ("accuracy", "dead", "eff_rank")},
        cfg.methods,
        f"online permuted inputs: {cfg.tasks} tasks x {cfg.steps_per_task} steps, {cfg.seeds} seeds",
        cmd,
        smooth=max(1, cfg.tasks // 40),
    )
    echo_methods(summary, echo)
    echo(f"wrote {path}/summary.json, metrics.parquet, figure.png")
    return summary
