"""Measure extraction at scale: wall time, CPU time and peak RSS of `extract` on a demo database.

    python bench/bench_extract.py [--customers 100000] [--months 12] [--db PATH] [--out DIR]
                                  [--chunk-size 200000] [--source-url URL]

Generates the demo company's legacy SQLite database (unless --db names an existing one),
then runs the extraction in a fresh child process, so that its peak RSS (ru_maxrss of the
child) counts extraction only, not generation. Prints one JSON object: rows per table,
seconds, CPU seconds, peak RSS in MiB, and rows per second.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
from shadowbill.extract.run import extract
started = time.perf_counter()
result = extract(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]),
                 chunk_size=int(sys.argv[4]), progress=False)
print(json.dumps({
    "seconds_in_extract": round(time.perf_counter() - started, 2),
    "rows": {name: c.rows_in for name, c in result.counts.items()},
    "quarantined": sum(c.quarantined for c in result.counts.values()),
}))
"""


def main() -> None:
    """Generate (if needed) and extract a demo database; print the measurements as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", type=Path, default=None, help="existing legacy.db to reuse")
    parser.add_argument("--out", type=Path, default=None, help="work folder")
    parser.add_argument("--chunk-size", type=int, default=200_000)
    parser.add_argument("--source-url", default=None, help="extract from this URL instead")
    args = parser.parse_args()

    work = args.out or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    db = args.db or work / "legacy.db"
    spec = db.with_name(db.stem + ".extract.yaml")
    generated = None
    if not db.exists():
        from shadowbill.demo.generate import generate

        started = time.perf_counter()
        demo = generate(db, customers=args.customers, months=args.months, seed=args.seed)
        spec = demo.spec_path
        generated = round(time.perf_counter() - started, 2)

    source = args.source_url or f"sqlite:///{db}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            source,
            str(spec),
            str(work / "snapshot"),
            str(args.chunk_size),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    total_rows = sum(measured["rows"].values())
    report = {
        "customers": args.customers,
        "months": args.months,
        "db_mib": round(db.stat().st_size / 2**20, 1) if db.exists() else None,
        "generate_seconds": generated,
        "process_seconds": round(wall, 2),
        **measured,
        "cpu_seconds": round(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2
        ),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "total_rows": total_rows,
        "rows_per_second": round(total_rows / measured["seconds_in_extract"]),
        "snapshot_mib": round(
            sum(f.stat().st_size for f in (work / "snapshot").iterdir()) / 2**20, 1
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
