"""Commanded goals: target observation values folded into the reward of a search.

A goal names some entries of the observation and the values they should take, e.g. for
Rooms-v0 (one-hot cell observation) `40=1` is "be in cell 40". The transition model knows
nothing of goals; the search scores each predicted next observation s' by

    r_goal(s') = max(0, 1 - ||m * (s' - g)||^2 / tol^2)

(m: the named entries), so one goal-agnostic model serves any goal given at run time. It is
exactly 0 away from the goal: Gumbel MuZero rescales the Q-values of a node to [0, 1], so even a
tiny reward floor (e.g. a Gaussian tail) would be blown up and steer the search depth-first.

Goals are written on the command line as either
  * `I=V[,I=V...]`: entry I (0-based) should be V, the other entries do not matter; or
  * `V0,V1,...`: one value per observation entry (the length must match), `*` for "any".
Agents receive them as a table {"I": V} (JSON-clean, compared exactly when resuming).
"""

from __future__ import annotations

import math

from oakrl.errors import ConfigError

_FORMS = "I=V[,I=V...] (entry I should be V) or one value per observation entry, '*' for any"


def parse_goal(text: str, obs_dim: int) -> dict[str, float]:
    """The goal table of a command-line goal, checked against the observation size."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--goal takes {_FORMS}; got {text!r}")
    items = [s.strip() for s in text.split(",")]
    if any(not s for s in items):
        raise ConfigError(f"--goal has an empty entry in {text!r}; it takes {_FORMS}")
    goal: dict[str, float] = {}
    if all("=" in s for s in items):
        for s in items:
            i, v = (t.strip() for t in s.split("=", 1))
            try:
                index, value = int(i), float(v)
            except ValueError:
                raise ConfigError(f"--goal entry {s!r} is not INDEX=VALUE (e.g. 40=1)") from None
            if not 0 <= index < obs_dim:
                raise ConfigError(
                    f"--goal index {index} is outside the observation (entries 0..{obs_dim - 1})"
                )
            if not math.isfinite(value):
                raise ConfigError(f"--goal value of entry {index} must be finite, got {v!r}")
            goal[str(index)] = value
        return goal
    if any("=" in s for s in items):
        raise ConfigError(f"--goal mixes INDEX=VALUE and plain values in {text!r}; it takes {_FORMS}")
    for index, s in enumerate(items):
        if s == "*":
            continue
        try:
            value = float(s)
        except ValueError:
            raise ConfigError(
                f"--goal value {s!r} (entry {index}) is not a number or '*'; it takes {_FORMS}"
            ) from None
        if not math.isfinite(value):
            raise ConfigError(f"--goal value of entry {index} must be finite, got {s!r}")
        goal[str(index)] = value
    if len(items) != obs_dim:
        raise ConfigError(
            f"--goal has {len(items)} value(s) but the observation has {obs_dim} entries; "
            f"give {obs_dim} values ('*' for any) or INDEX=VALUE pairs"
        )
    if not goal:
        raise ConfigError("--goal names no entry (all '*'); give at least one value")
    return goal


def check_goal_table(goal: object, obs_dim: int | None = None) -> dict[str, float]:
    """Validates an agent's `goal` option ({} or {"I": V}); ConfigError naming what is wrong."""
    if not isinstance(goal, dict):
        raise ConfigError(f"goal must be a table of entry index -> value like {{'40': 1.0}}, got {goal!r}")
    out = {}
    for k, v in goal.items():
        try:
            index = int(k)
        except (TypeError, ValueError):
            raise ConfigError(f"goal keys are observation entry indices, got {k!r}") from None
        if index < 0 or (obs_dim is not None and index >= obs_dim):
            raise ConfigError(f"goal index {index} is outside the observation (0..{(obs_dim or 1) - 1})")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"goal value of entry {index} must be a finite number, got {v!r}")
        out[str(index)] = float(v)
    return out


def goal_arrays(goal: dict[str, float], obs_dim: int):
    """(values [D], mask [D]) float32 arrays of a goal table."""
    import numpy as np

    values, mask = np.zeros(obs_dim, np.float32), np.zeros(obs_dim, np.float32)
    for k, v in goal.items():
        values[int(k)], mask[int(k)] = v, 1.0
    return values, mask


def goal_reward(obs, values, mask, tolerance: float):
    """r_goal(s') in [0, 1]: 1 where the named entries match the goal, 0 beyond `tolerance`."""
    import jax.numpy as jnp

    dist2 = jnp.sum(mask * jnp.square(obs - values))
    return jnp.maximum(0.0, 1.0 - dist2 / tolerance**2)
