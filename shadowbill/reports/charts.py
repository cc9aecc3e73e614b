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
    from shadowbill.reports.finance import BridgeStep, MonthRevenue

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


def _axis(top: int, bottom: int = 0) -> tuple[int, int, int]:
    """(step, axis top, axis bottom) covering bottom..top with round steps."""
    step = nice_step(max(1, top - bottom))
    axis_top = max(step, -(-top // step) * step)
    axis_bottom = min(0, (bottom // step) * step)
    return step, axis_top, axis_bottom


def billings_chart(rows: Sequence[MonthRevenue], currency: str) -> Markup:
    """Per month, net of tax: new-model billings as bars, recognized revenue (new and
    legacy) as ticks; annual invoices spike as billings and spread as revenue."""
    rows = sorted((r for r in rows if r.currency == currency), key=lambda r: r.month)
    months = [r.month for r in rows]
    billed = [max(0, r.new_billed) for r in rows]
    new_rec = [max(0, r.new_recognized) for r in rows]
    legacy_rec = [max(0, r.legacy_recognized) for r in rows]
    step, axis_top, _ = _axis(max([0, *billed, *new_rec, *legacy_rec]))
    width, height, left, plot_h = 760, 230, 78, 170
    n = max(1, len(months))
    slot = (width - left - 10) // n
    bar = max(2, slot - 4)
    y0 = plot_h + 10
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"Billings and recognized revenue in {currency}")}">'
    ]
    for tick in range(0, axis_top + 1, step):
        y = y0 - tick * plot_h // axis_top
        out.append(f'<line x1="{left}" x2="{width - 5}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">'
            f"{escape(compact_amount(tick, currency))}</text>"
        )
    every = 1 if n <= 18 else 2 if n <= 36 else 3
    for i, month in enumerate(months):
        x = left + i * slot + 2
        h = billed[i] * plot_h // axis_top
        out.append(
            f'<rect x="{x}" y="{y0 - h}" width="{bar}" height="{h}" fill="{_LEGACY}">'
            f"<title>{escape(f'{month} billed (new model): {format_minor(billed[i], currency)}')}"
            "</title></rect>"
        )
        for value, color, label in (
            (new_rec[i], _NEW, "recognized (new model)"),
            (legacy_rec[i], _ACTUAL, "recognized (legacy)"),
        ):
            y = y0 - value * plot_h // axis_top
            out.append(
                f'<line x1="{x}" x2="{x + bar}" y1="{y}" y2="{y}" stroke="{color}" '
                f'stroke-width="3"><title>{escape(f"{month} {label}: ")}'
                f"{escape(format_minor(value, currency))}</title></line>"
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar // 2}" y="{y0 + 16}" text-anchor="middle">'
                f"{escape(_month_label(month))}</text>"
            )
    legend_y = height - 6
    for k, (label, color) in enumerate(
        (
            ("Billed, new model", _LEGACY),
            ("Recognized, new model", _NEW),
            ("Recognized, legacy", _ACTUAL),
        )
    ):
        lx = left + k * 190
        out.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="{legend_y}">{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def bridge_chart(steps: Sequence[BridgeStep], currency: str) -> Markup:
    """A bridge from the legacy MRR to the new MRR: the ends as full bars, each cause as
    a floating bar (increases amber, decreases blue)."""
    rows = [s for s in steps if s.currency == currency]
    level, spans = 0, []
    for s in rows:
        if s.step in ("legacy_mrr", "new_mrr"):
            spans.append((0, s.amount))
            level = s.amount
        else:
            spans.append((level, level + s.amount))
            level += s.amount
    # The axis is zoomed on the moving part (the ends rise from its bottom edge), so that
    # causes of a few percent stay visible; the figure says the axis does not start at 0.
    levels = [
        v
        for (a, b), s in zip(spans, rows, strict=True)
        for v in (a, b)
        if not (s.step in ("legacy_mrr", "new_mrr") and v == 0)
    ]
    lo, hi = min([0, *levels]) if not levels else min(levels), max([1, *levels])
    pad = max(1, (hi - lo) // 2)
    step = nice_step(max(1, hi - lo + 2 * pad))
    axis_top = -(-(hi + pad // 4) // step) * step
    axis_bottom = max(0, (lo - pad) // step * step) if lo >= 0 else (lo - pad) // step * step
    spans = [
        (max(a, axis_bottom), b) if s.step in ("legacy_mrr", "new_mrr") else (a, b)
        for (a, b), s in zip(spans, rows, strict=True)
    ]
    width, height, left, plot_h = 760, 250, 78, 170
    span = axis_top - axis_bottom
    n = max(1, len(rows))
    slot = (width - left - 10) // n

    def y(v: int) -> int:
        return 10 + (axis_top - v) * plot_h // span

    out = [
        f'<svg class="chart bridge" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"MRR bridge in {currency}")}">'
    ]
    if axis_bottom > 0:
        out.append(
            f'<text x="{left}" y="{height - 4}" class="axis-title">the axis starts at '
            f"{escape(compact_amount(axis_bottom, currency))}, not at 0</text>"
        )
    for tick in range(axis_bottom, axis_top + 1, step):
        out.append(
            f'<line x1="{left}" x2="{width - 5}" y1="{y(tick)}" y2="{y(tick)}" class="grid"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y(tick) + 4}" text-anchor="end">'
            f"{escape(compact_amount(tick, currency))}</text>"
        )
    for i, (s, (a, b)) in enumerate(zip(rows, spans, strict=True)):
        x = left + i * slot + 4
        top, bottom = y(max(a, b)), y(min(a, b))
        end = s.step in ("legacy_mrr", "new_mrr")
        color = _NEW if end else _UP if s.amount > 0 else _DOWN
        text = format_minor(s.amount, currency)
        out.append(
            f'<rect x="{x}" y="{top}" width="{slot - 8}" height="{max(1, bottom - top)}" '
            f'fill="{color}"><title>{escape(f"{s.label}: {text}")}</title></rect>'
        )
        out.append(
            f'<text x="{x + (slot - 8) // 2}" y="{plot_h + 28}" text-anchor="middle">'
            f"{escape(_short_step(s.label))}</text>"
        )
        signed = text if end or s.amount < 0 else "+" + text
        out.append(
            f'<text x="{x + (slot - 8) // 2}" y="{top - 4}" text-anchor="middle" '
            f'class="value">{escape(compact_amount(s.amount, currency) if end else signed)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def _short_step(label: str) -> str:
    words = label.split(" (")[0]
    return words if len(words) <= 16 else words[:15] + "…"
