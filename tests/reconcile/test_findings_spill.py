"""Findings spilled by partitions and stitched by the driver: the same bytes either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shadowbill.reconcile import findings_spill
from shadowbill.reconcile.findings import FINDING_COLUMNS, empty_findings
from shadowbill.reconcile.findings_spill import merge_csv, merge_spills, ordered, spill
from shadowbill.reports.files import write_csv_from_parquet
from shadowbill.snapshot.partitions import bucket_of


def _findings(n: int) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([pd.NA] * n, dtype=t) for c, t in FINDING_COLUMNS.items()})
    frame["finding_id"] = pd.array([f"f{i}" for i in range(n)], dtype="string")
    frame["customer_id"] = pd.array([f"cus_{i % 37:03d}" for i in range(n)], dtype="string")
    frame["explanation"] = pd.array([f'says "{i}", with a comma' for i in range(n)], dtype="string")
    stamps = pd.to_datetime(np.arange(n) * 86_400 + 7, unit="s", utc=True)
    frame["period_start"] = pd.Series(stamps).where(np.arange(n) % 5 != 0)
    frame["delta"] = pd.array(np.arange(n) - n // 2, dtype="Int64")
    return frame.astype(empty_findings().dtypes.to_dict())


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_stitched_csv_equals_the_parquet_written_as_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    if not kernel_copy:  # a file system that refuses copy_file_range

        def refuse(*_: object) -> int:
            raise OSError("EXDEV")

        monkeypatch.setattr(findings_spill.os, "copy_file_range", refuse, raising=False)
    whole = _findings(400)
    partitions = 3
    spills = []
    for k in range(partitions):
        mine = whole[bucket_of(whole["customer_id"]) % partitions == k]
        rows, buckets = ordered((mine,))
        spills.append(spill(rows, buckets, tmp_path / f"findings-{k}.arrow"))
    parquet = merge_spills(spills, tmp_path / "findings.parquet")
    stitched = merge_csv(spills, tmp_path / "findings.csv").read_bytes()
    expected = write_csv_from_parquet(parquet, tmp_path / "expected.csv").read_bytes()
    assert stitched == expected
    assert stitched.count(b"\n") == len(whole) + 1
    assert b'"says ""3"", with a comma"' in stitched
