"""The same inputs give byte-identical findings and summary whatever the partitions and executor."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest
from demo_companies import demo_company

from shadowbill.demo.run import examples_dir
from shadowbill.errors import PartitionError
from shadowbill.reconcile import run as run_module
from shadowbill.reconcile.executors import Executor, Task, run_tasks
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reconcile.run import Options, PartJob, reconcile_files
from shadowbill.reports.files import write_csv_from_parquet, write_findings
from shadowbill.reports.summary import write_summary
from shadowbill.snapshot.tables import Snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

EXAMPLES = examples_dir()


@pytest.fixture(scope="module")
def snapshot() -> Path:
    return demo_company(240, 8, 5).snapshot


def _outputs(result: ReconciliationResult, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    write_findings(result, out)
    write_summary(result, out / "summary.json")
    return {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("findings.parquet", "summary.json", "findings.csv")
    }


def _run(snapshot: Path, phase: int, options: Options) -> ReconciliationResult:
    return reconcile_files(
        snapshot, EXAMPLES / "rollout.yaml", phase, EXAMPLES / "policy.yaml", options=options
    )


@pytest.fixture(scope="module")
def reference(snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("ref")
    return _outputs(_run(snapshot, 2, Options(diff_customers=5)), out)


@pytest.mark.parametrize("partitions", [2, 7])
def test_partition_count_does_not_change_outputs(
    snapshot: Path, reference: dict[str, str], partitions: int, tmp_path: Path
) -> None:
    result = _run(snapshot, 2, Options(diff_customers=5, partitions=partitions))
    assert _outputs(result, tmp_path) == reference


def test_worker_processes_give_the_same_outputs(
    snapshot: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    options = Options(diff_customers=5, partitions=3, executor=Executor(workers=2))
    assert _outputs(_run(snapshot, 2, options), tmp_path) == reference


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_outputs(
    snapshot: Path, reference: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        options = Options(
            diff_customers=5,
            partitions=4,
            executor=Executor(dask_address=cluster.scheduler_address),
        )
        result = _run(snapshot, 2, options)
    assert _outputs(result, tmp_path) == reference
    # the nanny's default allocator setting, which slows the run, is pointed out before it
    slow = [r.getMessage() for r in caplog.records if "MALLOC_TRIM_THRESHOLD_" in r.getMessage()]
    assert len(slow) == 1 and "Dask workers tcp://127.0.0.1:" in slow[0]


@pytest.fixture(scope="module")
def single_phase3(snapshot: Path) -> ReconciliationResult:
    return _run(snapshot, 3, Options(diff_customers=5))


def test_detail_and_counts_match_the_single_run(
    snapshot: Path, single_phase3: ReconciliationResult
) -> None:
    one = single_phase3
    many = _run(snapshot, 3, Options(diff_customers=5, partitions=5))
    pd.testing.assert_frame_equal(one.customers, many.customers)
    pd.testing.assert_frame_equal(one.lines, many.lines)
    pd.testing.assert_frame_equal(one.waterfall, many.waterfall)
    pd.testing.assert_frame_equal(one.monthly, many.monthly)
    assert one.counts == many.counts
    assert one.diffs == many.diffs
    assert one.verdict == many.verdict


@pytest.mark.parametrize("workers", [1, 2])
def test_detail_read_again_when_pass_3_kept_nothing(
    snapshot: Path,
    single_phase3: ReconciliationResult,
    workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pass 4 uses the candidates pass 3 kept; without them it reads the partition again."""
    if workers == 1:  # in process: drop every kept file just before pass 4 reads it
        original = run_module._detail_rows

        def without_kept(job: PartJob, partition: int, chosen: pd.Index) -> Snapshot:
            run_module._detail_file(job, partition).unlink(missing_ok=True)
            return original(job, partition, chosen)

        monkeypatch.setattr(run_module, "_detail_rows", without_kept)
    options = Options(diff_customers=5, partitions=6, executor=Executor(workers=workers))
    many = _run(snapshot, 3, options)
    assert len(single_phase3.lines) and len(single_phase3.diffs)
    pd.testing.assert_frame_equal(single_phase3.lines, many.lines)
    assert single_phase3.diffs == many.diffs


def test_stitched_csv_is_the_csv_of_the_parquet(snapshot: Path, tmp_path: Path) -> None:
    """findings.csv, stitched from the partitions' text, is the Parquet file written as CSV."""
    result = _run(snapshot, 2, Options(diff_customers=5, partitions=3))
    assert result.findings_csv_file is not None
    write_findings(result, tmp_path)
    again = write_csv_from_parquet(tmp_path / "findings.parquet", tmp_path / "again.csv")
    stitched = (tmp_path / "findings.csv").read_bytes()
    assert stitched.count(b"\n") > 100
    assert stitched == again.read_bytes()


