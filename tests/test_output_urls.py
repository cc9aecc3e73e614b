"""Outputs to a data lake: snapshots, reports and hand-over files written to an s3:// URL,
against a local S3-compatible server (moto in server mode) on 127.0.0.1, never a cloud."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from extract_cases import BASE_ROWS, write_folder

from shadowbill.cli.app import main
from shadowbill.errors import InputError
from shadowbill.output_urls import is_url, output_folder, upload_folder

pytestmark = pytest.mark.server

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with one bucket; the environment points at it."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    mp = pytest.MonkeyPatch()
    url = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(key, value)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": url})
    fs.mkdir("lake")
    try:
        yield url
    finally:
        mp.undo()
        server.stop()


def _fs(endpoint: str) -> object:
    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})


def test_urls_are_told_from_paths() -> None:
    assert is_url("s3://bucket/x") and is_url("gs://b/y")
    assert not is_url("/tmp/out") and not is_url("out") and not is_url("file:///tmp/out")


def test_an_extracted_snapshot_lands_in_the_bucket_with_its_manifest_last(
    s3: str, tmp_path: Path
) -> None:
    source = write_folder(tmp_path / "source", BASE_ROWS)
    done = CliRunner().invoke(
        main, ["extract", "--source", str(source), "--out", "s3://lake/snapshots/s1", "--quiet"]
    )
    assert done.exit_code == 0, done.output
    fs = _fs(s3)
    names = {p.rsplit("/", 1)[-1] for p in fs.find("lake/snapshots/s1")}  # type: ignore[attr-defined]
    assert "manifest.json" in names and "quarantine.parquet" in names
    manifest = json.loads(fs.cat("lake/snapshots/s1/manifest.json"))  # type: ignore[attr-defined]
    assert manifest["tables"]["customers"]["rows_out"] == len(BASE_ROWS["customers"])


def test_completion_files_are_uploaded_last(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "out"
    (local / "sub").mkdir(parents=True)
    for name in ("summary.json", "a.csv", "z.csv", "sub/summary.json"):
        (local / name).write_text(name)
    order: list[str] = []
    real = s3fs.S3FileSystem.put_file

    def recording(self: object, lpath: str, rpath: str, *args: object, **kw: object) -> object:
        order.append(rpath.split("lake/order/", 1)[1])
        return real(self, lpath, rpath, *args, **kw)

    monkeypatch.setattr(s3fs.S3FileSystem, "put_file", recording)
    assert upload_folder(local, "s3://lake/order") == 4
    assert order[-1] == "summary.json" and set(order[:-1]) == {"a.csv", "z.csv", "sub/summary.json"}


def test_a_failed_output_is_never_uploaded(s3: str) -> None:
    with pytest.raises(RuntimeError), output_folder("s3://lake/failed") as local:
        local.mkdir(parents=True)
        (local / "report.html").write_text("half")
        raise RuntimeError("the run failed half-way")
    assert not _fs(s3).exists("lake/failed")  # type: ignore[attr-defined]


def test_an_unknown_scheme_is_one_line_before_any_work() -> None:
    with (
        pytest.raises(InputError, match="nosuch://x/y: not a usable output URL"),
        output_folder("nosuch://x/y"),
    ):
        pytest.fail("the block must not run")
