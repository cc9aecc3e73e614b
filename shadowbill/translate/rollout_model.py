"""The rollout file's model: the validated rules (pydantic) and the loaded rollout with its
catalogs. Read by :mod:`.rollout` (loading) and :mod:`.rollout_checks` (cross-checks);
it imports neither, so they import it and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shadowbill.errors import RolloutError
from shadowbill.money import is_currency
from shadowbill.pricing.catalog import Catalog
from shadowbill.translate.collection_terms import CollectionTerms
from shadowbill.translate.quantity_formula import parse_formula
from shadowbill.yaml_source import (
    KeyPath,
)

# ------------------------------------------------------------------ value types ----


def _listify(value: Any) -> Any:
    """Accept a single value where a list is expected (``segment: sales``)."""
    return [value] if isinstance(value, str | int | date) and not isinstance(value, bool) else value


def _instant(value: Any) -> Any:
    """A YAML date, datetime or ISO text as an aware UTC datetime (a date is its midnight)."""
    if isinstance(value, bool) or not isinstance(value, str | date):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"expected an ISO date or timestamp, got {value!r}") from None
    if pd.isna(stamp):
        raise ValueError(f"expected an ISO date or timestamp, got {value!r}")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _currency(value: Any) -> str:
    if not is_currency(value):
        raise ValueError(f"expected an ISO 4217 currency code, got {value!r}")
    return str(value).strip().lower()


def _country(value: Any) -> str:
    text = str(value).strip().upper()
    if len(text) != 2 or not text.isalpha():
        raise ValueError(f"expected a two-letter country code, got {value!r}")
    return text


def _formula(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("expected a quantity formula, got a boolean")
    text = str(value).strip() if isinstance(value, int | str) else value
    if not isinstance(text, str):
        raise ValueError(f"expected a quantity formula, got {value!r}")
    parse_formula(text)  # FormulaSyntaxError is a ValueError: pydantic names the key
    return text


def _percent(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"expected a percentage, got {value!r}")
    try:
        out = Decimal(str(value).strip())  # via text: a YAML float never does arithmetic
    except InvalidOperation:
        raise ValueError(f"expected a percentage, got {value!r}") from None
    if not out.is_finite() or out < 0:
        raise ValueError(f"expected a percentage of zero or more, got {value!r}")
    return out


Instant = Annotated[datetime, BeforeValidator(_instant)]
Currency = Annotated[str, BeforeValidator(_currency)]
Country = Annotated[str, BeforeValidator(_country)]
Pattern = Annotated[str, Field(min_length=1)]
Patterns = Annotated[list[Pattern], BeforeValidator(_listify)]
FormulaText = Annotated[str, BeforeValidator(_formula)]
Percent = Annotated[Decimal, BeforeValidator(_percent)]
RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]
Segment = Literal["self_serve", "sales"]
Status = Literal["trialing", "active", "past_due", "canceled", "unpaid", "paused"]
Interval = Literal["day", "week", "month", "year"]
NEXT_RENEWAL = "next_renewal"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------- match ----


class Range(_Strict):
    """An inclusive range of whole numbers; a missing bound is open."""

    min: Annotated[int, Field(ge=0, strict=True)] | None = None
    max: Annotated[int, Field(ge=0, strict=True)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class DateRange(_Strict):
    """Instants in ``[on_or_after, before)``; a missing bound is open."""

    on_or_after: Instant | None = None
    before: Instant | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.on_or_after and self.before and self.on_or_after >= self.before:
            raise ValueError("on_or_after must come before `before`")
        return self


class PriceMatch(_Strict):
    """Conditions on the price ids of a subscription's items (glob patterns, ``pro_*``)."""

    all: Patterns = Field(default_factory=list)  # an item matches each pattern
    any: Patterns = Field(default_factory=list)  # an item matches one of the patterns
    none: Patterns = Field(default_factory=list)  # no item matches any pattern


