"""Metrics on synthetic episode tables whose right answers are worked out by hand."""

import json
import math

import numpy as np
import pytest

from oakrl.lab.metrics import (
    binned_curve,
    final_return,
    segment_tasks,
    summarize_episodes,
    task_metrics,
    task_visits,
)
from oakrl.lab.tables import read_episodes, write_episodes

# ---------------------------------------------------------------------------------- final return


def test_final_return_seed_without_late_episode_is_none():
    # steps=100, last 10%: step > 90. Step 90 itself is out.
    seed = np.array([0, 0, 0, 1, 1, 2])
    step = np.array([50, 95, 100, 50, 90, 91])
    ret = np.array([1.0, 10.0, 20.0, 7.0, 8.0, 4.0])
    out = final_return(seed, step, ret, seeds=3, steps=100)
    assert out["per_seed"] == [15.0, None, 4.0]
    assert out["mean"] == pytest.approx(9.5)  # seed 1 left out, not counted as 0


def test_final_return_fraction_and_no_episodes():
    seed, step, ret = np.array([0, 0]), np.array([40, 60]), np.array([2.0, 6.0])
    assert final_return(seed, step, ret, 1, 100, fraction=0.5)["per_seed"] == [6.0]
    assert final_return(seed, step, ret, 1, 100, fraction=1.0)["per_seed"] == [4.0]
    empty = np.array([], dtype=int)
    assert final_return(empty, empty, empty.astype(float), 2, 100) == {"mean": None, "per_seed": [None, None]}


def test_seed_ids_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="seed ids"):
        final_return(np.array([0, 2]), np.array([1, 2]), np.array([1.0, 1.0]), 2, 10)


# ---------------------------------------------------------------------------------- tasks


