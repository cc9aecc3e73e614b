"""The report model: what one phase's reconciliation report says, as frozen data.

:func:`build_report` reads a :class:`ReconciliationResult` once and fills a
:class:`ReportData`; summary.json is its :meth:`ReportData.summary_dict`, the HTML page
renders it, and :meth:`ReportData.to_dict` gives all of it as JSON data for programs.
Money is integer minor units of the row's currency, never added across currencies;
nothing in the model is formatted text (the renderers format).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from shadowbill.reconcile.result import GateVerdict, ReconciliationResult
from shadowbill.reports import aggregates as agg
from shadowbill.reports.finance import Finance, build_finance

SUMMARY_VERSION = 1


def _text(value: object) -> str:
    return "" if value is None or value is pd.NA else str(value)


@dataclass(frozen=True)
class CurrencyTotals:
    """One currency's customers, invoices and money over the compared periods."""

    currency: str
    customers: int
    unmapped_customers: int
    invoices: int
    legacy: int  # legacy recomputed, mapped customers
    new: int  # new model, same customers and periods
    delta: int
    unmapped_legacy: int
    actual_legacy: int  # what the legacy engine issued
    drift: int
    unexplained: int
    customers_up: int
    customers_down: int
    customers_unchanged: int

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of the legacy total."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class PeriodRevenue:
    """Revenue of one period (a year or a month) in one currency."""

    period: str
    currency: str
    actual_legacy: int
    legacy: int
    new: int

    @property
    def delta(self) -> int:
        """New minus legacy recomputed."""
        return self.new - self.legacy

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of the legacy total."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class PlanMove:
    """Customers and money moving from one legacy plan to one new plan."""

    legacy_plan: str
    new_plan: str  # empty when unmapped
    currency: str
    customers: int
    legacy: int
    new: int
    delta: int

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of the legacy total."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class CauseTotal:
    """One cause's effect in one currency, from the customers' waterfalls."""

    cause: str
    currency: str
    customers: int
    increase: int
    decrease: int
    net: int

    @property
    def label(self) -> str:
        """The cause as a reader sees it."""
        return agg.cause_label(self.cause)


@dataclass(frozen=True)
class SegmentTotals:
    """One segment's customers and money in one currency."""

    segment: str
    currency: str
    customers: int
    unmapped: int
    up: int
    down: int
    unchanged: int
    legacy: int
    new: int
    delta: int
    unexplained: int

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of the legacy total."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class Mover:
    """A customer among the largest increases or decreases of its currency."""

    customer_id: str
    name: str
    segment: str
    currency: str
    legacy_plan: str
    new_plan: str
    legacy: int
    new: int
    delta: int

    @property
    def change_bp(self) -> int | None:
        """The change in hundredths of a percent of the legacy total."""
        return agg.ratio_basis_points(self.delta, self.legacy)


@dataclass(frozen=True)
class FindingRow:
    """One finding as the report lists it."""

    customer_id: str
    name: str
    comparison: str
    level: str
    period: str
    subscription_id: str
    cause: str
    severity: str
    currency: str
    expected: int | None
    actual: int | None
    delta: int | None
    explanation: str

    @property
    def cause_label(self) -> str:
        """The cause as a reader sees it."""
        return agg.cause_label(self.cause)


@dataclass(frozen=True)
class UnmappedRow:
    """A cohort subscription no rule maps."""

    subscription_id: str
    customer_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class QuarantinedRow:
    """A source row the extract set aside, with its reason."""

    table: str
    source_ref: str
    reason: str
    detail: str


@dataclass(frozen=True)
class QuarantineReason:
    """How many rows of a table were quarantined for one reason."""

    table: str
    reason: str
    rows: int


@dataclass(frozen=True)
class Exceptions:
    """The four exception lists: totals and their first rows."""

    unmapped_total: int
    unmapped: tuple[UnmappedRow, ...]
    quarantined_total: int
    quarantined_by_reason: tuple[QuarantineReason, ...]
    quarantined: tuple[QuarantinedRow, ...]
    unexplained_total: int
    unexplained: tuple[FindingRow, ...]
    drift_total: int
    drift: tuple[FindingRow, ...]
    limit: int


