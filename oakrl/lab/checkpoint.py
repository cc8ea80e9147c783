"""Checkpoints: the whole continuation state of a run, written atomically.

A checkpoint is two files in the results directory:

  checkpoint-STEP.npz   the vmapped stream Carry (agent states, env states incl. schedule
                        position, timesteps, PRNG keys, step counters) as one serialised pytree,
                        plus the metrics recorded so far (episode rows, diagnostics rows, ...)
  checkpoint.json       which .npz is current: step, file, its sha256, the oakrl version and
                        the hash of the run's config

The .npz is written under a temporary name, synced and renamed (oakrl.io); only then is checkpoint.json
replaced (same way) to point at it, and only then are older .npz files removed. A kill at any
moment therefore leaves either the old or the new checkpoint complete and referenced.
Loading verifies the sha256, the version and the config hash, and refuses any mismatch.
checkpoint.json's own fields are inside a checksum too ("checksum": sha256 of its other fields),
and the .npz repeats the step, version and config hash ("meta"), so an edited pointer (a changed
step with the .npz's true sha256) is refused rather than trusted. Every archive error (a damaged
zip re-hashed, a missing entry) is one line (ConfigError).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from oakrl import __version__
from oakrl.core.serialize import pytree_from_bytes, pytree_to_bytes
from oakrl.errors import ConfigError
from oakrl.io import write_bytes

POINTER = "checkpoint.json"
PREFIX = "checkpoint-"


def config_hash(identity: dict[str, Any]) -> str:
    """sha256 of a config's canonical JSON (keys sorted)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(
    directory: Path, step: int, carry: Any, arrays: dict[str, np.ndarray], cfg_hash: str
) -> Path:
    """Writes checkpoint-STEP.npz, then points checkpoint.json at it, then drops older ones."""
    payload = {"carry": np.frombuffer(pytree_to_bytes(carry), np.uint8)}
    payload.update({f"rec/{k}": np.asarray(v) for k, v in arrays.items()})
    return _write(Path(directory), step, payload, cfg_hash)


def rehash_checkpoint(directory: Path, old_hash: str, new_hash: str) -> bool:
    """Re-labels the current checkpoint, verified as of config `old_hash`, as of `new_hash` (a
    run whose config changed in a field that leaves its state as it is: its lifetime, see
    oakrl/lab/extend.py). Written like any checkpoint (a kill leaves the old or the new one).
    Returns False where there is no checkpoint."""
    verified = verify_checkpoint(directory, old_hash)
    if verified is None:
        return False
    meta, data = verified
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        payload = {k: archive[k] for k in archive.files if k != "meta"}
    # Another file name: the current one stays whole until checkpoint.json points at the new one.
    step = int(meta["step"])
    _write(Path(directory), step, payload, new_hash, name=f"{PREFIX}{step:012d}-{new_hash[:12]}.npz")
    return True


