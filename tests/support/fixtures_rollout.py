"""Fixtures of the rollout and translation tests: the demo rollout, small rollout files
written on the fly, and an in-memory snapshot builder (rollout_snapshot_builder.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from rollout_snapshot_builder import SnapshotBuilder

from shadowbill.translate.rollout import Rollout, load_rollout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_company"
DEMO_ROLLOUT = EXAMPLES / "rollout.yaml"
LEGACY_CATALOG = EXAMPLES / "legacy_catalog.yaml"
NEW_CATALOG = EXAMPLES / "new_catalog.yaml"

# A small rollout over the demo catalogs, used where the demo rollout would hide the point.
SMALL_ROLLOUT = """\
rollout: small
catalogs:
  legacy: {legacy}
  new: {new}
as_of: 2025-12-01
seat_prices: ["starter_*", "pro_*", "premium_*"]
phases:
  - phase: 1
    name: new customers
    cohort:
      created: {on_or_after: 2025-10-01}
    cutover: 2026-01-01
    discounts: drop
    rules:
      - id: new_any
        then:
          items:
            - {from: "starter_*", price: essential_month}
  - phase: 2
    name: existing monthly
    cohort: {interval: month}
    cutover: 2026-01-01
    discounts: carry
    item_map:
      - {from: sms_month, price: sms_tiered}
    rules:
      - id: sales_pro
        match: {segment: sales, prices: {any: "pro_month_*"}}
        then:
          items:
            - {from: "pro_month_*", price: advanced_month}
            - {from: resolution_bot_month, price: fin_resolution}
          price_protection: {max_increase_percent: 10, months: 6}
      - id: pro_bot
        match: {prices: {all: ["pro_month_*", resolution_bot_month]}}
        then:
          items:
            - {from: "pro_month_*", price: advanced_month, quantity: seats}
            - {from: resolution_bot_month, price: fin_resolution}
            - {price: copilot_month, quantity: "ceil(seats / 5)"}
      - id: pro
        match: {prices: {any: "pro_month_*"}}
        then:
          items:
            - {from: "pro_month_*", price: advanced_month}
          drop:
            - {from: reporting_month, reason: included in Advanced}
      - id: starter
        match: {prices: {any: starter_month}}
        then:
          items:
            - {from: starter_month, price: essential_month}
            - {from: reporting_month, price: proactive_month, quantity: 1}
          discounts: drop
  - phase: 3
    name: the rest
    cutover: {at: next_renewal, not_before: 2026-01-01}
    discounts: carry
    rules:
      - id: keep_pro_year
        match: {prices: {any: pro_year}}
        then:
          recreate_legacy_prices: true
          switch: {from: pro_year, to: advanced_year, at: 2026-07-01}
      - id: keep
        then:
          recreate_legacy_prices: true
"""

WriteRollout = Callable[[str], Path]


def with_catalogs(text: str) -> str:
    """Replace ``{legacy}`` and ``{new}`` by the demo catalogs' paths."""
    return text.replace("{legacy}", str(LEGACY_CATALOG)).replace("{new}", str(NEW_CATALOG))


@pytest.fixture
def write_rollout(tmp_path: Path) -> WriteRollout:
    """Write rollout YAML (``{legacy}``/``{new}`` name the demo catalogs); return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "rollout.yaml"
        body = with_catalogs(textwrap.dedent(text))
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def demo_rollout() -> Rollout:
    """The demo company's rollout file, loaded."""
    return load_rollout(DEMO_ROLLOUT)


@pytest.fixture(scope="session")
def small_rollout(tmp_path_factory: pytest.TempPathFactory) -> Rollout:
    """SMALL_ROLLOUT, loaded."""
    path = tmp_path_factory.mktemp("small") / "rollout.yaml"
    path.write_text(with_catalogs(SMALL_ROLLOUT), encoding="utf-8")
    return load_rollout(path, strict=True)


@pytest.fixture
def builder() -> SnapshotBuilder:
    """An empty snapshot builder."""
    return SnapshotBuilder()
