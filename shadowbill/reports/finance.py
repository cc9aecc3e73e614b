"""The finance part of the report model: revenue net of tax, history apart from projection,
the run-rate at the cut-over and its bridge, billings beside recognized revenue, and plan
moves by rollout rule under the names people use.

Built from the result's ``revenue``, ``run_rate`` and ``bridge`` frames
(``shadowbill.reconcile.revenue``). Money is integer minor units per currency; tax is
always in its own fields and never a cause of a revenue change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports import aggregates as agg

BASES = ("history", "projection", "combined")
CUSTOMERS_PER_RULE = 12  # customers named under each rule of the plan-move table


@dataclass(frozen=True)
class BasisTotals:
    """One currency's revenue over history, projection or both, net of tax."""

    currency: str
    basis: str  # "history" | "projection" | "combined"
    actual: int  # issued legacy invoices (history only)
    actual_tax: int
    legacy: int  # legacy model recomputed (history) or continued (projection)
    legacy_tax: int
    new: int  # new model (as if applied, in history)
    new_tax: int

    @property
    def delta(self) -> int:
        """New minus legacy, net of tax."""
        return self.new - self.legacy

    @property
    def tax_delta(self) -> int:
        """The tax difference: its own reconciliation line, not revenue."""
        return self.new_tax - self.legacy_tax

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of legacy."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class RunRate:
    """MRR at the cut-over and the next twelve months, net of tax, for one currency and
    segment ("" for every segment)."""

    currency: str
    segment: str
    customers: int
    legacy_mrr: int
    new_mrr: int
    legacy_next_12: int
    new_next_12: int

    @property
    def legacy_arr(self) -> int:
        """Twelve times the legacy MRR."""
        return 12 * self.legacy_mrr

    @property
    def new_arr(self) -> int:
        """Twelve times the new MRR."""
        return 12 * self.new_mrr

    @property
    def delta(self) -> int:
        """New minus legacy MRR."""
        return self.new_mrr - self.legacy_mrr

    @property
    def change_bp(self) -> int | None:
        """The MRR change in hundredths of a percent of legacy."""
        return agg.ratio_basis_points(self.delta, self.legacy_mrr)


@dataclass(frozen=True)
class BridgeStep:
    """One step from the legacy MRR to the new MRR of a currency."""

    currency: str
    step: str  # "legacy_mrr", a cause, "allocation", "new_mrr"
    amount: int

    @property
    def label(self) -> str:
        """The step as a reader sees it."""
        special = {
            "legacy_mrr": "Legacy MRR",
            "new_mrr": "New MRR",
            "allocation": "Day allocation (rounding of the ratable split)",
        }
        return special.get(self.step) or agg.cause_label(self.step)


@dataclass(frozen=True)
class MonthRevenue:
    """Billings and recognized revenue of one month and currency, net of tax."""

    month: str
    currency: str
    basis: str  # "history", "projection" or "history + projection"
    actual_billed: int
    actual_recognized: int
    legacy_billed: int
    legacy_recognized: int
    new_billed: int
    new_recognized: int


@dataclass(frozen=True)
class PlanGroup:
    """Legacy plan -> new plan of some customers, in names and in price ids."""

    legacy_plan: str  # price ids, "a + b"
    new_plan: str
    legacy_names: str  # catalog nicknames, "Starter monthly + SMS"
    new_names: str
    customers: int


