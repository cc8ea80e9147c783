"""A pytree of arrays kept as one flat vector.

Streaming updates touch every parameter several times per step (trace decay, trace
accumulation, the ObGD bound, the parameter update). Done leaf by leaf that is many small
kernels; done on one contiguous vector XLA fuses it into a couple of passes. `Flat` keeps
the vector as its only pytree leaf and the layout (tree structure and shapes) as static
auxiliary data, so it goes through jit, scan and vmap unchanged and `unravel()` gives the
per-layer views back for the forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


@jax.tree_util.register_pytree_node_class
class Flat:
    """One flat vector plus the static layout that turns it back into a pytree.

    vector: [..., size]. Leading axes (seeds under vmap, say) are carried through
    `unravel`, which returns leaves of shape [..., *leaf_shape].
    """

    __slots__ = ("vector", "layout")

    def __init__(self, vector: jax.Array, layout: tuple):
        self.vector = vector
        self.layout = layout  # (treedef, ((shape, offset), ...))

    @classmethod
    def ravel(cls, tree: PyTree) -> Flat:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        shapes, offset = [], 0
        for leaf in leaves:
            shape = tuple(int(d) for d in jnp.shape(leaf))
            shapes.append((shape, offset))
            offset += math.prod(shape)
        vector = jnp.concatenate([jnp.ravel(leaf).astype(jnp.float32) for leaf in leaves])
        return cls(vector, (treedef, tuple(shapes)))

    def unravel(self) -> PyTree:
        treedef, shapes = self.layout
        lead = self.vector.shape[:-1]
        leaves = [
            self.vector[..., off : off + math.prod(shape)].reshape(*lead, *shape)
            for shape, off in shapes
        ]
        return jax.tree_util.tree_unflatten(treedef, leaves)

    def ravel_like(self, tree: PyTree) -> jax.Array:
        """Flattens a pytree with this layout (e.g. gradients) into one vector."""
        leaves = jax.tree_util.tree_leaves(tree)
        return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])

    def replace(self, vector: jax.Array) -> Flat:
        return Flat(vector, self.layout)

    @property
    def size(self) -> int:
        return int(self.vector.shape[-1])

    def tree_flatten(self):
        return (self.vector,), self.layout

    @classmethod
    def tree_unflatten(cls, layout, children):
        return cls(children[0], layout)

    def __repr__(self) -> str:
        return f"Flat({getattr(self.vector, 'shape', self.vector)}, leaves={len(self.layout[1])})"

    def __eq__(self, other) -> bool:  # used by tests comparing states on the host
        return (
            isinstance(other, Flat)
            and self.layout == other.layout
            and np.array_equal(np.asarray(self.vector), np.asarray(other.vector))
        )

    __hash__ = None
