"""Loading rollout files: the demo file, and errors that name file, line and key."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fixtures_rollout import NEW_CATALOG, SMALL_ROLLOUT, WriteRollout, with_catalogs

from shadowbill.errors import RolloutError
from shadowbill.translate.rollout import (
    RECREATED_FROM,
    Rollout,
    load_rollout,
    target_price_catalog,
)


def test_demo_rollout_loads_clean(demo_rollout: Rollout) -> None:
    assert demo_rollout.warnings == ()
    assert [p.phase for p in demo_rollout.spec.phases] == [1, 2, 3]
    assert demo_rollout.catalogs.legacy.catalog == "demo-legacy"
    assert demo_rollout.catalogs.new.catalog == "demo-new"
    ids = [r.id for p in demo_rollout.spec.phases for r in p.rules]
    assert len(ids) == len(set(ids))
    protected = {r.id for r in demo_rollout.phase(2).rules if r.then.price_protection}
    assert protected == {"sales_starter", "sales_pro", "sales_premium"}


def test_target_catalog_recreates_legacy_prices_under_new_engine(demo_rollout: Rollout) -> None:
    cats = demo_rollout.catalogs
    target = target_price_catalog(demo_rollout)
    ids = {p.id for p in target.prices}
    assert {p.id for p in cats.new.prices} <= ids
    assert {p.id for p in cats.legacy.prices} <= ids
    assert target.engine == cats.new.engine != cats.legacy.engine
    recreated = target.price("pro_month_v2")
    assert recreated.metadata[RECREATED_FROM] == "demo-legacy"
    assert recreated.unit_amount == cats.legacy.price("pro_month_v2").unit_amount
    assert target.price_terms("pro_month_v2", "jpy").unit_amount == 16400
    # A legacy product whose id the new catalog has is merged into the new one.
    assert [p.id for p in target.products].count("sms") == 1


def _error(path: Path) -> str:
    with pytest.raises(RolloutError) as info:
        load_rollout(path)
    return str(info.value)


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_unknown_key_names_file_line_and_key(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace("price_protection:", "price_protektion:"))
    message = _error(path)
    line = _line_of(path, "price_protektion")
    assert f"{path}:{line}: phases[1].rules[0].then.price_protektion: unknown key" in message


def test_unknown_new_price_names_the_key(write_rollout: WriteRollout) -> None:
    path = write_rollout(
        SMALL_ROLLOUT.replace("price: advanced_month}", "price: advansed_month}", 1)
    )
    message = _error(path)
    line = _line_of(path, "advansed_month")
    assert (
        f"{path}:{line}: phases[1].rules[0].then.items[0].price: unknown price 'advansed_month'"
        in message
    )
    assert "new catalog 'demo-new'" in message


def test_legacy_pattern_matching_nothing_is_an_error(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace("{from: sms_month, price", "{from: smss_*, price"))
    message = _error(path)
    line = _line_of(path, "smss_*")
    assert f"{path}:{line}: phases[1].item_map[0].from[0]: 'smss_*' matches no price" in message


def test_new_price_in_a_legacy_slot_is_an_error(write_rollout: WriteRollout) -> None:
    # `from` names legacy prices: a new price id there is a mistake.
    path = write_rollout(
        SMALL_ROLLOUT.replace("{from: starter_month, price", "{from: essential_month, price")
    )
    assert (
        "phases[1].rules[3].then.items[0].from[0]: 'essential_month' matches no price of the legacy"
        in _error(path)
    )


def test_duplicate_rule_id(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace("- id: pro\n", "- id: pro_bot\n"))
    message = _error(path)
    lines = [n for n, text in enumerate(path.read_text().splitlines(), 1) if "id: pro_bot" in text]
    assert (
        f"{path}:{lines[1]}: phases[1].rules[2].id: duplicate rule id 'pro_bot' (also phases[1].rules[1])"
        in message
    )


def test_bad_formulas(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace('"ceil(seats / 5)"', '"seats / 5"'))
    assert re.search(r"rules\[1\]\.then\.items\[2\]\.quantity: .*can give a fraction", _error(path))
    path = write_rollout(SMALL_ROLLOUT.replace('"ceil(seats / 5)"', '"__import__(1)"'))
    assert "only the functions ceil, floor, round, min, max are allowed" in _error(path)
    path = write_rollout(SMALL_ROLLOUT.replace('"ceil(seats / 5)"', "quantity"))
    assert "items[2].quantity: the formula uses quantity but the item has no `from`" in _error(path)


def test_switch_needs_recreated_prices(write_rollout: WriteRollout) -> None:
    text = SMALL_ROLLOUT.replace(
        "          recreate_legacy_prices: true\n          switch", "          switch", 1
    )
    message = _error(write_rollout(text))
    assert (
        "phases[2].rules[0].then.switch[0]: a switch needs recreate_legacy_prices: true" in message
    )


def test_switch_before_a_fixed_cutover(write_rollout: WriteRollout) -> None:
    text = SMALL_ROLLOUT.replace("at: 2026-07-01}", "at: 2025-07-01}").replace(
        "cutover: {at: next_renewal, not_before: 2026-01-01}", "cutover: 2026-01-01"
    )
    assert "phases[2].rules[0].then.switch[0].at: the switch comes before the cut-over" in _error(
        write_rollout(text)
    )


def test_phases_must_ascend(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace("  - phase: 3", "  - phase: 2"))
    second = [n for n, text in enumerate(path.read_text().splitlines(), 1) if "- phase: 2" in text]
    assert f"{path}:{second[1]}: phases[2].phase: phase 2 after phase 2" in _error(path)


def test_missing_catalog_names_the_rollout_key(write_rollout: WriteRollout) -> None:
    path = write_rollout(SMALL_ROLLOUT.replace("new: {new}", "new: nowhere.yaml"))
    message = _error(path)
    assert f"{path}:{_line_of(path, 'nowhere.yaml')}: catalogs.new:" in message
    assert "file not found" in message


def test_catalog_paths_are_relative_to_the_rollout_file(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "new.yaml").write_text(NEW_CATALOG.read_text())
    (tmp_path / "cats" / "legacy.yaml").write_text(
        (NEW_CATALOG.parent / "legacy_catalog.yaml").read_text()
    )
    text = with_catalogs(SMALL_ROLLOUT).replace(str(NEW_CATALOG), "cats/new.yaml")
    text = text.replace(str(NEW_CATALOG.parent / "legacy_catalog.yaml"), "cats/legacy.yaml")
    (tmp_path / "rollout.yaml").write_text(text)
    rollout = load_rollout(tmp_path / "rollout.yaml")
    assert rollout.new_catalog_path == (tmp_path / "cats" / "new.yaml").resolve()


def test_recreated_prices_must_not_clash_with_new_ids(tmp_path: Path) -> None:
    data = yaml.safe_load(NEW_CATALOG.read_text())
    clash = dict(data["prices"][0], id="starter_month")
    data["prices"].append(clash)
    new_path = tmp_path / "new.yaml"
    new_path.write_text(yaml.safe_dump(data))
    text = with_catalogs(SMALL_ROLLOUT).replace(str(NEW_CATALOG), str(new_path))
    (tmp_path / "rollout.yaml").write_text(text)
    with pytest.raises(
        RolloutError, match=r"recreate_legacy_prices: legacy prices 'starter_month'"
    ):
        load_rollout(tmp_path / "rollout.yaml")


def test_when_short_forms(write_rollout: WriteRollout) -> None:
    rollout = load_rollout(write_rollout(SMALL_ROLLOUT))
    assert rollout.phase(1).cutover.at == datetime(2026, 1, 1, tzinfo=UTC)
    assert rollout.phase(3).cutover.at == "next_renewal"
    assert rollout.phase(3).cutover.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    switch = rollout.phase(3).rules[0].then.switch[0]
    assert switch.at.fixed == datetime(2026, 7, 1, tzinfo=UTC)
    bad = SMALL_ROLLOUT.replace(
        "cutover: {at: next_renewal, not_before: 2026-01-01}",
        "cutover: {at: 2026-02-01, not_before: 2026-01-01}",
    )
    assert "not_before goes with at: next_renewal" in _error(write_rollout(bad))


def test_unknown_phase_is_an_error(small_rollout: Rollout) -> None:
    with pytest.raises(RolloutError, match=r"no phase 4 \(phases: 1, 2, 3\)"):
        small_rollout.phase(4)


def test_rule_location_points_at_the_rule(demo_rollout: Rollout) -> None:
    where = demo_rollout.rule_location("sales_pro")
    path, line = where.rsplit(":", 1)
    assert Path(path) == demo_rollout.path
    assert "- id: sales_pro" in demo_rollout.path.read_text().splitlines()[int(line) - 1]
    with pytest.raises(RolloutError, match="no rule 'nope'"):
        demo_rollout.rule_location("nope")


def test_selector_vocabularies_match_the_snapshot_contract() -> None:
    from typing import get_args

    from shadowbill.snapshot.tables import INTERVALS, SEGMENTS, SUBSCRIPTION_STATUSES
    from shadowbill.translate.rollout import Interval, Segment, Status

    assert set(get_args(Segment)) == set(SEGMENTS)
    assert set(get_args(Status)) == set(SUBSCRIPTION_STATUSES)
    assert set(get_args(Interval)) == set(INTERVALS)
