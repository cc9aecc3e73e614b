"""``migrate plan --where``: a small condition language, parsed and evaluated here.

A filter typed by an operator, or read from a file in a repository, must never execute
code, so the expression is parsed with Python's ``ast`` against a whitelist and then
evaluated by this module over whole columns (vectorized); it is never handed to
``eval``, ``DataFrame.query`` or ``DataFrame.eval``.

Grammar:

- a column of ``SELECT_COLUMNS`` (a bare boolean column is a condition: ``switches``);
- constants: strings, whole or decimal numbers (with a leading minus), ``True``, ``False``;
- comparisons ``== != < <= > >=`` (chains allowed), ``in`` / ``not in`` a list or tuple
  of constants;
- ``and``, ``or``, ``not`` (and ``&``, ``|``, ``~`` as pandas spells them), parentheses;
- on a text column, ``col.str.contains("x")``, ``col.str.startswith("x")``,
  ``col.str.endswith("x")`` (a literal substring, never a regular expression), and
  ``col.str.lower()`` / ``col.str.upper()`` to compare case-insensitively.

Nothing else: no ``@`` names, no other attribute, no call, no arithmetic, no lambda,
no subscripts. A missing value (``delta`` of a customer without a reconciliation)
satisfies no comparison.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

MAX_LENGTH: Final = 1000
MAX_NODES: Final = 400
TEXT_TESTS: Final = ("contains", "startswith", "endswith")
TEXT_CASES: Final = ("lower", "upper")
GRAMMAR: Final = (
    "columns, constants, == != < <= > >=, in / not in [..], and/or/not, parentheses, "
    'and col.str.contains/startswith/endswith("text"), col.str.lower()/upper()'
)

_COMPARE = {
    ast.Eq: "__eq__",
    ast.NotEq: "__ne__",
    ast.Lt: "__lt__",
    ast.LtE: "__le__",
    ast.Gt: "__gt__",
    ast.GtE: "__ge__",
}


class WhereSyntaxError(ValueError):
    """An expression outside the --where language; the message says what is not allowed."""


@dataclass(frozen=True)
class Where:
    """A parsed --where condition: its text and its checked syntax tree."""

    text: str
    tree: ast.expr


def column_kind(series: pd.Series) -> str:
    """``text``, ``bool`` or ``number``: what a column can be compared with."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "number"
    return "text"


def _constant_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    raise WhereSyntaxError(f"the constant {value!r} is not allowed (strings, numbers, True/False)")


class _Checker:
    """Walks the tree once, refusing anything outside the grammar; returns value kinds."""

    def __init__(self, columns: Mapping[str, str]) -> None:
        self.columns = columns

    def condition(self, node: ast.expr) -> None:
        kind = self.value(node)
        if kind != "bool":
            raise WhereSyntaxError(
                f"{ast.unparse(node)!r} is a {kind}, not a condition (true or false per "
                "subscription)"
            )

    def constant(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return _constant_kind(node.value)
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and _constant_kind(node.operand.value) == "number"
        ):
            return "number"
        raise WhereSyntaxError(f"{ast.unparse(node)!r} is not a constant")

    def value(self, node: ast.expr) -> str:
        if isinstance(node, ast.BoolOp):
            for operand in node.values:
                self.condition(operand)
            return "bool"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            self.condition(node.operand)
            return "bool"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
            self.condition(node.left)
            self.condition(node.right)
            return "bool"
        if isinstance(node, ast.Compare):
            self.compare(node)
            return "bool"
        if isinstance(node, ast.Name):
            if node.id not in self.columns:
                raise WhereSyntaxError(f"unknown column {node.id!r}")
            return self.columns[node.id]
        if isinstance(node, ast.Constant | ast.UnaryOp):
            return self.constant(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise WhereSyntaxError(f"{ast.unparse(node)!r} is not allowed")

    def call(self, node: ast.Call) -> str:
        func = node.func
        if not (
            isinstance(func, ast.Attribute)
            and func.attr in TEXT_TESTS + TEXT_CASES
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "str"
        ):
            raise WhereSyntaxError(f"the call {ast.unparse(node)!r} is not allowed")
        target = func.value.value
        if self.value(target) != "text" or not _is_text_column(target):
            raise WhereSyntaxError(f"{ast.unparse(node)!r}: .str methods apply to text columns")
        if node.keywords:
            raise WhereSyntaxError(f"{ast.unparse(node)!r}: no keyword arguments")
        if func.attr in TEXT_CASES:
            if node.args:
                raise WhereSyntaxError(f"{ast.unparse(node)!r}: {func.attr}() takes no argument")
            return "text"
        if len(node.args) != 1 or not (
            isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        ):
            raise WhereSyntaxError(f"{ast.unparse(node)!r}: {func.attr}() takes one string")
        return "bool"

    def compare(self, node: ast.Compare) -> None:
        left = self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right_node, ast.List | ast.Tuple) or not right_node.elts:
                    raise WhereSyntaxError(
                        f"{ast.unparse(node)!r}: `in` takes a list of constants, e.g. "
                        '["usd", "eur"]'
                    )
                kinds = {self.constant(e) for e in right_node.elts}
                allowed = {"text"} if left == "text" else {"number", "bool"}
                if not kinds <= allowed:
                    raise WhereSyntaxError(f"{ast.unparse(node)!r} mixes text and numbers")
                continue
            if type(op) not in _COMPARE:
                raise WhereSyntaxError(f"{ast.unparse(node)!r}: `is` is not allowed; use ==")
            right = self.value(right_node)
            if left != right and {left, right} != {"number", "bool"}:
                raise WhereSyntaxError(f"{ast.unparse(node)!r} compares a {left} with a {right}")
            left = right


