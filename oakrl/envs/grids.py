"""Grid worlds from a layout string: the two-room world of Sutton et al. 2023, and nine rooms.

Both are one gymnax environment, `Grid`, built from a `Layout`: walls, a start cell (fixed)
or none (each episode starts on a uniformly random free cell other than the goal), cells that
cost reward when entered, and a goal (reward +1 on entering it, and the episode ends). Four
actions (up, right, down, left); a move into a wall stays put; with probability `slip` the
move is a uniformly random one. The observation is the one-hot of the agent's cell over the
whole grid (float32[H*W]; wall cells are never hot), as in Rooms-v0.

TwoRooms-v0 is the gridworld of "Reward-Respecting Subtasks for Model-Based Reinforcement
Learning" (Sutton, Machado, Holland, Szepesvari, Timbers, Tanner & White 2023), as the one
public reproduction (ramos-ai/STOMP, gridworld/room_design.py) encodes it: two 6x6 rooms joined
by one hallway cell, the start S in the left room, the goal G (+1) in the right room, and a
gray block (reward -1 on every step into it) between S and the hallway, so that the shortest
way to the hallway is not the best one:

    ###############
    # .... #      #
    # .... #      #
    #S.... H      #
    # .... #      #
    # .... #      #
    #      #  G   #
    ###############

NineRooms-v0 is a 3x3 block of 6x6 rooms joined by 12 one-cell hallways (336 free cells), the
larger world with bottlenecks. Episodes start anywhere (like Rooms-v0); the `switch`
schedule moves the goal between the rooms' far corners (`NINE_GOALS`). Its `START` cell is
the one the option-planning study measures from (the top left room's corner).

`transitions` and `optimal_values` give a layout's exact MDP and its optimal values, used by
oakrl/study/option_planning.py to say how far planning is from the optimum; `hallway_cells`
gives the bottlenecks (the true hallway options' subgoals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

Array = jax.Array

# Action -> (row, col) move: up, right, down, left (as Rooms-v0).
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)


@dataclass(frozen=True)
class Layout:
    """A grid: '#' wall, '.' a cell that costs `penalty` when entered, 'S' start, 'G' goal,
    'H' a hallway (a free cell, marked as a bottleneck), ' ' free."""

    name: str
    text: str
    penalty: float = -1.0

    @property
    def rows(self) -> list[str]:
        return self.text.splitlines()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def cells(self, chars: str) -> np.ndarray:
        """int32[]: flat indices of the cells marked with one of `chars`."""
        flat = "".join(self.rows)
        return np.array([i for i, c in enumerate(flat) if c in chars], np.int32)

    @property
    def walls(self) -> np.ndarray:
        return np.array([c == "#" for c in "".join(self.rows)], bool)

    @property
    def free(self) -> np.ndarray:
        return np.flatnonzero(~self.walls).astype(np.int32)

    @property
    def goal(self) -> int:
        return int(self.cells("G")[0])

    @property
    def start(self) -> int | None:
        s = self.cells("S")
        return int(s[0]) if s.size else None

    def next_cells(self) -> np.ndarray:
        """int32[H*W, 4]: the cell each action leads to from each cell (walls block)."""
        h, w = self.shape
        walls = self.walls.reshape(h, w)
        table = np.zeros((h * w, 4), np.int32)
        for cell in range(h * w):
            r, c = divmod(cell, w)
            for a, (dr, dc) in enumerate(MOVES):
                nr, nc = r + dr, c + dc
                blocked = not (0 <= nr < h and 0 <= nc < w) or walls[nr, nc]
                table[cell, a] = cell if blocked else nr * w + nc
        return table

    def cell_rewards(self) -> np.ndarray:
        """float32[H*W]: reward on entering each cell, the goal's +1 apart."""
        r = np.zeros(self.size, np.float32)
        r[self.cells(".")] = self.penalty
        return r


TWO_ROOMS = Layout(
    "TwoRooms-v0",
    """\
###############
# .... #      #
# .... #      #
#S.... H      #
# .... #      #
# .... #      #
#      #  G   #
###############""",
)


