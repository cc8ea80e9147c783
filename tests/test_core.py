"""Exact (de)serialisation, and an agent state surviving a round trip."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents.stream_ac import stream_ac
from oakrl.core.serialize import load_pytree, pytree_from_bytes, pytree_to_bytes, save_pytree
from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep

# --------------------------------------------------------------------------- serialize


class State(NamedTuple):
    params: dict
    count: jax.Array
    flag: jax.Array
    values: jax.Array
    key: jax.Array


def make_state(seed: int = 0, n: int = 4) -> State:
    values = np.array([1.5, -0.0, np.nan, np.inf][:n] + [0.1] * max(0, n - 4), np.float32)
    return State(
        params={"w": jnp.arange(6.0).reshape(2, 3) / 7, "b": jnp.array([np.pi])},
        count=jnp.array([3, -(2**31), 2**31 - 1], jnp.int32),
        flag=jnp.array([True, False]),
        values=jnp.asarray(values),
        key=jax.random.key(seed),
    )


def assert_bits_equal(a, b):
    """Leaf by leaf, same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_pytree_bytes_roundtrip_bit_exact():
    state = make_state(seed=7)
    # The template only gives the structure: a different key, different values.
    restored = pytree_from_bytes(make_state(seed=0), pytree_to_bytes(state))
    assert isinstance(restored, State) and isinstance(restored.params, dict)
    assert_bits_equal(restored, state)
    # The restored key is a usable key that draws what the original draws.
    assert jax.random.uniform(restored.key) == jax.random.uniform(state.key)
    assert np.signbit(np.asarray(restored.values)[1])  # -0.0 survived


def test_pytree_from_bytes_rejects_other_shape():
    data = pytree_to_bytes(make_state(n=4))
    with pytest.raises(ValueError):
        pytree_from_bytes(make_state(n=5), data)


def test_pytree_from_bytes_rejects_other_structure():
    data = pytree_to_bytes(make_state())
    with pytest.raises(ValueError):  # fewer leaves
        pytree_from_bytes(make_state()[:4], data)
    # Same number and shapes of leaves, different names.
    small = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    with pytest.raises(ValueError):
        pytree_from_bytes({"a": jnp.zeros(2), "c": jnp.zeros(3)}, pytree_to_bytes(small))
    # Same names and shapes, other dtype.
    with pytest.raises(ValueError):
        pytree_from_bytes({"a": jnp.zeros(2), "b": jnp.zeros(3, jnp.int32)}, pytree_to_bytes(small))


def test_save_pytree_atomic(tmp_path, monkeypatch):
    path = tmp_path / "state.npz"
    first = make_state(seed=1)
    save_pytree(path, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]  # no .tmp left
    assert_bits_equal(load_pytree(path, make_state()), first)

    second = make_state(seed=2)
    save_pytree(path, second)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]
    assert_bits_equal(load_pytree(path, make_state()), second)

    # A crash before the final rename must leave the previous file whole.
    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError):
        save_pytree(path, make_state(seed=3))
    monkeypatch.undo()
    assert_bits_equal(load_pytree(path, make_state()), second)


# --------------------------------------------------------------------------- agent state


def test_stream_ac_state_roundtrip_and_identical_continuation():
    agent = stream_ac(hidden=(16, 16))
    obs_spec, act_spec = ArraySpec((4,)), DiscreteSpec(2)
    state = agent.init(jax.random.key(0), obs_spec, act_spec)
    step = jax.jit(agent.step)

    rng = np.random.default_rng(0)

    def timestep(i: int) -> TimeStep:
        return TimeStep(
            observation=jnp.asarray(rng.normal(size=4), jnp.float32),
            reward=jnp.float32(rng.normal()),
            terminated=jnp.array(i == 3),
            truncated=jnp.array(False),
        )

    keys = jax.random.split(jax.random.key(42), 8)
    for i in range(5):
        state, _, _ = step(state, timestep(i), keys[i])
    assert int(state.steps) == 5
    # Learning happened: the critic moved away from its initial parameters.
    fresh = agent.init(jax.random.key(0), obs_spec, act_spec)
    moved = [
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(state.value), jax.tree.leaves(fresh.value), strict=True)
    ]
    assert any(moved)

    # Restore into a template built from another key, so every value must come from the bytes.
    template = agent.init(jax.random.key(1), obs_spec, act_spec)
    restored = pytree_from_bytes(template, pytree_to_bytes(state))
    assert_bits_equal(restored, state)

    # Stepping both from here gives identical results.
    for i in range(5, 8):
        ts = timestep(i)
        state, a1, info1 = step(state, ts, keys[i])
        restored, a2, info2 = step(restored, ts, keys[i])
        assert int(a1) == int(a2)
        assert_bits_equal(info1, info2)
        assert_bits_equal(restored, state)
