"""A Dask cluster that cannot run the partitions is refused up front, with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowbill.errors import ClusterError
from shadowbill.reconcile.dask_cluster import MALLOC_KEY, check_workers, connect

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two in-process workers: no nanny, so no allocator setting of Dask's own."""
    with distributed.LocalCluster(
        n_workers=2, processes=False, dashboard_address=":0", threads_per_worker=1
    ) as made:
        yield made


@pytest.fixture
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    with connect(cluster.scheduler_address) as opened:
        yield opened


def test_a_malformed_address_is_named() -> None:
    with pytest.raises(ClusterError, match="scheduler at notanaddress: missing port number"):
        connect("notanaddress")


def test_an_unreachable_scheduler_is_named() -> None:
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ClusterError, match=r"scheduler at tcp://127.0.0.1:1: .*--dask address"),
    ):
        connect("tcp://127.0.0.1:1")


def test_workers_that_see_everything_pass(
    client: distributed.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MALLOC_KEY, raising=False)
    assert check_workers(client, {"the snapshot": tmp_path}, tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing behind


def test_a_path_the_workers_cannot_see_is_named(client: distributed.Client, tmp_path: Path) -> None:
    read = {"the snapshot": tmp_path / "gone", "the rollout": tmp_path}
    with pytest.raises(ClusterError) as err:
        check_workers(client, read, tmp_path)
    message = str(err.value)
    assert f"cannot see the snapshot at {tmp_path / 'gone'}" in message
    assert "Dask workers " in message and "the rollout" not in message


def test_a_work_folder_the_workers_cannot_write_is_named(
    client: distributed.Client, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ClusterError, match=r"cannot write the work folder .*--work-dir"):
        check_workers(client, {}, tmp_path / "file" / "work")


def test_workers_with_dask_s_allocator_setting_get_a_warning(
    client: distributed.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MALLOC_KEY, "65536")  # what the nanny gives a worker process
    (warning,) = check_workers(client, {}, tmp_path)
    assert f"{MALLOC_KEY}=65536" in warning and "start them without it" in warning


def test_a_cluster_without_workers_is_refused(tmp_path: Path) -> None:
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty,
        connect(empty.scheduler_address) as client,
        pytest.raises(ClusterError, match="has no workers"),
    ):
        check_workers(client, {}, tmp_path)
