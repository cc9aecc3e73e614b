"""Choose the next batch of a phase: the lowest-risk customers not yet migrated.

The pool is the phase's mapped subscriptions (``translate``) that are in no live batch of
the ledger (``Ledger.taken_subscriptions``; rolled-back subscriptions return to it). Each
candidate gets the columns below, ``--where`` filters them (a parsed condition), and the
candidates are ranked by risk, lowest first:

1. ``flags``: the customer has unmapped subscriptions in this phase's cohort, or
   reconciliation differences no cause explains (``unexplained``), or pricing errors.
   Flagged customers go last.
2. ``change_pct``: the absolute change of the customer's new invoices against the legacy
   ones, in percent of the legacy total over the compared periods (comparison B of a
   reconciliation of the pool). A percentage, so that customers billed in different
   currencies compare; smaller changes go first.
3. ``items``: how many items the new subscription has; fewer go first.
4. ``price_protection``: subscriptions without a price-protection coupon go first.
5. ``customer_id``, then ``subscription_id``: for determinism.

A batch holds whole customers: the customers are taken in the order of their
lowest-ranked subscription, each with all of its candidate subscriptions, while the batch
stays within ``batch_size`` subscriptions (a customer with more subscriptions than that is
taken alone). So a customer object on the target belongs to one batch.

Columns ``--where`` can use (``SELECT_COLUMNS``): subscription_id, customer_id, segment,
country, currency, legacy_plan, new_plan, rule_id, items, price_protection, discounts,
switches, change_pct, delta, flags, tenure_months. ``--where`` is a condition in a small
language parsed and evaluated by :mod:`shadowbill.migrate.where_filter` (comparisons,
``in``, ``and``/``or``/``not`` and a few string methods such as
``new_plan.str.contains("advanced")``; never executed as Python); a bad expression is a
:class:`SelectionError` naming the expression and the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from shadowbill.errors import InputError
from shadowbill.migrate.where_filter import (
    GRAMMAR,
    WhereSyntaxError,
    column_kind,
    evaluate_where,
    parse_where,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.plan import Plan

SELECT_COLUMNS: Final[dict[str, str]] = {
    "subscription_id": "string",
    "customer_id": "string",
    "segment": "string",  # self_serve | sales
    "country": "string",  # ISO country of the customer, upper case
    "currency": "string",  # the subscription's currency, lower case
    "legacy_plan": "string",  # "pro_month_v2 + resolution_bot_month"
    "new_plan": "string",  # "advanced_month + fin_resolution"
    "rule_id": "string",  # the rollout rule that mapped it
    "items": "int64",  # items of the new subscription (current state)
    "price_protection": "bool",
    "discounts": "int64",  # discount rows carried to the new platform
    "switches": "bool",  # a scheduled switch after the cut-over (a subscription schedule)
    "change_pct": "float64",  # |new - legacy| / legacy in percent (not money; for ranking)
    "delta": "Int64",  # new - legacy in minor units of ``currency``, compared periods
    "flags": "int64",  # unmapped subscriptions + unexplained differences + pricing errors
    "tenure_months": "int64",  # whole months from the customer's creation to the plan's as_of
}
RISK_ORDER: Final = (
    "flagged",
    "change_pct",
    "items",
    "price_protection",
    "customer_id",
    "subscription_id",
)


class SelectionError(InputError):
    """A batch selection that cannot be made as asked (a bad --where, an empty pool)."""


@dataclass(frozen=True)
class Selection:
    """The chosen batch and the pool it came from."""

    batch: pd.DataFrame  # SELECT_COLUMNS + risk (1 = lowest), in risk order
    pool_size: int  # mapped subscriptions not in a live batch
    matched: int  # of those, matching --where
    taken_out: int  # mapped subscriptions already in a live batch


def _customer_risk(
    customers: pd.DataFrame | None,
    findings: pd.DataFrame | None,
    pricing_errors: pd.DataFrame | None,
    owner: pd.Series,
) -> pd.DataFrame:
    """Per customer: change_pct and the unexplained / pricing-error count."""
    out = pd.DataFrame(
        {
            "change_pct": pd.Series(dtype="float64"),
            "delta": pd.Series(dtype="Int64"),
            "problems": pd.Series(dtype="int64"),
        }
    )
    if customers is None or customers.empty:
        return out
    c = customers.assign(
        change_pct=customers["delta_pct"].astype("Float64").abs().fillna(0.0).astype("float64"),
        unexplained_rows=(customers["unexplained"].astype("Int64").fillna(0) != 0).astype("int64"),
    )
    per = c.groupby("customer_id", sort=True).agg(
        change_pct=("change_pct", "max"),
        problems=("unexplained_rows", "sum"),
    )
    extra = []
    if findings is not None and not findings.empty:
        extra.append(findings.loc[findings["cause"] == "unexplained", "customer_id"])
    if pricing_errors is not None and not pricing_errors.empty:
        sub = pricing_errors["subscription_id"].astype("string")
        extra.append(sub.map(owner).dropna())
    if extra:
        counts = pd.concat(extra).astype("string").value_counts()
        per["problems"] = per["problems"] + counts.reindex(per.index, fill_value=0).astype("int64")
    return per


def delta_per_currency(customers: pd.DataFrame | None) -> pd.Series:
    """new - legacy per (customer_id, currency): amounts of two currencies never add up."""
    if customers is None or customers.empty:
        return pd.Series(dtype="Int64", index=pd.MultiIndex.from_arrays([[], []]))
    keyed = customers.assign(
        customer_id=customers["customer_id"].astype(str),
        currency=customers["currency"].astype(str).str.lower(),
    )
    return keyed.groupby(["customer_id", "currency"])["delta"].sum(min_count=1).astype("Int64")


def candidates(
    plan: Plan,
    snapshot: Snapshot,
    taken: set[str],
    *,
    customers: pd.DataFrame | None = None,
    findings: pd.DataFrame | None = None,
    pricing_errors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The phase's mapped subscriptions not in a live batch, with SELECT_COLUMNS.

    ``customers``, ``findings`` and ``pricing_errors`` are a reconciliation's frames for
    these customers (``ReconciliationResult.customers`` etc.); without them every
    customer has ``change_pct`` 0 and no reconciliation flag.
    """
    a = plan.assignments
    a = a[~a["subscription_id"].astype(str).isin(taken)].reset_index(drop=True)
    people = snapshot["customers"].drop_duplicates("customer_id").set_index("customer_id")
    cid = a["customer_id"].astype("string")
    new_plan = a["new_plan"].astype("string").fillna("")
    items = np.where(new_plan.str.len() > 0, new_plan.str.count(r" \+ ") + 1, 0)
    created = pd.to_datetime(people["created_at"].reindex(cid.to_numpy()).to_numpy(), utc=True)
    as_of = pd.Timestamp(plan.as_of)
    tenure = (as_of.year - created.year) * 12 + (as_of.month - created.month)
    months = np.where(np.asarray(created.day) > as_of.day, tenure - 1, tenure)
    unmapped = plan.unmapped["customer_id"].astype("string").value_counts()
    subs = snapshot["subscriptions"].drop_duplicates("subscription_id")
    owner = pd.Series(
        subs["customer_id"].astype("string").to_numpy(),
        index=subs["subscription_id"].astype("string").to_numpy(),
    )
    risk = _customer_risk(customers, findings, pricing_errors, owner)
    frame = pd.DataFrame(
        {
            "subscription_id": a["subscription_id"].astype("string"),
            "customer_id": cid,
            "segment": people["segment"].reindex(cid.to_numpy()).astype("string").to_numpy(),
            "country": people["country"].reindex(cid.to_numpy()).astype("string").to_numpy(),
            "currency": a["currency"].astype("string").str.lower(),
            "legacy_plan": a["legacy_plan"].astype("string"),
            "new_plan": new_plan,
            "rule_id": a["rule_id"].astype("string"),
            "items": items.astype("int64"),
            "price_protection": a["price_protection"].astype("boolean").fillna(False),
            "discounts": a["discounts_carried"].astype("Int64").fillna(0),
            "switches": a["switches"].astype("string").fillna("").str.len() > 0,
            "change_pct": risk["change_pct"].reindex(cid.to_numpy()).fillna(0.0).to_numpy(),
            "delta": delta_per_currency(customers)
            .reindex(
                pd.MultiIndex.from_arrays(
                    [cid.astype(str).to_numpy(), a["currency"].astype(str).str.lower().to_numpy()]
                )
            )
            .to_numpy(),
            "flags": (
                unmapped.reindex(cid.to_numpy(), fill_value=0).to_numpy()
                + risk["problems"].reindex(cid.to_numpy(), fill_value=0).to_numpy()
            ),
            "tenure_months": np.nan_to_num(np.asarray(months, dtype="float64")),
        }
    )
    return frame.astype(SELECT_COLUMNS)


