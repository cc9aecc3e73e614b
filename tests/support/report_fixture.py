"""A synthetic but realistic ReconciliationResult, built vectorized, for the report writers.

Imported by conftest.py (the fixtures) and by bench/bench_report.py (100,000 customers).

Customers in USD, EUR, JPY and KWD, both segments, several plan moves, B findings with
several causes, A drift and C verification findings, unmapped and quarantined rows,
hostile customer names, and a failing or a passing gate verdict. The same builder makes
the 100,000-customer result of bench/bench_report.py.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from shadowbill.reconcile.findings import FINDING_COLUMNS, finding_ids
from shadowbill.reconcile.result import (
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    MONTHLY_COLUMNS,
    PLAN_MOVE_COLUMNS,
    WATERFALL_COLUMNS,
    GateCheck,
    GateVerdict,
    ReconciliationResult,
)
from shadowbill.snapshot.tables import QUARANTINE
from shadowbill.snapshot.tables import empty_frame as empty_table

SCRIPT_NAME = "<script>alert(1)</script>"
QUOTES_NAME = '"quotes" & ampersands'
HOSTILE_NAMES = (
    SCRIPT_NAME,
    QUOTES_NAME,
    "</script><img src=x onerror=alert(2)>",
    '=HYPERLINK("http://example.invalid","click")',
    "Müller & Söhne GmbH",
    "株式会社サンプル",
)
GENERATED_AT = pd.Timestamp("2026-03-02T09:30:00Z")
CURRENCIES = ("USD", "EUR", "JPY", "KWD")
# minor units per US cent, as a fraction: EUR 0.92, JPY 1.5 (yen), KWD 3.1 (fils).
_RATE = {"USD": (1, 1), "EUR": (92, 100), "JPY": (3, 2), "KWD": (31, 10)}
_COUNTRIES = {"USD": ("US",), "EUR": ("DE", "FR", "NL", "IE"), "JPY": ("JP",), "KWD": ("KW",)}
# legacy plan -> (new plan, rule, seat price in US cents, add-on in US cents)
_PLANS = {
    "starter_month": ("essential_month_2025", "r01_starter", 3900, 0),
    "pro_month_v2": ("advanced_month", "r02_pro", 9900, 0),
    "pro_month_v2 + resolution_bot_month": (
        "advanced_month + fin_resolution",
        "r03_pro_bot",
        9900,
        4900,
    ),
    "premium_month": ("expert_month", "r04_premium", 13900, 0),
    "essential_month": ("essential_month_2025", "r05_essential", 2900, 0),
}
_UNMAPPED_PLAN = "legacy_custom_enterprise"
# The causes of the new total in waterfall order (the rounding step comes last).
_CAUSES = (
    "price_change",
    "quantity_transform",
    "discount_lost",
    "price_protection",
    "new_usage_charge",
    "removed_item",
    "proration_method",
    "rounding",
    "unexplained",
)
_SHA = {
    k: hashlib.sha256(k.encode()).hexdigest()
    for k in ("snapshot", "legacy_catalog", "new_catalog", "rollout", "policy")
}


def _convert(cents: np.ndarray, currency: np.ndarray) -> np.ndarray:
    """US cents to minor units of each row's currency (integer arithmetic)."""
    num = np.select([currency == c for c in CURRENCIES], [_RATE[c][0] for c in CURRENCIES])
    den = np.select([currency == c for c in CURRENCIES], [_RATE[c][1] for c in CURRENCIES])
    return (cents * num) // den


def _customers(n: int, rng: np.random.Generator, passing: bool) -> pd.DataFrame:
    idx = np.arange(n)
    currency = rng.choice(CURRENCIES, size=n, p=[0.5, 0.25, 0.15, 0.1])
    currency[: min(n, 6)] = "USD"
    country = np.empty(n, dtype=object)
    for cur in CURRENCIES:
        mask = currency == cur
        country[mask] = rng.choice(_COUNTRIES[cur], size=int(mask.sum()))
    plans = np.array(list(_PLANS), dtype=object)
    legacy_plan = plans[rng.integers(0, len(plans), size=n)]
    legacy_plan[: min(n, 2)] = "pro_month_v2 + resolution_bot_month"
    unmapped = (rng.random(n) < 0.02) & (idx >= 6) & (not passing)
    legacy_plan = np.where(unmapped, _UNMAPPED_PLAN, legacy_plan)
    names = np.array([f"Company {i:06d} Ltd" for i in idx], dtype=object)
    names[: min(n, len(HOSTILE_NAMES))] = HOSTILE_NAMES[: min(n, len(HOSTILE_NAMES))]
    return pd.DataFrame(
        {
            "customer_id": [f"cus_{i:06d}" for i in idx],
            "name": names,
            "segment": np.where(rng.random(n) < 0.3, "sales", "self_serve"),
            "country": country,
            "currency": currency,
            "legacy_plan": legacy_plan,
            "unmapped": unmapped,
        }
    )


