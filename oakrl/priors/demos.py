"""Demonstrations: what a policy did, step by step, on disk as one .npz file.

A dataset is N consecutive transitions of one stream (episodes back to back, as the
environment auto-resets). Arrays in the .npz (row i is one transition):

    observations  float32 [N, *obs_shape]  the observation action i was chosen in
    actions       int32 [N] (discrete) or float32 [N, action_dim] (Box)
    rewards       float32 [N]  the reward that followed action i
    terminated    bool [N]     the transition ended the episode in a terminal state
    truncated     bool [N]     the transition hit the time limit
    episode       int32 [N]    episode index of row i (0, 1, ...); the last may be unfinished
    header        0-d str      JSON: format ("oakrl-demos"), version (1), env, obs_shape,
                               action ({"discrete": n} or {"shape", "low", "high"}), source,
                               quality, noise, steps, episodes (finished), mean_return (of the
                               finished ones), seed, oakrl_version, created

Quality is deliberate (see `apply_quality`): "expert" records the policy as it acts;
"mediocre" replaces each action with a uniformly random one with probability `noise` (a
noisy expert); "wrong" always takes the action after the policy's, (a + 1) mod n (for two
actions: the opposite one), an adversarial teacher that reward must overrule.

Recording is compiled: one `lax.scan` over the environment, whatever the source. Sources are
scripted policies (`SCRIPTED`, jittable obs -> action) or an oakrl agent, which keeps learning
while it is recorded (`step` always learns; the executed action is written back as the agent's
last action so it learns from what actually happened).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from oakrl.core.types import DiscreteSpec, TimeStep, first_timestep
from oakrl.errors import ConfigError
from oakrl.io import atomic_path

FORMAT = "oakrl-demos"
VERSION = 1
QUALITIES = ("expert", "mediocre", "wrong")
ARRAYS = ("observations", "actions", "rewards", "terminated", "truncated", "episode")


class Demos(NamedTuple):
    """A demonstration dataset in memory (numpy arrays, shapes as in the module docstring)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    header: dict[str, Any]

    @property
    def returns(self) -> np.ndarray:
        """Returns of the finished episodes, in order: float64 [E]."""
        done = self.terminated | self.truncated
        sums = np.bincount(
            self.episode, weights=self.rewards, minlength=int(self.episode.max(initial=-1)) + 1
        )
        finished = np.unique(self.episode[done])
        return sums[finished]


def _cartpole_expert(obs: jax.Array) -> jax.Array:
    # A linear controller on (x, x_dot, theta, theta_dot): 500/500 on gymnax CartPole-v1.
    return (jnp.dot(obs, jnp.array([0.1, 0.5, 3.0, 1.0])) > 0).astype(jnp.int32)


def _text_world_expert(obs: jax.Array) -> jax.Array:
    from oakrl.envs.text_world import expert_action

    return expert_action(obs)


# Scripted experts: env id -> jittable obs -> action (optimal or near it).
SCRIPTED: dict[str, Callable[[jax.Array], jax.Array]] = {
    "CartPole-v1": _cartpole_expert,
    "TextWorld-v0": _text_world_expert,
}


def apply_quality(
    action: jax.Array, key: jax.Array, quality: str, noise: float, num_actions: int
) -> jax.Array:
    """The executed action for a dataset of `quality` (discrete actions; see module docstring)."""
    if quality == "expert":
        return action
    if quality == "wrong":
        return ((action + 1) % num_actions).astype(action.dtype)
    k_flip, k_act = jax.random.split(key)
    random = jax.random.randint(k_act, (), 0, num_actions, action.dtype)
    return jnp.where(jax.random.uniform(k_flip) < noise, random, action)


def check_quality(quality: str, noise: float) -> None:
    if quality not in QUALITIES:
        raise ConfigError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    if not (isinstance(noise, int | float) and 0.0 <= noise <= 1.0):
        raise ConfigError(f"noise must be in [0, 1], got {noise!r}")


def _scan_record(handle, act: Callable, carry0: Any, steps: int, key: jax.Array) -> dict[str, np.ndarray]:
    """Runs `act(carry, obs, timestep, key) -> (carry, action)` for `steps` steps, recording."""
    env, params = handle.env, handle.params
    k_reset, k_run = jax.random.split(key)

    @jax.jit
    def go(carry0, k_reset, k_run):
        obs, env_state = env.reset(k_reset, params)

        def one(c, k):
            carry, env_state, ts = c
            k_act, k_env = jax.random.split(k)
            carry, action = act(carry, ts, k_act)
            obs2, env_state, r, term, trunc, _ = env.step(k_env, env_state, action, params)
            row = (ts.observation, action, r.astype(jnp.float32), term, trunc)
            ts2 = TimeStep(obs2.astype(jnp.float32), r.astype(jnp.float32), term, trunc)
            return (carry, env_state, ts2), row

        ts0 = first_timestep(obs.astype(jnp.float32))
        _, rows = jax.lax.scan(one, (carry0, env_state, ts0), jax.random.split(k_run, steps))
        return rows

    obs, actions, rewards, term, trunc = (np.asarray(x) for x in go(carry0, k_reset, k_run))
    done = term | trunc
    episode = np.concatenate([[0], np.cumsum(done[:-1])]).astype(np.int32)
    return {
        "observations": obs.astype(np.float32),
        "actions": actions,
        "rewards": rewards.astype(np.float32),
        "terminated": term.astype(bool),
        "truncated": trunc.astype(bool),
        "episode": episode,
    }


