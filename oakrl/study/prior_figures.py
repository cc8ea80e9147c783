"""The prior-vs-scratch study's figure (figure.png), apart from its runs and analysis (prior.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oakrl.study.common import save_study_figure


def plot_prior(path: Path, cfg: Any, result: dict[str, Any], command: str) -> None:
    """Left: the learning curves (mean over seeds, shaded +- one standard error), the threshold and
    each condition's mean steps to it; right: final return per condition with every seed."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scratch": "0.3", "expert": "tab:green", "mediocre": "tab:orange", "wrong": "tab:red"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2.3, 1]})
    for c, x in result["curves"].items():
        ends = np.linspace(0, cfg.steps, x.shape[1] + 1)[1:]
        mean = np.nanmean(x, 0)
        se = np.nanstd(x, 0, ddof=1) / np.sqrt(x.shape[0]) if x.shape[0] > 1 else np.zeros_like(mean)
        ax.plot(ends, mean, color=colors[c], label=c, lw=1.5)
        ax.fill_between(ends, mean - se, mean + se, color=colors[c], alpha=0.2)
        st = result["conditions"][c]["steps_to_threshold"]
        ax.axvline(st["mean"], color=colors[c], ls=":", lw=1)
    ax.axhline(cfg.thresh, color="k", ls="--", lw=0.8, label=f"threshold {cfg.thresh:g}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("episode return")
    ax.set_title("learning curves (dotted: mean steps to threshold)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names = list(result["curves"])
    for i, c in enumerate(names):
        fr = result["conditions"][c]["final_return"]
        bx.bar(i, fr["mean"], color=colors[c], alpha=0.6)
        bx.scatter(np.full(len(fr["per_seed"]), i), fr["per_seed"], color="k", s=10, zorder=3)
    bx.set_xticks(range(len(names)), names)
    bx.set_ylabel("final return (last 10% of the stream)")
    bx.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{cfg.env}, prior-ac (stream AC) from scratch or cloned demonstrations, {cfg.seeds} seeds",
        fontsize=10,
    )
    save_study_figure(fig, path, command)
    plt.close(fig)
