"""The files of a batch folder (operations for review, findings, the hand-over) and how they are written."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from shadowbill.csv_cells import neutralise_frame
from shadowbill.errors import MigrationError

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


class PlanFilesMissingError(MigrationError):
    """A batch recorded in the ledger whose plan files were never published."""


def day_text(value: pd.Timestamp | None) -> str:
    """A day as YYYY-MM-DD, or ``-`` when there is none."""
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def _replace_with(path: Path, write: Callable[[Path], object]) -> Path:
    """Write a file under a temporary name beside it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as sorted, indented JSON (atomically, its folder created); return the path."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return _replace_with(path, lambda tmp: tmp.write_text(text))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV with UTC timestamps (atomically, its folder created); return the path."""
    safe = neutralise_frame(frame)
    return _replace_with(
        path,
        lambda tmp: safe.to_csv(
            tmp, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%SZ"
        ),
    )


def count_lines(path: Path | None) -> int:
    """The non-blank lines of a file (0 when there is none)."""
    if path is None or not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def require_plan_files(folder: Path, batch_id: str) -> None:
    """Refuse a batch whose plan was interrupted after the ledger recorded it (no plan.json)."""
    if not (Path(folder) / PLAN_FILE).is_file():
        raise PlanFilesMissingError(
            f"batch {batch_id} has no {PLAN_FILE} in {folder}: its plan was interrupted after "
            f"the ledger recorded it; roll it back (`shadowbill migrate rollback --batch "
            f"{batch_id}`) and plan again"
        )
