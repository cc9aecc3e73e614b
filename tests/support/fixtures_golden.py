"""One golden-file check for every rendered output; SHADOWBILL_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

UPDATE = os.environ.get("SHADOWBILL_UPDATE_GOLDEN") == "1"

Golden = Callable[[Path, bytes | str], None]


def check_golden(golden: Path, actual: bytes | str) -> None:
    """Assert that ``actual`` equals the golden file, or rewrite it when UPDATE is set."""
    data = actual.encode() if isinstance(actual, str) else actual
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(data)
    assert golden.exists(), f"{golden} is missing; run with SHADOWBILL_UPDATE_GOLDEN=1 to write it"
    assert data == golden.read_bytes(), (
        f"{golden.name} changed; if intended, rerun with SHADOWBILL_UPDATE_GOLDEN=1"
    )


@pytest.fixture
def golden() -> Golden:
    """The golden-file check (see check_golden)."""
    return check_golden
