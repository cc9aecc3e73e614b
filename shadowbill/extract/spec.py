"""The extract spec: how each canonical table is read from a legacy database (docs/extract-spec.md).

Loaded with :mod:`shadowbill.yaml_source`, so every error names the spec file, the
line and the key. Unknown canonical tables and columns are errors, not silently ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from shadowbill.errors import ExtractSpecError
from shadowbill.money import is_currency
from shadowbill.snapshot.tables import BOOL, INT, STR, TABLES, TS
from shadowbill.yaml_source import YamlDocument, load_yaml, validate

ColumnType = Literal[
    "epoch_seconds",
    "epoch_millis",
    "timestamp",
    "major_units",
    "major_decimal",
    "minor_units",
    "integer",
    "decimal_string",
    "bool",
]
Transform = Literal["upper", "lower", "strip"]

# Which spec types may fill a canonical column of each Arrow type.
TYPES_FOR = {
    TS: ("timestamp", "epoch_seconds", "epoch_millis"),
    INT: ("integer",),
    STR: ("major_decimal", "decimal_string"),
    BOOL: ("bool",),
}
# Canonical integer columns of money in minor units: filled by money types, not ``integer``.
MINOR_UNIT_COLUMNS = frozenset({"subtotal", "discount", "tax", "total", "amount", "amount_off"})
MONEY_INT_TYPES = ("major_units", "minor_units")


def types_for(table: str, column: str, arrow_type: pa.DataType) -> tuple[str, ...]:
    """The spec types that may fill one canonical column (money columns take money types)."""
    if arrow_type == INT and column in MINOR_UNIT_COLUMNS:
        return MONEY_INT_TYPES
    return TYPES_FOR[arrow_type]


_UNSET: Any = object()


def scalar_text(value: object) -> str:
    """A YAML scalar as the text it stands for: bools as true/false, dates in ISO-8601."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class ColumnSpec(BaseModel):
    """How one canonical column is made from the source row (one of the spec's column forms)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_: str | None = Field(default=None, alias="from")
    value: Any = _UNSET
    map: dict[str, Any] | None = None
    transform: Transform | None = None
    type: ColumnType | None = None
    currency: str | None = None
    currency_from: str | None = None
    null_if: list[Any] | None = None
    timezone_from: str | None = None  # naive values of this column: local to the row's zone
    date_in_zone: str | None = None  # truncate to the start of the local day in this zone ...
    date_in_zone_from: str | None = None  # ... or in the zone a source column names

    @field_validator("map", mode="before")
    @classmethod
    def _map_keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {scalar_text(k): v for k, v in value.items()}
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str | None) -> str | None:
        if value is not None and not is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value.strip().upper() if value is not None else None

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSpec:
        if (self.from_ is None) == (self.value is _UNSET):
            raise ValueError("give exactly one of 'from' (a source column) or 'value' (a constant)")
        money = self.type in ("major_units", "major_decimal")
        if money and (self.currency is None) == (self.currency_from is None):
            raise ValueError(f"type {self.type} needs exactly one of 'currency' or 'currency_from'")
        if self.date_in_zone is not None and self.date_in_zone_from is not None:
            raise ValueError("give at most one of 'date_in_zone' or 'date_in_zone_from'")
        if self.date_in_zone is not None:
            try:
                ZoneInfo(self.date_in_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.date_in_zone!r} is not an IANA time zone") from None
        if not money and (self.currency or self.currency_from):
            raise ValueError(
                "'currency'/'currency_from' only apply to major_units and major_decimal"
            )
        return self

    @property
    def is_constant(self) -> bool:
        """True when the column is a constant (``{value: X}``)."""
        return self.value is not _UNSET

    @property
    def map_text(self) -> dict[str, str | None]:
        """The map with targets as text (``true``/``false`` for YAML booleans)."""
        return {k: (None if v is None else scalar_text(v)) for k, v in (self.map or {}).items()}

    @property
    def null_if_text(self) -> list[str]:
        """The ``null_if`` values as text, compared with the source value's text."""
        return [scalar_text(v) for v in self.null_if or []]


def _column_form(value: Any) -> Any:
    """A plain ``target: source_col`` is the long form ``{from: source_col}``."""
    if isinstance(value, str):
        return {"from": value}
    if value is not None and not isinstance(value, dict):
        raise ValueError(
            f"expected a source column name or a mapping, got {value!r}; use {{value: ...}} for a constant"
        )
    return value


_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
Condition = dict[str, Any]


def _condition_text(value: Any) -> Any:
    """A condition ``{column: value or [values]}`` with every value as text (null stays null)."""
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a mapping of source column to a value or a list of values")
    out: dict[str, list[str | None]] = {}
    for column, wanted in value.items():
        items = wanted if isinstance(wanted, list) else [wanted]
        if not items or any(isinstance(v, dict | list) for v in items):
            raise ValueError(f"{column}: expected a value or a list of values")
        out[str(column)] = [None if v is None else scalar_text(v) for v in items]
    return out


