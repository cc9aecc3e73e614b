"""Shadowed rules: reported on load (warnings, or an error in strict mode), and sound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_rollout import WriteRollout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowbill.errors import RolloutError
from shadowbill.translate.rollout import Match, Rollout, load_rollout
from shadowbill.translate.rollout_checks import _Universe, covers
from shadowbill.translate.rule_match import StateMatcher

HEAD = """\
rollout: shadows
catalogs: {legacy: {legacy}, new: {new}}
seat_prices: ["starter_*", "pro_*", "premium_*"]
phases:
  - phase: 2
    name: p
    cutover: 2026-01-01
    discounts: carry
    rules:
"""


def _rules(*matches: str) -> str:
    body = ""
    for i, match in enumerate(matches):
        body += f"      - id: r{i}\n        match: {match}\n        then: {{items: [{{from: '*', price: advanced_month}}]}}\n"
    return HEAD + body


def _warnings(write_rollout: WriteRollout, *matches: str) -> tuple[str, ...]:
    return load_rollout(write_rollout(_rules(*matches))).warnings


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{}", "{segment: sales}"),
        ("{segment: [sales, self_serve]}", "{segment: sales}"),
        ("{currency: [usd, eur]}", "{currency: USD, country: GB}"),
        ("{prices: {any: 'pro_*'}}", "{prices: {all: [pro_month_v1, resolution_bot_month]}}"),
        ("{prices: {any: ['pro_*', 'starter_*']}}", "{prices: {any: 'pro_month_*'}}"),
        ("{prices: {none: sms_month}}", "{prices: {none: ['sms_*', 'whatsapp_month']}}"),
        ("{seats: {min: 5}}", "{seats: {min: 10, max: 20}}"),
        ("{tenure_months: {max: 12}}", "{tenure_months: {min: 1, max: 6}}"),
        (
            "{created: {on_or_after: 2025-01-01}}",
            "{created: {on_or_after: 2025-06-01, before: 2025-07-01}}",
        ),
        ("{plan: [pro, premium]}", "{plan: pro, interval: month}"),
        ("{metadata: {tier: gold}}", "{metadata: {tier: gold, region: eu}}"),
    ],
)
def test_covered_rule_is_reported(write_rollout: WriteRollout, earlier: str, later: str) -> None:
    warnings = _warnings(write_rollout, earlier, later)
    assert len(warnings) == 1
    assert "phases[0].rules[1]: rule 'r1' can never match: rule 'r0' comes first" in warnings[0]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{segment: sales}", "{}"),
        ("{segment: sales}", "{segment: [sales, self_serve]}"),
        ("{prices: {any: 'pro_month_*'}}", "{prices: {any: ['pro_*', 'starter_*']}}"),
        ("{prices: {all: [pro_month_v1, resolution_bot_month]}}", "{prices: {any: pro_month_v1}}"),
        ("{prices: {none: ['sms_*', 'whatsapp_month']}}", "{prices: {none: sms_month}}"),
        ("{seats: {min: 10}}", "{seats: {min: 5}}"),
        ("{tenure_months: {min: 1}}", "{}"),
        ("{metadata: {tier: gold, region: eu}}", "{metadata: {tier: gold}}"),
    ],
)
def test_broader_later_rule_is_not_reported(
    write_rollout: WriteRollout, earlier: str, later: str
) -> None:
    assert _warnings(write_rollout, earlier, later) == ()


def test_warning_names_file_and_line_and_strict_mode_fails(write_rollout: WriteRollout) -> None:
    path = write_rollout(_rules("{segment: sales}", "{}", "{currency: usd}"))
    rollout = load_rollout(path)
    assert len(rollout.warnings) == 1  # r2 after the catch-all r1
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "- id: r2" in t)
    assert rollout.warnings[0].startswith(f"{path}:{line}: phases[0].rules[2]: rule 'r2'")
    with pytest.raises(RolloutError, match="rule 'r2' can never match: rule 'r1' comes first"):
        load_rollout(path, strict=True)


def test_shadowed_phase_cohort_is_reported(write_rollout: WriteRollout) -> None:
    text = (
        _rules("{}")
        + """\
  - phase: 3
    name: q
    cohort: {currency: usd}
    cutover: 2026-01-01
    discounts: carry
    rules:
      - {id: q0, then: {recreate_legacy_prices: true}}
"""
    )
    warnings = load_rollout(write_rollout(text)).warnings
    assert len(warnings) == 1
    assert "phases[1].cohort: phase 3 can never have a subscription" in warnings[0]


# ---- soundness: whenever covers(a, b) says so, every state b matches, a matches too.

PRICES = [
    "starter_month",
    "pro_month_v1",
    "pro_month_v2",
    "resolution_bot_month",
    "sms_month",
    "odd_price",
]
PATTERNS = [
    "starter_*",
    "pro_*",
    "pro_month_*",
    "pro_month_v1",
    "resolution_bot_month",
    "sms_*",
    "*",
]


def _subset(values: list[str]) -> st.SearchStrategy[list[str] | None]:
    return st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)


def _match_strategy() -> st.SearchStrategy[Match]:
    rng = st.none() | st.builds(
        lambda lo, hi: {"min": min(lo, hi), "max": max(lo, hi)},
        st.integers(0, 30),
        st.integers(0, 30),
    )
    prices = st.none() | st.fixed_dictionaries(
        {
            "all": st.lists(st.sampled_from(PATTERNS), max_size=2),
            "any": st.lists(st.sampled_from(PATTERNS), max_size=2),
            "none": st.lists(st.sampled_from(PATTERNS), max_size=2),
        }
    )
    return st.builds(
        lambda p, seg, cur, seats: Match.model_validate(
            {
                k: v
                for k, v in {"prices": p, "segment": seg, "currency": cur, "seats": seats}.items()
                if v is not None
            }
        ),
        prices,
        _subset(["self_serve", "sales"]),
        _subset(["usd", "eur", "jpy"]),
        rng,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=_match_strategy(), b=_match_strategy(), seed=st.integers(0, 2**16))
def test_covers_is_sound(a: Match, b: Match, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    states = pd.DataFrame(
        {
            "segment": rng.choice(["self_serve", "sales"], n),
            "currency": rng.choice(["usd", "eur", "jpy"], n),
        }
    )
    rows = rng.integers(0, 4, n)
    items = pd.DataFrame(
        {
            "state": np.repeat(np.arange(n), rows),
            "price_id": rng.choice(PRICES, int(rows.sum())),
            "quantity": rng.integers(0, 15, int(rows.sum())),
        }
    )
    matcher = StateMatcher(states, items, {}, ["starter_*", "pro_*"])
    universe = _Universe(set(PRICES) | {p for p in PATTERNS if "*" not in p})
    if covers(a, b, universe):
        assert not (matcher.mask(b) & ~matcher.mask(a)).any()


def test_demo_rollout_has_no_shadowed_rule(demo_rollout: Rollout) -> None:
    assert demo_rollout.warnings == ()
