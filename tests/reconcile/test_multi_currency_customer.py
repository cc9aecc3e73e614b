"""A customer billed in two currencies: amounts are grouped per (customer, currency), never
added across currencies (pence are not cents)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from shadowbill.migrate.batch_select import delta_per_currency
from shadowbill.reconcile.views import customer_view


def test_drift_per_customer_is_per_currency() -> None:
    people = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "name": ["Ada"],
            "segment": ["sales"],
            "country": ["GB"],
            "currency": ["gbp"],
        }
    )
    snap = {"customers": people}  # customer_view reads the customers table only
    attributed = pd.DataFrame(
        {
            "customer_id": ["c1", "c1"],
            "currency": ["usd", "gbp"],
            "period_start": pd.to_datetime(["2025-01-01", "2025-01-01"], utc=True),
            "legacy_total": [1000, 800],
            "new_total": [1100, 900],
            "unexplained": [0, 0],
        }
    )
    drift = pd.DataFrame({"customer_id": ["c1", "c1"], "currency": ["usd", "gbp"], "delta": [5, 7]})
    plan = SimpleNamespace(
        assignments=pd.DataFrame(
            {"customer_id": ["c1"], "legacy_plan": ["a"], "new_plan": ["b"], "rule_id": ["r"]}
        ),
        unmapped=pd.DataFrame({"customer_id": pd.Series(dtype="string")}),
    )
    view = customer_view(snap, plan, attributed, drift)  # type: ignore[arg-type]
    drift_of = dict(zip(view["currency"].str.lower(), view["drift"], strict=True))
    assert drift_of == {"usd": 5, "gbp": 7}


def test_selection_delta_never_adds_two_currencies() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "currency": ["usd", "gbp", "usd"],
            "delta": pd.array([100, 250, None], dtype="Int64"),
        }
    )
    delta = delta_per_currency(customers)
    assert delta[("c1", "usd")] == 100 and delta[("c1", "gbp")] == 250
    assert pd.isna(delta[("c2", "usd")])
