"""Memory soak: resident memory of a long run (default 10M agent steps, CartPole stream AC).

Runs `oakrl.lab.run.run` in this process and samples the resident set size (VmRSS) after
every chunk. Memory is "flat" when, after warm-up (the first --warmup fraction of the
stream), the RSS stays within --tolerance (5%) of its value at the end of warm-up.

    python benchmarks/memory_soak.py                      # 10M steps, chunk 10k, 1 seed
    python benchmarks/memory_soak.py --steps 1000000      # quicker

Prints the RSS at a few points and the verdict; writes rss.csv in the results directory.
Exit code 0 when flat.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10_000_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--agent", default="stream-ac")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of the stream counted as warm-up")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from oakrl.lab.run import ChunkDone, run
    from oakrl.lab.spec import RunSpec

    out = Path(args.out or tempfile.mkdtemp(prefix="memory_soak_")) / "run"
    samples: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def progress(event) -> None:
        if not isinstance(event, ChunkDone):
            return
        done = event.step
        samples.append((done, time.perf_counter() - t0, rss_mib()))
        if len(samples) % 50 == 1:
            print(f"step {done:>12,}  {samples[-1][1]:8.1f} s  rss {samples[-1][2]:8.1f} MiB", flush=True)

    config = RunSpec(env=args.env, agent=args.agent, steps=args.steps, seeds=args.seeds, chunk=args.chunk)
    summary = run(config.replace(out=str(out)), progress).summary
    (out / "rss.csv").write_text(
        "step,seconds,rss_mib\n" + "".join(f"{s},{t:.2f},{r:.1f}\n" for s, t, r in samples)
    )
    warm = [r for s, _, r in samples if s >= args.warmup * args.steps]
    base, peak, last = warm[0], max(warm), warm[-1]
    growth = (peak - base) / base
    flat = growth <= args.tolerance
    for frac in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
        s, t, r = min(samples, key=lambda x: abs(x[0] - frac * args.steps))
        print(f"step {s:>12,}  {t:8.1f} s  rss {r:8.1f} MiB")
    print(
        f"after warm-up: start {base:.1f} MiB, peak {peak:.1f} MiB, end {last:.1f} MiB, growth {growth:+.2%} "
        f"-> {'FLAT' if flat else 'GROWING'} (tolerance {args.tolerance:.0%}); "
        f"{summary['steps_per_second']:,.0f} steps/s; results {out}"
    )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