@dataclass(frozen=True)
class RuleMove:
    """The customers one rollout rule moves, in one currency."""

    rule_id: str
    description: str
    currency: str
    customers: int
    legacy: int  # compared periods, incl. tax (the customers' totals)
    new: int
    moves: tuple[PlanGroup, ...]  # largest first
    sample: tuple[tuple[str, str], ...]  # (customer id, name) of the first customers

    @property
    def delta(self) -> int:
        """New minus legacy."""
        return self.new - self.legacy

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of legacy."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class Finance:
    """The finance sections of the report."""

    cutover_first: pd.Timestamp | None
    cutover_last: pd.Timestamp | None
    revenue: tuple[BasisTotals, ...]  # per currency and basis
    run_rate: tuple[RunRate, ...]  # per currency: every segment first, then each segment
    bridge: tuple[BridgeStep, ...]
    months: tuple[MonthRevenue, ...]
    rule_moves: tuple[RuleMove, ...]
    price_names: dict[str, str]

    def for_basis(self, basis: str) -> tuple[BasisTotals, ...]:
        """The revenue rows of one basis, by currency."""
        return tuple(r for r in self.revenue if r.basis == basis)

    def summary_dict(self) -> dict[str, object]:
        """The finance figures for summary.json (amounts in minor units, net of tax)."""
        return {
            "cutover": {
                "first": None if self.cutover_first is None else self.cutover_first.isoformat(),
                "last": None if self.cutover_last is None else self.cutover_last.isoformat(),
            },
            "revenue_net_of_tax": {
                cur: {
                    r.basis: {
                        "actual_legacy": r.actual,
                        "actual_legacy_tax": r.actual_tax,
                        "legacy": r.legacy,
                        "legacy_tax": r.legacy_tax,
                        "new": r.new,
                        "new_tax": r.new_tax,
                    }
                    for r in self.revenue
                    if r.currency == cur
                }
                for cur in sorted({r.currency for r in self.revenue})
            },
            "run_rate": {
                r.currency: {
                    "customers": r.customers,
                    "legacy_mrr": r.legacy_mrr,
                    "new_mrr": r.new_mrr,
                    "legacy_arr": r.legacy_arr,
                    "new_arr": r.new_arr,
                    "legacy_next_12_months": r.legacy_next_12,
                    "new_next_12_months": r.new_next_12,
                }
                for r in self.run_rate
                if r.segment == ""
            },
        }


def plan_names(plan: str, names: dict[str, str]) -> str:
    """ "a + b" in price ids as "Name A + Name B" (ids without a name stay as they are)."""
    if not plan:
        return ""
    return " + ".join(names.get(p.strip(), p.strip()) for p in plan.split("+"))


def _revenue(frame: pd.DataFrame) -> tuple[BasisTotals, ...]:
    cols = ["actual", "legacy", "new"]
    money = [f"{c}_billed" for c in cols] + [f"{c}_tax" for c in cols]
    sums = frame.groupby(["currency", "basis"])[money].sum()
    combined = frame.groupby("currency")[money].sum()
    rows = []
    for cur in sorted(combined.index):  # currencies x bases: small
        for basis in BASES:
            if basis == "combined":
                r = combined.loc[cur]
            elif (cur, basis) in sums.index:
                r = sums.loc[(cur, basis)]
            else:
                r = pd.Series(0, index=money)
            rows.append(
                BasisTotals(
                    currency=str(cur),
                    basis=basis,
                    **{c: agg.as_int(r[f"{c}_billed"]) for c in cols},
                    **{f"{c}_tax": agg.as_int(r[f"{c}_tax"]) for c in cols},
                )
            )
    return tuple(rows)


def _run_rate(run_rate: pd.DataFrame, customers: pd.DataFrame) -> tuple[RunRate, ...]:
    segment = customers.drop_duplicates("customer_id").set_index("customer_id")["segment"]
    frame = run_rate.assign(
        segment=segment.reindex(run_rate["customer_id"]).fillna("").to_numpy(), n=1
    )
    values = ["n", "legacy_mrr", "new_mrr", "legacy_next_12", "new_next_12"]
    rows = []
    for cur, part in frame.groupby("currency", sort=True):  # currencies: few
        groups = [("", part[values].sum())]
        groups += [(str(s), g[values].sum()) for s, g in part.groupby("segment", sort=True)]
        for seg, r in groups:
            rows.append(
                RunRate(
                    currency=str(cur),
                    segment=seg,
                    customers=agg.as_int(r["n"]),
                    legacy_mrr=agg.as_int(r["legacy_mrr"]),
                    new_mrr=agg.as_int(r["new_mrr"]),
                    legacy_next_12=agg.as_int(r["legacy_next_12"]),
                    new_next_12=agg.as_int(r["new_next_12"]),
                )
            )
    return tuple(rows)


