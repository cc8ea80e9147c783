"""CodedGrid-v0: a small grid world seen through a dense random code of the agent's cell.

The world is a `size x size` open grid (default 7x7) with the goal in the centre cell. The
agent moves up, right, down or left (4 actions); a move off the grid stays put. Reaching the
goal gives reward 1 and ends the episode; every other step gives 0; episodes are cut after
`max_steps_in_episode` steps (default 18, three times the farthest cell's distance, 6).
Each episode starts on a uniformly random cell other than the goal.

The observation is a fixed random binary code of the agent's cell, float32[bits] (default
64 bits, each 1 with probability 1/2), drawn once from `code_seed`: the code is part of the
world, the same in every run and for every seed.

Why it exists: it is the reinforcement-learning counterpart of Dohare et al.'s (2024)
permuted inputs. The observation is dense, so every input weight moves at every step, and
under the `permute` schedule each task shows the code through a new permutation of its
bits: the agent must relearn how it perceives where it is, while the dynamics and the goal
stay. The goal is in the centre so that no state-independent policy reaches it (with the
goal in a corner, "go up or left" would). CartPole's dynamics variants are the other
option of `oakrl study plasticity-rl`; there plain stream Q does not lose plasticity (see
benchmarks/RESULTS.md, "Plasticity (issue 3)").
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

Array = jax.Array

# Action -> (row, col) move: up, right, down, left.
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)


def next_cells(size: int) -> np.ndarray:
    """int32[size * size, 4]: the cell each action leads to (moves off the grid stay put)."""
    rows, cols = np.divmod(np.arange(size * size), size)
    r = np.clip(rows[:, None] + MOVES[None, :, 0], 0, size - 1)
    c = np.clip(cols[:, None] + MOVES[None, :, 1], 0, size - 1)
    return (r * size + c).astype(np.int32)


def cell_codes(size: int, bits: int, code_seed: int) -> np.ndarray:
    """float32[size * size, bits] in {0, 1}: the observation of each cell.

    Redrawn until every cell has a distinct code, so the world is fully observed.
    """
    rng = np.random.default_rng(code_seed)
    while True:
        code = (rng.random((size * size, bits)) < 0.5).astype(np.float32)
        if len(np.unique(code, axis=0)) == size * size:
            return code


@struct.dataclass
class CodedGridState(environment.EnvState):
    cell: Array  # int32[], flat index of the agent's cell
    time: Array  # int32[], steps into the episode


@struct.dataclass
class CodedGridParams(environment.EnvParams):
    max_steps_in_episode: int = 18


class CodedGrid(environment.Environment[CodedGridState, CodedGridParams]):
    """A size x size grid, goal in the centre, observed through a random binary code."""

    def __init__(self, size: int = 7, bits: int = 64, code_seed: int = 0):
        super().__init__()
        if size < 2 or bits < 1:
            raise ValueError(f"size must be >= 2 and bits >= 1, got size={size}, bits={bits}")
        if 2**bits < size * size:
            raise ValueError(f"{bits} bits cannot give {size * size} cells distinct codes")
        self.size, self.bits = size, bits
        self.goal = (size // 2) * size + size // 2  # the centre (even sizes: below right of it)
        self.next = next_cells(size)
        self.code = cell_codes(size, bits, code_seed)

    @property
    def default_params(self) -> CodedGridParams:
        row, col = divmod(self.goal, self.size)
        farthest = max(row, self.size - 1 - row) + max(col, self.size - 1 - col)
        return CodedGridParams(max_steps_in_episode=3 * farthest)

    def reset_env(self, key: Array, params: CodedGridParams) -> tuple[Array, CodedGridState]:
        i = jax.random.randint(key, (), 0, self.size * self.size - 1)
        cell = i + (i >= self.goal)  # uniform over the cells other than the goal
        state = CodedGridState(cell=cell.astype(jnp.int32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self, key: Array, state: CodedGridState, action: Array, params: CodedGridParams
    ) -> tuple[Array, CodedGridState, Array, Array, dict[str, Any]]:
        del key
        cell = jnp.asarray(self.next)[state.cell, action]
        at_goal = cell == self.goal
        state = CodedGridState(cell=cell, time=state.time + 1)
        # gymnax's `step` adds the time limit as `truncated`: only the goal terminates.
        return (
            jax.lax.stop_gradient(self.get_obs(state)),
            jax.lax.stop_gradient(state),
            at_goal.astype(jnp.float32),
            at_goal,
            {"discount": self.discount(state, params)},
        )

    def is_terminal(self, state: CodedGridState, params: CodedGridParams) -> Array:
        return (state.cell == self.goal) | (state.time >= params.max_steps_in_episode)

    def is_terminated(self, state: CodedGridState, params: CodedGridParams) -> Array:
        return state.cell == self.goal

    def is_truncated(self, state: CodedGridState, params: CodedGridParams) -> Array:
        return (state.time >= params.max_steps_in_episode) & ~self.is_terminated(state, params)

    def get_obs(self, state: CodedGridState, params: Any = None, key: Any = None) -> Array:
        """The code of the agent's cell, float32[bits]."""
        return jnp.asarray(self.code)[state.cell]

    @property
    def name(self) -> str:
        return "CodedGrid-v0"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: CodedGridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: CodedGridParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.bits,), jnp.float32)
