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
