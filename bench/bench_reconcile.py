"""Benchmark: the demo company end to end through the command line, stage by stage.

    python bench/bench_reconcile.py --customers 100000 --months 12 [--work DIR]

Runs ``shadowbill demo-data``, ``extract`` and ``reconcile --phase 2`` as separate
processes under GNU time and prints each stage's wall time and peak resident memory,
plus the report's size. Run by hand; the figures go into the README.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo_company"


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one command."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *args], check=True, capture_output=True, text=True
    )
    wall, kbytes = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kbytes) / 1e6


def main() -> None:
    """Run the three stages and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--work", type=Path, default=None)
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="shadowbill-bench-"))
    db = work / "legacy.db"
    exe = [sys.executable, "-m", "shadowbill.cli"]
    stages = {
        "generate": [
            *exe,
            "demo-data",
            "--customers",
            str(opts.customers),
            "--months",
            str(opts.months),
            "--out",
            str(db),
        ],
        "extract": [
            *exe,
            "extract",
            "--source",
            f"sqlite:///{db}",
            "--spec",
            str(work / "legacy.extract.yaml"),
            "--out",
            str(work / "snap"),
            "--quiet",
        ],
        "reconcile": [
            *exe,
            "reconcile",
            "--snapshot",
            str(work / "snap"),
            "--rollout",
            str(EXAMPLES / "rollout.yaml"),
            "--phase",
            "2",
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--out",
            str(work / "report"),
        ],
    }
    print(f"{opts.customers:,} customers x {opts.months} months in {work}")
    for name, args in stages.items():
        wall, peak = timed(args)
        print(f"{name:<10} {wall:8.1f} s  {peak:6.2f} GB peak")
    html = work / "report" / "report.html"
    print(f"report.html {html.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