def _components(c: pd.DataFrame, rng: np.random.Generator, passing: bool) -> pd.DataFrame:
    """Per customer and month: the legacy lines and the cause amounts of the new model."""
    n = len(c)
    cur = c["currency"].to_numpy()
    plan = c["legacy_plan"].to_numpy()
    seat_cents = np.array([_PLANS.get(p, ("", "", 25000, 0))[2] for p in plan], dtype=np.int64)
    addon_cents = np.array([_PLANS.get(p, ("", "", 0, 0))[3] for p in plan], dtype=np.int64)
    seats = np.where(c["segment"] == "sales", rng.integers(10, 120, n), rng.integers(1, 12, n))
    base = _convert(seat_cents * seats, cur)
    addon = _convert(addon_cents, cur)
    has_discount = rng.random(n) < 0.25
    discount = np.where(has_discount, base // 10, 0)
    lost = has_discount & (rng.random(n) < 0.5)
    removed = (addon > 0) & (rng.random(n) < 0.3)
    comp = pd.DataFrame(
        {
            "base": base,
            "addon": addon,
            "discount": discount,
            "price_change": _convert(rng.integers(-800, 2400, n) * np.minimum(seats, 20), cur),
            "quantity_transform": np.where(
                rng.random(n) < 0.3, _convert(rng.integers(-2, 4, n) * seat_cents, cur), 0
            ),
            "discount_lost": np.where(lost, discount, 0),
            "price_protection": 0,
            "new_usage_charge": np.where(addon > 0, _convert(rng.integers(0, 90, n) * 99, cur), 0),
            "removed_item": np.where(removed, -addon, 0),
            "proration_method": np.where(
                rng.random(n) < 0.05, _convert(rng.integers(-500, 500, n), cur), 0
            ),
            "rounding": np.where(rng.random(n) < 0.1, rng.integers(-1, 2, n), 0),
            "unexplained": 0,
            "carried": has_discount & ~lost,
            "seats": seats,
        }
    )
    comp["price_change"] = np.maximum(comp["price_change"], -(base // 3))
    unmapped = c["unmapped"].to_numpy()
    unchanged = (rng.random(n) < 0.05) & (np.arange(n) >= 6)
    comp.loc[unmapped | unchanged, list(_CAUSES)] = 0
    comp["carried"] = (comp["discount"] > 0) & (comp["discount_lost"] == 0)
    # Price protection caps an increase above 30% at 30% of the legacy monthly bill.
    legacy_month = base + addon - discount
    raw = comp[list(_CAUSES)].sum(axis=1).to_numpy()
    cap = legacy_month * 3 // 10
    comp["price_protection"] = np.where(~unmapped & (raw > cap), cap - raw, 0)
    if not passing:
        unexplained = ~unmapped & (rng.random(n) < 0.01)
        unexplained[: min(n, 2)] = True  # the hostile names show in the exceptions
        comp["unexplained"] = np.where(unexplained, _convert(rng.integers(1, 3000, n), cur), 0)
    comp["legacy_month"] = legacy_month
    return comp


def _months(months: int) -> pd.DatetimeIndex:
    return pd.date_range("2025-01-01", periods=months, freq="MS", tz="UTC")


def build_result(
    n_customers: int = 300,
    months: int = 12,
    *,
    seed: int = 7,
    passing: bool = False,
    detail_customers: int = 120,
) -> ReconciliationResult:
    """A deterministic synthetic reconciliation of phase 2 (existing customers)."""
    rng = np.random.default_rng(seed)
    c = _customers(n_customers, rng, passing)
    comp = _components(c, rng, passing)
    unmapped = c["unmapped"].to_numpy()
    mapped = ~unmapped
    n = len(c)
    # Monthly amounts: the unexplained amount falls in the first month only.
    cause_month = comp[[x for x in _CAUSES if x != "unexplained"]].sum(axis=1).to_numpy()
    new_month = comp["legacy_month"].to_numpy() + cause_month
    legacy_total = comp["legacy_month"].to_numpy() * months
    new_total = new_month * months + comp["unexplained"].to_numpy()
    drift = np.where(mapped & (rng.random(n) < 0.04), rng.integers(-900, 900, n), 0)
    drift[: min(n, 1)] = 0
    delta = new_total - legacy_total
    na = pd.NA
    customers = pd.DataFrame(
        {
            "customer_id": c["customer_id"],
            "name": c["name"],
            "segment": c["segment"],
            "country": c["country"],
            "currency": c["currency"],
            "legacy_plan": c["legacy_plan"],
            "new_plan": np.where(mapped, [_PLANS.get(p, ("",))[0] for p in c["legacy_plan"]], na),
            "rule_id": np.where(mapped, [_PLANS.get(p, ("", ""))[1] for p in c["legacy_plan"]], na),
            "status": np.where(mapped, "mapped", "unmapped"),
            "invoices": np.full(n, months),
            "legacy_total": legacy_total,
            "new_total": pd.array(np.where(mapped, new_total, 0), dtype="Int64"),
            "delta": pd.array(np.where(mapped, delta, 0), dtype="Int64"),
            "delta_pct": np.where(mapped, delta * 100 / np.maximum(legacy_total, 1), np.nan),
            "unexplained": comp["unexplained"],
            "drift": drift,
        }
    ).astype(CUSTOMER_COLUMNS)
    customers.loc[unmapped, ["new_total", "delta", "delta_pct"]] = pd.NA

    waterfall = _waterfall(customers, comp, months, mapped)
    period = _months(months)
    monthly = _monthly(customers, comp, new_month, drift, period)
    plan_moves = (
        customers.assign(n=1, new_plan=customers["new_plan"].fillna(""))
        .groupby(["legacy_plan", "new_plan", "currency"], as_index=False)
        .agg(
            customers=("n", "sum"),
            legacy_total=("legacy_total", "sum"),
            new_total=("new_total", "sum"),
            delta=("delta", "sum"),
        )
        .astype(PLAN_MOVE_COLUMNS)
    )
    findings = _findings(customers, comp, new_month, drift, period, rng)
    detail = _detail_set(customers, detail_customers)
    lines = _lines(customers, comp, drift, period, detail)
    unmapped_frame = pd.DataFrame(
        {
            "subscription_id": customers.loc[unmapped, "customer_id"].str.replace("cus_", "sub_"),
            "customer_id": customers.loc[unmapped, "customer_id"],
            "reason": "no rule matches legacy price legacy_custom_enterprise",
        }
    ).astype("string")
    quarantine = empty_table(QUARANTINE)
    if not passing:
        quarantine = pd.DataFrame(
            {
                "table": ["customers", "invoices", "invoice_lines"],
                "source_ref": ["accounts id=991", "invoices id=<b>7</b>", "lines row 12"],
                "reason": ["bad_currency", "dangling_foreign_key", "null_required"],
                "detail": [
                    "currency 'XXX' is not ISO 4217",
                    "invoice names customer cus_missing, which is not in customers",
                    "amount is empty",
                ],
                "row": ['{"currency": "XXX"}', '{"id": "<script>x</script>"}', "{}"],
            }
        ).astype("string")
    exceptions = {
        "unmapped": unmapped_frame.reset_index(drop=True),
        "quarantined": quarantine,
        "unexplained": findings[findings["cause"] == "unexplained"].reset_index(drop=True),
        "drift": findings[findings["comparison"] == "A"].reset_index(drop=True),
    }
    subs = customers.loc[customers["customer_id"].isin(detail), "customer_id"]
    diffs = {
        s.replace("cus_", "sub_"): {
            "values_changed": {
                "root['items'][0]['price']": {"old_value": "legacy", "new_value": "new"}
            },
            "note": "<b>not markup</b>",
        }
        for s in subs.head(50)
    }
    return ReconciliationResult(
        phase=2,
        phase_name="Existing customers",
        generated_at=GENERATED_AT,
        findings=findings,
        customers=customers,
        waterfall=waterfall,
        monthly=monthly,
        plan_moves=plan_moves,
        lines=lines,
        exceptions=exceptions,
        diffs=diffs,
        verdict=_verdict(customers, findings, unmapped_frame, passing),
        fingerprints=dict(_SHA),
        counts={
            "cohort_customers": n,
            "subscriptions": n,
            "invoices_compared": int(customers["invoices"].sum()),
            "quarantined_rows": len(quarantine),
        },
    )


def _waterfall(
    customers: pd.DataFrame, comp: pd.DataFrame, months: int, mapped: np.ndarray
) -> pd.DataFrame:
    ids = customers["customer_id"].to_numpy()[mapped]
    cur = customers["currency"].to_numpy()[mapped]
    parts = [
        pd.DataFrame(
            {
                "customer_id": ids,
                "currency": cur,
                "order": 0,
                "cause": "legacy_total",
                "amount": customers["legacy_total"].to_numpy()[mapped],
                "explanation": "legacy catalog recomputed over the compared periods",
            }
        )
    ]
    for k, cause in enumerate(_CAUSES, start=1):
        per = comp[cause].to_numpy()[mapped]
        amount = per if cause == "unexplained" else per * months
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "currency": cur,
                    "order": k,
                    "cause": cause,
                    "amount": amount,
                    "explanation": f"{cause.replace('_', ' ')} over {months} invoices",
                }
            )[amount != 0]
        )
    parts.append(
        pd.DataFrame(
            {
                "customer_id": ids,
                "currency": cur,
                "order": 99,
                "cause": "new_total",
                "amount": customers["new_total"].to_numpy()[mapped],
                "explanation": "new model over the same periods",
            }
        )
    )
    w = pd.concat(parts, ignore_index=True).sort_values(["customer_id", "order"], kind="stable")
    w["step"] = w.groupby("customer_id").cumcount()
    return w[list(WATERFALL_COLUMNS)].astype(WATERFALL_COLUMNS).reset_index(drop=True)


