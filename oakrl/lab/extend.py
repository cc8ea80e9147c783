"""A longer lifetime for a run: `oakrl resume DIR --steps N`.

A continual agent has no last step; a run's `steps` is only how far it was taken. Extending a
finished (or unfinished) run to N steps per seed goes on from its last checkpoint, and gives the
stream, tables and checkpoints of a run made with N steps from the start: the same keys (the
stream splits them step by step), the same schedule (it depends on the step, not on the length)
and the same compiled chunks, which is why the old length must end on a chunk boundary of the
new one (`chunk_lengths`). The run's directory is changed in an order that a kill at any point
leaves it resumable: the checkpoint is re-labelled for the new config first (a new file, then the
pointer), then summary.json (the finished mark) is removed, then config.json is rewritten. Running
the same command again after a kill finishes the change.
"""

from __future__ import annotations

from pathlib import Path

from oakrl.errors import ConfigError
from oakrl.io import write_json
from oakrl.lab.checkpoint import read_pointer, rehash_checkpoint
from oakrl.lab.outdir import compare_config, compat_hash, identity, lock_dir
from oakrl.lab.parse import read_file, spec_of_run
from oakrl.lab.spec import RunSpec
from oakrl.lab.stream import chunk_lengths


def extend(directory: str | Path, steps: int) -> RunSpec:
    """The spec that resumes the run in `directory` as a run of `steps` steps per seed.

    Changes the directory (see the module docstring) when `steps` is more than the run's; refuses
    (ConfigError, one line, nothing written) fewer steps, a length whose chunks do not continue
    the run's, and an agent whose resolved config depends on the length.
    """
    from oakrl.lab.run import build

    path = Path(directory)
    spec = spec_of_run(path).replace(out=str(path))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps!r}")
    if steps == spec.steps:
        return spec
    if steps < spec.steps:
        raise ConfigError(
            f"--steps {steps:,}: the run in {path} is {spec.steps:,} steps long and a lifetime is not "
            f"shortened; give more than {spec.steps:,}"
        )
    if spec.gym:
        raise ConfigError(
            f"--steps: {spec.env} is a gymnasium world, whose runs are not lengthened (its environments' "
            "snapshots are not checked to continue as a longer run's would); runs on JAX worlds are"
        )
    old_chunks = chunk_lengths(spec.steps, spec.chunk)

    def continues(n: int) -> bool:
        return chunk_lengths(n, spec.chunk)[: len(old_chunks)] == old_chunks

    if not continues(steps):
        # Usually any multiple of the run's chunk continues it; with uneven chunks not every one.
        size = old_chunks[0]
        fits = next(
            (m for m in range(-(-steps // size) * size, steps + 1000 * size, size) if continues(m)), None
        )
        hint = f"e.g. {fits:,}" if fits is not None else "or run it anew"
        raise ConfigError(
            f"--steps {steps:,}: the run's {spec.steps:,} steps (chunks of {size:,}) do not continue into "
            f"the chunks of a run of {steps:,} steps; give a length that does ({hint})"
        )
    longer = spec.replace(steps=steps)
    idents = []
    for s in (spec, longer):
        handle, agent = build(s)
        idents.append(identity(s, bool(getattr(handle, "continuing", False)), agent.config.to_dict()))
    old, new = idents
    changed = sorted(_differences(old, new) - {"steps"})
    if changed:
        options = [c.removeprefix("agent_config.") for c in changed if c.startswith("agent_config.")]
        # (A multi-learner agent's own `steps` is the run's length itself: no option to set.)
        settable = len(options) == len(changed) and "steps" not in options
        hint = (
            f"runs made with {', '.join(options)} set (--opt KEY=VALUE) can be extended"
            if settable
            else "run it anew"
        )
        raise ConfigError(
            f"--steps: {spec.agent}'s {', '.join(changed)} {'derives' if len(changed) == 1 else 'derive'} "
            "from the run's length, so a longer run "
            f"would not continue this one; {hint}"
        )
    with lock_dir(path):
        compare_config(read_file(path / "config.json"), old, path)
        pointer = read_pointer(path)
        old_hash, new_hash = compat_hash(old), compat_hash(new)
        if pointer is not None and pointer.get("config_hash") != new_hash:
            rehash_checkpoint(path, old_hash, new_hash)  # refuses a checkpoint of another config
        # The finished mark goes before config.json says N: a kill between the two must not
        # leave a run that claims to be finished at N.
        (path / "summary.json").unlink(missing_ok=True)
        write_json(path / "config.json", new)
    return longer


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted names of the fields where two configs differ (agent_config.exploration_steps)."""
    out = set()
    for k in {*a, *b}:
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _differences(x, y, f"{prefix}{k}.")
        elif x != y:
            out.add(f"{prefix}{k}")
    return out
