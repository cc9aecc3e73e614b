"""The check's Markdown summary: what a reviewer reads in a pull request or a job summary.

The verdict, the findings new, resolved and changed since the baseline (by comparison
and cause), the money moved per currency (comparison B per invoice, net of tax), the
largest new findings with their customer and explanation, what the change touched and
the input fingerprints. Every user-controlled text (ids, names, explanations) is
neutralised: no table breaks, code spans, HTML or @mentions. The whole text is capped
far below GitHub's 65,536-character limit for a comment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from shadowbill.errors import ReportError
from shadowbill.reconcile.baseline import STATUSES, FindingsDiff
from shadowbill.reconcile.check import CheckOutcome

MAX_CHARS = 20_000  # GitHub's comment limit is 65,536
TOP_FINDINGS = 10
MAX_LIST = 20  # items of one "touched" list shown before "and N more"
MAX_CELL = 160  # characters of one table cell
_TRUNCATED = "\n\n_Summary cut at {n:,} characters; the full lists are in the job's artifacts._\n"
_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def md_text(value: object, limit: int = MAX_CELL) -> str:
    """User text made inert in Markdown: escaped, HTML-safe, no mentions, one line."""
    text = "" if value is None or value is pd.NA or value is pd.NaT else str(value)
    text = " ".join(text.split())  # newlines and tabs would end a table row
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")  # a zero-width space: no @mention, no notification


def _money(amount: int, currency: str) -> str:
    sign = "+" if amount > 0 else ""
    return f"{sign}{amount:,} {md_text(currency.upper())}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _verdict(outcome: CheckOutcome) -> list[str]:
    result = outcome.result
    passed = result.verdict.passed
    head = f"## shadowbill check: phase {result.phase} {'PASSED' if passed else 'FAILED'}"
    lines = [head, "", md_text(result.phase_name, 300), ""]
    if outcome.scope is not None:
        lines.append(
            f"Scoped to the change: {len(outcome.scope.customers):,} customers"
            f" ({outcome.scope.subscriptions:,} subscriptions) reconciled again, the rest"
            " taken from the baseline."
        )
    elif outcome.full_reason:
        lines.append(f"Whole phase reconciled: {md_text(outcome.full_reason, 400)}.")
    rows = [
        [
            md_text(c.name),
            "pass" if c.passed else "**FAIL**",
            md_text(c.limit),
            md_text(c.value),
            md_text(c.detail, 300),
        ]
        for c in result.verdict.checks
    ]
    return [*lines, "", *_table(["check", "result", "limit", "value", "detail"], rows)]


def _by_cause(diff: FindingsDiff) -> list[str]:
    counts = diff.counts()
    lines = [
        "### Findings against the baseline",
        "",
        ", ".join(f"{counts[s]:,} {s}" for s in STATUSES) + ".",
        "",
    ]
    moved = diff.changes
    if moved.empty:
        return [*lines, "No finding is new, resolved or changed."]
    keys = moved[["comparison", "cause", "status"]].astype("string").fillna("")
    counts_by = keys.value_counts()
    pairs = sorted({(str(k[0]), str(k[1])) for k in counts_by.index})
    rows = [
        [md_text(comparison), md_text(cause)]
        + [
            f"{int(counts_by.get((comparison, cause, s), 0)):,}"
            for s in ("new", "resolved", "changed")
        ]
        for comparison, cause in pairs
    ]
    return [*lines, *_table(["comparison", "cause", "new", "resolved", "changed"], rows)]


def _sums(frame: pd.DataFrame, column: str) -> dict[str, int]:
    """Integer sums of a money column per currency."""
    values = frame[column].fillna(0).astype("int64")
    grouped = values.groupby(frame["currency"].astype("string").fillna("").to_numpy()).sum()
    return {str(k): int(v) for k, v in grouped.items()}


def _net_b(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparison B per invoice, every cause but tax."""
    keep = (frame["comparison"] == "B") & (frame["level"] == "invoice") & (frame["cause"] != "tax")
    return frame[keep.fillna(False).to_numpy(dtype=bool)]


