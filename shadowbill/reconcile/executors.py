"""Where partitions run: in this process, in local worker processes, or on a Dask cluster.

Every executor runs the same picklable task function over the same task list and gives
the results back in task order, so what a run computes never depends on where it ran.
A task that fails with an error known to be transient (the system refused a file or a
connection, memory ran out, a Dask worker was lost) is run once more; a second failure
stops the run with an error that names the partition and the customers it holds. Any other
error is a bug or bad input, the same on every try: it stops the run at once, as it is
(with its traceback). A local worker process killed from outside
(e.g. by the out-of-memory killer) breaks its pool: a new pool takes every unfinished task,
once, and a second break stops the run naming the partitions it left unfinished.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shadowbill.errors import PartitionError, ShadowbillError
from shadowbill.listing import first_few

T = TypeVar("T")
R = TypeVar("R")


def transient_errors() -> tuple[type[BaseException], ...]:
    """The errors worth running a partition again for: the same task may pass next time."""
    kinds: list[type[BaseException]] = [OSError, MemoryError]  # incl. Dask's CommClosedError
    distributed = sys.modules.get("distributed")  # imported only when a Dask cluster is used
    if distributed is not None:
        kinds.append(distributed.KilledWorker)
    return tuple(kinds)


# Told about every finished task: the stage, tasks done, tasks in all, rows it did.
Progress = Callable[[str, int, int, int], None]


@dataclass(frozen=True)
class Executor:
    """How to run partitions: ``workers`` local processes (1 = in process) or a Dask address."""

    workers: int = 1
    dask_address: str | None = None
    retries: int = 1

    def describe(self) -> str:
        """A short label for logs and progress bars."""
        if self.dask_address:
            return f"dask at {self.dask_address}"
        return "in process" if self.workers <= 1 else f"{self.workers} worker processes"


@dataclass(frozen=True)
class Task(Generic[T]):
    """One unit of work: the partition it covers and its payload."""

    partition: int
    payload: T


def _fail(
    task: Task[Any], exc: BaseException, who: Callable[[int], str], attempts: int
) -> PartitionError:
    return PartitionError(
        f"partition {task.partition} failed {attempts} times ({type(exc).__name__}: {exc});"
        f" it holds {who(task.partition)}"
    )


def _in_process(
    fn: Callable[[T], R],
    tasks: Sequence[Task[T]],
    retries: int,
    who: Callable[[int], str],
    tick: Callable[[int, R], None],
) -> list[R]:
    out: list[R] = []
    for i, task in enumerate(tasks):
        for attempt in range(retries + 1):
            try:
                result = fn(task.payload)
                break
            except ShadowbillError:
                raise  # bad input: the same on every try, and already a clear message
            except transient_errors() as exc:
                if attempt == retries:
                    raise _fail(task, exc, who, attempt + 1) from exc
        out.append(result)
        tick(i, result)
    return out


def _died(
    tasks: Sequence[Task[Any]], lost: Sequence[int], who: Callable[[int], str], breaks: int
) -> PartitionError:
    first = tasks[lost[0]].partition
    unfinished = first_few([tasks[i].partition for i in lost])
    return PartitionError(
        f"worker processes died {breaks} times (killed from outside the run, e.g. by the"
        f" out-of-memory killer) while partitions {unfinished} were unfinished; partition"
        f" {first} holds {who(first)}. Use more --partitions (each needs less memory) or"
        " fewer --workers"
    )


def _pooled(
    submit: Callable[[Callable[[T], R], T], Any],
    wait_any: Callable[[set[Any]], set[Any]],
    outcome: Callable[[Any], R],
    fn: Callable[[T], R],
    tasks: Sequence[Task[T]],
    retries: int,
    who: Callable[[int], str],
    tick: Callable[[int, R], None],
    renew: Callable[[], None] | None = None,
) -> list[R]:
    """Submit everything, collect as tasks finish, resubmit a task that failed with a
    transient error up to ``retries`` times (any other error stops the run as it is).

    A pool that breaks (a worker process killed) is replaced by ``renew`` up to ``retries``
    times and every unfinished task goes to the new one; a break is not counted against
    those tasks, since the pool cannot tell which of them the dead worker was running.
    """
    results: dict[int, R] = {}
    attempts = dict.fromkeys(range(len(tasks)), 1)
    breaks = 0
    running: dict[Any, int] = {}
    pending = list(range(len(tasks)))
    while pending or running:
        lost: list[int] = []
        for n, i in enumerate(pending):
            try:
                running[submit(fn, tasks[i].payload)] = i
            except BrokenExecutor:
                lost = pending[n:]
                break
        pending = []
        if not lost:
            for future in sorted(wait_any(set(running)), key=running.__getitem__):
                i = running.pop(future)
                try:
                    result = outcome(future)
                except ShadowbillError:
                    raise  # bad input: the same on every try, and already a clear message
                except BrokenExecutor:
                    lost.append(i)
                    continue
                except transient_errors() as exc:
                    if attempts[i] > retries:
                        raise _fail(tasks[i], exc, who, attempts[i]) from exc
                    attempts[i] += 1
                    pending.append(i)
                    continue
                results[i] = result
                tick(i, result)
        if lost:  # the pool is gone: every task it still held goes to a new pool
            lost = sorted({*lost, *pending, *running.values()})
            running.clear()
            breaks += 1
            if renew is None or breaks > retries:
                raise _died(tasks, lost, who, breaks)
            renew()
            pending = lost
    return [results[i] for i in range(len(tasks))]


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # spawn: a clean interpreter per worker, safe with the threads pandas and Arrow start
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[Task[T]],
    executor: Executor,
    *,
    stage: str,
    rows: Callable[[R], int] = lambda _: 0,
    who: Callable[[int], str] = lambda k: f"partition {k}'s customers",
    progress: Progress | None = None,
) -> list[R]:
    """Run ``fn`` over every task's payload with the executor; results in task order."""
    done = 0

    def tick(_: int, result: R) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, len(tasks), rows(result))

    if not tasks:
        return []
    if executor.dask_address:
        from distributed import wait as dask_wait

        from shadowbill.reconcile.dask_cluster import connect

        with connect(executor.dask_address) as client:

            def submit_dask(f: Callable[[T], R], payload: T) -> Any:
                return client.submit(f, payload, pure=False)

            def wait_dask(futures: set[Any]) -> set[Any]:
                return set(dask_wait(list(futures), return_when="FIRST_COMPLETED").done)

            return _pooled(
                submit_dask,
                wait_dask,
                lambda fut: fut.result(),
                fn,
                tasks,
                executor.retries,
                who,
                tick,
            )
    if executor.workers > 1 and len(tasks) > 1:
        workers = min(executor.workers, len(tasks))
        pools = [_new_pool(workers)]

        def submit_pool(f: Callable[[T], R], payload: T) -> Future[R]:
            return pools[-1].submit(f, payload)

        def wait_pool(futures: set[Any]) -> set[Any]:
            return set(wait(futures, return_when=FIRST_COMPLETED).done)

        def renew_pool() -> None:
            pools[-1].shutdown(wait=True, cancel_futures=True)
            pools.append(_new_pool(workers))

        try:
            return _pooled(
                submit_pool,
                wait_pool,
                lambda fut: fut.result(),
                fn,
                tasks,
                executor.retries,
                who,
                tick,
                renew_pool,
            )
        finally:
            pools[-1].shutdown(wait=True, cancel_futures=True)
    return _in_process(fn, tasks, executor.retries, who, tick)


class RateMeter:
    """Rows per second since the meter started, for progress bars."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.rows = 0

    def add(self, rows: int) -> float:
        """Count ``rows`` more and return the rate so far."""
        self.rows += rows
        return self.rows / max(time.perf_counter() - self.started, 1e-9)
