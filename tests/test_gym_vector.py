"""The vectorised gymnasium bridge: auto-reset, seeding, schedules, exact resume; MuJoCo when installed."""

from __future__ import annotations

import importlib.util
import json

import jax
import numpy as np
import pytest

from oakrl.envs.gym_bridge import make_gym
from oakrl.envs.gym_vector import GymSchedule
from oakrl.errors import ConfigError
from oakrl.lab import RunSpec, execute, prepare
from oakrl.lab.run import ChunkDone

TINY = {"hidden": (16, 16)}
HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None


def _play(vec, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        out.append(tuple(np.copy(x) for x in vec.step(rng.integers(0, 2, len(vec.seeds)))))
    return out


def test_vector_equals_one_stream_per_seed_with_same_step_auto_reset():
    # Catches gymnasium's default NEXT_STEP auto-reset (an extra step with reward 0 after every
    # end), a seed list applied in the wrong order, and resets that re-seed instead of continuing.
    handle = make_gym("CartPole-v1")
    seeds = [3, 7, 11]
    vec = handle.vector(seeds)
    streams = [handle.make(s) for s in seeds]
    np.testing.assert_array_equal(vec.reset(), np.stack([s.reset() for s in streams]))
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(200):
        actions = rng.integers(0, 2, 3)
        obs, rew, term, trunc = vec.step(actions)
        for j, s in enumerate(streams):
            o, r, te, tr = s.step(actions[j])
            np.testing.assert_array_equal(obs[j], o)
            assert (rew[j], term[j], trunc[j]) == (r, te, tr)
        ends += int(term.sum())
        assert obs.dtype == np.float32 and rew.dtype == np.float32
    assert ends >= 10  # random play ends an episode every ~20 steps: auto-reset was exercised
    vec.close()


def test_vector_seeding():
    # Catches one seed shared by all environments, or a reset that ignores the seeds.
    handle = make_gym("CartPole-v1")
    a, b, c = handle.vector([0, 1]), handle.vector([0, 1]), handle.vector([5, 6])
    first = a.reset()
    np.testing.assert_array_equal(first, b.reset())
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first, c.reset())
    for x, y in zip(_play(a, 100), _play(b, 100), strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def test_vector_snapshot_restores_exactly():
    # Catches a restore that re-seeds (different next episodes) or loses the time limit's count.
    handle = make_gym("CartPole-v1")
    vec = handle.vector([0, 1])
    vec.reset()
    _play(vec, 137)
    snaps = vec.snapshot()
    after = _play(vec, 300, seed=1)
    other = handle.vector([42, 43])  # other seeds, other state: the snapshot decides everything
    other.reset()
    other.restore(snaps, 137)
    for x, y in zip(after, _play(other, 300, seed=1), strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def test_schedules_on_the_bridge():
    # Catches transforms applied with the wrong task or at the wrong step.
    handle = make_gym("CartPole-v1")
    vec = handle.vector([0], GymSchedule("reward", every=10, tasks=2, order="cyclic", seed=0))
    vec.reset()
    rewards = [r[1][0] for r in _play(vec, 30)]
    assert rewards == [1.0] * 10 + [-1.0] * 10 + [1.0] * 10
    plain, perm = handle.vector([0]), handle.vector([0], GymSchedule("permute", 5, 2, "cyclic", 0))
    plain.reset(), perm.reset()
    a, b = _play(plain, 9), _play(perm, 9)
    for t in range(9):  # the observation after step t is shown under the task of step t + 1
        if (t + 1) // 5 % 2 == 0:
            np.testing.assert_array_equal(a[t][0], b[t][0])
        else:
            assert not np.array_equal(a[t][0], b[t][0])
            np.testing.assert_array_equal(np.sort(a[t][0]), np.sort(b[t][0]))
    with pytest.raises(ConfigError, match="MuJoCo model"):
        prepare(RunSpec(env="gym:CartPole-v1", steps=100, schedule="switch", every=50, agent_options=TINY))


def test_env_options_checked():
    with pytest.raises(ConfigError, match="unknown environment option"):
        RunSpec(env="gym:CartPole-v1", env_options={"time": True})
    with pytest.raises(ConfigError, match="gym: environments only"):
        RunSpec(env="CartPole-v1", env_options={"time_feature": True})
    spec = RunSpec(env="gym:CartPole-v1", env_options={"time_feature": "true"})
    assert spec.to_json()["env_options"] == {"time_feature": True}
    assert "env_options" not in RunSpec(env="gym:CartPole-v1").to_json()  # old identities unchanged


def _interrupted_run(tmp_path, **kw):
    """(uninterrupted result, result resumed after a stop at the second chunk)."""

    class Stop(Exception):
        pass

    def stop(event):
        if isinstance(event, ChunkDone) and event.step == 2 * kw["chunk"]:
            raise Stop

    whole = execute(prepare(RunSpec(**kw, out=str(tmp_path / "a"))))
    with pytest.raises(Stop):
        execute(prepare(RunSpec(**kw, out=str(tmp_path / "b"))), stop)
    plan = prepare(RunSpec(**kw, out=str(tmp_path / "b")))
    assert (plan.status, plan.resume_step) == ("resume", kw["chunk"])
    return whole, execute(plan)


def test_gym_run_resumes_bit_identically(tmp_path):
    # Catches a checkpoint without the environments' states (resumed episodes would restart),
    # or without the host's return sums and keys.
    kw = dict(env="gym:CartPole-v1", agent="stream-ac", steps=300, seeds=2, chunk=100, agent_options=TINY)
    whole, resumed = _interrupted_run(tmp_path, **kw)
    assert resumed.summary["resumed_from_step"] == 100
    for col in ("seed", "step", "return"):
        np.testing.assert_array_equal(whole.episodes[col], resumed.episodes[col])
    for x, y in zip(jax.tree.leaves(whole.final.agent), jax.tree.leaves(resumed.final.agent), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.skipif(not HAS_MUJOCO, reason="the mujoco extra is not installed (pip install oakrl[mujoco])")
def test_mujoco_hopper_time_feature_friction_switch_and_resume(tmp_path):
    # Catches: a missing or mis-scaled time feature; a friction hook that does not reach the
    # simulator; a MuJoCo restore that re-seeds or loses the physics; summary without tasks.
    handle = make_gym("gym:Hopper-v5", {"time_feature": True, "param": "friction"})
    assert handle.obs_spec.shape == (12,)
    vec = handle.vector([0], GymSchedule("switch", every=5, tasks=2, order="cyclic", seed=0))
    obs = vec.reset()
    assert obs[0, -1] == -0.5
    inner = vec.env.envs[0].unwrapped
    base = np.array(inner.model.geom_friction[:, 0])
    for k in range(1, 8):
        obs, *_ = vec.step(np.zeros((1, 3)))
        assert obs[0, -1] == np.float32(-0.5 + k / 1000)
        scale = 0.5 if k // 5 % 2 else 1.0  # the task of the next step
        np.testing.assert_allclose(inner.model.geom_friction[:, 0], base * scale)
    kw = dict(
        env="gym:Hopper-v5", agent="stream-ac", steps=60, seeds=1, chunk=20, agent_options=TINY,
        schedule="switch", every=20, tasks=2, env_options={"time_feature": True, "param": "friction"},
    )  # fmt: skip
    whole, resumed = _interrupted_run(tmp_path, **kw)
    np.testing.assert_array_equal(whole.episodes["return"], resumed.episodes["return"])
    for x, y in zip(jax.tree.leaves(whole.final.agent), jax.tree.leaves(resumed.final.agent), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "tasks" in summary and set(whole.episodes["task"]) <= {0, 1}


@pytest.mark.parametrize("with_info", [True, False])
def test_bridge_diagnostics_are_the_chunk_means_of_the_finite_values(with_info):
    """The bridge sums diagnostics on the device: a chunk's value is the mean of its finite
    per-step values (NaN steps left out, as the JAX path does), and an agent with no diagnostics
    runs. Catches NaNs leaking into the means, counts off by one, and a stack of no keys."""
    import jax.numpy as jnp

    from oakrl.core.types import Agent
    from oakrl.lab.bridge import run_gym
    from oakrl.lab.run import seed_keys

    def init(key, obs_spec, action_spec):
        return jnp.zeros((), jnp.int32)

    def step(t, ts, key):
        # step t (0-based) reports t, or NaN on every third step
        info = {"t": jnp.where(t % 3 == 2, jnp.nan, t.astype(jnp.float32))} if with_info else {}
        return t + 1, jnp.int32(0), info

    agent = Agent("counter", init, step, None)
    records = []
    run_gym(agent, make_gym("gym:CartPole-v1"), 12, seed_keys(0, 2), [0, 1], 6, on_chunk=records.append)
    if not with_info:
        assert [r.info for r in records] == [{}, {}]
        return
    finite = [[0, 1, 3, 4], [6, 7, 9, 10]]  # steps 2, 5, 8, 11 report NaN
    for rec, values in zip(records, finite, strict=True):
        np.testing.assert_allclose(rec.info["t"], [np.mean(values)] * 2, rtol=1e-6)
