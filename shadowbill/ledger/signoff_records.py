"""The ledger's sign-offs: who signed which reconciliation report, and what it held."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger.connection import LedgerConnection
from shadowbill.ledger.records import _frame
from shadowbill.ledger.schema import signoffs


class SignoffRecords(LedgerConnection):
    """Sign-offs of reports (a part of :class:`~shadowbill.ledger.store.Ledger`)."""

    def record_signoff(self, record: dict[str, Any]) -> None:
        """Keep one sign-off: name, role, note, signed_at, phase, report and fingerprints."""
        fingerprints = dict(record.get("fingerprints") or {})
        with self._write() as conn:
            conn.execute(
                signoffs.insert().values(
                    signed_at=pd.Timestamp(record["signed_at"]).to_pydatetime(),
                    name=str(record["name"]),
                    role=str(record["role"]),
                    note=record.get("note"),
                    phase=record.get("phase"),
                    report=str(record["report"]),
                    summary_sha256=str(fingerprints.get("summary.json", "")),
                    fingerprints_json=json.dumps(fingerprints, sort_keys=True),
                )
            )

    def signoffs(self) -> pd.DataFrame:
        """Every sign-off, oldest first, with its fingerprints as a dict."""
        with self._read() as conn:
            frame = _frame(conn, sa.select(signoffs).order_by(signoffs.c.id))
        frame["fingerprints"] = [json.loads(v) for v in frame["fingerprints_json"]]
        return frame.drop(columns="fingerprints_json")
