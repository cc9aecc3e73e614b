"""Sign-off of a reconciliation report: who signed it, when, and exactly what it held.

``write_reports`` leaves a ``manifest.json`` beside the report with the sha256 of
summary.json and of the findings files. A sign-off recomputes them and is refused when
any differs (the report or what it was computed from changed since it was written), or
when an earlier sign-off of the same folder signed other inputs. The record is appended
to ``signoff.json`` and the page's sign-off block is re-rendered in place; both files are
replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from shadowbill.errors import ReportError
from shadowbill.reports.html import (
    SIGNOFF_END,
    SIGNOFF_FILE,
    SIGNOFF_START,
    read_signoffs,
    render_signoffs,
)

MANIFEST_FILE = "manifest.json"
SIGNED_FILES = (
    "summary.json",
    "finance.json",
    "findings.csv",
    "findings.parquet",
    "customers_changing.csv",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a file beside ``path`` and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_digests(report_dir: Path) -> dict[str, str]:
    """sha256 of each signed file present in a report folder."""
    return {n: _sha256(report_dir / n) for n in SIGNED_FILES if (report_dir / n).exists()}


def write_manifest(report_dir: Path) -> Path:
    """Record the digests of the report's files, which a sign-off checks (manifest.json)."""
    path = report_dir / MANIFEST_FILE
    text = json.dumps({"files": file_digests(report_dir)}, sort_keys=True, indent=2) + "\n"
    try:
        replace_atomically(path, text)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def _summary(report_dir: Path) -> dict[str, Any]:
    path = report_dir / "summary.json"
    if not path.is_file():
        raise ReportError(f"{report_dir}: no summary.json here; give the folder of a report")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a report summary")
    return data


def check_unchanged(report_dir: Path) -> dict[str, str]:
    """The report's file digests, or a ReportError naming what changed since it was written."""
    manifest = report_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise ReportError(f"{report_dir}: no {MANIFEST_FILE}; write the report again to sign it")
    try:
        recorded = json.loads(manifest.read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{manifest}: cannot be read ({exc})") from exc
    now = file_digests(report_dir)
    changed = sorted(n for n in set(recorded) | set(now) if recorded.get(n) != now.get(n))
    if changed:
        raise ReportError(
            f"sign-off refused: {', '.join(changed)} in {report_dir} changed since the report"
            " was written; reconcile again and sign the new report"
        )
    return now


def sign_off(
    report_dir: Path,
    name: str,
    role: str,
    note: str | None = None,
    *,
    signed_at: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """Append a sign-off to signoff.json and to the page; return the record.

    Refused (ReportError) when the report's files changed since they were written, or
    when an earlier sign-off of this folder signed different inputs.
    """
    if not name.strip() or not role.strip():
        raise ReportError("a sign-off needs a name and a role")
    report_dir = Path(report_dir)
    summary = _summary(report_dir)
    files = check_unchanged(report_dir)
    inputs = {str(k): str(v) for k, v in dict(summary.get("fingerprints") or {}).items()}
    earlier = read_signoffs(report_dir)
    for record in earlier:
        theirs = {k: v for k, v in dict(record.get("fingerprints") or {}).items() if k in inputs}
        if theirs and theirs != {k: inputs[k] for k in theirs}:
            raise ReportError(
                f"sign-off refused: {record.get('name')} signed this folder for other inputs"
                f" ({', '.join(sorted(k for k in theirs if theirs[k] != inputs.get(k)))});"
                " write the report to a new folder"
            )
    at = pd.Timestamp.now(tz="UTC") if signed_at is None else pd.Timestamp(signed_at)
    record = {
        "name": name.strip(),
        "role": role.strip(),
        "note": (note or "").strip() or None,
        "signed_at": at.tz_convert("UTC").isoformat(timespec="seconds"),
        "phase": summary.get("phase"),
        "verdict": "passed" if dict(summary.get("verdict") or {}).get("passed") else "failed",
        "report": str(report_dir),
        "fingerprints": {**inputs, **files},
    }
    records = [*earlier, record]
    try:
        replace_atomically(
            report_dir / SIGNOFF_FILE,
            json.dumps({"signoffs": records}, indent=2, ensure_ascii=False) + "\n",
        )
        _rerender_block(report_dir / "report.html", records)
    except OSError as exc:
        raise ReportError(f"cannot record the sign-off in {report_dir}: {exc.strerror}") from exc
    return record


def _rerender_block(page: Path, records: list[dict[str, Any]]) -> None:
    """Replace the page's sign-off block with the recorded sign-offs (atomically)."""
    if not page.is_file():
        return
    text = page.read_text("utf-8")
    start, end = text.find(SIGNOFF_START), text.find(SIGNOFF_END)
    if start < 0 or end < start:
        raise ReportError(f"{page}: no sign-off block to fill in; write the report again")
    block = render_signoffs(records)
    replace_atomically(page, text[: start + len(SIGNOFF_START)] + block + text[end:])
