"""A rich progress bar per pass of a partitioned run: partitions done and rows per second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from shadowbill.reconcile.executors import Progress as ProgressCallback

_LABELS = {
    "dates": "scan dates",
    "plan": "translate",
    "reconcile": "reconcile",
}


@contextmanager
def partition_progress(enabled: bool, *, executor: str = "") -> Iterator[ProgressCallback | None]:
    """A callback that draws one bar per pass on stderr, or None when progress is off."""
    if not enabled:
        yield None
        return
    bars = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("partitions  {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}
    started: dict[str, float] = {}
    rows: dict[str, int] = {}

    def tick(stage: str, done: int, total: int, n: int) -> None:
        if stage not in tasks:
            label = _LABELS.get(stage, stage)
            tasks[stage] = bars.add_task(label, total=total, rate="")
            started[stage] = time.perf_counter()
            rows[stage] = 0
        rows[stage] += n
        elapsed = max(time.perf_counter() - started[stage], 1e-9)
        rate = f"{rows[stage] / elapsed:,.0f} invoices/s" if rows[stage] else ""
        bars.update(tasks[stage], completed=done, rate=rate)

    with bars:
        if executor:
            bars.console.print(f"partitions run {executor}")
        yield tick
