"""Are the results of every agent bit-identical to a stored fingerprint? A check for refactors.

    .venv/bin/python benchmarks/fingerprint.py --save fp.json     # record (e.g. before a change)
    .venv/bin/python benchmarks/fingerprint.py --check fp.json    # compare (after it)
    .venv/bin/python benchmarks/fingerprint.py --only stream-q,oak --check fp.json

Each case is a short `oakrl run` (a subprocess, so it goes through the whole CLI and lab) of one
agent, its options and a world; its fingerprint is the sha256 of every number the run wrote:
each column of episodes.parquet and diagnostics.parquet (and records.parquet) as raw bytes,
and the per-seed average reward. A refactor that keeps the maths keeps every fingerprint;
one that moves a single float's last bit changes it. About 3 minutes for all cases on 2 cores.
Fingerprints are per machine (XLA emits other code for other processors). Exit code 1 when a
case differs from the stored fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

SHORT = ("--steps", "3000", "--seeds", "2", "--chunk", "1000", "--no-plot")
CASES: dict[str, tuple[str, ...]] = {
    "stream-ac": ("--env", "CartPole-v1", "--agent", "stream-ac", "--schedule", "switch", "--every", "1500"),
    "stream-ac-gauss": ("--env", "Pendulum-v1", "--agent", "stream-ac"),
    "stream-ac-cbp": ("--env", "CartPole-v1", "--agent", "stream-ac", "--opt", "plasticity=cbp")
    + ("--opt", "plasticity_diagnostics=true"),
    "stream-ac-gym": ("--env", "gym:CartPole-v1", "--agent", "stream-ac", "--steps", "600"),
    "stream-q": ("--env", "CartPole-v1", "--agent", "stream-q"),
    "stream-q-redo": ("--env", "CodedGrid-v0", "--agent", "stream-q", "--opt", "plasticity=redo")
    + ("--schedule", "permute", "--every", "1000", "--tasks", "3"),
    "stream-q-l2": ("--env", "CartPole-v1", "--agent", "stream-q", "--opt", "plasticity=l2-init"),
    "stream-q-sp": ("--env", "CartPole-v1", "--agent", "stream-q", "--opt", "plasticity=shrink-perturb"),
    "stream-q-tidbd": ("--env", "CartPole-v1", "--agent", "stream-q", "--opt", "optimizer=tidbd-obgd"),
    "stream-td": ("--env", "CartPole-v1", "--agent", "stream-td"),
    "stream-q-minatar": ("--env", "Breakout-MinAtar", "--agent", "stream-q", "--steps", "1000"),
    "stream-q-rooms": ("--env", "Rooms-v0", "--agent", "stream-q", "--schedule", "reward", "--every", "1500"),
    "dyna": ("--env", "Rooms-v0", "--agent", "dyna", "--schedule", "reward", "--every", "1500"),
    "planner": ("--env", "Rooms-v0", "--agent", "planner", "--steps", "1000"),
    "planner-goal": ("--env", "Rooms-v0", "--agent", "planner", "--goal", "40=1", "--steps", "1000"),
    "oak": ("--env", "Rooms-v0", "--agent", "oak", "--schedule", "reward", "--every", "1500"),
    "prior-ac": ("--env", "CartPole-v1", "--agent", "prior-ac"),
    "sft-tool": ("--env", "CartPole-v1", "--agent", "sft-tool"),
    "stream-ac-adaptive": ("--env", "Acrobot-v1", "--agent", "stream-ac", "--opt", "optimizer=adaptive-obgd"),
}


def fingerprint(run_dir: Path) -> str:
    h = hashlib.sha256()
    for name in ("episodes.parquet", "diagnostics.parquet", "records.parquet"):
        path = run_dir / name
        if not path.exists():
            continue
        table = pq.read_table(path)
        for column in sorted(table.column_names):
            h.update(column.encode())
            h.update(np.ascontiguousarray(table.column(column).to_numpy()).tobytes())
    summary = json.loads((run_dir / "summary.json").read_text())
    h.update(np.asarray(summary["average_reward"]["per_seed"], np.float64).tobytes())
    return h.hexdigest()[:16]


def run_case(name: str, argv: tuple[str, ...], root: Path) -> str:
    out = root / name
    # Later flags win in click, so a case's own --steps overrides SHORT's.
    cmd = [sys.executable, "-m", "oakrl", "run", *SHORT, *argv, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return "error: " + (lines[-1] if lines else f"exit {proc.returncode}")
    return fingerprint(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--save", help="write the fingerprints to this JSON file")
    parser.add_argument("--check", help="compare with the fingerprints in this JSON file")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}", file=sys.stderr)
        return 2
    stored = json.loads(Path(args.check).read_text()) if args.check else {}
    results, differ = {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            fp = run_case(name, CASES[name], Path(tmp))
            results[name] = fp
            verdict = ""
            if name in stored:
                same = stored[name] == fp
                differ += not same
                verdict = "same" if same else f"DIFFERS (stored {stored[name]})"
            print(f"{name:<20} {fp:<18} {verdict}", flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
