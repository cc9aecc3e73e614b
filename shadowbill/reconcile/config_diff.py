"""What a change to the billing configuration touches: rules, item maps, prices, coupons, policy.

The base (e.g. the main branch's) and head (the pull request's) rollouts, catalogs and
policies are compared with deepdiff over their loaded models, with rules, prices and
coupons keyed by id so that an inserted rule is one added rule, not every later rule
edited. What a scoped check cannot bound to some subscriptions (a policy change, an
engine rule, tax rates, products, a phase's cohort or cut-over, reordered rules) is
named in ``unbounded``: the check then reconciles the whole phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepdiff import DeepDiff

from shadowbill.pricing.catalog import Catalog
from shadowbill.reconcile.policy import Policy
from shadowbill.translate.rollout import Rollout

# Keys of a phase a scoped check can bound (rules and item maps) or may ignore (text).
_PHASE_BOUNDED = {"rules", "rule_order", "item_map"}
_PHASE_TEXT = {"description"}
# Rollout keys that do not change any finding: names and text (catalog contents are
# compared on their own, so the relative paths to them are not).
_ROLLOUT_TEXT = {"rollout", "description", "catalogs"}


@dataclass(frozen=True)
class RuleChange:
    """One rule added, removed or edited, in one phase."""

    phase: int
    rule_id: str
    kind: str  # "added" | "removed" | "edited"


@dataclass(frozen=True)
class ConfigChange:
    """The difference between a base and a head configuration."""

    rules: tuple[RuleChange, ...] = ()
    item_maps: tuple[int, ...] = ()  # phases whose item_map changed
    prices: tuple[str, ...] = ()  # "legacy:<id>" / "new:<id>", added, removed or edited
    coupons: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()  # the policy's changed keys
    unbounded: tuple[str, ...] = field(default=())  # why a scoped check cannot bound it

    @property
    def empty(self) -> bool:
        """Nothing that can change a finding or the verdict changed."""
        return not (
            self.rules or self.item_maps or self.prices or self.coupons or self.policy
        ) and (not self.unbounded)

    def rules_of(self, phase: int) -> set[str]:
        """Ids of the rules of ``phase`` added, removed or edited."""
        return {r.rule_id for r in self.rules if r.phase == phase}

    def price_ids(self) -> set[str]:
        """The ids of every changed price, from either catalog."""
        return {p.split(":", 1)[1] for p in self.prices}

    def coupon_ids(self) -> set[str]:
        """The ids of every changed coupon, from either catalog."""
        return {c.split(":", 1)[1] for c in self.coupons}

    def touched(self) -> dict[str, list[str]]:
        """For people: what the change touched, by kind (empty kinds left out)."""
        out = {
            "rules added": [
                f"phase {r.phase}: {r.rule_id}" for r in self.rules if r.kind == "added"
            ],
            "rules removed": [
                f"phase {r.phase}: {r.rule_id}" for r in self.rules if r.kind == "removed"
            ],
            "rules edited": [
                f"phase {r.phase}: {r.rule_id}" for r in self.rules if r.kind == "edited"
            ],
            "item maps": [f"phase {p}" for p in self.item_maps],
            "prices": list(self.prices),
            "coupons": list(self.coupons),
            "policy": list(self.policy),
            "not bounded": list(self.unbounded),
        }
        return {k: v for k, v in out.items() if v}


def _keyed(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {str(item["id"]): item for item in items}


def _rollout_view(rollout: Rollout) -> dict[str, Any]:
    data = rollout.spec.model_dump(mode="json", by_alias=True)
    phases: dict[str, Any] = {}
    for phase in data.pop("phases"):
        rules = phase.pop("rules")
        phase["rule_order"] = [r["id"] for r in rules]
        phase["rules"] = _keyed(rules)
        phases[str(phase["phase"])] = phase
    data["phases"] = phases
    for key in _ROLLOUT_TEXT:
        data.pop(key, None)
    return data


def _catalog_view(catalog: Catalog) -> dict[str, Any]:
    data = catalog.model_dump(mode="json", by_alias=True)
    data["prices"] = _keyed(data["prices"])
    data["coupons"] = _keyed(data["coupons"])
    data.pop("description", None)
    return data


def _paths(diff: DeepDiff) -> list[list[Any]]:
    """The path (as a list of keys) of every difference in a tree-view DeepDiff."""
    out: list[list[Any]] = []
    for changes in diff.tree.values():
        for change in changes:
            out.append(list(change.path(output_format="list")))
    return out


def _reordered(base: list[str], head: list[str]) -> bool:
    kept = set(base) & set(head)
    return [r for r in base if r in kept] != [r for r in head if r in kept]


def _rollout_changes(base: Rollout, head: Rollout) -> tuple[list[RuleChange], list[int], list[str]]:
    before, after = _rollout_view(base), _rollout_view(head)
    rules: dict[tuple[int, str], str] = {}
    item_maps: set[int] = set()
    unbounded: list[str] = []
    for path in _paths(DeepDiff(before, after, view="tree")):
        if path[0] != "phases":
            unbounded.append(f"the rollout's {path[0]} changed")
            continue
        if len(path) < 3:
            unbounded.append(
                f"phase {path[1]} was added or removed" if len(path) == 2 else "phases changed"
            )
            continue
        phase, key = int(path[1]), str(path[2])
        if key == "rules" and len(path) >= 4:
            rule = str(path[3])
            in_base = rule in before["phases"][path[1]]["rules"]
            in_head = rule in after["phases"][path[1]]["rules"]
            kind = "edited" if in_base and in_head else ("added" if in_head else "removed")
            rules[(phase, rule)] = kind
        elif key == "item_map":
            item_maps.add(phase)
        elif key == "rule_order":
            pass  # judged below from both orders
        elif key not in _PHASE_TEXT and key not in _PHASE_BOUNDED:
            unbounded.append(f"phase {phase}'s {key} changed")
    for number, phase_before in before["phases"].items():
        phase_after = after["phases"].get(number)
        if phase_after and _reordered(phase_before["rule_order"], phase_after["rule_order"]):
            unbounded.append(f"the rules of phase {number} were reordered")
    changes = [RuleChange(p, r, k) for (p, r), k in sorted(rules.items())]
    return changes, sorted(item_maps), sorted(set(unbounded))


def _catalog_changes(
    which: str, base: Catalog, head: Catalog
) -> tuple[list[str], list[str], list[str]]:
    before, after = _catalog_view(base), _catalog_view(head)
    prices: set[str] = set()
    coupons: set[str] = set()
    unbounded: set[str] = set()
    for path in _paths(DeepDiff(before, after, view="tree")):
        key = str(path[0])
        if key in ("prices", "coupons") and len(path) >= 2:
            (prices if key == "prices" else coupons).add(f"{which}:{path[1]}")
        else:
            name = "engine rules" if key == "engine" else key.replace("_", " ")
            unbounded.add(f"the {which} catalog's {name} changed")
    return sorted(prices), sorted(coupons), sorted(unbounded)


def _policy_changes(base: Policy, head: Policy) -> list[str]:
    diff = DeepDiff(base.model_dump(mode="json"), head.model_dump(mode="json"), view="tree")
    return sorted({".".join(str(k) for k in path) for path in _paths(diff)})


def diff_config(
    base: Rollout, head: Rollout, base_policy: Policy, head_policy: Policy
) -> ConfigChange:
    """What changed from the base to the head configuration, and what cannot be bounded."""
    rules, item_maps, unbounded = _rollout_changes(base, head)
    prices: list[str] = []
    coupons: list[str] = []
    for which, b, h in (
        ("legacy", base.catalogs.legacy, head.catalogs.legacy),
        ("new", base.catalogs.new, head.catalogs.new),
    ):
        p, c, u = _catalog_changes(which, b, h)
        prices += p
        coupons += c
        unbounded += u
    policy = _policy_changes(base_policy, head_policy)
    if policy:
        unbounded.append("the gate policy changed (" + ", ".join(policy[:5]) + ")")
    return ConfigChange(
        tuple(rules),
        tuple(item_maps),
        tuple(prices),
        tuple(coupons),
        tuple(policy),
        tuple(unbounded),
    )
