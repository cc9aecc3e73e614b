"""``type: integer`` fills counts (quantities), not money; money columns say which types they take."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowbill.errors import ExtractSpecError
from shadowbill.extract.spec import load_extract_spec


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(body)
    return path


def test_integer_type_is_accepted_for_a_quantity(tmp_path: Path) -> None:
    spec = load_extract_spec(
        _spec(
            tmp_path,
            "tables:\n  subscription_items:\n    table: items\n    columns:\n"
            "      quantity: {from: qty, type: integer}\n",
        )
    )
    assert spec.tables["subscription_items"].columns["quantity"].type == "integer"


def test_integer_type_is_refused_for_money_with_the_money_types(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "tables:\n  invoices:\n    table: bills\n    columns:\n      total: {from: t, type: integer}\n",
    )
    with pytest.raises(ExtractSpecError, match="use major_units or minor_units"):
        load_extract_spec(path)


def test_price_to_help_says_what_the_default_end_is() -> None:
    from click.testing import CliRunner

    from shadowbill.cli.app import main

    out = CliRunner().invoke(main, ["price", "--help"], terminal_width=200).output
    assert "latest legacy invoice period_end" in " ".join(out.split())
