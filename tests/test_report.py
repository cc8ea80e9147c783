"""Plots and the report command over fake run directories."""

import json
from pathlib import Path

import numpy as np
import pytest

from oakrl.errors import ConfigError
from oakrl.lab.tables import write_episodes
from oakrl.report.plots import plot_compare, plot_run, short_labels
from oakrl.report.report import RunData, load_run, report

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = Path(path).read_bytes()
    return len(data) > len(PNG) and data.startswith(PNG)


def _episodes(seeds: int, steps: int, every: int | None, offset: float = 0.0) -> dict:
    step = np.tile(np.arange(10, steps + 1, 10), seeds)
    seed = np.repeat(np.arange(seeds), steps // 10)
    task = ((step - 1) // every) % 2 if every else np.zeros_like(step)
    ret = step / 10.0 + seed + offset
    return {"seed": seed, "step": step, "return": ret, "task": task}


def _make_run(
    d: Path, env="CartPole-v1", agent="stream_ac", seeds=2, steps=400, every=100, offset=0.0, summary=True
) -> Path:
    d.mkdir(parents=True)
    schedule = {"kind": "gravity", "every": every, "tasks": 2, "order": "cyclic"} if every else None
    config = {
        "env": env,
        "agent": agent,
        "steps": steps,
        "seeds": seeds,
        "schedule": schedule,
        "continuing": False,
    }
    (d / "config.json").write_text(json.dumps(config))
    write_episodes(d / "episodes.parquet", _episodes(seeds, steps, every, offset))
    if summary:
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "final_return": {"mean": 123.456 + offset, "per_seed": [123.456 + offset] * seeds},
                    "average_reward": {"mean": 0.987, "per_seed": [0.987] * seeds},
                    "steps_per_second": 15321.7,
                }
            )
        )
    return d


def test_plot_run_writes_png(tmp_path):
    run = _make_run(tmp_path / "r")
    out = tmp_path / "curve.png"
    assert plot_run(run, out) == str(out)
    assert _is_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "r"]  # no temporary left


def test_plot_run_from_memory_without_schedule_or_episodes(tmp_path):
    config = {"env": "E", "agent": "A", "steps": 100, "seeds": 1, "schedule": None}
    eps = {"seed": np.zeros(3, int), "step": np.array([10, 50, 100]), "return": np.ones(3)}
    plot_run({"config": config, "episodes": eps}, tmp_path / "a.png")
    assert _is_png(tmp_path / "a.png")
    empty = {k: v[:0] for k, v in eps.items()}
    plot_run({"config": {**config, "seeds": 4}, "episodes": empty}, tmp_path / "b.png")
    assert _is_png(tmp_path / "b.png")


def test_plot_compare_writes_png(tmp_path):
    a = _make_run(tmp_path / "a")
    b = _make_run(tmp_path / "b", agent="stream_q", seeds=5, every=None)
    out = tmp_path / "cmp.png"
    plot_compare([a, load_run(b)], out)
    assert _is_png(out)


def test_short_labels_disambiguate():
    def run(agent, env, path):
        return RunData(config={"agent": agent, "env": env}, episodes={}, path=path)

    assert short_labels([run("ac", "E", "x/1"), run("q", "E", "x/2")]) == ["ac", "q"]
    assert short_labels([run("ac", "E", "x/1"), run("ac", "F", "x/2")]) == ["E", "F"]
    assert short_labels([run("ac", "E", "x/1"), run("ac", "E", "y/2")]) == ["ac/E (1)", "ac/E (2)"]
    assert short_labels([run("ac", "E", "x/1"), run("ac", "E", "y/1")]) == ["ac/E (1) #1", "ac/E (1) #2"]


def test_report_two_runs_table_and_figure(tmp_path):
    a = _make_run(tmp_path / "run_a", env="CartPole-v1")
    b = _make_run(tmp_path / "run_b", env="Acrobot-v1", agent="stream_q", offset=1000.0)
    out = tmp_path / "cmp.png"
    text = report([str(a), str(b)], str(out))
    assert _is_png(out)
    lines = text.splitlines()
    row_a = next(line for line in lines if line.startswith(str(a)))
    row_b = next(line for line in lines if line.startswith(str(b)))
    assert "CartPole-v1" in row_a and "stream_ac" in row_a and "123.5" in row_a
    assert "Acrobot-v1" in row_b and "stream_q" in row_b and "1,123" in row_b
    assert "0.987" in row_a and "15,322" in row_a
    assert "final_return" in lines[0] and "steps/s" in lines[0]


def test_report_default_compare_path(tmp_path, monkeypatch):
    _make_run(tmp_path / "a")
    _make_run(tmp_path / "b", summary=False)
    monkeypatch.chdir(tmp_path)
    text = report(["a", "b"], None)
    assert _is_png(tmp_path / "compare.png")
    # Without summary.json the final return comes from the episodes: seed 0 steps 370..400
    # give 37..40 -> 38.5, seed 1 adds 1 -> 39.5; mean 39.0. Unknown values show as "-".
    row_b = next(line for line in text.splitlines() if line.startswith("b "))
    assert "39.0" in row_b and row_b.split()[-2:] == ["-", "-"]


def test_report_one_run_replots_curve_and_lists_tasks(tmp_path):
    run = _make_run(tmp_path / "r")
    text = report([str(run)], None)
    assert _is_png(run / "curve.png")
    assert "forgetting" in text and "plasticity" in text
    assert str(run / "curve.png") in text
    out = tmp_path / "elsewhere.png"
    report([str(run)], str(out))
    assert _is_png(out)


def test_missing_or_invalid_dir_is_a_config_error(tmp_path):
    good = _make_run(tmp_path / "good")
    with pytest.raises(ConfigError, match="nope.*no such directory"):
        report([str(good), str(tmp_path / "nope")], None)
    assert not (tmp_path / "compare.png").exists()  # checked before anything is written
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty.*config.json is missing"):
        report([str(tmp_path / "empty")], None)
    bad = _make_run(tmp_path / "bad")
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        load_run(bad)
    noeps = _make_run(tmp_path / "noeps")
    (noeps / "episodes.parquet").unlink()
    with pytest.raises(ConfigError, match="noeps.*episodes.parquet is missing"):
        load_run(noeps)
    with pytest.raises(ConfigError, match="at least one"):
        report([], None)
    with pytest.raises(ConfigError, match="must end in"):
        report([str(good)], str(tmp_path / "out.txt"))


def test_rooms_drawing_lives_with_reporting(tmp_path):
    from oakrl.report.rooms import plot_options, render_option

    q = np.zeros((4, 169), np.float32)
    q[1, 1 * 13 + 1] = 1.0  # in cell (1, 1) the option goes right (">")
    theta = np.zeros(169, np.float32)
    text = render_option(q, theta - 1.0, 1 * 13 + 3, 1.0).splitlines()
    assert text[1][1] == ">" and text[1][3] == "*"  # its action, its target's cell
    path = plot_options(tmp_path / "options.png", [("option 0", q, theta, 1 * 13 + 3, 1.0)], "t")
    assert path == str(tmp_path / "options.png") and _is_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["options.png"]  # atomically, no temporary left