def _nine_rooms() -> str:
    room, n = 6, 3
    size = n * room + n + 1  # 22
    grid = [["#"] * size for _ in range(size)]
    for br in range(n):
        for bc in range(n):
            for r in range(room):
                for c in range(room):
                    grid[1 + br * (room + 1) + r][1 + bc * (room + 1) + c] = " "
    for br in range(n):  # hallways in the vertical walls, mid-height of each room row
        for k in range(1, n):
            grid[1 + br * (room + 1) + 2][k * (room + 1)] = "H"
    for bc in range(n):  # and in the horizontal walls
        for k in range(1, n):
            grid[k * (room + 1)][1 + bc * (room + 1) + 3] = "H"
    grid[size - 2][size - 2] = "G"  # default goal: the bottom right room's far corner
    return "\n".join("".join(row) for row in grid)


NINE_ROOMS = Layout("NineRooms-v0", _nine_rooms())
NINE_SIZE = NINE_ROOMS.shape[1]
NINE_START = 1 * NINE_SIZE + 1
"""The top left room's far corner: where the option-planning study measures the start value."""


def _nine_goals() -> np.ndarray:
    # Task k: the far corner of room (2,2), (0,2), (2,0), (1,1)'s corner... cycled; variant 0 default.
    s, room = NINE_SIZE, 6
    corners = [(s - 2, s - 2), (1, s - 2), (s - 2, 1), (1 + room + 1 + room - 1, 1 + room + 1 + room - 1)]
    return np.array([r * s + c for r, c in corners], np.int32)


NINE_GOALS = _nine_goals()
"""int32[4]: the goal of task k % 4 under `switch` (variant 0 is the layout's G)."""

TWO_GOALS = np.array([TWO_ROOMS.goal, 1 * 15 + 13, 1 * 15 + 8, 6 * 15 + 13], np.int32)
"""int32[4]: TwoRooms-v0's goal of task k % 4 under `switch` (variant 0 is G)."""


def _rooms_text() -> str:
    from oakrl.envs import rooms

    rows = [list(r) for r in rooms._LAYOUT.splitlines()]
    for r, c in ((3, 6), (6, 2), (7, 9), (10, 6)):  # the four hallways
        rows[r][c] = "H"
    g_r, g_c = divmod(int(rooms.GOALS[0]), rooms.SIZE)
    rows[g_r][g_c] = "G"
    return "\n".join("".join(r) for r in rows)


ROOMS = Layout("Rooms-v0", _rooms_text())
"""Rooms-v0's MDP (oakrl/envs/rooms.py, same cells and one-hot indexing) with its default goal and
hallways marked, for studies that need its exact values; the environment stays rooms.Rooms."""
ROOMS_START = 11 * 13 + 11
"""The bottom right room's far corner: where the option-planning study measures on Rooms-v0."""

LAYOUTS = {TWO_ROOMS.name: TWO_ROOMS, NINE_ROOMS.name: NINE_ROOMS}
STUDY_LAYOUTS = {**LAYOUTS, ROOMS.name: ROOMS}
"""Every world whose MDP the studies know (Rooms-v0's env is rooms.Rooms, not Grid)."""


@struct.dataclass
class GridState(environment.EnvState):
    cell: Array  # int32[]
    time: Array  # int32[]


@struct.dataclass
class GridParams(environment.EnvParams):
    goal: Any = 0.0  # flat cell index (a float so schedules can store it in tables)
    slip: float = 0.0
    # Long enough for a random walk to cross the rooms (the paper's agent learns off-policy from
    # one; 200, as in Rooms-v0, cut most walks from S before they left the first room).
    max_steps_in_episode: int = 1000