class Match(_Strict):
    """A selector on a subscription's state; every condition given must hold (AND).

    Lists mean "one of". An empty match selects everything.
    """

    prices: PriceMatch | None = None
    plan: Annotated[list[str], BeforeValidator(_listify)] | None = None  # legacy product ids
    seats: Range | None = None
    segment: Annotated[list[Segment], BeforeValidator(_listify)] | None = None
    currency: Annotated[list[Currency], BeforeValidator(_listify)] | None = None
    country: Annotated[list[Country], BeforeValidator(_listify)] | None = None
    interval: Annotated[list[Interval], BeforeValidator(_listify)] | None = None
    status: Annotated[list[Status], BeforeValidator(_listify)] | None = None
    tenure_months: Range | None = None  # whole months from customers.created_at to as_of
    created: DateRange | None = None  # customers.created_at
    metadata: dict[str, str] | None = None  # extra (non-canonical) snapshot columns

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


# ----------------------------------------------------------------------- then ----


class When(_Strict):
    """A cut-over or switch instant: a date, or the next renewal on or after a date."""

    at: datetime | Literal["next_renewal"]
    not_before: Instant | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if isinstance(value, str | date) and not isinstance(value, bool):
            value = {"at": value}
        if isinstance(value, dict) and "at" in value and value["at"] != NEXT_RENEWAL:
            value = {**value, "at": _instant(value["at"])}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> When:
        if self.not_before is not None and self.at != NEXT_RENEWAL:
            raise ValueError("not_before goes with at: next_renewal")
        return self

    @property
    def fixed(self) -> datetime | None:
        """The instant when it does not depend on the subscription."""
        return self.at if isinstance(self.at, datetime) else None

    def describe(self) -> str:
        """``2026-01-01`` or ``next renewal on or after 2026-03-01``."""
        if isinstance(self.at, datetime):
            return _stamp_text(self.at)
        after = f" on or after {_stamp_text(self.not_before)}" if self.not_before else ""
        return f"next renewal{after}"


