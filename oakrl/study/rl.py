"""Streaming RL under a world that changes every K steps, per plasticity remedy.

Each method is the same agent with its `plasticity` option set, run in the compiled, vmapped
lab (oakrl.lab.stream.run_jax) on an environment under a continual schedule. A "change" is
one segment of K steps between switches. Per change it records the mean return of the
episodes that ended in it (performance), the mean return over the first fifth of it
(learning speed: how soon after a change the agent does well again), and the mean of the
agent's plasticity diagnostics. Every method of a seed uses the same seed keys. `verdict`
states whether a remedy beats plain stream learning on late-task performance by more than
the seed spread.

The default world is CodedGrid-v0 under `permute`: a 7x7 grid whose cells the agent sees
through a dense 64-bit random code, re-coded (the bits permuted) every 2,500 steps, 200
times. It is the RL counterpart of Dohare et al.'s permuted inputs. Plain stream Q(lambda)
(LayerNorm, leaky ReLU, ObGD, as Elsayed et al. 2024), with gamma 0.9 for the grid's paths of
at most 6 steps and epsilon 0.1 so that it keeps exploring after every re-coding, loses
plasticity there: its per-change success rate peaks and then falls over the lifetime while
its weights grow and its dormant fraction rises, and L2-towards-init keeps it learning
(benchmarks/RESULTS.md, "Plasticity (issue 3)"). The earlier default, stream Q on CartPole-v1
whose dynamics cycle every 1,000 steps (`--env CartPole-v1 --schedule switch --every 1000
--tasks 4 --gamma 0.99 --epsilon-end 0.01`), does not lose plasticity: there continual
backprop only gets more of the seeds that plain stream Q leaves stuck unstuck, an effect
smaller than the seed spread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from oakrl.errors import ConfigError
from oakrl.study.common import METHODS

SCHEDULES = ("switch", "permute", "drift")
# Diagnostics kept per change: stream AC names them per network, stream Q has one network.
DIAGNOSTICS = (
    "value_dormant",
    "value_weight_mag",
    "policy_dormant",
    "policy_weight_mag",
    "dormant",
    "weight_mag",
)


@dataclass
class RLConfig:
    env: str = "CodedGrid-v0"
    agent: str = "stream-q"
    schedule: str = "permute"  # switch | permute | drift (reward would change the return's scale)
    changes: int = 200
    every: int = 2_500  # steps between changes
    tasks: int = 200  # distinct worlds, visited cyclically (here: a new code every change)
    gamma: float = 0.9  # the agent's discount: paths in the 7x7 grid are at most 6 steps
    epsilon_end: float = 0.1  # stream-q's lasting exploration: it must find the goal after a change
    seeds: int = 5
    seed: int = 0
    hidden: tuple[int, ...] = (32, 32)
    methods: tuple[str, ...] = METHODS
    chunk: int = 10_000
    options: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "cbp": {"rate": 1e-4, "maturity": 100},
            "redo": {"every": 1000, "tau": 0.1},
            "shrink-perturb": {"shrink": 1e-5, "sigma": 1e-3},
            "l2-init": {"l2": 1e-4},
        }
    )

    def check(self) -> None:
        for name in ("changes", "every", "tasks", "seeds", "chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("gamma", "epsilon_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {v!r}")
        if self.changes < 10:
            raise ConfigError(f"changes must be >= 10 (early and late are 10% each), got {self.changes}")
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ConfigError(f"methods must be among {', '.join(METHODS)}, got {self.methods!r}")

    @property
    def steps(self) -> int:
        return self.changes * self.every


def agent_options(cfg: RLConfig, method: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"hidden": tuple(cfg.hidden), "plasticity_diagnostics": True, "gamma": cfg.gamma}
    if cfg.agent == "stream-q":
        opts["epsilon_end"] = cfg.epsilon_end
    if method != "backprop":
        opts["plasticity"] = method
    pl = dict(cfg.options.get(method, {}))
    if method == "redo":
        pl.setdefault("max_resets", max(cfg.hidden))  # ReDo resets every dormant unit at a check
    pl.setdefault("rank_every", 0)  # the SVD would run every step under vmap (see learn/plasticity)
    opts["plasticity_options"] = pl
    return opts


def run_rl(cfg: RLConfig, progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Returns {"metrics": {name: [M, S, changes]}, "timing": {method: {...}}}."""
    from oakrl.agents import make_agent
    from oakrl.envs import make_env
    from oakrl.lab.stream import run_jax

    cfg.check()
    handle = make_env(cfg.env, schedule=cfg.schedule, every=cfg.every, tasks=cfg.tasks, seed=cfg.seed)
    base = jax.random.key(cfg.seed, impl="unsafe_rbg")
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(cfg.seeds))
    window = max(1, cfg.every // 5)
    out: dict[str, list] = {}
    timing = {}
    for method in cfg.methods:
        options = agent_options(cfg, method)
        if cfg.agent == "stream-q":
            options["exploration_steps"] = max(1, int(0.05 * cfg.steps))
        agent = make_agent(cfg.agent, handle.action_spec, **options)
        rows: list = []
        diag: list = []

        def on_chunk(record, rows=rows, diag=diag, method=method):
            if record.end_step == 0:
                return
            rows.append((record.seed, record.step, record.ret))
            diag.append((record.end_step, record.info))
            if progress is not None:
                progress(method, record.end_step)

        _, compile_s, stream_s = run_jax(agent, handle, cfg.steps, keys, cfg.chunk, 1000, on_chunk)
        seed = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        step = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int64)
        ret = np.concatenate([r[2] for r in rows]) if rows else np.zeros(0, np.float32)
        perf = np.full((cfg.seeds, cfg.changes), np.nan)
        early = np.full((cfg.seeds, cfg.changes), np.nan)
        seg = (step - 1) // cfg.every
        in_seg = (step - 1) % cfg.every
        for s in range(cfg.seeds):
            for c in range(cfg.changes):
                sel = (seed == s) & (seg == c)
                if sel.any():
                    perf[s, c] = ret[sel].mean()
                sel_e = sel & (in_seg < window)
                if sel_e.any():
                    early[s, c] = ret[sel_e].mean()
        out.setdefault("return", []).append(perf)
        out.setdefault("early_return", []).append(early)
        # Diagnostics per chunk -> per change (chunk means spread over the changes they cover).
        for name in DIAGNOSTICS:
            if not any(name in info for _, info in diag):
                continue
            per = np.full((cfg.seeds, cfg.changes), np.nan)
            start = 0
            for end, info in diag:
                if name in info:
                    a, b = start // cfg.every, max(start // cfg.every + 1, end // cfg.every)
                    per[:, a:b] = np.asarray(info[name]).reshape(cfg.seeds, 1)
                start = end
            out.setdefault(name, []).append(per)
        timing[method] = {
            "compile_seconds": compile_s,
            "stream_seconds": stream_s,
            "agent_steps_per_second": cfg.steps * cfg.seeds / max(stream_s, 1e-9),
        }
    return {"metrics": {k: np.stack(v) for k, v in out.items()}, "timing": timing, "episodes_window": window}


