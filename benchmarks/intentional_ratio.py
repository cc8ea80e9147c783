"""Does Intentional TD achieve the change it intends? The actual / intended change of v(s).

    .venv/bin/python benchmarks/intentional_ratio.py [--steps 20000] [--seed 0]

Sharifnassab et al. (arXiv 2604.19033) report that the change of the output an intentional
update achieves stays close to the change it intends (the ratio's 1st-99th percentiles
0.94-1.03, as quoted from the paper in a survey note; the paper's body was not in the corpus
here, so its figure number is not given). This script measures the same ratio for oakrl's
`intentional` piece: a stream-x value network (2 x 128 LayerNorm, sparse init) learning the
value of the uniformly random policy on gymnax CartPole-v1 by TD(lambda), one transition at a
time; per step, ratio = (v_after(s) - v_before(s)) / (eta * delta'), delta' the clipped TD error.
Observations are standardised with the mean and std of the collected stream (fixed, so that
the ratio sees only the network's own change). Printed: percentiles 1, 5, 50, 95, 99 of the
ratio over the stream, for lambda 0 (where the first-order intent is exact for a linear
model) and lambda 0.8 (the trace makes the step's direction differ from grad v(s)).
"""

from __future__ import annotations

import argparse

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

from oakrl.learn.intentional import intentional
from oakrl.learn.nets import make_network


def collect(key: jax.Array, steps: int):
    env, params = gymnax.make("CartPole-v1")
    obs, state = env.reset(key, params)

    def body(carry, k):
        obs, state = carry
        k1, k2 = jax.random.split(k)
        a = jax.random.randint(k1, (), 0, 2)
        out = env.step(k2, state, a, params)  # gymnax 1.0: (obs, state, r, terminated, truncated, info)
        nxt, state, r = out[0], out[1], out[2]
        done = jnp.logical_or(out[3], out[4]) if len(out) == 6 else out[3]
        return (nxt, state), (obs, r, nxt, done)

    _, data = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
    return data


def ratios(data, lamda: float, key: jax.Array, eta: float = 0.5, gamma: float = 0.99) -> np.ndarray:
    obs, r, nxt, done = data
    mean, std = obs.mean(0), obs.std(0) + 1e-8
    obs, nxt = (obs - mean) / std, (nxt - mean) / std
    net = make_network((4,), 1, (128, 128), 0.9)
    params = net.init(key, jnp.zeros((4,)))["params"]
    opt = intentional(eta, gamma, lamda)
    v = lambda p, x: net.apply({"params": p}, x)[0]  # noqa: E731

    def body(carry, x):
        p, s = carry
        o, rew, n, d = x
        v_s, g = jax.value_and_grad(v)(p, o)
        delta = rew + gamma * (1.0 - d) * v(p, n) - v_s
        u, s2 = opt.update(g, s, p, delta=delta, reset=d)
        p2 = jax.tree.map(jnp.add, p, u)
        # The delta the update used (clipped at 20 x its running RMS): recomputed as the piece does.
        t = s2.count.astype(jnp.float32)
        cap = 20.0 * jnp.sqrt(s2.delta_sq / -jnp.expm1(t * np.log(0.9998)))
        d_used = jnp.sign(delta) * jnp.minimum(jnp.abs(delta), cap)
        ratio = (v(p2, o) - v_s) / (eta * d_used)
        return (p2, s2), (ratio, jnp.abs(d_used))

    _, (ratio, size) = jax.lax.scan(body, (params, opt.init(params)), (obs, r, nxt, done.astype(jnp.float32)))
    ratio, size = np.asarray(ratio), np.asarray(size)
    return ratio[size > 1e-3]  # a ratio over a vanishing TD error is noise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    key = jax.random.key(args.seed)
    data = collect(key, args.steps)
    print(f"gymnax CartPole-v1, random policy, {args.steps} steps, seed {args.seed}, eta 0.5")
    print(f"{'lambda':>6} {'n':>6} {'p1':>7} {'p5':>7} {'p50':>7} {'p95':>7} {'p99':>7}")
    for lamda in (0.0, 0.8):
        x = ratios(data, lamda, jax.random.fold_in(key, 1))
        p = np.percentile(x, [1, 5, 50, 95, 99])
        print(f"{lamda:>6} {x.size:>6} " + " ".join(f"{v:>7.3f}" for v in p))


if __name__ == "__main__":
    main()
