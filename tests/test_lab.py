"""The lab: chunking a stream, whole runs written to a results directory.

Runs are tiny (hidden 16,16, a few thousand steps) so that each costs about one compilation.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from oakrl import __version__
from oakrl.errors import ConfigError
from oakrl.lab.outdir import prepare_out
from oakrl.lab.run import ChunkDone, Started, run
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import chunk_lengths
from oakrl.lab.tables import read_episodes

TINY = {"hidden": (16, 16)}

# --------------------------------------------------------------------------- chunk_lengths


@pytest.mark.parametrize(
    "steps, target",
    [
        (1, 10),
        (10, 10),
        (9, 10),
        (100, 10),
        (1000, 300),
        (1001, 1000),
        (2000, 1000),
        (12_345, 1000),
        (7, 3),
        (97, 10),
        (10_000, 10_000),
        (100_000, 10_000),
        (5, 1),
    ],
)
def test_chunk_lengths_sum_and_bounds(steps, target):
    lengths = chunk_lengths(steps, target)
    assert sum(lengths) == steps
    assert all(isinstance(n, int) and n > 0 for n in lengths)
    assert max(lengths) <= max(target, 1)
    # At most two distinct sizes: at most two compilations.
    assert len(set(lengths)) <= 2


def test_chunk_lengths_steps_below_target():
    assert chunk_lengths(5, 10) == [5]
    assert chunk_lengths(10, 10) == [10]
    assert chunk_lengths(1, 10_000) == [1]


def test_chunk_lengths_prefers_equal_divisors():
    assert chunk_lengths(2000, 1000) == [1000, 1000]
    assert chunk_lengths(100_000, 10_000) == [10_000] * 10
    # 1000 is not a divisor of 1200, but 600 is (within target/2 .. target).
    assert chunk_lengths(1200, 1000) == [600, 600]
    # 900 = 3 x 300, found below the target 310.
    assert chunk_lengths(900, 310) == [300] * 3


def test_chunk_lengths_remainder():
    # 97 is prime: no divisor in 5..10, so full chunks and a remainder.
    assert chunk_lengths(97, 10) == [10] * 9 + [7]
    lengths = chunk_lengths(10_007, 1000)  # 10007 is prime
    assert lengths == [1000] * 10 + [7]


# --------------------------------------------------------------------------- end to end

STEPS, SEEDS = 2000, 2


def cartpole_config() -> RunSpec:
    return RunSpec(
        env="CartPole-v1", agent="stream-ac", steps=STEPS, seeds=SEEDS, chunk=1000, agent_options=dict(TINY)
    )


def _step(event) -> int | str:
    """The step of a Started/ChunkDone event; the kind of any other."""
    return event.step if isinstance(event, Started | ChunkDone) else type(event).__name__


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "r"
    calls = []
    t0 = time.perf_counter()
    summary = run(cartpole_config().replace(out=str(out)), lambda e: calls.append(_step(e))).summary
    elapsed = time.perf_counter() - t0  # the seconds run() took, on the test's own clock
    return out, summary, calls, elapsed


def test_run_writes_results_directory(cartpole_run):
    out, summary, calls, _ = cartpole_run
    for name in ("config.json", "summary.json", "episodes.parquet", "diagnostics.parquet"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    # The lab draws nothing (it sits below report/); `oakrl run` draws curve.png (test_cli).
    assert not (out / "curve.png").exists()
    # Nothing half-written left behind.
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    # Started at 0 once compiled, ChunkDone after every chunk, then Finished.
    assert calls == [0, 1000, 2000, "Finished"]

    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "CartPole-v1" and config["agent"] == "stream-ac"
    assert config["steps"] == STEPS and config["seeds"] == SEEDS
    assert config["agent_config"]["hidden"] == [16, 16]

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))


def test_run_summary(cartpole_run):
    out, _, _, elapsed = cartpole_run
    s = json.loads((out / "summary.json").read_text())
    for key in (
        "oakrl_version",
        "env",
        "agent",
        "steps",
        "seeds",
        "wall_seconds",
        "compile_seconds",
        "steps_per_second",
        "final_return",
        "average_reward",
    ):
        assert key in s, key
    assert s["oakrl_version"] == __version__
    assert (s["env"], s["agent"], s["steps"], s["seeds"]) == ("CartPole-v1", "stream-ac", STEPS, SEEDS)
    # Catches a wall time that drops the compilation, times that are not seconds of this run
    # (units, a clock started at import), and a throughput that forgets the seeds or divides by
    # the wall time instead of the stream's.
    assert s["compile_seconds"] + s["stream_seconds"] <= s["wall_seconds"] * (1 + 1e-12)
    assert s["wall_seconds"] <= elapsed
    assert s["steps_per_second"] == pytest.approx(STEPS * SEEDS / s["stream_seconds"], rel=1e-12)
    assert set(s["final_return"]) >= {"mean", "per_seed"}
    assert len(s["final_return"]["per_seed"]) == SEEDS
    assert set(s["average_reward"]) >= {"mean", "per_seed"}
    assert len(s["average_reward"]["per_seed"]) == SEEDS
    # CartPole pays 1 per step, every step.
    assert s["average_reward"]["mean"] == pytest.approx(1.0)
    assert s["average_reward"]["per_seed"] == pytest.approx([1.0] * SEEDS)
    assert s["continuing"] is False


def test_run_episodes(cartpole_run):
    out, summary, _, _ = cartpole_run
    ep = read_episodes(out / "episodes.parquet")
    assert set(ep) >= {"seed", "step", "return", "task"}
    n = ep["seed"].size
    assert n > 0 and summary["episodes"] == n
    assert set(np.unique(ep["seed"]).tolist()) == set(range(SEEDS))
    assert ep["step"].min() >= 1 and ep["step"].max() <= STEPS
    assert np.all(ep["task"] == 0)
    assert np.all(np.isfinite(ep["return"])) and np.all(ep["return"] >= 1)
    for s in range(SEEDS):
        mine = ep["seed"] == s
        steps = ep["step"][mine]
        assert np.all(np.diff(steps) > 0), "episodes of a seed end at increasing steps"
        # Reward 1 per step: the returns of the finished episodes add up to the steps they took.
        assert float(ep["return"][mine].sum()) == pytest.approx(float(steps.max()), abs=0.5)
        # ... and each episode's return is its length.
        lengths = np.diff(np.concatenate([[0], steps]))
        np.testing.assert_allclose(ep["return"][mine], lengths)

    # Catches a final return over the wrong part of the stream (not the last 10%: steps > 1800)
    # or with the seeds mixed up: by hand from the episodes each seed ended there.
    late = [ep["return"][(ep["seed"] == s) & (ep["step"] > 0.9 * STEPS)] for s in range(SEEDS)]
    assert all(r.size for r in late)
    assert summary["final_return"]["per_seed"] == pytest.approx([float(r.mean()) for r in late])

    diag = pq.read_table(out / "diagnostics.parquet").to_pydict()
    assert {"seed", "step", "td_error"} <= set(diag)
    assert sorted(set(diag["step"])) == [1000, 2000]
    assert len(diag["seed"]) == 2 * SEEDS


def test_run_is_deterministic(cartpole_run, tmp_path):
    out, _, _, _ = cartpole_run
    again = tmp_path / "again"
    run(cartpole_config().replace(out=str(again)))
    a = pq.read_table(out / "episodes.parquet")
    b = pq.read_table(again / "episodes.parquet")
    assert a.num_rows > 0
    assert a.equals(b)


def test_schedule_run(tmp_path):
    config = RunSpec(
        env="CartPole-v1",
        agent="stream-ac",
        steps=2000,
        seeds=1,
        chunk=1000,
        schedule="switch",
        every=500,
        tasks=2,
        agent_options=dict(TINY),
    )
    summary = run(config.replace(out=str(tmp_path / "sched"))).summary
    assert len(summary["tasks"]) == 2
    for entry in summary["tasks"]:
        assert {"final_return", "forgetting", "plasticity"} <= set(entry)
    on_disk = json.loads((tmp_path / "sched" / "summary.json").read_text())
    assert len(on_disk["tasks"]) == 2
    saved = json.loads((tmp_path / "sched" / "config.json").read_text())
    assert saved["schedule"] == {"kind": "switch", "every": 500, "tasks": 2, "order": "cyclic"}
    ep = read_episodes(tmp_path / "sched" / "episodes.parquet")
    assert set(np.unique(ep["task"]).tolist()) == {0, 1}
    # Cyclic switching every 500 steps: task (step - 1) // 500 % 2 is in force when an episode ends.
    np.testing.assert_array_equal(ep["task"], (ep["step"] - 1) // 500 % 2)

    # By hand: task k is visited in (500k, 500k + 500] and (500k + 1000, 500k + 1500]; quarters of
    # 125 steps (an empty quarter: the visit's first or last episode stands in). Catches task
    # metrics fed the wrong segment length, task count or order.
    def quarter(visit, which):
        inside = (ep["step"] > visit) & (ep["step"] <= visit + 500)
        q = (ep["step"] <= visit + 125) if which == "first" else (ep["step"] > visit + 375)
        r = ep["return"][inside & q]
        return float(r.mean()) if r.size else float(ep["return"][inside][0 if which == "first" else -1])

    for k, entry in enumerate(summary["tasks"]):
        first, second = 500 * k, 500 * k + 1000
        assert entry["final_return"]["mean"] == pytest.approx(quarter(second, "last"))
        assert entry["forgetting"]["mean"] == pytest.approx(quarter(first, "last") - quarter(second, "first"))


def test_continuing_world_reports_windows(tmp_path):
    config = RunSpec(
        env="Foraging-v0",
        agent="stream-ac",
        steps=1000,
        seeds=2,
        chunk=1000,
        window=100,
        agent_options=dict(TINY),
    )
    summary = run(config.replace(out=str(tmp_path / "forage"))).summary
    assert summary["continuing"] is True
    ep = read_episodes(tmp_path / "forage" / "episodes.parquet")
    for s in range(2):
        steps = ep["step"][ep["seed"] == s]
        np.testing.assert_array_equal(np.sort(steps), np.arange(100, 1001, 100))
    # The windows tile the stream: their returns add up to all the reward.
    total = np.array([ep["return"][ep["seed"] == s].sum() for s in range(2)])
    np.testing.assert_allclose(total / 1000, summary["average_reward"]["per_seed"], rtol=1e-4, atol=1e-6)


def test_gym_bridge_run(tmp_path):
    config = RunSpec(
        env="gym:CartPole-v1", agent="stream-q", steps=300, seeds=1, chunk=300, agent_options=dict(TINY)
    )
    summary = run(config.replace(out=str(tmp_path / "gym"))).summary
    on_disk = json.loads((tmp_path / "gym" / "summary.json").read_text())
    assert on_disk["env"] == "gym:CartPole-v1"
    # Catches a gym-bridge throughput that forgets the seeds or times the compilation too.
    assert on_disk["steps_per_second"] == pytest.approx(300 / on_disk["stream_seconds"], rel=1e-12)
    assert summary["average_reward"]["mean"] == pytest.approx(1.0)
    ep = read_episodes(tmp_path / "gym" / "episodes.parquet")
    assert ep["seed"].size > 0  # 300 random-ish CartPole steps end several episodes
    assert ep["step"].min() >= 1 and ep["step"].max() <= 300
    assert float(ep["return"].sum()) == pytest.approx(float(ep["step"].max()))


def test_stream_clock_starts_after_compilation_and_agrees_with_the_test_clock():
    """run_jax's (compile s, stream s) against the test's own clock and jax's compile log: all
    compilation is done before the stream's clock starts, and the stream time is the time the
    chunks took."""
    import logging
    import time

    import jax

    from oakrl.agents import make_agent
    from oakrl.envs import make_env
    from oakrl.lab.run import seed_keys
    from oakrl.lab.stream import run_jax

    handle = make_env("CartPole-v1")
    agent = make_agent("stream-ac", **TINY)
    keys = seed_keys(0, 2)
    events: list[tuple[str, float, object]] = []

    class Compiles(logging.Handler):
        def emit(self, record):
            if "compil" in record.getMessage().lower():
                events.append(("compile", time.perf_counter(), record.getMessage()))

    def on_chunk(record):
        events.append(("chunk", time.perf_counter(), record.end_step))

    def on_start(done, _compile_s):  # the stream starts: a chunk boundary at step `done`
        events.append(("chunk", time.perf_counter(), done))

    handler = Compiles()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        t0 = time.perf_counter()
        with jax.log_compiles():
            hooks = dict(on_chunk=on_chunk, on_start=on_start)
            _, compile_s, stream_s = run_jax(agent, handle, 3000, keys, chunk=1000, **hooks)
        t_end = time.perf_counter()
    finally:
        logger.removeHandler(handler)
    chunks = [(t, step) for kind, t, step in events if kind == "chunk"]
    compiles = [t for kind, t, _ in events if kind == "compile"]
    assert [step for _, step in chunks] == [0, 1000, 2000, 3000]
    started, last = chunks[0][0], chunks[-1][0]
    # Catches a stream that compiles lazily, inside the timed loop (a dropped ahead-of-time
    # compile, or a chunk length that was not compiled up front): its compile time would be
    # counted as streaming, and the steps/s of every summary would fall.
    assert compiles and max(compiles) < started, "compilation after the stream started"
    # Catches timers started or stopped at the wrong place, or reported in other units.
    assert compile_s <= started - t0
    assert last - started <= stream_s <= t_end - started


# --------------------------------------------------------------------------- prepare_out


@pytest.mark.parametrize("existing", ["config.json", "summary.json"])
def test_prepare_out_refuses_a_run_directory(tmp_path, existing):
    d = tmp_path / "old"
    d.mkdir()
    (d / existing).write_text('{"old": true}\n')
    (d / "episodes.parquet").write_bytes(b"not really parquet")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ConfigError, match="already holds a run"):
        prepare_out(d)
    # run() refuses it too, before computing anything.
    with pytest.raises(ConfigError, match="already holds a run"):
        run(RunSpec(steps=10, chunk=10, agent_options=dict(TINY), out=str(d)))
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_prepare_out_creates_and_accepts_empty(tmp_path):
    d = tmp_path / "a" / "b"
    assert prepare_out(d) == d and d.is_dir()
    assert prepare_out(d) == d  # an empty directory is fine
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError):
        prepare_out(f)
    assert f.read_text() == "x"


def test_cpu_compile_options_take_effect_and_keep_the_maths():
    """The lab's XLA:CPU options compile, stop the tree-reduction rewrite (the reduce-window
    kernels it splits a reduction into) and leave a reduction's result unchanged."""
    import jax
    import jax.numpy as jnp

    from oakrl.lab.stream import CPU_COMPILER_OPTIONS, compiler_options

    if jax.default_backend() != "cpu":
        assert compiler_options() == {}
        return
    assert compiler_options() == CPU_COMPILER_OPTIONS
    w = jnp.linspace(-1.0, 1.0, 4 * 128).reshape(4, 128)  # a first-layer trace: ObGD's L1 norm

    def l1(w):
        return jnp.abs(w).sum()

    plain = jax.jit(l1).lower(w).compile()
    tuned = jax.jit(l1).lower(w).compile(compiler_options())
    assert "reduce-window" in plain.as_text()
    assert "reduce-window" not in tuned.as_text()
    np.testing.assert_allclose(tuned(w), plain(w), rtol=1e-6)