def _cyclic_two_tasks(scale: float = 1.0):
    """steps=400, every=100, tasks 0,1,0,1; an episode every 10 steps.

    task 0, visit 1 (0,100]:   returns 1..10 (rising)
    task 1, visit 1 (100,200]: returns 3 (flat)
    task 0, visit 2 (200,300]: returns 5..14 (dropped from 10 to 5 on return, then rising)
    task 1, visit 2 (300,400]: returns 1..10
    """
    step = np.arange(10, 401, 10)
    ret = np.concatenate([np.arange(1, 11), np.full(10, 3), np.arange(5, 15), np.arange(1, 11)])
    task = ((step - 1) // 100) % 2
    return step, ret.astype(float) * scale, task


def test_task_metrics_cyclic_by_hand():
    step, ret, task = _cyclic_two_tasks()
    s2, r2, t2 = _cyclic_two_tasks(scale=2.0)  # seed 1: every return doubled
    seed = np.r_[np.zeros_like(step), np.ones_like(s2)]
    out = task_metrics(
        seed, np.r_[step, s2], np.r_[ret, r2], np.r_[task, t2], seeds=2, steps=400, every=100, tasks=2
    )
    t0, t1 = out
    assert t0["task"] == 0 and t0["visits"] == 2 and t0["visits_per_seed"] == [2, 2]
    # Last quarter of a 100-step visit: steps > end-25 -> 3 episodes; first quarter: 2.
    # task 0 final: last quarter of visit 2 = mean(12, 13, 14) = 13
    assert t0["final_return"]["per_seed"] == pytest.approx([13.0, 26.0])
    assert t0["final_return"]["mean"] == pytest.approx(19.5)
    # forgetting: end of visit 1 mean(8,9,10)=9 minus start of visit 2 mean(5,6)=5.5 -> 3.5
    assert t0["forgetting"]["per_seed"] == pytest.approx([3.5, 7.0])
    # plasticity: min on task 0 is 1; areas mean(5..14)-1 = 8.5 and mean(1..10)-1 = 4.5.
    # Scale-invariant, so seed 1 has the same value.
    assert t0["plasticity"]["per_seed"] == pytest.approx([8.5 / 4.5, 8.5 / 4.5])
    # task 1: end of visit 1 = 3, start of visit 2 = mean(1,2) = 1.5 -> forgot 1.5
    assert t1["forgetting"]["per_seed"] == pytest.approx([1.5, 3.0])
    assert t1["forgetting"]["mean"] == pytest.approx(2.25)
    assert t1["final_return"]["per_seed"] == pytest.approx([9.0, 18.0])
    # min on task 1 is 1: areas 5.5-1 = 4.5 (last) and 3-1 = 2 (first)
    assert t1["plasticity"]["mean"] == pytest.approx(2.25)
    json.dumps(out)  # JSON-serialisable as it is
    assert type(t0["forgetting"]["mean"]) is float


def test_task_metrics_random_order_merges_consecutive_segments():
    # Segments (every=100) with tasks 0, 0, 1, 0; an episode every 20 steps; tasks=3 and task 2
    # is never visited.
    step = np.arange(20, 401, 20)
    task = np.array([0, 0, 1, 0])[(step - 1) // 100]
    ret = np.zeros(step.size)
    ret[step <= 200] = step[step <= 200] / 20  # 1..10 over the first visit (0,200]
    ret[(step > 200) & (step <= 300)] = 7.0
    ret[step > 300] = [2, 3, 4, 5, 6]  # steps 320..400
    seed = np.zeros_like(step)
    t0, t1, t2 = task_metrics(seed, step, ret, task, seeds=1, steps=400, every=100, tasks=3)
    assert t0["visits"] == 2  # (0,200] and (300,400]
    # end of visit 1: steps > 150 -> 160,180,200 -> 8,9,10 -> 9; start of visit 2: step <= 325
    # -> 320 -> 2
    assert t0["forgetting"]["mean"] == pytest.approx(7.0)
    assert t0["final_return"]["mean"] == pytest.approx(5.5)  # steps 380, 400
    # min 1: areas mean(2..6)-1 = 3 and mean(1..10)-1 = 4.5
    assert t0["plasticity"]["mean"] == pytest.approx(3 / 4.5)
    assert t1["visits"] == 1
    assert t1["forgetting"] == {"mean": None, "per_seed": [None]}
    assert t1["plasticity"] == {"mean": None, "per_seed": [None]}
    assert t1["final_return"]["mean"] == pytest.approx(7.0)
    assert t2["visits"] == 0 and t2["final_return"]["mean"] is None


def test_visits_bridge_segments_without_episodes():
    # Segment 1 has no episode: 0, ?, 0, 1 -> task 0 is one visit (0,300]; 1 then (300,400].
    step = np.array([50, 100, 250, 300, 350])
    task = np.array([0, 0, 0, 0, 1])
    ret = np.arange(5.0)
    assert segment_tasks(step, task, 400, 100).tolist() == [0, -1, 0, 1]
    visits = task_visits(step, ret, task, 400, 100)
    assert [(v.task, v.start, v.end) for v in visits] == [(0, 0, 300), (1, 300, 400)]
    # 0, ?, 1: two visits, the unknown segment belongs to neither.
    visits = task_visits(np.array([50, 250]), np.array([1.0, 2.0]), np.array([0, 1]), 300, 100)
    assert [(v.task, v.start, v.end) for v in visits] == [(0, 0, 100), (1, 200, 300)]


def test_quarter_without_episode_uses_nearest_episode_and_last_segment_is_partial():
    # steps=250, every=100: segments (0,100], (100,200], (200,250] with tasks 0, 1, 0. No
    # episode ends in any quarter of task 0's visits: the nearest episode stands in.
    step = np.array([40, 60, 150, 220, 230])
    task = np.array([0, 0, 1, 0, 0])
    ret = np.array([1.0, 10.0, 0.0, 4.0, 8.0])
    visits = task_visits(step, ret, task, 250, 100)
    assert [(v.task, v.start, v.end) for v in visits] == [(0, 0, 100), (1, 100, 200), (0, 200, 250)]
    t0 = task_metrics(np.zeros(5), step, ret, task, 1, 250, 100, 2)[0]
    assert t0["forgetting"]["mean"] == pytest.approx(6.0)  # 10 (last of visit 1) - 4 (first)
    assert t0["final_return"]["mean"] == pytest.approx(8.0)  # last episode of visit 2


def test_quarter_boundaries():
    # Visit (0,100]: first quarter is (0,25] (25 in), last quarter (75,100] (75 out).
    # Visit (200,300]: first quarter (200,225] holds 210 and 225, not 226.
    step = np.array([25, 50, 75, 100, 150, 210, 225, 226, 275, 300])
    task = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    ret = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 6.0, 9.0, 7.0, 8.0])
    t0 = task_metrics(np.zeros(10), step, ret, task, 1, 300, 100, 2)[0]
    assert t0["forgetting"]["mean"] == pytest.approx(4.0 - 5.5)  # came back better: negative
    assert t0["final_return"]["mean"] == pytest.approx(8.0)  # 275 is out of (275, 300]


def test_seeds_with_their_own_random_order():
    # seed 0: tasks 0, 1, 0 -> task 0 visited twice; seed 1: tasks 0, 0, 1 -> once.
    step = np.array([50, 150, 250, 50, 150, 250])
    seed = np.array([0, 0, 0, 1, 1, 1])
    task = np.array([0, 1, 0, 0, 0, 1])
    ret = np.array([4.0, 0.0, 1.0, 2.0, 3.0, 0.0])
    t0 = task_metrics(seed, step, ret, task, 2, 300, 100, 2)[0]
    assert t0["visits_per_seed"] == [2, 1] and t0["visits"] == 2
    assert t0["forgetting"] == {"mean": 3.0, "per_seed": [3.0, None]}
    assert t0["final_return"]["per_seed"] == [1.0, 3.0]


