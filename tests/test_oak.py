"""The OaK agent: every component learns, the same config runs two worlds, the lab records its
options and the report shows them, the study's recovery measure."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from oakrl.agents import make_agent
from oakrl.agents.oak import OakState
from oakrl.core.types import first_timestep
from oakrl.envs import make_env
from oakrl.errors import ConfigError
from oakrl.lab.run import run
from oakrl.lab.spec import RunSpec
from oakrl.report.report import report
from oakrl.study.cli import study
from oakrl.study.oak import OakStudyConfig, compare, model_based_config, recovery


def _stream(agent, env, steps, key):
    """`steps` steps of one seed in one jitted lax.scan; returns (states per step, infos)."""
    state = agent.init(key, env.obs_spec, env.action_spec)
    obs, env_state = env.env.reset(key, env.params)
    ts = first_timestep(obs.astype(jnp.float32))

    def one(carry, k):
        s, es, ts = carry
        ka, ke = jax.random.split(k)
        s, a, info = agent.step(s, ts, ka)
        obs, es, r, term, trunc, _ = env.env.step(ke, es, a, env.params)
        ts = ts._replace(observation=obs.astype(jnp.float32), reward=r.astype(jnp.float32),
                         terminated=term, truncated=trunc)  # fmt: skip
        total = lambda x: jnp.abs(x).sum()  # noqa: E731
        small = (
            total(s.theta),
            total(s.act.outcome),
            total(s.pool.q),
            total(s.opt.outcome),
            s.feats.activity,
        )
        return (s, es, ts), (small, info)

    keys = jax.random.split(key, steps)
    (state, _, _), (trajectory, info) = jax.jit(lambda c: jax.lax.scan(one, c, keys))((state, env_state, ts))
    return state, trajectory, info


@pytest.mark.parametrize("env_id", ["Rooms-v0", "Foraging-v0"])
def test_same_config_two_worlds_every_component_learns(env_id):
    env = make_env(env_id)
    # Ties at random (the default before session 19), so that options run from the first steps
    # and 400 steps exercise their execution; with today's default they wait for a model that wins.
    agent = make_agent("oak", replace_every=100, maturity=100, option_warmup=50, ties_to_actions=False)
    state, traj, info = _stream(agent, env, 400, jax.random.key(1))
    assert isinstance(state, OakState)
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(state) if leaf.dtype.kind == "f")
    theta, act_m, q, opt_m, activity = (np.asarray(t) for t in traj)

    def moved(x):  # fraction of steps at which x changed
        return float((np.abs(np.diff(x.reshape(x.shape[0], -1), axis=0)).sum(axis=1) > 0).mean())

    # Every component is updated at every step; an update moves the weights wherever its error
    # is not zero: the features' activity and the action model always (every transition says
    # where it led), the option models whenever some option would have taken the action, the
    # options and the value whenever a prediction was off (rare on Rooms before the first reward).
    assert moved(activity) == 1.0
    assert moved(act_m) > 0.95
    assert moved(opt_m) > 0.25  # untrained options all prefer action 0 at first
    assert moved(q) > 0.2 and moved(theta) > 0.1
    # Options are executed and the pool is replaced at the configured rate.
    assert float(info["in_option"].mean()) > 0.01
    assert int(state.replaced) == 4  # at steps 100, 200, 300, 400 (the first slots turn 100 at step 100)


def test_oak_return_improves_on_rooms():
    """OaK earns more reward late in a short Rooms-v0 stream than early, and far more than a
    random policy, on each of two seeds (a small pool: 4 options, 2 planning states)."""
    from oakrl.lab.stream import run_jax

    env = make_env("Rooms-v0")
    agent = make_agent("oak", options=4, planning_states=2, buffer=32)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0, impl="unsafe_rbg"), i))(np.arange(2))
    records = []
    run_jax(agent, env, 3000, keys, chunk=1000, on_chunk=records.append)
    total = np.array([np.zeros(2), *(r.reward_sum for r in records)])  # [chunks + 1, seeds], from 0
    rate = np.diff(total, axis=0) / 1000  # goal reaches per step, per chunk and seed

    def random_policy(key):
        obs, es = env.env.reset(key, env.params)

        def step(es, k):
            ka, ke = jax.random.split(k)
            _, es, r, _, _, _ = env.env.step(ke, es, jax.random.randint(ka, (), 0, 4), env.params)
            return es, r

        return jax.lax.scan(step, es, jax.random.split(key, 20_000))[1].mean()

    random_rate = float(jax.jit(random_policy)(jax.random.key(7)))
    # Catches an OaK whose learning does not reach its behaviour: values, models or options
    # that do not improve the choices (e.g. a backup or an argmax gone wrong) leave the reward
    # rate at the random walk's (~0.002 reaches per step; OaK reaches ~0.06 by step 3000).
    assert 0 < random_rate < 0.005, random_rate
    assert np.all(rate[-1] > 2 * rate[0]), rate
    assert np.all(rate[-1] > 10 * random_rate), (rate, random_rate)


def test_oak_bad_options():
    with pytest.raises(ConfigError, match="agent option options must be >= 1, got 0"):
        make_agent("oak", options=0)
    with pytest.raises(ConfigError, match="epsilon"):
        make_agent("oak", epsilon=2.0)


def test_lab_records_options_and_report_shows_them(tmp_path):
    cfg = RunSpec(env="Rooms-v0", agent="oak", steps=600, seeds=2, chunk=200, schedule="switch", every=300,
                    tasks=2, agent_options={"replace_every": 100, "maturity": 100})  # fmt: skip
    run(cfg.replace(out=str(tmp_path / "run")))
    import pyarrow.parquet as pq

    rec = pq.read_table(tmp_path / "run" / "records.parquet").to_pydict()
    assert sorted(set(rec["step"])) == [200, 400, 600]
    assert len(rec["slot"]) == 3 * 2 * 8  # chunks x seeds x options
    assert {"feature", "usage", "utility", "duration", "model_error", "calls", "age"} <= set(rec)
    text = report([str(tmp_path / "run")])
    assert "options alive at step 600" in text and "features_held" in text
    assert (tmp_path / "run" / "options.png").stat().st_size > 1000


def test_recovery_uses_issue4_measure_by_hand():
    from oakrl.study.model_based import optimal_rates

    cfg = OakStudyConfig(every=1000, relocations=2, seeds=2, window=100, threshold=0.5)
    rates = optimal_rates(model_based_config(cfg))
    need = [int(np.ceil(0.5 * 100 * rates[c])) for c in (1, 2)]  # goal reaches needed per window
    # Seed 0: after relocation 1 (step 1000) `need` reaches at steps 1001..; the last one at
    # 1000 + 10 * need[0] (every 10 steps): recovered then. Nothing after relocation 2.
    # Seed 1: never reaches the goal: censored at `every` both times.
    steps0 = 1000 + 10 * np.arange(1, need[0] + 1)
    cols = {"seed": np.zeros(steps0.size, int), "step": steps0, "return": np.ones(steps0.size)}
    rec = recovery(cols, cfg)
    np.testing.assert_allclose(rec["steps"], [[10 * need[0], 1000], [1000, 1000]])
    np.testing.assert_array_equal(rec["recovered"], [[True, False], [False, False]])
    # First reach: seed 0 at step 1010 after relocation 1; censored otherwise.
    np.testing.assert_allclose(rec["first_reach"], [[10, 1000], [1000, 1000]])


@pytest.mark.parametrize(
    "args",
    [
        ["oak", "--every", "500"],
        ["oak", "--seeds", "0"],
        ["oak", "--stream", "dyna"],
        ["oak", "--second-world", "Nope-v0"],  # refused before the main study runs
        ["oak", "--second-world", "Pendulum-v1"],  # continuous actions: oak cannot run there
        ["oak", "--opt", "nope=1"],  # not an OaK option
        ["oak", "--opt", "reset_on_surprise=-1"],  # out of bounds
    ],
)
def test_study_oak_bad_input(tmp_path, args):
    r = CliRunner().invoke(study, [*args, "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 or isinstance(r.exception, ConfigError), r.output
    assert not (tmp_path / "x").exists()


def test_options_planned_but_not_executed():
    """execute_options=false: the agent never runs an option, yet its options and their models
    learn and planning still credits them (the ablation of execution alone)."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", execute_options=False, option_warmup=50)
    state, traj, info = _stream(agent, env, 600, jax.random.key(2))
    assert float(info["in_option"].max()) == 0.0
    assert float(np.abs(np.asarray(state.opt.outcome)).sum()) > 0
    assert float(np.asarray(state.stats.utility).max()) > 0
    assert int(np.asarray(state.stats.calls).sum()) == 0


