"""`oakrl study option-planning`: do the options' models make planning faster?

(Over 400 lines on purpose: one experiment readable top to bottom, as a CleanRL script is: the
model sets taken from the agent, the planner, the measurement, the summary and the figure.)

Sutton, Machado, Holland, Szepesvari, Timbers, Tanner & White 2023 ("Reward-Respecting Subtasks
for Model-Based Reinforcement Learning", Artificial Intelligence 324; arXiv 2202.03466) claim
that models of options from reward-respecting subtasks let planning bring the start state's
value to its optimum in far fewer planning iterations than primitive models alone, and are
more useful to planning than options from subtasks that ignore reward. This study puts that
claim to oakrl's OaK agent, whose models are all learned online from its one stream.

Per world and seed, two lab runs of `oak` (compiled, vmapped over seeds):

  rr   the default agent: reward-respecting subtasks (subtask_reward=1, stop_value=1)
  ri   the same agent with subtasks that ignore reward (subtask_reward=0, stop_value=0): the
       same features and bonus, no reward and no main value in the subtask (feature attainment,
       the bottleneck / shortest-path options when the feature is a hallway cell)

At `points` points of the lifetime (every steps/points steps), the study copies the agent's
learned models and plans from a value function of zeros with each model set of MODEL_SETS:

  primitive          the rr agent's primitive action models only                          (a)
  reward-respecting  + the rr agent's option models (options available where the agent
                     would execute them: not stopping at once, older than option_warmup)   (b)
  reward-ignoring    the ri agent's primitive + option models                             (c)
  hallway            the rr agent's primitive models + the true hallway options' exact models
                     (shortest path to each bottleneck cell, stop there)                    (d)

Planning is Gauss-Seidel value iteration (the backup of planning.py with step size 1 on a
one-hot state): a sweep backs up every free non-goal cell once, in an order drawn afresh each
sweep (the same orders for every model set: paired), for `orders` such sequences of sweeps
per seed and point. One backup is one state's update, whatever the number of models it looks
at. The measures, against v* computed exactly from the
world's MDP with the agent's discount (oakrl/envs/grids.py):

  backups_to_10pct   backups until |v(start) - v*(start)| <= 10% of |v*(start)| and stays so
                     until the last backup (censored at `max_sweeps` sweeps; the study also
                     records the first backup within 10%, which a diverging or oscillating
                     plan can touch once on its way elsewhere); for order 0 (the one-order
                     measure) and, as backups_to_10pct_orders, each seed's mean over orders
  value_error        mean |v - v*| over the planned states after k sweeps, k in `error_sweeps`
  final / max |v|    the start value after the last backup and the largest |v| anywhere: a
                     plan that diverges (ramos-ai/STOMP's report) shows up there
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oakrl.errors import ConfigError

WORLDS = ("TwoRooms-v0", "Rooms-v0")  # measured; NineRooms-v0 is about 16x heavier
MODEL_SETS = {
    "primitive": "(a) the agent's learned primitive action models only",
    "reward-respecting": "(b) + the agent's learned option models, reward-respecting subtasks (default oak)",
    "reward-ignoring": "(c) the same agent with reward-ignoring subtasks (subtask_reward=0, stop_value=0): "
    "its learned primitive + option models",
    "hallway": "(d) the (a) models + the exact models of the true hallway options (shortest path to each "
    "bottleneck cell, stopping there)",
}
RUNS = {"rr": {}, "ri": {"subtask_reward": 0.0, "stop_value": 0.0}}


@dataclass
class OptionPlanningConfig:
    worlds: tuple[str, ...] = WORLDS
    # Lifetime per world and seed: the paper learns its options and their models from 50,000
    # steps of off-policy experience (its option- and model-learning figures); at 20,000 steps
    # the agent's ratio to primitive planning was still falling (README).
    steps: int = 50_000
    points: int = 10  # planning measured every steps / points steps
    seeds: int = 10
    seed: int = 0
    max_sweeps: int = 150  # planning cut after this many sweeps (censoring)
    # Sweep orders per seed and point. The first is the one-order measure of earlier sessions;
    # the backup count is also averaged over all of them (a measurement with less noise: the
    # order alone moves one seed's count by about a fifth, see the README).
    orders: int = 5
    tolerance: float = 0.1  # within this fraction of |v*(start)|
    error_sweeps: tuple[int, ...] = (1, 5, 20)
    # For both runs. Epsilon 1: the behaviour is the uniform random policy, and everything
    # (options, option models, action models, the main value) is learned off-policy from it, as
    # in the paper; oak's own behaviour (epsilon 0.1) never reached TwoRooms-v0's goal in
    # 20,000 steps (2 seeds: it learns to stand still outside the -1 block).
    agent_options: dict[str, Any] = dataclasses.field(default_factory=lambda: {"epsilon": 1.0})

    def check(self) -> None:
        from oakrl.envs.grids import STUDY_LAYOUTS

        for w in self.worlds:
            if w not in STUDY_LAYOUTS:
                raise ConfigError(
                    f"unknown world {w!r} for option-planning; valid: {', '.join(STUDY_LAYOUTS)}"
                )
        if not self.worlds:
            raise ConfigError("--worlds must name at least one world")
        for name in ("steps", "points", "seeds", "max_sweeps", "orders"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.steps % self.points:
            raise ConfigError(f"steps ({self.steps}) must be a multiple of points ({self.points})")
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if any(k <= 0 or k > self.max_sweeps for k in self.error_sweeps):
            raise ConfigError(
                f"error sweeps must be in 1..max_sweeps ({self.max_sweeps}), got {self.error_sweeps}"
            )
        bad = set(self.agent_options) & {"subtask_reward", "stop_value"}
        if bad:
            raise ConfigError(f"agent options {sorted(bad)} are set by the study itself (rr vs ri runs)")


# ---------------------------------------------------------------- planning with tabular models


def plan_trace(
    reward: np.ndarray, outcome: np.ndarray, avail: np.ndarray, order: np.ndarray, v_star: np.ndarray,
    start: int, states: np.ndarray,
):  # fmt: skip
    """Gauss-Seidel value iteration from v = 0 with M models over C cells (one-hot features).

    reward [M, C]: expected discounted reward of each model from each cell; outcome [M, C, C]:
    outcome[m, :, s] the expected discounted one-hot at its end from s; avail [C, M] whether
    model m may be used at s (primitive actions: always); order [K] the cells backed up, in
    turn; v_star [C]; states [C] bool: the cells whose error is measured.
    Returns (v_start [K] after each backup, error [K] mean |v - v*| over `states` after each
    backup, v [C] at the end) as numpy arrays.
    """
    v_start, error, v = plan_traces(reward, outcome, avail, np.asarray(order)[None], v_star, start, states)
    return v_start[0], error[0], v[0]


def _plan(reward, outcome, avail, order, v_star, states, start):
    import jax
    import jax.numpy as jnp

    w = states.astype(jnp.float32) / jnp.maximum(states.sum(), 1)

    def backup(v, s):
        q = reward[:, s] + outcome[:, :, s] @ v  # [M]
        best = jnp.max(jnp.where(avail[s], q, -jnp.inf))
        v = v.at[s].set(best)
        return v, (v[start], jnp.abs(v - v_star) @ w)

    v, (vs, err) = jax.lax.scan(backup, jnp.zeros_like(v_star), order)
    return vs, err, v


_PLAN: list[Callable] = []


def plan_traces(
    reward: np.ndarray, outcome: np.ndarray, avail: np.ndarray, orders: np.ndarray, v_star: np.ndarray,
    start: int, states: np.ndarray,
):  # fmt: skip
    """plan_trace for O orders at once (orders int32[O, K]): every output gains a leading [O]."""
    import jax
    import jax.numpy as jnp

    if not _PLAN:  # compiled once per process (per shape)
        _PLAN.append(jax.jit(jax.vmap(_plan, in_axes=(None, None, None, 0, None, None, None))))
    return jax.tree.map(np.asarray, _PLAN[0](*(jnp.asarray(a) for a in (
        reward, outcome, avail, orders, v_star, states)), start))  # fmt: skip


def backups_to_tolerance(v_start: np.ndarray, target: float, tolerance: float) -> tuple[int, int]:
    """(settled, first): the number of backups after which |v_start - target| <= tolerance |target|
    holds to the end, and after which it first holds; -1 where never (censored).

    v_start [K]: the start value after backups 1..K. Settled is 1 + the last index outside
    (0 outside ever: 1 backup), -1 when the last backup is outside."""
    inside = np.abs(v_start - target) <= tolerance * abs(target)
    if not inside.any() or not inside[-1]:
        first = int(np.argmax(inside)) + 1 if inside.any() else -1
        return -1, first
    outside = np.flatnonzero(~inside)
    settled = int(outside[-1]) + 2 if outside.size else 1
    return settled, int(np.argmax(inside)) + 1


def sweep_orders(states: np.ndarray, sweeps: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """int32[sweeps * len(states)]: each sweep a fresh random permutation of `states` (cell ids)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(states) for _ in range(sweeps)]).astype(np.int32)