def _long(customers: pd.DataFrame, period: pd.DatetimeIndex) -> pd.DataFrame:
    """Customers x months, row-major."""
    n, m = len(customers), len(period)
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(n), m),
            "month_no": np.tile(np.arange(m), n),
            "period_start": np.tile(period.to_numpy(), n),
        }
    )


def _monthly(
    customers: pd.DataFrame,
    comp: pd.DataFrame,
    new_month: np.ndarray,
    drift: np.ndarray,
    period: pd.DatetimeIndex,
) -> pd.DataFrame:
    long = _long(customers, period)
    r = long["row"].to_numpy()
    first = long["month_no"].to_numpy() == 0
    mapped = (customers["status"] == "mapped").to_numpy()[r]
    legacy = comp["legacy_month"].to_numpy()[r]
    new = new_month[r] + np.where(first, comp["unexplained"].to_numpy()[r], 0)
    # Both sides over the same (mapped) customers, as the reconciler compares them.
    frame = pd.DataFrame(
        {
            "month": pd.Series(long["period_start"]).dt.strftime("%Y-%m"),
            "currency": customers["currency"].to_numpy()[r],
            "actual_legacy": legacy + np.where(first, drift[r], 0),
            "legacy_total": legacy,
            "new_total": new,
        }
    )[mapped]
    out = frame.groupby(["month", "currency"], as_index=False).sum()
    return out[list(MONTHLY_COLUMNS)].astype(MONTHLY_COLUMNS)