def _money_moved(outcome: CheckOutcome) -> list[str]:
    """Comparison B per invoice, cause by cause except tax: the change in what customers pay."""
    lines = ["### Money moved per currency (net of tax)", ""]
    if outcome.diff is not None:
        rows = [
            [md_text(cur.upper()), _money(before, cur), _money(now, cur), _money(now - before, cur)]
            for cur, (before, now) in outcome.diff.net.items()
        ]
        header = ["currency", "baseline", "this change", "moved"]
    else:
        f = outcome.result.findings_file
        columns = ["comparison", "level", "cause", "currency", "delta"]
        frame = pd.read_parquet(f, columns=columns) if f else outcome.result.findings
        total = _sums(_net_b(frame), "delta")
        rows = [[md_text(cur.upper()), _money(v, cur)] for cur, v in sorted(total.items())]
        header = ["currency", "new model - legacy"]
    if not rows:
        return [*lines, "No money moves."]
    return [*lines, *_table(header, rows)]


def _largest(outcome: CheckOutcome) -> list[str]:
    if outcome.diff is None:
        return []
    d = outcome.diff.changes
    new = d[d["status"] == "new"]
    lines = [f"### The {TOP_FINDINGS} largest new findings", ""]
    if new.empty:
        return [*lines, "None."]
    top = (
        new.assign(size=new["delta"].fillna(0).abs())
        .sort_values(["size", "finding_id"], ascending=[False, True], kind="stable")
        .head(TOP_FINDINGS)
    )
    names = outcome.result.customers.drop_duplicates("customer_id").set_index("customer_id")["name"]
    rows = [
        [
            md_text(r["customer_id"]),
            md_text(names.get(r["customer_id"], "")),
            md_text(r["comparison"]),
            md_text(r["cause"]),
            _money(int(r["delta"]), str(r["currency"])),  # a new finding always has its delta
            md_text(r["explanation"], 300),
        ]
        for r in top.to_dict("records")
    ]
    return [
        *lines,
        *_table(["customer", "name", "comparison", "cause", "delta", "explanation"], rows),
    ]


def _touched(outcome: CheckOutcome) -> list[str]:
    change = outcome.change
    if change is None:
        return []
    lines = ["### What the change touched", ""]
    touched = change.touched()
    if not touched:
        return [*lines, "Nothing that changes a finding."]
    for kind, items in touched.items():
        shown = ", ".join(md_text(i) for i in items[:MAX_LIST])
        more = f" and {len(items) - MAX_LIST:,} more" if len(items) > MAX_LIST else ""
        lines.append(f"- {md_text(kind)}: {shown}{more}")
    return lines


def _fingerprints(outcome: CheckOutcome) -> list[str]:
    rows = [
        [md_text(k), f"`{v[:16]}…`" if re.fullmatch(r"[0-9a-f]{64}", v) else md_text(v)]
        for k, v in sorted(outcome.result.fingerprints.items())
    ]
    return ["### Inputs (sha256)", "", *_table(["input", "fingerprint"], rows)]


def summary_markdown(outcome: CheckOutcome) -> str:
    """The Markdown text, at most ``MAX_CHARS`` characters."""
    parts = [_verdict(outcome)]
    if outcome.diff is not None:
        parts.append(_by_cause(outcome.diff))
    parts += [_money_moved(outcome), _largest(outcome), _touched(outcome), _fingerprints(outcome)]
    text = "\n\n".join("\n".join(p) for p in parts if p) + "\n"
    if len(text) <= MAX_CHARS:
        return text
    note = _TRUNCATED.format(n=MAX_CHARS)
    cut = text.rfind("\n", 0, MAX_CHARS - len(note))
    return text[: max(cut, 0)] + note


def write_summary_md(outcome: CheckOutcome, out_path: Path) -> Path:
    """Write the Markdown summary and return its path."""
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(summary_markdown(outcome), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the summary {out_path}: {exc.strerror}") from exc
    return out_path
