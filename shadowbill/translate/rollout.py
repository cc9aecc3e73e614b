"""Rollout rules: which subscriptions move in which phase, and onto which new prices.

One YAML file names the legacy and the new catalog (paths relative to the file) and the
phases of the rollout in order. A subscription belongs to the first phase whose cohort
selector matches it; within a phase it is mapped by the first rule whose ``match``
holds, or listed as unmapped with the reason. Rules are matched against the items a
subscription has at each point of its history, so the new model can be priced over the
same past periods as the legacy invoices (shadow billing).

The format, with every key, is in ``examples/demo_company/rollout.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from shadowbill.errors import CatalogError, RolloutError
from shadowbill.pricing.catalog import Catalog, load_catalog
from shadowbill.translate.rollout_checks import reference_problems, shadowed
from shadowbill.translate.rollout_model import (
    NEXT_RENEWAL,
    CatalogPaths,
    Catalogs,
    DateRange,
    Drop,
    Interval,
    ItemMapEntry,
    Match,
    NewItem,
    Phase,
    PriceMatch,
    Protection,
    Range,
    Rollout,
    RolloutSpec,
    Rule,
    Segment,
    Status,
    Switch,
    Then,
    When,
    uses_recreated_prices,
)
from shadowbill.yaml_source import (
    YamlDocument,
    format_key,
    load_yaml,
    problems_message,
    validate,
)

__all__ = [
    "NEXT_RENEWAL",
    "RECREATED_FROM",
    "CatalogPaths",
    "Catalogs",
    "DateRange",
    "Drop",
    "Interval",
    "ItemMapEntry",
    "Match",
    "NewItem",
    "Phase",
    "PriceMatch",
    "Protection",
    "Range",
    "Rollout",
    "RolloutSpec",
    "Rule",
    "Segment",
    "Status",
    "Switch",
    "Then",
    "When",
    "load_rollout",
    "target_price_catalog",
    "uses_recreated_prices",
]


def _load_catalog(doc: YamlDocument, which: str, relative: str) -> tuple[Catalog, Path]:
    path = (doc.path.parent / relative).resolve()
    try:
        return load_catalog(path), path
    except CatalogError as exc:
        line = doc.line_of(("catalogs", which))
        where = f"{doc.path}:{line}" if line else str(doc.path)
        raise RolloutError(f"{where}: catalogs.{which}: {exc}") from exc


def load_rollout(
    path: Path | str, *, strict: bool = False, catalogs: Catalogs | None = None
) -> Rollout:
    """Read and validate a rollout file and its catalogs; errors name file, line and key.

    Shadowed rules become ``warnings`` (a RolloutError when ``strict``). ``catalogs``
    replaces the catalogs the file names (to check a catalog under review).
    """

    doc = load_yaml(path, RolloutError)
    spec = validate(doc, RolloutSpec, RolloutError)
    legacy_path = (doc.path.parent / spec.catalogs.legacy).resolve()
    new_path = (doc.path.parent / spec.catalogs.new).resolve()
    if catalogs is None:
        legacy, legacy_path = _load_catalog(doc, "legacy", spec.catalogs.legacy)
        new, new_path = _load_catalog(doc, "new", spec.catalogs.new)
        catalogs = Catalogs(legacy, new)
    problems = reference_problems(spec, catalogs)
    if problems:
        raise RolloutError(problems_message(doc, problems))
    shadows = shadowed(spec, catalogs)
    warnings = []
    for key_path, message in shadows:
        line = doc.line_of(key_path)
        where = f"{doc.path}:{line}" if line else str(doc.path)
        warnings.append(f"{where}: {format_key(key_path)}: {message}")
    if strict and warnings:
        raise RolloutError("; ".join(warnings))
    return Rollout(
        spec=spec,
        path=doc.path,
        catalogs=catalogs,
        legacy_catalog_path=legacy_path,
        new_catalog_path=new_path,
        warnings=tuple(warnings),
        lines=dict(doc.lines),
    )


RECREATED_FROM = "shadowbill_recreated_from"


def target_price_catalog(rollout: Rollout, catalogs: Catalogs | None = None) -> Catalog:
    """The catalog the new platform prices with: the new catalog plus the legacy prices
    that phase 3 recreates (and their products), all under the new catalog's engine rules.

    Legacy products whose id the new catalog already has are merged into the new product.
    Recreated prices carry ``metadata.shadowbill_recreated_from`` = the legacy catalog name.
    """
    cats = catalogs or rollout.catalogs
    if not uses_recreated_prices(rollout.spec):
        return cats.new
    key = (id(cats.legacy), id(cats.new))
    cached = _TARGETS.get(key)
    if cached is not None and cached[0] is cats.legacy and cached[1] is cats.new:
        return cached[2]
    target = _recreate(rollout, cats)
    if len(_TARGETS) > 16:
        _TARGETS.clear()
    _TARGETS[key] = (cats.legacy, cats.new, target)
    return target


# (legacy, new) catalog objects -> the target catalog; the objects are kept so ids stay valid.
_TARGETS: dict[tuple[int, int], tuple[Catalog, Catalog, Catalog]] = {}


def _recreate(rollout: Rollout, cats: Catalogs) -> Catalog:
    new_price_ids = {p.id for p in cats.new.prices}
    new_product_ids = {p.id for p in cats.new.products}
    prices = [
        p.model_copy(update={"metadata": {**p.metadata, RECREATED_FROM: cats.legacy.catalog}})
        for p in cats.legacy.prices
        if p.id not in new_price_ids
    ]
    used = {p.product for p in prices}
    products = [p for p in cats.legacy.products if p.id in used and p.id not in new_product_ids]
    data = cats.new.model_dump()
    data["prices"] = [*data["prices"], *(p.model_dump() for p in prices)]
    data["products"] = [*data["products"], *(p.model_dump() for p in products)]
    try:
        return Catalog.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise RolloutError(
            f"{rollout.path}: the legacy prices of {cats.legacy.catalog!r} cannot be recreated "
            f"in {cats.new.catalog!r}: {exc}"
        ) from None
