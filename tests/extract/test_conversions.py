"""Column conversions of the extract spec: exact amounts, decimals, timestamps, maps; never float."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.extract.conversions import ConversionContext, convert_column, to_canonical
from shadowbill.extract.spec import ColumnSpec
from shadowbill.money import CURRENCY_EXPONENTS
from shadowbill.snapshot.tables import TABLES

AMOUNT = TABLES["invoices"].column("subtotal")
UNIT_PRICE = TABLES["invoice_lines"].column("unit_amount_decimal")
CREATED = TABLES["customers"].column("created_at")
EXEMPT = TABLES["customers"].column("tax_exempt")
SEGMENT = TABLES["customers"].column("segment")
PERCENT = TABLES["discounts"].column("percent_off")
QUANTITY = TABLES["subscription_items"].column("quantity")


def text(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def major_units(values: pd.Series, currency: str | pd.Series):
    cur = currency if isinstance(currency, pd.Series) else text(*[currency] * len(values))
    return to_canonical(values, AMOUNT, ConversionContext(currency=cur), "major_units")


@pytest.mark.parametrize(
    ("currency", "given", "minor"),
    [
        ("USD", "39.00", 3900),
        ("USD", "39.5", 3950),
        ("USD", "0.07", 7),
        ("USD", "-12.30", -1230),
        ("USD", "1,234.56", 123456),
        ("USD", " 7 ", 700),
        ("USD", ".5", 50),
        ("USD", "9999999999999999.99", 999999999999999999),
        ("usd", "1", 100),
        ("JPY", "5900", 5900),
        ("JPY", "5900.000", 5900),
        ("KWD", "12.345", 12345),
        ("KWD", "0.001", 1),
        ("KWD", "120", 120000),
    ],
)
def test_major_units_exact(currency, given, minor):
    result = major_units(text(given), currency)
    assert result.reason.isna().all()
    assert result.values.iloc[0] == minor
    assert str(result.values.dtype) == "Int64"


@pytest.mark.parametrize(
    ("currency", "given", "reason"),
    [
        ("USD", "39.001", "too_many_decimals"),
        ("JPY", "5900.5", "too_many_decimals"),
        ("KWD", "1.2345", "too_many_decimals"),
        ("USD", "12,34", "wrong_type"),
        ("USD", "1e3", "wrong_type"),
        ("USD", "39.00 USD", "wrong_type"),
        ("USD", "92233720368547758.07", "wrong_type"),  # beyond int64 minor units
        ("XYZ", "39.00", "unknown_currency"),
    ],
)
def test_major_units_failures_are_per_row(currency, given, reason):
    result = major_units(text("1.00", given), currency if currency != "XYZ" else text("USD", "XYZ"))
    assert result.reason.tolist() == [pd.NA, reason]
    assert pd.isna(result.values.iloc[1])
    assert given.strip() in result.detail.iloc[1] or reason == "unknown_currency"


def test_too_many_decimals_names_the_currency():
    result = major_units(text("39.123"), "usd")
    assert result.detail.iloc[0] == "'39.123' has more decimals than USD allows (2)"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=-(10**12), max_value=10**12, places=3, allow_nan=False),
            st.sampled_from(["USD", "JPY", "KWD", "EUR", "BHD", "CLP"]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_major_units_match_decimal_arithmetic(cases: list[tuple[Decimal, str]]):
    written = text(*[format(value, "f") for value, _ in cases])
    result = major_units(written, text(*[currency for _, currency in cases]))
    for i, (value, currency) in enumerate(cases):
        scaled = value.scaleb(CURRENCY_EXPONENTS[currency])
        if scaled == scaled.to_integral_value():
            assert result.values.iloc[i] == int(scaled)
            assert pd.isna(result.reason.iloc[i])
        else:
            assert result.reason.iloc[i] == "too_many_decimals"


def test_amount_currency_per_row():
    result = major_units(text("10.5", "10.5", "10.5"), text("USD", "JPY", "KWD"))
    assert result.values.tolist()[0::2] == [1050, 10500]
    assert result.reason.tolist()[1] == "too_many_decimals"


@pytest.mark.parametrize(
    ("currency", "given", "expected"),
    [
        ("USD", "0.0075", "0.75"),
        ("USD", "39", "3900"),
        ("USD", "0.01", "1"),
        ("USD", "-1.005", "-100.5"),
        ("JPY", "0.5", "0.5"),
        ("KWD", "1.23456", "1234.56"),
        ("USD", "000.0100", "1"),
    ],
)
def test_major_decimal_moves_the_point(currency, given, expected):
    cur = text(currency)
    result = to_canonical(text(given), UNIT_PRICE, ConversionContext(currency=cur), "major_decimal")
    assert result.values.tolist() == [expected]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("20.00", "20"), ("012.50", "12.5"), ("-0.0", "0"), ("8.875", "8.875"), ("0", "0")],
)
def test_decimal_string_normalized(given, expected):
    result = to_canonical(text(given), PERCENT, ConversionContext(), "decimal_string")
    assert result.values.tolist() == [expected]


def test_decimal_string_bad_value():
    result = to_canonical(text("12%"), PERCENT, ConversionContext(), "decimal_string")
    assert result.reason.tolist() == ["wrong_type"]


def test_minor_units_and_integers():
    result = to_canonical(
        text("12", "12.00", "-3", "12.5", "x", None), QUANTITY, ConversionContext()
    )
    assert result.values.tolist()[:3] == [12, 12, -3]
    assert result.reason.tolist()[3:5] == ["wrong_type", "wrong_type"]
    assert pd.isna(result.reason.iloc[5]) and pd.isna(result.values.iloc[5])


def test_bool_forms():
    given = text("1", "0", "TRUE", "false", "yes", "No", "Y", "n", "t", "F", "maybe")
    result = to_canonical(given, EXEMPT, ConversionContext(), "bool")
    flags = result.values.tolist()
    assert flags[:10] == [True, False, True, False, True, False, True, False, True, False]
    assert result.reason.tolist()[-1] == "wrong_type"


def test_timestamps_with_zone():
    given = text(
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00+02:00",
        "2024-01-01 10:00:00.250+0200",
        "2024-01-01T10:00:00z",  # lower-case zone: read by the fallback parser
        "2024-02-30T10:00:00Z",
    )
    result = to_canonical(given, CREATED, ConversionContext(), "timestamp")
    stamps = result.values.tolist()
    assert stamps[0] == pd.Timestamp("2024-01-01T10:00:00Z")
    assert stamps[1] == pd.Timestamp("2024-01-01T08:00:00Z")
    assert stamps[2] == pd.Timestamp("2024-01-01T08:00:00.250Z")
    assert stamps[3] == pd.Timestamp("2024-01-01T10:00:00Z")
    assert result.reason.tolist() == [pd.NA] * 4 + ["wrong_type"]
    assert str(result.values.dtype) == "datetime64[us, UTC]"


def test_naive_timestamps_take_the_spec_zone_or_are_refused():
    given = text("2024-07-01 12:00:00", "2024-01-01", "2024-03-31 02:30:00")
    berlin = to_canonical(given, CREATED, ConversionContext(timezone="Europe/Berlin"), "timestamp")
    assert berlin.values.tolist()[:2] == [
        pd.Timestamp("2024-07-01T10:00:00Z"),
        pd.Timestamp("2023-12-31T23:00:00Z"),
    ]
    assert berlin.reason.tolist() == [pd.NA, pd.NA, "wrong_type"]  # 02:30 never happened
    assert "Europe/Berlin" in berlin.detail.iloc[2]
    refused = to_canonical(given, CREATED, ConversionContext(naive="quarantine"), "timestamp")
    assert refused.reason.tolist() == ["naive_timestamp"] * 3


def test_database_timestamps():
    aware = pd.Series(pd.to_datetime(["2024-01-01T10:00:00+02:00"])).astype(
        "datetime64[us, Europe/Berlin]"
    )
    assert to_canonical(aware, CREATED, ConversionContext()).values.iloc[0] == pd.Timestamp(
        "2024-01-01T08:00:00Z"
    )
    naive = pd.Series(pd.to_datetime(["2024-07-01 12:00:00"])).astype("datetime64[us]")
    local = to_canonical(naive, CREATED, ConversionContext(timezone="America/New_York"))
    assert local.values.iloc[0] == pd.Timestamp("2024-07-01T16:00:00Z")


def test_epochs():
    seconds = to_canonical(
        pd.Series([1704067200, None, 10**15], dtype="Int64"),
        CREATED,
        ConversionContext(),
        "epoch_seconds",
    )
    assert seconds.values.iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert pd.isna(seconds.values.iloc[1]) and pd.isna(seconds.reason.iloc[1])
    assert seconds.reason.iloc[2] == "wrong_type"
    millis = to_canonical(
        text("1704067200123", "soon"), CREATED, ConversionContext(), "epoch_millis"
    )
    assert millis.values.iloc[0] == pd.Timestamp("2024-01-01T00:00:00.123Z")
    assert millis.reason.tolist() == [pd.NA, "wrong_type"]


def spec(**form) -> ColumnSpec:
    return ColumnSpec.model_validate(form)


def test_map_translates_and_quarantines_unmapped():
    form = spec(**{"from": "channel", "map": {"WEB": "self_serve", "SALES": "sales"}})
    source = text("WEB", "SALES", "PARTNER", None)
    result = convert_column(source, form, SEGMENT, ConversionContext(), source.index)
    assert result.values.tolist()[:2] == ["self_serve", "sales"]
    assert result.reason.tolist() == [pd.NA, pd.NA, "unmapped_value", pd.NA]
    assert result.detail.iloc[2] == (
        "segment (from channel): value 'PARTNER' is not in the spec's map (WEB, SALES)"
    )


def test_map_to_booleans_and_integers():
    flags = spec(**{"from": "vat", "map": {"Y": True, "N": False}})
    source = text("Y", "N")
    assert convert_column(
        source, flags, EXEMPT, ConversionContext(), source.index
    ).values.tolist() == [
        True,
        False,
    ]
    numbers = spec(**{"from": "seats", "map": {1: 10, 2: 20}})
    ints = pd.Series([2, 1], dtype="Int64")
    assert convert_column(
        ints, numbers, QUANTITY, ConversionContext(), ints.index
    ).values.tolist() == [
        20,
        10,
    ]


def test_null_if_transform_and_constant():
    ends = spec(**{"from": "valid_until", "type": "epoch_seconds", "null_if": [0]})
    source = pd.Series([0, 1704067200], dtype="Int64")
    result = convert_column(source, ends, CREATED, ConversionContext(), source.index)
    assert pd.isna(result.values.iloc[0]) and pd.isna(result.reason.iloc[0])
    upper = spec(**{"from": "cc", "transform": "upper"})
    country = TABLES["customers"].column("country")
    names = text(" de", "fr")
    assert convert_column(
        names, upper, country, ConversionContext(), names.index
    ).values.tolist() == [
        " DE",
        "FR",
    ]
    constant = spec(value=1)
    count = TABLES["subscriptions"].column("interval_count")
    index = pd.RangeIndex(3)
    assert (
        convert_column(None, constant, count, ConversionContext(), index).values.tolist() == [1] * 3
    )


def test_no_float_columns_in_results():
    result = major_units(text("1.10", "2.20"), "USD")
    assert result.values.tolist() == [110, 220]
    assert not pd.api.types.is_float_dtype(result.values.dtype)


def test_results_keep_the_source_index():
    index = pd.Index([10, 20])
    cases = [
        (CREATED, "timestamp", ["2024-01-01T00:00:00Z", "x"]),
        (CREATED, "epoch_seconds", ["1704067200", "x"]),
        (QUANTITY, None, ["3", "x"]),
        (EXEMPT, "bool", ["yes", "x"]),
        (PERCENT, "decimal_string", ["12.50", "x"]),
    ]
    for column, kind, values in cases:
        source = pd.Series(values, index=index, dtype="string")
        result = to_canonical(source, column, ConversionContext(), kind)
        assert list(result.values.index) == [10, 20]
        assert result.values.notna().tolist() == [True, False], (column.name, kind)
        assert result.reason.tolist() == [pd.NA, "wrong_type"], (column.name, kind)
    cur = pd.Series(["USD", "USD"], index=index, dtype="string")
    amounts = major_units(pd.Series(["1.5", "x"], index=index, dtype="string"), cur)
    assert amounts.values.tolist()[0] == 150 and list(amounts.reason.index) == [10, 20]
