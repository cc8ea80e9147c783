"""Agent and run states to bytes and back, exactly.

A state is restored into a template of the same structure (what `agent.init` returns), so
the layout never travels in the file and a file from another structure is refused.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jax
import numpy as np

PyTree = Any


def _named_leaves(tree: PyTree) -> list[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def _to_numpy(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def pytree_to_bytes(tree: PyTree) -> bytes:
    """Serialises every leaf with its path as name (an .npz archive)."""
    arrays = {f"{i:05d}{name}": _to_numpy(leaf) for i, (name, leaf) in enumerate(_named_leaves(tree))}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def pytree_from_bytes(template: PyTree, data: bytes) -> PyTree:
    """Restores leaves into `template`'s structure; refuses any mismatch in names or shapes."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        stored = {k: archive[k] for k in archive.files}
    named = _named_leaves(template)
    if len(stored) != len(named):
        raise ValueError(f"state has {len(stored)} arrays, expected {len(named)}")
    leaves = []
    for i, (name, leaf) in enumerate(named):
        key = f"{i:05d}{name}"
        if key not in stored:
            raise ValueError(f"state is missing {name!r}")
        value = stored[key]
        ref = _to_numpy(leaf)
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise ValueError(
                f"{name}: stored {value.dtype}{list(value.shape)}, expected {ref.dtype}{list(ref.shape)}"
            )
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf))
        elif isinstance(leaf, jax.Array):
            value = jax.numpy.asarray(value)
        leaves.append(value)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def save_pytree(path: str | Path, tree: PyTree) -> None:
    """Writes atomically (oakrl.io): a reader never sees a half-written file."""
    from oakrl.io import write_bytes

    write_bytes(path, pytree_to_bytes(tree))


def load_pytree(path: str | Path, template: PyTree) -> PyTree:
    return pytree_from_bytes(template, Path(path).read_bytes())