# ---------------------------------------------------------------- model sets


def hallway_models(layout, goal: int, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact models of the true hallway options: (reward [H, C], outcome [H, C, C], avail [C, H]).

    Option h walks a shortest path (ignoring reward, never through the goal) to hallway cell h
    and stops there; it is available everywhere but at h, the goal and walls."""
    from oakrl.envs.grids import hallway_cells, shortest_paths, transitions

    nxt, rew, _ = transitions(layout, goal)
    halls = hallway_cells(layout)
    c = layout.size
    free = ~layout.walls
    reward = np.zeros((len(halls), c), np.float32)
    outcome = np.zeros((len(halls), c, c), np.float32)
    avail = np.zeros((c, len(halls)), bool)
    for k, h in enumerate(halls):
        dist = shortest_paths(layout, int(h), through=goal)
        for s in np.flatnonzero(free & (dist > 0)):
            cell, g, r = int(s), 1.0, 0.0
            while cell != h:
                a = next(a for a in range(4) if dist[nxt[cell, a]] == dist[cell] - 1)
                r += g * rew[cell, a]
                g *= gamma
                cell = int(nxt[cell, a])
            reward[k, s], outcome[k, h, s], avail[s, k] = r, g, True
    return reward, outcome, avail


def agent_models(snap: dict[str, np.ndarray], i: int, warmup: int, bonus: float, kappa: float):
    """(primitive (reward [A, C], outcome [A, C, C]), options (reward [N, C], outcome [N, C, C],
    avail [C, N])) of seed i of a snapshot: what the agent has learned, as it would use it."""
    theta = snap["theta"][i]
    c = theta.shape[0]
    act = (snap["act_reward"][i], snap["act_outcome"][i][:, :c, :])
    q = snap["q"][i]  # [N, A, C]
    feature = snap["feature"][i]
    stop = kappa * theta[None, :] + bonus * (np.arange(c)[None, :] == feature[:, None])  # [N, C]
    beta = stop >= q.max(axis=1)
    avail = (~beta & (snap["age"][i] >= warmup)[:, None]).T  # [C, N]
    return act, (snap["opt_reward"][i], snap["opt_outcome"][i][:, :c, :], avail)


def snapshot(carry) -> dict[str, np.ndarray]:
    """Host copies of what planning needs from a batched OakState ([S, ...])."""
    import jax

    from oakrl.options.model import option_models_live

    a = carry.agent
    # A slot replaced at the last step keeps stale model rows until its next update.
    opt = jax.vmap(option_models_live)(a.opt, a.pool.age == 0)
    return {
        "theta": np.asarray(a.theta), "act_reward": np.asarray(a.act.reward),
        "act_outcome": np.asarray(a.act.outcome), "opt_reward": np.asarray(opt.reward),
        "opt_outcome": np.asarray(opt.outcome), "q": np.asarray(a.pool.q),
        "feature": np.asarray(a.pool.feature), "age": np.asarray(a.pool.age),
    }  # fmt: skip


# ---------------------------------------------------------------- the study


def run_spec(cfg: OptionPlanningConfig, world: str, run: str):
    from oakrl.lab.spec import RunSpec

    return RunSpec(
        env=world, agent="oak", steps=cfg.steps, seeds=cfg.seeds, seed=cfg.seed,
        chunk=cfg.steps // cfg.points, agent_options={**cfg.agent_options, **RUNS[run]},
        checkpoint_every=0, out=None,
    )  # fmt: skip


def measure(
    cfg: OptionPlanningConfig, world: str, run: str, snap: dict, agent_cfg, seed_index: int, point: int
) -> dict[str, dict[str, Any]]:
    """Planning with the model sets of one run (rr: a, b, d; ri: c) at one point of one seed."""
    from oakrl.envs.grids import STUDY_LAYOUTS, optimal_values

    layout = STUDY_LAYOUTS[world]
    start = layout.start if layout.start is not None else _measure_start(world)
    goal = layout.goal
    v_star = optimal_values(layout, agent_cfg.gamma, goal).astype(np.float32)
    plan_states = np.flatnonzero(~layout.walls & (np.arange(layout.size) != goal)).astype(np.int32)
    mask = np.zeros(layout.size, bool)
    mask[plan_states] = True
    # The same orders for both runs' sets at a point and seed: paired comparisons. Order 0 is
    # the one-order measure of earlier sessions (same seed); order k > 0 is seeded (base, k).
    base = cfg.seed * 1_000_003 + seed_index * 101 + point
    orders = np.stack([sweep_orders(plan_states, cfg.max_sweeps, base if k == 0 else (base, k))
                       for k in range(cfg.orders)])  # fmt: skip
    kappa = float(agent_cfg.stop_value) if run == "rr" else 0.0
    act, opt = agent_models(snap, seed_index, agent_cfg.option_warmup, float(agent_cfg.bonus), kappa)
    n_act = act[0].shape[0]
    on = np.ones((layout.size, n_act), bool)
    with_opt = (np.concatenate([act[0], opt[0]]), np.concatenate([act[1], opt[1]]),
                np.concatenate([on, opt[2]], axis=1))  # fmt: skip
    if run == "ri":
        sets = {"reward-ignoring": with_opt}
    else:
        h_r, h_o, h_av = _hallways(world, agent_cfg.gamma)
        sets = {
            "primitive": (act[0], act[1], on),
            "reward-respecting": with_opt,
            "hallway": (np.concatenate([act[0], h_r]), np.concatenate([act[1], h_o]),
                        np.concatenate([on, h_av], axis=1)),
        }  # fmt: skip
    n = len(plan_states)
    out = {}
    for name, (rew, outc, avail) in sets.items():
        vs_o, err_o, v_o = plan_traces(rew, outc, avail, orders, v_star, start, mask)
        per_order = [backups_to_tolerance(x, float(v_star[start]), cfg.tolerance)[0] for x in vs_o]
        vs, err, v = vs_o[0], err_o[0], v_o[0]
        settled, first = backups_to_tolerance(vs, float(v_star[start]), cfg.tolerance)
        out[name] = {
            "backups": settled,
            "backups_orders": per_order,
            "first_backups": first,
            "sweeps": -1 if settled < 0 else math.ceil(settled / n),
            "value_error": {str(k): float(err[k * n - 1]) for k in cfg.error_sweeps},
            "final_start_value": float(vs[-1]),
            "max_abs_value": float(np.max(np.abs(v))),
            "trace": vs[:: max(1, n // 4)].astype(float).tolist(),  # start value, 4 per sweep
            "options_available": float(avail[plan_states, n_act:].mean()) if avail.shape[1] > n_act else 0.0,
        }
    return out


def _measure_start(world: str) -> int:
    from oakrl.envs.grids import NINE_START, ROOMS_START

    if world == "NineRooms-v0":
        return NINE_START
    if world == "Rooms-v0":
        return ROOMS_START
    raise ConfigError(f"no start cell for {world}")


_HALLS: dict[tuple[str, float], tuple] = {}


def _hallways(world: str, gamma: float):
    from oakrl.envs.grids import STUDY_LAYOUTS

    key = (world, gamma)
    if key not in _HALLS:
        layout = STUDY_LAYOUTS[world]
        _HALLS[key] = hallway_models(layout, layout.goal, gamma)
    return _HALLS[key]


def run_world(cfg: OptionPlanningConfig, world: str, echo: Callable[[str], None]) -> dict[str, Any]:
    """Both runs of one world, planning measured at every point as the run passes it (nothing
    kept but the measures): per set [points][seeds] measures."""
    from oakrl.lab.run import execute, prepare

    per: dict[str, list[list[dict]]] = {k: [] for k in MODEL_SETS}
    points: list[int] = []
    timing = {}
    for run in ("rr", "ri"):
        plan = prepare(run_spec(cfg, world, run))
        agent_cfg = plan.agent.config

        def on_state(done: int, carry, run=run, agent_cfg=agent_cfg) -> None:
            snap = snapshot(carry)
            p_i = done // (cfg.steps // cfg.points) - 1
            rows = [measure(cfg, world, run, snap, agent_cfg, i, p_i) for i in range(cfg.seeds)]
            for k in rows[0]:
                per[k].append([r[k] for r in rows])
            if run == "rr":
                points.append(int(done))

        t0 = time.perf_counter()
        execute(plan, None, on_state)
        timing[run] = time.perf_counter() - t0
        echo(f"{world:>13} {run}: {cfg.steps} steps x {cfg.seeds} seeds and planning, {timing[run]:.0f} s")
    return {"points": points, "per": per, "run_seconds": timing}


def _stats(values: list[float], cap: int) -> dict[str, Any]:
    """Censored (-1) counted at `cap` for the mean; the count of censored seeds given."""
    arr = np.array([cap if v < 0 else v for v in values], float)
    return {
        "per_seed": [int(v) for v in values],
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "censored": int(sum(v < 0 for v in values)),
    }


def _order_means(rows: list[dict], cap: int) -> np.ndarray:
    """float[seeds]: each seed's backups averaged over the sweep orders (censored counted at cap)."""
    return np.array([np.mean([cap if v < 0 else v for v in r["backups_orders"]]) for r in rows], float)


def _ratio_bar(a: np.ndarray, b: np.ndarray, seeds: int, censored: np.ndarray) -> dict[str, Any]:
    """The bar on per-seed ratios b / a (seeds where either is censored dropped): mean + sd <= 0.5
    over all seeds, and the fraction of seeds at or under 0.5."""
    ok = (a > 0) & (b > 0) & ~censored
    ratio = b[ok] / a[ok] if ok.any() else np.array([])
    mean = float(ratio.mean()) if ratio.size else None
    sd = float(ratio.std(ddof=1)) if ratio.size > 1 else None
    return {
        "ratio_to_primitive_per_seed": [float(r) for r in ratio],
        "seeds_compared": int(ok.sum()),
        "ratio_mean": mean,
        "ratio_sd": sd,
        "fraction_at_most_half": float(np.mean(ratio <= 0.5)) if ratio.size else None,
        "censored_seeds": int(censored.sum()),
        "met": bool(ratio.size == seeds and mean is not None and mean + (sd or 0.0) <= 0.5),
    }


def summarize_world(cfg: OptionPlanningConfig, world: str, res: dict[str, Any]) -> dict[str, Any]:
    from oakrl.envs.grids import STUDY_LAYOUTS

    layout = STUDY_LAYOUTS[world]
    n = int((~layout.walls).sum() - 1)
    cap = cfg.max_sweeps * n
    points = []
    for p_i, done in enumerate(res["points"]):
        entry: dict[str, Any] = {"step": int(done)}
        for k in MODEL_SETS:
            rows = res["per"][k][p_i]
            means = _order_means(rows, cap)
            entry[k] = {
                "backups_to_10pct": _stats([r["backups"] for r in rows], cap),
                # Each seed's count averaged over cfg.orders sweep orders (less noise).
                "backups_to_10pct_orders": {
                    "per_seed": [float(m) for m in means],
                    "mean": float(means.mean()),
                    "sd": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
                    "censored_orders": int(sum(v < 0 for r in rows for v in r["backups_orders"])),
                },
                "first_backups_to_10pct": _stats([r["first_backups"] for r in rows], cap),
                "value_error": {
                    s: float(np.mean([r["value_error"][s] for r in rows])) for s in rows[0]["value_error"]
                },
                "final_start_value": [r["final_start_value"] for r in rows],
                "max_abs_value": float(max(r["max_abs_value"] for r in rows)),
                "options_available": float(np.mean([r["options_available"] for r in rows])),
            }
        points.append(entry)
    last = points[-1]
    a = np.array(last["primitive"]["backups_to_10pct"]["per_seed"], float)
    a_o = np.array(last["primitive"]["backups_to_10pct_orders"]["per_seed"], float)
    rows_a = res["per"]["primitive"][-1]
    out = {"planned_states": n, "cap_backups": cap, "points": points, "run_seconds": res["run_seconds"]}
    out["bar"] = {}
    for k in ("reward-respecting", "reward-ignoring", "hallway"):
        b = np.array(last[k]["backups_to_10pct"]["per_seed"], float)
        out["bar"][k] = _ratio_bar(a, b, cfg.seeds, b < 0)
        # The same bar on the order-averaged counts: a seed is dropped when any of its orders
        # is censored in either set (a censored count is a bound, not a count).
        rows_b = res["per"][k][-1]
        cens = np.array([min(ra["backups_orders"] + rb["backups_orders"]) < 0
                         for ra, rb in zip(rows_a, rows_b, strict=True)])  # fmt: skip
        b_o = np.array(last[k]["backups_to_10pct_orders"]["per_seed"], float)
        out["bar"][k]["orders"] = _ratio_bar(a_o, b_o, cfg.seeds, cens)
    return out


def config_json(cfg: OptionPlanningConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def study_option_planning(
    cfg: OptionPlanningConfig, out: str, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole study: runs, summary.json, figure.png."""
    from oakrl.envs.grids import STUDY_LAYOUTS, optimal_values
    from oakrl.io import write_json
    from oakrl.lab.files import machine
    from oakrl.lab.run import build
    from oakrl.study.common import start_study

    cfg.check()
    for w in cfg.worlds:
        build(run_spec(cfg, w, "ri"))  # bad agent options fail now, before any run
    path, cmd = start_study(out, config_json(cfg))
    t0 = time.perf_counter()
    worlds, raw = {}, {}
    for w in cfg.worlds:
        raw[w] = run_world(cfg, w, echo)
        worlds[w] = summarize_world(cfg, w, raw[w])
        _, agent = build(run_spec(cfg, w, "rr"))
        layout = STUDY_LAYOUTS[w]
        start = layout.start if layout.start is not None else _measure_start(w)
        worlds[w]["v_star_start"] = float(optimal_values(layout, agent.config.gamma)[start])
        worlds[w]["gamma"] = agent.config.gamma
        # What is measured so far survives an interrupted study (the larger worlds take long).
        write_json(path / "partial.json", {"command": cmd, "model_sets": MODEL_SETS, "worlds": worlds})
    summary = {
        "study": "option-planning",
        "command": cmd,
        "paper": "Sutton et al. 2023, Reward-Respecting Subtasks for Model-Based RL (arXiv 2202.03466)",
        "model_sets": MODEL_SETS,
        "measure": (
            f"Gauss-Seidel value iteration from v=0 (random order per sweep, same orders for every set); "
            f"backups until |v(start) - v*(start)| <= {cfg.tolerance:.0%} |v*(start)| for good, censored "
            f"at {cfg.max_sweeps} sweeps (counted at the cap in means); bar: per-seed ratio to primitive at "
            "the last point, mean + sd <= 0.5 (also the fraction of seeds at or under 0.5); `bar.X` uses "
            f"sweep order 0 only, `bar.X.orders` each seed's count averaged over {cfg.orders} orders"
        ),
        "orders": cfg.orders,
        "steps": cfg.steps,
        "seeds": cfg.seeds,
        "worlds": worlds,
        "wall_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    write_json(path / "summary.json", summary)
    plot(path / "figure.png", cfg, worlds, raw, cmd)
    for w, s in worlds.items():
        last = s["points"][-1]
        echo(f"{w} (v*(start) {s['v_star_start']:.3f}, {s['planned_states']} states), step {last['step']}:")
        for k in MODEL_SETS:
            b, bo = last[k]["backups_to_10pct"], last[k]["backups_to_10pct_orders"]
            echo(f"  {k:>18}: {b['mean']:8.0f} backups (sd {b['sd']:.0f}, censored {b['censored']}); "
                 f"over {cfg.orders} orders {bo['mean']:.0f} (sd {bo['sd']:.0f})")  # fmt: skip
        for k, bar in s["bar"].items():
            for label, x in (("1 order", bar), (f"{cfg.orders} orders", bar["orders"])):
                echo(f"  {k} / primitive ({label}): {_fmt(x['ratio_mean'])} (sd {_fmt(x['ratio_sd'])}), "
                     f"seeds <= 0.5: {_fmt(x['fraction_at_most_half'])}, met={x['met']}")  # fmt: skip
    echo(f"wrote {path}/summary.json, figure.png")
    return summary


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def plot(path: Path, cfg: OptionPlanningConfig, worlds: dict, raw: dict, command: str) -> None:
    """figure.png: per world, the start value against backups at the last point (the paper's form,
    one curve per model set), and backups to 10% over the lifetime."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from oakrl.study.common import save_study_figure

    n_w = len(worlds)
    fig = Figure(figsize=(11, 3.8 * n_w))
    FigureCanvasAgg(fig)
    for i, (w, s) in enumerate(worlds.items()):
        ax1, ax2 = fig.add_subplot(n_w, 2, 2 * i + 1), fig.add_subplot(n_w, 2, 2 * i + 2)
        n = s["planned_states"]
        for k in MODEL_SETS:
            traces = np.array([r["trace"] for r in raw[w]["per"][k][-1]])
            x = np.arange(traces.shape[1]) * max(1, n // 4) + 1  # trace[j] is after backup j*step+1
            m = traces.mean(0)
            sd = traces.std(0, ddof=1) if len(traces) > 1 else 0 * m
            ax1.plot(x, m, lw=1, label=k)
            ax1.fill_between(x, m - sd, m + sd, alpha=0.15)
            b = np.array([p[k]["backups_to_10pct_orders"]["per_seed"] for p in s["points"]], float)
            steps = [p["step"] for p in s["points"]]
            ax2.errorbar(steps, b.mean(1), yerr=b.std(1, ddof=1) if b.shape[1] > 1 else None, label=k,
                         marker="o", ms=3, capsize=2, lw=1)  # fmt: skip
        vs = s["v_star_start"]
        ax1.axhline(vs, color="k", lw=0.6, ls="--")
        ax1.axhspan(vs * (1 - cfg.tolerance), vs * (1 + cfg.tolerance), color="k", alpha=0.06)
        ax1.set_xscale("log")
        settled = [s["points"][-1][k]["backups_to_10pct"]["mean"] for k in MODEL_SETS]
        ax1.set_xlim(1, min(cfg.max_sweeps * n, 4 * max(settled)))
        ax1.set_xlabel("planning backups")
        ax1.set_ylabel("value of the start state")
        ax1.set_title(f"{w}: models at step {s['points'][-1]['step']} (mean, sd over seeds)", fontsize=9)
        ax1.legend(fontsize=7)
        ax2.axhline(cfg.max_sweeps * n, color="k", lw=0.5, ls=":")
        ax2.set_yscale("log")
        ax2.set_xlabel("agent step (models copied)")
        ax2.set_ylabel(f"backups to {cfg.tolerance:.0%}, {cfg.orders}-order mean")
        ax2.set_title(f"{w}: planning cost along the lifetime", fontsize=9)
        ax2.legend(fontsize=7)
    save_study_figure(fig, path, command)
