"""TextWorld-v0: find the apple in a row of rooms; observations and actions are strings.

Five rooms in a row (cellar, kitchen, hallway, library, garden). Each episode an apple lies
in a random room and the agent starts in a random room. What the agent is told is a sentence:

    "You are in the kitchen. You see an apple."
    "You are in the kitchen. You smell an apple to the east."

and it answers with one of four sentences: "go west", "go east", "take the apple", "sleep".
Taking the apple in its room pays +1 and ends the episode; every other step pays nothing.
Episodes are cut after `max_steps_in_episode` (default 20) steps. The smell says where the
apple is, so a reactive policy can be optimal: follow the smell, then take.

The set of observation sentences is finite (`OBSERVATIONS`, 15 of them: room x {see, smell
west, smell east}), so the JAX side sees an observation as a one-hot float32[15] over that
list (`observation_text(obs)` turns it back into the sentence) and an action as an index into
`ACTIONS`. That makes text priors cheap: a language model scores each (sentence, action) pair
once, outside the compiled stream (oakrl.priors.llm), and the agent looks the score up with
the one-hot (a [15, 4] table in its state).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

Array = jax.Array

ROOMS = ("cellar", "kitchen", "hallway", "library", "garden")
ACTIONS = ("go west", "go east", "take the apple", "sleep")
CUES = ("You see an apple.", "You smell an apple to the west.", "You smell an apple to the east.")
# Index = room * len(CUES) + cue.
OBSERVATIONS = tuple(f"You are in the {room}. {cue}" for room in ROOMS for cue in CUES)
GOAL = "Your goal is to take the apple."

_WEST, _EAST, _TAKE = 0, 1, 2


@struct.dataclass
class TextWorldState(environment.EnvState):
    room: Array  # int32[] where the agent is
    apple: Array  # int32[] where the apple is
    time: Array  # int32[] steps taken in this episode


@struct.dataclass
class TextWorldParams(environment.EnvParams):
    max_steps_in_episode: int = 20


def observation_index(room: Array, apple: Array) -> Array:
    """Index into OBSERVATIONS of what the agent is told: int32[]."""
    cue = jnp.where(room == apple, 0, jnp.where(apple < room, 1, 2))
    return (room * len(CUES) + cue).astype(jnp.int32)


def observation_text(obs) -> str:
    """The sentence of a one-hot observation (or of an index)."""
    arr = np.asarray(obs)
    return OBSERVATIONS[int(arr.argmax()) if arr.ndim else int(arr)]


def expert_action(obs: Array) -> Array:
    """The optimal action for a one-hot observation: take when seen, else follow the smell."""
    cue = jnp.argmax(obs) % len(CUES)
    return jnp.array([_TAKE, _WEST, _EAST], jnp.int32)[cue]


class TextWorld(environment.Environment[TextWorldState, TextWorldParams]):
    """The apple-finding text world (see module docstring)."""

    def __init__(self):
        super().__init__()
        self.obs_shape = (len(OBSERVATIONS),)

    @property
    def default_params(self) -> TextWorldParams:
        return TextWorldParams()

    def reset_env(self, key: Array, params: TextWorldParams) -> tuple[Array, TextWorldState]:
        k_room, k_apple = jax.random.split(key)
        room = jax.random.randint(k_room, (), 0, len(ROOMS), jnp.int32)
        apple = jax.random.randint(k_apple, (), 0, len(ROOMS), jnp.int32)
        state = TextWorldState(room=room, apple=apple, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self, key: Array, state: TextWorldState, action: Array, params: TextWorldParams
    ) -> tuple[Array, TextWorldState, Array, Array, dict[str, Any]]:
        move = jnp.where(action == _WEST, -1, jnp.where(action == _EAST, 1, 0))
        room = jnp.clip(state.room + move, 0, len(ROOMS) - 1).astype(jnp.int32)
        got = (action == _TAKE) & (state.room == state.apple)
        state = TextWorldState(room=room, apple=state.apple, time=state.time + 1)
        reward = got.astype(jnp.float32)
        return self.get_obs(state), state, reward, got, {"discount": 1.0 - reward}

    def get_obs(self, state: TextWorldState, params: Any = None, key: Any = None) -> Array:
        return jax.nn.one_hot(observation_index(state.room, state.apple), len(OBSERVATIONS))

    def is_terminated(self, state: TextWorldState, params: TextWorldParams) -> Array:
        return jnp.zeros((), bool)  # termination comes from step_env (taking the apple)

    def is_truncated(self, state: TextWorldState, params: TextWorldParams) -> Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return "TextWorld-v0"

    @property
    def num_actions(self) -> int:
        return len(ACTIONS)

    def action_space(self, params: TextWorldParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(len(ACTIONS))

    def observation_space(self, params: TextWorldParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)
