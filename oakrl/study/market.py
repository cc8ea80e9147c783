"""Calvano, Calzolari, Denicolò & Pastorello (AER 2020)'s baseline, reproduced: do two Q-learning
sellers learn to collude?

(Over 400 lines on purpose: one experiment readable top to bottom, as a CleanRL script is: the
sessions' compiled scan, the convergence rule, the impulse response, the summary and the figure.)

Market-v0 (oakrl/envs/market.py: logit demand, 15 prices, the paper's baseline parameters)
with two of the paper's tabular Q-learners (oakrl/agents/tabular_q.py: alpha = 0.15,
epsilon_t = exp(-beta t), beta = 4e-6, delta = 0.95, Q initialised by the paper's eq. 8).
`sessions` independent sessions (the paper ran 1,000) are vmapped and run as one compiled scan
per chunk of periods, until every session has converged or `max_periods` have passed.

* Convergence (the paper's section IV): a session stops when no seller's greedy strategy
  (argmax_a Q[s, a] in every state s) has changed for `converge_periods` (100,000)
  consecutive periods. A stopped session's tables are frozen (it no longer learns or plays).
* Outcome per session: from the final state, both sellers play their greedy strategies; after
  `transient` periods the path is on its limit cycle, whose profits averaged over
  `cycle_window` periods (840 = lcm(1..8), exact for every cycle of length <= 8) give the
  session's profit gain Delta = (pi - pi^N) / (pi^M - pi^N) (mean over the sellers) and its
  prices. The paper reports the average Delta over sessions (about 0.85 in its baseline).
* Impulse response (the paper's section VI): in sessions whose limit path is a fixed point,
  seller 0 is forced, for one period, to its one-shot best response to seller 1's price; then
  both follow their greedy strategies again. The mean prices over the periods after the shock
  show whether the deviation is punished and whether prices return.
* Non-stationarity (`--frozen-check`): a second run of seller 0 alone learning against seller
  1 frozen at its initial table (a stationary world), compared with the two learning.

Every number in summary.json is measured here; the paper's values it compares with are under
"paper", each with where it is stated.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.agents.tabular_q import epsilon_at, epsilon_greedy_u, row_update
from oakrl.envs.market import MarketParams, market_params, paper_q0, profit_gain, profits, state_index
from oakrl.errors import ConfigError

# What the paper reports for its baseline (Calvano et al. 2020, AER 110(10)).
PAPER = {
    "profit_gain": 0.85,
    "profit_gain_where": "section V.A: average profit gain Delta about 85% in the baseline (alpha 0.15, "
    "beta 4e-6)",
    "convergence_where": "section IV: converged when the optimal strategy of each agent does not change for "
    "100,000 consecutive periods; almost all sessions converge",
    "parameters_where": "section IV (baseline): n=2, c_i=1, a_i-c_i=1, a_0=0, mu=1/4, delta=0.95, m=15, "
    "xi=0.1, k=1; Q initialised by eq. 8",
}


@dataclass(frozen=True)
class MarketStudyConfig:
    sessions: int = 100
    seed: int = 0
    alpha: float = 0.15
    beta: float = 4e-6
    delta: float = 0.95
    converge_periods: int = 100_000
    max_periods: int = 5_000_000
    chunk: int = 20_000  # periods per compiled scan call (between convergence checks)
    transient: int = 1_000
    cycle_window: int = 840
    impulse_periods: int = 15
    frozen_check: bool = False  # also run seller 0 learning against a frozen seller 1

    def check(self) -> None:
        if self.sessions < 1:
            raise ConfigError(f"--sessions must be >= 1, got {self.sessions}")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"--alpha must be in (0, 1], got {self.alpha}")
        if self.beta < 0:
            raise ConfigError(f"--beta must be >= 0, got {self.beta}")
        if not 0 <= self.delta < 1:
            raise ConfigError(f"--delta must be in [0, 1), got {self.delta}")
        if self.converge_periods < 1 or self.max_periods < 1 or self.chunk < 1:
            raise ConfigError("--converge-periods, --max-periods and --chunk must be >= 1")


class Session(NamedTuple):
    """One session's carry (a leading [sessions] axis when batched)."""

    q: jax.Array  # [N, S, A] every seller's table
    last: jax.Array  # [N] int32 last prices (the state)
    t: jax.Array  # [] int32 periods played
    stable: jax.Array  # [] int32 periods since any greedy strategy changed
    converged: jax.Array  # [] bool
    key: jax.Array
    gain_sum: jax.Array  # [] float32 profit gain summed over this chunk's played periods
    played: jax.Array  # [] int32 periods played in this chunk


