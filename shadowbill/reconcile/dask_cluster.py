"""Reaching a Dask cluster and checking, before any partition runs, that its workers can.

A partition on a Dask worker reads the snapshot, the rollout and both catalogs at the paths
this machine gave, and writes its findings into the run's work folder: on a cluster of
several machines those must be shared paths. :func:`check_workers` asks every worker
before the run starts, so a worker that cannot see them is named up front instead of
failing each partition it is given.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from shadowbill.errors import ClusterError
from shadowbill.listing import first_few

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

# Set by Dask's nanny by default; with it the workers ran 1.35x (100k) to 1.8x (1M) slower.
MALLOC_KEY: Final = "MALLOC_TRIM_THRESHOLD_"
SHOW: Final = 3  # workers named in an error


def connect(address: str) -> Client:
    """A client of the Dask scheduler at ``address``, or a ClusterError saying why not."""
    from distributed import Client
    from distributed.comm import resolve_address

    try:
        # a malformed address fails here, not half-way into a Client that then hangs on exit
        resolve_address(address)
        return Client(address)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {exc}. Check the --dask address"
            " and that the scheduler is running"
        ) from None


def probe(read: Mapping[str, str], write: str) -> dict[str, Any]:
    """What one worker sees: the named paths it cannot read, whether it can write, its env."""
    missing = [name for name, path in read.items() if not os.path.exists(path)]
    marker = Path(write) / f".probe-{uuid.uuid4().hex}"
    try:
        marker.write_bytes(b"")
        marker.unlink()
        writable = ""
    except OSError as exc:
        writable = exc.strerror or type(exc).__name__
    return {"missing": missing, "unwritable": writable, "malloc": os.environ.get(MALLOC_KEY)}


def check_workers(client: Client, read: Mapping[str, Path], write: Path) -> list[str]:
    """Refuse a cluster whose workers cannot read ``read`` or write ``write``; return warnings.

    ``read`` names each path (e.g. "the snapshot") for the error message.
    """
    paths = {name: str(path) for name, path in read.items()}
    try:
        seen: dict[str, dict[str, Any]] = client.run(probe, paths, str(write))
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot ask the Dask workers what they see: {exc}") from None
    if not seen:
        raise ClusterError("the Dask cluster has no workers; start some, then run again")
    problems: list[str] = []
    for name, path in paths.items():
        blind = sorted(w for w, got in seen.items() if name in got["missing"])
        if blind:
            problems.append(f"{_workers(blind)} cannot see {name} at {path}")
    unwritable = sorted(w for w, got in seen.items() if got["unwritable"])
    if unwritable:
        reason = seen[unwritable[0]]["unwritable"]
        problems.append(
            f"{_workers(unwritable)} cannot write the work folder {write} ({reason});"
            " pass --work-dir a folder every worker sees"
        )
    if problems:
        raise ClusterError(
            "the Dask workers must see this run's files at the same paths as this machine: "
            + "; ".join(problems)
        )
    slowed = sorted(w for w, got in seen.items() if got["malloc"] is not None)
    if not slowed:
        return []
    return [
        f"{_workers(slowed)} run with {MALLOC_KEY}={seen[slowed[0]]['malloc']} (the Dask"
        " nanny's default), which made a measured 1M-customer run 1.8x slower: start them"
        " without it (shadowbill's README, Measured)"
    ]


def warn_about(warnings: list[str]) -> None:
    """Log each warning of :func:`check_workers` (stderr unless logging is configured)."""
    for text in warnings:
        log.warning("shadowbill: warning: %s", text)


def _workers(addresses: list[str]) -> str:
    """Up to SHOW worker addresses, and how many more."""
    noun = "worker" if len(addresses) == 1 else "workers"
    return f"Dask {noun} {first_few(addresses, SHOW)}"
