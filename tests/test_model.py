"""The online transition model (oakrl/model): heads, masking, errors, learning from a stream.

Small networks and one jitted scan per case keep the file fast on a 2-core CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.envs.rooms import FREE, GOALS, NEXT, Rooms
from oakrl.model import HEADS, Prediction, transition_model

TRUE, FALSE = jnp.ones((), bool), jnp.zeros((), bool)


def _rooms_stream(model, steps: int, key):
    """The model learns from `steps` transitions of a uniformly random policy in Rooms-v0."""
    env = Rooms()
    params = env.default_params
    k0, k1, k2 = jax.random.split(key, 3)
    obs, es = env.reset(k0, params)
    ms = model.init(k1, 169, 4)

    def body(c, k):
        ms, es, obs = c
        ka, ke = jax.random.split(k)
        a = jax.random.randint(ka, (), 0, 4)
        nobs, es, r, term, trunc, _ = env.step(ke, es, a, params)
        real_term = jnp.logical_and(term, jnp.logical_not(trunc))
        ms, info = model.update(ms, obs, a, r, nobs, real_term, term | trunc, TRUE)
        return (ms, es, nobs), info

    (ms, _, _), info = jax.lax.scan(body, (ms, es, obs), jax.random.split(k2, steps))
    return ms, info


@pytest.fixture(scope="module")
def rooms_model():
    model = transition_model("categorical", hidden=(64,), lr=3e-3, kstep=3)
    ms, info = jax.jit(lambda k: _rooms_stream(model, 6000, k))(jax.random.key(0))
    return model, ms, {k: np.asarray(v) for k, v in info.items()}


def test_one_step_error_falls_while_learning_from_the_stream(rooms_model):
    _, _, info = rooms_model
    err = info["model_obs_error"].reshape(10, -1)
    first, last = np.nanmean(err[0]), np.nanmean(err[-1])
    # A uniform softmax over 169 entries has error ~1; the walls are deterministic.
    assert first > 0.5
    assert last < 0.2 * first
    k = info["model_kstep_error"].reshape(10, -1)
    assert np.nanmean(k[-1]) < 0.2 * np.nanmean(k[0])


def test_learned_model_knows_walls_and_the_goal(rooms_model):
    model, ms, _ = rooms_model
    obs = jax.nn.one_hot(FREE, 169)
    pred = jax.vmap(lambda o: jax.vmap(lambda a: model.predict(ms.params, o, a))(jnp.arange(4)))(obs)
    nxt = np.asarray(jnp.argmax(pred.aux, -1))
    true = NEXT[FREE]
    into_goal = (true == GOALS[0]) & (FREE[:, None] != GOALS[0])
    assert (nxt == true)[~into_goal].mean() > 0.95  # walls block, moves move
    reward = np.asarray(pred.reward)
    # A few goal visits in 6000 random steps: learned well on the way, near zero elsewhere.
    assert reward[into_goal].min() > 0.2 and np.abs(reward[~into_goal]).mean() < 0.05
    term = np.asarray(pred.term)
    assert term[into_goal].min() > 0.2 and term[~into_goal].mean() < 0.05


@pytest.mark.parametrize("head", HEADS)
def test_heads_learn_a_continuous_shift_and_sample_shapes(head):
    # obs in R^3; action a moves the first entry by (a - 1) * 0.5; reward = a.
    model = transition_model(head, hidden=(32,), lr=1e-2, kstep=2)
    ms = model.init(jax.random.key(1), 3, 3)

    def body(ms, k):
        ko, ka = jax.random.split(k)
        obs = jax.random.normal(ko, (3,))
        a = jax.random.randint(ka, (), 0, 3)
        nxt = obs.at[0].add((a - 1) * 0.5)
        if head == "categorical":  # a probability-vector observation for the softmax head
            obs, nxt = jax.nn.softmax(obs), jax.nn.softmax(nxt)
        ms, info = model.update(ms, obs, a, a.astype(jnp.float32), nxt, FALSE, FALSE, TRUE)
        return ms, info

    ms, info = jax.jit(lambda m: jax.lax.scan(body, m, jax.random.split(jax.random.key(2), 3000)))(ms)
    err = np.asarray(info["model_obs_error"]).reshape(10, -1).mean(1)
    assert err[-1] < 0.75 * err[0]
    assert np.asarray(info["model_reward_error"]).reshape(10, -1).mean(1)[-1] < 0.05
    pred = model.predict(ms.params, jnp.zeros(3), jnp.asarray(2))
    s = model.sample(pred, jax.random.key(3))
    assert s.shape == (3,) and model.mode(pred).shape == (3,)
    if head == "categorical":
        assert float(s.sum()) == 1.0 and set(np.asarray(s).tolist()) <= {0.0, 1.0}


def test_categorical_samples_follow_the_softmax():
    # The categorical head draws the next observation from its softmax: one-hot samples whose
    # frequencies are the predicted probabilities (an entry of probability 0 never).
    model = transition_model("categorical", hidden=(8,))
    logits = jnp.log(jnp.array([0.2, 0.5, 0.0, 0.3]))
    pred = Prediction(jax.nn.softmax(logits), jnp.zeros(()), jnp.zeros(()), logits)
    s = jax.vmap(lambda k: model.sample(pred, k))(jax.random.split(jax.random.key(0), 20000))
    assert bool(jnp.all(s.sum(axis=1) == 1.0))
    assert np.asarray(s.mean(axis=0)) == pytest.approx([0.2, 0.5, 0.0, 0.3], abs=0.015)


def test_done_masks_the_observation_and_invalid_learns_nothing():
    model = transition_model("categorical", hidden=(16,), kstep=2)
    ms = model.init(jax.random.key(0), 5, 2)
    obs, nxt = jax.nn.one_hot(1, 5), jax.nn.one_hot(2, 5)
    # Episode ended: the next observation belongs to the next episode; only reward/termination learn.
    done_ms, info = model.update(ms, obs, jnp.asarray(0), jnp.asarray(1.0), nxt, TRUE, TRUE, TRUE)
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), done_ms.params.obs, ms.params.obs)
    assert all(jax.tree.leaves(same))
    assert not bool(jnp.all(done_ms.params.reward["head"]["bias"] == ms.params.reward["head"]["bias"]))
    assert np.isnan(float(info["model_obs_error"])) and np.isfinite(float(info["model_reward_error"]))
    # No transition at all (a stream's first step): nothing changes, every error is NaN.
    none_ms, info = model.update(ms, obs, jnp.asarray(0), jnp.asarray(1.0), nxt, TRUE, FALSE, FALSE)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), none_ms.params, ms.params)))
    assert all(np.isnan(float(v)) for v in info.values())


def test_kstep_error_needs_k_consecutive_transitions_and_matches_a_rollout():
    model = transition_model("deterministic", hidden=(16,), kstep=2)
    ms = model.init(jax.random.key(0), 2, 2)
    o0, o1, o2 = jnp.array([0.0, 1.0]), jnp.array([0.5, 1.0]), jnp.array([1.0, 0.5])
    ms1, info1 = model.update(ms, o0, jnp.asarray(1), jnp.asarray(0.0), o1, FALSE, FALSE, TRUE)
    assert np.isnan(float(info1["model_kstep_error"]))  # only one transition so far
    ms2, info2 = model.update(ms1, o1, jnp.asarray(0), jnp.asarray(0.0), o2, FALSE, FALSE, TRUE)
    # Two steps from o0 with actions (1, 0), using the parameters before the second update.
    x = model.rollout(ms1.params, model.rollout(ms1.params, o0, jnp.asarray(1)), jnp.asarray(0))
    assert float(info2["model_kstep_error"]) == pytest.approx(float(jnp.sum((x - o2) ** 2)), rel=1e-5)
    # An episode boundary inside the window makes it NaN again.
    ms3, _ = model.update(ms2, o2, jnp.asarray(0), jnp.asarray(0.0), o0, FALSE, TRUE, TRUE)
    _, info4 = model.update(ms3, o0, jnp.asarray(1), jnp.asarray(0.0), o1, FALSE, FALSE, TRUE)
    assert np.isnan(float(info4["model_kstep_error"]))


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="categorical"):
        transition_model("mixture")
