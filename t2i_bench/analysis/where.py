"""``--where``: select checkpoints by a small, safe expression over the configs table.

The expression is parsed with :mod:`ast` and only a whitelist of node types is evaluated,
column-wise with pandas; nothing is passed to ``eval``. Grammar (Python syntax)::

    expr    := expr and expr | expr or expr | not expr | (expr) | compare
    compare := value (== | != | < | <= | > | >= | in | not in) value [...]
    value   := column | number | 'text' | True | False | None | [constants] | value (+-*/) value

``x == None`` / ``x != None`` test for a missing value. A comparison with a missing value is
false (so ``not (alpha == 1)`` keeps rows with no alpha). ``&``, ``|`` and ``~`` are accepted
as ``and``, ``or`` and ``not``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable

import pandas as pd

from t2i_bench.errors import BenchError

_COMPARE: dict[type, Callable] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Invert,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.BitAnd,
    ast.BitOr,
    ast.Compare,
    ast.In,
    ast.NotIn,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    *_COMPARE,
    *_ARITHMETIC,
)


def parse_where(expression: str) -> ast.Expression:
    """Parse and check an expression; BenchError naming it when it is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise BenchError(f"--where {expression!r}: invalid expression ({exc.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise BenchError(
                f"--where {expression!r}: {type(node).__name__} is not allowed "
                "(use columns, constants, comparisons, and/or/not, + - * /)"
            )
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, (str, int, float, bool, type(None))
        ):
            raise BenchError(f"--where {expression!r}: constant {node.value!r} is not allowed")
    return tree


def where_columns(expression: str) -> list[str]:
    """Column names an expression uses, in order of appearance."""
    names = [n.id for n in ast.walk(parse_where(expression)) if isinstance(n, ast.Name)]
    return [n for n in dict.fromkeys(names) if n not in ("True", "False", "None")]


def evaluate_where(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Boolean mask (aligned with ``frame.index``) of the rows the expression keeps.

    Raises BenchError for an invalid expression, an unknown column (naming it and the
    columns there are), a comparison of incompatible types or a result that is not boolean.
    """
    tree = parse_where(expression)
    unknown = [c for c in where_columns(expression) if c not in frame.columns]
    if unknown:
        raise BenchError(
            f"--where {expression!r}: unknown column {unknown[0]!r} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    try:
        result = _Evaluator(frame).visit(tree.body)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"--where {expression!r}: cannot evaluate ({exc})") from None
    if not isinstance(result, pd.Series):
        result = pd.Series(result, index=frame.index)
    if not pd.api.types.is_bool_dtype(result):
        raise BenchError(f"--where {expression!r}: is not a condition (true/false per row)")
    return result.fillna(False).astype(bool)


class _Evaluator(ast.NodeVisitor):
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def visit_Name(self, node: ast.Name) -> object:
        return self.frame[node.id]

    def visit_Constant(self, node: ast.Constant) -> object:
        return node.value

    def visit_List(self, node: ast.List) -> list:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_BoolOp(self, node: ast.BoolOp) -> pd.Series:
        values = [self._mask(self.visit(v)) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0]
        for value in values[1:]:
            out = combine(out, value)
        return out

    def visit_UnaryOp(self, node: ast.UnaryOp) -> object:
        value = self.visit(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self._mask(value)
        return -value if isinstance(node.op, ast.USub) else value

    def visit_BinOp(self, node: ast.BinOp) -> object:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            combine = operator.and_ if isinstance(node.op, ast.BitAnd) else operator.or_
            return combine(self._mask(left), self._mask(right))
        return _ARITHMETIC[type(node.op)](left, right)

    def visit_Compare(self, node: ast.Compare) -> pd.Series:
        out = None
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            part = self._compare(op, left, right)
            out = part if out is None else out & part
            left = right
        return out

    def _compare(self, op: ast.cmpop, left: object, right: object) -> pd.Series:
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, list):
                raise TypeError("'in' needs a list of constants on its right, e.g. [4, 8]")
            hit = self._series(left).isin(right)
            return hit if isinstance(op, ast.In) else ~hit & self._series(left).notna()
        if right is None or left is None:
            if not isinstance(op, (ast.Eq, ast.NotEq)):
                raise TypeError("None can only be compared with == or !=")
            missing = self._series(right if left is None else left).isna()
            return missing if isinstance(op, ast.Eq) else ~missing
        _check_types(left, right)
        result = self._series(_COMPARE[type(op)](left, right))
        # a comparison with a missing value is false, != included
        for side in (left, right):
            if isinstance(side, pd.Series):
                result = result & side.notna()
        return result

    def _series(self, value: object) -> pd.Series:
        if isinstance(value, pd.Series):
            return value
        return pd.Series([value] * len(self.frame), index=self.frame.index)

    def _mask(self, value: object) -> pd.Series:
        series = self._series(value)
        if not pd.api.types.is_bool_dtype(series):
            raise TypeError("and/or/not need conditions, not values")
        return series.fillna(False).astype(bool)


def _check_types(left: object, right: object) -> None:
    """A text column against a number (or the reverse) is a mistake, not 'no match'."""
    for column, constant in ((left, right), (right, left)):
        if not isinstance(column, pd.Series) or isinstance(constant, pd.Series):
            continue
        numeric = pd.api.types.is_numeric_dtype(column)
        if numeric and isinstance(constant, str):
            raise TypeError(f"a numeric column compared with the text {constant!r}")
        if not numeric and isinstance(constant, (int, float)) and not isinstance(constant, bool):
            raise TypeError(f"a text column compared with the number {constant!r}")


def describe_rows(names: Iterable[str], limit: int = 5) -> str:
    """``'a', 'b', 'c' …`` for a message: the first ``limit`` names."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (" …" if len(names) > limit else "")