class Grid(environment.Environment[GridState, GridParams]):
    """A grid world from a `Layout` (see module docstring)."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.layout = layout
        self.obs_shape = (layout.size,)
        self._next = jnp.asarray(layout.next_cells())
        self._reward = jnp.asarray(layout.cell_rewards())
        self._free = jnp.asarray(layout.free)
        self._start = layout.start

    @property
    def default_params(self) -> GridParams:
        return GridParams(goal=float(self.layout.goal))

    @staticmethod
    def goal_cell(params: GridParams) -> Array:
        return jnp.round(jnp.asarray(params.goal)).astype(jnp.int32)

    def reset_env(self, key: Array, params: GridParams) -> tuple[Array, GridState]:
        if self._start is not None:
            cell = jnp.asarray(self._start, jnp.int32)
        else:  # uniform over free cells other than the goal
            goal_rank = jnp.argmax(self._free == self.goal_cell(params))
            i = jax.random.randint(key, (), 0, self._free.shape[0] - 1)
            cell = self._free[i + (i >= goal_rank)]
        state = GridState(cell=cell, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self, key: Array, state: GridState, action: Array, params: GridParams
    ) -> tuple[Array, GridState, Array, Array, dict[str, Any]]:
        key_slip, key_action = jax.random.split(key)
        slipped = jax.random.uniform(key_slip) < params.slip
        action = jnp.where(slipped, jax.random.randint(key_action, (), 0, 4), action)
        cell = self._next[state.cell, action]
        at_goal = cell == self.goal_cell(params)
        reward = jnp.where(at_goal, 1.0, self._reward[cell])
        state = GridState(cell=cell, time=state.time + 1)
        return (
            jax.lax.stop_gradient(self.get_obs(state)),
            jax.lax.stop_gradient(state),
            reward.astype(jnp.float32),
            at_goal,
            {"discount": self.discount(state, params)},
        )

    def is_terminal(self, state: GridState, params: GridParams) -> Array:
        return (state.cell == self.goal_cell(params)) | (state.time >= params.max_steps_in_episode)

    def is_terminated(self, state: GridState, params: GridParams) -> Array:
        return state.cell == self.goal_cell(params)

    def is_truncated(self, state: GridState, params: GridParams) -> Array:
        return (state.time >= params.max_steps_in_episode) & ~self.is_terminated(state, params)

    def get_obs(self, state: GridState, params: Any = None, key: Any = None) -> Array:
        return jax.nn.one_hot(state.cell, self.layout.size, dtype=jnp.float32)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: GridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: GridParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)


def transitions(layout: Layout, goal: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact MDP (slip 0): (next [C, 4] int32, reward [C, 4] float, terminal [C] bool), C = H*W.

    Entering the goal gives +1 and ends the episode (its value is 0); walls are never occupied.
    """
    goal = layout.goal if goal is None else int(goal)
    nxt = layout.next_cells()
    r_cell = layout.cell_rewards()
    r_cell[goal] = 1.0
    terminal = np.zeros(layout.size, bool)
    terminal[goal] = True
    return nxt, r_cell[nxt], terminal


def optimal_values(layout: Layout, gamma: float, goal: int | None = None, tol: float = 1e-10) -> np.ndarray:
    """float64[C]: v*(s) by value iteration to convergence (0 at the goal and on walls)."""
    nxt, rew, terminal = transitions(layout, goal)
    v = np.zeros(layout.size)
    live = ~terminal & ~layout.walls
    for _ in range(100_000):
        q = rew + gamma * np.where(terminal[nxt], 0.0, v[nxt])
        new = np.where(live, q.max(axis=1), 0.0)
        if np.max(np.abs(new - v)) < tol:
            return new
        v = new
    return v


def shortest_paths(layout: Layout, goal: int, through: int | None = None) -> np.ndarray:
    """int32[C]: steps from every cell to `goal` under the best policy (-1 on walls and where
    unreachable), by breadth-first search backwards over moves. `through`: a cell no path may
    pass through (nothing goes on from it; e.g. a terminal goal on the way to a hallway)."""
    nxt = layout.next_cells()
    dist = np.full(layout.size, -1, np.int32)
    dist[goal] = 0
    reverse: dict[int, list[int]] = {}
    for cell in layout.free:
        for n in nxt[cell]:
            if n != cell and cell != through:
                reverse.setdefault(int(n), []).append(int(cell))
    frontier = [goal]
    while frontier:
        new = []
        for cell in frontier:
            for prev in reverse.get(cell, []):
                if dist[prev] < 0:
                    dist[prev] = dist[cell] + 1
                    new.append(prev)
        frontier = new
    return dist


def hallway_cells(layout: Layout) -> np.ndarray:
    """int32[]: the bottleneck cells ('H')."""
    return layout.cells("H")


def render(layout: Layout, cells: dict[int, str] | None = None) -> str:
    """The layout as text ('#' walls, '.' penalty cells), with `cells` drawn over it."""
    cells = cells or {}
    flat = "".join(layout.rows)
    h, w = layout.shape
    marks = {"#": "#", ".": "."}
    rows = [
        "".join(cells.get(r * w + c, marks.get(flat[r * w + c], " ")) for c in range(w)) for r in range(h)
    ]
    return "\n".join(rows)
