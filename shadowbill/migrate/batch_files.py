"""The files of a batch folder (operations for review, findings, the hand-over) and how they are written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from shadowbill.csv_cells import neutralise_frame

DEFAULT_BATCHES_DIR: Final = Path(".shadowbill") / "batches"
# The files of a batch folder.
OPERATIONS_FILE: Final = "operations.jsonl"
STRIPE_CSV_FILE: Final = "stripe_migration.csv"
FOLLOWUPS_FILE: Final = "stripe_followups.jsonl"
SELECTION_FILE: Final = "selection.csv"
PLAN_FILE: Final = "plan.json"
GATE_FILE: Final = "gate_findings.csv"
VERIFY_FILE: Final = "verify_findings.csv"
CUTOVER_FILE: Final = "cutover.csv"


def day_text(value: pd.Timestamp | None) -> str:
    """A day as YYYY-MM-DD, or ``-`` when there is none."""
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as sorted, indented JSON (its folder created); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV with UTC timestamps (its folder created); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    neutralise_frame(frame).to_csv(
        path, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%SZ"
    )
    return path


def count_lines(path: Path | None) -> int:
    """The non-blank lines of a file (0 when there is none)."""
    if path is None or not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())