def init_sessions(cfg: MarketStudyConfig, params: MarketParams, key: jax.Array) -> Session:
    n, m = params.prices.shape
    q0 = jnp.broadcast_to(paper_q0(params, cfg.delta)[:, None, :], (n, m**n, m))
    k_state, k_run = jax.random.split(key)
    last = jax.random.randint(k_state, (cfg.sessions, n), 0, m, jnp.int32)
    z = jnp.zeros((cfg.sessions,), jnp.int32)
    return Session(
        q=jnp.broadcast_to(q0, (cfg.sessions, *q0.shape)).astype(jnp.float32),
        last=last,
        t=z,
        stable=z,
        converged=jnp.zeros((cfg.sessions,), bool),
        key=jax.random.split(k_run, cfg.sessions),
        gain_sum=jnp.zeros((cfg.sessions,), jnp.float32),
        played=z,
    )


def make_period(cfg: MarketStudyConfig, params: MarketParams, learns: tuple[bool, ...] | None = None):
    """One period of one session: act, earn, learn, test convergence. `learns[i]` False freezes
    seller i's table (the non-stationarity check)."""
    n, m = params.prices.shape
    learn_mask = jnp.asarray(learns if learns is not None else (True,) * n)
    sellers = jnp.arange(n)

    def period(c: Session, u: jax.Array) -> Session:
        """u [N, 2]: this period's uniforms (explore?, which price) per seller."""
        s = state_index(c.last, m)
        eps = epsilon_at(c.t, cfg.beta)
        acts = jax.vmap(lambda q, ui: epsilon_greedy_u(q[s], eps, ui))(c.q, u)
        pi = profits(params.prices[sellers, acts], params)
        s2 = state_index(acts, m)
        rows = c.q[sellers, s]  # [N, A]
        target = pi + cfg.delta * c.q[sellers, s2].max(-1)
        new_rows = jax.vmap(row_update, (0, 0, 0, None))(rows, acts, target, cfg.alpha)
        live = ~c.converged
        update = learn_mask & live
        new_rows = jnp.where(update[:, None], new_rows, rows)
        changed = jnp.argmax(new_rows, -1) != jnp.argmax(rows, -1)
        stable = jnp.where(changed.any(), 0, c.stable + 1)
        return Session(
            q=c.q.at[sellers, s].set(new_rows),
            last=jnp.where(live, acts, c.last),
            t=c.t + live,
            stable=jnp.where(live, stable, c.stable),
            converged=c.converged | (live & (stable >= cfg.converge_periods)),
            key=c.key,
            gain_sum=c.gain_sum + jnp.where(live, profit_gain(pi, params).mean(), 0.0),
            played=c.played + live,
        )

    return period


def make_chunk(cfg: MarketStudyConfig, params: MarketParams, length: int, learns=None) -> Callable:
    """A jitted chunk: `length` periods of every session (vmapped), one lax.scan."""
    period = jax.vmap(make_period(cfg, params, learns))
    n = params.prices.shape[0]

    @jax.jit
    def chunk(c: Session) -> Session:
        # the chunk's uniforms drawn in one call per session: drawing them inside the scan, one
        # small threefry call per period, took most of the period's time on CPU
        keys = jax.vmap(jax.random.split)(c.key)  # [S, 2, key]
        u = jax.vmap(lambda k: jax.random.uniform(k, (length, n, 2)))(keys[:, 1])
        c = c._replace(key=keys[:, 0], gain_sum=jnp.zeros_like(c.gain_sum), played=jnp.zeros_like(c.played))
        return jax.lax.scan(lambda x, ut: (period(x, ut), None), c, jnp.swapaxes(u, 0, 1))[0]

    return chunk


