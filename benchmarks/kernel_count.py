"""Kernels XLA:CPU launches per agent step: a deterministic proxy for single-agent speed.

    .venv/bin/python benchmarks/kernel_count.py

One stream AC step on CartPole costs about 0.2 µs per kernel launch: 254 launches with XLA's
defaults, 158 with the lab's compile options (oakrl/lab/stream.py, CPU_COMPILER_OPTIONS; see
RESULTS.md, "Throughput"). Timings on a shared 2-core machine swing by ±15% or more; the
number of kernels in the compiled scan body does not, so it is how layout ideas are compared
here before anyone times them.

Prints the kernel count of (a) the real lab step (stream AC + CartPole + bookkeeping), and
(b) a stand-alone AC core written four ways: Flax-like separate biases (`base`), biases
folded into the weights (`fold`), LayerNorm statistics by a dot (`lndot`), and both.
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp

from oakrl.lab.run import build, seed_keys
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import compiler_options, init_carry, make_chunk

KERNELS = ("fusion", "dot", "copy", "custom-call", "concatenate", "dynamic-update-slice", "reduce")


def scan_body_kernels(hlo: str) -> tuple[int, dict[str, int]]:
    """(kernels, by kind) in the largest while body of compiled HLO text (the scan body)."""
    best: tuple[int, dict[str, int]] = (0, {})
    for body in re.findall(r"while\([^)]*\), condition=%[\w.]+, body=%([\w.]+)", hlo):
        m = re.search(r"\n%" + re.escape(body) + r" [^\n]*\{\n(.*?)\n\}", hlo, re.S)
        if m is None:
            continue
        kinds: collections.Counter[str] = collections.Counter()
        for line in m.group(1).split("\n"):
            op = re.search(r"= \S+ ([\w-]+)\(", line)
            if op and op.group(1) in KERNELS:
                kinds[op.group(1)] += 1
        if sum(kinds.values()) > best[0]:
            best = (sum(kinds.values()), dict(kinds))
    return best


def lab_step() -> tuple[int, dict[str, int]]:
    cfg = RunSpec(env="CartPole-v1", agent="stream-ac", steps=2000, seeds=1)
    handle, agent = build(cfg)
    carry = jax.jit(jax.vmap(lambda k: init_carry(agent, handle, k)))(
        seed_keys(cfg.seed, cfg.seeds, cfg.prng)
    )
    chunk = jax.jit(jax.vmap(make_chunk(agent, handle, 2000, 1000)))
    return scan_body_kernels(chunk.lower(carry).compile(compiler_options()).as_text())


def ac_core(fold: bool, ln_dot: bool, hidden: int = 128, obs: int = 4, actions: int = 2):
    """Kernels of a stand-alone stream AC core (forward, backward, traces, ObGD, acting)."""

    def layer_norm(x):
        if ln_dot:
            mean_w = jnp.full((x.shape[-1],), 1.0 / x.shape[-1])
            m = x @ mean_w
            v = (x * x) @ mean_w - m * m
            return (x - m) * jax.lax.rsqrt(v + 1e-5)
        m = x.mean()
        return (x - m) * jax.lax.rsqrt(((x - m) ** 2).mean() + 1e-5)

    def dense(p, i, x):
        if fold:
            return jnp.concatenate([x, jnp.ones((1,))]) @ p[f"w{i}"]
        return x @ p[f"w{i}"] + p[f"b{i}"]

    def forward(p, x):
        act = lambda h: jnp.where(h > 0, h, 0.01 * h)
        h = act(layer_norm(dense(p, 1, x)))
        h = act(layer_norm(dense(p, 2, h)))
        return dense(p, 3, h)

    def params(key, out):
        shapes = {"w1": (obs, hidden), "w2": (hidden, hidden), "w3": (hidden, out)}
        keys = jax.random.split(key, 3)
        p = {}
        for (name, (i, o)), k in zip(shapes.items(), keys, strict=True):
            p[name] = jax.random.normal(k, (i + fold, o)) / jnp.sqrt(i)
            if not fold:
                p["b" + name[1:]] = jnp.zeros((o,))
        return p

    def obgd(p, z, g, delta, kappa, reset):
        z = jax.tree.map(lambda z, g: 0.792 * z + g, z, g)
        z_l1 = sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(z))
        m = kappa * jnp.maximum(jnp.abs(delta), 1.0) * z_l1
        step = jnp.where(m > 1.0, 1.0 / m, 1.0)
        p = jax.tree.map(lambda p, z: p + step * delta * z, p, z)
        return p, jax.tree.map(lambda z: jnp.where(reset, 0.0, z), z)

    def step(carry, x):
        critic, actor, z_c, z_a, s, a, key = carry
        reset = x[0] > 1.5
        v, g_v = jax.value_and_grad(lambda p: forward(p, s)[0])(critic)
        delta = 1.0 + 0.99 * forward(critic, x)[0] - v

        def log_prob(p):
            logp = jax.nn.log_softmax(forward(p, s))
            return logp[a] - 0.01 * jnp.sign(delta) * jnp.sum(jnp.exp(logp) * logp)

        g_a = jax.grad(log_prob)(actor)
        critic, z_c = obgd(critic, z_c, g_v, delta, 2.0, reset)
        actor, z_a = obgd(actor, z_a, g_a, delta, 3.0, reset)
        key, k_act = jax.random.split(key)
        a = jax.random.categorical(k_act, forward(actor, x)).astype(jnp.int32)
        return (critic, actor, z_c, z_a, x, a, key), delta

    c, ac = params(jax.random.key(0), 1), params(jax.random.key(1), actions)
    zeros = lambda t: jax.tree.map(jnp.zeros_like, t)
    key = jax.random.key(3, impl="unsafe_rbg")
    carry = (c, ac, zeros(c), zeros(ac), jnp.zeros(obs), jnp.int32(0), key)
    xs = jnp.zeros((100, obs))
    scan = jax.jit(lambda carry: jax.lax.scan(step, carry, xs))
    return scan_body_kernels(scan.lower(carry).compile().as_text())


def main() -> None:
    print(f"jax {jax.__version__} on {jax.default_backend()}")
    n, kinds = lab_step()
    print(f"lab step (stream AC, CartPole, bookkeeping): {n} kernels {kinds}")
    for name, fold, ln_dot in (
        ("base", False, False),
        ("fold", True, False),
        ("lndot", False, True),
        ("fold+lndot", True, True),
    ):
        n, kinds = ac_core(fold, ln_dot)
        print(f"AC core {name:<11} {n} kernels {kinds}")


if __name__ == "__main__":
    main()
