"""Draw the scaling benchmark as an SVG chart for the README (no plotting library needed).

    python bench/scale_chart.py bench/results/scale.json docs/scale.svg

The JSON is a list of runs: {"label": "2 workers", "customers": 100000, "wall_s": 61.2,
"peak_gb": 2.9}. Two panels, wall time and peak memory against customers (log scale),
one line per label, with the targets drawn as dashed lines.
"""

from __future__ import annotations

import json
import math
import sys
from html import escape
from pathlib import Path

COLORS = ("#1f6feb", "#d9480f", "#2f9e44", "#7048e8", "#c2255c")
WIDTH, HEIGHT, PAD = 360, 240, 48


def _panel(runs: list[dict], key: str, title: str, unit: str, target: float, x0: int) -> str:
    xs = sorted({r["customers"] for r in runs})
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    top = max(max(r[key] for r in runs), target) * 1.15

    def px(c: float) -> float:
        span = (hi - lo) or 1.0
        return x0 + PAD + (math.log10(c) - lo) / span * (WIDTH - 2 * PAD)

    def py(v: float) -> float:
        return HEIGHT - PAD + 10 - v / top * (HEIGHT - 2 * PAD)

    out = [
        f'<text x="{x0 + WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<line x1="{x0 + PAD}" y1="{py(0)}" x2="{x0 + WIDTH - PAD}" y2="{py(0)}" stroke="#888"/>',
        f'<line x1="{x0 + PAD}" y1="{py(0)}" x2="{x0 + PAD}" y2="{py(top)}" stroke="#888"/>',
        f'<line x1="{x0 + PAD}" y1="{py(target)}" x2="{x0 + WIDTH - PAD}" y2="{py(target)}"'
        ' stroke="#c92a2a" stroke-dasharray="4 3"/>',
        f'<text x="{x0 + WIDTH - PAD}" y="{py(target) - 4}" text-anchor="end" fill="#c92a2a"'
        f' font-size="10">target {target:g} {unit} at 1M</text>',
    ]
    for c in xs:
        label = f"{c // 1000:,}k" if c < 1_000_000 else f"{c / 1e6:g}M"
        out.append(
            f'<text x="{px(c)}" y="{py(0) + 14}" text-anchor="middle" font-size="10">{label}</text>'
        )
    for i in range(5):
        v = top * i / 4
        out.append(
            f'<text x="{x0 + PAD - 4}" y="{py(v) + 3}" text-anchor="end" font-size="10">'
            f"{v:.0f}</text>"
        )
    labels = sorted({r["label"] for r in runs})
    for n, label in enumerate(labels):
        pts = sorted((r["customers"], r[key]) for r in runs if r["label"] == label)
        color = COLORS[n % len(COLORS)]
        path = " ".join(f"{px(c):.1f},{py(v):.1f}" for c, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for c, v in pts:
            out.append(f'<circle cx="{px(c):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
        out.append(
            f'<text x="{x0 + PAD + 6}" y="{34 + 12 * n}" fill="{color}" font-size="10">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<text x="{x0 + 12}" y="{HEIGHT / 2}" font-size="10" transform="rotate(-90 {x0 + 12}'
        f' {HEIGHT / 2})" text-anchor="middle">{escape(unit)}</text>'
    )
    return "\n".join(out)


def render(runs: list[dict]) -> str:
    """The two-panel SVG for these runs."""
    body = _panel(runs, "wall_s", "reconcile --phase 2: wall time", "seconds", 300, 0)
    body += "\n" + _panel(runs, "peak_gb", "peak memory (all processes)", "GB", 6, WIDTH)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" height="{HEIGHT}"'
        f' font-family="sans-serif" font-size="12">\n{body}\n</svg>\n'
    )


def main() -> None:
    """Read the results and write the chart."""
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(json.loads(source.read_text())))


if __name__ == "__main__":
    main()
