"""Fixtures for extraction tests: the valid canonical company, as CSV folders and snapshots."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from extract_cases import BASE_ROWS, Rows, write_folder

from shadowbill.extract.run import ExtractResult, extract
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import Snapshot


@pytest.fixture
def base_rows() -> Rows:
    """A fresh, mutable copy of the valid canonical company."""
    return copy.deepcopy(BASE_ROWS)


@pytest.fixture
def csv_folder(tmp_path: Path) -> Callable[[Rows], Path]:
    """Write rows as a folder of canonical CSVs under tmp_path and return the folder."""

    def make(rows: Rows) -> Path:
        return write_folder(tmp_path / "source", rows)

    return make


@pytest.fixture
def extract_rows(tmp_path: Path) -> Callable[[Rows], tuple[ExtractResult, Snapshot]]:
    """Extract rows (written as canonical CSVs) into a snapshot; returns the result and snapshot."""

    def run(rows: Rows) -> tuple[ExtractResult, Snapshot]:
        folder = write_folder(tmp_path / "source", rows)
        result = extract(str(folder), None, tmp_path / "snapshot", progress=False)
        return result, read_snapshot(result.out_dir)

    return run
