"""Rooms-v0: Sutton, Precup & Singh's four rooms, with a goal that the schedules relocate.

The grid is 13x13 with walls around and between four rooms joined by four one-cell
hallways (104 free cells):

    #############
    #     #     #
    #     #     #
    #           #
    #     #     #
    #     #     #
    ## ####     #
    #     ### ###
    #     #     #
    #     #     #
    #           #
    #     #     #
    #############

The agent moves up, right, down or left (4 actions); a move into a wall stays put. With
probability `slip` the move is replaced by a uniformly random one. Reaching the goal cell
gives reward 1 and ends the episode; every other step gives 0; episodes are cut after
`max_steps_in_episode` steps. Each episode starts on a uniformly random free cell other
than the goal, so the agent must learn the way to the goal from everywhere.

The observation is the one-hot of the agent's cell, float32[169] (row-major over the 13x13
grid; wall cells are never hot). The goal is not in the observation: when it moves, the
agent finds out only through reward. That makes it the plain test of "the dynamics stay,
the rewards move": a model of what happens when the agent acts stays right after a change,
only the reward part of it is wrong.

`goal` (a flat cell index) is what the `switch` schedule moves: task k puts the goal in
the corner of room k % 4 (variant 0 is the default goal, top left room's far corner), see
`GOALS`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

Array = jax.Array

_LAYOUT = """\
#############
#     #     #
#     #     #
#           #
#     #     #
#     #     #
## ####     #
#     ### ###
#     #     #
#     #     #
#           #
#     #     #
#############"""

SIZE = 13
WALLS = np.array([[c == "#" for c in line] for line in _LAYOUT.splitlines()], bool)
"""bool[13, 13]: True on walls."""
FREE = np.flatnonzero(~WALLS.ravel()).astype(np.int32)
"""int32[104]: flat indices of the free cells."""

# Action -> (row, col) move: up, right, down, left.
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)

# Goal of task k: a far corner of room k (top left, top right, bottom right, bottom left).
GOALS = np.array([1 * SIZE + 1, 1 * SIZE + 11, 11 * SIZE + 11, 11 * SIZE + 1], np.int32)


def _next_cells() -> np.ndarray:
    """int32[169, 4]: the cell each action leads to from each cell (walls block)."""
    table = np.zeros((SIZE * SIZE, 4), np.int32)
    for cell in range(SIZE * SIZE):
        r, c = divmod(cell, SIZE)
        for a, (dr, dc) in enumerate(MOVES):
            nr, nc = r + dr, c + dc
            blocked = not (0 <= nr < SIZE and 0 <= nc < SIZE) or WALLS[nr, nc]
            table[cell, a] = cell if blocked else nr * SIZE + nc
    return table


NEXT = _next_cells()
"""int32[169, 4]: deterministic successor of every (cell, action)."""


@struct.dataclass
class RoomsState(environment.EnvState):
    cell: Array  # int32[]: flat index of the agent's cell
    time: Array  # int32[]: steps in this episode


@struct.dataclass
class RoomsParams(environment.EnvParams):
    goal: Any = float(GOALS[0])  # flat cell index (a float so schedules can store it in tables)
    slip: float = 0.0  # probability that a random action replaces the chosen one
    max_steps_in_episode: int = 200


class Rooms(environment.Environment[RoomsState, RoomsParams]):
    """The four-rooms grid world with a movable goal (see module docstring)."""

    obs_shape = (SIZE * SIZE,)

    @property
    def default_params(self) -> RoomsParams:
        return RoomsParams()

    @staticmethod
    def goal_cell(params: RoomsParams) -> Array:
        return jnp.round(jnp.asarray(params.goal)).astype(jnp.int32)

    def reset_env(self, key: Array, params: RoomsParams) -> tuple[Array, RoomsState]:
        # Uniform over free cells other than the goal: draw among 103 and skip the goal.
        goal = self.goal_cell(params)
        free = jnp.asarray(FREE)
        goal_rank = jnp.argmax(free == goal)
        i = jax.random.randint(key, (), 0, free.shape[0] - 1)
        cell = free[i + (i >= goal_rank)]
        state = RoomsState(cell=cell, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self, key: Array, state: RoomsState, action: Array, params: RoomsParams
    ) -> tuple[Array, RoomsState, Array, Array, dict[str, Any]]:
        key_slip, key_action = jax.random.split(key)
        slipped = jax.random.uniform(key_slip) < params.slip
        action = jnp.where(slipped, jax.random.randint(key_action, (), 0, 4), action)
        cell = jnp.asarray(NEXT)[state.cell, action]
        at_goal = cell == self.goal_cell(params)
        state = RoomsState(cell=cell, time=state.time + 1)
        # gymnax's `step` adds the time limit as `truncated`: only the goal terminates.
        return (
            jax.lax.stop_gradient(self.get_obs(state)),
            jax.lax.stop_gradient(state),
            at_goal.astype(jnp.float32),
            at_goal,
            {"discount": self.discount(state, params)},
        )

    def is_terminal(self, state: RoomsState, params: RoomsParams) -> Array:
        return (state.cell == self.goal_cell(params)) | (state.time >= params.max_steps_in_episode)

    def is_terminated(self, state: RoomsState, params: RoomsParams) -> Array:
        return state.cell == self.goal_cell(params)

    def is_truncated(self, state: RoomsState, params: RoomsParams) -> Array:
        return (state.time >= params.max_steps_in_episode) & ~self.is_terminated(state, params)

    def get_obs(self, state: RoomsState, params: Any = None, key: Any = None) -> Array:
        """One-hot of the agent's cell, float32[169]."""
        return jax.nn.one_hot(state.cell, SIZE * SIZE, dtype=jnp.float32)

    @property
    def name(self) -> str:
        return "Rooms-v0"

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: RoomsParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: RoomsParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)


def shortest_paths(goal: int) -> np.ndarray:
    """int32[169]: steps from every cell to `goal` under the best policy (-1 on walls).

    Breadth-first search over NEXT; used by studies to say how far from optimal an agent is.
    """
    dist = np.full(SIZE * SIZE, -1, np.int32)
    dist[goal] = 0
    frontier = [goal]
    reverse: dict[int, list[int]] = {}
    for cell in FREE:
        for nxt in NEXT[cell]:
            if nxt != cell:
                reverse.setdefault(int(nxt), []).append(int(cell))
    while frontier:
        nxt_frontier = []
        for cell in frontier:
            for prev in reverse.get(cell, []):
                if dist[prev] < 0:
                    dist[prev] = dist[cell] + 1
                    nxt_frontier.append(prev)
        frontier = nxt_frontier
    return dist


def render(cells: dict[int, str] | None = None) -> str:
    """The layout as text, with `cells` (flat index -> one character) drawn over it."""
    cells = cells or {}
    rows = []
    for r in range(SIZE):
        rows.append("".join(cells.get(r * SIZE + c, "#" if WALLS[r, c] else " ") for c in range(SIZE)))
    return "\n".join(rows)
