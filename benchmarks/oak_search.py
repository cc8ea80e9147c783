"""Where an OaK agent's steps go between a reward relocation and its first reach of the new goal.

Runs the `oakrl study oak` schedule (3 relocations) with per-step records (cell, executing
option, reward) and prints, averaged over seeds and relocations: the first reach, the fraction
of those steps spent executing options, the fraction within 3 steps of the old goal, the
visits of the old goal and the episodes.

  .venv/bin/python benchmarks/oak_search.py '{}' --seeds 5
  .venv/bin/python benchmarks/oak_search.py '{"use_options": false}' --seeds 5
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import TimeStep
from oakrl.envs.rooms import GOALS, shortest_paths
from oakrl.lab.run import build, seed_keys
from oakrl.lab.stream import init_carry
from oakrl.study.oak import OakStudyConfig, run_spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("options", help="JSON agent options merged into the study's oak config")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    cfg = OakStudyConfig(seeds=args.seeds, relocations=3, second_world=None)
    rc = run_spec(cfg, "oak")
    rc = rc.replace(agent_options=json.loads(args.options))
    handle, agent = build(rc)
    env, params = handle.env, handle.params

    def one(c, _):
        key, k_agent, k_env = jax.random.split(c.key, 3)
        state, action, _ = agent.step(c.agent, c.timestep, k_agent)
        obs, env_state, r, term, trunc, _ = env.step(k_env, c.env, action, params)
        ts = TimeStep(obs.astype(jnp.float32), r.astype(jnp.float32), term, trunc)
        c = c._replace(agent=state, env=env_state, timestep=ts, key=key)
        return c, (jnp.argmax(obs), state.executing, r, term | trunc)

    def stream(k):
        return jax.lax.scan(one, init_carry(agent, handle, k), None, length=cfg.steps)[1]

    cell, executing, reward, done = (
        np.asarray(v) for v in jax.jit(jax.vmap(stream))(seed_keys(rc.seed, rc.seeds, rc.prng))
    )
    rows = []
    for s in range(cfg.seeds):
        for c in range(1, cfg.relocations + 1):
            start, old = c * cfg.every, int(GOALS[(c - 1) % 4])
            hits = np.flatnonzero(reward[s, start : start + cfg.every] > 0)
            first = int(hits[0]) if hits.size else cfg.every
            seg = slice(start, start + first)
            near_old = shortest_paths(old)[cell[s, seg]] <= 3
            rows.append(
                (first, (executing[s, seg] >= 0).mean(), near_old.mean(), (cell[s, seg] == old).sum(),
                 done[s, seg].sum())
            )  # fmt: skip
    m = np.asarray(rows, float).mean(axis=0)
    print(
        f"{args.options}: first reach {m[0]:.0f} | in an option {m[1]:.2f} | within 3 of the old goal "
        f"{m[2]:.2f} | old-goal visits {m[3]:.1f} | episodes {m[4]:.1f}"
    )


if __name__ == "__main__":
    main()
