"""Metrics over a run's episode records: what a researcher reads about a lifetime of learning.

Everything here is plain numpy over four parallel 1-D arrays, one entry per finished episode
(for continuing worlds: per reporting window of fixed length):

* ``seed``   int, which seed's stream the episode belongs to, in ``0 .. seeds-1``;
* ``step``   int, the number of agent steps that seed had taken when the episode ended,
  in ``1 .. steps``;
* ``ret``    float, the episode's (undiscounted) return;
* ``task``   int, the task in force when the episode ended (0 without a schedule).

These are the columns of a run's ``episodes.parquet`` (oakrl/lab/tables.py reads and writes
it), but no file is needed to use the metrics.

Conventions shared by all metrics:

* A window of steps ``(a, b]`` holds the episodes whose ``step`` satisfies ``a < step <= b``:
  an episode is counted where it *ends*.
* Per-seed values come first; the reported ``mean`` is the plain mean of the per-seed values
  that are defined (``None`` entries are left out, not counted as zero). ``mean`` is ``None``
  when no seed has a value.
* Return values are JSON-serialisable (``float``/``int``/``None`` and lists of them), so the lab
  writes them to ``summary.json`` unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

# Plasticity is undefined when the first visit's area is this small relative to the task's
# return range (the ratio would be a division by ~0).
_PLASTICITY_EPS = 1e-6


# --------------------------------------------------------------------------------------------
# small helpers


def _check(
    seed: np.ndarray, step: np.ndarray, ret: np.ndarray, seeds: int, *extra: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Coerce the columns to 1-D arrays of one length; reject seed ids outside 0..seeds-1."""
    cols = [
        np.asarray(seed).astype(np.int64, copy=False).ravel(),
        np.asarray(step).astype(np.int64, copy=False).ravel(),
        np.asarray(ret).astype(np.float64, copy=False).ravel(),
    ]
    cols += [np.asarray(e).astype(np.int64, copy=False).ravel() for e in extra]
    n = cols[0].size
    if any(c.size != n for c in cols):
        raise ValueError(f"episode columns differ in length: {[c.size for c in cols]}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if n and (cols[0].min() < 0 or cols[0].max() >= seeds):
        raise ValueError(f"seed ids must lie in 0..{seeds - 1}, got {cols[0].min()}..{cols[0].max()}")
    return tuple(cols)


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if x.size else None


def _over_seeds(per_seed: list[float | None]) -> dict[str, Any]:
    """``{"mean": mean of the defined per-seed values or None, "per_seed": per_seed}``."""
    vals = [v for v in per_seed if v is not None]
    return {"mean": float(np.mean(vals)) if vals else None, "per_seed": per_seed}


# --------------------------------------------------------------------------------------------
# final return


def final_return(
    seed: np.ndarray,
    step: np.ndarray,
    ret: np.ndarray,
    seeds: int,
    steps: int,
    fraction: float = 0.1,
) -> dict[str, Any]:
    """Performance at the end of the lifetime.

    Definition: for each seed, the mean return of the episodes that end in the last
    ``fraction`` of its stream, i.e. with ``step > steps * (1 - fraction)``. A seed with no
    episode ending there (e.g. one long unfinished episode) gets ``None``: it is left out of
    the mean rather than counted as 0. ``mean`` is the mean over the seeds that have a value,
    ``None`` when none has.

    Returns ``{"mean": float | None, "per_seed": [float | None] * seeds}``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    seed, step, ret = _check(seed, step, ret, seeds)
    # Rounded so that e.g. 1000 * (1 - 0.1) is exactly 900, not 899.999...: step 900 is out.
    cut = round(steps * (1.0 - fraction), 9)
    late = step > cut
    per_seed = [_mean(ret[(seed == s) & late]) for s in range(seeds)]
    return _over_seeds(per_seed)


# --------------------------------------------------------------------------------------------
# task structure: segments and visits


def segment_tasks(step: np.ndarray, task: np.ndarray, steps: int, every: int) -> np.ndarray:
    """The task of each schedule segment, read from one seed's episodes.

    Segment ``i`` covers steps ``(i*every, min((i+1)*every, steps)]``; there are
    ``ceil(steps / every)`` of them. Its task is the task of the episodes that end in it (the
    most common one should they disagree, ties going to the latest episode's task); ``-1``
    when no episode ends in it, as its task is then unknown.

    Shapes: ``step``, ``task``: ``(n,)`` for one seed; result ``(ceil(steps/every),)`` int64.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    step = np.asarray(step, dtype=np.int64).ravel()
    task = np.asarray(task, dtype=np.int64).ravel()
    n_seg = max(1, math.ceil(steps / every))
    seg = np.clip((step - 1) // every, 0, n_seg - 1)
    out = np.full(n_seg, -1, dtype=np.int64)
    if step.size == 0:
        return out
    order = np.lexsort((step, seg))  # by segment, then by ending step
    seg, task = seg[order], task[order]
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    for i, tasks_here in zip(seg[starts].tolist(), np.split(task, starts[1:]), strict=True):
        if tasks_here[0] == tasks_here[-1] and np.all(tasks_here == tasks_here[0]):
            out[i] = tasks_here[0]  # the usual case: one task per segment
            continue
        values, counts = np.unique(tasks_here, return_counts=True)
        winners = set(values[counts == counts.max()].tolist())
        # Ties: the latest episode's task among the most common ones.
        out[i] = next(t for t in tasks_here[::-1].tolist() if t in winners)
    return out


@dataclass(frozen=True)
class Visit:
    """One visit of a task by one seed: the steps ``(start, end]`` and the episodes ending there.

    ``steps`` and ``returns`` are sorted by step, shape ``(n,)`` with ``n >= 1``.
    """

    task: int
    start: int
    end: int
    steps: np.ndarray
    returns: np.ndarray

    def _quarter(self, last: bool) -> np.ndarray:
        q = (self.end - self.start) / 4.0
        mask = self.steps > self.end - q if last else self.steps <= self.start + q
        if mask.any():
            return self.returns[mask]
        # A quarter without any episode end (long episodes): the nearest episode stands in.
        return self.returns[-1:] if last else self.returns[:1]

    def first_quarter(self) -> float:
        """Mean return of episodes ending in the first quarter of the visit's steps."""
        return float(np.mean(self._quarter(last=False)))

    def last_quarter(self) -> float:
        """Mean return of episodes ending in the last quarter of the visit's steps."""
        return float(np.mean(self._quarter(last=True)))


def task_visits(step: np.ndarray, ret: np.ndarray, task: np.ndarray, steps: int, every: int) -> list[Visit]:
    """Split one seed's episodes into visits, in order of time.

    A visit of task ``k`` is a maximal run of consecutive segments (see :func:`segment_tasks`)
    whose task is ``k``. Segments in which no episode ended have no known task; they do not
    break a run (with no evidence of a switch, none is assumed), so ``k, ?, k`` is one visit,
    while ``k, ?, j`` gives two visits that leave the unknown segment out.

    Shapes: ``step``, ``ret``, ``task``: ``(n,)`` for one seed.
    """
    step = np.asarray(step, dtype=np.int64).ravel()
    ret = np.asarray(ret, dtype=np.float64).ravel()
    seg_task = segment_tasks(step, task, steps, every)
    n_seg = seg_task.size
    seg = np.clip((step - 1) // every, 0, n_seg - 1)
    # Runs of known segments: (task, first segment, last segment).
    runs: list[list[int]] = []
    for i, t in enumerate(seg_task.tolist()):
        if t < 0:
            continue
        if runs and runs[-1][0] == t:
            runs[-1][2] = i
        else:
            runs.append([t, i, i])
    visits = []
    for t, first, last in runs:
        mask = (seg >= first) & (seg <= last)
        order = np.argsort(step[mask], kind="stable")
        visits.append(
            Visit(
                task=t,
                start=first * every,
                end=min((last + 1) * every, steps),
                steps=step[mask][order],
                returns=ret[mask][order],
            )
        )
    return visits


def _forgetting(vs: list[Visit]) -> float | None:
    drops = [prev.last_quarter() - nxt.first_quarter() for prev, nxt in pairwise(vs)]
    return float(np.mean(drops)) if drops else None


def _plasticity(vs: list[Visit]) -> float | None:
    if len(vs) < 2:
        return None
    all_ret = np.concatenate([v.returns for v in vs])
    lo, span = float(all_ret.min()), float(all_ret.max() - all_ret.min())
    first = float(np.mean(vs[0].returns)) - lo
    last = float(np.mean(vs[-1].returns)) - lo
    if span == 0.0 or first <= _PLASTICITY_EPS * span:
        return None
    return last / first


def task_metrics(
    seed: np.ndarray,
    step: np.ndarray,
    ret: np.ndarray,
    task: np.ndarray,
    seeds: int,
    steps: int,
    every: int,
    tasks: int,
) -> list[dict[str, Any]]:
    """Per-task performance, forgetting and plasticity under a task schedule.

    Structure: segment ``i`` covers steps ``(i*every, (i+1)*every]``; its task is read from the
    ``task`` column of the episodes ending in it (the schedule may be in random order, and each
    seed may have its own order). A *visit* of task ``k`` is a maximal run of consecutive
    segments with task ``k`` (see :func:`task_visits`); a visit ``(a, b]`` has length
    ``L = b - a``. Its *first quarter* is the mean return of the episodes ending in
    ``(a, a + L/4]``, its *last quarter* that of ``(b - L/4, b]``; when no episode ends in that
    quarter, the visit's first (resp. last) episode stands in.

    For each task ``k`` in ``0 .. tasks-1``, per seed:

    * ``final_return``: the last quarter of the task's last visit. ``None`` if never visited.
    * ``forgetting``: over each return to the task (visit ``j >= 2``), the last quarter of
      visit ``j-1`` minus the first quarter of visit ``j``, averaged over the returns.
      Positive means the agent forgot (it came back worse than it left); negative means it came
      back better (e.g. transfer from the other tasks). ``None`` if the task is never revisited.
    * ``plasticity``: how fast the task is learned on its last visit compared with its first:
      ``area(last visit) / area(first visit)``, where ``area(v)`` is the mean return of the
      episodes ending in visit ``v`` (the area under its learning curve, per episode) minus
      ``m``, the lowest return the seed ever had on the task across all its visits. Subtracting
      ``m`` makes both areas >= 0, so the ratio is well defined for negative returns too and does
      not change when all returns are shifted by a constant; it also means the value depends on
      the worst episode seen. ``1.0``: learned as fast as the first time; below 1: slower (lost
      plasticity); above 1: faster. ``None`` with a single visit, or when the first visit's
      area is ~0 (``<= 1e-6 *`` the task's return range: it never rose above its worst).

    Each metric is ``{"mean": float | None, "per_seed": [float | None] * seeds}``, ``mean``
    being over the seeds with a value. ``visits`` is the largest number of visits of the task by
    any seed (seeds agree under a cyclic schedule), ``visits_per_seed`` the count per seed.

    Returns a list of ``tasks`` dicts with keys ``task``, ``visits``, ``visits_per_seed``,
    ``final_return``, ``forgetting``, ``plasticity``.
    """
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks}")
    seed, step, ret, task = _check(seed, step, ret, seeds, task)
    per_seed_visits = [
        task_visits(step[seed == s], ret[seed == s], task[seed == s], steps, every) for s in range(seeds)
    ]
    out = []
    for k in range(tasks):
        of_k = [[v for v in vs if v.task == k] for vs in per_seed_visits]
        counts = [len(vs) for vs in of_k]
        out.append(
            {
                "task": k,
                "visits": max(counts),
                "visits_per_seed": counts,
                "final_return": _over_seeds([vs[-1].last_quarter() if vs else None for vs in of_k]),
                "forgetting": _over_seeds([_forgetting(vs) for vs in of_k]),
                "plasticity": _over_seeds([_plasticity(vs) for vs in of_k]),
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# learning curve


def binned_curve(
    seed: np.ndarray,
    step: np.ndarray,
    ret: np.ndarray,
    seeds: int,
    steps: int,
    bins: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The learning curve over the lifetime: return against agent steps, over seeds.

    The stream ``(0, steps]`` is cut into ``bins`` equal bins; bin ``j`` covers
    ``(j*steps/bins, (j+1)*steps/bins]``. Per seed, a bin's value is the mean return of the
    episodes ending in it; an empty bin repeats the previous bin's value (the agent's last known
    performance), and bins before the seed's first episode are NaN. Over seeds: ``mean`` is the
    mean of the seeds with a value, and the spread ``(lo, hi)`` is the min/max over seeds, or
    the 25th/75th percentiles when ``seeds >= 4``. Bins where no seed has a value are NaN.

    Returns ``(centers, mean, lo, hi)``, each of shape ``(bins,)``; ``centers`` are the bins'
    mid-points in steps.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    seed, step, ret = _check(seed, step, ret, seeds)
    edges = np.linspace(0.0, float(steps), bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2.0
    # Integer arithmetic for the bin index, so bin edges are exact: j = ceil(step*bins/steps)-1.
    idx = np.clip((step * bins - 1) // max(steps, 1), 0, bins - 1)
    per_seed = np.full((seeds, bins), np.nan)
    for s in range(seeds):
        m = seed == s
        total = np.bincount(idx[m], weights=ret[m], minlength=bins)
        count = np.bincount(idx[m], minlength=bins)
        row = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        per_seed[s] = _forward_fill(row)
    have = ~np.isnan(per_seed)
    n = have.sum(axis=0)
    mean = np.where(n > 0, np.where(have, per_seed, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    with warnings.catch_warnings():
        # All-NaN bins (before any episode) are expected; their NaN result is what we want.
        warnings.simplefilter("ignore", RuntimeWarning)
        if seeds >= 4:
            lo, hi = np.nanpercentile(per_seed, [25, 75], axis=0)
        else:
            lo, hi = np.nanmin(per_seed, axis=0), np.nanmax(per_seed, axis=0)
    return centers, mean, lo, hi


def _forward_fill(row: np.ndarray) -> np.ndarray:
    """Replace each NaN by the last non-NaN value before it (leading NaNs stay)."""
    valid = ~np.isnan(row)
    last = np.maximum.accumulate(np.where(valid, np.arange(row.size), -1))
    return np.where(last >= 0, row[np.maximum(last, 0)], np.nan)


# --------------------------------------------------------------------------------------------
# summary helper for the lab


def summarize_episodes(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> dict[str, Any]:
    """The episode metrics of a run, as they go into ``summary.json``.

    ``columns`` holds ``seed``, ``step``, ``return`` and ``task`` (see :func:`read_episodes`);
    ``config`` holds ``steps``, ``seeds`` and ``schedule`` (``None`` or a dict with ``every``
    and ``tasks``). Returns ``{"episodes": int, "final_return": ..., "tasks": [...] | None}``,
    ``tasks`` being :func:`task_metrics` when there is a schedule.
    """
    seeds, steps = int(config["seeds"]), int(config["steps"])
    seed, step, ret = columns["seed"], columns["step"], columns["return"]
    out: dict[str, Any] = {
        "episodes": int(np.asarray(seed).size),
        "final_return": final_return(seed, step, ret, seeds, steps),
        "tasks": None,
    }
    schedule = config.get("schedule")
    if schedule:
        task = columns.get("task", np.zeros_like(np.asarray(seed)))
        out["tasks"] = task_metrics(
            seed, step, ret, task, seeds, steps, int(schedule["every"]), int(schedule["tasks"])
        )
    return out


# --------------------------------------------------------------------------------------------
# learners sharing one world


def learner_rates(
    diagnostics: Mapping[str, np.ndarray], seeds: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each learner's reward per step, chunk by chunk, from a multi-learner run's diagnostics.

    ``diagnostics``: the columns of ``diagnostics.parquet`` (``seed``, ``step`` = steps done at
    the chunk's end, and ``l{i}/reward``, learner i's chunk-mean reward per step, which the
    joint agent reports). Returns ``{i: (ends [C], rate [seeds, C])}``; {} for a run of one
    learner.
    """
    keys = sorted(
        (int(k[1:].split("/")[0]), k)
        for k in diagnostics
        if k.startswith("l") and k.endswith("/reward") and k[1:].split("/")[0].isdigit()
    )
    if not keys:
        return {}
    seed = np.asarray(diagnostics["seed"], np.int64)
    step = np.asarray(diagnostics["step"], np.int64)
    ends = np.unique(step)
    out = {}
    for i, key in keys:
        rate = np.full((seeds, ends.size), np.nan)
        rate[seed, np.searchsorted(ends, step)] = np.asarray(diagnostics[key], np.float64)
        out[i] = (ends, rate)
    return out


def learner_summary(
    diagnostics: Mapping[str, np.ndarray],
    seeds: int,
    agents: list[str],
    options: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]] | None:
    """Per learner: its agent (and its own options, where given), its lifetime average reward
    per step (chunk means weighted by chunk length) and its reward rate over the last chunk,
    each per seed and their mean. None for a run of one learner. ``agents``: one name per
    learner; ``options``: one table per learner (learner_options)."""
    rates = learner_rates(diagnostics, seeds)
    if not rates:
        return None
    out = []
    for i, (ends, rate) in rates.items():
        lengths = np.diff(np.concatenate([[0], ends])).astype(np.float64)
        lifetime = [
            float(np.nansum(r * lengths) / np.sum(lengths[np.isfinite(r)])) if np.isfinite(r).any() else None
            for r in rate
        ]
        last = [float(r[-1]) if math.isfinite(r[-1]) else None for r in rate]
        row = {"learner": i, "agent": agents[i] if i < len(agents) else None}
        if options is not None and i < len(options) and options[i]:
            row["options"] = dict(options[i])
        out.append({**row, "average_reward": _over_seeds(lifetime), "final_reward_rate": _over_seeds(last)})
    return out


def learner_agents(config: Mapping[str, Any]) -> list[str]:
    """One agent name per learner, from a run's config (the joint agent's `agents` option)."""
    agent = str(config.get("agent"))
    if agent == "joint":  # the agents option is recorded only where it is not the default
        from oakrl.agents.joint import JointConfig

        given = (config.get("agent_options") or {}).get("agents")
        agent = str(given or (config.get("agent_config") or {}).get("agents") or JointConfig.agents)
    names = [a.strip() for a in agent.split(",") if a.strip()]
    return names if len(names) > 1 else names * max(int(config.get("learners") or 1), 1)


def learner_options(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each learner's own options from a run's config (the joint agent's `learner_options`)."""
    given = (config.get("agent_options") or {}).get("learner_options") or {}
    return [dict(given.get(str(i)) or {}) for i in range(len(learner_agents(config)))]
