"""The oak study's figures: figure.png (reward rate, recovery per relocation, OaK's options over
time) and options.png / options.txt (every option of one seed at the end of its lifetime).

`cfg` is the study's OakStudyConfig (oakrl/study/oak.py, which imports this module: typed Any
here so that the two do not import each other)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oakrl.study.common import save_study_figure

if TYPE_CHECKING:
    from oakrl.lab.run import RunPlan


def feature_name(env: str, feature: int) -> str:
    if env == "Rooms-v0":
        from oakrl.envs.rooms import SIZE

        r, c = divmod(int(feature), SIZE)
        return f"cell ({r},{c})"
    return f"obs[{int(feature)}]"


def plot_study(path: Path, cfg: Any, result: dict[str, Any], command: str) -> None:
    """figure.png: reward rate over the lifetime, recovery per relocation, OaK's options over time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.2))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    for name, rate in result["rate"].items():
        k = 4  # smooth over 4 bins
        x = np.stack([np.convolve(r, np.ones(k) / k, mode="same") for r in rate]) * 100
        t = (np.arange(x.shape[1]) + 0.5) * cfg.bin
        mean = x.mean(0)
        se = x.std(0, ddof=1) / math.sqrt(x.shape[0]) if x.shape[0] > 1 else 0 * mean
        ax1.plot(t, mean, lw=1, label=name)
        ax1.fill_between(t, mean - se, mean + se, alpha=0.2)
    for j in range(1, cfg.relocations + 1):
        ax1.axvline(j * cfg.every, color="k", lw=0.5, ls=":")
    ax1.set_xlabel("step")
    ax1.set_ylabel("reward per 100 steps")
    ax1.set_title("reward rate (goal relocations dotted)", fontsize=9)
    ax1.legend(fontsize=7)
    for name, rec in result["recovery"].items():
        s = rec["steps"]
        ax2.errorbar(np.arange(1, s.shape[1] + 1), s.mean(0), yerr=s.std(0, ddof=1) if len(s) > 1 else None,
                     label=name, marker="o", ms=3, capsize=2, lw=1)  # fmt: skip
    ax2.axhline(cfg.every, color="k", lw=0.5, ls=":")
    ax2.set_xlabel("relocation")
    ax2.set_ylabel("steps to recover (censored at --every)")
    ax2.set_title(f"recovery: {cfg.threshold:.0%} of the optimal rate over {cfg.window} steps", fontsize=9)
    ax2.legend(fontsize=7)
    records = result["records"].get("oak") or {}
    if records:
        draw_options_over_time(ax3, records, seed=0, env=cfg.env)
    save_study_figure(fig, path, command)


def draw_options_over_time(ax, records: dict[str, np.ndarray], seed: int, env: str) -> None:
    """One row per option slot: its utility over time (colour), the feature behind it written
    where it changes (a replacement)."""
    m = records["seed"] == seed
    steps = np.unique(records["step"][m])
    slots = int(records["slot"][m].max()) + 1
    util = np.full((slots, steps.size), np.nan)
    feat = np.zeros((slots, steps.size), int)
    for i, st in enumerate(steps):
        mm = m & (records["step"] == st)
        util[records["slot"][mm], i] = records["utility"][mm]
        feat[records["slot"][mm], i] = records["feature"][mm]
    im = ax.imshow(util, aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0, steps[-1], slots - 0.5, -0.5))  # fmt: skip
    width = steps[-1] / steps.size
    for k in range(slots):
        for i in range(steps.size):
            if i == 0 or feat[k, i] != feat[k, i - 1]:
                name = feature_name(env, feat[k, i]).replace("cell ", "")
                ax.text(i * width + 0.1 * width, k, name, fontsize=5, color="w", va="center")
    ax.set_xlabel("step")
    ax.set_ylabel("option slot")
    ax.set_title(f"OaK seed {seed}: feature behind each option (text at each replacement), utility (colour)",
                 fontsize=8)  # fmt: skip
    ax.figure.colorbar(im, ax=ax, fraction=0.04)


def render_final_options(cfg: Any, path: Path, plan: RunPlan, seed: int = 0) -> list[str]:
    """options.txt and options.png: every option of OaK's seed `seed` at the end of its lifetime
    (`plan`: OaK's finished run; its final state is read from the run's last checkpoint)."""
    from oakrl.io import write_text
    from oakrl.lab.run import final_state
    from oakrl.report.rooms import plot_options, render_option

    state = final_state(plan).agent
    q = np.asarray(state.pool.q[seed])
    theta = np.asarray(state.theta[seed])
    feature = np.asarray(state.pool.feature[seed])
    utility = np.asarray(state.stats.utility[seed])
    bonus = float(plan.agent.config.bonus)
    order = np.argsort(-utility)
    texts, panels = [], []
    for k in order:
        name = f"slot {k}: {feature_name(cfg.env, feature[k])}, utility {utility[k]:.3f}"
        texts.append(name + "\n" + render_option(q[k], theta, int(feature[k]), bonus))
        panels.append((name, q[k], theta, int(feature[k]), bonus))
    legend = "'^>v<' the option's action, 'o' it stops here, '*' its feature's cell, '.' nothing learned"
    header = f"OaK seed {seed} at step {cfg.steps}; {legend}\n\n"
    write_text(path / "options.txt", header + "\n\n".join(texts))
    plot_options(path / "options.png", panels, f"OaK options, seed {seed}, step {cfg.steps} (shaded: stops)")
    return ["options.txt", "options.png"]