def _stamp_text(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.hour == value.minute == value.second == value.microsecond == 0:
        return value.date().isoformat()
    return value.isoformat().replace("+00:00", "Z")


class NewItem(_Strict):
    """A new item: its price, the legacy items it replaces, and its quantity formula.

    The default quantity is ``quantity`` (the replaced items' summed quantity) when
    ``from`` is given, else ``1``.
    """

    price: str = Field(min_length=1)
    from_: Patterns = Field(default_factory=list, alias="from")
    quantity: FormulaText | None = None

    @property
    def formula(self) -> str:
        """The quantity formula with its default filled in."""
        return self.quantity or ("quantity" if self.from_ else "1")


class Drop(_Strict):
    """Legacy items removed on purpose, with the reason finance will read."""

    from_: Patterns = Field(alias="from", min_length=1)
    reason: str = Field(min_length=1)


class Switch(_Strict):
    """A scheduled move from a kept legacy price to a new price (phase 3).

    ``from`` defaults to the rollout's ``seat_prices``; ``quantity`` to ``quantity``;
    ``at`` is a date or ``next_renewal`` (with ``not_before``, a date).
    """

    from_: Patterns | None = Field(default=None, alias="from")
    to: str = Field(min_length=1)
    at: When
    quantity: FormulaText | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_not_before(cls, value: Any) -> Any:
        """Accept ``{to: x, at: next_renewal, not_before: 2026-07-01}`` in one mapping."""
        if (
            isinstance(value, dict)
            and "not_before" in value
            and not isinstance(value.get("at"), dict)
        ):
            value = dict(value)
            value["at"] = {"at": value.get("at"), "not_before": value.pop("not_before")}
        return value

    @property
    def formula(self) -> str:
        """The quantity formula with its default filled in."""
        return self.quantity or "quantity"


class Protection(_Strict):
    """Cap the increase at ``max_increase_percent`` for ``months`` after the cut-over."""

    max_increase_percent: Percent
    months: Annotated[int, Field(ge=1, le=120, strict=True)]


class Then(_Strict):
    """What a matched subscription becomes."""

    items: list[NewItem] = Field(default_factory=list)
    drop: list[Drop] = Field(default_factory=list)
    recreate_legacy_prices: bool = False
    switch: list[Switch] = Field(default_factory=list)
    discounts: Literal["carry", "drop"] | None = None
    price_protection: Protection | None = None
    cutover: When | None = None

    @field_validator("switch", mode="before")
    @classmethod
    def _one_switch(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class Rule(_Strict):
    """An ordered mapping rule: the first rule whose match holds maps the subscription."""

    id: RuleId
    description: str | None = None
    match: Match = Field(default_factory=Match)
    then: Then = Field(default_factory=Then)


class ItemMapEntry(_Strict):
    """A phase-wide mapping for legacy items no rule item consumed (add-ons, channels)."""

    from_: Patterns = Field(alias="from", min_length=1)
    price: str = Field(min_length=1)
    quantity: FormulaText | None = None

    @property
    def formula(self) -> str:
        """The quantity formula with its default filled in."""
        return self.quantity or "quantity"


class Phase(_Strict):
    """One phase of the rollout: its cohort, defaults and ordered rules."""

    phase: Annotated[int, Field(ge=1, strict=True)]
    name: str = Field(min_length=1)
    description: str | None = None
    cohort: Match = Field(default_factory=Match)
    cutover: When
    discounts: Literal["carry", "drop"]
    item_map: list[ItemMapEntry] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)

    def cutover_of(self, rule: Rule) -> When:
        """The rule's cut-over, or the phase's."""
        return rule.then.cutover or self.cutover

    def discounts_of(self, rule: Rule) -> str:
        """The rule's discount policy, or the phase's."""
        return rule.then.discounts or self.discounts


class CatalogPaths(_Strict):
    """The two catalogs, relative to the rollout file."""

    legacy: str = Field(min_length=1)
    new: str = Field(min_length=1)


def _default_statuses() -> list[Status]:
    return ["active", "trialing", "past_due"]


def _status_list(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("name at least one status")
    return value


class RolloutSpec(_Strict):
    """A rollout file as written (validated; references checked by ``load_rollout``)."""

    rollout: str = Field(min_length=1)
    description: str | None = None
    catalogs: CatalogPaths
    as_of: Instant | None = None
    eligible_statuses: Annotated[list[Status], AfterValidator(_status_list)] = Field(
        default_factory=_default_statuses
    )
    seat_prices: Patterns = Field(default_factory=list)
    billing_terms: list[CollectionTerms] = Field(default_factory=list)
    phases: list[Phase] = Field(min_length=1)


# --------------------------------------------------------------------- loaded ----


@dataclass(frozen=True)
class Catalogs:
    """The legacy and the new catalog of a rollout."""

    legacy: Catalog
    new: Catalog


@dataclass(frozen=True)
class Rollout:
    """A validated rollout file with its two catalogs loaded.

    ``warnings`` holds problems that do not stop a run (shadowed rules); a strict load
    turns them into a RolloutError.
    """

    spec: RolloutSpec
    path: Path
    catalogs: Catalogs
    legacy_catalog_path: Path
    new_catalog_path: Path
    warnings: tuple[str, ...] = ()
    lines: dict[KeyPath, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The rollout's name."""
        return self.spec.rollout

    def phase(self, number: int) -> Phase:
        """The phase with this number, or a RolloutError listing the phases."""
        for phase in self.spec.phases:
            if phase.phase == number:
                return phase
        known = ", ".join(str(p.phase) for p in self.spec.phases)
        raise RolloutError(f"{self.path}: no phase {number} (phases: {known})")

    def where(self, key_path: KeyPath) -> str:
        """``file:line`` of a key path, for messages."""
        line = None
        for end in range(len(key_path), -1, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                break
        return f"{self.path}:{line}" if line else str(self.path)

    def rule_location(self, rule_id: str) -> str:
        """``file:line`` of a rule, so a report can point finance and engineers at it."""
        for i, phase in enumerate(self.spec.phases):
            for j, rule in enumerate(phase.rules):
                if rule.id == rule_id:
                    return self.where(("phases", i, "rules", j))
        raise RolloutError(f"{self.path}: no rule {rule_id!r}")


def uses_recreated_prices(spec: RolloutSpec) -> bool:
    """Whether any rule keeps legacy prices (so they must exist on the new platform)."""
    return any(r.then.recreate_legacy_prices for p in spec.phases for r in p.rules)
