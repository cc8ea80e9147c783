"""oakrl's stream AC against stream-x's own script, in the same 100k-step bins.

    PYTHONPATH=. .venv/bin/python benchmarks/streamx_compare.py \
        --oakrl /work/runs-21b/walker2d-2m --streamx /work/sx-run/walker2d-v5-seed0.log

`--streamx` takes the stdout of stream-x's `stream_ac_continuous.py --debug` (one line
"Episodic Return: R, Time Step T" per episode; github.com/mohmdelsayed/streaming-drl, run
separately, never vendored here), one file per seed. `--oakrl` is an oakrl run directory
(episodes.parquet). Both are binned the way stream-x's plot.py bins its curves: an episode
counts in the bin (lo, lo + bin] that holds the step at which it ended; a run's bin value is the
mean return of those episodes, and each bin is reported per seed, as the mean over seeds, and
as the range (min-max) over oakrl's seeds. The mean episode length in each bin is reported as
well (Walker2d's episodes end early when it falls, so length tracks how well it walks).

Only bins that every stream-x log reaches are reported (a stream-x run stopped early still
gives its bins up to its last episode).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from oakrl.lab.tables import read_episodes

LINE = re.compile(r"Episodic Return: (\S+), Time Step (\d+)")


def read_streamx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Episode end steps and returns from one stream-x --debug log: two (n,) arrays."""
    steps, rets = [], []
    for line in path.read_text().splitlines():
        m = LINE.search(line)
        if m:
            rets.append(float(m.group(1).strip("[]")))
            steps.append(int(m.group(2)))
    return np.asarray(steps, dtype=np.int64), np.asarray(rets, dtype=np.float64)


def binned(steps: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of `values` whose step falls in (edges[i], edges[i+1]]; NaN where none: (nbins,)."""
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(edges) - 1):
        inside = (steps > edges[i]) & (steps <= edges[i + 1])
        if inside.any():
            out[i] = values[inside].mean()
    return out


def lengths(steps: np.ndarray) -> np.ndarray:
    """Episode lengths from consecutive end steps of one seed (steps sorted): (n,)."""
    return np.diff(np.concatenate([[0], steps]))


def fmt(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:,.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--oakrl", required=True, type=Path, help="oakrl run directory")
    p.add_argument("--streamx", required=True, type=Path, nargs="+", help="stream-x --debug logs")
    p.add_argument("--bin", type=int, default=100_000)
    args = p.parse_args()
    missing = [str(f) for f in (args.oakrl / "episodes.parquet", *args.streamx) if not f.is_file()]
    if missing:
        raise SystemExit(
            f"streamx_compare: not found: {', '.join(missing)} (an oakrl run directory and stream-x logs)"
        )
    if args.bin <= 0:
        raise SystemExit(f"streamx_compare: --bin must be a positive number of steps, got {args.bin}")

    ep = read_episodes(args.oakrl / "episodes.parquet")
    oak = []
    for s in np.unique(ep["seed"]):
        m = ep["seed"] == s
        order = np.argsort(ep["step"][m], kind="stable")
        oak.append((int(s), ep["step"][m][order], ep["return"][m][order].astype(np.float64)))
    sx = [(path.name, *read_streamx(path)) for path in args.streamx]
    reach = min(int(st.max()) if st.size else 0 for _, st, _ in sx)
    reach = min(reach, min(int(st.max()) for _, st, _ in oak))
    nbins = reach // args.bin
    if nbins == 0:
        raise SystemExit(f"the stream-x logs reach step {reach:,}: less than one bin of {args.bin:,}")
    edges = np.arange(nbins + 1, dtype=np.int64) * args.bin

    oak_r = np.stack([binned(st, r, edges) for _, st, r in oak])
    oak_l = np.stack([binned(st, lengths(st).astype(np.float64), edges) for _, st, _ in oak])
    sx_r = np.stack([binned(st, r, edges) for _, st, r in sx])
    sx_l = np.stack([binned(st, lengths(st).astype(np.float64), edges) for _, st, _ in sx])

    seeds = " ".join(f"{'oak s' + str(s):>10}" for s, _, _ in oak)
    sxs = " ".join(f"{'sx ' + str(i):>9}" for i in range(len(sx)))
    print(f"mean return of the episodes ending in each {args.bin:,}-step bin (reached: {reach:,})")
    print(
        f"{'bin end':>9} {seeds} {'oak mean':>9} {'oak min-max':>13} {sxs} {'sx mean':>8} {'sx/oak':>6} "
        f"{'len oak':>8} {'len sx':>7}"
    )
    for i in range(nbins):
        lo, hi = np.nanmin(oak_r[:, i]), np.nanmax(oak_r[:, i])
        oak_mean, sx_mean_i = np.nanmean(oak_r[:, i]), np.nanmean(sx_r[:, i])
        row = " ".join(f"{fmt(v):>10}" for v in oak_r[:, i])
        row_sx = " ".join(f"{fmt(v):>9}" for v in sx_r[:, i])
        print(
            f"{edges[i + 1]:>9,} {row} {fmt(oak_mean):>9} {fmt(lo) + '-' + fmt(hi):>13} {row_sx} "
            f"{fmt(sx_mean_i):>8} {sx_mean_i / oak_mean:>6.2f} "
            f"{fmt(np.nanmean(oak_l[:, i])):>8} {fmt(np.nanmean(sx_l[:, i])):>7}"
        )
    sx_mean = np.nanmean(sx_r, axis=0)
    inside = (sx_mean >= np.nanmin(oak_r, axis=0)) & (sx_mean <= np.nanmax(oak_r, axis=0))
    above = sx_mean > np.nanmax(oak_r, axis=0)
    print(
        f"stream-x mean inside oakrl's seed range in {inside.sum()} of {nbins} bins, "
        f"above it in {above.sum()}, below it in {nbins - inside.sum() - above.sum()}"
    )
    for name, st, r in sx:
        print(f"{name}: {st.size} episodes up to step {int(st.max()):,}; last 10 mean {r[-10:].mean():,.0f}")


if __name__ == "__main__":
    main()