def _write(
    directory: Path, step: int, payload: dict[str, np.ndarray], cfg_hash: str, name: str | None = None
) -> Path:
    buf = io.BytesIO()
    inner = {"step": int(step), "oakrl_version": __version__, "config_hash": cfg_hash}
    meta_entry = np.frombuffer(json.dumps(inner, sort_keys=True).encode(), np.uint8)
    np.savez(
        buf, carry=payload["carry"], meta=meta_entry, **{k: v for k, v in payload.items() if k != "carry"}
    )
    data = buf.getvalue()
    name = name or f"{PREFIX}{step:012d}.npz"
    write_bytes(directory / name, data)
    meta = {
        "step": int(step),
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "oakrl_version": __version__,
        "config_hash": cfg_hash,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta["checksum"] = _checksum(meta)
    write_bytes(directory / POINTER, (json.dumps(meta, indent=2) + "\n").encode())
    for old in directory.glob(f"{PREFIX}*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / name


def _checksum(meta: dict[str, Any]) -> str:
    """sha256 of a pointer's fields other than the checksum itself (canonical JSON)."""
    return config_hash({k: v for k, v in meta.items() if k != "checksum"})


def read_pointer(directory: Path) -> dict[str, Any] | None:
    """checkpoint.json's fields once its checksum holds; None when there is none."""
    path = Path(directory) / POINTER
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
        int(meta["step"]), str(meta["file"]), str(meta["sha256"])
    except (ValueError, KeyError, TypeError, OSError, AttributeError) as e:
        raise ConfigError(f"{path} is unreadable ({_one_line(e)}); remove it to start the run over") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} is unreadable (not an object); remove it to start the run over")
    if "checksum" not in meta and meta["file"] == f"{PREFIX}{int(meta['step']):012d}.npz":
        # Written before pointers carried a checksum (oakrl 0.2.0 until session 10): accepted, so
        # a long run of that version still resumes; its archive then must not carry a "meta"
        # record (verify_checkpoint), so a current pointer stripped of its checksum is still
        # checked against the archive.
        return meta
    if meta.get("checksum") != _checksum(meta):
        raise ConfigError(
            f"{path} was edited or damaged (its checksum does not match); remove it to start over"
        )
    return meta


def verify_checkpoint(directory: Path, cfg_hash: str) -> tuple[dict[str, Any], bytes] | None:
    """(pointer, .npz bytes) of the current checkpoint once verified, or None when there is none.

    Refuses (ConfigError) a checkpoint of another oakrl version or config, or a corrupt one.
    """
    directory = Path(directory)
    meta = read_pointer(directory)
    if meta is None:
        return None
    where = directory / POINTER
    if meta.get("oakrl_version") != __version__:
        raise ConfigError(
            f"{where} was written by oakrl {meta.get('oakrl_version')}, this is {__version__}; "
            "checkpoints are not loaded across versions: use another --out"
        )
    if meta.get("config_hash") != cfg_hash:
        raise ConfigError(f"{where} belongs to a different config; use another --out")
    file = directory / meta["file"]
    if "/" in meta["file"] or not file.is_file():
        raise ConfigError(f"{where} points to {meta['file']}, which is missing; remove {where} to start over")
    try:
        data = file.read_bytes()
    except OSError as e:
        why = e.strerror or e
        raise ConfigError(f"{file} cannot be read ({why}); remove {where} to start over") from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ConfigError(f"{file} is corrupt (sha256 mismatch); remove {where} to start over")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            legacy = "checksum" not in meta and "meta" not in archive.files
            inner = meta if legacy else json.loads(archive["meta"].tobytes())
    except Exception as e:  # any archive error (BadZipFile, a missing entry, ...) is one line
        why = _one_line(e)
        raise ConfigError(f"{file} is not a readable checkpoint ({why}); remove {where}") from None
    for field in ("step", "oakrl_version", "config_hash"):
        if inner.get(field) != meta.get(field):
            raise ConfigError(
                f"{where} does not match {meta['file']} ({field} {meta.get(field)!r} there, "
                f"{inner.get(field)!r} in the archive); remove {where} to start over"
            )
    return meta, data


def load_checkpoint(
    directory: Path, template: Any, cfg_hash: str
) -> tuple[int, Any, dict[str, np.ndarray]] | None:
    """(step, carry, recorded arrays) of the current checkpoint, or None when there is none.

    Refuses (ConfigError) a checkpoint of another oakrl version or config, or a corrupt one.
    """
    verified = verify_checkpoint(directory, cfg_hash)
    if verified is None:
        return None
    meta, data = verified
    file = Path(directory) / meta["file"]
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            stored = {k: archive[k] for k in archive.files}
        carry = pytree_from_bytes(template, stored.pop("carry").tobytes())
    except Exception as e:  # BadZipFile, a missing entry, a state of another shape: one line
        why = _one_line(e)
        raise ConfigError(f"{file} does not fit this run's state ({why}); use another --out") from None
    arrays = {k[len("rec/") :]: v for k, v in stored.items() if k.startswith("rec/")}
    return int(meta["step"]), carry, arrays


def _one_line(e: object) -> str:
    return " ".join(str(e).splitlines())