def record_scripted(handle, steps: int, key: jax.Array, quality: str = "expert", noise: float = 0.5) -> Demos:
    """`steps` transitions of the scripted expert of `handle.id`, at `quality`."""
    check_quality(quality, noise)
    if handle.id not in SCRIPTED:
        raise ConfigError(
            f"no scripted policy for {handle.id!r}; scripted policies exist for {', '.join(SCRIPTED)} "
            "(record an agent instead: --agent)"
        )
    policy, n = SCRIPTED[handle.id], handle.action_spec.num_values

    def act(carry, ts, k):
        return carry, apply_quality(policy(ts.observation), k, quality, noise, n)

    arrays = _scan_record(handle, act, (), steps, key)
    return _with_header(arrays, handle, f"scripted:{handle.id}", quality, noise)


def record_agent(
    handle,
    agent,
    state: Any,
    steps: int,
    key: jax.Array,
    quality: str = "expert",
    noise: float = 0.5,
    source: str | None = None,
) -> Demos:
    """`steps` transitions of `agent` from `state` (it keeps learning), at `quality`.

    quality "expert" records the agent as it acts; the others change the executed action and
    need an agent state with a `prev_action` field (stream-ac, stream-q) to write it back to.
    """
    check_quality(quality, noise)
    discrete = isinstance(handle.action_spec, DiscreteSpec)
    if quality != "expert" and (not discrete or not hasattr(state, "prev_action")):
        raise ConfigError(
            f"quality {quality!r} needs discrete actions and an agent whose state holds prev_action "
            "(stream-ac, stream-q); use quality expert"
        )
    n = handle.action_spec.num_values if discrete else 0

    def act(state, ts, k):
        k_step, k_q = jax.random.split(k)
        state, action, _ = agent.step(state, ts, k_step)
        if quality != "expert":
            action = apply_quality(action, k_q, quality, noise, n)
            state = state._replace(prev_action=action)
        return state, action

    arrays = _scan_record(handle, act, state, steps, key)
    return _with_header(arrays, handle, source or f"agent:{agent.name}", quality, noise)


def _with_header(arrays: dict[str, np.ndarray], handle, source: str, quality: str, noise: float) -> Demos:
    from oakrl import __version__

    spec = handle.action_spec
    action = (
        {"discrete": int(spec.num_values)}
        if isinstance(spec, DiscreteSpec)
        else {"shape": list(spec.shape), "low": spec.low, "high": spec.high}
    )
    demos = Demos(**arrays, header={})
    rets = demos.returns
    header = {
        "format": FORMAT,
        "version": VERSION,
        "env": handle.id,
        "obs_shape": list(handle.obs_spec.shape),
        "action": action,
        "source": source,
        "quality": quality,
        "noise": float(noise) if quality == "mediocre" else 0.0,
        "steps": int(len(arrays["rewards"])),
        "episodes": int(len(rets)),
        "mean_return": float(rets.mean()) if len(rets) else None,
        "oakrl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return demos._replace(header=header)


def write_demos(path: str | os.PathLike, demos: Demos, **extra: Any) -> Path:
    """Writes `demos` to `path` (.npz added if missing), atomically; `extra` goes in the header."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    header = {**demos.header, **extra}
    arrays = {k: getattr(demos, k) for k in ARRAYS}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.savez(tmp, header=np.array(json.dumps(header)), **arrays)
    except OSError as e:
        raise ConfigError(f"cannot write demonstrations to {path}: {e.strerror or e}") from None
    return path


def read_demos(path: str | os.PathLike) -> Demos:
    """Reads and checks a dataset; ConfigError (one line) when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"demonstrations {path} not found (make one with `oakrl record`)")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        header = json.loads(str(data.pop("header")))
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ConfigError(f"{path} is not an oakrl demonstrations file ({_first(e)})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an oakrl demonstrations file (header format is not {FORMAT!r})")
    if header.get("version") != VERSION:
        raise ConfigError(
            f"{path} has demonstrations format version {header.get('version')}, expected {VERSION}"
        )
    missing = [k for k in ARRAYS if k not in data]
    if missing:
        raise ConfigError(f"{path} lacks the array {missing[0]!r}")
    n = len(data["rewards"])
    if n == 0 or any(len(data[k]) != n for k in ARRAYS):
        raise ConfigError(f"{path}: arrays must be non-empty and of one length")
    if list(data["observations"].shape[1:]) != list(header.get("obs_shape", [])):
        raise ConfigError(
            f"{path}: observations of shape {data['observations'].shape[1:]} do not match obs_shape"
        )
    return Demos(
        observations=data["observations"].astype(np.float32),
        actions=data["actions"],
        rewards=data["rewards"].astype(np.float32),
        terminated=data["terminated"].astype(bool),
        truncated=data["truncated"].astype(bool),
        episode=data["episode"].astype(np.int32),
        header=header,
    )


def _first(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