def _flaky(payload: tuple[str, int]) -> int:
    marker, value = payload
    path = Path(marker)
    if value == 2 and not path.exists():
        path.write_text("failed once")
        raise ConnectionResetError("worker lost")  # transient: worth another try
    return value * 10


def _broken(payload: int) -> int:
    raise OSError(f"cannot read partition {payload}")


def _buggy(payload: tuple[str, int]) -> int:
    marker, value = payload
    if value == 1:
        with Path(marker).open("a") as fh:
            fh.write("tried\n")
        return {"a": 1}["b"]  # a programming error: the same on every try
    return value


@pytest.mark.parametrize("workers", [1, 2])
def test_a_programming_error_in_a_partition_is_not_retried_and_keeps_its_traceback(
    tmp_path: Path, workers: int
) -> None:
    """A bug is not a transient failure: it stops the run once, as itself (not a PartitionError)."""
    marker = tmp_path / "tries"
    tasks = [Task(k, (str(marker), k)) for k in range(3)]
    with pytest.raises(KeyError) as err:
        run_tasks(_buggy, tasks, Executor(workers=workers), stage="t")
    assert not isinstance(err.value, PartitionError)
    assert marker.read_text().count("tried") == 1  # never run again
    frames = "".join(traceback.format_exception(err.value))
    assert "_buggy" in frames  # the traceback reaches the line that failed (in the worker too)


def test_failed_partition_is_retried_once(tmp_path: Path) -> None:
    tasks = [Task(k, (str(tmp_path / "marker"), k)) for k in range(4)]
    assert run_tasks(_flaky, tasks, Executor(), stage="t") == [0, 10, 20, 30]


def test_partition_failing_twice_is_named_with_its_customers() -> None:
    tasks = [Task(k, k) for k in range(3)]
    with pytest.raises(
        PartitionError, match=r"partition \d failed 2 times .* holds 3 customers: a"
    ):
        run_tasks(_broken, tasks, Executor(workers=2), stage="t", who=lambda k: "3 customers: a")


def _killed_once(payload: tuple[str, int]) -> int:
    marker, value = payload
    path = Path(marker)
    if value == 3 and not path.exists():
        path.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return value * 10


def _killed(payload: int) -> int:
    if payload == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return payload


def test_a_killed_worker_is_replaced_and_its_partitions_run_again(tmp_path: Path) -> None:
    tasks = [Task(k, (str(tmp_path / "marker"), k)) for k in range(6)]
    done: list[int] = []
    result = run_tasks(
        _killed_once,
        tasks,
        Executor(workers=2),
        stage="t",
        progress=lambda _stage, n, _total, _rows: done.append(n),
    )
    assert result == [0, 10, 20, 30, 40, 50]
    assert (tmp_path / "marker").exists()  # the worker really died once
    assert done == [1, 2, 3, 4, 5, 6]  # every partition counted once


def test_a_worker_killed_again_stops_the_run_naming_the_unfinished_partitions() -> None:
    tasks = [Task(k, k) for k in range(4)]
    with pytest.raises(PartitionError) as err:
        run_tasks(_killed, tasks, Executor(workers=2), stage="t", who=lambda k: f"customers of {k}")
    message = str(err.value)
    assert "worker processes died 2 times" in message
    assert "out-of-memory" in message and "--partitions" in message
    unfinished = message.split("while partitions ")[1].split(" were unfinished")[0]
    assert "1" in unfinished.split(", ")


def test_too_many_partitions_is_a_clear_error(snapshot: Path) -> None:
    from shadowbill.errors import InputError

    with pytest.raises(InputError, match="partitions must be between 1 and 256"):
        _run(snapshot, 2, Options(partitions=1000))


if os.environ.get("CI") == "true":  # the Dask path must run in CI, never skip there
    import distributed  # noqa: F401


def test_cli_runs_partitions_in_a_given_work_dir(snapshot: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shadowbill.cli.app import main

    work = tmp_path / "work"
    out = tmp_path / "report"
    run = CliRunner().invoke(
        main,
        [
            "reconcile", "--snapshot", str(snapshot), "--rollout", str(EXAMPLES / "rollout.yaml"),
            "--phase", "2", "--policy", str(EXAMPLES / "policy.yaml"), "--partitions", "3",
            "--work-dir", str(work), "--out", str(out),
        ],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert (out / "findings.parquet").stat().st_size > 0
    import gc

    gc.collect()  # the result, and with it the run's folder, is gone
    assert work.exists() and not any(work.iterdir())