@pytest.mark.parametrize("stop_value, independent", [(0.0, True), (1.0, False)])
def test_stop_value_zero_makes_options_independent_of_v(stop_value, independent):
    """With stop_value=0 the options' learning on a transition ignores the main value: the same
    step from states that differ only in theta leaves the same option weights; with 1 it does not."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", stop_value=stop_value)
    state, _, _ = _stream(agent, env, 300, jax.random.key(3))
    obs, _ = env.env.reset(jax.random.key(4), env.params)
    ts = first_timestep(obs.astype(jnp.float32))._replace(reward=jnp.ones((), jnp.float32))
    other = state._replace(theta=state.theta + jax.random.normal(jax.random.key(5), state.theta.shape))
    step = jax.jit(agent.step)
    q_a = step(state, ts, jax.random.key(6))[0].pool.q
    q_b = step(other, ts, jax.random.key(6))[0].pool.q
    assert bool(jnp.allclose(q_a, q_b)) == independent


def test_stop_value_checked():
    with pytest.raises(ConfigError, match="stop_value must be in"):
        make_agent("oak", stop_value=1.5)


def test_compare_names_the_faster_agent_and_signs_the_margin():
    agents = {
        "oak": {"recovery_steps": {"mean": 1500.0, "sd": 200.0}},
        "dyna": {"recovery_steps": {"mean": 4400.0, "sd": 500.0}},
        "oak-primitive": {"recovery_steps": {"mean": 1300.0, "sd": 220.0}},
    }
    win = compare(agents, "oak", "dyna")
    assert (win["faster"], win["than"], win["margin_steps"]) == ("oak", "dyna", 2900.0)
    assert win["spread_steps"] == 500.0 and win["margin_exceeds_spread"]
    lose = compare(agents, "oak", "oak-primitive")
    assert (lose["faster"], lose["than"], lose["margin_steps"]) == ("oak-primitive", "oak", -200.0)
    assert not lose["margin_exceeds_spread"]


@pytest.mark.parametrize(
    "threshold, reward, forgets", [(0.25, 0.0, True), (0.25, 1.0, False), (0.0, 0.0, False)]
)
def test_reset_on_surprise_forgets_the_options_when_the_reward_moved(threshold, reward, forgets):
    """reset_on_surprise: a reward the one-step model promised (1) and that did not come (0)
    clears every option's values, model and age; one that came, or the flag off (0), keeps them.
    Catches a reset on positive surprise (finding a goal), a missing reset, or a flag that leaks."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", reset_on_surprise=threshold)
    state, _, _ = _stream(agent, env, 300, jax.random.key(7))
    assert float(jnp.abs(state.opt.outcome).sum()) > 0 and int(state.pool.age.min()) > 0
    cell = int(jnp.argmax(state.prev_obs))
    state = state._replace(
        act=state.act._replace(reward=state.act.reward.at[state.prev_action, cell].set(1.0))
    )
    ts = first_timestep(state.prev_obs)._replace(reward=jnp.asarray(reward, jnp.float32))
    new = jax.jit(agent.step)(state, ts, jax.random.key(8))[0]
    cleared = float(jnp.abs(new.opt.outcome).sum()) == 0 and float(jnp.abs(new.pool.q).sum()) == 0
    assert cleared == forgets
    assert (int(new.pool.age.max()) == 0) == forgets


