"""The one demo-company factory of the test suite: generate and extract once per process.

Every test that needs a demo company asks for one by size, history and seed; each distinct
company is generated and extracted once and then shared read-only (a test that must change the
legacy database copies ``made.db_path`` first).
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shadowbill.demo.generate import DemoResult, generate
from shadowbill.extract.run import extract


@dataclass(frozen=True)
class DemoCompany:
    """A generated legacy database (``made``) and its extracted snapshot folder."""

    made: DemoResult
    snapshot: Path


_CACHE: dict[tuple[int, int, int, dt.date], DemoCompany] = {}
_ROOT: list[Path] = []


def demo_company(
    customers: int, months: int, seed: int, start: dt.date = dt.date(2025, 1, 1)
) -> DemoCompany:
    """The demo company of these parameters, generated and extracted on first use."""
    key = (customers, months, seed, start)
    if key not in _CACHE:
        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="shadowbill-demo-companies-")))
        root = _ROOT[0] / f"c{customers}-m{months}-s{seed}-{start.isoformat()}"
        root.mkdir(parents=True)
        made = generate(
            root / "legacy.db", customers=customers, months=months, seed=seed, start=start
        )
        extract(f"sqlite:///{made.db_path}", made.spec_path, root / "snapshot", progress=False)
        _CACHE[key] = DemoCompany(made, root / "snapshot")
    return _CACHE[key]


@atexit.register
def _cleanup() -> None:
    for root in _ROOT:
        shutil.rmtree(root, ignore_errors=True)