def greedy_path(q: jax.Array, last: jax.Array, periods: int, m: int, force: jax.Array | None = None):
    """Greedy play of one session from state `last` [N] for `periods` periods -> actions [T, N].
    `force` [T, N] int32 (-1: none) overrides actions (the impulse response's deviation)."""
    n = last.shape[0]

    def body(prev, f):
        s = state_index(prev, m)
        a = jnp.argmax(q[jnp.arange(n), s], axis=-1).astype(jnp.int32)
        a = jnp.where(f >= 0, f, a)
        return a, a

    if force is None:
        force = -jnp.ones((periods, n), jnp.int32)
    return jax.lax.scan(body, last, force)[1]


def analyse_sessions(cfg: MarketStudyConfig, params: MarketParams, c: Session) -> dict[str, np.ndarray]:
    """Per session: limit-cycle profit gain and prices, cycle length; impulse response paths."""
    n, m = params.prices.shape
    sellers = jnp.arange(n)
    horizon = cfg.transient + cfg.cycle_window

    def one(q, last):
        path = greedy_path(q, last, horizon, m)  # [T, N]
        window = path[cfg.transient :]
        p = params.prices[sellers, window]  # [W, N]
        pi = jax.vmap(profits, (0, None))(p, params)
        gain = profit_gain(pi, params).mean()
        start = window[0]
        same = jnp.all(window[1:] == start, axis=-1)
        cycle = jnp.where(same.any(), jnp.argmax(same) + 1, 0)  # 0: longer than the window
        # impulse response from `start` (on the cycle): seller 0 plays its one-shot best response
        # to seller 1's greedy price for one period, then both play greedy again
        s0 = state_index(start, m)
        rival = jnp.argmax(q[1, s0]).astype(jnp.int32)
        rival_p = params.prices[1, rival]
        own = params.prices[0]
        grid = jnp.stack([own, jnp.broadcast_to(rival_p, own.shape)], -1)
        # a market of more sellers would hold the others at their greedy prices too (n = 2 here)
        deviation = jnp.argmax(jax.vmap(profits, (0, None))(grid, params)[:, 0]).astype(jnp.int32)
        # (parenthesised: a unary minus binds looser than .at[...].set and negated the deviation)
        force = (-jnp.ones((cfg.impulse_periods + 1, n), jnp.int32)).at[0, 0].set(deviation)
        after = greedy_path(q, start, cfg.impulse_periods + 1, m, force)
        impulse = jnp.concatenate([start[None], after], 0)  # [1 + 1 + K, N], row 0 before the shock
        return gain, p.mean(0), cycle, params.prices[sellers, impulse]

    if n != 2:
        raise ConfigError("the market study's impulse response is written for 2 sellers")
    gain, prices, cycle, impulse = jax.jit(jax.vmap(one))(c.q, c.last)
    return {
        "profit_gain": np.asarray(gain),
        "prices": np.asarray(prices),
        "cycle": np.asarray(cycle),
        "impulse": np.asarray(impulse),
    }


def run_sessions(
    cfg: MarketStudyConfig, params: MarketParams, key: jax.Array, learns=None, log=None
) -> tuple[Session, dict[str, Any]]:
    """Runs every session to convergence or the cap: (final carry, curve and timing)."""
    c = init_sessions(cfg, params, key)
    chunk = make_chunk(cfg, params, cfg.chunk, learns)
    t0 = time.perf_counter()
    jax.block_until_ready(chunk.lower(c).compile())
    compile_s = time.perf_counter() - t0
    curve_t, curve_gain, curve_conv = [], [], []
    t0 = time.perf_counter()
    done = 0
    while done < cfg.max_periods:
        c = chunk(c)
        done += cfg.chunk
        played = np.asarray(c.played)
        conv = np.asarray(c.converged)
        gain = np.asarray(c.gain_sum).sum() / max(played.sum(), 1)
        curve_t.append(done)
        curve_gain.append(float(gain) if played.sum() else float("nan"))
        curve_conv.append(float(conv.mean()))
        if log is not None and (len(curve_t) % 25 == 0 or conv.all()):
            log(f"period {done}: converged {conv.mean():.2f}, Delta (playing sessions) {gain:.3f}")
        if conv.all():
            break
    seconds = time.perf_counter() - t0
    return c, {
        "curve_period": curve_t,
        "curve_profit_gain": curve_gain,
        "curve_converged": curve_conv,
        "compile_seconds": compile_s,
        "seconds": seconds,
        "scan_periods": done,
        "session_periods": int(np.asarray(c.t).sum()),
    }


