"""What a configuration change touches, from deepdiff over the loaded models."""

from __future__ import annotations

import shutil
from pathlib import Path

from shadowbill.reconcile.config_diff import ConfigChange, diff_config
from shadowbill.reconcile.policy import load_policy
from shadowbill.translate.rollout import load_rollout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_company"


def _copy(tmp: Path, edits: dict[str, tuple[str, str]]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for f in EXAMPLES.glob("*.yaml"):
        shutil.copy(f, tmp / f.name)
    for name, (old, new) in edits.items():
        text = (tmp / name).read_text()
        assert old in text, old
        (tmp / name).write_text(text.replace(old, new, 1))
    return tmp


def _diff(tmp: Path, edits: dict[str, tuple[str, str]] | None = None) -> ConfigChange:
    head = _copy(tmp, edits or {})
    return diff_config(
        load_rollout(EXAMPLES / "rollout.yaml"),
        load_rollout(head / "rollout.yaml"),
        load_policy(EXAMPLES / "policy.yaml"),
        load_policy(head / "policy.yaml"),
    )


def test_an_unchanged_configuration_touches_nothing(tmp_path: Path) -> None:
    assert _diff(tmp_path).empty


def test_an_edited_quantity_formula_is_one_edited_rule(tmp_path: Path) -> None:
    old = '- {from: "pro_month_*", price: advanced_month, quantity: seats}'
    change = _diff(tmp_path, {"rollout.yaml": (old, old.replace("seats}", '"seats + 1"}'))})
    assert [(r.phase, r.rule_id, r.kind) for r in change.rules] == [(2, "sales_pro", "edited")]
    assert not change.unbounded and not change.prices


def test_a_rule_inserted_first_is_one_added_rule_not_every_rule_edited(tmp_path: Path) -> None:
    anchor = "      # Sales-led first: the same mapping, plus price protection.\n"
    added = (
        anchor + "      - id: vip\n        match: {segment: sales, country: [IS]}\n"
        "        then: {items: [{from: starter_month, price: essential_month}]}\n"
    )
    change = _diff(tmp_path, {"rollout.yaml": (anchor, added)})
    assert [(r.rule_id, r.kind) for r in change.rules] == [("vip", "added")]
    assert not change.unbounded


def test_price_and_coupon_edits_are_named_by_catalog(tmp_path: Path) -> None:
    text = (EXAMPLES / "new_catalog.yaml").read_text()
    line = next(ln for ln in text.splitlines() if "unit_amount:" in ln)
    change = _diff(tmp_path, {"new_catalog.yaml": (line, line.rstrip() + "1")})
    assert len(change.prices) == 1 and change.prices[0].startswith("new:")
    assert not change.unbounded


def test_engine_policy_and_cohort_changes_cannot_be_bounded(tmp_path: Path) -> None:
    cutover = "cutover: 2026-01-01\n    discounts: carry"
    change = _diff(
        tmp_path,
        {
            "policy.yaml": ("max_share: 5 ", "max_share: 1 "),
            "rollout.yaml": (cutover, cutover.replace("01-01", "02-01")),
        },
    )
    reasons = " ".join(change.unbounded)
    assert "policy changed" in reasons and "phase 2's cutover changed" in reasons
    assert change.policy == ("increase_cap.max_share",)