def _findings(
    customers: pd.DataFrame,
    comp: pd.DataFrame,
    new_month: np.ndarray,
    drift: np.ndarray,
    period: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> pd.DataFrame:
    long = _long(customers, period)
    r = long["row"].to_numpy()
    first = long["month_no"].to_numpy() == 0
    mapped = (customers["status"] == "mapped").to_numpy()[r]
    cust = customers["customer_id"].to_numpy()[r]
    sub = np.char.replace(cust.astype(str), "cus_", "sub_")
    start = pd.DatetimeIndex(long["period_start"])
    key = pd.Series(sub).str.cat(pd.Series(start.strftime("%Y-%m-%dT%H:%M:%SZ")), sep="@")
    legacy = comp["legacy_month"].to_numpy()[r]
    unexplained = np.where(first, comp["unexplained"].to_numpy()[r], 0)
    new = new_month[r] + unexplained
    causes = comp[[x for x in _CAUSES if x != "unexplained"]].to_numpy()[r]
    dominant = np.array(_CAUSES[:-1])[np.abs(causes).argmax(axis=1)]
    cause = np.where(unexplained != 0, "unexplained", dominant)
    cur = customers["currency"].to_numpy()[r]
    base = {
        "customer_id": cust,
        "customer_name": customers["name"].to_numpy()[r],
        "subscription_id": sub,
        "invoice_key": key.to_numpy(),
        "period_start": start,
        "period_end": start + pd.DateOffset(months=1),
        "currency": cur,
    }
    b = pd.DataFrame(
        {
            **base,
            "comparison": "B",
            "level": "invoice",
            "line_key": pd.NA,
            "price_id": pd.NA,
            "expected": legacy,
            "actual": new,
            "delta": new - legacy,
            "cause": cause,
            "explanation": np.where(
                cause == "unexplained",
                "the new total differs by an amount no rule or price explains",
                "largest part of the change: " + np.char.replace(cause.astype(str), "_", " "),
            ),
        }
    )[mapped & (new != legacy)]
    a_rows = first & (drift[r] != 0)
    a_cause = np.where(np.abs(drift[r]) <= 1, "rounding", "price_change")
    a = pd.DataFrame(
        {
            **base,
            "comparison": "A",
            "level": "invoice",
            "line_key": pd.NA,
            "price_id": pd.NA,
            "expected": legacy,
            "actual": legacy + drift[r],
            "delta": drift[r],
            "cause": a_cause,
            "explanation": "legacy billed the seat price at a rate the legacy catalog does not have",
        }
    )[a_rows]
    c_rows = mapped & first & (rng.random(len(r)) < 0.02)
    c = pd.DataFrame(
        {
            **base,
            "comparison": "C",
            "level": "invoice",
            "line_key": pd.NA,
            "price_id": pd.NA,
            "expected": new,
            "actual": new + 1,
            "delta": 1,
            "cause": "rounding",
            "explanation": "the platform's preview rounds the usage line half-even",
        }
    )[c_rows]
    out = pd.concat([b, a, c], ignore_index=True)
    one_major = pd.Series(out["currency"]).map({"USD": 100, "EUR": 100, "JPY": 1, "KWD": 1000})
    size = out["delta"].abs()
    out["severity"] = np.select(
        [out["cause"].isin(["unexplained", "missing_line", "extra_line"]), size >= one_major],
        ["error", "warning"],
        default="info",
    )
    out = out.astype({k: v for k, v in FINDING_COLUMNS.items() if k != "finding_id"})
    out["finding_id"] = finding_ids(out.fillna({"invoice_key": "", "line_key": ""}))
    return out[list(FINDING_COLUMNS)].astype(FINDING_COLUMNS).reset_index(drop=True)


def _detail_set(customers: pd.DataFrame, first_n: int) -> set[str]:
    """Customers the reconciler would include line detail for: a sample plus exceptions."""
    ids = customers["customer_id"]
    special = (customers["unexplained"] != 0) | (customers["drift"] != 0)
    return set(ids.head(first_n)) | set(ids[special.fillna(False)].head(first_n))


def _lines(
    customers: pd.DataFrame,
    comp: pd.DataFrame,
    drift: np.ndarray,
    period: pd.DatetimeIndex,
    detail: set[str],
) -> pd.DataFrame:
    keep = (
        customers["customer_id"].isin(detail).to_numpy()
        & (customers["status"] == "mapped").to_numpy()
    )
    cs = customers[keep].reset_index(drop=True)
    cp = comp[keep].reset_index(drop=True)
    dr = drift[keep]
    long = _long(cs, period)
    r = long["row"].to_numpy()
    first = long["month_no"].to_numpy() == 0
    cust = cs["customer_id"].to_numpy()[r]
    sub = np.char.replace(cust.astype(str), "cus_", "sub_")
    start = pd.DatetimeIndex(long["period_start"])
    key = pd.Series(sub).str.cat(pd.Series(start.strftime("%Y-%m-%dT%H:%M:%SZ")), sep="@")
    legacy_plan = cs["legacy_plan"].to_numpy()[r]
    new_plan = cs["new_plan"].to_numpy()[r]
    head = {
        "customer_id": cust,
        "subscription_id": sub,
        "invoice_key": key.to_numpy(),
        "period_start": start,
        "currency": cs["currency"].to_numpy()[r],
    }

    def part(
        side: str,
        kind: str,
        price: object,
        desc: object,
        qty: object,
        amount: np.ndarray,
        mask: np.ndarray,
        explain: object = pd.NA,
    ) -> pd.DataFrame:
        return pd.DataFrame(
            {
                **head,
                "side": side,
                "kind": kind,
                "price_id": price,
                "description": desc,
                "quantity": qty,
                "amount": amount,
                "explain": explain,
            }
        )[mask]

    g = cp.to_dict("series")
    every = np.ones(len(r), dtype=bool)
    base = g["base"].to_numpy()[r]
    addon = g["addon"].to_numpy()[r]
    disc = g["discount"].to_numpy()[r]
    carried = g["carried"].to_numpy()[r]
    removed = g["removed_item"].to_numpy()[r] != 0
    seat_price = np.char.partition(legacy_plan.astype(str), " ")[:, 0]
    new_price = np.char.partition(new_plan.astype(str), " ")[:, 0]
    recurring_new = (
        base
        + sum(
            g[k].to_numpy()[r]
            for k in ("price_change", "quantity_transform", "proration_method", "rounding")
        )
        + np.where(first, g["unexplained"].to_numpy()[r], 0)
    )
    seats = g["seats"].to_numpy()[r]
    parts = []
    for side in ("legacy", "actual"):
        amount = base + (np.where(first, dr[r], 0) if side == "actual" else 0)
        parts += [
            part(side, "recurring", seat_price, "Seats (legacy plan)", seats, amount, every),
            part(
                side,
                "recurring",
                "resolution_bot_month",
                "Resolution Bot add-on",
                1,
                addon,
                addon > 0,
            ),
            part(side, "discount", pd.NA, "Loyalty discount 10%", pd.NA, -disc, disc > 0),
        ]
    parts += [
        part(
            "new",
            "recurring",
            new_price,
            "Seats <new plan>",
            seats,
            recurring_new,
            every,
            "price change and quantity transform",
        ),
        part(
            "new",
            "usage",
            "fin_resolution",
            "AI resolutions",
            1,
            g["new_usage_charge"].to_numpy()[r],
            g["new_usage_charge"].to_numpy()[r] > 0,
            "new usage charge",
        ),
        part(
            "new",
            "recurring",
            "resolution_bot_month",
            "Resolution Bot add-on",
            1,
            addon,
            (addon > 0) & ~removed,
        ),
        part(
            "new",
            "discount",
            pd.NA,
            "Loyalty discount 10% (carried)",
            pd.NA,
            -disc,
            carried & (disc > 0),
            "discount carried",
        ),
        part(
            "new",
            "discount",
            "coupon_protect",
            "Price protection",
            pd.NA,
            g["price_protection"].to_numpy()[r],
            g["price_protection"].to_numpy()[r] != 0,
            "increase capped at 30%",
        ),
    ]
    out = pd.concat(parts, ignore_index=True).sort_values(
        ["customer_id", "invoice_key", "side"], kind="stable"
    )
    return out[list(LINE_COLUMNS)].astype(LINE_COLUMNS).reset_index(drop=True)


def _verdict(
    customers: pd.DataFrame, findings: pd.DataFrame, unmapped: pd.DataFrame, passing: bool
) -> GateVerdict:
    unexplained = findings[findings["cause"] == "unexplained"]
    names = ", ".join(unexplained["customer_id"].drop_duplicates().head(3))
    checks = (
        GateCheck(
            "max_unexplained",
            unexplained.empty,
            "<= 0 findings",
            f"{len(unexplained)} findings",
            "every difference has a cause"
            if unexplained.empty
            else f"{len(unexplained)} unexplained differences, for {names} <and more>",
        ),
        GateCheck(
            "max_unmapped",
            unmapped.empty,
            "<= 0",
            str(len(unmapped)),
            "every subscription of the phase matched a rule"
            if unmapped.empty
            else f"{len(unmapped)} subscriptions match no rule",
        ),
        GateCheck(
            "allowed_causes",
            True,
            "price_change, rounding",
            "none outside the list",
            "only allowed causes",
        ),
        GateCheck(
            "increase_cap",
            True,
            "<= 250 customers above +40%",
            "3 customers",
            "3 customers pay more than 40% more",
        ),
    )
    return GateVerdict(all(c.passed for c in checks), checks)
