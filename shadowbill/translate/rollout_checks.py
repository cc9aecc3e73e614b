"""Checks of a rollout file against its catalogs: references, formulas and shadowed rules.

Each check returns ``(key path, message)`` pairs; ``load_rollout`` turns them into errors
(or warnings) that name file, line and key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from shadowbill.translate.quantity_formula import parse_formula
from shadowbill.translate.rollout_model import (
    Catalogs,
    DateRange,
    Match,
    PriceMatch,
    Range,
    RolloutSpec,
    Rule,
    uses_recreated_prices,
)
from shadowbill.yaml_source import KeyPath

Problems = list[tuple[KeyPath, str]]
_GLOB = set("*?[")


def is_glob(pattern: str) -> bool:
    """Whether a price pattern has glob characters."""
    return any(c in _GLOB for c in pattern)


def _check_patterns(
    at: KeyPath, patterns: Iterable[str], ids: set[str], what: str, problems: Problems
) -> None:
    for k, pattern in enumerate(patterns):
        if not any(fnmatchcase(i, pattern) for i in ids):
            problems.append(((*at, k), f"{pattern!r} matches no price of the {what}"))


def _check_price(at: KeyPath, price_id: str, ids: set[str], what: str, problems: Problems) -> None:
    if price_id not in ids:
        problems.append((at, f"unknown price {price_id!r}: not in the {what}"))


def _check_formula(
    at: KeyPath, text: str, has_from: bool, has_seats: bool, problems: Problems
) -> None:
    variables = parse_formula(text).variables
    if "seats" in variables and not has_seats:
        problems.append((at, "the formula uses seats but the rollout has no seat_prices"))
    if "quantity" in variables and not has_from:
        problems.append((at, "the formula uses quantity but the item has no `from`"))


def _match_problems(at: KeyPath, match: Match, spec: RolloutSpec, cats: Catalogs) -> Problems:
    problems: Problems = []
    legacy_ids = {p.id for p in cats.legacy.prices} | {p.id for p in cats.new.prices}
    what = f"legacy catalog {cats.legacy.catalog!r} (nor of the new one)"
    if match.prices is not None:
        for key in ("all", "any", "none"):
            _check_patterns(
                (*at, "prices", key), getattr(match.prices, key), legacy_ids, what, problems
            )
    if match.plan:
        products = {p.id for p in cats.legacy.products} | {p.id for p in cats.new.products}
        for k, product in enumerate(match.plan):
            if product not in products:
                problems.append(((*at, "plan", k), f"unknown product {product!r}"))
    if match.seats is not None and not spec.seat_prices:
        problems.append(((*at, "seats"), "matching on seats needs the rollout's seat_prices"))
    return problems


def _rule_problems(
    at: KeyPath, rule: Rule, spec: RolloutSpec, cats: Catalogs, clashes: list[str]
) -> Problems:
    problems = _match_problems((*at, "match"), rule.match, spec, cats)
    legacy_ids = {p.id for p in cats.legacy.prices}
    new_ids = {p.id for p in cats.new.prices}
    legacy_what = f"legacy catalog {cats.legacy.catalog!r}"
    new_what = f"new catalog {cats.new.catalog!r}"
    then = rule.then
    has_seats = bool(spec.seat_prices)
    for k, item in enumerate(then.items):
        item_at: KeyPath = (*at, "then", "items", k)
        _check_price((*item_at, "price"), item.price, new_ids, new_what, problems)
        _check_patterns((*item_at, "from"), item.from_, legacy_ids, legacy_what, problems)
        _check_formula((*item_at, "quantity"), item.formula, bool(item.from_), has_seats, problems)
    for k, drop in enumerate(then.drop):
        _check_patterns(
            (*at, "then", "drop", k, "from"), drop.from_, legacy_ids, legacy_what, problems
        )
    for k, switch in enumerate(then.switch):
        sw_at: KeyPath = (*at, "then", "switch", k)
        if not then.recreate_legacy_prices:
            problems.append((sw_at, "a switch needs recreate_legacy_prices: true"))
        _check_price((*sw_at, "to"), switch.to, new_ids, new_what, problems)
        if switch.from_ is None and not has_seats:
            problems.append((sw_at, "give the switch a `from` (the rollout has no seat_prices)"))
        _check_patterns((*sw_at, "from"), switch.from_ or [], legacy_ids, legacy_what, problems)
        _check_formula((*sw_at, "quantity"), switch.formula, True, has_seats, problems)
    if then.recreate_legacy_prices and clashes:
        problems.append(
            (
                (*at, "then", "recreate_legacy_prices"),
                "legacy prices "
                + ", ".join(repr(c) for c in clashes[:5])
                + " have the same ids as new prices; recreated prices need ids of their own",
            )
        )
    return problems


def reference_problems(spec: RolloutSpec, cats: Catalogs) -> Problems:
    """Unknown prices and products, bad formulas, duplicate rule ids, phases out of order."""
    problems: Problems = []
    legacy_ids = {p.id for p in cats.legacy.prices}
    new_ids = {p.id for p in cats.new.prices}
    clashes = sorted(legacy_ids & new_ids) if uses_recreated_prices(spec) else []
    _check_patterns(
        ("seat_prices",),
        spec.seat_prices,
        legacy_ids,
        f"legacy catalog {cats.legacy.catalog!r}",
        problems,
    )
    seen_rules: dict[str, str] = {}
    previous = 0
    for i, phase in enumerate(spec.phases):
        at: KeyPath = ("phases", i)
        if phase.phase <= previous:
            problems.append(((*at, "phase"), f"phase {phase.phase} after phase {previous}"))
        previous = phase.phase
        problems.extend(_match_problems((*at, "cohort"), phase.cohort, spec, cats))
        for k, entry in enumerate(phase.item_map):
            entry_at: KeyPath = (*at, "item_map", k)
            _check_price(
                (*entry_at, "price"),
                entry.price,
                new_ids,
                f"new catalog {cats.new.catalog!r}",
                problems,
            )
            _check_patterns(
                (*entry_at, "from"),
                entry.from_,
                legacy_ids,
                f"legacy catalog {cats.legacy.catalog!r}",
                problems,
            )
            _check_formula(
                (*entry_at, "quantity"), entry.formula, True, bool(spec.seat_prices), problems
            )
        for j, rule in enumerate(phase.rules):
            rule_at: KeyPath = (*at, "rules", j)
            where = f"phases[{i}].rules[{j}]"
            if rule.id in seen_rules:
                problems.append(
                    (
                        (*rule_at, "id"),
                        f"duplicate rule id {rule.id!r} (also {seen_rules[rule.id]})",
                    )
                )
            else:
                seen_rules[rule.id] = where
            problems.extend(_rule_problems(rule_at, rule, spec, cats, clashes))
            cutover = phase.cutover_of(rule).fixed
            for k, switch in enumerate(rule.then.switch):
                switch_at = switch.at.fixed
                if switch_at is not None and cutover is not None and switch_at < cutover:
                    problems.append(
                        (
                            (*rule_at, "then", "switch", k, "at"),
                            "the switch comes before the cut-over",
                        )
                    )
    return problems


# ------------------------------------------------------------------ shadowing ----


class _Universe:
    """Price ids known to the catalogs (plus literal ids the rules name) for set reasoning."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def ids_of(self, patterns: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for pattern in patterns:
            out.update(i for i in self.ids if fnmatchcase(i, pattern))
        return frozenset(out)


