"""Episodic memory (oakrl/memory/episodic.py) against cases worked out by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.memory.episodic import combine, memory_init, observe_reward, read, write

G = 0.5


def test_returns_are_filled_in_online_and_stop_at_the_episode_end():
    """Catches a wrong discount or an open return after the episode: entry A (written first)
    sees rewards 1, 2 then the end: 1 + 0.5 * 2 = 2; entry B (written after the first reward)
    sees only 2; entry C is written in the next episode and sees 4 only."""
    m = memory_init(4, 2)
    m = write(m, jnp.array([0.0, 0.0]), 0)  # A, then the transition's reward 1 arrives
    m = observe_reward(m, 1.0, False, G)
    m = write(m, jnp.array([1.0, 0.0]), 1)  # B
    m = observe_reward(m, 2.0, True, G)  # the episode ends with reward 2
    m = write(m, jnp.array([0.0, 1.0]), 0)  # C (next episode)
    m = observe_reward(m, 4.0, False, G)
    np.testing.assert_allclose(np.asarray(m.values[:3]), [2.0, 2.0, 4.0])
    np.testing.assert_allclose(np.asarray(m.weights[:3]), [0.0, 0.0, G])  # C still open
    assert np.asarray(m.filled).tolist() == [True, True, True, False]


def test_eviction_overwrites_the_least_recently_used_slot():
    """Catches FIFO (or random) eviction: a read refreshes slot 0, so the next write on a full
    store takes slot 1 (the oldest unused), not slot 0."""
    m = memory_init(2, 1)
    m = write(m, jnp.array([0.0]), 0)
    m = observe_reward(m, 1.0, True, G)
    m = write(m, jnp.array([5.0]), 0)
    m = observe_reward(m, 3.0, True, G)
    assert np.asarray(m.used).tolist() == [0, 1]
    _, found, m = read(m, jnp.array([0.1]), 1, k=1)  # slot 0 is the nearest: used now (clock 2)
    assert bool(found[0]) and np.asarray(m.used).tolist() == [2, 1]
    m = write(m, jnp.array([9.0]), 0)
    np.testing.assert_array_equal(np.asarray(m.keys[:, 0]), [0.0, 9.0])


def test_knn_read_is_the_inverse_distance_weighted_mean_per_action():
    """Two complete entries of action 0 at distances^2 1 and 4 with values 3 and 6: with
    delta = 0, (3 / 1 + 6 / 4) / (1 / 1 + 1 / 4) = 3.6. Action 1 has none; an open (incomplete)
    entry is not read."""
    m = memory_init(4, 1)
    for key, value in ((1.0, 3.0), (2.0, 6.0)):
        m = write(m, jnp.array([key]), 0)
        m = observe_reward(m, value, True, G)
    m = write(m, jnp.array([0.0]), 0)  # open: its episode goes on
    m = observe_reward(m, 100.0, False, G)
    est, found, _ = read(m, jnp.array([0.0]), 2, k=2, delta=0.0)
    assert est[0] == pytest.approx(3.6) and bool(found[0]) and not bool(found[1])
    q = combine(jnp.array([1.0, 7.0]), est, found, 0.5)
    np.testing.assert_allclose(np.asarray(q), [1.0 + 0.5 * (3.6 - 1.0), 7.0], rtol=1e-6)


def test_memory_is_jittable_and_vmappable():
    def run(keys):
        m = memory_init(3, 1)

        def body(m, k):
            m = write(m, k[None], 0)
            m = observe_reward(m, 1.0, True, G)
            est, _, m = read(m, k[None], 1, k=2)
            return m, est[0]

        return jax.lax.scan(body, m, keys)[1]

    out = jax.jit(jax.vmap(run))(jnp.arange(10.0).reshape(2, 5))
    np.testing.assert_allclose(np.asarray(out), 1.0, rtol=1e-6)
