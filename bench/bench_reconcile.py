"""Benchmark: the demo company end to end through the command line, stage by stage.

    python bench/bench_reconcile.py --customers 100000 --months 12 [--work DIR]
        [--partitions P] [--workers N] [--dask-local N [--dask-malloc-default]]
        [--skip-generate] [--skip-extract]

Runs ``shadowbill demo-data``, ``extract`` and ``reconcile --phase 2`` as separate
processes and prints each stage's wall time and peak memory: the largest sum of the
resident memory of the command and every process it started (worker processes and a
Dask cluster included), sampled every 0.1 s. ``--dask-local N`` starts a Dask
LocalCluster of N single-threaded worker processes on loopback for the reconcile stage;
``--dask-malloc-default`` starts them without the ``MALLOC_TRIM_THRESHOLD_`` that Dask's
nanny sets by default (which also fixes glibc's mmap threshold at 128 KiB).
Run by hand; the figures go into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo_company"


def _tree_rss(roots: list[psutil.Process]) -> int:
    total = 0
    seen: set[int] = set()
    for root in roots:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
    return total


def timed(args: list[str], also: list[psutil.Process] | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GB of the command's process tree plus ``also``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    base = _tree_rss(also or [])
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss([root, *(also or [])]) - base)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{args[3] if len(args) > 3 else args}: failed\n{err.decode()[-2000:]}")
    return time.perf_counter() - started, (peak + base) / 1e9


def main() -> None:
    """Run the three stages and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dask-local", type=int, default=0, help="LocalCluster workers")
    parser.add_argument(
        "--dask-malloc-default",
        action="store_true",
        help="start the LocalCluster's workers without the nanny's MALLOC_TRIM_THRESHOLD_",
    )
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--skip-extract", action="store_true")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="shadowbill-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "legacy.db"
    exe = [sys.executable, "-m", "shadowbill.cli.app"]
    stages = {}
    if not opts.skip_generate:
        stages["generate"] = [
            *exe, "demo-data", "--customers", str(opts.customers),
            "--months", str(opts.months), "--out", str(db),
        ]  # fmt: skip
    if not opts.skip_extract:
        stages["extract"] = [
            *exe, "extract", "--source", f"sqlite:///{db}",
            "--spec", str(work / "legacy.extract.yaml"), "--out", str(work / "snap"), "--quiet",
        ]  # fmt: skip
    reconcile = [
        *exe, "reconcile", "--snapshot", str(work / "snap"),
        "--rollout", str(EXAMPLES / "rollout.yaml"), "--phase", "2",
        "--policy", str(EXAMPLES / "policy.yaml"), "--out", str(work / "report"),
        "--partitions", str(opts.partitions), "--workers", str(opts.workers),
    ]  # fmt: skip
    cluster = None
    also: list[psutil.Process] = []
    if opts.dask_local:
        import dask
        from distributed import LocalCluster

        if opts.dask_malloc_default:  # glibc's own heap tuning (see the README)
            spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
            spawn_env.pop("MALLOC_TRIM_THRESHOLD_", None)
            dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env})
        cluster = LocalCluster(
            n_workers=opts.dask_local, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None, memory_limit=0,
        )  # fmt: skip
        reconcile += ["--dask", cluster.scheduler_address]
        also = [psutil.Process()]  # the cluster's worker processes are our children
    stages["reconcile"] = reconcile
    how = (
        f"dask LocalCluster x{opts.dask_local}" if opts.dask_local else f"{opts.workers} worker(s)"
    )
    print(
        f"{opts.customers:,} customers x {opts.months} months, {opts.partitions} partitions,"
        f" {how}, in {work}"
    )
    try:
        for name, args in stages.items():
            wall, peak = timed(args, also if name == "reconcile" else None)
            print(f"{name:<10} {wall:8.1f} s  {peak:6.2f} GB peak", flush=True)
    finally:
        if cluster is not None:
            cluster.close()
    html = work / "report" / "report.html"
    print(f"report.html {html.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
