"""Task variants: the dynamics each environment's `switch` and `drift` schedules move between.

A variant table gives, for some fields of the environment's gymnax params, one value per
variant. Task k uses variant k % len(table) (tables cycle when a schedule asks for more
tasks than there are rows). Variant 0 is always the environment's default dynamics.
A variant that "reverses the actuator" flips what the actions do, the hardest kind of
change for an agent that has learned a policy.

    CartPole-v1      length  masspole  gravity  force_mag
      0 default        0.5     0.1      9.8      10
      1 long, heavy    1.0     0.5      9.8      10
      2 short, fast    0.25    0.05    14.0      10
      3 reversed       0.5     0.1      9.8     -10    (action 1 pushes left)
    Acrobot-v1       link_length_1  link_com_pos_1  link_mass_1  link_mass_2  available_torque
      0 default          1.0            0.5            1.0          1.0        [-1, 0, 1]
      1 heavy tip        1.0            0.5            1.0          2.0        [-1, 0, 1]
      2 short, light     0.6            0.3            0.5          1.0        [-1, 0, 1]
      3 reversed         1.0            0.5            1.0          1.0        [1, 0, -1]
    MountainCar-v0   force    gravity
      0 default      0.001    0.0025
      1 steeper      0.0015   0.0035
      2 slower       0.0008   0.0018
      3 reversed    -0.001    0.0025   (action 0 pushes right)
    MountainCarContinuous-v0  power    gravity
      0 default               0.0015   0.0025
      1 steeper               0.0020   0.0035
      2 slower                0.0011   0.0018
      3 reversed             -0.0015   0.0025
    Pendulum-v1      g     m     l
      0 default     10.0  1.0   1.0
      1 heavy       15.0  1.3   1.0
      2 moon, long   6.0  0.8   1.2
      3 reversed    10.0 -1.0   1.0    (m enters only the torque term: the torque flips)
    Foraging-v0      phase = k / num_kinds: kind k % num_kinds is the rewarding one
                     (see oakrl/envs/foraging.py). Drift blends the phase linearly, so
                     the leg from the last variant back to 0 runs backwards through the
                     others instead of wrapping around.

    Rooms-v0         goal = GOALS[k % 4]: the far corner of room k (oakrl/envs/rooms.py);
                     the dynamics stay, only the reward moves.
    TwoRooms-v0      goal = TWO_GOALS[k % 4]: G, then the right room's other corners
    NineRooms-v0     goal = NINE_GOALS[k % 4]: corners of rooms 8, 2, 6, 4 (oakrl/envs/grids.py)

CartPole's derived fields (total_mass, polemass_length) are recomputed after every change.
MinAtar games have no parameters worth varying and so no table: `switch` and `drift` are
refused for them (use `permute` or `reward`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from oakrl.envs import grids, rooms


class Variants(NamedTuple):
    """Per-variant values of some params fields, plus a fix-up for derived fields.

    table: field name -> float32[num_variants, ...] (one row per variant; numpy here,
      jax arrays once a schedule has put the table into its params).
    derive: params -> params, recomputes fields that depend on the varied ones.
    """

    table: dict[str, Any]
    derive: Callable[[Any], Any] | None = None

    @property
    def num_variants(self) -> int:
        return int(next(iter(self.table.values())).shape[0])


def _table(**columns: list) -> dict[str, Any]:
    return {name: np.asarray(values, np.float32) for name, values in columns.items()}


def _cartpole_derive(params: Any) -> Any:
    # gymnax caches these products in params; they must follow masspole and length.
    return params.replace(
        total_mass=params.masscart + params.masspole,
        polemass_length=params.masspole * params.length,
    )


def foraging_variants(num_kinds: int) -> Variants:
    """Task k rotates the item values so that kind k is the best one."""
    return Variants(_table(phase=[k / num_kinds for k in range(num_kinds)]))


VARIANTS: dict[str, Variants] = {
    "CartPole-v1": Variants(
        _table(
            length=[0.5, 1.0, 0.25, 0.5],
            masspole=[0.1, 0.5, 0.05, 0.1],
            gravity=[9.8, 9.8, 14.0, 9.8],
            force_mag=[10.0, 10.0, 10.0, -10.0],
        ),
        _cartpole_derive,
    ),
    "Acrobot-v1": Variants(
        _table(
            link_length_1=[1.0, 1.0, 0.6, 1.0],
            link_com_pos_1=[0.5, 0.5, 0.3, 0.5],
            link_mass_1=[1.0, 1.0, 0.5, 1.0],
            link_mass_2=[1.0, 2.0, 1.0, 1.0],
            available_torque=[[-1.0, 0.0, 1.0]] * 3 + [[1.0, 0.0, -1.0]],
        )
    ),
    "MountainCar-v0": Variants(
        _table(force=[0.001, 0.0015, 0.0008, -0.001], gravity=[0.0025, 0.0035, 0.0018, 0.0025])
    ),
    "MountainCarContinuous-v0": Variants(
        _table(power=[0.0015, 0.0020, 0.0011, -0.0015], gravity=[0.0025, 0.0035, 0.0018, 0.0025])
    ),
    "Pendulum-v1": Variants(
        _table(g=[10.0, 15.0, 6.0, 10.0], m=[1.0, 1.3, 0.8, -1.0], l=[1.0, 1.0, 1.2, 1.0])
    ),
    "Foraging-v0": foraging_variants(3),
    "Rooms-v0": Variants({"goal": rooms.GOALS.astype(np.float32)}),
    "TwoRooms-v0": Variants({"goal": grids.TWO_GOALS.astype(np.float32)}),
    "NineRooms-v0": Variants({"goal": grids.NINE_GOALS.astype(np.float32)}),
}
"""Variant tables by environment id (only environments that support switch and drift)."""


def select(variants: Variants, params: Any, index: Any) -> Any:
    """`params` with the varied fields set to variant `index % num_variants` (traceable)."""
    row = jnp.asarray(index) % variants.num_variants
    fields = {k: jnp.asarray(v)[row] for k, v in variants.table.items()}
    return _apply(variants, params, fields)


def blend(variants: Variants, params: Any, a: Any, b: Any, weight: Any) -> Any:
    """`params` with the varied fields at (1 - weight) * variant a + weight * variant b."""
    n = variants.num_variants
    ra, rb = jnp.asarray(a) % n, jnp.asarray(b) % n
    table = {k: jnp.asarray(v) for k, v in variants.table.items()}
    fields = {k: v[ra] + weight * (v[rb] - v[ra]) for k, v in table.items()}
    return _apply(variants, params, fields)


def _apply(variants: Variants, params: Any, fields: dict[str, Any]) -> Any:
    params = params.replace(**fields)
    return variants.derive(params) if variants.derive is not None else params
