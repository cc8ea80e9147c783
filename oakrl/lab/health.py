"""Is a stream still healthy? Non-finite agent state or metrics end a run with one line.

The lab checks at every chunk boundary (oakrl/lab/run.py) and names the seed, the step, the
quantity and the last good checkpoint, which stays usable.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from oakrl.errors import ConfigError, Diverged
from oakrl.lab.checkpoint import read_pointer
from oakrl.lab.stream import Carry, ChunkRecord


def nonfinite(carry: Carry, seeds: int) -> tuple[int, str] | None:
    """(seed, leaf name) of the first non-finite value of the agent state, or None."""
    named, _ = jax.tree_util.tree_flatten_with_path(carry.agent)
    for kp, leaf in named:
        if not (hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact)):
            continue
        ok = np.isfinite(np.asarray(leaf)).reshape(seeds, -1).all(axis=1)
        if not ok.all():
            return int(np.argmin(ok)), "agent state " + jax.tree_util.keystr(kp)
    return None


def bad_metric(record: ChunkRecord) -> tuple[int, str] | None:
    """(seed, quantity) of the first non-finite episode return or reward sum, or None."""
    bad = ~np.isfinite(np.asarray(record.ret))
    if bad.any():
        return int(record.seed[np.argmax(bad)]), "episode return"
    bad = ~np.isfinite(np.asarray(record.reward_sum))
    if bad.any():
        return int(np.argmax(bad)), "reward sum"
    return None


def diverged(seed: int, step: int, quantity: str, path: Path | None) -> Diverged:
    """The one-line error for a stream that went non-finite."""
    meta = None
    if path is not None:
        try:
            meta = read_pointer(path)
        except ConfigError:
            meta = None
    kept = f"last good checkpoint: step {meta['step']}" if meta else "no checkpoint was written"
    where = f", in {path}" if path is not None else ""
    return Diverged(f"diverged: seed {seed}, step {step}: {quantity} is not finite ({kept}{where})")
