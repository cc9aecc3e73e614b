"""A reporting currency from a rates table finance supplies (``--rates FILE``).

The file is CSV with a header ``date,from,to,rate``: on ``date``, one unit of ``from`` is
worth ``rate`` units of ``to`` (major units, a decimal). Every row names the same ``to``,
the reporting currency. For each currency the report uses the latest rate dated on or
before the cut-over (or the data's as-of where there is none), and states it. Amounts are
converted exactly (fractions of minor units) and added, then rounded half up once. Without
a rates file the report never adds amounts across currencies.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from shadowbill.errors import ReportError
from shadowbill.money import exponent
from shadowbill.reports.finance import Finance

COLUMNS = ("date", "from", "to", "rate")


@dataclass(frozen=True)
class RateTable:
    """Rates from a file: (currency, date) -> units of the reporting currency per unit."""

    source: str
    currency: str  # the reporting currency
    rates: dict[tuple[str, dt.date], Decimal]

    def rate(self, currency: str, on: dt.date) -> tuple[Decimal, dt.date]:
        """The latest rate of ``currency`` dated on or before ``on``, and its date."""
        if currency == self.currency:
            return Decimal(1), on
        dates = sorted(d for (c, d) in self.rates if c == currency and d <= on)
        if not dates:
            raise ReportError(
                f"{self.source}: no rate from {currency} to {self.currency} dated on or"
                f" before {on.isoformat()}"
            )
        return self.rates[(currency, dates[-1])], dates[-1]


@dataclass(frozen=True)
class Reporting:
    """The report's figures in the reporting currency, with the rates used."""

    currency: str
    source: str
    as_of: str
    rates: tuple[tuple[str, str], ...]  # (currency, rate as written)
    rows: tuple[tuple[str, int, int], ...]  # (figure, legacy, new) in minor units


def load_rates(path: Path) -> RateTable:
    """Read a rates file; a bad row is a ReportError naming the file and row."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ReportError(f"{path}: the header lacks {', '.join(missing)}")
            rows = list(reader)
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read ({exc.strerror})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a CSV file ({exc})") from exc
    rates: dict[tuple[str, dt.date], Decimal] = {}
    targets = set()
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        try:
            day = dt.date.fromisoformat((row["date"] or "").strip())
            rate = Decimal((row["rate"] or "").strip())
        except (ValueError, InvalidOperation):
            raise ReportError(
                f"{path} row {n}: date must be YYYY-MM-DD and rate a decimal"
                f" (got {row['date']!r}, {row['rate']!r})"
            ) from None
        source = (row["from"] or "").strip().upper()
        target = (row["to"] or "").strip().upper()
        if not rate.is_finite() or rate <= 0:
            raise ReportError(f"{path} row {n}: the rate must be above zero")
        if len(source) != 3 or len(target) != 3 or not (source + target).isalpha():
            raise ReportError(f"{path} row {n}: from and to must be currency codes")
        if (source, day) in rates:
            raise ReportError(f"{path} row {n}: a second rate from {source} on {day}")
        targets.add(target)
        rates[(source, day)] = rate
    if len(targets) != 1:
        raise ReportError(
            f"{path}: every row must convert to one reporting currency"
            f" (found {', '.join(sorted(targets)) or 'none'})"
        )
    return RateTable(str(path), targets.pop(), rates)


def _convert(amounts: dict[str, int], table: RateTable, on: dt.date) -> int:
    """Amounts in minor units per currency, in the reporting currency's minor units."""
    total = Fraction(0)
    target = exponent(table.currency)
    for currency, minor in amounts.items():
        rate, _ = table.rate(currency, on)
        total += Fraction(minor) * Fraction(rate) * Fraction(10) ** (target - exponent(currency))
    sign = -1 if total < 0 else 1
    return sign * int(abs(total) + Fraction(1, 2))  # half up, away from zero


def reporting_view(finance: Finance, table: RateTable, on: dt.date) -> Reporting:
    """Run-rate and revenue figures of every currency converted and added."""
    currencies = sorted({r.currency for r in finance.run_rate})
    used = {c: table.rate(c, on) for c in currencies}
    all_segments = [r for r in finance.run_rate if r.segment == ""]

    def pair(legacy: dict[str, int], new: dict[str, int]) -> tuple[int, int]:
        return _convert(legacy, table, on), _convert(new, table, on)

    rows = [
        (
            "MRR at the cut-over",
            *pair(
                {r.currency: r.legacy_mrr for r in all_segments},
                {r.currency: r.new_mrr for r in all_segments},
            ),
        ),
        (
            "ARR at the cut-over",
            *pair(
                {r.currency: r.legacy_arr for r in all_segments},
                {r.currency: r.new_arr for r in all_segments},
            ),
        ),
        (
            "Next twelve months",
            *pair(
                {r.currency: r.legacy_next_12 for r in all_segments},
                {r.currency: r.new_next_12 for r in all_segments},
            ),
        ),
    ]
    for basis, label in (
        ("history", "History, net of tax"),
        ("projection", "Projection, net of tax"),
    ):
        part = finance.for_basis(basis)
        rows.append(
            (label, *pair({r.currency: r.legacy for r in part}, {r.currency: r.new for r in part}))
        )
    dates = sorted({d for c, (_, d) in used.items() if c != table.currency})
    return Reporting(
        currency=table.currency,
        source=Path(table.source).name,
        as_of=", ".join(d.isoformat() for d in dates) or on.isoformat(),
        rates=tuple((c, f"{r:f}") for c, (r, _) in used.items() if c != table.currency),
        rows=tuple(rows),
    )
