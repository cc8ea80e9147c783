"""Config files and malformed input: validated before anything runs, one line, exit 2.

The fuzz test throws malformed flags and config files at the CLI, aimed at an existing
results directory: every one must end with exit 2, one line on stderr, no traceback, and no
file of that directory changed. Nothing here compiles except the one tiny run of the fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oakrl.cli import main
from oakrl.errors import ConfigError
from oakrl.lab.parse import spec_from_file, spec_of_run
from oakrl.lab.run import run
from oakrl.lab.spec import RunSpec

TINY = {"hidden": (16, 16)}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """An existing, finished results directory (the fuzz target)."""
    out = tmp_path_factory.mktemp("results") / "run"
    run(RunSpec(steps=500, chunk=500, agent_options=dict(TINY), out=str(out)))
    return out


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def one_line(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, (code, captured.out, captured.err)
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("oakrl: "), captured.err
    return lines[0]


# --------------------------------------------------------------------------- config files


def test_load_config_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        'env = "Acrobot-v1"\nagent = "stream-q"\nsteps = 500\nschedule = "switch"\nevery = 100\n'
        "[agent_options]\nhidden = [16, 16]\nlr = 1\n"
    )
    config = spec_from_file(f)
    assert (config.env, config.agent, config.steps, config.schedule, config.every) == (
        "Acrobot-v1",
        "stream-q",
        500,
        "switch",
        100,
    )
    assert config.agent_config.hidden == (16, 16) and config.agent_config.lr == 1.0
    assert config.options_given() == {"hidden": (16, 16)}  # lr = 1 is the default


def test_config_of_run_round_trips(results):
    config = spec_of_run(results)
    assert config.steps == 500 and config.agent_config.hidden == (16, 16)


BAD_FILES = [
    ("steps = -5\n", "steps must be a positive integer, got -5"),
    ('steps = "many"\n', "steps must be a positive integer, got 'many'"),
    ("stepz = 5\n", "unknown field 'stepz'"),
    ('env = "Nope-v0"\n', "Nope-v0"),
    ("env = 3\n", "env must be a string, got 3"),
    ('agent = "x"\n', "unknown agent 'x'; valid: stream-ac"),
    ("[agent_options]\nlr = -1.0\n", "agent option lr must be > 0, got -1.0"),
    ("[agent_options]\nlr = nan\n", "agent option lr must be finite"),
    ('[agent_options]\nhidden = "big"\n', "agent option hidden must be a list of integers"),
    ("[agent_options]\nnope = 1\n", "stream-ac has no option 'nope'"),
    ("agent_options = 3\n", "agent_options must be a table"),
    ('schedule = { kind = "switch", evry = 3 }\n', "unknown field schedule.evry"),
    ("steps = = 3\n", "not valid TOML"),
    ("checkpoint_every = -1\n", "checkpoint_every must be a non-negative integer"),
    ("seed = true\n", "seed must be a non-negative integer"),
]


@pytest.mark.parametrize("text, message", BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_config_file(text, message, tmp_path, results, capsys):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=None) as e:
        spec_from_file(f)
    assert message in str(e.value) and str(f) in str(e.value)
    before = snapshot(results)
    line = one_line(capsys, main(["run", "--config", str(f), "--out", str(results)]))
    assert message in line
    assert snapshot(results) == before


def test_config_file_missing_and_yaml(tmp_path, capsys):
    one_line(capsys, main(["run", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]))
    y = tmp_path / "c.yaml"
    y.write_text("steps: 5\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        line = one_line(capsys, main(["run", "--config", str(y), "--out", str(tmp_path / "o")]))
        assert "pyyaml" in line
    assert not (tmp_path / "o").exists()


def test_flags_override_config_file(tmp_path, results, capsys):
    """A file that matches the finished run, with a flag that differs: refused naming the flag."""
    f = tmp_path / "c.toml"
    f.write_text("steps = 500\nchunk = 500\n[agent_options]\nhidden = [16, 16]\n")
    before = snapshot(results)
    assert main(["run", "--config", str(f), "--out", str(results)]) == 0  # same run: complete
    capsys.readouterr()
    line = one_line(capsys, main(["run", "--config", str(f), "--steps", "600", "--out", str(results)]))
    assert "different config: steps is 500 there, 600 here" in line
    assert snapshot(results) == before


# --------------------------------------------------------------------------- fuzz

INT_FLAGS = ["--steps", "--seeds", "--chunk", "--window", "--every", "--tasks"]
VALID = {
    "--env": ["CartPole-v1", "Acrobot-v1"],
    "--agent": ["stream-ac"],
    "--steps": ["500", "1000"],
    "--seeds": ["1", "2"],
    "--seed": ["0", "1"],
    "--chunk": ["500"],
    "--window": ["100"],
    "--every": ["100"],
    "--tasks": ["2"],
    "--order": ["cyclic", "random"],
    "--prng": ["unsafe_rbg", "threefry2x32"],
    "--opt": ["hidden=16,16", "lr=0.5", "gamma=0.9"],
    "--checkpoint-every": ["0", "1000"],
}
KNOWN = {
    "--steps",
    "--seeds",
    "--seed",
    "--chunk",
    "--window",
    "--every",
    "--tasks",
    "--env",
    "--agent",
    "--schedule",
    "--order",
    "--prng",
    "--opt",
    "--config",
    "--out",
    "--plot",
    "--no-plot",
    "--checkpoint-every",
    "--help",
    "-h",
}
VALID_STR = {
    "--env": None,  # anything not an environment id
    "--agent": {"stream-ac", "stream-q", "stream-td"},
    "--schedule": {"switch", "permute", "reward", "drift"},
    "--order": {"cyclic", "random"},
    "--prng": {"unsafe_rbg", "rbg", "threefry2x32"},
}

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def not_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return True
    return False


@st.composite
def malformed(draw) -> tuple[list[str], str | None]:
    """(flags holding exactly one malformed piece, a config file's text or None)."""
    kind = draw(st.sampled_from(["int", "str", "opt", "flag", "ckpt", "file", "toml"]))
    if kind == "int":
        flag = draw(st.sampled_from(INT_FLAGS))
        value = draw(st.one_of(st.integers(max_value=0).map(str), text.filter(not_int)))
        bad = [flag, value]
    elif kind == "str":
        flag = draw(st.sampled_from(sorted(VALID_STR)))
        value = draw(text.filter(lambda s: s not in (VALID_STR[flag] or ()) and "CartPole" not in s))
        if flag == "--env":
            value = "Nope" + value
        bad = [flag, value]
    elif kind == "opt":
        key = draw(st.sampled_from(["lr", "gamma", "hidden", "entropy", "sparsity", "zz" + draw(text)]))
        value = {
            "lr": draw(st.sampled_from(["0", "-1", "nan", "inf", "x", ""])),
            "gamma": draw(st.sampled_from(["2", "-0.1", "nan", "y"])),
            "hidden": draw(st.sampled_from(["", "0", "-3,4", "a,b", "1.5"])),
            "entropy": draw(st.sampled_from(["-1", "z"])),
            "sparsity": draw(st.sampled_from(["1", "-0.5", "2"])),
        }.get(key, draw(text))
        bad = ["--opt", draw(st.sampled_from([f"{key}={value}", key + value.replace("=", "")]))]
    elif kind == "flag":
        name = draw(st.text(st.characters(whitelist_categories=("Ll",)), min_size=1, max_size=10))
        bad = [f"--{name}"] if f"--{name}" not in KNOWN else ["--steps", "0"]
    elif kind == "ckpt":
        bad = [
            "--checkpoint-every",
            draw(st.one_of(st.integers(max_value=-1).map(str), text.filter(not_int))),
        ]
    else:
        return [], draw(
            st.one_of(
                st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                st.sampled_from(
                    [
                        "steps = 0",
                        "stepz = 1",
                        "env = 1",
                        "[agent_options]\nlr = -2",
                        'agent = "q"',
                        'order = "x"',
                        "seeds = -1",
                        "chunk = 1.5",
                        "schedule = 3",
                        "[agent_options]\nwhat = 1",
                        'prng = "x"',
                    ]
                ),
            ).filter(lambda t: _bad_toml(t))
        )
    used = {bad[0]} if bad else set()
    extra = []
    for flag in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=4, unique=True)):
        if flag not in used and flag != "--opt":
            extra += [flag, draw(st.sampled_from(VALID[flag]))]
    return extra + bad, None  # the bad piece last: nothing after it overrides it