def _shown(where: str) -> str:
    text = " ".join(where.split())
    return text if len(text) <= 120 else text[:117] + "..."


def apply_where(frame: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """The candidates matching a --where condition over SELECT_COLUMNS (None: all of them).

    The condition is parsed against a whitelist and evaluated column-wise by
    :mod:`shadowbill.migrate.where_filter`; it never runs as Python code.
    """
    if where is None or not where.strip():
        return frame
    columns = {c: column_kind(frame[c]) for c in SELECT_COLUMNS if c in frame.columns}
    try:
        parsed = parse_where(where, columns)
    except WhereSyntaxError as exc:
        raise SelectionError(
            f"--where {_shown(where)!r} is not a valid filter ({exc}); write a "
            f"condition with {GRAMMAR} over the columns {', '.join(SELECT_COLUMNS)}"
        ) from None
    return frame[evaluate_where(parsed, frame)]


def risk_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The candidates ranked lowest risk first, with ``risk`` = 1, 2, ... (see module doc)."""
    ranked = frame.assign(flagged=frame["flags"] > 0).sort_values(list(RISK_ORDER), kind="stable")
    ranked = ranked.drop(columns="flagged").reset_index(drop=True)
    ranked["risk"] = np.arange(1, len(ranked) + 1, dtype=np.int64)
    return ranked


def whole_customers(ranked: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """The first customers (by their best rank) with all their candidates, within batch_size."""
    if ranked.empty:
        return ranked
    first = ranked.groupby("customer_id", sort=False)["risk"].transform("min")
    ordered = ranked.assign(_first=first).sort_values(["_first", "risk"], kind="stable")
    sizes = ordered.groupby("_first", sort=False).size()
    cumulative = sizes.cumsum()
    keep = cumulative[cumulative <= batch_size].index
    if len(keep) == 0:
        keep = cumulative.index[:1]  # one customer larger than a batch goes alone
    return ordered[ordered["_first"].isin(keep)].drop(columns="_first").reset_index(drop=True)


def select_batch(
    plan: Plan,
    snapshot: Snapshot,
    taken: set[str],
    *,
    batch_size: int,
    where: str | None = None,
    customers: pd.DataFrame | None = None,
    findings: pd.DataFrame | None = None,
    pricing_errors: pd.DataFrame | None = None,
) -> Selection:
    """The next batch: candidates matching ``where``, lowest risk first, whole customers."""
    if batch_size < 1:
        raise SelectionError(f"--batch-size must be at least 1, got {batch_size}")
    pool = candidates(
        plan,
        snapshot,
        taken,
        customers=customers,
        findings=findings,
        pricing_errors=pricing_errors,
    )
    matched = apply_where(pool, where)
    batch = whole_customers(risk_order(matched), batch_size)
    mapped = len(plan.assignments)
    return Selection(batch, len(pool), len(matched), mapped - len(pool))
