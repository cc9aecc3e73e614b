"""What an apply or a rollback did, per operation: plain data for the runner and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperationFailure:
    """Why one operation failed: Stripe's error code and message (scrubbed of secrets)."""

    key: str
    kind: str
    message: str
    code: str | None = None
    http_status: int | None = None


@dataclass
class ApplyReport:
    """What an apply did, per operation key."""

    created: dict[str, str] = field(default_factory=dict)  # key -> new target id
    reused: dict[str, str] = field(default_factory=dict)  # key -> existing target id
    known: dict[str, str] = field(default_factory=dict)  # key -> id the caller already had
    failed: dict[str, OperationFailure] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> why (a failed dependency)
    requests: int = 0
    retries: int = 0
    elapsed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every operation was created, reused or already known."""
        return not self.failed and not self.skipped

    @property
    def ids(self) -> dict[str, str]:
        """Every operation key with its target id (known, reused and created)."""
        return {**self.known, **self.reused, **self.created}

    def summary(self) -> str:
        """One line for a log or the CLI."""
        return (
            f"{len(self.created)} created, {len(self.reused)} reused, {len(self.known)} known, "
            f"{len(self.failed)} failed, {len(self.skipped)} skipped in "
            f"{self.elapsed_seconds:.1f}s ({self.requests} requests, {self.retries} retries)"
        )


@dataclass
class RemoveReport:
    """What a rollback removed, deactivated, kept (shared catalog) or failed to remove."""

    removed: list[tuple[str, str]] = field(default_factory=list)
    deactivated: list[tuple[str, str]] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # target id -> message

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


@dataclass(frozen=True)
class Outcome:
    """One operation's result inside an apply."""

    key: str
    target_id: str | None = None
    reused: bool = False
    failure: OperationFailure | None = None
