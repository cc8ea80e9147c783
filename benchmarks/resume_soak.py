"""Resume soak: kill runs with SIGKILL at random moments many times, resume, compare.

For each agent (stream AC, stream Q with a task schedule, stream TD) this runs the CLI once
uninterrupted (the reference), then runs the same command into another directory, killing it
with SIGKILL at random moments (after a random checkpoint, plus a random delay that lands
mid-chunk or mid-write) --kills times and re-running it each time, until it finishes. The
final checkpoint (every leaf of the vmapped carry: agent states, env states, PRNG keys,
counters; and the recorded metrics), episodes.parquet, diagnostics.parquet and the summary's
metrics must equal the reference's exactly. It also sends SIGINT once and checks the run stops
with exit 130 after checkpointing.

    python benchmarks/resume_soak.py --steps 200000 --chunk 2000 --kills 8

Exit code 0 when every agent matches; prints one line per agent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

METRICS = ("final_return", "average_reward", "episodes", "diagnostics", "tasks", "continuing")


def pointer(d: Path) -> dict | None:
    try:
        return json.loads((d / "checkpoint.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def arrays(d: Path) -> dict[str, np.ndarray]:
    meta = pointer(d)
    with np.load(d / meta["file"]) as outer:
        out = {k: outer[k] for k in outer.files}
    with np.load(io.BytesIO(out.pop("carry").tobytes())) as inner:
        out.update({f"carry/{k}": inner[k] for k in inner.files})
    return out


def same(a: Path, b: Path) -> list[str]:
    diffs = []
    xa, xb = arrays(a), arrays(b)
    if sorted(xa) != sorted(xb):
        return ["checkpoint keys differ"]
    for k in xa:
        if xa[k].dtype != xb[k].dtype or not np.array_equal(xa[k], xb[k], equal_nan=xa[k].dtype.kind == "f"):
            diffs.append(k)
    for name in ("episodes.parquet", "diagnostics.parquet"):
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        if ta.schema != tb.schema:
            diffs.append(f"{name} schema")
            continue
        for col in ta.column_names:
            va, vb = ta[col].to_numpy(), tb[col].to_numpy()
            if not np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"):
                diffs.append(f"{name}:{col}")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    diffs += [f"summary.{k}" for k in METRICS if sa.get(k) != sb.get(k)]
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=2_000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--hidden", default="32,32")
    p.add_argument("--agents", default="stream-ac,stream-q,stream-td")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill moments")
    p.add_argument("--dir", default=None, help="work directory [default: a temporary one]")
    args = p.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.dir or tempfile.mkdtemp(prefix="resume_soak_"))
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(work / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    failed = False
    for agent in args.agents.split(","):
        argv = [
            sys.executable,
            "-m",
            "oakrl.cli",
            "run",
            "--agent",
            agent,
            "--steps",
            str(args.steps),
            "--chunk",
            str(args.chunk),
            "--seeds",
            str(args.seeds),
            "--opt",
            f"hidden={args.hidden}",
            "--no-plot",
        ]
        if agent == "stream-q":
            argv += ["--schedule", "switch", "--every", str(max(args.steps // 5, 1))]
        ref, out = work / agent / "reference", work / agent / "killed"
        t0 = time.perf_counter()
        subprocess.run([*argv, "--out", str(ref)], check=True, env=env, capture_output=True)
        ref_s = time.perf_counter() - t0
        killed_at, sigint = [], None
        while not (out / "summary.json").exists():
            proc = subprocess.Popen(
                [*argv, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            base = (pointer(out) or {"step": 0})["step"]
            target = base + rng.randint(1, 4) * args.chunk
            while proc.poll() is None:
                meta = pointer(out)
                if meta and meta["step"] >= target:
                    time.sleep(rng.uniform(0, 0.2))
                    if sigint is None and len(killed_at) == args.kills // 2:
                        proc.send_signal(signal.SIGINT)
                        proc.wait()
                        sigint = (proc.returncode, (pointer(out) or {}).get("step"))
                    elif len(killed_at) < args.kills:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        killed_at.append((pointer(out) or {}).get("step"))
                    break
                time.sleep(0.005)
            proc.wait()
            proc.stderr.close()
        diffs = same(ref, out)
        ok = not diffs and (sigint is None or sigint[0] == 130)
        failed |= not ok
        print(
            f"{agent}: {'IDENTICAL' if not diffs else 'DIFFERENT ' + ', '.join(diffs[:5])} | "
            f"SIGKILL after checkpoints {killed_at} | SIGINT -> exit {sigint and sigint[0]} at step "
            f"{sigint and sigint[1]} | reference run {ref_s:.1f} s",
            flush=True,
        )
    print(f"work directory: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
