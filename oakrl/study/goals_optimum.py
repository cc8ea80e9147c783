"""The best possible goal score on Rooms-v0, computed exactly from the world's MDP.

goal_score counts the steps whose observation is the goal cell g. Per episode the agent observes
its start cell s_0 (uniform over the free cells other than the world's own goal, which ends the
episode) and then the cells s_1 .. s_{L-1} it moves to; the last move's cell is replaced by the
next episode's start (gymnax resets in the same step). The long-run share of steps at g of a
policy is E[steps at g per episode] / E[L], a renewal-reward ratio. Its maximum rho* is the root
of max_pi E[sum_{k<L} (1[s_k = g] - rho)] = 0 (Dinkelbach), found by bisection on rho with a
finite-horizon dynamic programme over (time in episode, cell): exact up to the bisection's
tolerance (1e-9). Slip is 0 (Rooms-v0's default): moves are deterministic.
"""

from __future__ import annotations

import numpy as np


def optimal_goal_rate(goal: int, world_goal: int | None = None, horizon: int | None = None) -> float:
    """rho*: the best long-run share of steps spent at cell `goal` on Rooms-v0 (see module doc)."""
    from oakrl.envs.rooms import FREE, GOALS, NEXT, RoomsParams

    world_goal = int(GOALS[0]) if world_goal is None else world_goal
    horizon = RoomsParams().max_steps_in_episode if horizon is None else horizon
    starts = FREE[FREE != world_goal]
    at_goal = np.zeros(NEXT.shape[0])
    at_goal[goal] = 1.0
    ends = NEXT == world_goal  # [cells, actions]: the move ends the episode

    def start_value(rho: float) -> float:
        v = np.zeros(NEXT.shape[0])  # value after the last move: nothing more this episode
        for t in range(horizon - 1, -1, -1):
            after = np.zeros_like(NEXT, dtype=float) if t + 1 == horizon else np.where(ends, 0.0, v[NEXT])
            v = (at_goal - rho) + after.max(axis=1)
        return float(v[starts].mean())

    lo, hi = 0.0, 1.0
    while hi - lo > 1e-9:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if start_value(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)