def summarise(cfg, params, c: Session, run: dict, per: dict) -> dict[str, Any]:
    conv = np.asarray(c.converged)
    gain = per["profit_gain"]
    fixed = per["cycle"] == 1
    imp = per["impulse"][fixed]  # [F, K + 2, N]
    pre = imp[:, 0, :] if len(imp) else np.zeros((0, 2))
    returned = float(np.mean(np.all(np.isclose(imp[:, -1, :], pre), axis=-1))) if len(imp) else None
    t_conv = np.asarray(c.t)[conv]
    return {
        "sessions": cfg.sessions,
        "converged_share": float(conv.mean()),
        "profit_gain_mean": float(gain.mean()),
        "profit_gain_sd": float(gain.std(ddof=1)) if gain.size > 1 else 0.0,
        "profit_gain_mean_converged": float(gain[conv].mean()) if conv.any() else None,
        "periods_to_converge_mean": float(t_conv.mean()) if t_conv.size else None,
        "prices_mean": [float(x) for x in per["prices"].mean(0)],
        "nash_price": [float(x) for x in np.asarray(params.nash_price)],
        "monopoly_price": [float(x) for x in np.asarray(params.monopoly_price)],
        "nash_profit": [float(x) for x in np.asarray(params.nash_profit)],
        "monopoly_profit": [float(x) for x in np.asarray(params.monopoly_profit)],
        "price_grid": [float(x) for x in np.asarray(params.prices[0])],
        "cycle_length_share": {
            str(k): float(np.mean(per["cycle"] == k)) for k in sorted(set(per["cycle"].tolist()))
        },
        "impulse": {
            "sessions": int(fixed.sum()),
            "mean_prices": imp.mean(0).tolist() if len(imp) else None,  # [K + 2, N], row 0 pre-shock
            "returned_share": returned,
            "punished_share": float(np.mean(imp[:, 2, 1] < pre[:, 1])) if len(imp) else None,
        },
        "reproduced": bool(abs(gain.mean() - PAPER["profit_gain"]) <= 0.1),
        "paper": PAPER,
        "timing": {
            "compile_seconds": run["compile_seconds"],
            "seconds": run["seconds"],
            "scan_periods": run["scan_periods"],
            "session_periods_played": run["session_periods"],
            "sessions_x_periods_per_second": cfg.sessions * run["scan_periods"] / run["seconds"],
            "device": jax.devices()[0].device_kind,
        },
    }


