"""``migrate plan --where``: a parsed condition language that never executes code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from migrate_cases import DemoEnv, demo_env

from shadowbill.cli.migrate import migrate
from shadowbill.migrate.batch_select import SelectionError, apply_where


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


@pytest.fixture
def frame() -> pd.DataFrame:
    """Three candidates with a text, a number, a nullable number and a boolean column."""
    return pd.DataFrame(
        {
            "subscription_id": pd.array(["s1", "s2", "s3"], dtype="string"),
            "currency": pd.array(["usd", "eur", "usd"], dtype="string"),
            "new_plan": pd.array(
                ["advanced_month", "expert_month", "advanced_month + fin_resolution"],
                dtype="string",
            ),
            "items": [1, 1, 2],
            "delta": pd.array([5, None, -3], dtype="Int64"),
            "switches": [True, False, False],
        }
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('currency == "usd" and items > 1', ["s3"]),
        ('new_plan.str.contains("advanced")', ["s1", "s3"]),
        ('new_plan.str.contains(".*")', []),  # a literal substring, never a regex
        ('new_plan.str.upper().str.startswith("ADV")', ["s1", "s3"]),
        ('new_plan.str.endswith("resolution")', ["s3"]),
        ("delta < 0", ["s3"]),
        ("not (delta < 0)", ["s1"]),  # a missing delta satisfies no comparison
        ('currency in ["usd"]', ["s1", "s3"]),
        ('currency not in ("usd",)', ["s2"]),
        ("delta in [5, -3]", ["s1", "s3"]),
        ("switches", ["s1"]),
        ("~switches | (items >= 2)", ["s2", "s3"]),
        ("1 < items <= 2", ["s3"]),
        ('currency != "a@b"', ["s1", "s2", "s3"]),
    ],
)
def test_where_selects_with_the_documented_language(
    frame: pd.DataFrame, where: str, expected: list[str]
) -> None:
    assert apply_where(frame, where)["subscription_id"].tolist() == expected


ATTACKS = [
    '@pd.io.common.os.system("touch {marker}")',
    'currency == "usd" and @pd.io.common.os.system("touch {marker}") == 0',
    "items.__class__.__bases__[0].__subclasses__() == 1",
    "(lambda: __import__('os').system('touch {marker}'))() == 0",
    "__import__('os').system('touch {marker}') == 0",
    'new_plan.str.contains(open("{marker}", "w").name)',
    "currency.str.len() > 1",
    'new_plan.str.contains("a", regex=True)',
    "currency.str.cat(currency) == 'x'",
    "[c for c in currency] == 1",
    'currency == f"{{1}}"',
    "currency[0] == 'u'",
    "items + 1 > 2",
    "items.sum() > 0",
    "(" * 300 + "items > 1" + ")" * 300,
    "items > 1 and " * 200 + "items > 1",
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[f"attack{i}" for i in range(len(ATTACKS))])
def test_where_refuses_code_and_runs_none_of_it(
    frame: pd.DataFrame, attack: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(SelectionError) as caught:
        apply_where(frame, attack.format(marker=marker))
    assert not marker.exists()
    message = str(caught.value)
    assert "\n" not in message and "not a valid filter" in message and len(message) < 800


@pytest.mark.parametrize("attack", ATTACKS[:6], ids=[f"attack{i}" for i in range(6)])
def test_plan_where_attack_exits_2_with_one_line_and_runs_nothing(
    env: DemoEnv, attack: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    result = CliRunner().invoke(
        migrate,
        [
            "plan",
            *("--rollout", str(env.rollout), "--phase", "2", "--snapshot", str(env.snapshot)),
            *("--where", attack.format(marker=marker), "--no-rank"),
            *("--out", str(tmp_path / "batch"), "--ledger", f"sqlite:///{tmp_path / 'l.db'}"),
        ],
        env={"STRIPE_API_KEY": "sk_test_whereTESTKEY0123"},
        catch_exceptions=False,
    )
    assert not marker.exists()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shadowbill: error: --where"), result.stderr
    assert not (tmp_path / "batch").exists()
