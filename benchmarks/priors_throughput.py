"""Throughput of the prior agents against plain stream AC (CartPole, vmapped seeds, lab stream).

    .venv/bin/python benchmarks/priors_throughput.py [--seeds 8] [--steps 20000] [--repeats 2]

Prints agent-steps/s (all seeds, compile excluded, best of --repeats) for: stream-ac; prior-ac
without a prior; prior-ac from cloned expert demonstrations with the KL pull on (one more forward
pass of the frozen prior per step); sft-tool (the SFT step is computed every step under vmap,
where lax.cond becomes a select).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import numpy as np

from oakrl.agents import make_agent
from oakrl.envs import make_env
from oakrl.lab.stream import run_jax
from oakrl.priors.demos import record_scripted, write_demos


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    handle = make_env("CartPole-v1")
    key = jax.random.key(0, impl="unsafe_rbg")
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.arange(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        demos = write_demos(Path(tmp) / "expert.npz", record_scripted(handle, 20_000, key))
        cases = {
            "stream-ac": ("stream-ac", {}),
            "prior-ac, no prior": ("prior-ac", {}),
            "prior-ac, cloned expert + KL": ("prior-ac", {"demos": str(demos), "kl": 0.5, "kl_adapt": 0.01}),
            "sft-tool": ("sft-tool", {}),
        }
        print(f"CartPole-v1, {args.seeds} seeds x {args.steps} steps, agent-steps/s (best of {args.repeats})")
        base = None
        for label, (name, opts) in cases.items():
            agent = make_agent(name, **opts)
            best = 0.0
            for _ in range(args.repeats):
                _, compile_s, stream_s = run_jax(agent, handle, args.steps, keys, args.steps)
                best = max(best, args.steps * args.seeds / stream_s)
            base = base or best
            print(f"{label:<32} {best:>10,.0f}   x{best / base:.2f}   (compile {compile_s:.1f} s)")


if __name__ == "__main__":
    main()
