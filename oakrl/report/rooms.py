"""An option drawn on Rooms-v0: where it goes (its greedy action per cell) and where it stops.

For slot k of an OaK state on Rooms (observation = one-hot cell, so a cell's weights are its
values): the option's action in cell c is argmax_a Q[k, a, c] and it stops in c when
stop_k(c) = theta[c] + bonus * [c == feature] >= max_a Q[k, a, c]. Cells where the option
has learned nothing (all values 0) are drawn as '.' rather than an arbitrary arrow.

    text:  '#' wall, '^>v<' the option's action, 'o' stops here, '*' its feature's cell
           (the subtask's target), '.' nothing learned yet
    PNG:   the same as a picture: arrows, stopping region shaded, target outlined.

Drawing is reporting's business (it was oakrl/options/render.py): the options layer stays pure
functions over arrays, and this module sits above both the options and the worlds it draws on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from oakrl.envs.rooms import FREE, SIZE, WALLS, render
from oakrl.io import save_figure

ARROWS = "^>v<"


def option_map(q: np.ndarray, theta: np.ndarray, feature: int, bonus: float) -> tuple[np.ndarray, ...]:
    """(action [169] int, stops [169] bool, learned [169] bool) of one option; q [4, 169], theta [169]."""
    q, theta = np.asarray(q, np.float64), np.asarray(theta, np.float64)
    if q.shape != (4, SIZE * SIZE) or theta.shape != (SIZE * SIZE,):
        raise ValueError(f"a Rooms-v0 option has q [4, 169], theta [169]; got {q.shape}, {theta.shape}")
    stop_value = theta + bonus * (np.arange(SIZE * SIZE) == feature)
    stops = stop_value >= q.max(axis=0)
    learned = np.abs(q).max(axis=0) > 0
    return q.argmax(axis=0), stops, learned


def render_option(q: np.ndarray, theta: np.ndarray, feature: int, bonus: float) -> str:
    """The option as text on the Rooms grid (see module docstring)."""
    action, stops, learned = option_map(q, theta, feature, bonus)
    cells = {}
    for c in FREE:
        c = int(c)
        cells[c] = "o" if stops[c] else (ARROWS[action[c]] if learned[c] else ".")
    cells[int(feature)] = "*"
    return render(cells)


def plot_options(
    path: str | os.PathLike,
    options: Sequence[tuple[str, np.ndarray, np.ndarray, int, float]],
    title: str = "",
) -> str:
    """One panel per option (title, q [4, 169], theta [169], feature, bonus); written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(options)
    cols = min(4, max(n, 1))
    rows = -(-max(n, 1) // cols)
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows + 0.3))
    FigureCanvasAgg(fig)
    moves = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], float)  # (dx, dy) on screen for ^ > v <
    for i, (name, q, theta, feature, bonus) in enumerate(options):
        ax = fig.add_subplot(rows, cols, i + 1)
        action, stops, learned = option_map(q, theta, feature, bonus)
        img = np.where(WALLS, 0.2, 1.0)
        img = np.where(stops.reshape(SIZE, SIZE) & ~WALLS, 0.75, img)
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        go = np.array([int(c) for c in FREE if learned[c] and not stops[c]], int)
        if go.size:
            r, c = np.divmod(go, SIZE)
            d = moves[action[go]]
            ax.quiver(c, r, d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1.6, width=0.012)
        fr, fc = divmod(int(feature), SIZE)
        ax.add_patch(_square(fc, fr))
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _square(col: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
