"""The report and workbook list bounded sets: every exception first, then the largest changes."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.reconcile.findings import FINDING_COLUMNS, empty_findings
from shadowbill.reconcile.findings_spill import findings_schema
from shadowbill.reports.files import _most_severe, _most_severe_on_disk
from shadowbill.reports.payload import report_customers


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"c{i}" for i in range(8)], dtype="string"),
            "status": ["mapped"] * 7 + ["unmapped"],
            "legacy_total": pd.array([100, 100, 100, 100, 100, 100, 100, None], dtype="Int64"),
            "delta": pd.array([1, -50, 3, 90, 0, 2, 0, None], dtype="Int64"),
            "unexplained": pd.array([0, 0, 0, 0, 0, 7, 0, None], dtype="Int64"),
            "drift": pd.array([0, 0, 0, 0, 4, 0, 0, None], dtype="Int64"),
        }
    )


def test_small_estates_are_listed_whole() -> None:
    c = _customers()
    assert report_customers(c, pd.Index([]), 100).equals(c)


def test_exceptions_then_largest_changes_in_the_original_order() -> None:
    kept = report_customers(_customers(), pd.Index(["c6"]), 6)
    # c4 drift, c5 unexplained, c6 detail, c7 unmapped; then |90| and |-50| beat 1 and 3
    assert kept["customer_id"].tolist() == ["c1", "c3", "c4", "c5", "c6", "c7"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["error", "warning", "info"]), st.integers(-5, 5)),
        max_size=40,
    ),
    group=st.integers(1, 9),
    limit=st.integers(1, 45),
)
def test_the_workbook_picks_the_same_findings_from_disk_as_in_memory(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, int]],
    group: int,
    limit: int,
) -> None:
    """Severity first, largest differences next, file order between equals: both ways agree."""
    base = empty_findings()
    frame = pd.DataFrame(
        {c: pd.Series([pd.NA] * len(rows), dtype=t) for c, t in FINDING_COLUMNS.items()}
    )
    frame["finding_id"] = pd.array([f"f{i}" for i in range(len(rows))], dtype="string")
    frame["severity"] = pd.array([r[0] for r in rows], dtype="string")
    frame["delta"] = pd.array([r[1] for r in rows], dtype="Int64")
    frame = frame.astype(base.dtypes.to_dict())
    path = tmp_path_factory.mktemp("caps") / "findings.parquet"
    table = pa.Table.from_pandas(frame, schema=findings_schema(), preserve_index=False)
    pq.write_table(table, path, row_group_size=group)
    kept, total = _most_severe_on_disk(path, limit)
    assert total == len(rows)
    expected = _most_severe(frame, limit).reset_index(drop=True)
    assert kept["finding_id"].tolist() == expected["finding_id"].tolist()
    pd.testing.assert_frame_equal(kept, expected)