def test_segment_task_is_majority_of_its_episodes():
    # An off-by-one in the lab would put one episode of the old task in the new segment.
    step = np.array([10, 100, 110, 150, 190])
    task = np.array([0, 1, 1, 1, 0])  # segment 0: tie 0/1 -> latest (1); segment 1: 1,1,0 -> 1
    assert segment_tasks(step, task, 200, 100).tolist() == [1, 1]


def test_plasticity_negative_returns_and_flat_first_visit():
    # Negative returns: first visit -10..-1, second -5..-1 (every=10, an episode per step).
    step = np.arange(1, 31)
    task = np.array([0, 1, 0])[(step - 1) // 10]
    ret = np.r_[np.arange(-10.0, 0.0), np.zeros(10), np.linspace(-5.0, -1.0, 10)]
    t0 = task_metrics(np.zeros(30), step, ret, task, 1, 30, 10, 2)[0]
    # min -10: areas mean(-5..-1)+10 = 7 and mean(-10..-1)+10 = 4.5
    assert t0["plasticity"]["mean"] == pytest.approx(7 / 4.5)
    # The first visit flat at the task's minimum: area 0, ratio undefined.
    ret2 = np.r_[np.full(10, -3.0), np.zeros(10), np.linspace(-3.0, 5.0, 10)]
    t0 = task_metrics(np.zeros(30), step, ret2, task, 1, 30, 10, 2)[0]
    assert t0["plasticity"]["mean"] is None
    # Forgetting is still defined, and right: catches it dropped along with plasticity, or taken
    # over the wrong quarters. The last quarter of visit 1 (-3) minus the first quarter of visit 2
    # (the episodes ending at steps 21, 22: -3 and -19/9).
    assert t0["forgetting"]["mean"] == pytest.approx(-3.0 - (-3.0 - 19 / 9) / 2)


# ---------------------------------------------------------------------------------- curve


def test_binned_curve_forward_fill_and_min_max():
    # steps=10, bins=5: bin j covers (2j, 2j+2].
    seed = np.array([0, 0, 0, 1])
    step = np.array([1, 2, 7, 5])
    ret = np.array([1.0, 3.0, 5.0, 10.0])
    centers, mean, lo, hi = binned_curve(seed, step, ret, seeds=2, steps=10, bins=5)
    assert centers.tolist() == [1, 3, 5, 7, 9]
    # seed 0: [2, 2, 2, 5, 5] (forward-filled); seed 1: [nan, nan, 10, 10, 10]
    assert mean.tolist() == pytest.approx([2, 2, 6, 7.5, 7.5])
    assert lo.tolist() == pytest.approx([2, 2, 2, 5, 5])
    assert hi.tolist() == pytest.approx([2, 2, 10, 10, 10])


def test_binned_curve_nan_before_first_episode_and_percentiles():
    seed = np.array([0, 1, 2, 3])
    step = np.array([6, 6, 6, 6])
    ret = np.array([0.0, 1.0, 2.0, 3.0])
    _, mean, lo, hi = binned_curve(seed, step, ret, seeds=4, steps=10, bins=5)
    assert np.isnan(mean[:2]).all() and np.isnan(lo[:2]).all() and np.isnan(hi[:2]).all()
    assert mean[2:].tolist() == pytest.approx([1.5] * 3)
    assert lo[2] == pytest.approx(0.75) and hi[2] == pytest.approx(2.25)  # 25th/75th


# ---------------------------------------------------------------------------------- files


def test_episodes_parquet_roundtrip_is_atomic_and_typed(tmp_path):
    path = tmp_path / "episodes.parquet"
    cols = {"seed": [0, 1], "step": [5, 9], "return": [1.5, -2.0], "task": [0, 1]}
    write_episodes(path, cols)
    write_episodes(path, cols)  # overwriting works too
    assert [p.name for p in tmp_path.iterdir()] == ["episodes.parquet"]  # no temporary left
    back = read_episodes(path)
    assert back["seed"].dtype == np.int32 and back["step"].dtype == np.int64
    assert back["return"].dtype == np.float32 and back["task"].dtype == np.int32
    assert back["return"].tolist() == [1.5, -2.0] and back["step"].tolist() == [5, 9]
    write_episodes(path, {"seed": [0], "step": [3], "return": [1.0]})
    assert read_episodes(path)["task"].tolist() == [0]  # no schedule: task 0


def test_summarize_episodes():
    step, ret, task = _cyclic_two_tasks()
    cols = {"seed": np.zeros_like(step), "step": step, "return": ret, "task": task}
    config = {
        "steps": 400,
        "seeds": 1,
        "schedule": {"kind": "x", "every": 100, "tasks": 2, "order": "cyclic"},
    }
    out = summarize_episodes(cols, config)
    assert out["episodes"] == 40
    assert out["final_return"]["mean"] == pytest.approx(8.5)  # steps 370..400 -> 7,8,9,10
    assert len(out["tasks"]) == 2
    assert summarize_episodes(cols, {**config, "schedule": None})["tasks"] is None
    assert not math.isnan(json.loads(json.dumps(out))["tasks"][0]["forgetting"]["mean"])
