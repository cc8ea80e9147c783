"""A run as a pipeline: `RunSpec` -> `prepare` -> `RunPlan` -> `execute` -> `RunResult`.

    from oakrl.lab import RunSpec, prepare, execute
    result = execute(prepare(RunSpec(env="CartPole-v1", agent="stream-q", steps=20_000, seeds=4)))
    result.summary["final_return"], result.episodes["return"]       # in memory; out=None writes nothing

`prepare` builds the environment and the agent once, works out the run's identity and, when
the spec names an `out` directory, whether it is fresh, resumable (and from which step) or
finished, refusing a directory of another run before anything is written. `execute` runs the
plan (all seeds at once, chunk by chunk), reporting `Started`, `ChunkDone` and `Finished` events
to `on_event`, and returns the summary and the tables.

With an `out` directory:

  out/
    config.json          everything needed to reproduce the run (written first)
    episodes.parquet     one row per finished episode: seed, step, return, task
    diagnostics.parquet  per chunk and seed: the mean of each agent diagnostic
    records.parquet      agents with per-chunk records of their own (oak's option pool)
    checkpoint.json, checkpoint-STEP.npz   the whole stream state after every chunk
    summary.json         the headline numbers (written last: its presence marks a finished run)

An unfinished run of the same spec is resumed from its last checkpoint, bit-identically; a
finished one is read back; one of another spec is refused. Diverged is raised when the agent
state or the metrics turn non-finite (the last good checkpoint is kept), Interrupted after
SIGINT/SIGTERM (once the current chunk is checkpointed).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from oakrl.agents import AGENTS, make_agent
from oakrl.core.config import RunFacts
from oakrl.core.types import Agent
from oakrl.errors import ConfigError, Interrupted
from oakrl.io import write_json, write_table
from oakrl.lab.bridge import run_gym
from oakrl.lab.checkpoint import load_checkpoint, read_pointer, save_checkpoint, verify_checkpoint
from oakrl.lab.health import bad_metric, diverged, nonfinite
from oakrl.lab.outdir import FREE_FIELDS, clean_temporaries, compat_hash, identity, lock_dir, prepare_out
from oakrl.lab.recorder import Recorder, summarize
from oakrl.lab.resources import check_memory
from oakrl.lab.signals import GRACE, Signals
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import Carry, ChunkRecord, run_jax
from oakrl.lab.tables import read_episodes, read_table, write_episodes
from oakrl.lab.tensorboard import ChunkScalars


class RunPlan(NamedTuple):
    """A spec made concrete: built once by `prepare`, run by `execute`."""

    spec: RunSpec
    handle: Any  # the environment (oakrl.envs EnvHandle, or a gymnasium bridge handle)
    agent: Agent  # built from the spec's agent config, resolved for this run
    identity: dict[str, Any]  # what config.json holds
    path: Path | None  # the results directory (None: nothing is written)
    status: str  # fresh | resume | complete
    resume_step: int  # the step the run continues from (0: the start)
    # Studies: replaces the fresh stream state before the first step (e.g. agents that start
    # from a cloned prior). Not applied when resuming (the checkpoint holds the state).
    start: Callable[[Carry], Carry] | None = None

    @property
    def continuing(self) -> bool:
        return bool(getattr(self.handle, "continuing", False))


class RunResult(NamedTuple):
    """What a run gives back: its summary and its tables (columns as numpy arrays)."""

    summary: dict[str, Any]
    episodes: dict[str, np.ndarray]  # seed, step, return, task: one row per finished episode
    diagnostics: dict[str, np.ndarray]  # seed, step, one column per diagnostic: per chunk and seed
    records: dict[str, np.ndarray]  # the agent's own per-chunk records (empty for most agents)
    path: Path | None
    final: Carry | None  # the stream state at the end ([S, ...]); None when read back from disk


class Started(NamedTuple):
    """Compiled; the stream starts (or resumes) now."""

    plan: RunPlan
    step: int  # steps per seed already done
    compile_seconds: float


class ChunkDone(NamedTuple):
    plan: RunPlan
    step: int  # steps per seed done after this chunk
    record: ChunkRecord  # its finished episodes and mean diagnostics


class Finished(NamedTuple):
    plan: RunPlan
    result: RunResult
    already: bool  # the directory held this finished run; nothing ran


Event = Started | ChunkDone | Finished


def make_handle(spec: RunSpec):
    """The environment of a spec (ConfigError on an unknown id or impossible schedule)."""
    if spec.gym:
        from oakrl.envs.gym_bridge import make_gym

        handle = make_gym(spec.env[len("gym:") :], spec.env_options)
        if spec.schedule in ("switch", "drift"):  # refuse an environment without the hook now
            probe = handle.make_env()
            try:
                probe.get_wrapper_attr("set_physics")(1.0)
            finally:
                probe.close()
        return handle
    from oakrl.envs import make_env

    return make_env(
        spec.env,
        schedule=spec.schedule,
        every=spec.every,
        tasks=spec.tasks,
        order=spec.order,
        seed=spec.seed,
        learners=spec.learners,
    )


def build(spec: RunSpec) -> tuple[Any, Agent]:
    """The environment and the agent of a spec, checked to fit each other (no compute)."""
    handle = make_handle(spec)
    config = spec.agent_config
    obs_shape = tuple(handle.obs_spec.shape)
    if spec.goal is not None:
        from oakrl.plan.goal import parse_goal

        config = config.replace(goal=parse_goal(spec.goal, math.prod(obs_shape)))
    config = config.resolve(RunFacts(spec.steps, obs_shape, handle.action_spec))
    agent = make_agent(spec.agent, config)
    # Agents check some options against the environment in `init` (sizes, action kinds): trace
    # it abstractly now, so such an error comes before anything is written.
    jax.eval_shape(lambda k: agent.init(k, handle.obs_spec, handle.action_spec), jax.random.key(0))
    return handle, agent


def prepare(spec: RunSpec, start: Callable[[Carry], Carry] | None = None) -> RunPlan:
    """Builds the run once and settles its directory; refuses (ConfigError) before any write.

    Refused: a run that cannot fit in memory (oakrl.lab.resources), a directory of another run,
    a corrupt checkpoint, and a directory another process is running in (its lock).
    """
    handle, agent = build(spec)
    check_memory(spec, handle, agent)  # before the directory is touched
    ident = identity(spec, bool(getattr(handle, "continuing", False)), agent.config.to_dict())
    if spec.out is None:
        return RunPlan(spec, handle, agent, ident, None, "fresh", 0, start)
    # Locked while it is read, so no running process is writing it meanwhile; `execute` takes
    # the lock again for the whole run.
    with lock_dir(spec.out):
        path, status = prepare_out(spec.out, ident)
        step = 0
        if status == "complete" and not _readable(path / "summary.json"):
            status = "resume"  # a damaged summary: finish (re-write) the run from its checkpoint
        if status == "resume":
            verified = verify_checkpoint(path, compat_hash(ident))  # refuse a corrupt or foreign one
            step = verified[0]["step"] if verified else 0
    return RunPlan(spec, handle, agent, ident, path, status, step, start)


def base_key(seed: int, prng: str = "unsafe_rbg") -> jax.Array:
    """The typed key every stream of a run (or a study's sessions) descends from."""
    return jax.random.key(seed, impl=prng)


def seed_keys(seed: int, seeds: int, prng: str = "unsafe_rbg") -> jax.Array:
    """[S] keys: seed i of a run uses fold_in(key(seed), i). Every stream of oakrl draws its
    seeds' keys here (runs, studies), so equal seeds mean equal streams everywhere."""
    base = base_key(seed, prng)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(seeds))