def _is_text_column(node: ast.expr) -> bool:
    """A .str method applies to a column or to the result of lower()/upper() on one."""
    if isinstance(node, ast.Name):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TEXT_CASES
    )


def parse_where(text: str, columns: Mapping[str, str]) -> Where:
    """Parse and check a --where condition over ``columns`` (name to column_kind)."""
    source = str(text).strip()
    if len(source) > MAX_LENGTH:
        raise WhereSyntaxError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        if "@" in source:
            raise WhereSyntaxError("`@` names are not allowed") from None
        raise WhereSyntaxError(f"SyntaxError: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise WhereSyntaxError("nested too deeply or not text") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise WhereSyntaxError(f"more than {MAX_NODES} terms")
    _Checker(columns).condition(tree)
    return Where(source, tree)


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string")


class _Evaluator:
    """Evaluates a checked tree over a frame's columns; every result is a whole column."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def condition(self, node: ast.expr) -> pd.Series:
        value = self.value(node)
        if isinstance(value, pd.Series):
            return value.astype("boolean")
        return pd.Series(bool(value), index=self.frame.index, dtype="boolean")

    def value(self, node: ast.expr) -> pd.Series | object:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            out = parts[0]
            for part in parts[1:]:
                out = (out & part) if isinstance(node.op, ast.And) else (out | part)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            return ~self.condition(node.operand)
        if isinstance(node, ast.UnaryOp):  # negative constant (checked)
            return _literal(node)
        if isinstance(node, ast.BinOp):
            left, right = self.condition(node.left), self.condition(node.right)
            return (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name):
            series = self.frame[node.id]
            if column_kind(series) == "text":
                return _text(series)
            return series
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call):
            return self.call(node)
        raise WhereSyntaxError(f"{ast.unparse(node)!r} is not allowed")  # pragma: no cover

    def call(self, node: ast.Call) -> pd.Series:
        func = node.func
        assert isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
        target = self.value(func.value.value)
        assert isinstance(target, pd.Series)
        strings = _text(target).str
        if func.attr == "lower":
            return strings.lower()
        if func.attr == "upper":
            return strings.upper()
        needle = str(_literal(node.args[0]))
        if func.attr == "contains":
            return strings.contains(needle, regex=False)
        if func.attr == "startswith":
            return strings.startswith(needle)
        return strings.endswith(needle)

    def compare(self, node: ast.Compare) -> pd.Series:
        out = pd.Series(True, index=self.frame.index, dtype="boolean")
        left = self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(right_node, ast.List | ast.Tuple)
                options = [_literal(e) for e in right_node.elts]
                series = (
                    left
                    if isinstance(left, pd.Series)
                    else pd.Series([left] * len(self.frame), index=self.frame.index)
                )
                hit = series.isin(options).astype("boolean")
                hit = hit.mask(series.isna().to_numpy(), pd.NA)
                out = out & (~hit if isinstance(op, ast.NotIn) else hit)
                continue
            right = self.value(right_node)
            result = getattr(_as_series(left, self.frame), _COMPARE[type(op)])(right)
            out = out & pd.Series(result, index=self.frame.index).astype("boolean")
            left = right
        return out


def _as_series(value: object, frame: pd.DataFrame) -> pd.Series:
    if isinstance(value, pd.Series):
        return value
    return pd.Series([value] * len(frame), index=frame.index, dtype=object)


def _literal(node: ast.expr) -> object:
    if isinstance(node, ast.UnaryOp):
        return -_literal(node.operand)  # type: ignore[operator]
    assert isinstance(node, ast.Constant)
    return node.value


def evaluate_where(where: Where, frame: pd.DataFrame) -> np.ndarray:
    """The rows of ``frame`` the condition holds for, as a boolean array (missing = false)."""
    mask = _Evaluator(frame).condition(where.tree)
    return mask.fillna(False).to_numpy(dtype=bool)