@dataclass(frozen=True)
class CustomerCounts:
    """Customers of the phase: all, mapped, unmapped, and which way their bill moves."""

    total: int
    mapped: int
    unmapped: int
    up: int
    down: int
    unchanged: int


@dataclass(frozen=True)
class ReportData:
    """Everything one phase's report shows, rendered by summary.json and the HTML page."""

    phase: int
    phase_name: str
    generated_at: pd.Timestamp  # the data's as-of instant (the result's)
    verdict: GateVerdict
    counts: dict[str, int]
    customers: CustomerCounts
    invoices: int
    totals: tuple[CurrencyTotals, ...]
    change_distribution: tuple[tuple[str, int], ...]
    findings: dict[str, Any]  # total, by_comparison, by_cause, by_severity, by_level, matrix
    unexplained_findings: int
    unexplained_customers: int
    unexplained_amount: dict[str, int]
    exception_counts: dict[str, int]
    fingerprints: dict[str, str]
    years: tuple[PeriodRevenue, ...]
    months: tuple[PeriodRevenue, ...]
    plan_moves: tuple[PlanMove, ...]
    plan_moves_total: int
    causes: tuple[CauseTotal, ...]
    segments: tuple[SegmentTotals, ...]
    ups: tuple[Mover, ...]
    downs: tuple[Mover, ...]
    exceptions: Exceptions
    finance: Finance

    def summary_dict(self) -> dict[str, Any]:
        """summary.json's content: the verdict, counts, totals per currency and findings."""
        return {
            "summary_version": SUMMARY_VERSION,
            "phase": self.phase,
            "phase_name": self.phase_name,
            "generated_at": self.generated_at.isoformat(),
            "verdict": {
                "passed": bool(self.verdict.passed),
                "failed_checks": [check.name for check in self.verdict.failures],
                "checks": [dataclasses.asdict(check) for check in self.verdict.checks],
            },
            "counts": dict(self.counts),
            "customers": dataclasses.asdict(self.customers),
            "invoices": self.invoices,
            "totals": {
                t.currency: {k: v for k, v in dataclasses.asdict(t).items() if k != "currency"}
                for t in self.totals
            },
            "change_distribution": dict(self.change_distribution),
            "findings": self.findings,
            "unexplained": {
                "findings": self.unexplained_findings,
                "customers": self.unexplained_customers,
                "amount": dict(self.unexplained_amount),
            },
            "exceptions": dict(self.exception_counts),
            "fingerprints": dict(self.fingerprints),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON data (instants as ISO text)."""
        out = dataclasses.asdict(self)
        out["generated_at"] = self.generated_at.isoformat()
        out["finance"].update(self.finance.summary_dict()["cutover"])  # instants as text
        del out["finance"]["cutover_first"], out["finance"]["cutover_last"]
        return out


# -- building the model from a result -------------------------------------------------


def _totals(result: ReconciliationResult) -> tuple[CurrencyTotals, ...]:
    t = agg.currency_totals(result)
    return tuple(
        CurrencyTotals(
            currency=str(r.currency),
            customers=agg.as_int(r.customers),
            unmapped_customers=agg.as_int(r.unmapped),
            invoices=agg.as_int(r.invoices),
            legacy=agg.as_int(r.legacy_total),
            new=agg.as_int(r.new_total),
            delta=agg.as_int(r.delta),
            unmapped_legacy=agg.as_int(r.unmapped_legacy),
            actual_legacy=agg.as_int(r.actual_legacy),
            drift=agg.as_int(r.drift),
            unexplained=agg.as_int(r.unexplained),
            customers_up=agg.as_int(r.up),
            customers_down=agg.as_int(r.down),
            customers_unchanged=agg.as_int(r.unchanged),
        )
        for r in t.itertuples(index=False)  # one row per currency
    )


def _revenue(frame: pd.DataFrame, period: str) -> tuple[PeriodRevenue, ...]:
    return tuple(
        PeriodRevenue(
            period=str(getattr(r, period)),
            currency=str(r.currency),
            actual_legacy=agg.as_int(r.actual_legacy),
            legacy=agg.as_int(r.legacy_total),
            new=agg.as_int(r.new_total),
        )
        for r in frame.itertuples(index=False)  # periods x currencies: small
    )


def _plan_moves(moves: pd.DataFrame, limit: int) -> tuple[PlanMove, ...]:
    return tuple(
        PlanMove(
            legacy_plan=_text(r.legacy_plan),
            new_plan=_text(r.new_plan),
            currency=str(r.currency),
            customers=agg.as_int(r.customers),
            legacy=agg.as_int(r.legacy_total),
            new=agg.as_int(r.new_total),
            delta=agg.as_int(r.delta),
        )
        for r in moves.head(limit).itertuples(index=False)  # bounded
    )


def _causes(waterfall: pd.DataFrame) -> tuple[CauseTotal, ...]:
    return tuple(
        CauseTotal(
            cause=str(r.cause),
            currency=str(r.currency),
            customers=agg.as_int(r.customers),
            increase=agg.as_int(r.increase),
            decrease=agg.as_int(r.decrease),
            net=agg.as_int(r.net),
        )
        for r in agg.cause_totals(waterfall).itertuples(index=False)  # causes x currencies
    )


def _segments(customers: pd.DataFrame) -> tuple[SegmentTotals, ...]:
    return tuple(
        SegmentTotals(
            segment=_text(r.segment),
            currency=str(r.currency),
            customers=agg.as_int(r.customers),
            unmapped=agg.as_int(r.unmapped),
            up=agg.as_int(r.up),
            down=agg.as_int(r.down),
            unchanged=agg.as_int(r.unchanged),
            legacy=agg.as_int(r.legacy_total),
            new=agg.as_int(r.new_total),
            delta=agg.as_int(r.delta),
            unexplained=agg.as_int(r.unexplained),
        )
        for r in agg.segment_totals(customers).itertuples(index=False)  # segments x currencies
    )


def _movers(frame: pd.DataFrame) -> tuple[Mover, ...]:
    return tuple(
        Mover(
            customer_id=_text(r.customer_id),
            name=_text(r.name),
            segment=_text(r.segment),
            currency=str(r.currency),
            legacy_plan=_text(r.legacy_plan),
            new_plan=_text(r.new_plan),
            legacy=agg.as_int(r.legacy_total),
            new=agg.as_int(r.new_total),
            delta=agg.as_int(r.delta),
        )
        for r in frame.itertuples(index=False)  # a few per currency
    )


def _optional_int(value: object) -> int | None:
    return None if value is None or value is pd.NA else int(value)  # type: ignore[call-overload]


def _finding_name(row: Any, names: pd.Series) -> object:
    """The finding's own customer_name (from the snapshot), else the customer view's name."""
    own = getattr(row, "customer_name", None)
    return own if isinstance(own, str) and own else names.get(row.customer_id, "")


def finding_rows(findings: pd.DataFrame, names: pd.Series, limit: int) -> tuple[FindingRow, ...]:
    """The first ``limit`` findings, errors first, then by customer, invoice and line."""
    order = {"error": 0, "warning": 1, "info": 2}
    ranked = findings.assign(
        _rank=findings["severity"].map(order).fillna(3),
        period_text=findings["period_start"].dt.strftime("%Y-%m-%d").astype("string"),
    ).sort_values(
        ["_rank", "customer_id", "invoice_key", "line_key"], kind="stable", na_position="first"
    )
    return tuple(
        FindingRow(
            customer_id=_text(r.customer_id),
            name=_text(_finding_name(r, names)),
            comparison=_text(r.comparison),
            level=_text(r.level),
            period=_text(r.period_text),
            subscription_id=_text(r.subscription_id),
            cause=_text(r.cause),
            severity=_text(r.severity),
            currency=str(r.currency),
            expected=_optional_int(r.expected),
            actual=_optional_int(r.actual),
            delta=_optional_int(r.delta),
            explanation=_text(r.explanation),
        )
        for r in ranked.head(limit).itertuples(index=False)  # bounded
    )


def _exceptions(result: ReconciliationResult, limit: int) -> Exceptions:
    frames = agg.exception_frames(result)
    names = result.customers.set_index("customer_id")["name"]
    names = names[~names.index.duplicated()]
    unmapped, quarantined = frames["unmapped"], frames["quarantined"]
    by_reason = (
        quarantined.groupby(["table", "reason"], dropna=False).size().reset_index(name="rows")
        if not quarantined.empty
        else pd.DataFrame(columns=["table", "reason", "rows"])
    )
    return Exceptions(
        unmapped_total=len(unmapped),
        unmapped=tuple(
            UnmappedRow(
                subscription_id=_text(r.get("subscription_id")),
                customer_id=_text(r.get("customer_id")),
                name=_text(names.get(r.get("customer_id"), "")),
                reason=_text(r.get("reason")),
            )
            for r in unmapped.head(limit).to_dict("records")  # bounded
        ),
        quarantined_total=len(quarantined),
        quarantined_by_reason=tuple(
            QuarantineReason(_text(r.table), _text(r.reason), agg.as_int(r.rows))
            for r in by_reason.itertuples(index=False)  # tables x reasons: small
        ),
        quarantined=tuple(
            QuarantinedRow(*(_text(r.get(k)) for k in ("table", "source_ref", "reason", "detail")))
            for r in quarantined.head(limit).to_dict("records")  # bounded
        ),
        unexplained_total=len(frames["unexplained"]),
        unexplained=finding_rows(frames["unexplained"], names, limit),
        drift_total=len(frames["drift"]),
        drift=finding_rows(frames["drift"], names, limit),
        limit=limit,
    )


def build_report(
    result: ReconciliationResult,
    *,
    table_rows: int = 200,
    plan_moves: int = 500,
    movers_per_currency: int = 5,
) -> ReportData:
    """The report model of one reconciliation (tables bounded to the given row counts)."""
    agg.check_result(result)
    c = result.customers
    direction = agg.change_direction(c)
    exceptions = agg.exception_frames(result)
    status = c["status"].astype("string")
    moves = agg.plan_moves(result)
    ups, downs = agg.top_movers(c, movers_per_currency)
    return ReportData(
        phase=int(result.phase),
        phase_name=str(result.phase_name),
        generated_at=pd.Timestamp(result.generated_at),
        verdict=result.verdict,
        counts={str(k): int(v) for k, v in result.counts.items()},
        customers=CustomerCounts(
            total=len(c),
            mapped=int((status == "mapped").sum()),
            unmapped=int((status != "mapped").fillna(True).sum()),
            up=int(direction["up"].sum()),
            down=int(direction["down"].sum()),
            unchanged=int(direction["unchanged"].sum()),
        ),
        invoices=agg.as_int(c["invoices"].sum()),
        totals=_totals(result),
        change_distribution=tuple(
            (str(r.bucket), agg.as_int(r.customers))
            for r in agg.change_histogram(c).itertuples(index=False)
        ),
        findings=agg.finding_stats(result),
        unexplained_findings=len(exceptions["unexplained"]),
        unexplained_customers=int((c["unexplained"].fillna(0) != 0).sum()),
        unexplained_amount=agg.unexplained_amounts(c),
        exception_counts={name: len(frame) for name, frame in exceptions.items()},
        fingerprints={str(k): str(v) for k, v in result.fingerprints.items()},
        years=_revenue(agg.yearly_revenue(result.monthly), "year"),
        months=_revenue(agg.monthly_revenue(result.monthly), "month"),
        plan_moves=_plan_moves(moves, plan_moves),
        plan_moves_total=len(moves),
        causes=_causes(result.waterfall),
        segments=_segments(c),
        ups=_movers(ups),
        downs=_movers(downs),
        exceptions=_exceptions(result, table_rows),
        finance=build_finance(result),
    )