def _set_covers(a: Sequence[str] | None, b: Sequence[str] | None) -> bool:
    if a is None:
        return True
    return b is not None and set(b) <= set(a)


def _range_covers(a: Range | None, b: Range | None) -> bool:
    if a is None:
        return True
    if b is None:
        return a.min in (None, 0) and a.max is None
    low_ok = a.min is None or (b.min or 0) >= a.min
    high_ok = a.max is None or (b.max is not None and b.max <= a.max)
    return low_ok and high_ok


def _dates_cover(a: DateRange | None, b: DateRange | None) -> bool:
    if a is None:
        return True
    if b is None:
        return a.on_or_after is None and a.before is None
    low_ok = a.on_or_after is None or (b.on_or_after is not None and b.on_or_after >= a.on_or_after)
    high_ok = a.before is None or (b.before is not None and b.before <= a.before)
    return low_ok and high_ok


def _prices_cover(a: PriceMatch | None, b: PriceMatch | None, u: _Universe) -> bool:
    if a is None:
        return True
    b = b or PriceMatch()
    b_all = [u.ids_of([q]) for q in b.all]
    for p in a.all:  # b must force an item matching p
        target = u.ids_of([p])
        if not any(q and q <= target for q in b_all):
            return False
    if a.any:
        target = u.ids_of(a.any)
        forced = any(q and q <= target for q in b_all)
        b_any = u.ids_of(b.any)
        if not (forced or (b.any and b_any and b_any <= target)):
            return False
    return not a.none or u.ids_of(a.none) <= u.ids_of(b.none)


def covers(a: Match, b: Match, universe: _Universe) -> bool:
    """True when every state matching ``b`` also matches ``a`` (proved, never guessed)."""
    return (
        _prices_cover(a.prices, b.prices, universe)
        and _set_covers(a.plan, b.plan)
        and _range_covers(a.seats, b.seats)
        and _set_covers(a.segment, b.segment)
        and _set_covers(a.currency, b.currency)
        and _set_covers(a.country, b.country)
        and _set_covers(a.interval, b.interval)
        and _set_covers(a.status, b.status)
        and _range_covers(a.tenure_months, b.tenure_months)
        and _dates_cover(a.created, b.created)
        and (
            a.metadata is None
            or (b.metadata is not None and a.metadata.items() <= b.metadata.items())
        )
    )


def _literal_ids(spec: RolloutSpec) -> set[str]:
    out: set[str] = set()
    matches = [p.cohort for p in spec.phases] + [r.match for p in spec.phases for r in p.rules]
    for m in matches:
        if m.prices is not None:
            out.update(x for x in (*m.prices.all, *m.prices.any, *m.prices.none) if not is_glob(x))
    return out


def shadowed(spec: RolloutSpec, cats: Catalogs) -> Problems:
    """Rules (and phases) that can never match because an earlier one takes all they would."""
    ids = {p.id for p in cats.legacy.prices} | {p.id for p in cats.new.prices}
    universe = _Universe(ids | _literal_ids(spec))
    problems: Problems = []
    for i, phase in enumerate(spec.phases):
        for j, rule in enumerate(phase.rules):
            for earlier in phase.rules[:j]:
                if covers(earlier.match, rule.match, universe):
                    problems.append(
                        (
                            ("phases", i, "rules", j),
                            f"rule {rule.id!r} can never match: rule {earlier.id!r} comes "
                            "first and matches every subscription it would (shadowed)",
                        )
                    )
                    break
        for earlier_phase in spec.phases[:i]:
            if covers(earlier_phase.cohort, phase.cohort, universe):
                problems.append(
                    (
                        ("phases", i, "cohort"),
                        f"phase {phase.phase} can never have a subscription: phase "
                        f"{earlier_phase.phase}'s cohort comes first and takes every one",
                    )
                )
                break
    return problems