def one_key(seed: int, i: int, prng: str = "unsafe_rbg") -> jax.Array:
    """fold_in(key(seed), i) for one stream outside a run (a recording). Not seed_keys(...)[i]:
    under unsafe_rbg a vmapped fold_in gives other keys than a single one for i >= 1."""
    return jax.random.fold_in(jax.random.key(seed, impl=prng), i)


def final_state(plan: RunPlan) -> Carry:
    """The stream state ([S, ...]) a finished run of `plan` ended with, from its last checkpoint."""
    from oakrl.lab.stream import init_carry

    if plan.path is None:
        raise ConfigError("a run without an out directory keeps no state: use RunResult.final")
    fresh = jax.jit(jax.vmap(lambda k: init_carry(plan.agent, plan.handle, k)))(
        seed_keys(plan.spec.seed, plan.spec.seeds, plan.spec.prng)
    )
    loaded = load_checkpoint(plan.path, fresh, compat_hash(plan.identity))
    if loaded is None or loaded[0] != plan.spec.steps:
        raise ConfigError(f"{plan.path} holds no final checkpoint of this run")
    return loaded[1]


def execute(
    plan: RunPlan,
    on_event: Callable[[Event], None] | None = None,
    on_state: Callable[[int, Carry], None] | None = None,
) -> RunResult:
    """Runs the plan to its last step (or reads back a finished one); returns its result.

    The results directory is locked (flock) for the whole call: a second process refuses it.
    on_state(steps done, stream state [S, ...]) is called at every chunk boundary (JAX
    environments only): studies that look inside the agent along its lifetime (e.g. copy its
    learned models, oakrl/study/option_planning.py) read it there; it must not keep device
    buffers it does not copy."""
    if plan.path is None:
        return _execute(plan, on_event, on_state)
    with lock_dir(plan.path):
        _unchanged_since_prepare(plan)
        return _execute(plan, on_event, on_state)