def _months(frame: pd.DataFrame) -> tuple[MonthRevenue, ...]:
    values = [f"{s}_{m}" for s in ("actual", "legacy", "new") for m in ("billed", "recognized")]
    sums = frame.groupby(["currency", "month"], sort=True)[values].sum()
    bases = frame.groupby(["currency", "month"], sort=True)["basis"].agg(
        lambda b: " + ".join(sorted(set(b)))
    )
    table = sums.join(bases).reset_index()
    return tuple(
        MonthRevenue(
            month=str(r["month"]),
            currency=str(r["currency"]),
            basis=str(r["basis"]),
            **{v: agg.as_int(r[v]) for v in values},
        )
        for r in table.to_dict("records")  # months x currencies: small
    )


def _rule_moves(result: ReconciliationResult, names: dict[str, str]) -> tuple[RuleMove, ...]:
    c = result.customers
    mapped = c[(c["status"] == "mapped").fillna(False)].sort_values("customer_id", kind="stable")
    rows = []
    keys = mapped[["rule_id", "currency"]].astype("string").fillna("")
    for (rule, cur), part in mapped.groupby([keys["rule_id"], keys["currency"]], sort=True):
        combos = (
            part.assign(
                lp=part["legacy_plan"].astype("string").fillna(""),
                np_=part["new_plan"].astype("string").fillna(""),
            )
            .groupby(["lp", "np_"], sort=True)
            .size()
            .sort_values(ascending=False, kind="stable")
        )
        moves = tuple(
            PlanGroup(
                legacy_plan=str(key[0]),  # type: ignore[index]
                new_plan=str(key[1]),  # type: ignore[index]
                legacy_names=plan_names(str(key[0]), names),  # type: ignore[index]
                new_names=plan_names(str(key[1]), names),  # type: ignore[index]
                customers=int(n),
            )
            for key, n in combos.items()  # distinct plan moves of one rule: few
        )
        sample = part.head(CUSTOMERS_PER_RULE)
        rows.append(
            RuleMove(
                rule_id=str(rule),
                description=result.rule_descriptions.get(str(rule), ""),
                currency=str(cur),
                customers=len(part),
                legacy=agg.as_int(part["legacy_total"].sum()),
                new=agg.as_int(part["new_total"].sum()),
                moves=moves,
                sample=tuple(
                    (str(i), "" if n is pd.NA else str(n))
                    for i, n in zip(sample["customer_id"], sample["name"], strict=True)
                ),
            )
        )
    rows.sort(key=lambda r: (r.currency, -r.customers, r.rule_id))
    return tuple(rows)


def build_finance(result: ReconciliationResult) -> Finance:
    """The finance sections of one result's report."""
    cut = result.cutover
    bridge = result.bridge
    return Finance(
        cutover_first=None if cut is None else pd.Timestamp(cut[0]),
        cutover_last=None if cut is None else pd.Timestamp(cut[1]),
        revenue=_revenue(result.revenue),
        run_rate=_run_rate(result.run_rate, result.customers),
        bridge=tuple(
            BridgeStep(str(r.currency), str(r.step), agg.as_int(r.amount))
            for r in bridge.itertuples(index=False)  # currencies x steps: small
            if r.step in ("legacy_mrr", "new_mrr") or agg.as_int(r.amount) != 0
        ),
        months=_months(result.revenue),
        rule_moves=_rule_moves(result, result.price_names),
        price_names=dict(result.price_names),
    )


__all__ = [
    "BasisTotals",
    "BridgeStep",
    "Finance",
    "MonthRevenue",
    "PlanGroup",
    "RuleMove",
    "RunRate",
    "build_finance",
    "plan_names",
]