def config_json(cfg: RLConfig) -> dict:
    return dataclasses.asdict(cfg)


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Changes with no finished episode (possible at tiny K) take the previous change's value."""
    x = np.array(x, np.float64)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        last = 0.0
        for t in range(row.shape[0]):
            if np.isnan(row[t]):
                row[t] = last
            else:
                last = row[t]
    return x


def verdict(per_change: np.ndarray, methods: tuple[str, ...], frac: float = 0.1) -> dict[str, Any]:
    """Does a remedy beat plain stream learning on late-task performance?

    per_change [M, S, C]. late = per seed, the mean over the last `frac` of the changes. A remedy
    beats backprop when its mean late exceeds backprop's by more than the seed spread, taken as
    the larger of the two methods' standard deviations over seeds (ddof=1). The paired view
    (same seed keys for every method) is reported too: mean, std and standard error of the
    per-seed differences, and the share of seeds where the remedy is ahead.
    """
    if "backprop" not in methods:
        return {"remedies": {}}
    k = max(1, int(round(frac * per_change.shape[-1])))
    late = np.asarray(per_change, np.float64)[:, :, -k:].mean(axis=2)  # [M, S]
    sd = late.std(axis=1, ddof=1) if late.shape[1] > 1 else np.zeros(late.shape[0])
    b = methods.index("backprop")
    out = {}
    for i, name in enumerate(methods):
        if i == b:
            continue
        diff = late[i] - late[b]
        out[name] = {
            "margin": float(late[i].mean() - late[b].mean()),
            "spread": float(max(sd[i], sd[b])),
            "beats_backprop": bool(late[i].mean() - late[b].mean() > max(sd[i], sd[b])),
            "paired_difference": {
                "mean": float(diff.mean()),
                "std": float(diff.std(ddof=1)) if diff.size > 1 else 0.0,
                # Whether the remedy helps on average, which the spread rule does not ask:
                # the standard error of the mean difference and the share of seeds it wins.
                "standard_error": float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0,
                "seeds_ahead": float(np.mean(diff > 0)),
                "per_seed": [float(x) for x in diff],
            },
        }
    return {
        "rule": "late(remedy) - late(backprop) > max(std over seeds of either late)",
        "changes_per_window": k,
        "remedies": out,
    }
