"""The operations of a translated batch: complete, ordered, deterministic, and on time."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_fixtures import T, demo_rollout, demo_snapshot, tiny_case

from shadowbill.pricing.catalog import Price
from shadowbill.pricing.periods import cadence, to_us
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets import batch_frames as ops_module
from shadowbill.targets.catalog_ops import price_operation, refs_in
from shadowbill.targets.jsonl import operation_line
from shadowbill.targets.model import KIND_ORDER, Operation, ref_key
from shadowbill.targets.operations import (
    OperationsError,
    build_operations,
    cutover_facts,
    projected_protection,
    subscription_operations,
    unresolved_refs,
)
from shadowbill.translate.plan import Plan
from shadowbill.translate.renewal import add_months
from shadowbill.translate.rollout import Rollout, target_price_catalog
from shadowbill.translate.run import translate

PHASES = (1, 2, 3)
SUB_KINDS = ("subscription", "subscription_schedule")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Rollout]:
    return demo_snapshot(tmp_path_factory.mktemp("targets_demo")), demo_rollout()


@pytest.fixture(scope="module")
def plans(demo: tuple[Snapshot, Rollout]) -> dict[int, Plan]:
    snapshot, rollout = demo
    return {phase: translate(snapshot, rollout, phase) for phase in PHASES}


@pytest.fixture(scope="module")
def built(demo: tuple[Snapshot, Rollout], plans: dict[int, Plan]) -> dict[int, list[Operation]]:
    snapshot, rollout = demo
    return {
        phase: build_operations(plan, rollout, snapshot, batch_id=f"phase-{phase}-batch-1")
        for phase, plan in plans.items()
    }


def _seconds(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000_000)


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _walk(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _walk(v)]
    return [value]


# ------------------------------------------------------------------ structure ----


@pytest.mark.parametrize("phase", PHASES)
def test_every_mapped_subscription_has_one_customer_and_one_subscription(
    phase: int, plans: dict[int, Plan], built: dict[int, list[Operation]]
) -> None:
    plan, ops = plans[phase], built[phase]
    mapped = plan.assignments
    assert len(mapped) > 0
    subs = [op for op in ops if op.kind in SUB_KINDS]
    assert sorted(op.subscription_id for op in subs) == sorted(mapped["subscription_id"])
    customers = {op.customer_id for op in ops if op.kind == "customer"}
    assert customers == set(mapped["customer_id"])
    owner = dict(zip(mapped["subscription_id"], mapped["customer_id"], strict=True))
    for op in subs:
        assert op.params["customer"] == f"{{{{ref:customer:{owner[op.subscription_id]}}}}}"
        assert op.customer_id == owner[op.subscription_id]
    if phase == 3:  # the kept legacy prices switch later: schedules
        assert any(op.kind == "subscription_schedule" for op in subs)


@pytest.mark.parametrize("phase", PHASES)
def test_references_resolve_to_earlier_operations(
    phase: int, built: dict[int, list[Operation]]
) -> None:
    ops = built[phase]
    keys = [op.key for op in ops]
    assert len(keys) == len(set(keys))
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    assert [(order[op.kind], op.key) for op in ops] == sorted((order[o.kind], o.key) for o in ops)
    seen: set[str] = set()
    for op in ops:
        refs = refs_in(op.params)
        assert all(r in seen for r in refs), (op.key, [r for r in refs if r not in seen])
        assert op.depends_on == tuple(sorted(set(refs)))
        seen.add(op.key)
    assert unresolved_refs(ops) == []


@pytest.mark.parametrize("phase", PHASES)
def test_building_twice_gives_identical_operations(
    phase: int,
    demo: tuple[Snapshot, Rollout],
    plans: dict[int, Plan],
    built: dict[int, list[Operation]],
) -> None:
    snapshot, rollout = demo
    again = build_operations(plans[phase], rollout, snapshot, batch_id=f"phase-{phase}-batch-1")
    assert again == built[phase]
    assert [operation_line(o) for o in again] == [operation_line(o) for o in built[phase]]


@pytest.mark.parametrize("phase", PHASES)
def test_idempotency_keys_differ_per_batch(
    phase: int,
    demo: tuple[Snapshot, Rollout],
    plans: dict[int, Plan],
    built: dict[int, list[Operation]],
) -> None:
    snapshot, rollout = demo
    other = build_operations(plans[phase], rollout, snapshot, batch_id=f"phase-{phase}-batch-2")
    assert [o.key for o in other] == [o.key for o in built[phase]]
    first = {o.idempotency_key for o in built[phase]}
    second = {o.idempotency_key for o in other}
    assert len(first) == len(built[phase]) and not first & second


@pytest.mark.parametrize("phase", PHASES)
def test_no_float_in_any_operation(phase: int, built: dict[int, list[Operation]]) -> None:
    for op in built[phase]:
        assert not any(isinstance(v, float) for v in _walk(op.params)), op.key


# ------------------------------------------------------------------ timing ----


def _expected_paid_through(plan: Plan, legacy: Snapshot) -> dict[str, pd.Timestamp]:
    """Paid-through computed the slow way: the last invoice's end, or the last legacy
    period boundary at or before the cut-over, whichever is later."""
    subs = plan.snapshot["subscriptions"].set_index("subscription_id")
    invoices = legacy["invoices"]
    last = invoices.groupby("subscription_id")["period_end"].max()
    out = {}
    for a in plan.assignments.itertuples():
        s = subs.loc[a.subscription_id]
        anchor = s.trial_end if not pd.isna(s.trial_end) else s.started_at
        months = (12 if s.interval == "year" else 1) * int(s.interval_count)
        count = max((a.cutover_at.year - anchor.year + 1) * 12 // months + 2, 1)
        lattice = add_months(pd.Series([anchor] * count), np.arange(count) * months)
        before = lattice[lattice <= a.cutover_at]
        boundary = before.max() if len(before) else None
        candidates = [c for c in (last.get(a.subscription_id), boundary) if c is not None]
        candidates = [c for c in candidates if not pd.isna(c)]
        out[a.subscription_id] = max(candidates) if candidates else s.current_period_end
    return out


@pytest.mark.parametrize("phase", PHASES)
def test_first_target_period_starts_at_the_legacy_paid_through(
    phase: int,
    demo: tuple[Snapshot, Rollout],
    plans: dict[int, Plan],
    built: dict[int, list[Operation]],
) -> None:
    snapshot, _ = demo
    plan = plans[phase]
    facts = cutover_facts(plan, snapshot).set_index("subscription_id")
    assert list(facts.index) == sorted(plan.assignments["subscription_id"])
    expected = _expected_paid_through(plan, snapshot)
    invoiced = snapshot["invoices"].groupby("subscription_id")["period_end"].max()
    subs = plan.snapshot["subscriptions"].set_index("subscription_id")
    for op in subscription_operations(built[phase]):
        sid = op.subscription_id
        paid = facts.loc[sid, "paid_through"]
        assert paid == expected[sid], sid
        # no overlap with what the legacy engine already invoiced
        if sid in invoiced.index:
            assert paid >= invoiced[sid]
        assert facts.loc[sid, "first_target_period_start"] == paid
        months = (12 if subs.loc[sid, "interval"] == "year" else 1) * int(
            subs.loc[sid, "interval_count"]
        )
        assert facts.loc[sid, "first_target_period_end"] == add_months(pd.Series([paid]), months)[0]
        if op.kind == "subscription":
            assert op.params["billing_cycle_anchor"] == _seconds(paid)
            assert op.params["proration_behavior"] == "none"
        else:
            assert op.params["start_date"] == _seconds(paid)
            assert op.params["phases"][0]["proration_behavior"] == "none"


def _active(items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    open_end = items["valid_to"].isna() | (items["valid_to"] > at)
    return items[(items["valid_from"] <= at) & open_end.to_numpy(dtype=bool)]


@pytest.mark.parametrize("phase", PHASES)
def test_items_are_the_plans_items_at_each_phase_start(
    phase: int,
    demo: tuple[Snapshot, Rollout],
    plans: dict[int, Plan],
    built: dict[int, list[Operation]],
) -> None:
    snapshot, rollout = demo
    plan = plans[phase]
    catalog = target_price_catalog(rollout)
    metered = {p.id for p in catalog.prices if p.recurring and p.recurring.usage_type == "metered"}
    items = plan.snapshot["subscription_items"]
    facts = cutover_facts(plan, snapshot).set_index("subscription_id")
    for op in subscription_operations(built[phase]):
        sid = op.subscription_id
        mine = items[items["subscription_id"] == sid]
        if op.kind == "subscription":
            phases = [(facts.loc[sid, "paid_through"], op.params["items"])]
        else:
            starts = [facts.loc[sid, "paid_through"]] + [
                pd.Timestamp(p["end_date"], unit="s", tz="UTC") for p in op.params["phases"][:-1]
            ]
            phases = list(zip(starts, [p["items"] for p in op.params["phases"]], strict=True))
        for start, got in phases:
            want = {
                r.price_id: (None if r.price_id in metered else int(r.quantity))
                for r in _active(mine, start).itertuples()
            }
            have = {ref_key(i["price"]).removeprefix("price:"): i.get("quantity") for i in got}
            assert have == want, (sid, start)


def test_phase_3_switches_become_schedule_phases(
    demo: tuple[Snapshot, Rollout], plans: dict[int, Plan], built: dict[int, list[Operation]]
) -> None:
    snapshot, _ = demo
    plan = plans[3]
    facts = cutover_facts(plan, snapshot).set_index("subscription_id")
    by_sub = {op.subscription_id: op for op in subscription_operations(built[3])}
    switched = plan.lineage[plan.lineage["change"] == "switched"]
    checked = 0
    for r in switched.drop_duplicates(["subscription_id", "valid_from"]).itertuples():
        op = by_sub[r.subscription_id]
        if r.valid_from <= facts.loc[r.subscription_id, "paid_through"]:
            assert op.kind == "subscription" or all(
                ref_key(i["price"]) != f"price:{r.legacy_price_id}"
                for p in op.params["phases"]
                for i in p["items"]
            )
            continue
        assert op.kind == "subscription_schedule"
        phases = op.params["phases"]
        ends = [p.get("end_date") for p in phases]
        at = ends.index(_seconds(r.valid_from))
        before = {ref_key(i["price"]) for i in phases[at]["items"]}
        after = {ref_key(i["price"]) for i in phases[at + 1]["items"]}
        assert f"price:{r.legacy_price_id}" in before and f"price:{r.new_price_id}" in after
        assert f"price:{r.new_price_id}" not in before
        assert phases[at + 1]["proration_behavior"] == "none"  # switches are at renewals
        assert op.params["end_behavior"] == "release" and "end_date" not in phases[-1]
        checked += 1
    assert checked > 0


# ------------------------------------------------------------------ batches ----


def test_a_batch_of_some_subscriptions_creates_only_what_they_use(
    demo: tuple[Snapshot, Rollout], plans: dict[int, Plan]
) -> None:
    snapshot, rollout = demo
    plan = plans[2]
    chosen = sorted(plan.assignments["subscription_id"])[:5]
    ops = build_operations(plan, rollout, snapshot, batch_id="b", subscription_ids=chosen)
    assert sorted(o.subscription_id for o in subscription_operations(ops)) == chosen
    used = {r for o in subscription_operations(ops) for r in refs_in(o.params)}
    catalog_keys = {o.key for o in ops if o.kind in ("price", "coupon", "tax_rate", "customer")}
    assert catalog_keys == {
        k for k in used if k.split(":")[0] in ("price", "coupon", "tax_rate", "customer")
    }
    products = {o.key for o in ops if o.kind == "product"}
    assert products == {ref_key(o.params["product"]) for o in ops if o.kind == "price"}
    with pytest.raises(OperationsError, match="SUB-NOPE"):
        build_operations(plan, rollout, snapshot, batch_id="b", subscription_ids=["SUB-NOPE"])
    assert build_operations(plan, rollout, snapshot, batch_id="b", subscription_ids=[]) == []


def test_tiny_plan_coupons_and_tax(tmp_path: Path) -> None:
    plan, rollout, legacy = tiny_case()
    ops = {o.key: o for o in build_operations(plan, rollout, legacy, batch_id="tiny")}
    assert ops["coupon:LOYAL10_FOREVER"].params["duration"] == "forever"
    # 500 off the seats until 2026-04-15: invoices of Dec 15, Jan 15, Feb 15 and Mar 15
    seats = ops["coupon:SEATS5_GBP_4M"].params
    assert (seats["amount_off"], seats["currency"], seats["duration"]) == (500, "gbp", "repeating")
    assert seats["duration_in_months"] == 4
    assert ops["coupon:SB_PCT12_5_ONCE"].params == {
        "id": "SB_PCT12_5_ONCE",
        "percent_off": "12.5",
        "duration": "once",
        "metadata": {"shadowbill_key": "coupon:SB_PCT12_5_ONCE"},
    }
    s1 = ops["subscription:S1"].params
    assert s1["items"][0]["discounts"] == [{"coupon": "{{ref:coupon:SEATS5_GBP_4M}}"}]
    assert s1["discounts"] == [{"coupon": "{{ref:coupon:LOYAL10_FOREVER}}"}]
    assert s1["default_tax_rates"] == ["{{ref:tax_rate:vat_gb}}"]
    assert s1["billing_cycle_anchor"] == _seconds(T("2025-12-15T10:00:00Z"))
    assert "default_tax_rates" not in ops["subscription:S3"].params  # tax exempt customer
    assert ops["customer:C3"].params["tax_exempt"] == "exempt"
    assert ops["subscription:S3"].params["billing_cycle_anchor"] == _seconds(
        T("2025-12-10T12:30:00Z")
    )  # no invoice: the last renewal before the cut-over
    s2 = ops["subscription_schedule:S2"].params
    assert s2["start_date"] == _seconds(T("2025-03-01T08:00:00Z"))
    assert [p.get("end_date") for p in s2["phases"]] == [_seconds(T("2026-03-01T08:00:00Z")), None]
    assert "tax_rate:vat_de" not in ops and "tax_rate:vat_gb" in ops


def test_a_legacy_coupon_id_with_two_different_terms_is_refused() -> None:
    plan, rollout, legacy = tiny_case()
    d = plan.snapshot["discounts"]
    d3 = d[d["discount_id"] == "D3"].assign(coupon_id="SAME")  # S3: 12.5% once
    d5 = d3.assign(  # S1: 15% once, same coupon id
        discount_id="D5",
        subscription_id="S1",
        percent_off="15",
        starts_at=T("2025-12-01"),
        ends_at=T("2026-01-01"),
    )
    discounts = pd.concat([d3, d5], ignore_index=True).astype(d.dtypes.to_dict())
    bad = dataclasses.replace(
        plan, snapshot=Snapshot(dict(plan.snapshot.tables, discounts=discounts))
    )
    with pytest.raises(OperationsError, match=r"coupon SAME_ONCE.*S3 and S1"):
        build_operations(bad, rollout, legacy, batch_id="b")


def test_price_protection_becomes_a_coupon_from_the_first_protected_period(
    demo: tuple[Snapshot, Rollout], plans: dict[int, Plan]
) -> None:
    snapshot, rollout = demo
    plan = plans[2]
    assert len(plan.protections) > 0
    # the demo's 10% cap never binds; a 0% cap makes every increase a protection amount
    capped = dataclasses.replace(
        plan, protections=plan.protections.assign(max_increase_percent="0")
    )
    projected = projected_protection(
        capped, rollout, snapshot, capped.protections["subscription_id"]
    )
    assert len(projected) > 0
    ops = build_operations(capped, rollout, snapshot, batch_id="pp")
    by_key = {o.key: o for o in ops}
    facts = cutover_facts(capped, snapshot).set_index("subscription_id")
    for sid, rows in projected.groupby("subscription_id"):
        coupon = by_key[f"coupon:pp_{sid}"].params
        assert coupon["amount_off"] == int(rows["amount_off"].iloc[0])
        assert isinstance(coupon["amount_off"], int)
        op = next(o for o in ops if o.subscription_id == sid and o.kind in SUB_KINDS)
        first = rows["starts_at"].min()
        assert first > facts.loc[sid, "paid_through"]
        assert op.kind == "subscription_schedule"
        phases = op.params["phases"]
        ref = {"coupon": f"{{{{ref:coupon:pp_{sid}}}}}"}
        assert ref not in phases[0].get("discounts", [])
        start_of = [op.params["start_date"]] + [p["end_date"] for p in phases[:-1]]
        with_pp = [
            s for s, p in zip(start_of, phases, strict=True) if ref in p.get("discounts", [])
        ]
        assert with_pp and with_pp[0] == _seconds(first)
        last = rows["starts_at"].max()
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        assert coupon["duration"] == ("once" if months == 1 else "repeating")
        assert coupon.get("duration_in_months", 1) == months
        assert "coupon pp_" in op.params["metadata"]["shadowbill_price_protection"]
    unprotected = set(capped.protections["subscription_id"]) - set(projected["subscription_id"])
    for sid in unprotected:
        assert f"coupon:pp_{sid}" not in by_key
        op = next(o for o in ops if o.subscription_id == sid and o.kind in SUB_KINDS)
        assert "no coupon" in op.params["metadata"]["shadowbill_price_protection"]


# ------------------------------------------------------------------ catalog ----


_CATALOG = target_price_catalog(demo_rollout())
_PRICE_CURRENCIES = [
    (p.id, cur) for p in _CATALOG.prices for cur in sorted({p.currency, *p.currency_options})
]


def _amount(entry: dict[str, Any], name: str) -> Decimal | None:
    if f"{name}_decimal" in entry:
        assert isinstance(entry[f"{name}_decimal"], str)
        return Decimal(entry[f"{name}_decimal"])
    if name in entry:
        assert isinstance(entry[name], int)
        return Decimal(entry[name])
    return None


@pytest.mark.parametrize(("price_id", "currency"), _PRICE_CURRENCIES)
def test_price_amounts_equal_the_catalogs(price_id: str, currency: str) -> None:
    price: Price = _CATALOG.price(price_id)
    params = price_operation("b", price).params
    terms = _CATALOG.price_terms(price_id, currency)
    amounts = params if currency == params["currency"] else params["currency_options"][currency]
    if terms.billing_scheme == "tiered":
        tiers = amounts["tiers"]
        assert len(tiers) == len(terms.tiers)
        for got, want in zip(tiers, terms.tiers, strict=True):
            assert got["up_to"] == ("inf" if want.up_to is None else want.up_to)
            assert (_amount(got, "unit_amount") or Decimal(0)) == want.unit
            assert (_amount(got, "flat_amount") or Decimal(0)) == want.flat
        assert params["tiers_mode"] == terms.tiers_mode
    else:
        assert _amount(amounts, "unit_amount") == terms.unit_amount
    rec = params["recurring"]
    assert (rec["interval"], rec["interval_count"], rec["usage_type"]) == (
        terms.interval,
        terms.interval_count,
        terms.usage_type,
    )
    assert ("meter" in rec) == (terms.meter is not None)
    if terms.divide_by != 1:
        assert params["transform_quantity"] == {
            "divide_by": terms.divide_by,
            "round": "up" if terms.round_up else "down",
        }
    assert params.get("tax_behavior", "unspecified") == price.tax_behavior
    assert params["lookup_key"] == (price.lookup_key or price.id)
    json.dumps(params)  # plain data


# ------------------------------------------------------------------ durations ----


def _one_sub_batch(start: pd.Timestamp, interval: str) -> ops_module._Batch:
    steps, _ = cadence(pd.Series([interval]), pd.Series([1]))
    frame = pd.DataFrame({"subscription_id": ["S"], "customer_id": ["C"], "currency": ["usd"]})
    return ops_module._Batch(frame, to_us(pd.Series([start]), 0), steps)


_DAY = pd.Timedelta(days=1)


@settings(max_examples=120, deadline=None)
@given(
    anchor_day=st.integers(1, 31),
    interval=st.sampled_from(["month", "year"]),
    start_days=st.integers(-400, 800),
    length_days=st.one_of(st.none(), st.integers(1, 1500)),
)
def test_a_coupons_duration_covers_exactly_the_invoices_the_discount_covers(
    anchor_day: int, interval: str, start_days: int, length_days: int | None
) -> None:
    """Stripe's reading of the coupon (once; forever; repeating N months from the first
    invoice it applies to) covers the same target invoices as the discount's dates."""
    anchor = pd.Timestamp(f"2025-01-{anchor_day:02d}T09:30:00Z")
    batch = _one_sub_batch(anchor, interval)
    starts = anchor + start_days * _DAY
    ends = None if length_days is None else starts + length_days * _DAY
    d = ops_module._durations(
        batch,
        np.zeros(1, dtype=np.int64),
        to_us(pd.Series([starts]), 0),
        np.array([ops_module.OPEN if ends is None else to_us(pd.Series([ends]), 0)[0]]),
    )
    step = 12 if interval == "year" else 1
    lattice = list(add_months(pd.Series([anchor] * 80), np.arange(80) * step))
    covered = [p for p in lattice if p >= starts and (ends is None or p < ends)]
    invoices, months = int(d.invoices[0]), int(d.months[0])
    if ends is None:
        assert invoices == -1
        return
    if not covered:
        assert invoices == 0
        return
    first = pd.Timestamp(int(d.first_us[0]), unit="us", tz="UTC")
    assert first == covered[0]
    if invoices == 1:
        stripe = [first]
    else:
        until = add_months(pd.Series([first]), months).iloc[0]
        stripe = [p for p in lattice if first <= p < until]
    assert stripe == covered
