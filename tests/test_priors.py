"""Priors (issue 7): text world, demonstrations, behaviour cloning, prior-ac, SFT tool, study, CLI."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents import make_agent
from oakrl.agents.prior_ac import demo_arrays, prior_ac_parts
from oakrl.agents.sft_tool import Episode, Memory, remember, sft_update
from oakrl.core.types import TimeStep, first_timestep
from oakrl.envs import make_env
from oakrl.envs.text_world import ACTIONS, OBSERVATIONS, expert_action, observation_index, observation_text
from oakrl.errors import ConfigError
from oakrl.priors.bc import discounted_returns
from oakrl.priors.demos import read_demos, record_scripted, write_demos
from oakrl.study.prior import learning_curve, steps_to_threshold

KEY = jax.random.key(0, impl="unsafe_rbg")
SMALL = dict(hidden=(16, 16))


def run_steps(agent, handle, steps: int, seeds: int = 2):
    """Runs the lab's compiled stream; returns (final carry, per-seed returns list, last info)."""
    from oakrl.lab.stream import run_jax

    keys = jax.vmap(lambda i: jax.random.fold_in(KEY, i))(np.arange(seeds))
    rows, infos = [], []

    def on_chunk(r):
        rows.append((r.seed, r.step, r.ret))
        infos.append(r.info)

    carry, _, _ = run_jax(agent, handle, steps, keys, steps // 2, 1000, on_chunk)
    seed = np.concatenate([r[0] for r in rows])
    step = np.concatenate([r[1] for r in rows])
    ret = np.concatenate([r[2] for r in rows])
    return carry, (seed, step, ret), infos[-1]


# --- the text world -------------------------------------------------------------------------


def test_text_world_sentences_and_dynamics():
    assert len(OBSERVATIONS) == 15 and len(ACTIONS) == 4
    # room 1 (kitchen) with the apple in room 3: smell to the east.
    assert observation_text(observation_index(jnp.int32(1), jnp.int32(3))) == (
        "You are in the kitchen. You smell an apple to the east."
    )
    assert observation_text(observation_index(jnp.int32(4), jnp.int32(4))) == (
        "You are in the garden. You see an apple."
    )
    handle = make_env("TextWorld-v0")
    env, params = handle.env, handle.params
    obs, state = env.reset(KEY, params)
    assert obs.shape == (15,) and float(obs.sum()) == 1.0
    # The expert walks to the apple and takes it: return 1 within 5 steps.
    ret, steps = 0.0, 0
    for i in range(6):
        a = expert_action(obs)
        obs, state, r, term, trunc, _ = env.step(jax.random.fold_in(KEY, i), state, a, params)
        ret, steps = ret + float(r), steps + 1
        if bool(term):
            break
    assert ret == 1.0 and steps <= 5
    # "sleep" forever: no reward, cut at 20 steps.
    obs, state = env.reset(jax.random.fold_in(KEY, 99), params)
    for _ in range(20):
        obs, state, r, term, trunc, _ = env.step(KEY, state, jnp.int32(3), params)
        assert float(r) == 0.0 and not bool(term)
    assert bool(trunc)


# --- demonstrations ----------------------------------------------------------------------------


def test_demos_roundtrip_and_qualities(tmp_path):
    handle = make_env("TextWorld-v0")
    expert = record_scripted(handle, 600, KEY, "expert")
    wrong = record_scripted(handle, 600, KEY, "wrong")
    mediocre = record_scripted(handle, 4000, KEY, "mediocre", noise=0.4)
    best = np.asarray(jax.vmap(expert_action)(jnp.asarray(expert.observations)))
    assert (expert.actions == best).all()
    best_w = np.asarray(jax.vmap(expert_action)(jnp.asarray(wrong.observations)))
    assert (wrong.actions == (best_w + 1) % 4).all()
    best_m = np.asarray(jax.vmap(expert_action)(jnp.asarray(mediocre.observations)))
    # A random action replaces the expert's with p = 0.4 and differs from it 3/4 of the time: 0.3.
    assert abs(float((mediocre.actions != best_m).mean()) - 0.3) < 0.03
    assert expert.header["mean_return"] == 1.0 and wrong.header["mean_return"] == 0.0
    # Episode index increments right after every end.
    done = expert.terminated | expert.truncated
    assert (np.diff(expert.episode) == done[:-1]).all()
    assert expert.header["episodes"] == int(done.sum()) == len(expert.returns)

    path = write_demos(tmp_path / "sub" / "expert", expert, note="x")
    assert path.name == "expert.npz"
    back = read_demos(path)
    for k in ("observations", "actions", "rewards", "terminated", "truncated", "episode"):
        np.testing.assert_array_equal(getattr(back, k), getattr(expert, k))
    assert back.header["env"] == "TextWorld-v0" and back.header["note"] == "x"
    assert back.header["action"] == {"discrete": 4} and back.header["obs_shape"] == [15]


def test_read_demos_refuses_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_demos(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not an oakrl demonstrations file"):
        read_demos(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", header=np.array(json.dumps({"format": "x"})))
    with pytest.raises(ConfigError, match="header format"):
        read_demos(tmp_path / "other.npz")


def test_discounted_returns_and_study_metrics():
    r = jnp.array([1.0, 1.0, 1.0, 2.0, 0.0])
    d = jnp.array([False, False, True, False, False])
    g = np.asarray(discounted_returns(r, d, 0.5))
    # Episode 1: 1 + .5 (1 + .5 * 1) = 1.75, 1.5, 1; episode 2 (cut by the dataset's end): 2, 0.
    np.testing.assert_allclose(g, [1.75, 1.5, 1.0, 2.0, 0.0])
    step = np.array([10, 20, 30, 40, 50])
    ret = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    # Running mean of the last 2: 0, 5, 15, 25, 35 -> reaches 20 at the 4th episode (step 40).
    assert steps_to_threshold(step, ret, 20.0, 2) == 40
    assert steps_to_threshold(step, ret, 100.0, 2) is None
    curve = learning_curve(step, ret, 100, 4)  # spans (0,25], (25,50], (50,75] empty, (75,100] empty
    np.testing.assert_allclose(curve, [5.0, 30.0, 30.0, 30.0])


# --- prior-ac ----------------------------------------------------------------------------------


def _policy_probs(agent, state):
    """pi(.|s) of a prior-ac state for every one-hot observation of the text world: [15, 4]."""
    from oakrl.agents.common import net
    from oakrl.learn.normalize import welford_var

    p_net = net((15,), 4, agent.config.hidden, agent.config.sparsity)
    stats = state.norm.obs.stats
    eye = jnp.eye(15)
    z = (eye - stats.mean) / jnp.sqrt(welford_var(stats) + 1e-8)
    logits = jax.vmap(lambda x: p_net.apply(state.policy, x))(z)
    if state.table.shape[0]:
        logits = logits + agent.config.prior_beta * eye @ state.table
    return np.asarray(jax.nn.softmax(logits))


def test_prior_ac_clones_then_reward_overrules_a_wrong_prior(tmp_path):
    handle = make_env("TextWorld-v0")
    for q in ("expert", "wrong"):
        write_demos(tmp_path / f"{q}.npz", record_scripted(handle, 2000, KEY, q))
    # Observations the world can produce (room x cue without impossible smells).
    seen = sorted({int(observation_index(jnp.int32(r), jnp.int32(a))) for r in range(5) for a in range(5)})
    best = np.asarray(jax.vmap(expert_action)(jnp.eye(15)[np.array(seen)]))

    # One agent (the wrong teacher's, with a KL pull that halves every 2,000 steps and adapts);
    # init_with clones either dataset with one compiled init.
    wrong, init_with = prior_ac_parts(
        demos=str(tmp_path / "wrong.npz"), bc_steps=400, kl=0.5, kl_half_life=2000, kl_adapt=0.01, **SMALL
    )
    clone = jax.jit(lambda k, d: init_with(k, handle.obs_spec, handle.action_spec, d))
    state = clone(KEY, demo_arrays(read_demos(tmp_path / "expert.npz")))
    probs = _policy_probs(wrong, state)[seen]
    assert (probs.argmax(1) == best).all() and probs[np.arange(len(seen)), best].min() > 0.7

    state0 = clone(KEY, demo_arrays(read_demos(tmp_path / "wrong.npz")))
    # It starts from the wrong teacher wherever the teacher went (it never sees some sentences).
    taught = [i for i, o in enumerate(seen) if read_demos(tmp_path / "wrong.npz").observations[:, o].any()]
    p0 = _policy_probs(wrong, state0)[seen]
    assert len(taught) >= 5 and (p0.argmax(1)[taught] == ((best + 1) % 4)[taught]).all()
    carry, (seed, step, ret), info = run_steps(wrong, handle, 8000)
    late = ret[step > 6000]
    early = ret[step <= 500]
    assert early.mean() < 0.5 and late.mean() > 0.9  # reward overruled the prior
    state1 = jax.tree.map(lambda x: x[0], carry.agent)
    p1 = _policy_probs(wrong, state1)[seen]
    assert (p1.argmax(1) == best).mean() >= 0.8
    # The KL strength followed its schedule: kl * 0.5^(t / 2000) * clip(trust, 0, 1) <= 0.5 * 2^-3.
    assert float(info["kl_strength"].max()) <= 0.5 * 0.5 ** (4000 / 2000) + 1e-6
    assert float(info["trust"].mean()) < 1.0  # reward contradicted the prior: trust fell


def test_prior_ac_refuses_a_dataset_of_another_world(tmp_path):
    write_demos(tmp_path / "cp.npz", record_scripted(make_env("CartPole-v1"), 200, KEY))
    handle = make_env("TextWorld-v0")
    agent = make_agent("prior-ac", demos=str(tmp_path / "cp.npz"), **SMALL)
    with pytest.raises(ConfigError, match="CartPole-v1"):
        agent.init(KEY, handle.obs_spec, handle.action_spec)
    with pytest.raises(ConfigError, match="not found"):
        make_agent("prior-ac", demos=str(tmp_path / "none.npz"))
    with pytest.raises(ConfigError, match="kl"):
        make_agent("prior-ac", kl=-1.0)


def test_prior_ac_without_a_prior_is_stream_ac():
    """Same keys, same math: the no-prior agent takes stream AC's actions step for step."""
    handle = make_env("CartPole-v1")
    a = make_agent("prior-ac", **SMALL)
    b = make_agent("stream-ac", **SMALL)

    @jax.jit
    def lockstep(key):
        obs, env_state = handle.env.reset(key, handle.params)
        sa = a.init(key, handle.obs_spec, handle.action_spec)
        sb = b.init(key, handle.obs_spec, handle.action_spec)

        def one(c, k):
            sa, sb, env_state, ts = c
            sa, act_a, _ = a.step(sa, ts, k)
            sb, act_b, _ = b.step(sb, ts, k)
            obs, env_state, r, term, trunc, _ = handle.env.step(k, env_state, act_a, handle.params)
            return (sa, sb, env_state, TimeStep(obs, r, term, trunc)), (act_a, act_b)

        (sa, sb, _, _), acts = jax.lax.scan(
            one, (sa, sb, env_state, first_timestep(obs)), jax.random.split(key, 300)
        )
        return sa, sb, acts

    sa, sb, (act_a, act_b) = lockstep(KEY)
    np.testing.assert_array_equal(np.asarray(act_a), np.asarray(act_b))
    assert len(np.unique(np.asarray(act_a))) == 2
    np.testing.assert_allclose(
        np.asarray(sa.policy["head"]["kernel"]), np.asarray(sb.policy["head"]["kernel"]), rtol=1e-4, atol=1e-5
    )


# --- SFT as a tool call -----------------------------------------------------------------------


def test_sft_update_moves_the_policy_towards_the_memory():
    from oakrl.agents.common import net

    p_net = net((15,), 5, (16, 16), 0.9)
    params = p_net.init(KEY, (15,))
    obs = jax.random.normal(KEY, (2, 6, 15))
    memory = Memory(
        obs=jnp.zeros((3, 6, 15)).at[:2].set(obs),
        actions=jnp.full((3, 6), 2, jnp.int32),  # the memory always did action 2
        length=jnp.array([6, 4, 0], jnp.int32),
        score=jnp.array([5.0, 3.0, -jnp.inf]),
    )

    def p2(p):
        return float(jnp.mean(jax.vmap(lambda x: jax.nn.softmax(p_net.apply(p, x)[:4])[2])(obs[0])))

    update = jax.jit(sft_update, static_argnums=(0, 4, 5, 6, 7))
    new, loss0 = update(p_net.apply, params, memory, KEY, 20, 16, 0.05, 4)
    assert p2(new) > p2(params) + 0.2
    # The first loss is a mean of cross-entropies of valid rows (slot 0's 6, slot 1's first 4) over
    # the 4 action logits: within their range. Catches the tool logit in the softmax (~ln 5 > ln 4).
    ce = jax.vmap(lambda x: -jax.nn.log_softmax(p_net.apply(params, x)[:4])[2])
    valid = np.concatenate([np.asarray(ce(obs[0])), np.asarray(ce(obs[1, :4]))])
    assert valid.min() - 1e-6 <= float(loss0) <= valid.max() + 1e-6
    # An empty memory changes nothing.
    empty = memory._replace(length=jnp.zeros(3, jnp.int32))
    same, _ = update(p_net.apply, params, empty, KEY, 20, 16, 0.05, 4)
    jax.tree.map(np.testing.assert_array_equal, same, params)


def test_remember_keeps_the_best_recent_episodes():
    memory = Memory(
        obs=jnp.zeros((2, 3, 1)),
        actions=jnp.zeros((2, 3), jnp.int32),
        length=jnp.array([3, 0], jnp.int32),
        score=jnp.array([10.0, -jnp.inf]),
    )
    ep = Episode(jnp.ones((3, 1)), jnp.ones(3, jnp.int32), jnp.int32(2), jnp.float32(1.0))
    m = remember(memory, ep, 0.5)  # fills the empty slot
    np.testing.assert_allclose(np.asarray(m.score), [5.0, 1.0])
    m = remember(m, ep._replace(ret=jnp.float32(3.0)), 0.5)  # scores 2.5, 0.5: replaces slot 1
    np.testing.assert_allclose(np.asarray(m.score), [2.5, 3.0])
    m = remember(m, ep._replace(ret=jnp.float32(0.1)), 0.5)  # 1.25, 1.5: 0.1 is worse, kept out
    np.testing.assert_allclose(np.asarray(m.score), [1.25, 1.5])


def test_sft_tool_is_a_chosen_logged_action():
    from oakrl.lab.stream import Carry, info_keys, make_chunk

    handle = make_env("TextWorld-v0")
    agent = make_agent("sft-tool", episode_len=20, **SMALL)
    n = handle.action_spec.num_values

    def start(i, bias):
        # tool_bias only sets the tool logit's initial bias: forced on (+30), off (-30), free (-2).
        k = jax.random.fold_in(KEY, i)
        state = agent.init(k, handle.obs_spec, handle.action_spec)
        state.policy["head"]["bias"] = state.policy["head"]["bias"].at[n].set(bias)
        obs, env_state = handle.env.reset(k, handle.params)
        zero = jnp.zeros((), jnp.float32)
        width = len(info_keys(agent, handle))  # the agent's diagnostics
        return Carry(
            state,
            env_state,
            first_timestep(obs),
            k,
            jnp.int32(0),
            zero,
            zero,
            jnp.zeros(width),
            jnp.zeros(width),
        )

    biases = [30.0, -30.0, -2.0, -2.0]
    carry = jax.tree.map(lambda *x: jnp.stack(x), *[start(i, b) for i, b in enumerate(biases)])
    carry, out = jax.jit(jax.vmap(make_chunk(agent, handle, 4000, 1000)))(carry)
    calls = np.asarray(carry.agent.calls)
    assert calls[0] == 4000 and calls[1] == 0  # forced on / off: every step / never
    assert (0 < calls[2:]).all() and (calls[2:] < 4000).all()  # left to choose: sometimes
    assert (np.asarray(carry.agent.memory.length[0]) > 0).any()  # finished episodes were remembered
    ret = np.asarray(out.episode_return)
    assert np.nanmean(ret[2:, 3000:]) > 0.9  # and it learns the world meanwhile
    # The call is logged per step: sft_call's chunk mean is the call rate.
    names = info_keys(agent, handle)
    rate = np.asarray(carry.info_sum)[:, names.index("sft_call")] / 4000
    np.testing.assert_allclose(rate, calls / 4000, atol=1e-6)


@pytest.mark.parametrize(("called", "reward"), [(1, 5.0), (0, 5.0), (1, -5.0), (0, -5.0)])
def test_sft_tool_call_is_credited_by_the_td_error(called, reward):
    """The tool bit's log-probability is in the actor's traced objective: after a call, a positive
    TD error makes calling likelier and a negative one less likely; after no call, the reverse.
    Catches the tool left out of the objective (its logit then moves only through the entropy
    bonus and the shared torso, the same way whether it was called or not) and its two branches
    swapped. The tool's head bias is read: only the actor-critic update moves it."""
    handle = make_env("TextWorld-v0")
    agent = make_agent("sft-tool", normalize_obs=False, scale_reward=False, **SMALL)
    n = handle.action_spec.num_values
    state = agent.init(KEY, handle.obs_spec, handle.action_spec)
    extra = state.learner.extra._replace(prev_call=jnp.int32(called))
    state = state._replace(
        learner=state.learner._replace(extra=extra),
        prev_obs=jnp.eye(15)[3],
        prev_action=jnp.int32(1),
        has_prev=jnp.asarray(True),
    )
    ts = TimeStep(jnp.eye(15)[4], jnp.float32(reward), jnp.asarray(False), jnp.asarray(False))
    new, _, info = jax.jit(agent.step)(state, ts, jax.random.key(1))
    assert np.sign(float(info["td_error"])) == np.sign(reward)
    moved = float(new.policy["head"]["bias"][n] - state.policy["head"]["bias"][n])
    assert np.sign(moved) == np.sign(reward) * (1 if called else -1), moved


# --- command line and study -------------------------------------------------------------------


def test_record_command(tmp_path, capsys):
    from oakrl.cli import main

    out = tmp_path / "tw"
    assert (
        main(["record", "--env", "TextWorld-v0", "--out", str(out), "--steps", "300", "--quality", "wrong"])
        == 0
    )
    demos = read_demos(tmp_path / "tw.npz")
    assert demos.header["quality"] == "wrong" and len(demos.rewards) == 300
    capsys.readouterr()
    for argv, msg in [
        (["--out", str(out)], "already exists"),
        (["--out", str(tmp_path / "x"), "--quality", "great"], "quality must be one of"),
        (["--out", str(tmp_path / "x"), "--env", "Acrobot-v1"], "no scripted policy"),
        (["--out", str(tmp_path / "x"), "--env", "Nope-v0"], "unknown environment"),
        (["--out", str(tmp_path / "x"), "--noise", "2"], "noise must be in"),
        (["--out", str(tmp_path / "x"), "--from-run", str(tmp_path)], str(tmp_path)),
    ]:
        assert (
            main(["record", "--env", "TextWorld-v0", *argv] if "--env" not in argv else ["record", *argv])
            == 2
        )
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


def test_prior_vs_scratch_study(tmp_path, capsys):
    from oakrl.cli import main

    out = tmp_path / "study"
    argv = ["study", "prior-vs-scratch", "--out", str(out), "--env", "TextWorld-v0", "--steps", "2000"]
    argv += ["--seeds", "2", "--demo-steps", "400", "--bc-steps", "150", "--hidden", "16,16", "--window", "5"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["conditions"]) == {"scratch", "expert", "mediocre", "wrong"}
    for c in summary["conditions"].values():
        for k in ("steps_to_threshold", "final_return", "average_reward"):
            assert "mean" in c[k] and len(c[k]["per_seed"]) == 2
    # The expert clone is at the threshold within its first episodes; the wrong one is not.
    assert summary["conditions"]["expert"]["steps_to_threshold"]["mean"] < 100
    assert summary["conditions"]["wrong"]["steps_to_threshold"]["mean"] > 100
    assert (out / "figure.png").stat().st_size > 0 and (out / "metrics.parquet").exists()
    assert (out / "demos" / "wrong.npz").exists()
    assert summary["command"] == json.loads((out / "config.json").read_text())["command"]
    capsys.readouterr()
    assert main(argv) == 2  # the directory holds a study now
    assert main([*argv[:3], str(tmp_path / "b"), "--conditions", "scratch,best"]) == 2
    assert "conditions must be among" in capsys.readouterr().err
