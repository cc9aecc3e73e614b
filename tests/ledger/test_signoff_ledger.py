"""Sign-offs kept in the ledger (revision 0004), and a ledger written at 0003 upgraded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from ledger_cases import FINGERPRINTS, plan_frame

from shadowbill.ledger import migrations, open_ledger

RECORD = {
    "name": "Ana Controller",
    "role": "Financial controller",
    "note": "approved",
    "signed_at": "2026-12-07T21:00:00+00:00",
    "phase": 2,
    "report": "out/report-phase2",
    "fingerprints": {"snapshot": "s1", "summary.json": "abc"},
}


def test_a_ledger_at_0003_with_rows_is_upgraded_and_keeps_signoffs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as ledger:
        batch = ledger.create_batch(1, plan_frame(["a", "b"]), FINGERPRINTS)
    engine = sa.create_engine(url)
    migrations.downgrade(engine, "0003")
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0003"
        assert "signoffs" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    with open_ledger(url) as ledger:
        assert ledger.revision == migrations.head_revision()
        assert len(ledger.subscriptions(batch)) == 2  # the rows of 0003 are kept
        assert ledger.signoffs().empty
        ledger.record_signoff(RECORD)
        kept = ledger.signoffs()
    assert kept["name"].tolist() == ["Ana Controller"]
    assert kept["summary_sha256"].tolist() == ["abc"]
    assert kept["fingerprints"].iloc[0] == RECORD["fingerprints"]
    assert pd.Timestamp(kept["signed_at"].iloc[0]) == pd.Timestamp("2026-12-07T21:00:00Z")
