"""Do the learning figures quoted in the README and RESULTS still reproduce? Re-runs each, compares.

    .venv/bin/python benchmarks/figures.py                 # all (about 22 minutes on 2 cores)
    .venv/bin/python benchmarks/figures.py main-job oak    # some, by name
    .venv/bin/python benchmarks/figures.py --list

Seeded runs are bit-identical on one machine, but a figure moves when the compiled program
changes (XLA compile options, an agent's arithmetic) or the processor does (XLA emits other CPU
code for an AMD EPYC than for an Intel Xeon). Session 7 found three README sections whose
figures predated such a change. Each figure here is the README's command, run as a subprocess
into a temporary directory, and one number read from its summary.json, compared with the value
the README quotes for this processor family (none known: the figure is printed, not judged).
Exit code 1 when a figure with a reference differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    name: str
    argv: tuple[str, ...]  # `oakrl ARGV --out DIR`
    key: tuple[str, ...]  # path into DIR/summary.json
    reference: dict[str, float] = field(default_factory=dict)  # processor family -> README value
    decimals: int = 2  # compared after rounding to what the README prints


RUN_CARTPOLE = ("run", "--env", "CartPole-v1", "--agent", "stream-ac", "--no-plot")
FIGURES = (
    Figure(
        "main-job",
        ("run", "--env", "CartPole-v1", "--schedule", "switch", "--every", "25000", "--tasks", "2")
        + ("--steps", "200000", "--seeds", "4", "--no-plot"),
        ("final_return", "mean"),
        {"AMD EPYC": 454.97, "Intel Xeon": 494.45},
    ),
    Figure(
        "learning-cartpole",
        RUN_CARTPOLE + ("--steps", "300000", "--seeds", "8"),
        ("final_return", "mean"),
        {"AMD EPYC": 471.42, "Intel Xeon": 460.1},
        decimals=1,
    ),
    Figure(
        "learning-gym-q",
        ("run", "--env", "gym:CartPole-v1", "--agent", "stream-q", "--steps", "100000", "--no-plot"),
        ("final_return", "mean"),
        {"AMD EPYC": 406.88},
    ),
    Figure(
        "learning-breakout",
        ("run", "--env", "Breakout-MinAtar", "--agent", "stream-q", "--steps", "100000", "--seeds", "4")
        + ("--no-plot",),
        ("final_return", "mean"),
        {"AMD EPYC": 5.44, "Intel Xeon": 4.84},
    ),
    Figure(
        "oak",
        ("study", "oak"),
        ("agents", "oak", "recovery_steps", "mean"),
        # ties_to_actions on by default since session 19 (with ties at random: 1568.46 on an Intel
        # Xeon since session 14's oak step, 1519.77 before it)
        {"AMD EPYC": 1274.11},
    ),
    Figure(
        "option-planning",
        ("study", "option-planning"),
        ("worlds", "TwoRooms-v0", "bar", "reward-respecting", "ratio_mean"),
        {"Intel Xeon": 0.28},
    ),
    Figure(
        "oak-nine-rooms",
        ("study", "oak", "--env", "NineRooms-v0", "--every", "10000", "--relocations", "3")
        + ("--second-world", ""),
        ("agents", "oak", "recovery_steps", "mean"),
    ),
    Figure(
        "model-based",
        ("study", "model-based"),
        ("verdict", "recovery_ratio_vs_model_free", "dyna"),
        {"Intel Xeon": 0.409},  # session 15's search-control draw; AMD EPYC not re-measured since
        decimals=3,
    ),
    Figure(
        "prior-vs-scratch",
        ("study", "prior-vs-scratch"),
        ("conditions", "wrong", "steps_to_threshold", "mean"),
        {"AMD EPYC": 21802.2},
        decimals=1,
    ),
    Figure(
        "plasticity-supervised",
        ("study", "plasticity-supervised"),
        ("methods", "backprop", "retention"),
        {"AMD EPYC": 0.826},
        decimals=3,
    ),
    Figure(
        "plasticity-rl",
        ("study", "plasticity-rl", "--methods", "backprop,l2-init"),
        ("verdict", "remedies", "l2-init", "margin"),
        {"AMD EPYC": 0.239},
        decimals=3,
    ),
    Figure(
        "plasticity-rl-cartpole",
        ("study", "plasticity-rl", "--env", "CartPole-v1", "--schedule", "switch", "--every", "1000")
        + ("--tasks", "4", "--gamma", "0.99", "--epsilon-end", "0.01", "--methods", "backprop,cbp"),
        ("verdict", "remedies", "cbp", "margin"),
        {"AMD EPYC": 19.8, "Intel Xeon": 4.0},
        decimals=1,
    ),
)


def processor_family() -> str:
    """'AMD EPYC', 'Intel Xeon' or the raw model name (then no figure has a reference)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    models = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    model = models[0] if models else ""
    for family, marks in (("AMD EPYC", ("AMD EPYC",)), ("Intel Xeon", ("Xeon",))):
        if any(m in model for m in marks):
            return family
    return model or "unknown"


def lookup(summary: dict, key: tuple[str, ...]) -> float:
    for k in key:
        summary = summary[k]
    return float(summary)


def measure(fig: Figure, root: Path) -> tuple[float | None, float, str]:
    """(value or None, wall seconds, the error's last line)."""
    out = root / fig.name
    cmd = [sys.executable, "-m", "oakrl", *fig.argv, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return None, wall, lines[-1] if lines else f"exit {proc.returncode}"
    try:
        return lookup(json.loads((out / "summary.json").read_text()), fig.key), wall, ""
    except (OSError, ValueError, KeyError, TypeError) as e:  # the summary moved on: say which key
        return None, wall, f"summary.json has no {'.'.join(fig.key)} ({type(e).__name__}: {e})"


def main(argv: list[str] | None = None) -> int:
    names = [f.name for f in FIGURES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"figures to check (default: all): {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="print each figure's command and references")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; valid: {', '.join(names)}")
    chosen = [f for f in FIGURES if not args.names or f.name in args.names]
    if args.list:
        for f in chosen:
            print(f"{f.name}: oakrl {' '.join(f.argv)} -> {'.'.join(f.key)}  {f.reference}")
        return 0
    family = processor_family()
    print(f"processor: {family}")
    print(f"{'figure':<22} {'README':>10} {'now':>10}  verdict       wall")
    differ = 0
    with tempfile.TemporaryDirectory(prefix="oakrl-figures-") as tmp:
        for fig in chosen:
            value, wall, error = measure(fig, Path(tmp))
            ref = fig.reference.get(family)
            if value is None:
                verdict, now = f"FAILED: {error}", "-"
                differ += 1
            else:
                now = f"{value:.{fig.decimals}f}"
                if ref is None:
                    verdict = "no reference for this processor"
                elif abs(value - ref) <= 0.5 * 10.0**-fig.decimals + 1e-9:  # equal as printed
                    verdict = "reproduced"
                else:
                    verdict, differ = "DIFFERS", differ + 1
            shown = "-" if ref is None else f"{ref:.{fig.decimals}f}"
            print(f"{fig.name:<22} {shown:>10} {now:>10}  {verdict:<13} {wall:5.0f} s", flush=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
