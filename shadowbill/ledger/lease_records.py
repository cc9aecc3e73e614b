"""The apply lease: a running ``apply`` holds its batch, so a rollback can tell it from a crash.

An apply takes the lease (holder = user@host pid, heartbeat, expiry) in one transaction
before its first request, renews it while it runs (a heartbeat), and releases it at the
end. A crashed apply stops renewing: its lease expires and a forced rollback may go on.
A live lease refuses a second apply and any rollback, naming the holder. A lease whose
holder ran on this machine and whose process is gone (a SIGKILL) is dead at once, so a
killed apply resumes without waiting for the expiry.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from dataclasses import dataclass

import sqlalchemy as sa

from shadowbill.ledger.connection import LedgerConnection
from shadowbill.ledger.errors import LeaseHeldError
from shadowbill.ledger.records import _now
from shadowbill.ledger.schema import batches

DEFAULT_LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class Lease:
    """Who holds a batch's apply lease, their last heartbeat and when it expires."""

    holder: str
    heartbeat: dt.datetime
    expires: dt.datetime

    def describe(self, now: dt.datetime | None = None) -> str:
        """``alice@host pid 42 (heartbeat 3s ago, expires in 117s)``."""
        now = now or _now()
        ago = max(0, int((now - self.heartbeat).total_seconds()))
        left = max(0, int((self.expires - now).total_seconds()))
        return f"{self.holder} (heartbeat {ago}s ago, expires in {left}s)"


def lease_holder(actor: str) -> str:
    """This process as a lease holder: ``actor@host pid N``."""
    return f"{actor}@{socket.gethostname()} pid {os.getpid()}"[:200]


class LeaseRecords(LedgerConnection):
    """Batch apply leases (a part of :class:`~shadowbill.ledger.store.Ledger`)."""

    def lease(self, batch_id: str) -> Lease | None:
        """The batch's live lease, or None (never taken, released or expired)."""
        with self._read() as conn:
            row = self._batch_row(conn, batch_id)
        return _live(row, _now())

    def acquire_lease(
        self, batch_id: str, holder: str, seconds: float = DEFAULT_LEASE_SECONDS
    ) -> Lease:
        """Take the batch's lease for ``seconds``; a live lease of another holder refuses."""
        now = _now()
        with self._write() as conn:
            row = self._batch_row(conn, batch_id, lock=True)
            held = _live(row, now)
            if held is not None and held.holder != holder:
                raise LeaseHeldError(
                    f"batch {batch_id} is being applied by {held.describe(now)}; wait for it to "
                    "finish (or, if that process is gone, for its lease to expire)"
                )
            lease = Lease(holder, now, now + dt.timedelta(seconds=seconds))
            self._set_lease(conn, batch_id, lease)
        return lease

    def renew_lease(
        self, batch_id: str, holder: str, seconds: float = DEFAULT_LEASE_SECONDS
    ) -> bool:
        """Extend our lease (the heartbeat); False when it is no longer ours."""
        now = _now()
        with self._write() as conn:
            done = conn.execute(
                batches.update()
                .where(batches.c.batch_id == batch_id, batches.c.lease_holder == holder)
                .values(lease_heartbeat=now, lease_expires=now + dt.timedelta(seconds=seconds))
            )
        return bool(done.rowcount)

    def release_lease(self, batch_id: str, holder: str) -> None:
        """Give our lease back (a lease of another holder is left alone)."""
        with self._write() as conn:
            conn.execute(
                batches.update()
                .where(batches.c.batch_id == batch_id, batches.c.lease_holder == holder)
                .values(lease_holder=None, lease_heartbeat=None, lease_expires=None)
            )

    def _set_lease(self, conn: sa.Connection, batch_id: str, lease: Lease) -> None:
        conn.execute(
            batches.update()
            .where(batches.c.batch_id == batch_id)
            .values(
                lease_holder=lease.holder,
                lease_heartbeat=lease.heartbeat,
                lease_expires=lease.expires,
            )
        )


def _live(row: object, now: dt.datetime) -> Lease | None:
    holder = getattr(row, "lease_holder", None)
    expires = getattr(row, "lease_expires", None)
    heartbeat = getattr(row, "lease_heartbeat", None)
    if not holder or expires is None or expires <= now or _gone(str(holder)):
        return None
    return Lease(str(holder), heartbeat or now, expires)


_HOLDER = re.compile(r"@(?P<host>[^@]+) pid (?P<pid>\d+)$")


def _gone(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists (killed)."""
    match = _HOLDER.search(holder)
    if match is None or match["host"] != socket.gethostname():
        return False  # another machine's process: only its expiry tells
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
