"""The streaming agents: jit/scan/vmap, the first step, stream-q's exploration, stream-td's value error.

Networks are tiny (hidden 16,16) and every agent configuration is compiled at most twice
(one jitted `step`, one jitted vmap-of-scan), so the file stays fast on a small CPU.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oakrl.agents import AGENTS, DynaConfig, PlannerConfig, StreamQConfig, make_agent
from oakrl.agents.common import DiscreteOnly, PlasticityOptions
from oakrl.core.config import RunFacts
from oakrl.core.types import ArraySpec, DiscreteSpec, TimeStep, first_timestep
from oakrl.errors import ConfigError
from oakrl.learn.traces import trace_in_effect

CARTPOLE_OBS = ArraySpec((4,), jnp.float32)
CARTPOLE_ACT = DiscreteSpec(2)
PENDULUM_OBS = ArraySpec((3,), jnp.float32)
PENDULUM_ACT = ArraySpec((1,), jnp.float32, -2.0, 2.0)
TINY = {"hidden": (16, 16)}


class Case(NamedTuple):
    agent: str
    obs_spec: ArraySpec
    action_spec: Any
    options: dict


CASES = {
    "ac-discrete": Case("stream-ac", CARTPOLE_OBS, CARTPOLE_ACT, TINY),
    "ac-continuous": Case("stream-ac", PENDULUM_OBS, PENDULUM_ACT, TINY),
    # stream-q with a short schedule so the epsilon tests reuse this compiled step.
    "q": Case(
        "stream-q",
        CARTPOLE_OBS,
        CARTPOLE_ACT,
        {**TINY, "epsilon_start": 1.0, "epsilon_end": 0.1, "exploration_steps": 100},
    ),
    "td-discrete": Case("stream-td", CARTPOLE_OBS, CARTPOLE_ACT, TINY),
    "td-continuous": Case("stream-td", PENDULUM_OBS, PENDULUM_ACT, TINY),
}

# Parameter fields of each agent's state (what learning changes).
PARAMS = {"stream-ac": ("value", "policy"), "stream-q": ("q",), "stream-td": ("v",)}


class Compiled(NamedTuple):
    case: Case
    agent: Any
    init: Any  # jitted key -> state
    step: Any  # jitted (state, ts, key) -> (state, action, info)


@functools.cache
def compiled(name: str) -> Compiled:
    case = CASES[name]
    agent = make_agent(case.agent, **case.options)
    init = jax.jit(lambda k: agent.init(k, case.obs_spec, case.action_spec))
    return Compiled(case, agent, init, jax.jit(agent.step))


def ts(obs, reward=0.0, terminated=False, truncated=False) -> TimeStep:
    return TimeStep(
        jnp.asarray(obs, jnp.float32),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
    )


def params_of(agent: str, state) -> list[np.ndarray]:
    return [np.asarray(x) for f in PARAMS[agent] for x in jax.tree.leaves(getattr(state, f))]


def check_actions(case: Case, action) -> None:
    """Actions of any batch shape: dtype, shape and range fit the action spec."""
    action = np.asarray(action)
    if isinstance(case.action_spec, DiscreteSpec):
        assert action.dtype == np.int32
        assert action.min() >= 0 and action.max() < case.action_spec.num_values
    else:
        assert action.dtype == np.float32
        assert action.shape[-1:] == case.action_spec.shape
        assert np.all(np.isfinite(action))
        if case.agent == "stream-td":  # uniform behaviour policy within the bounds
            assert action.min() >= case.action_spec.low and action.max() <= case.action_spec.high


# --------------------------------------------------------------------------- jit / scan / vmap


def test_init_and_step_under_jit():
    """One jitted step at a time (as the gym path runs agents), here on stream-q."""
    c = compiled("q")
    state = c.init(jax.random.key(0))
    obs = jnp.array([0.1, -0.2, 0.3, -0.4])

    # First step: no transition to learn from, so parameters are exactly unchanged.
    state1, action, info = c.step(state, first_timestep(obs), jax.random.key(1))
    check_actions(c.case, action)
    assert np.shape(action) == ()
    assert info, "info must hold diagnostics"
    for k, v in info.items():
        assert np.shape(v) == (), f"info[{k!r}] is not a scalar: {np.shape(v)}"
        assert jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating), k
    assert bool(state1.has_prev) and int(state1.steps) == 1
    for a, b in zip(params_of("stream-q", state), params_of("stream-q", state1), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(info["td_error"]) == 0.0

    # Second step: a real transition, so learning changes the parameters.
    state2, action2, info2 = c.step(state1, ts(-obs, reward=1.0), jax.random.key(2))
    check_actions(c.case, action2)
    assert int(state2.steps) == 2
    assert float(info2["td_error"]) != 0.0
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(params_of("stream-q", state1), params_of("stream-q", state2), strict=True)
    ), "the second step learned nothing"


@pytest.mark.parametrize("name", list(CASES))
def test_scan_under_vmap_over_two_keys(name):
    """init and T steps inside lax.scan, vmapped over two keys, under one jax.jit."""
    c = compiled(name)
    agent, case = c.agent, c.case
    fields = PARAMS[case.agent]
    obs_shape = case.obs_spec.shape
    T = 30

    def stream(key):
        k_init, k_run = jax.random.split(key)
        state = agent.init(k_init, case.obs_spec, case.action_spec)

        def body(carry, k):
            state, timestep = carry
            k_obs, k_rew, k_done, k_act = jax.random.split(k, 4)
            new, action, info = agent.step(state, timestep, k_act)
            before = jax.tree.leaves([getattr(state, f) for f in fields])
            after = jax.tree.leaves([getattr(new, f) for f in fields])
            learned = jnp.any(jnp.stack([jnp.any(a != b) for a, b in zip(before, after, strict=True)]))
            nxt = ts(
                jax.random.normal(k_obs, obs_shape),
                jax.random.normal(k_rew, ()),
                jax.random.uniform(k_done) < 0.1,
                False,
            )
            return (new, nxt), (action, info, learned)

        first = first_timestep(jax.random.normal(k_run, obs_shape))
        (state, _), outs = jax.lax.scan(body, (state, first), jax.random.split(k_run, T))
        return state, outs

    keys = jax.random.split(jax.random.key(3), 2)
    state, (actions, infos, learned) = jax.jit(jax.vmap(stream))(keys)

    action_shape = () if isinstance(case.action_spec, DiscreteSpec) else case.action_spec.shape
    assert np.shape(actions) == (2, T, *action_shape)
    check_actions(case, actions)
    assert infos
    for k, v in infos.items():
        assert np.shape(v) == (2, T), f"info[{k!r}] is not a scalar per step: {np.shape(v)}"
    np.testing.assert_array_equal(np.asarray(state.steps), [T, T])
    td = np.asarray(infos["td_error"])
    assert np.all(np.isfinite(td))
    # The first step has no transition (has_prev False): no TD error, parameters untouched.
    np.testing.assert_array_equal(td[:, 0], 0.0)
    np.testing.assert_array_equal(np.asarray(learned)[:, 0], False)
    # Every later step learns.
    assert np.all(np.asarray(learned)[:, 1:]), np.asarray(learned)
    # The two keys are two independent streams.
    leaves = params_of(case.agent, state)
    assert any(not np.array_equal(x[0], x[1]) for x in leaves)
    for leaf in leaves:
        assert np.all(np.isfinite(leaf))


# --------------------------------------------------------------------------- stream-q


def _q_state_after(n: int):
    """A stream-q state after `n` steps on a fixed little stream."""
    c = compiled("q")
    state = c.init(jax.random.key(7))
    obs = jnp.array([0.1, -0.2, 0.3, -0.4])
    state, _, _ = c.step(state, first_timestep(obs), jax.random.key(8))
    for i in range(n - 1):
        state, _, _ = c.step(state, ts(obs * (i + 2), reward=1.0), jax.random.key(9 + i))
    return c, state


@pytest.mark.parametrize("t", [0, 1, 25, 50, 99, 100, 101, 150, 10_000])
def test_stream_q_epsilon_linear_schedule(t):
    c, state = _q_state_after(1)
    # epsilon_start 1.0 -> epsilon_end 0.1 over 100 steps, flat afterwards.
    expected = 1.0 + min(t / 100, 1.0) * (0.1 - 1.0)
    _, _, info = c.step(state._replace(steps=jnp.asarray(t, jnp.int32)), ts(jnp.ones(4)), jax.random.key(0))
    assert float(info["epsilon"]) == pytest.approx(expected, abs=1e-6)


def _explored(state, explored: bool):
    return state._replace(learner=state.learner._replace(prev_explored=jnp.asarray(explored)))


def test_stream_q_trace_reset_after_exploratory_action():
    c, state = _q_state_after(3)
    assert bool(state.has_prev)
    timestep = ts(jnp.array([0.5, 0.5, -0.5, 0.2]), reward=0.5)
    key = jax.random.key(11)

    greedy_state, _, _ = c.step(_explored(state, False), timestep, key)
    explored_state, _, info = c.step(_explored(state, True), timestep, key)

    # Without exploration (and no episode end) the trace carries on ...
    assert any(np.any(np.asarray(z) != 0) for z in jax.tree.leaves(trace_in_effect(greedy_state.opt.opt)))
    # ... after a non-greedy action it is cut (Watkins' Q(lambda)).
    for z in jax.tree.leaves(trace_in_effect(explored_state.opt.opt)):
        np.testing.assert_array_equal(np.asarray(z), 0.0)
    # The transition itself is still learned from.
    assert float(info["td_error"]) != 0.0
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(params_of("stream-q", state), params_of("stream-q", explored_state), strict=True)
    )


def test_stream_q_needs_discrete_actions():
    box = RunFacts(1000, PENDULUM_OBS.shape, PENDULUM_ACT)
    with pytest.raises(
        ConfigError, match="stream-q needs discrete actions and this environment's are continuous"
    ):
        StreamQConfig().resolve(box)
    agent = make_agent("stream-q", **TINY)  # not resolved against a run: init still refuses a Box spec
    with pytest.raises(ConfigError, match="discrete"):
        agent.init(jax.random.key(0), PENDULUM_OBS, PENDULUM_ACT)


@pytest.mark.parametrize("name", [n for n, a in AGENTS.items() if issubclass(a.config, DiscreteOnly)])
def test_discrete_only_agents_refuse_continuous_actions_in_resolve(name):
    with pytest.raises(ConfigError, match=f"^{name} needs discrete actions"):
        AGENTS[name].config().resolve(RunFacts(1000, PENDULUM_OBS.shape, PENDULUM_ACT))
    AGENTS[name].config().resolve(RunFacts(1000, CARTPOLE_OBS.shape, CARTPOLE_ACT))


@pytest.mark.parametrize(("steps", "expected"), [(3000, 150), (100_000, 5000), (19, 1), (1, 1)])
def test_stream_q_explores_over_five_percent_of_the_run(steps, expected):
    """What the lab did before configs resolved themselves: max(1, int(0.05 * steps))."""
    facts = RunFacts(steps, CARTPOLE_OBS.shape, CARTPOLE_ACT)
    assert StreamQConfig().resolve(facts).exploration_steps == expected
    # A value given by the user is kept; dyna's default (50,000) is a value, not "5% of the run".
    assert StreamQConfig(exploration_steps=7).resolve(facts).exploration_steps == 7
    assert DynaConfig().resolve(facts).exploration_steps == 50_000


# --------------------------------------------------------------------------- stream-td

GAMMA, HORIZON = 0.5, 5


@functools.cache
def td_exact():
    """stream-td on raw rewards and a constant observation, so the return is checkable."""
    agent = make_agent(
        "stream-td",
        hidden=(16, 16),
        gamma=GAMMA,
        return_horizon=HORIZON,
        normalize_obs=False,
        scale_reward=False,
    )
    init = jax.jit(lambda k: agent.init(k, CARTPOLE_OBS, CARTPOLE_ACT))
    return init, jax.jit(agent.step)


# step k (1-based) hands the agent reward[k], terminated[k], truncated[k]; step 1 is the first.
REWARDS = [0.0, 1.0, 2.0, -1.0, 3.0, 0.5, 4.0, -2.0, 1.5, 0.25, 2.0, -0.5, 1.0, 3.0, 0.0, 2.5]
TERMINATED = [False] * len(REWARDS)
TRUNCATED = [False] * len(REWARDS)
TERMINATED[5] = True  # an episode ends on step 5's transition (index 5)
TRUNCATED[10] = True


def _td_run():
    init, step = td_exact()
    state = init(jax.random.key(0))
    obs = jnp.array([0.3, -0.1, 0.2, 0.4])
    values, errors = [], []
    for k in range(1, len(REWARDS)):
        timestep = first_timestep(obs) if k == 1 else ts(obs, REWARDS[k], TERMINATED[k], TRUNCATED[k])
        state, _, info = step(state, timestep, jax.random.key(k))
        values.append(float(info["value"]))
        errors.append(float(info["value_error"]))
    return state, values, errors  # index i holds step k = i + 1


def test_stream_td_value_error_nan_until_horizon():
    state, _, errors = _td_run()
    # Step k has seen k - 1 transitions; the error is defined once HORIZON have been seen.
    for i, e in enumerate(errors):
        k = i + 1
        if k - 1 < HORIZON:
            assert math.isnan(e), f"value_error defined after only {k - 1} transitions"
        else:
            assert math.isfinite(e), f"value_error undefined after {k - 1} transitions"
    assert int(state.returns.count) == HORIZON


def test_stream_td_value_error_matches_hand_computed_return():
    _, values, errors = _td_run()
    n = len(errors)
    checked = 0
    for k in range(HORIZON + 1, n + 1):
        oldest = k - HORIZON + 1  # the step whose transition is now HORIZON transitions old
        ret, alive = 0.0, 1.0
        for i in range(HORIZON):
            j = oldest + i
            ret += GAMMA**i * alive * REWARDS[j]
            if TERMINATED[j] or TRUNCATED[j]:
                alive = 0.0  # rewards after the episode's end are not part of this return
        expected = (values[oldest - 1] - ret) ** 2
        assert errors[k - 1] == pytest.approx(expected, rel=1e-4, abs=1e-5), f"step {k}"
        checked += 1
    assert checked >= 8


# --------------------------------------------------------------------------- make_agent


@pytest.mark.parametrize("name", list(AGENTS))
def test_make_agent_unknown_option(name):
    with pytest.raises(ConfigError) as err:
        make_agent(name, no_such_option=1)
    msg = str(err.value)
    assert "no_such_option" in msg
    for option in AGENTS[name].config.defaults():
        assert option in msg, f"valid option {option!r} not named in: {msg}"
    assert "\n" not in msg


def test_make_agent_unknown_agent():
    with pytest.raises(ConfigError) as err:
        make_agent("nope")
    msg = str(err.value)
    assert "nope" in msg
    for name in AGENTS:
        assert name in msg


def test_make_agent_overrides_defaults():
    agent = make_agent("stream-ac", hidden=[16, 16], lr=1)
    assert agent.name == "stream-ac"
    # Typed on the way in: a list of widths is a tuple, an integer step size a float.
    assert agent.config.hidden == (16, 16) and agent.config.lr == 1.0 and isinstance(agent.config.lr, float)
    assert agent.config.gamma == AGENTS["stream-ac"].config().gamma
    # Options over a given config replace only what they name.
    again = make_agent("stream-ac", agent.config, gamma=0.5)
    assert again.config.to_dict() == {**agent.config.to_dict(), "gamma": 0.5}


@pytest.mark.parametrize(
    ("name", "option", "value", "rule"),
    [
        ("stream-ac", "lr", 0.0, "> 0"),
        ("stream-q", "gamma", 1.5, "in [0, 1]"),
        ("stream-q", "exploration_steps", 0, ">= 1"),
        ("stream-td", "return_horizon", 0, ">= 1"),
        ("dyna", "model_head", "nope", "one of deterministic, gaussian, categorical"),
        ("planner", "num_simulations", 0, ">= 1"),
        ("oak", "lr_model", 1.5, "> 0 and <= 1"),
        ("prior-ac", "bc_smoothing", 1.0, "in [0, 1)"),
        ("sft-tool", "memory_decay", 0.0, "> 0 and <= 1"),
        ("stream-ac", "sparsity", float("nan"), "must be finite"),  # what check_option said
    ],
)
def test_config_bounds_refuse_in_one_line(name, option, value, rule):
    with pytest.raises(ConfigError) as err:
        make_agent(name, **{option: value})
    msg = str(err.value)
    assert option in msg and rule in msg and "\n" not in msg, msg


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="needs hidden layers"):
        make_agent("stream-q", hidden=(), plasticity="cbp")
    with pytest.raises(ConfigError, match="unknown plasticity option"):
        make_agent("stream-ac", plasticity="cbp", plasticity_options={"nope": 1})
    with pytest.raises(ConfigError, match="sft-tool needs hidden layers"):
        make_agent("sft-tool", hidden=())
    with pytest.raises(ConfigError, match="model_hidden"):
        make_agent("dyna", model_hidden=())
    with pytest.raises(ConfigError, match="goal index 99 is outside"):
        PlannerConfig(goal={"99": 1}).resolve(RunFacts(100, (10,), CARTPOLE_ACT))
    # The goal table comes back as the lab recorded it: string indices, float values.
    assert PlannerConfig(goal={"3": 1}).resolve(RunFacts(100, (10,), CARTPOLE_ACT)).goal == {"3": 1.0}


@pytest.mark.parametrize("name", list(AGENTS))
def test_config_round_trips_through_its_dict(name):
    """config.json holds `to_dict()`; building from it gives the same config (resume, sweeps)."""
    config = AGENTS[name].config()
    assert AGENTS[name].config.build(config.to_dict()) == config
    assert make_agent(name).config == config


# --------------------------------------------------------------------------- plasticity, every network agent

NETWORK_PARAMS = {
    "stream-ac": ("value", "policy"),
    "stream-q": ("q",),
    "stream-td": ("v",),
    "dyna": ("q",),
    "planner": ("q",),
    "prior-ac": ("value", "policy"),
    "sft-tool": ("value", "policy"),
}


@pytest.mark.parametrize("name", list(NETWORK_PARAMS))
def test_every_network_agent_takes_a_plasticity_remedy(name):
    """l2-init with l2 = 1 pulls every weight back to its initial value after each update: a
    learning step that leaves the networks where they started shows the remedy runs after the
    optimiser in this agent (an agent that accepted the option but did not wire it would move)."""
    assert issubclass(AGENTS[name].config, PlasticityOptions)
    extra = {"model_hidden": (8,), "planning_steps": 0} if name in ("dyna", "planner") else {}
    agent = make_agent(name, hidden=(8,), plasticity="l2-init", plasticity_options={"l2": 1.0}, **extra)
    init = agent.init(jax.random.key(0), CARTPOLE_OBS, CARTPOLE_ACT)
    step = jax.jit(agent.step)
    obs = jnp.array([0.1, -0.2, 0.3, -0.4])
    state, _, _ = step(init, first_timestep(obs), jax.random.key(1))
    state, _, info = step(state, ts(-obs, reward=1.0), jax.random.key(2))
    assert float(info["td_error"]) != 0.0  # it learned from a real transition ...
    for field in NETWORK_PARAMS[name]:  # ... and was pulled back
        for a, b in zip(
            jax.tree.leaves(getattr(init, field)), jax.tree.leaves(getattr(state, field)), strict=True
        ):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)
    # Agents that took no remedy before keep their config.json as it was when none is set.
    if name not in ("stream-ac", "stream-q"):
        assert "plasticity" not in make_agent(name).config.to_dict()
        assert make_agent(name, plasticity="cbp").config.to_dict()["plasticity"] == "cbp"


# --------------------------------------------------------------------------- adding an agent


def test_an_agent_is_one_file_and_one_registry_line(monkeypatch):
    """A new agent against the skeleton: a config, a learner, a factory; one AGENTS entry."""
    import dataclasses

    from oakrl.agents import AgentInfo
    from oakrl.agents.common import StreamOptions, configure
    from oakrl.agents.skeleton import Learner, Start, streaming, zero_action
    from oakrl.core.config import option

    @dataclasses.dataclass(frozen=True)
    class MeanRewardConfig(StreamOptions):
        NAME = "mean-reward"
        rate: float = option(0.1, "step size of the running mean", gt=0, le=1)

    def mean_reward(config: MeanRewardConfig | None = None, **overrides):
        cfg = configure(MeanRewardConfig, config, overrides)

        def init(key, obs_spec, action_spec):
            return Start(jnp.zeros(()), zero_action(action_spec))

        def step(mean, t, key):  # learns the mean scaled reward; always acts 0
            mean = mean + t.learn * cfg.rate * (t.reward - mean)
            return mean, jnp.zeros((), jnp.int32), {"td_error": t.reward - mean}

        return streaming("mean-reward", cfg, Learner(init, step))

    monkeypatch.setitem(
        AGENTS, "mean-reward", AgentInfo(mean_reward, MeanRewardConfig, "running mean reward")
    )
    agent = make_agent("mean-reward", rate=0.5, scale_reward=False)
    state = agent.init(jax.random.key(0), CARTPOLE_OBS, CARTPOLE_ACT)
    for r in (0.0, 2.0, 4.0):  # the first step has no transition: only 2 and 4 are learned from
        state, action, _ = agent.step(state, ts(jnp.ones(4), reward=r), jax.random.key(0))
    assert float(state.learner) == pytest.approx(0.5 * 2.0 + 0.5 * (4.0 - 1.0))  # 1, then 1 + 1.5
    assert int(state.steps) == 3 and agent.config.to_dict()["rate"] == 0.5
    with pytest.raises(ConfigError, match="rate must be > 0 and <= 1"):
        make_agent("mean-reward", rate=2.0)


def test_stream_sarsa_bootstraps_on_the_action_it_takes():
    """Sarsa's delta uses q(s', a') of the action it then takes, explored or not (Q-learning
    would use max q(s', .)); catches an off-policy target or a delta from the updated weights."""
    from oakrl.core.types import first_timestep

    agent = make_agent("stream-sarsa", hidden=(), normalize_obs=False, scale_reward=False,
                       epsilon_start=1.0, epsilon_end=1.0, exploration_steps=1, gamma=0.9)  # fmt: skip
    state = agent.init(jax.random.key(0), CARTPOLE_OBS, CARTPOLE_ACT)
    s, s2 = jnp.array([0.5, -1.0, 0.25, 2.0]), jnp.array([1.0, 0.5, -0.5, 0.0])
    state, a, _ = agent.step(state, first_timestep(s), jax.random.key(1))
    from oakrl.agents.common import net

    qn, params = net((4,), 2, (), 0.9), state.learner.q  # the weights before the update

    def q(x):
        return qn.apply(params, x)

    for k in range(8):  # always exploring: a' is random, sometimes the non-greedy action
        new, a2, info = agent.step(state, ts(s2, reward=1.0), jax.random.key(10 + k))
        expected = 1.0 + 0.9 * q(s2)[a2] - q(s)[a]
        assert float(info["td_error"]) == pytest.approx(float(expected), rel=1e-5, abs=1e-6)
    assert {int(agent.step(state, ts(s2, 1.0), jax.random.key(10 + k))[1]) for k in range(8)} == {0, 1}