def test_study_oak_options_reach_both_oak_runs_only():
    """--opt: the change runs in oak and behind the ablation (oak-primitive keeps use_options=false
    on top), never in dyna or stream-q; none given leaves the runs of the defaults (their identity,
    so earlier study directories still resume). Catches an option that skips the ablation."""
    from oakrl.study.oak import run_spec

    cfg = OakStudyConfig(oak_options={"reset_on_surprise": 0.25})
    assert run_spec(cfg, "oak").agent_config.reset_on_surprise == 0.25
    ablation = run_spec(cfg, "oak-primitive").agent_config
    assert ablation.reset_on_surprise == 0.25 and ablation.use_options is False
    assert "reset_on_surprise" not in run_spec(cfg, "dyna").agent_config.to_dict()
    assert run_spec(OakStudyConfig(), "oak").agent_config == make_agent("oak").config


@pytest.mark.parametrize("forgets", ["options", "value", "both"])
def test_surprise_forgets_what_it_is_told(forgets):
    """surprise_forgets: on the same surprise, the options (values, models, age), the main value
    theta, or both are forgotten, and nothing else. Catches a mode that forgets the wrong part."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", reset_on_surprise=0.25, surprise_forgets=forgets)
    state, _, _ = _stream(agent, env, 300, jax.random.key(7))
    cell = int(jnp.argmax(state.prev_obs))
    state = state._replace(
        theta=jnp.ones_like(state.theta),  # a value learned everywhere (the old goal's pull)
        act=state.act._replace(reward=state.act.reward.at[state.prev_action, cell].set(1.0)),
    )
    ts = first_timestep(state.prev_obs)._replace(reward=jnp.asarray(0.0, jnp.float32))
    new = jax.jit(agent.step)(state, ts, jax.random.key(8))[0]
    options_gone = float(jnp.abs(new.pool.q).sum()) == 0 and int(new.pool.age.max()) == 0
    # Planning runs after the reset: theta is then what 6 backups make of zero (the one reward
    # the model still predicts), far below the 169 (one per grid component) it was.
    value_gone = float(jnp.abs(new.theta).sum()) < 2.0
    assert options_gone == (forgets in ("options", "both"))
    assert value_gone == (forgets in ("value", "both"))
    assert float(jnp.abs(new.theta).sum()) > 50.0 or value_gone


@pytest.mark.parametrize("ties_to_actions", [False, True])
def test_ties_to_actions_leaves_options_to_where_their_models_win(ties_to_actions):
    """ties_to_actions: where actions and options are valued alike (here every value is 0, so
    the tie is exact), the agent starts an option on some draws of the tie-break, or, with the
    flag, never. Catches a flag that does nothing and a test that has no option to choose."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", option_warmup=0, epsilon=0.0, ties_to_actions=ties_to_actions)
    state, _, _ = _stream(agent, env, 600, jax.random.key(3))
    zero = lambda m: m._replace(reward=jnp.zeros_like(m.reward))  # noqa: E731
    # Stand where some option would go on (its values beat stopping): options are available.
    q = state.pool.q.max(axis=1)  # [N, D]
    gain = q - jax.nn.one_hot(state.pool.feature, q.shape[1])  # stop_k = x_{f_k} with v = 0
    obs = jax.nn.one_hot(jnp.argmax(gain.max(axis=0)), q.shape[1])
    assert float(gain.max()) > 0
    state = state._replace(
        theta=jnp.zeros_like(state.theta), act=zero(state.act), opt=zero(state.opt),
        executing=jnp.full((), -1, jnp.int32), prev_obs=obs,
    )  # fmt: skip
    ts = first_timestep(obs)
    keys = jax.random.split(jax.random.key(4), 64)
    new = jax.jit(jax.vmap(agent.step, in_axes=(None, None, 0)))(state, ts, keys)[0]
    started = int((new.executing >= 0).sum())
    assert started == 0 if ties_to_actions else started > 0


