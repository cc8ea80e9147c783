"""stream-ac's `obs_raw_tail`: the time feature reaches the networks unnormalised (issue 21).

stream-x appends the time-in-episode feature after normalising the observation; oakrl's bridge
appends it before the agent's normaliser, so without this option it was standardised with the
rest (reading ~10 standard deviations late in a Walker2d episode while episodes are short).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents import StreamACConfig, make_agent
from oakrl.core.config import RunFacts
from oakrl.core.types import ArraySpec, TimeStep, first_timestep
from oakrl.errors import ConfigError
from oakrl.learn.normalize import normalizers_init, preprocess

OBS = ArraySpec((4,), jnp.float32)
ACT = ArraySpec((2,), jnp.float32, -1.0, 1.0)


def _stream(n: int, seed: int = 0) -> np.ndarray:
    """n observations whose last entry is a time feature in [-0.5, 0.5) (short episodes)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(3.0, 2.0, (n, 4)).astype(np.float32)
    obs[:, -1] = -0.5 + (np.arange(n) % 7) / 1000
    return obs


def test_preprocess_keeps_the_tail_raw_and_the_statistics_unchanged():
    # Catches: the tail normalised anyway, the head no longer normalised, or the statistics
    # (the state) depending on the option.
    obs = _stream(20)
    n0 = n1 = normalizers_init(OBS)
    for x in obs:
        ts = TimeStep(jnp.asarray(x), jnp.float32(1.0), jnp.bool_(False), jnp.bool_(False))
        n0, o0, r0 = preprocess(n0, ts, 0.99, True, True)
        n1, o1, r1 = preprocess(n1, ts, 0.99, True, True, raw_tail=1)
        np.testing.assert_array_equal(o1[:-1], o0[:-1])
        assert float(o1[-1]) == float(x[-1])
        assert float(r1) == float(r0)
    jax.tree.map(np.testing.assert_array_equal, n0, n1)
    # Normalised, the same feature is far from its raw value: the option changes something.
    assert abs(float(o0[-1]) - float(obs[-1, -1])) > 0.5


def test_stream_ac_learns_on_the_raw_time_feature():
    # Catches: the option accepted but not reaching the skeleton's preprocessing.
    obs = _stream(5, seed=1)
    for tail, raw_expected in ((0, False), (1, True)):
        agent = make_agent("stream-ac", hidden=(8, 8), obs_raw_tail=tail)
        state = agent.init(jax.random.PRNGKey(0), OBS, ACT)
        step = jax.jit(agent.step)
        for i, x in enumerate(obs):
            ts = first_timestep(jnp.asarray(x)) if i == 0 else TimeStep(jnp.asarray(x), 1.0, False, False)
            state, _, _ = step(state, ts, jax.random.PRNGKey(i))
        assert (float(state.prev_obs[-1]) == float(obs[-1, -1])) is raw_expected
        assert np.all(np.isfinite(np.asarray(state.prev_obs)))


def test_option_checked_and_listed_only_when_set():
    # Catches: earlier runs' config.json (and identity) gaining a key, and a tail longer than
    # the observation or a non-flat observation accepted.
    assert "obs_raw_tail" not in StreamACConfig().to_dict()
    assert StreamACConfig(obs_raw_tail=1).to_dict()["obs_raw_tail"] == 1
    assert StreamACConfig.build({"obs_raw_tail": 1}).obs_raw_tail == 1
    cfg = StreamACConfig(obs_raw_tail=5)
    with pytest.raises(ConfigError, match="obs_raw_tail"):
        cfg.resolve(RunFacts(100, (4,), ACT))
    with pytest.raises(ConfigError, match="flat"):
        StreamACConfig(obs_raw_tail=1).resolve(RunFacts(100, (2, 2), ACT))
    assert StreamACConfig(obs_raw_tail=4).resolve(RunFacts(100, (4,), ACT)).obs_raw_tail == 4
    with pytest.raises(ConfigError):
        StreamACConfig.build({"obs_raw_tail": -1})
