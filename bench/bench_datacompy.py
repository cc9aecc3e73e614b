"""Benchmark: comparison A's line matching against datacompy on the same invoice-line tables.

    python bench/bench_datacompy.py [--customers 100000] [--months 12] [--seed 7]
                                    [--cache DIR] [--repeat 1] [--skip-datacompy]

Builds the demo company (``generate`` + ``extract``; reused from ``--cache`` when a
snapshot of that size and seed is already there), recomputes its history with the legacy
catalog the way ``reconcile_phase`` does for comparison A (every subscription here, not
one phase's cohort), and compares the two invoice-line tables, ISSUED (the snapshot's
lines) and RECOMPUTED (the pricing engine's), twice:

- shadowbill: ``keyed_lines`` on each side (the line identity of comparison A: invoice =
  subscription + period start; line = kind, price, line start, sign and the n-th
  occurrence among equal lines), then ``match_lines`` and the amount test of
  ``compare_a._line_findings``; also the line findings with causes and explanations, and
  ``compare_legacy_drift`` (all of comparison A, from the raw frames);
- datacompy 1.1: ``PandasCompare(recomputed, issued, join_columns=LINE_KEY, abs_tol=0,
  rel_tol=0)`` on the same keyed lines (key columns + amount + quantity), its mismatching
  rows being ``df1_unq_rows``, ``df2_unq_rows`` and ``all_mismatch()``.

Both must name the same set of mismatching lines, and so must comparison A's line
findings (asserted; the difference is printed first if not). Each step's wall time, CPU
time and peak resident memory are printed. The peak is the kernel's own high-water mark
(VmHWM, reset before the step through ``/proc/self/clear_refs``), shown as the growth
over the resident size when the step began, after the memory freed by earlier steps went
back to the OS (``malloc_trim``, Arrow's ``release_unused``); unlike tracemalloc it
counts Arrow buffers (pandas 3 strings). Steps run one after another in this process.
Run by hand; the lead copies the figures into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datacompy
import pandas as pd
import pyarrow as pa

from shadowbill.demo.generate import generate
from shadowbill.extract.run import extract
from shadowbill.pricing.catalog import Catalog
from shadowbill.pricing.engine import price
from shadowbill.reconcile.compare_a import _line_findings, compare_legacy_drift
from shadowbill.reconcile.line_match import LINE_KEY, invoice_key, keyed_lines, match_lines
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.rollout import load_rollout

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo_company"

# datacompy names its two sides; the suffixes of its intersect columns follow the names
MODEL, LEGACY = "model", "legacy"
COMPARED = ["amount", "quantity"]


# ----------------------------------------------------------------------------- inputs


def snapshot_dir(cache: Path, customers: int, months: int, seed: int) -> Path:
    """The demo company's snapshot folder in ``cache``, generated and extracted if missing."""
    folder = cache / f"demo-c{customers}-m{months}-s{seed}"
    snap = folder / "snapshot"
    if not (snap / "manifest.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        demo = generate(folder / "legacy.db", customers=customers, months=months, seed=seed)
        extract(f"sqlite:///{demo.db_path}", demo.spec_path, snap, progress=False)
        print(f"built the demo snapshot in {time.perf_counter() - began:.1f} s: {snap}")
    return snap


def legacy_catalog() -> Catalog:
    """The demo rollout's legacy catalog (rollout.catalogs.legacy), as comparison A uses it."""
    return load_rollout(EXAMPLES / "rollout.yaml").catalogs.legacy


@dataclass(frozen=True)
class Sides:
    """Comparison A's inputs: the issued invoices and lines, the recomputed ones."""

    actual_invoices: pd.DataFrame
    actual_lines: pd.DataFrame
    expected_invoices: pd.DataFrame
    expected_lines: pd.DataFrame


def comparison_a_sides(snapshot: Snapshot, catalog: Catalog) -> Sides:
    """Price the snapshot's billed window with ``catalog``, exactly as reconcile_phase does for A."""
    actual = snapshot["invoices"]
    lo, hi = actual["period_end"].min(), actual["period_end"].max()
    priced = price(snapshot, catalog, actual["period_start"].min(), hi)
    expected = priced.invoices[
        (priced.invoices["period_end"] >= lo) & (priced.invoices["period_end"] <= hi)
    ]
    return Sides(actual, snapshot["invoice_lines"], expected, priced.lines)


# ----------------------------------------------------------------------------- measuring


def _status_mb(field_name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _release_free_memory() -> None:
    """Hand memory freed by earlier steps back to the OS, so that the resident size is live data.

    Otherwise a step reuses pages an earlier step freed (glibc's heap, Arrow's mimalloc
    pool) and its growth in resident memory would understate what it allocates.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


@dataclass
class Step:
    """One timed step: wall seconds, and peak resident memory above its starting point."""

    name: str
    seconds: float
    cpu_seconds: float
    start_mb: float
    peak_mb: float
    exact_peak: bool  # False: the process-wide ru_maxrss, not this step's own peak

    @property
    def grew_mb(self) -> float:
        """How far the resident set rose above where it stood when the step began."""
        return max(self.peak_mb - self.start_mb, 0.0)


def timed(name: str, steps: list[Step], fn: Callable[[], Any], repeat: int = 1) -> Any:
    """Run ``fn`` ``repeat`` times; record the best wall time and the largest peak; return
    the last result."""
    best, cpu, start_mb, peak_mb, exact = float("inf"), 0.0, 0.0, 0.0, True
    result: Any = None
    for _ in range(repeat):
        result = None  # the previous run's result must not count in this run's memory
        _release_free_memory()
        start = _status_mb("VmRSS")
        exact = _reset_peak()
        began, cpu_began = time.perf_counter(), time.process_time()
        result = fn()
        seconds = time.perf_counter() - began
        if seconds < best:
            best, cpu = seconds, time.process_time() - cpu_began
        peak = (
            _status_mb("VmHWM")
            if exact
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        if peak - start >= peak_mb - start_mb:
            start_mb, peak_mb = start, peak
    steps.append(Step(name, best, cpu, start_mb, peak_mb, exact))
    return result


# ----------------------------------------------------------------------------- the two sides


def mismatch_keys(frame: pd.DataFrame) -> set[str]:
    """``<invoice_key>|<line_key>`` of each row of a frame with the LINE_KEY columns.

    The same text compare_a gives a line finding (``invoice_key`` and ``line_key``), so
    sets from either tool and from the findings compare directly.
    """
    stamp = frame["line_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")
    line = (
        frame["kind"].astype("string")
        + "/"
        + frame["price_id"].astype("string")
        + "/"
        + stamp
        + "/"
        + frame["sign"].astype("string")
        + "/"
        + frame["nth"].astype("string")
    )
    keys = invoice_key(frame["subscription_id"], frame["invoice_start"]) + "|" + line
    return set(keys.tolist())


def shadowbill_mismatches(expected: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Keyed lines on one side only, or on both with different amounts (compare_a's test)."""
    m = match_lines(expected, actual)
    amount_exp = m["amount_exp"].astype("Int64").fillna(0)
    amount_act = m["amount_act"].astype("Int64").fillna(0)
    return m[(m["_merge"] != "both") | (amount_exp != amount_act)]


@dataclass
class DatacompyResult:
    """datacompy's mismatching rows, split the way its API reports them."""

    model_only: pd.DataFrame  # df1_unq_rows: the model bills it, legacy does not
    legacy_only: pd.DataFrame  # df2_unq_rows: legacy billed it, the model does not
    differing: pd.DataFrame  # all_mismatch(): on both sides, amount or quantity differs


def datacompy_mismatches(model: pd.DataFrame, legacy: pd.DataFrame) -> DatacompyResult:
    """datacompy.PandasCompare on keyed lines: exact (zero tolerance) on amount and quantity."""
    compare = datacompy.PandasCompare(
        model,
        legacy,
        join_columns=LINE_KEY,
        abs_tol=0,
        rel_tol=0,
        df1_name=MODEL,
        df2_name=LEGACY,
    )
    return DatacompyResult(compare.df1_unq_rows, compare.df2_unq_rows, compare.all_mismatch())


@dataclass
class Outcome:
    """Timed steps and each tool's set of mismatching line keys."""

    steps: list[Step]
    lines: tuple[int, int]  # keyed charge lines: recomputed, issued
    shadowbill: set[str]  # match_lines + amount test
    findings: set[str]  # compare_legacy_drift's line findings
    datacompy: set[str] | None  # datacompy's one-side-only rows + amount mismatches; None: not run
    datacompy_quantity_only: set[str]  # datacompy rows whose amounts agree (quantity differs)
    datacompy_parts: tuple[int, int, int]  # model-only, legacy-only, all_mismatch rows
    invoice_findings: int = 0


def run_both(sides: Sides, *, with_datacompy: bool = True, repeat: int = 1) -> Outcome:
    """Time shadowbill's and datacompy's line comparison of ``sides``; collect both sets."""
    steps: list[Step] = []

    def key_both() -> tuple[pd.DataFrame, pd.DataFrame]:
        return (
            keyed_lines(sides.expected_invoices, sides.expected_lines),
            keyed_lines(sides.actual_invoices, sides.actual_lines),
        )

    # Comparison A compares charge lines only (keyed_lines keeps recurring, usage,
    # proration and one-off lines); discount and tax lines are compared through the
    # invoice totals. datacompy gets the same keyed charge lines, so the key (including
    # the occurrence number ``nth`` among equal lines) is identical on both sides.
    expected, actual = timed("keyed_lines, both sides (shared input)", steps, key_both, repeat)
    # Like for like: both tools get the key columns, amount and quantity only (selecting
    # them copies; not timed). datacompy writes its inputs' column names and join columns
    # back in place; here that changes nothing (names already lower case, no space or case
    # folding, keys unique so no temporary order column), so repeats see the same frames.
    narrow = [*LINE_KEY, *COMPARED]
    model, legacy = expected[narrow].copy(), actual[narrow].copy()
    mine = timed(
        "shadowbill: match_lines + amount test",
        steps,
        lambda: shadowbill_mismatches(model, legacy),
        repeat,
    )
    timed(
        "shadowbill: the same on comparison A's columns",
        steps,
        lambda: shadowbill_mismatches(expected, actual),
        repeat,
    )
    timed(
        "shadowbill: line findings with causes",
        steps,
        lambda: _line_findings(expected, actual, "A", "legacy"),
        repeat,
    )
    findings = timed(
        "shadowbill: compare_legacy_drift (all of A)",
        steps,
        lambda: compare_legacy_drift(
            sides.actual_invoices,
            sides.actual_lines,
            sides.expected_invoices,
            sides.expected_lines,
        ),
        repeat,
    )
    line_level = findings[findings["level"] == "line"]
    finding_keys = set(
        (line_level["invoice_key"].astype("string") + "|" + line_level["line_key"]).tolist()
    )
    outcome = Outcome(
        steps=steps,
        lines=(len(expected), len(actual)),
        shadowbill=mismatch_keys(mine),
        findings=finding_keys,
        datacompy=None,
        datacompy_quantity_only=set(),
        datacompy_parts=(0, 0, 0),
        invoice_findings=int((findings["level"] == "invoice").sum()),
    )
    del mine, findings, line_level
    if not with_datacompy:
        return outcome

    theirs = timed(
        "datacompy: PandasCompare + all_mismatch",
        steps,
        lambda: datacompy_mismatches(model, legacy),
        repeat,
    )
    diff = theirs.differing
    # Comparison A calls a line on both sides a difference when its AMOUNT differs; a
    # quantity that differs at the same amount (a flat or zero-priced tier) is no billing
    # difference, so such datacompy rows are counted apart, not in the compared set.
    amount_differs = (
        diff[f"amount_{MODEL}"].astype("Int64").fillna(0)
        != diff[f"amount_{LEGACY}"].astype("Int64").fillna(0)
    ).to_numpy(dtype=bool)
    outcome.datacompy = (
        mismatch_keys(theirs.model_only)
        | mismatch_keys(theirs.legacy_only)
        | mismatch_keys(diff[amount_differs])
    )
    outcome.datacompy_quantity_only = mismatch_keys(diff[~amount_differs])
    outcome.datacompy_parts = (len(theirs.model_only), len(theirs.legacy_only), len(diff))
    return outcome


# ----------------------------------------------------------------------------- report


def _show_diff(name_a: str, a: set[str], name_b: str, b: set[str], limit: int = 10) -> str:
    lines = [f"{name_a}: {len(a):,} keys, {name_b}: {len(b):,} keys"]
    for label, only in ((f"only {name_a}", a - b), (f"only {name_b}", b - a)):
        lines.append(f"  {label}: {len(only):,}")
        lines.extend(f"    {k}" for k in sorted(only)[:limit])
    return "\n".join(lines)


def check_same(outcome: Outcome) -> None:
    """Assert that both tools (and the findings) name the same mismatching lines."""
    pairs = [("shadowbill", outcome.shadowbill, "findings", outcome.findings)]
    if outcome.datacompy is not None:
        pairs.append(("shadowbill", outcome.shadowbill, "datacompy", outcome.datacompy))
    for name_a, a, name_b, b in pairs:
        if a != b:
            print(_show_diff(name_a, a, name_b, b))
        assert a == b, f"{name_a} and {name_b} disagree on the mismatching lines"


def print_table(outcome: Outcome) -> None:
    """Print the steps, the sets, and the time ratios."""
    print(f"keyed charge lines: {outcome.lines[0]:,} recomputed, {outcome.lines[1]:,} issued")
    print(f"{'step':<48} {'wall s':>7} {'CPU s':>7} {'peak MB':>8} {'RSS before':>11}")
    for s in outcome.steps:
        mark = "" if s.exact_peak else " (process ru_maxrss)"
        print(
            f"{s.name:<48} {s.seconds:7.2f} {s.cpu_seconds:7.2f} {s.grew_mb:+8.0f}"
            f" {s.start_mb:11.0f}{mark}"
        )
    print(
        f"mismatching lines: shadowbill {len(outcome.shadowbill):,}, findings"
        f" {len(outcome.findings):,} (+{outcome.invoice_findings:,} invoice findings)"
    )
    if outcome.datacompy is not None:
        m1, m2, mm = outcome.datacompy_parts
        print(
            f"datacompy: {m1:,} rows only in the model, {m2:,} only in legacy, {mm:,}"
            f" all_mismatch rows, of which {len(outcome.datacompy_quantity_only):,} differ in"
            " quantity only; same set as shadowbill:"
            f" {outcome.datacompy == outcome.shadowbill}"
        )
        keyed, match, _, causes, whole, dc = outcome.steps
        for label, t in (("wall", lambda s: s.seconds), ("CPU", lambda s: s.cpu_seconds)):
            print(
                f"{label} time ratio datacompy / shadowbill: {t(dc) / t(match):.2f}x (same"
                f" columns, match + amount test), {t(dc) / t(causes):.2f}x (line findings"
                f" with causes), {(t(keyed) + t(dc)) / t(whole):.2f}x (keying + datacompy"
                " vs all of comparison A)"
            )
        print(
            f"peak memory ratio datacompy / shadowbill (same columns):"
            f" {dc.grew_mb / max(match.grew_mb, 1.0):.2f}x"
        )


def main() -> None:
    """Build or reuse the demo snapshot, price it, compare both ways, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "shadowbill-bench-cache",
        help="folder where demo snapshots are kept between runs",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run each step N times; best wins")
    parser.add_argument("--skip-datacompy", action="store_true", help="time shadowbill only")
    args = parser.parse_args()

    snap_dir = snapshot_dir(args.cache, args.customers, args.months, args.seed)
    began = time.perf_counter()
    sides = comparison_a_sides(read_snapshot(snap_dir), legacy_catalog())
    print(
        f"{args.customers:,} customers x {args.months} months (seed {args.seed}):"
        f" {len(sides.actual_invoices):,} issued invoices, {len(sides.actual_lines):,} issued"
        f" lines, {len(sides.expected_lines):,} recomputed lines; read and priced in"
        f" {time.perf_counter() - began:.1f} s (not timed below)"
    )
    outcome = run_both(sides, with_datacompy=not args.skip_datacompy, repeat=args.repeat)
    print_table(outcome)
    check_same(outcome)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (ru_maxrss) {peak:,.0f} MB")


if __name__ == "__main__":
    main()