class ExcludeSpec(BaseModel):
    """Source rows left out on purpose: a condition and the reason they are counted under.

    The condition is data, never code: every named source column must hold one of the
    listed values (compared as text; ``null`` matches a missing value).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=200)
    when: dict[str, list[str | None]]

    _as_text = field_validator("when", mode="before")(
        classmethod(lambda cls, v: _condition_text(v))
    )


class FoldSpec(BaseModel):
    """An event log folded into validity rows: each event is in force until the next of its key.

    Adds the source columns ``fold_valid_from`` (the event's time) and ``fold_valid_to``
    (the next event's time for the same key, empty for the last). Events matching ``ends``
    only close the row before them and are counted as excluded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    at: str
    order_by: list[str] = Field(default_factory=list)
    ends: dict[str, list[str | None]] | None = None

    _as_text = field_validator("ends", mode="before")(
        classmethod(lambda cls, v: None if v is None else _condition_text(v))
    )


FOLD_FROM = "fold_valid_from"
FOLD_TO = "fold_valid_to"


class TableSpec(BaseModel):
    """Where one canonical table's rows come from and how its columns are made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None
    query: str | None = None
    source_key: str | None = None
    timezone_from: str | None = None
    exclude: list[ExcludeSpec] = Field(default_factory=list)
    fold: FoldSpec | None = None
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _long_forms(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _column_form(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> TableSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' (a source table) or 'query' (a SELECT)")
        return self

    @property
    def source_label(self) -> str:
        """How quarantine references name this source: the table, or 'query'."""
        return self.table if self.table is not None else "query"

    def key_source_column(self, key_column: str) -> str | None:
        """The source column named in quarantine references (``source_key`` or the key's source)."""
        if self.source_key is not None:
            return self.source_key
        spec = self.columns.get(key_column)
        return spec.from_ if spec is not None else None


class CutoverSpec(BaseModel):
    """Statements `migrate cutover` runs against the legacy database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_billing: str | None = None


class ExtractSpec(BaseModel):
    """A whole extract spec: source name, zone of naive timestamps, tables."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str | None = None
    timezone: str = "UTC"
    chunk_size: int | None = Field(default=None, gt=0)
    with_: dict[str, str] = Field(default_factory=dict, alias="with")
    tables: dict[str, TableSpec]
    cutover: CutoverSpec | None = None
    _doc: YamlDocument | None = PrivateAttr(default=None)

    def locate(self, *keys: str) -> str:
        """``file:line: key.path`` of a spec key, for errors found while extracting."""
        key = ".".join(keys)
        if self._doc is None:
            return key
        return f"{self._doc.path}:{self._doc.line_of(tuple(keys))}: {key}"

    @field_validator("with_")
    @classmethod
    def _fragment_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, sql in value.items():
            if not re.match(_SQL_NAME, name):
                raise ValueError(f"fragment name {name!r} is not a plain SQL name")
            if not sql.strip():
                raise ValueError(f"fragment {name!r} is empty")
        return value

    def with_clause(self) -> str:
        """The shared fragments as the start of a WITH clause (``a AS (...), b AS (...)``)."""
        return ",\n".join(
            f"{name} AS (\n{sql.strip().rstrip(';')}\n)" for name, sql in self.with_.items()
        )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
            ) from None
        return value


def _check_names(doc: YamlDocument) -> None:
    """Unknown canonical tables/columns and mis-typed columns, each with file:line:key."""
    problems: list[str] = []
    tables = doc.data.get("tables") if isinstance(doc.data, dict) else None
    if not isinstance(tables, dict):
        return  # pydantic reports the missing or mis-shaped key
    for name, body in tables.items():
        where = f"{doc.path}:{doc.line_of(('tables', str(name)))}"
        if name not in TABLES:
            known = ", ".join(TABLES)
            problems.append(f"{where}: tables.{name}: unknown canonical table (known: {known})")
            continue
        columns = body.get("columns") if isinstance(body, dict) else None
        if not isinstance(columns, dict):
            continue
        table = TABLES[name]
        for col, form in columns.items():
            key = ("tables", str(name), "columns", str(col))
            at = f"{doc.path}:{doc.line_of(key)}: tables.{name}.columns.{col}"
            if col not in table.column_names:
                known = ", ".join(table.column_names)
                problems.append(f"{at}: unknown column of {name} (known: {known})")
                continue
            if not isinstance(form, str | dict):
                problems.append(
                    f"{at}: expected a source column name or a mapping, got {form!r};"
                    " use {value: ...} for a constant"
                )
                continue
            kind = form.get("type") if isinstance(form, dict) else None
            allowed = types_for(str(name), str(col), table.column(str(col)).type)
            legacy = kind == "minor_units" and table.column(str(col)).type == INT  # still read
            if kind is not None and kind not in allowed and not legacy:
                expected = " or ".join(allowed)
                problems.append(f"{at}: type {kind} cannot fill this column (use {expected})")
    if problems:
        raise ExtractSpecError("; ".join(problems))


def load_extract_spec(path: Path | str) -> ExtractSpec:
    """Read and validate an extract spec; errors name the file, line and key."""
    doc = load_yaml(path, ExtractSpecError)
    _check_names(doc)
    spec = validate(doc, ExtractSpec, ExtractSpecError)
    spec._doc = doc
    return spec