def test_bound_targets_leaves_a_one_hot_world_as_it_was():
    """On Rooms-v0 (one-hot) the learned models are contractions and the bound on planning targets
    never acts: the same trajectory, bit for bit, with and without it. The bound follows the
    largest reward seen (the goal's 1) and is kept only by agents that use it."""
    env = make_env("Rooms-v0")
    key = jax.random.key(5)
    on, traj_on, info_on = _stream(make_agent("oak", option_warmup=100), env, 1500, key)
    off, traj_off, info_off = _stream(
        make_agent("oak", option_warmup=100, bound_targets=False), env, 1500, key
    )
    assert float(jnp.abs(info_on["td_error"]).sum()) > 0 and float(on.reward_max) == 1.0
    assert off.reward_max is None
    for a, b in zip(jax.tree.leaves((traj_on, info_on)), jax.tree.leaves((traj_off, info_off)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_later_options_keep_earlier_configs_and_refuse_a_no_op():
    """surprise_forgets is listed in config.json only when set; ties_to_actions (the default since
    session 19) only when true, so a config that lacks it is one of the runs made before, when
    ties went to a random draw; surprise_forgets without reset_on_surprise would do nothing and is
    refused in one line."""
    plain = make_agent("oak").config.to_dict()
    assert plain["ties_to_actions"] is True and "surprise_forgets" not in plain
    old = make_agent("oak", ties_to_actions=False).config.to_dict()
    assert "ties_to_actions" not in old
    set_ = make_agent("oak", reset_on_surprise=0.25, surprise_forgets="value")
    assert set_.config.to_dict()["surprise_forgets"] == "value"
    with pytest.raises(ConfigError, match="reset_on_surprise"):
        make_agent("oak", surprise_forgets="both")


@pytest.mark.parametrize("name", ["ties_to_actions", "bound_targets"])
def test_a_run_made_before_a_default_changed_resumes_as_it_was_made(tmp_path, name):
    """A results directory whose config.json does not list ties_to_actions (every oak run before
    session 19) or bound_targets (before session 20) reads back with the option off, as it ran,
    and is the same run to the lab, checkpoint included; one made with today's defaults reads
    back with them."""
    from oakrl.lab.parse import spec_of_run
    from oakrl.lab.run import ChunkDone, execute, prepare

    changed = ("ties_to_actions", "bound_targets")  # OakConfig.PREVIOUS_DEFAULTS: all were False
    # ({name: True} is a run made before with the option set, as session 18's were with ties.)
    for given, expected in (({name: False}, False), ({}, True), ({name: True}, True)):
        out = tmp_path / f"{expected}-{len(given)}"
        spec = RunSpec(
            env="Rooms-v0",
            agent="oak",
            steps=40,
            seeds=1,
            chunk=20,
            agent_options=given,
            out=str(out),
            checkpoint_every=None,
        )

        class Stop(Exception):
            pass

        def stop(event):  # the run is interrupted after its first chunk's checkpoint
            if isinstance(event, ChunkDone) and event.step > 20:
                raise Stop

        with pytest.raises(Stop):
            run(spec, stop)
        stored = (out / "config.json").read_text()
        assert (f'"{name}"' in stored) == expected
        # agent_options lists an option exactly when it differs from the old default, as then
        listed = json.loads(stored)["agent_options"]
        assert listed == {k: True for k in changed if k != name or expected}
        again = spec_of_run(out)
        assert getattr(again.agent_config, name) is expected
        # the same identity as stored: no refusal, and its checkpoint fits the state it rebuilds
        plan = prepare(again.replace(out=str(out)))
        assert (plan.status, plan.resume_step) == ("resume", 20)
        execute(plan)
        assert prepare(again.replace(out=str(out))).status == "complete"


def test_an_oak_learner_made_before_its_defaults_changed_resumes_as_it_was_made(tmp_path):
    """The same for an oak learner among several (`--agent oak,stream-q`): its options whose
    default changed are written down per learner, so a joint run whose config.json lists none ran
    with the previous defaults and resumes with them, checkpoint included; learners without such
    options (tabular-q in Market-v0) keep the config.json they always had."""
    from oakrl.lab.parse import spec_of_run
    from oakrl.lab.run import ChunkDone, execute, prepare

    class Stop(Exception):
        pass

    def stop(event):
        if isinstance(event, ChunkDone) and event.step > 20:
            raise Stop

    changed = {"ties_to_actions": True, "bound_targets": True}
    old = {k: False for k in changed}
    for given, expected in (({"0": old}, old), ({}, changed)):
        out = tmp_path / str(len(given))
        spec = RunSpec(
            env="SharedForaging-v0", agent="oak,stream-q", steps=40, seeds=1, chunk=20, out=str(out),
            checkpoint_every=None, agent_options={"learner_options": given} if given else {},
        )  # fmt: skip
        with pytest.raises(Stop):
            run(spec, stop)
        stored = json.loads((out / "config.json").read_text())["agent_config"]
        assert stored.get("learner_options") == (None if given else {"0": changed})
        again = spec_of_run(out)
        plan = prepare(again.replace(out=str(out)))
        oak_learner = plan.agent.config.learner_configs()[0]
        assert {k: getattr(oak_learner, k) for k in changed} == expected
        assert (plan.status, plan.resume_step) == ("resume", 20)
        execute(plan)
        assert prepare(again.replace(out=str(out))).status == "complete"
    market = RunSpec(
        env="Market-v0", agent="tabular-q", learners=2, steps=20, chunk=20, seeds=1, out=str(tmp_path / "m")
    )
    run(market)
    assert "learner_options" not in json.loads((tmp_path / "m" / "config.json").read_text())["agent_config"]


def test_subgoal_states_are_each_options_subgoal():
    """subgoal_states=k backs up k of the options' subgoals (the last observation in which each
    option's feature was on) instead of k recent states. On a one-hot world an option's subgoal is
    its feature's cell, or nothing yet (zeros: a new feature not yet seen on); the option is off by
    default, and then the state keeps no subgoals and config.json does not list it."""
    env = make_env("Rooms-v0")
    agent = make_agent("oak", planning_states=6, subgoal_states=2, option_warmup=100)
    state, _, info = _stream(agent, env, 1500, jax.random.key(3))
    sub, feature = np.asarray(state.subgoals), np.asarray(state.pool.feature)
    assert sub.shape == (agent.config.options, env.obs_spec.shape[0])
    seen = sub.sum(axis=1) > 0
    assert seen.any() and np.isfinite(np.asarray(info["td_error"])).all()
    for o in range(sub.shape[0]):
        expected = np.eye(sub.shape[1])[feature[o]] if seen[o] else np.zeros(sub.shape[1])
        np.testing.assert_array_equal(sub[o], expected)
    plain = make_agent("oak")
    assert "subgoal_states" not in plain.config.to_dict()
    assert plain.init(jax.random.key(0), env.obs_spec, env.action_spec).subgoals is None
    assert agent.config.to_dict()["subgoal_states"] == 2
    with pytest.raises(ConfigError, match="subgoal_states=5 must be <= planning_states=4"):
        make_agent("oak", subgoal_states=5)
