"""A progress bar for `execute`'s events: steps done, agent-steps per second, recent return.

    with ProgressBar(console, "stream-q on CartPole-v1 x4", steps, seeds) as bar:
        result = execute(plan, bar)          # the bar is the event callback

The rate counts only the stream since it started (compilation excluded) and since a resume.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from oakrl.lab.run import ChunkDone, Event, Started


class ProgressBar:
    def __init__(self, console: Any, label: str, steps: int, seeds: int):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.label, self.seeds = label, seeds
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} steps"),
            TextColumn("{task.fields[sps]}"),
            TextColumn("{task.fields[ret]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.bar = self.progress.add_task(f"{label} (compiling)", total=steps, sps="", ret="")
        self.recent: list[float] = []
        self.t0, self.step0 = 0.0, 0

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, Started):
            self.t0, self.step0 = now, event.step
            self.progress.update(self.bar, completed=event.step, description=self.label)
        elif isinstance(event, ChunkDone):
            self.recent.extend(np.asarray(event.record.ret).tolist())
            del self.recent[:-100]
            rate = (event.step - self.step0) * self.seeds / max(now - self.t0, 1e-9)
            ret = f"return {np.mean(self.recent):.1f}" if self.recent else "return -"
            self.progress.update(self.bar, completed=event.step, sps=f"{rate:,.0f} steps/s", ret=ret)


class PlainProgress:
    """For logs (stderr not a terminal: a cluster job, a pipe): one plain line per chunk, flushed.

        stream-q on CartPole-v1 x4: step 20,000/100,000 | 14,210 steps/s | return 131.5

    A progress bar there is cut with "..." and shown only at the end; these lines appear as the
    run goes, at most one per `min_seconds` (the first and last always).
    """

    def __init__(self, stream: Any, label: str, steps: int, seeds: int, min_seconds: float = 0.0):
        self.stream, self.label, self.steps, self.seeds = stream, label, steps, seeds
        self.min_seconds = min_seconds
        self.recent: list[float] = []
        self.t0, self.step0, self.last = 0.0, 0, -float("inf")

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stream.flush()

    def _line(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, Started):
            self.t0, self.step0 = now, event.step
            self._line(f"compiled in {event.compile_seconds:.1f} s; step {event.step:,}/{self.steps:,}")
        elif isinstance(event, ChunkDone):
            self.recent.extend(np.asarray(event.record.ret).tolist())
            del self.recent[:-100]
            if now - self.last < self.min_seconds and event.step < self.steps:
                return
            self.last = now
            rate = (event.step - self.step0) * self.seeds / max(now - self.t0, 1e-9)
            ret = f"return {np.mean(self.recent):.1f}" if self.recent else "return -"
            self._line(f"step {event.step:,}/{self.steps:,} | {rate:,.0f} steps/s | {ret}")
