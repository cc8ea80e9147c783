"""`oakrl resume DIR --steps N`: a run's lifetime lengthened is the run made that long.

Runs are tiny (hidden 16,16; 1,000-2,000 steps, chunks of 500), a few compilations in all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oakrl.cli import main
from oakrl.lab.checkpoint import read_pointer, rehash_checkpoint
from oakrl.lab.outdir import compat_hash
from oakrl.lab.run import ChunkDone, run
from oakrl.lab.spec import RunSpec
from tests.test_resume import TINY, assert_same_run, snapshot

# A goal that moves at step 700: the extension crosses a task change made before it and one after.
BASE = RunSpec(steps=1000, seeds=2, chunk=500, schedule="switch", every=700, agent_options=dict(TINY))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(a finished 1,000-step run, the same run made 2,000 steps long from the start)."""
    root = tmp_path_factory.mktemp("extend")
    short, long = root / "short", root / "long"
    run(BASE.replace(out=str(short)))
    run(BASE.replace(steps=2000, out=str(long)))
    return short, long


def copy_of(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(path, out)
    return out


def test_a_finished_run_extended_is_the_run_made_that_long(runs, tmp_path, capsys):
    # Catches: another key or schedule position after the old end, tables that restart or drop
    # the old rows, a config.json that still says 1,000 steps, a summary left from the short run.
    short, long = runs
    run_dir = copy_of(short, tmp_path)
    assert main(["resume", str(run_dir), "--steps", "2000", "--no-plot"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert_same_run(long, run_dir)
    assert json.loads((run_dir / "config.json").read_text()) == json.loads((long / "config.json").read_text())
    # Then it is that run: a plain resume or the same extension again has nothing to do.
    before = snapshot(run_dir)
    assert main(["resume", str(run_dir), "--steps", "2000", "--no-plot"]) == 0
    assert "already holds this finished run" in " ".join(capsys.readouterr().err.split())
    assert snapshot(run_dir) == before


def test_an_unfinished_run_is_extended_from_its_last_checkpoint(runs, tmp_path):
    _, long = runs
    out = tmp_path / "run"

    class Stop(Exception):
        pass

    def stop(event):  # stopped in its last chunk, as a kill after the first chunk's checkpoint
        if isinstance(event, ChunkDone) and event.step > 500:
            raise Stop

    with pytest.raises(Stop):
        run(BASE.replace(out=str(out), checkpoint_every=None), on_event=stop)
    assert read_pointer(out)["step"] == 500 and not (out / "summary.json").exists()
    assert main(["resume", str(out), "--steps", "2000", "--no-plot"]) == 0
    assert_same_run(long, out)


def test_a_kill_after_the_checkpoint_was_relabelled_is_finished_by_the_same_command(runs, tmp_path):
    # The checkpoint re-labelled and summary.json removed, config.json not yet rewritten (a kill
    # in between): plain resume says what is wrong, and the extension run again completes it.
    short, long = runs
    run_dir = copy_of(short, tmp_path)
    stored = json.loads((run_dir / "config.json").read_text())
    old_hash, new_hash = compat_hash(stored), compat_hash({**stored, "steps": 2000})
    assert rehash_checkpoint(run_dir, old_hash, new_hash)
    (run_dir / "summary.json").unlink()
    assert main(["resume", str(run_dir), "--no-plot"]) == 2
    assert main(["resume", str(run_dir), "--steps", "2000", "--no-plot"]) == 0
    assert_same_run(long, run_dir)


@pytest.mark.parametrize(
    "steps, says",
    [
        ("500", "a lifetime is not shortened"),
        ("1700", "give a length that does (e.g. 2,000)"),
        ("0", "--steps must be a positive integer"),
    ],
)
def test_a_length_that_cannot_continue_the_run_is_refused(runs, tmp_path, capsys, steps, says):
    short, _ = runs
    run_dir = copy_of(short, tmp_path)
    before = snapshot(run_dir)
    assert main(["resume", str(run_dir), "--steps", steps, "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(run_dir) == before


def test_an_agent_whose_config_derives_from_the_length_is_refused_unless_it_was_set(tmp_path, capsys):
    # stream-q's exploration_steps is a share of the run's steps by default: extended, the run
    # would explore longer than the one it continues.
    spec = RunSpec(agent="stream-q", steps=1000, chunk=500, agent_options=dict(TINY))
    derived, given = tmp_path / "derived", tmp_path / "given"
    run(spec.replace(out=str(derived)))
    before = snapshot(derived)
    assert main(["resume", str(derived), "--steps", "2000", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "exploration_steps" in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(derived) == before
    steps = json.loads((derived / "config.json").read_text())["agent_config"]["exploration_steps"]
    run(spec.replace(out=str(given), agent_options={**TINY, "exploration_steps": steps}))
    assert main(["resume", str(given), "--steps", "2000", "--no-plot"]) == 0
