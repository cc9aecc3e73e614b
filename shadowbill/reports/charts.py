"""Inline SVG charts for the HTML report, drawn server-side with integer geometry.

Bar heights are computed from integer minor units by integer arithmetic, so no float
ever touches an amount; every label is escaped.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from shadowbill.money import exponent, format_minor

if TYPE_CHECKING:
    from shadowbill.reports.model import PeriodRevenue

_LEGACY = "#8da2b8"
_NEW = "#1f6f8b"
_ACTUAL = "#222"
_DOWN = "#2f6db5"
_UP = "#c2711b"
_FLAT = "#8a8a8a"


def nice_step(top: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) splitting 0..top into about ``ticks``."""
    raw = max(1, -(-top // ticks))
    magnitude = 10 ** (len(str(raw)) - 1)
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def compact_amount(minor: int, currency: str) -> str:
    """An axis label in major units: 1.2M style only where it is exact, else the full amount."""
    unit = 10 ** exponent(currency)
    if minor == 0:
        return "0"
    if minor % unit == 0:
        major = minor // unit
        for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
            if major and major % size == 0:
                return f"{major // size:,}{suffix}"
            if major and abs(major) >= size and (major * 10) % size == 0:
                whole, tenth = divmod(major * 10 // size, 10)
                return f"{whole:,}.{tenth}{suffix}"
    return format_minor(minor, currency, with_code=False)


def _month_label(month: str) -> str:
    year, mon = month.split("-")
    return f"{calendar.month_abbr[int(mon)]} {year[2:]}"


def monthly_chart(months_revenue: Sequence[PeriodRevenue], currency: str) -> Markup:
    """Grouped bars per month: legacy recomputed vs new model, with actual legacy as a tick."""
    rows = sorted((r for r in months_revenue if r.currency == currency), key=lambda r: r.period)
    months = [r.period for r in rows]
    series = {
        "legacy_total": [r.legacy for r in rows],
        "new_total": [r.new for r in rows],
        "actual_legacy": [r.actual_legacy for r in rows],
    }
    top = max([0, *series["legacy_total"], *series["new_total"], *series["actual_legacy"]])
    step = nice_step(top)
    axis_top = max(step, -(-top // step) * step)
    width, height, left, plot_h = 760, 230, 78, 170
    n = max(1, len(months))
    slot = (width - left - 10) // n
    bar = max(2, (slot - 6) // 2)
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"Monthly revenue in {currency}")}">'
    ]
    y0 = plot_h + 10
    for tick in range(0, axis_top + 1, step):
        y = y0 - tick * plot_h // axis_top
        out.append(f'<line x1="{left}" x2="{width - 5}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">'
            f"{escape(compact_amount(tick, currency))}</text>"
        )
    every = 1 if n <= 18 else 2 if n <= 36 else 3
    for i, month in enumerate(months):
        x = left + i * slot + 3
        for j, key, color in ((0, "legacy_total", _LEGACY), (1, "new_total", _NEW)):
            value = max(0, series[key][i])
            h = value * plot_h // axis_top
            label = "Legacy recomputed" if j == 0 else "New model"
            out.append(
                f'<rect x="{x + j * bar}" y="{y0 - h}" width="{bar}" height="{h}" fill="{color}">'
                f"<title>{escape(f'{month} {label}: {format_minor(value, currency)}')}</title>"
                "</rect>"
            )
        actual = max(0, series["actual_legacy"][i])
        if actual:
            ya = y0 - actual * plot_h // axis_top
            out.append(
                f'<line x1="{x - 1}" x2="{x + 2 * bar + 1}" y1="{ya}" y2="{ya}" '
                f'stroke="{_ACTUAL}" stroke-width="2">'
                f"<title>{escape(f'{month} actual legacy: {format_minor(actual, currency)}')}"
                "</title></line>"
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar}" y="{y0 + 16}" text-anchor="middle">'
                f"{escape(_month_label(month))}</text>"
            )
    legend_y = height - 6
    for k, (label, color) in enumerate(
        (("Legacy recomputed", _LEGACY), ("New model", _NEW), ("Actual legacy (issued)", _ACTUAL))
    ):
        lx = left + k * 190
        out.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="{legend_y}">{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


_SHORT_BUCKETS = {
    "below -20%": "< -20%",
    "-20% to -10%": "-20..-10",
    "-10% to -5%": "-10..-5",
    "-5% to -1%": "-5..-1",
    "-1% to 0%": "-1..0",
    "unchanged": "0",
    "0% to 1%": "0..1",
    "1% to 5%": "1..5",
    "5% to 10%": "5..10",
    "10% to 20%": "10..20",
    "20% and above": ">= 20%",
    "no legacy amount": "n/a",
}


def histogram_chart(histogram: Sequence[tuple[str, int]]) -> Markup:
    """Bars of customers per bucket of percentage change (decreases blue, increases amber)."""
    buckets = [bucket for bucket, _ in histogram]
    counts = [n for _, n in histogram]
    width, height, left, plot_h = 760, 220, 50, 150
    top = max([1, *counts])
    step = nice_step(top)
    axis_top = max(step, -(-top // step) * step)
    slot = (width - left - 10) // max(1, len(buckets))
    y0 = plot_h + 20
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Distribution of the per-customer change">'
    ]
    for tick in range(0, axis_top + 1, step):
        y = y0 - tick * plot_h // axis_top
        out.append(f'<line x1="{left}" x2="{width - 5}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{tick:,}</text>')
    zero = buckets.index("unchanged") if "unchanged" in buckets else len(buckets)
    for i, (bucket, count) in enumerate(zip(buckets, counts, strict=True)):
        color = _DOWN if i < zero else _FLAT if i == zero or bucket == "no legacy amount" else _UP
        h = count * plot_h // axis_top
        x = left + i * slot + 4
        out.append(
            f'<rect x="{x}" y="{y0 - h}" width="{slot - 8}" height="{h}" fill="{color}">'
            f"<title>{escape(f'{bucket}: {count:,} customers')}</title></rect>"
        )
        out.append(
            f'<text x="{x + (slot - 8) // 2}" y="{y0 - h - 4}" text-anchor="middle" '
            f'class="value">{count:,}</text>'
        )
        out.append(
            f'<text x="{x + (slot - 8) // 2}" y="{y0 + 16}" text-anchor="middle">'
            f"{escape(_SHORT_BUCKETS.get(bucket, bucket))}</text>"
        )
    out.append(
        f'<text x="{width // 2}" y="{height - 4}" text-anchor="middle" class="axis-title">'
        "change of the customer's total, in % of the legacy total</text>"
    )
    out.append("</svg>")
    return Markup("".join(out))
