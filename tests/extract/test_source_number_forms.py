"""Numbers as sources hand them over: DECIMAL zeros in scientific notation, major units in minor-unit columns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from shadowbill.extract import value_parsers as vp
from shadowbill.extract.conversions import ConversionContext, to_canonical
from shadowbill.extract.sql_source import SqlReader
from shadowbill.snapshot.tables import TABLES

AMOUNT = TABLES["invoice_lines"].column("amount")
QUANTITY = TABLES["subscription_items"].column("quantity")


def _text(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def test_arrow_decimal_text_in_scientific_notation_reads_exactly() -> None:
    given = pa.array(["0E-9", "1.5E-8", "-2.50E-7", "12.500000000", "1e3", None])
    assert vp.expand_scientific(given).to_pylist() == [
        "0.000000000",
        "0.000000015",
        "-0.000000250",
        "12.500000000",
        "1e3",  # only the form Arrow prints for decimals is rewritten
        None,
    ]
    parsed = vp.parse_major_units(given, pa.array([2] * 6, pa.int64()))
    assert parsed.values.to_pylist()[0] == 0
    assert parsed.too_many_decimals.tolist()[:3] == [False, True, True]


def test_major_units_zero_as_0e_minus_9_is_zero() -> None:
    ctx = ConversionContext(currency=_text("USD", "USD"))
    result = to_canonical(_text("0E-9", "19.500000000"), AMOUNT, ctx, "major_units")
    assert result.values.tolist() == [0, 1950]
    assert result.reason.isna().all()


@pytest.fixture
def decimal_table(mariadb_url: str) -> Iterator[tuple[str, str]]:
    """A DECIMAL(15, 9) table on MariaDB, as Kill Bill declares its amounts."""
    name = f"amounts_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {name} (id INT, amount DECIMAL(15, 9))")
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES (1, 0), (2, 12.5), (3, 0.000000015)")
    yield mariadb_url, name
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {name}")
    engine.dispose()


@pytest.mark.server
def test_mariadb_decimal_zero_is_zero_not_quarantined(decimal_table: tuple[str, str]) -> None:
    url, name = decimal_table
    with SqlReader(url) as reader:
        frame = next(reader.chunks(f"SELECT amount FROM {name} ORDER BY id", 10, name))
    assert frame["amount"].tolist()[0] == "0E-9"  # what the driver and Arrow hand over
    ctx = ConversionContext(currency=_text("USD", "USD", "USD"))
    result = to_canonical(frame["amount"], AMOUNT, ctx, "major_units")
    assert result.values.tolist()[:2] == [0, 1250]
    assert result.reason.tolist()[:2] == [pd.NA, pd.NA]
    assert result.reason.tolist()[2] == "too_many_decimals"


def test_minor_unit_column_refuses_a_decimal_point() -> None:
    result = to_canonical(_text("19500", "195.00", "195.", "-3"), AMOUNT, ConversionContext())
    assert result.values.tolist()[0] == 19500
    assert result.values.tolist()[3] == -3
    assert result.reason.tolist()[1:3] == ["wrong_type", "wrong_type"]
    assert "looks like major units" in str(result.detail.iloc[1])


def test_minor_units_type_refuses_a_decimal_point_too() -> None:
    result = to_canonical(_text("195.00"), AMOUNT, ConversionContext(), "minor_units")
    assert "looks like major units" in str(result.detail.iloc[0])


def test_quantity_still_reads_whole_decimals() -> None:
    result = to_canonical(_text("12.00", "3"), QUANTITY, ConversionContext(), "integer")
    assert result.values.tolist() == [12, 3]
