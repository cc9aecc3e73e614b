"""The gate policy: what differences a rollout phase may produce before CI fails it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shadowbill.errors import PolicyError
from shadowbill.yaml_source import load_yaml, validate

CAUSES = (
    "price_change",
    "quantity_transform",
    "discount_carried",
    "discount_lost",
    "price_protection",
    "proration_method",
    "rounding",
    "new_usage_charge",
    "removed_item",
    "tax",
    "tax_external",
    "missing_line",
    "extra_line",
    "unmapped",
    "unexplained",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerance(_Strict):
    """Per-invoice differences at or under these limits are not failures."""

    absolute: int = Field(0, ge=0, description="minor units")
    relative_percent: Decimal = Field(Decimal(0), ge=0)


class IncreaseCap(_Strict):
    """How many customers may see their bill rise by more than ``above_percent``: at most
    ``max_customers``, and at most ``max_share`` percent of the phase's mapped customers
    (each limit given must hold; with neither, none may)."""

    above_percent: Decimal = Field(Decimal(20), ge=0)
    max_customers: int | None = Field(None, ge=0)
    max_share: Decimal | None = Field(
        None, ge=0, le=100, description="percent of the phase's mapped customers"
    )

    def allows(self, rising: int, cohort: int) -> bool:
        """Whether ``rising`` of ``cohort`` mapped customers is within every limit given."""
        absolute = self.max_customers if self.max_customers is not None else None
        if absolute is None and self.max_share is None:
            absolute = 0
        if absolute is not None and rising > absolute:
            return False
        return self.max_share is None or Decimal(rising) * 100 <= self.max_share * cohort

    def describe(self) -> str:
        """The limit as written, for the gate table."""
        parts = []
        if self.max_customers is not None or self.max_share is None:
            parts.append(f"<= {self.max_customers or 0} customers")
        if self.max_share is not None:
            parts.append(f"<= {self.max_share}% of the mapped customers")
        return " and ".join(parts) + f" above +{self.above_percent}%"


class ComparisonLimit(_Strict):
    """How many unexplained findings one comparison may have before the gate fails."""

    max_unexplained: int = Field(0, ge=0)
    max_unexplained_amount: int = Field(0, ge=0, description="minor units, any currency")


# tax_external is informational but never allowed by default: a policy allows it by name
DEFAULT_ALLOWED = tuple(c for c in CAUSES[:11] if c != "tax_external")


class PhasePolicy(_Strict):
    """What one phase may change."""

    allowed_causes: tuple[str, ...] = DEFAULT_ALLOWED

    @field_validator("allowed_causes")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CAUSES))
        if unknown:
            raise ValueError(f"unknown cause(s) {unknown}; expected some of {list(CAUSES)}")
        return value


class Policy(_Strict):
    """Tolerances, allowed causes per phase and limits that turn findings into pass or fail."""

    tolerance: Tolerance = Tolerance()
    materiality: Tolerance = Field(
        Tolerance(absolute=100, relative_percent=Decimal(1)),
        description="findings at or under this are severity info",
    )
    max_unexplained: int = Field(0, ge=0)
    max_unexplained_amount: int = Field(0, ge=0, description="minor units, any currency")
    max_unmapped: int = Field(0, ge=0)
    max_drift: int | None = Field(
        None, ge=0, description="legacy drift findings (A); none = report only"
    )
    increase_cap: IncreaseCap = IncreaseCap()
    phases: dict[int, PhasePolicy] = Field(default_factory=dict)
    # limits on unexplained findings of comparisons A and C; a comparison not named here
    # may have none (comparison B's limits are max_unexplained and max_unexplained_amount)
    comparisons: dict[Literal["A", "C"], ComparisonLimit] = Field(default_factory=dict)
    gate_on: Literal["all", "new"] = Field(
        "all",
        description="new: with a baseline (check --baseline), only findings new or changed"
        " since it, newly unmapped subscriptions and newly rising customers can fail the gate",
    )

    def for_phase(self, phase: int) -> PhasePolicy:
        """The phase's own rules, or the defaults."""
        return self.phases.get(phase, PhasePolicy())


DEFAULT_POLICY = Policy()


def load_policy(path: Path | str | None) -> Policy:
    """Read a gate policy file; no file means the defaults (strict on unexplained)."""
    if path is None:
        return DEFAULT_POLICY
    doc = load_yaml(path, PolicyError)
    if doc.empty:
        raise PolicyError(
            f"{doc.path}: the policy file is empty; give its keys, or write `{{}}` to mean "
            "the defaults explicitly (or leave out --policy)"
        )
    return validate(doc, Policy, PolicyError)