def test_one_oakrl_run_builds_environment_and_agent_once(tmp_path, monkeypatch, capsys):
    """`oakrl run` builds its world and its agent once (the old CLI built both three times:
    to check the config, to prepare the directory, and again to run). Counted by wrapping the
    two factories every build goes through."""
    import oakrl.envs
    from oakrl.cli import main
    from oakrl.lab import run as run_module

    counts = {"env": 0, "agent": 0}
    real_env, real_agent = oakrl.envs.make_env, run_module.make_agent

    def count(name, real):
        def wrapped(*a, **k):
            counts[name] += 1
            return real(*a, **k)

        return wrapped

    monkeypatch.setattr(oakrl.envs, "make_env", count("env", real_env))
    monkeypatch.setattr(run_module, "make_agent", count("agent", real_agent))
    argv = [
        "run",
        "--steps",
        "200",
        "--chunk",
        "100",
        "--opt",
        "hidden=8",
        "--no-plot",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert counts == {"env": 1, "agent": 1}


def test_python_api_without_a_directory_gives_the_cli_results(tmp_path, capsys):
    """RunSpec(out=None) -> prepare -> execute writes nothing and returns the same numbers as
    `oakrl run` (the same pipeline; catches a Python path that builds or seeds differently)."""
    from oakrl.cli import main
    from oakrl.lab.run import execute, prepare

    spec = RunSpec(env="Acrobot-v1", agent="stream-q", steps=600, seeds=2, chunk=300)
    spec = spec.replace(agent_options=dict(TINY))
    before = sorted(tmp_path.iterdir())
    result = execute(prepare(spec))
    assert result.path is None and sorted(tmp_path.iterdir()) == before
    argv = ["run", "--env", "Acrobot-v1", "--agent", "stream-q", "--steps", "600", "--seeds", "2"]
    argv += ["--chunk", "300", "--opt", "hidden=16,16", "--no-plot", "--out", str(tmp_path / "cli")]
    assert main(argv) == 0, capsys.readouterr().err
    on_disk = read_episodes(tmp_path / "cli" / "episodes.parquet")
    for column in ("seed", "step", "return", "task"):
        np.testing.assert_array_equal(result.episodes[column], on_disk[column])
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert result.summary["average_reward"] == summary["average_reward"]
    assert result.final.agent.steps.tolist() == [600, 600]  # the final state of every seed's stream
