"""Benchmark: a one-rule change checked scoped against the same change checked in full.

    python bench/bench_check_scoped.py --customers 100000 [--work DIR] [--snapshot DIR]

Generates and extracts the demo company (unless ``--snapshot`` names one), runs main's
full ``shadowbill check --out`` (the baseline), then, for a copy of rollout.yaml whose
``sales_pro`` rule bills one more seat, the scoped check (``--baseline --base-dir``) and
the full check, each as its own process, and prints both wall times side by side and
whether their findings.parquet are the same bytes. Run by hand; figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo_company"
SALES_PRO = '- {from: "pro_month_*", price: advanced_month, quantity: seats}'
SHADOWBILL = [sys.executable, "-m", "shadowbill.cli.app"]
# The machine is shared: wall time includes waiting for a core, CPU time does not.


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children) of one command.

    Its output is discarded; exit 0 and 1 (gate failed) are results, anything else stops.
    """
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)}: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - started, cpu


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--snapshot", type=Path, default=None, help="reuse an extracted demo")
    parser.add_argument("--baseline", type=Path, default=None, help="reuse main's results")
    parser.add_argument("--partitions", type=int, default=1, help="of the full checks")
    parser.add_argument("--workers", type=int, default=1, help="of the full checks")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-check-"))
    snapshot = args.snapshot
    if snapshot is None:
        snapshot = work / "snap"
        timed(
            [
                *SHADOWBILL,
                "demo-data",
                "--customers",
                str(args.customers),
                "--out",
                str(work / "legacy.db"),
            ]
        )
        timed([*SHADOWBILL, "extract", "--source", f"sqlite:///{work / 'legacy.db'}", "--spec",
               str(work / "legacy.extract.yaml"), "--out", str(snapshot), "--quiet"])  # fmt: skip
    head = work / "head"
    head.mkdir(parents=True, exist_ok=True)
    for f in EXAMPLES.glob("*.yaml"):
        shutil.copy(f, head / f.name)
    rollout = head / "rollout.yaml"
    rollout.write_text(
        rollout.read_text().replace(SALES_PRO, SALES_PRO.replace("seats}", '"seats + 1"}'), 1)
    )
    common = ["check", "--snapshot", str(snapshot), "--phase", "2"]
    spread = ["--partitions", str(args.partitions), "--workers", str(args.workers)]
    baseline = args.baseline or work / "baseline"
    if args.baseline is None:
        main_run = timed([*SHADOWBILL, *common, *spread, "--rollout", str(EXAMPLES / "rollout.yaml"),
                          "--policy", str(EXAMPLES / "policy.yaml"), "--out", str(baseline)])  # fmt: skip
        print(
            f"baseline (main, full check --out): {main_run[0]:.1f} s wall, {main_run[1]:.1f} s CPU"
        )
    pr = [*common, "--rollout", str(rollout), "--policy", str(head / "policy.yaml"),
          "--baseline", str(baseline)]  # fmt: skip
    scoped = timed([*SHADOWBILL, *pr, "--base-dir", str(EXAMPLES), "--out", str(work / "scoped")])
    full = timed([*SHADOWBILL, *pr, *spread, "--out", str(work / "full")])
    same = (work / "scoped" / "findings.parquet").read_bytes() == (
        work / "full" / "findings.parquet"
    ).read_bytes()
    print(f"one-rule change, scoped: {scoped[0]:.1f} s wall, {scoped[1]:.1f} s CPU")
    print(f"the same, full: {full[0]:.1f} s wall, {full[1]:.1f} s CPU ({' '.join(spread)})")
    print(f"same findings.parquet bytes: {same}")


if __name__ == "__main__":
    main()
