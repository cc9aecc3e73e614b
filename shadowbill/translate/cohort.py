"""Phase cohorts: which eligible subscriptions each phase of a rollout takes.

A subscription is eligible when its status is one of the rollout's ``eligible_statuses``
and it is not cancelled by ``as_of``. It belongs to the first phase whose cohort selector
matches its current items and attributes, so it belongs to at most one phase.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.errors import RolloutError
from shadowbill.pricing.catalog import Catalog
from shadowbill.snapshot.instants import latest_instant
from shadowbill.snapshot.tables import TABLES, Snapshot
from shadowbill.translate.keys import isin
from shadowbill.translate.plan import TS
from shadowbill.translate.renewal import add_months
from shadowbill.translate.rollout_model import Catalogs, Rollout
from shadowbill.translate.rule_match import StateMatcher

SUBSCRIPTION_COLUMNS = TABLES["subscriptions"].column_names
CUSTOMER_COLUMNS = TABLES["customers"].column_names


def as_of_for(rollout: Rollout, latest: pd.Timestamp | None) -> pd.Timestamp:
    """The instant cohorts are judged at: the rollout's ``as_of``, else ``latest`` (the latest
    instant the snapshot's or estate's data reaches; never the wall clock, so reruns agree)."""
    if rollout.spec.as_of is not None:
        return pd.Timestamp(rollout.spec.as_of).tz_convert("UTC")
    if latest is None:
        raise RolloutError(
            f"{rollout.path}: as_of is not set and the snapshot has no dates to take it from"
        )
    return latest


def resolve_as_of(snapshot: Snapshot, rollout: Rollout) -> pd.Timestamp:
    """:func:`as_of_for` a snapshot in memory."""
    return as_of_for(rollout, None if rollout.spec.as_of is not None else latest_instant(snapshot))


def product_of(cats: Catalogs) -> dict[str, str]:
    """Price id -> product id over both catalogs (the legacy one wins)."""
    out = {p.id: p.product for p in cats.new.prices}
    out.update({p.id: p.product for p in cats.legacy.prices})
    return out


def metered_prices(*catalogs: Catalog) -> dict[str, bool]:
    """Price id -> whether it is metered, over the catalogs (the first one wins)."""
    out: dict[str, bool] = {}
    for cat in catalogs:
        for p in cat.prices:
            out.setdefault(p.id, p.recurring is not None and p.recurring.usage_type == "metered")
    return out


def _metadata_keys(rollout: Rollout) -> set[str]:
    keys: set[str] = set()
    for phase in rollout.spec.phases:
        for m in [phase.cohort, *(r.match for r in phase.rules)]:
            keys.update((m.metadata or {}).keys())
    return keys


def tenure_months(created: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Whole calendar months from ``created`` to ``as_of`` (NA when unknown)."""
    created = created.astype(TS)
    months = ((as_of.year - created.dt.year) * 12 + (as_of.month - created.dt.month)).astype(
        "Int64"
    )
    over = add_months(created, months.fillna(0).to_numpy(dtype=np.int64)) > as_of
    return (months - over.astype("Int64")).clip(lower=0)


def eligible_subscriptions(
    snapshot: Snapshot, rollout: Rollout, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Eligible subscriptions with what selectors read: the canonical subscription
    columns, the customer's segment, country and created_at, ``tenure_months``, the
    currency in lower case, and any extra column a ``metadata`` selector names."""
    subs = snapshot["subscriptions"]
    ok = subs["status"].isin(rollout.spec.eligible_statuses).fillna(False) & (
        subs["canceled_at"].isna() | (subs["canceled_at"] > as_of)
    ).fillna(False)
    subs = subs[ok.to_numpy(dtype=bool)]
    customers = snapshot["customers"]
    frame = subs[SUBSCRIPTION_COLUMNS].merge(
        customers[["customer_id", "segment", "country", "created_at"]],
        on="customer_id",
        how="left",
    )
    frame["currency"] = frame["currency"].astype("string").str.lower()
    frame["tenure_months"] = tenure_months(frame["created_at"], as_of)
    for key in sorted(_metadata_keys(rollout)):
        if key in subs.columns and key not in SUBSCRIPTION_COLUMNS:
            frame[key] = subs[key].astype("string").to_numpy()
        elif key in customers.columns and key not in CUSTOMER_COLUMNS:
            values = frame[["customer_id"]].merge(
                customers[["customer_id", key]], on="customer_id", how="left"
            )[key]
            frame[key] = values.astype("string").to_numpy()
    return frame.sort_values("subscription_id", kind="stable").reset_index(drop=True)


def select_cohort(
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    *,
    as_of: pd.Timestamp | None = None,
    catalogs: Catalogs | None = None,
) -> pd.DataFrame:
    """The eligible subscriptions of ``phase`` (the first phase whose cohort matches),
    one row each with the columns of :func:`eligible_subscriptions`."""
    rollout.phase(phase)  # an unknown phase is a RolloutError
    as_of = resolve_as_of(snapshot, rollout) if as_of is None else as_of
    eligible = eligible_subscriptions(snapshot, rollout, as_of)
    items = snapshot["subscription_items"]
    current = items[
        items["valid_to"].isna().to_numpy(dtype=bool)
        & isin(items["subscription_id"], eligible["subscription_id"])
    ]
    position = pd.Index(eligible["subscription_id"]).get_indexer(current["subscription_id"])
    state_items = pd.DataFrame(
        {
            "state": position.astype(np.int64),
            "price_id": current["price_id"].to_numpy(),
            "quantity": current["quantity"].to_numpy(),
        }
    )
    matcher = StateMatcher(
        eligible, state_items, product_of(catalogs or rollout.catalogs), rollout.spec.seat_prices
    )
    taken = np.zeros(len(eligible), dtype=bool)
    for p in rollout.spec.phases:
        mask = matcher.mask(p.cohort) & ~taken
        if p.phase == phase:
            return eligible[mask].reset_index(drop=True)
        taken |= mask
    raise AssertionError("unreachable: rollout.phase() found the phase")
