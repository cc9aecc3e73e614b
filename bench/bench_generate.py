"""Measure the demo company generator: wall time, time per stage, peak RSS, output sizes.

    python bench/bench_generate.py [--customers 100000] [--months 12] [--seed 7] [--out DIR]

Runs ``shadowbill.demo.generate.generate`` once in this process and prints one JSON object:
wall seconds (time.perf_counter around the call), CPU seconds of the process (user +
system, including imports), the 1-minute load average (other work on the machine inflates
wall time), the generator's own per-stage times,
the process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which
includes the interpreter and the imported libraries), rows written per table, the size of
the SQLite file, and rows written per second. Run it on an otherwise idle machine: the
numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from shadowbill.demo.generate import generate


def main() -> None:
    """Parse the size, generate once, print the measurements as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="folder (default: a temporary one)")
    args = parser.parse_args()
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="shadowbill-bench-"))
    began = time.perf_counter()
    result = generate(
        out_dir / "legacy.db", customers=args.customers, months=args.months, seed=args.seed
    )
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = sum(result.table_counts.values())
    print(
        json.dumps(
            {
                "customers": args.customers,
                "months": args.months,
                "wall_seconds": round(wall, 2),
                "stage_seconds": result.stage_seconds,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "peak_rss_mb": round(usage.ru_maxrss / 1024),
                "rows": result.table_counts,
                "rows_per_second": round(rows / wall),
                "db_mb": round(result.db_path.stat().st_size / 2**20, 1),
                "planted_errors": result.error_counts,
                "db_path": str(result.db_path),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
