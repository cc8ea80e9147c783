"""oakrl.io: every file appears whole or not at all, under a temporary name the lab can clean up."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from oakrl import io


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    io.write_json(path, {"a": np.float32(0.5), "n": np.int64(3)})
    assert json.loads(path.read_text()) == {"a": 0.5, "n": 3}
    assert path.read_text().endswith("}\n")
    with pytest.raises(TypeError):  # not JSON: the old file must survive
        io.write_json(path, {"b": 1, "c": object()})
    assert json.loads(path.read_text()) == {"a": 0.5, "n": 3}
    assert _names(tmp_path) == ["summary.json"]


def test_the_temporary_is_hidden_next_to_the_target_with_its_suffix(tmp_path):
    # oakrl.lab's clean_temporaries removes a killed run's leftovers by exactly this shape:
    # a leading dot, then the target's stem up to the first dot.
    with io.atomic_path(tmp_path / "episodes.parquet") as tmp:
        tmp = Path(tmp)
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".") and tmp.name[1:].split(".", 1)[0] == "episodes"
        assert tmp.suffix == ".parquet"
        tmp.write_bytes(b"x")
        assert not (tmp_path / "episodes.parquet").exists()  # nothing visible until the end
    assert (tmp_path / "episodes.parquet").read_bytes() == b"x"
    assert _names(tmp_path) == ["episodes.parquet"]


def test_an_interrupted_writer_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), io.atomic_path(tmp_path / "c.npz") as tmp:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_table_and_figure_round_trip(tmp_path):
    import pyarrow.parquet as pq
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    io.write_table(tmp_path / "t.parquet", {"step": np.arange(3), "ret": np.ones(3, np.float32)})
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.column("step").to_pylist() == [0, 1, 2]
    fig = Figure()
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1])
    assert io.save_figure(fig, tmp_path / "f.svg") == str(tmp_path / "f.svg")
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:500]  # the suffix chose the format
    assert _names(tmp_path) == ["f.svg", "t.parquet"]


def test_machine_names_where_figures_were_measured():
    from oakrl.lab.files import machine

    m = machine()
    assert set(m) == {"platform", "processor", "cpus", "jax", "backend"}
    assert m["cpus"] == os.cpu_count() and m["backend"] == "cpu"
