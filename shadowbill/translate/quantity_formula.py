"""Quantity formulas of rollout rules: a tiny, safe arithmetic language over whole frames.

A formula such as ``seats``, ``1`` or ``ceil(seats / 5)`` says how many units of a new
price a subscription gets. It is parsed once (Python's ``ast`` with a whitelist; nothing
is ever evaluated by Python) and evaluated element-wise over int64 arrays with exact
rational arithmetic, so a division never goes through a float.

Grammar: integer literals, the variables ``seats`` and ``quantity``, ``+ - * /``,
unary minus, parentheses, and the functions ``ceil``, ``floor``, ``round`` (half up),
``min`` and ``max``. A formula must give a whole number: a division has to be wrapped
in ``ceil``, ``floor`` or ``round``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from shadowbill.money import Rounding, div_round

VARIABLES: dict[str, str] = {
    "seats": "the subscription's seats: summed quantity of its items on a seat price",
    "quantity": "summed quantity of the legacy items this new item replaces (its `from`)",
}
FUNCTIONS = ("ceil", "floor", "round", "min", "max")
_MAX_LENGTH = 200

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Formula:
    """A parsed quantity formula: its text, its syntax tree and the variables it reads."""

    text: str
    tree: ast.expr
    variables: frozenset[str]


class FormulaSyntaxError(ValueError):
    """A formula outside the language; the message says what is allowed."""


def _check(node: ast.AST) -> bool:
    """Validate ``node`` against the whitelist; return whether it always gives an integer."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise FormulaSyntaxError(f"only whole-number constants are allowed, not {node.value!r}")
        return True
    if isinstance(node, ast.Name):
        if node.id not in VARIABLES:
            known = ", ".join(VARIABLES)
            raise FormulaSyntaxError(f"unknown variable {node.id!r} (known: {known})")
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _check(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _check(node.left), _check(node.right)
        if isinstance(node.op, ast.Div):
            if isinstance(node.right, ast.Constant) and node.right.value == 0:
                raise FormulaSyntaxError("division by zero")
            return False
        return left and right
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise FormulaSyntaxError(f"only the functions {', '.join(FUNCTIONS)} are allowed")
        if node.keywords:
            raise FormulaSyntaxError("functions take no keyword arguments")
        name = node.func.id
        if name in ("ceil", "floor", "round"):
            if len(node.args) != 1:
                raise FormulaSyntaxError(f"{name}() takes exactly one argument")
            _check(node.args[0])
            return True
        if len(node.args) < 2:
            raise FormulaSyntaxError(f"{name}() takes at least two arguments")
        return all([_check(a) for a in node.args])
    raise FormulaSyntaxError(
        "only whole numbers, the variables seats and quantity, + - * /, parentheses and "
        f"{', '.join(FUNCTIONS)} are allowed"
    )


@lru_cache(maxsize=512)
def parse_formula(text: str) -> Formula:
    """Parse and check a formula; raise FormulaSyntaxError saying what is wrong."""
    source = str(text).strip()
    if not source:
        raise FormulaSyntaxError("empty formula")
    if len(source) > _MAX_LENGTH:
        raise FormulaSyntaxError(f"formula longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise FormulaSyntaxError(f"not a formula: {source!r}") from None
    if not _check(tree):
        raise FormulaSyntaxError(
            f"{source!r} can give a fraction; wrap the division in ceil(), floor() or round()"
        )
    names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in VARIABLES)
    return Formula(source, tree, names)


@dataclass
class _Rational:
    num: IntArray
    den: IntArray  # always > 0 where valid


def _reduce(num: IntArray, den: IntArray) -> _Rational:
    g = np.gcd(num, den)
    g = np.where(g == 0, 1, g)
    return _Rational(num // g, den // g)


class _Evaluator:
    def __init__(self, variables: Mapping[str, IntArray], size: int) -> None:
        self.variables = variables
        self.size = size
        self.invalid: BoolArray = np.zeros(size, dtype=bool)

    def ones(self) -> IntArray:
        return np.ones(self.size, dtype=np.int64)

    def eval(self, node: ast.expr) -> _Rational:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int)  # the parser admits whole numbers only
            return _Rational(np.full(self.size, node.value, dtype=np.int64), self.ones())
        if isinstance(node, ast.Name):
            return _Rational(np.asarray(self.variables[node.id], dtype=np.int64), self.ones())
        if isinstance(node, ast.UnaryOp):
            inner = self.eval(node.operand)
            return _Rational(-inner.num, inner.den) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        args = [self.eval(a) for a in node.args]
        name = node.func.id
        if name == "ceil":
            return _Rational(-((-args[0].num) // args[0].den), self.ones())
        if name == "floor":
            return _Rational(args[0].num // args[0].den, self.ones())
        if name == "round":
            return _Rational(div_round(args[0].num, args[0].den, Rounding.HALF_UP), self.ones())
        out = args[0]
        for other in args[1:]:
            left = out.num * other.den
            right = other.num * out.den
            take_other = right < left if name == "min" else right > left
            out = _Rational(
                np.where(take_other, other.num, out.num), np.where(take_other, other.den, out.den)
            )
        return out

    def _binop(self, node: ast.BinOp) -> _Rational:
        a, b = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Add):
            return _reduce(a.num * b.den + b.num * a.den, a.den * b.den)
        if isinstance(node.op, ast.Sub):
            return _reduce(a.num * b.den - b.num * a.den, a.den * b.den)
        if isinstance(node.op, ast.Mult):
            return _reduce(a.num * b.num, a.den * b.den)
        zero = b.num == 0
        self.invalid |= zero
        num = a.num * b.den
        den = np.where(zero, 1, a.den * b.num)
        sign = np.where(den < 0, -1, 1)
        return _reduce(num * sign, den * sign)


def evaluate(
    formula: Formula, variables: Mapping[str, npt.ArrayLike], size: int
) -> tuple[IntArray, BoolArray]:
    """Evaluate over arrays of ``size`` rows: (quantities, rows that are invalid).

    A row is invalid when it divides by zero or gives a negative quantity.
    """
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in variables.items()}
    missing = formula.variables - set(arrays)
    if missing:
        raise KeyError(f"formula {formula.text!r} needs {', '.join(sorted(missing))}")
    ev = _Evaluator(arrays, size)
    value = ev.eval(formula.tree)
    # The static check guarantees a whole number; floor only normalises the type.
    result = value.num // value.den
    invalid = ev.invalid | (result < 0)
    return np.where(invalid, 0, result).astype(np.int64), invalid