def _program(plan: RunPlan) -> dict[str, Any] | None:
    """What names this run's compiled stream in the compile cache's programs, or None where the
    code that runs may not be oakrl's files as they are on disk: agents that carry arrays or other
    agents (not in cache.PROGRAM_AGENTS), and an agent whose step was replaced in this process
    (a wrapper defined outside oakrl, e.g. a test's or a notebook's)."""
    from oakrl.lab import cache

    if plan.spec.agent not in cache.PROGRAM_AGENTS or cache.active() is None:
        return None
    if not getattr(plan.agent.step, "__module__", "").startswith("oakrl."):
        return None
    return {k: v for k, v in plan.identity.items() if k not in FREE_FIELDS}


def _unchanged_since_prepare(plan: RunPlan) -> None:
    """Refuses a directory that another process wrote between `prepare` and `execute`."""
    path = plan.path
    meta = read_pointer(path) if plan.status != "complete" else None
    now = (meta or {}).get("step", 0)
    fresh_now = not (path / "config.json").exists() and not (path / "summary.json").exists()
    if (plan.status == "fresh" and not fresh_now) or (plan.status == "resume" and now != plan.resume_step):
        raise ConfigError(f"--out {path} was changed by another run since this one was prepared; run again")


def _execute(
    plan: RunPlan,
    on_event: Callable[[Event], None] | None = None,
    on_state: Callable[[int, Carry], None] | None = None,
) -> RunResult:
    emit = on_event or (lambda event: None)
    spec, path = plan.spec, plan.path
    if plan.status == "complete":
        result = read_result(path)
        emit(Finished(plan, result, True))
        return result
    cfg_hash = compat_hash(plan.identity)
    if path is not None:
        clean_temporaries(path)
    rec = Recorder(spec.seeds)
    first = plan.resume_step
    last_saved = 0
    board: ChunkScalars | None = None  # TensorBoard scalars per chunk, next to the tables

    def on_start(done: int, compile_s: float) -> None:
        nonlocal first, board
        first = done
        if path is not None:
            # Once compiled: a run that fails to build or compile (out of memory in XLA) leaves
            # no config.json that would refuse the corrected command in the same directory.
            write_json(path / "config.json", plan.identity)
            board = ChunkScalars(path, spec.seeds)
        emit(Started(plan, done, compile_s))

    def on_chunk(record: ChunkRecord) -> None:
        rec(record)
        if board is not None:
            board(record)
        bad = bad_metric(record)
        if bad is not None:
            raise diverged(bad[0], record.end_step, bad[1], path)
        emit(ChunkDone(plan, record.end_step, record))

    def save(done: int, carry: Carry) -> None:
        # Metrics first, then the checkpoint: once a checkpoint exists, so do the tables (each
        # replaced atomically; a kill in between leaves them at `done`, the checkpoint one
        # boundary earlier, and resuming rewrites them identically).
        nonlocal last_saved
        _write_tables(path, rec)
        arrays = rec.state()
        if spec.gym:  # the environments' snapshots (bytes of any length) go beside the carry
            arrays.update({f"gym/env{i}": np.asarray(b) for i, b in enumerate(carry.env)})
            carry = carry._replace(env=())
        save_checkpoint(path, done, carry, arrays, cfg_hash)
        last_saved = done

    def restore(fresh: Carry) -> tuple[int, Carry]:
        nonlocal last_saved
        loaded = load_checkpoint(path, fresh, cfg_hash) if path is not None else None
        if loaded is None:
            return 0, plan.start(fresh) if plan.start is not None else fresh
        step, carry, arrays = loaded
        if spec.gym:
            carry = carry._replace(env=tuple(arrays[f"gym/env{i}"] for i in range(spec.seeds)))
        rec.restore(arrays)
        last_saved = step
        return step, carry

    records = AGENTS[spec.agent].records
    # Only a run with a directory can checkpoint. Without handlers SIGINT/SIGTERM stop a run at once.
    with Signals(enabled=path is not None) as signals:

        def on_boundary(done: int, carry: Carry) -> None:
            bad = nonfinite(carry, spec.seeds)
            if bad is not None:
                raise diverged(bad[0], done, bad[1], path)
            if records is not None:
                rec.add_records(done, records(carry.agent))
            if on_state is not None:
                on_state(done, carry)
            if path is None or done >= spec.steps:
                return
            every = spec.checkpoint_every
            if every is None or (every > 0 and done - last_saved >= every) or signals.received is not None:
                save(done, carry)
            if signals.received is not None:
                raise Interrupted(signals.received, done, str(path))

        def poll() -> None:
            # A chunk can take hours: past the grace period, give it up and stop at the last
            # checkpoint (every checkpoint is complete on disk; nothing of this chunk is written).
            if signals.received is not None and time.monotonic() - signals.at > GRACE:
                raise Interrupted(signals.received, last_saved, str(path), abandoned=True)

        keys = seed_keys(spec.seed, spec.seeds, spec.prng)
        if spec.gym:
            from oakrl.envs.gym_vector import gym_schedule

            seeds = [spec.seed * 10_000 + i for i in range(spec.seeds)]
            schedule = None
            if spec.schedule is not None:
                schedule = gym_schedule(spec.schedule, spec.every, spec.tasks, spec.order, spec.seed)
            final, compile_s, stream_s = run_gym(
                plan.agent, plan.handle, spec.steps, keys, seeds, spec.chunk, on_chunk, on_start,
                restore=restore, on_boundary=on_boundary, schedule=schedule,
            )  # fmt: skip
        else:
            final, compile_s, stream_s = run_jax(
                plan.agent, plan.handle, spec.steps, keys, spec.chunk, spec.window, on_chunk,
                restore=restore, on_boundary=on_boundary, on_start=on_start,
                poll=poll if signals.enabled and path is not None else None,
                program=_program(plan),
            )  # fmt: skip
        if path is not None:
            save(spec.steps, final)
    if board is not None:
        board.close()  # (flushed per chunk: a run that raised loses nothing by not closing it)

    summary = summarize(spec, plan.continuing, rec, compile_s, stream_s, spec.steps - first)
    if first:
        summary["resumed_from_step"] = first
    result = RunResult(summary, rec.columns(), rec.diagnostics(), rec.records_table(), path, final)
    if path is not None:
        _write_tables(path, rec)
        write_json(path / "summary.json", summary)  # last: its presence marks a finished run
    emit(Finished(plan, result, False))
    return result


def run(spec: RunSpec, on_event: Callable[[Event], None] | None = None) -> RunResult:
    """prepare + execute."""
    return execute(prepare(spec), on_event)


def read_result(path: Path) -> RunResult:
    """The result of a finished run, read back from its directory."""
    summary = json.loads((path / "summary.json").read_text())
    episodes = read_episodes(path / "episodes.parquet")
    diagnostics = read_table(path / "diagnostics.parquet") if (path / "diagnostics.parquet").exists() else {}
    records = read_table(path / "records.parquet") if (path / "records.parquet").exists() else {}
    return RunResult(summary, episodes, diagnostics, records, path, None)


def _readable(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _write_tables(path: Path, rec: Recorder) -> None:
    write_episodes(path / "episodes.parquet", rec.columns())
    write_table(path / "diagnostics.parquet", rec.diagnostics())
    if rec.records:
        write_table(path / "records.parquet", rec.records_table())