def _bad_toml(t: str) -> bool:
    """Text that load_config refuses (so the fuzz never starts a real run)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False, encoding="utf-8") as f:
        f.write(t)
    try:
        spec_from_file(f.name)
    except ConfigError:
        return True
    finally:
        Path(f.name).unlink()
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=malformed(), command=st.sampled_from(["run", "sweep", "resume"]))
def test_fuzz_malformed_input(case, command, results, tmp_path, capsys):
    flags, toml = case
    before = snapshot(results)
    if toml is not None:
        f = tmp_path / "fuzz.toml"
        f.write_text(toml, encoding="utf-8")
        if command == "run":
            argv = ["run", "--config", str(f), "--out", str(results)]
        elif command == "sweep":
            f.write_text("[base]\n" + toml, encoding="utf-8")
            argv = ["sweep", str(f), "--out", str(results)]
        else:
            argv = ["resume", str(f)]  # a file, not a results directory
    elif command == "resume":
        argv = ["resume", str(results), *flags]  # resume takes no run flags
        if not flags:
            argv = ["resume", str(tmp_path / "nowhere")]
    else:
        argv = ["run", *flags, "--out", str(results)]
    capsys.readouterr()
    code = main(argv)
    one_line(capsys, code)
    assert snapshot(results) == before


def test_resume_of_a_non_run(tmp_path, capsys):
    line = one_line(capsys, main(["resume", str(tmp_path)]))
    assert "holds no run" in line
    assert list(tmp_path.iterdir()) == []


def test_config_json_is_readable_back(results):
    data = json.loads((results / "config.json").read_text())
    assert data["checkpoint_every"] is None
