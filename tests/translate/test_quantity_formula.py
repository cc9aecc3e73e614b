"""Quantity formulas: a tiny, safe language evaluated exactly over arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowbill.translate.quantity_formula import FormulaSyntaxError, evaluate, parse_formula


def _eval(
    text: str, seats: list[int], quantity: list[int] | None = None
) -> tuple[list[int], list[bool]]:
    values = {"seats": np.array(seats), "quantity": np.array(quantity or [0] * len(seats))}
    out, bad = evaluate(parse_formula(text), values, len(seats))
    return out.tolist(), bad.tolist()


@pytest.mark.parametrize(
    ("text", "seats", "expected"),
    [
        ("seats", [0, 7], [0, 7]),
        ("1", [3, 4], [1, 1]),
        ("ceil(seats / 5)", [0, 1, 5, 6, 11], [0, 1, 1, 2, 3]),
        ("floor(seats / 5)", [4, 5, 9], [0, 1, 1]),
        ("round(seats / 2)", [1, 2, 3, 5], [1, 1, 2, 3]),  # half up
        ("seats * 2 - 1", [1, 3], [1, 5]),
        ("max(seats - 10, 0)", [4, 15], [0, 5]),
        ("min(seats, 5) + max(1, 2, 3)", [2, 9], [5, 8]),
        ("ceil(seats * 3 / 4 + 1 / 4)", [1, 2, 3], [1, 2, 3]),
        ("-(-seats)", [6], [6]),
    ],
)
def test_formulas(text: str, seats: list[int], expected: list[int]) -> None:
    values, bad = _eval(text, seats)
    assert values == expected
    assert not any(bad)


def test_quantity_variable_and_invalid_rows() -> None:
    values, bad = _eval("ceil(quantity / seats)", [0, 2, 4], [3, 3, 3])
    assert values == [0, 2, 1]
    assert bad == [True, False, False]  # division by zero
    values, bad = _eval("seats - 5", [3, 8])
    assert values == [0, 3]
    assert bad == [True, False]  # negative quantity


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seats / 5", "can give a fraction"),
        ("min(seats / 2, 3)", "can give a fraction"),
        ("seats ** 2", "only whole numbers"),
        ("seats.real", "only whole numbers"),
        ("open('x')", "only the functions"),
        ("__import__('os')", "only the functions"),
        ("1.5", "whole-number constants"),
        ("'3'", "whole-number constants"),
        ("True", "whole-number constants"),
        ("users", "unknown variable 'users'"),
        ("ceil(seats, 2)", "takes exactly one argument"),
        ("max(seats)", "at least two arguments"),
        ("ceil(seats / 0)", "division by zero"),
        ("seats +", "not a formula"),
        ("", "empty formula"),
        ("seats if seats else 1", "only whole numbers"),
        ("[seats][0]", "only whole numbers"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(FormulaSyntaxError, match=message):
        parse_formula(text)


def test_variables_are_recorded() -> None:
    assert parse_formula("ceil(seats / 5)").variables == {"seats"}
    assert parse_formula("quantity + 1").variables == {"quantity"}
    assert parse_formula("3").variables == frozenset()


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50), st.integers(1, 97))
def test_ceil_and_floor_are_exact(seats: list[int], k: int) -> None:
    assert _eval(f"ceil(seats / {k})", seats)[0] == [-(-s // k) for s in seats]
    assert _eval(f"floor(seats / {k})", seats)[0] == [s // k for s in seats]
    assert _eval(f"round(seats / {k})", seats)[0] == [(2 * s + k) // (2 * k) for s in seats]
