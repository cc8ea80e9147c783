"""`oakrl record`: make a demonstrations dataset from a scripted policy, an agent, or a run.

Three sources, one output format (oakrl.priors.demos):

  scripted   the environment's scripted expert (CartPole-v1, TextWorld-v0)
  agent      an oakrl agent trained here for --train-steps steps, then recorded as it goes on
  run        the agent of a results directory (its last checkpoint, seed --run-seed), recorded
             as it goes on learning

--quality expert | mediocre (random action with probability --noise) | wrong ((a + 1) mod n).

It lives in the lab, not in oakrl/priors, because it trains, restores and runs agents: the
priors layer (the dataset format, behaviour cloning, LM tables) sits below the agents and the
lab and must not import them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from oakrl.errors import ConfigError
from oakrl.priors.demos import Demos, check_quality, record_agent, record_scripted, write_demos


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"--{name} must be a positive integer, got {value!r}")


def agent_state_of_run(directory: str, run_seed: int):
    """(handle, agent, agent state of seed `run_seed`) from a results directory's last checkpoint."""
    from oakrl.lab.checkpoint import load_checkpoint
    from oakrl.lab.outdir import compat_hash
    from oakrl.lab.parse import spec_of_run
    from oakrl.lab.run import prepare, seed_keys
    from oakrl.lab.stream import init_carry

    spec = spec_of_run(directory)
    if spec.gym:
        raise ConfigError(f"--from-run needs a JAX environment; {directory} ran {spec.env}")
    if not 0 <= run_seed < spec.seeds:
        raise ConfigError(f"--run-seed must be in [0, {spec.seeds}) for {directory}, got {run_seed}")
    plan = prepare(spec.replace(out=directory))
    keys = seed_keys(spec.seed, spec.seeds, spec.prng)
    template = jax.jit(jax.vmap(lambda k: init_carry(plan.agent, plan.handle, k)))(keys)
    loaded = load_checkpoint(Path(directory), template, compat_hash(plan.identity))
    if loaded is None:
        raise ConfigError(f"{directory} has no checkpoint to record from (run it with checkpoints on)")
    step, carry, _ = loaded
    state = jax.tree.map(lambda x: x[run_seed], carry.agent)
    return plan.handle, plan.agent, state, f"run:{directory} (seed {run_seed}, step {step}, {spec.agent})"


def record(
    out: str,
    env: str = "CartPole-v1",
    steps: int = 20_000,
    quality: str = "expert",
    noise: float = 0.5,
    seed: int = 0,
    agent: str | None = None,
    agent_options: dict[str, Any] | None = None,
    train_steps: int = 100_000,
    from_run: str | None = None,
    run_seed: int = 0,
    force: bool = False,
) -> tuple[Path, Demos]:
    """Records and writes a dataset; returns (path written, demos). ConfigError on bad input."""
    _positive("steps", steps)
    check_quality(quality, noise)
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if agent is not None and from_run is not None:
        raise ConfigError("give either --agent (train one here) or --from-run DIR, not both")
    if Path(out).suffix not in ("", ".npz"):
        # Appending .npz to "summary.json" would drop a dataset into a results directory.
        raise ConfigError(f"--out {out}: a dataset is a .npz file; give a name like demos/expert.npz")
    path = Path(out if str(out).endswith(".npz") else f"{out}.npz")
    if path.exists() and not force:
        raise ConfigError(f"--out {path} already exists; choose another path or pass --force")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file name like demos/expert.npz")
    key = jax.random.key(seed, impl="unsafe_rbg")
    k_train, k_rec = jax.random.split(key)
    extra: dict[str, Any] = {"seed": seed}

    if from_run is not None:
        handle, ag, state, source = agent_state_of_run(from_run, run_seed)
        demos = record_agent(handle, ag, state, steps, k_rec, quality, noise, source)
    elif agent is not None:
        from oakrl.agents import AGENTS, make_agent
        from oakrl.core.config import RunFacts
        from oakrl.envs import make_env
        from oakrl.lab.stream import run_jax

        _positive("train-steps", train_steps)
        if env.startswith("gym:"):
            raise ConfigError("oakrl record needs a JAX environment (not gym:)")
        handle = make_env(env)
        config = AGENTS[agent].config.build(agent_options or {})
        config = config.resolve(RunFacts(train_steps, tuple(handle.obs_spec.shape), handle.action_spec))
        ag = make_agent(agent, config)
        returns: list[np.ndarray] = []
        carry, _, _ = run_jax(
            ag, handle, train_steps, k_train[None], on_chunk=lambda r: returns.append(np.asarray(r.ret))
        )
        state = jax.tree.map(lambda x: x[0], carry.agent)
        rets = np.concatenate(returns) if returns else np.zeros(0)
        tail = rets[-max(1, len(rets) // 10) :]
        extra["train_steps"] = train_steps
        extra["train_final_return"] = float(tail.mean()) if len(tail) else None
        demos = record_agent(handle, ag, state, steps, k_rec, quality, noise, f"agent:{agent}")
    else:
        from oakrl.envs import make_env

        if env.startswith("gym:"):
            raise ConfigError("oakrl record needs a JAX environment (not gym:)")
        demos = record_scripted(make_env(env), steps, k_rec, quality, noise)
    return write_demos(path, demos, **extra), demos