def plot(path, cfg, params, run, per, summary, command, frozen=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oakrl.study.common import save_study_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(run["curve_period"], run["curve_profit_gain"], label="both learn")
    if frozen is not None:
        ax.plot(frozen["curve_period"], frozen["curve_profit_gain"], label="seller 1 frozen")
    ax2 = ax.twinx()
    ax2.plot(run["curve_period"], run["curve_converged"], color="grey", ls=":", label="share converged")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share converged (dotted)")
    ax.axhline(PAPER["profit_gain"], color="k", lw=0.8, ls="--")
    ax.set_xlabel("period")
    ax.set_ylabel("profit gain Delta (sessions still playing)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("learning")
    ax = axes[1]
    ax.hist(per["profit_gain"], bins=30)
    ax.axvline(PAPER["profit_gain"], color="k", ls="--", label="paper ~0.85")
    ax.axvline(summary["profit_gain_mean"], color="C1", label=f"mean {summary['profit_gain_mean']:.3f}")
    ax.set_xlabel("profit gain Delta at convergence (limit cycle)")
    ax.set_ylabel("sessions")
    ax.legend(fontsize=8)
    ax.set_title(f"{cfg.sessions} sessions, {summary['converged_share']:.0%} converged")
    ax = axes[2]
    mp = summary["impulse"]["mean_prices"]
    if mp is not None:
        mp = np.asarray(mp)
        x = np.arange(-1, mp.shape[0] - 1)
        ax.plot(x, mp[:, 0], "o-", label="seller 0 (deviates at 0)")
        ax.plot(x, mp[:, 1], "s-", label="seller 1")
    ax.axhline(float(params.nash_price[0]), color="r", ls=":", label="Nash")
    ax.axhline(float(params.monopoly_price[0]), color="g", ls=":", label="monopoly")
    ax.set_xlabel("period after the deviation")
    ax.set_ylabel("price")
    ax.set_title(f"impulse response ({summary['impulse']['sessions']} fixed-point sessions)")
    ax.legend(fontsize=8)
    fig.suptitle("Calvano et al. 2020 baseline on Market-v0 (tabular Q, alpha 0.15, beta 4e-6)", fontsize=10)
    save_study_figure(fig, path, command)
    plt.close(fig)


def study_market(cfg: MarketStudyConfig, out, echo=print, log=print) -> dict[str, Any]:
    """Runs the study and writes summary.json, sessions.parquet, figure.png, config.json."""
    from oakrl.io import write_bytes, write_json, write_table
    from oakrl.lab.run import base_key
    from oakrl.study.common import start_study

    cfg.check()
    params = market_params()
    path, cmd = start_study(out, {"study": "market", **dataclasses.asdict(cfg)})
    # The sessions' keys descend from the lab's base key (threefry: the raw key the study was
    # measured with, jax.random.PRNGKey(seed)); the sessions are one vmapped scan of the study's
    # own, since the paper's stopping rule is per session and the lab's streams run fixed steps.
    key = jax.random.key_data(base_key(cfg.seed, "threefry2x32"))
    c, run = run_sessions(cfg, params, key, log=log)
    # the final tables, so the analysis can be redone without re-running the sessions
    buf = io.BytesIO()
    np.savez_compressed(buf, q=np.asarray(c.q), last=np.asarray(c.last), t=np.asarray(c.t))
    write_bytes(path / "final_q.npz", buf.getvalue())
    per = analyse_sessions(cfg, params, c)
    summary = summarise(cfg, params, c, run, per)
    frozen = None
    if cfg.frozen_check:
        # the same sessions (same keys), seller 1's table frozen at the paper's init: seller 0
        # faces a stationary world; its curve against the learning run's shows what the other
        # learner's learning does to it
        cf, frozen = run_sessions(cfg, params, key, learns=(True, False), log=log)
        summary["frozen_rival"] = {
            "profit_gain_mean": float(analyse_sessions(cfg, params, cf)["profit_gain"].mean()),
            "converged_share": float(np.asarray(cf.converged).mean()),
            "curve_period": frozen["curve_period"],
            "curve_profit_gain": frozen["curve_profit_gain"],
        }
    summary["curve"] = {k: run[k] for k in ("curve_period", "curve_profit_gain", "curve_converged")}
    summary["command"] = cmd
    write_table(
        path / "sessions.parquet",
        {
            "session": np.arange(cfg.sessions, dtype=np.int32),
            "profit_gain": per["profit_gain"].astype(np.float32),
            "price_0": per["prices"][:, 0].astype(np.float32),
            "price_1": per["prices"][:, 1].astype(np.float32),
            "cycle": per["cycle"].astype(np.int32),
            "converged": np.asarray(c.converged),
            "periods": np.asarray(c.t).astype(np.int64),
        },
    )
    plot(path / "figure.png", cfg, params, run, per, summary, cmd, frozen)
    write_json(path / "summary.json", summary)
    t = summary["timing"]
    echo(
        f"market: {cfg.sessions} sessions, converged {summary['converged_share']:.2f}, "
        f"Delta {summary['profit_gain_mean']:.3f} (paper ~{PAPER['profit_gain']}), prices "
        f"{', '.join(f'{p:.3f}' for p in summary['prices_mean'])} (Nash {summary['nash_price'][0]:.3f}, "
        f"monopoly {summary['monopoly_price'][0]:.3f}); "
        f"{t['sessions_x_periods_per_second']:.3g} session-periods/s -> {path}"
    )
    return summary
