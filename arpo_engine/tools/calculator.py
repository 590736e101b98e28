"""The `calculator` tool: safe arithmetic for models that need numbers, not a whole interpreter.

The expression is parsed with `ast` and walked over a small whitelist of number literals, operators,
constants and `math` functions; nothing is ever passed to `eval`. `^` means power, as models and
people write it. Results that would take unbounded time or memory (huge powers and factorials) are
refused before they are computed.
"""

from __future__ import annotations

import ast
import copy
import math
import operator
import time
from collections.abc import Callable, Mapping
from typing import Any

from arpo_engine.tools.base import ToolResult, function_schema

DEFAULT_DESCRIPTION = (
    "Evaluate an arithmetic expression: + - * / // % ** (or ^), parentheses, pi, e, and functions "
    "such as sqrt, log, exp, sin, cos, tan, abs, round, floor, ceil, factorial, comb, gcd, min, max."
)

Number = int | float | complex

MAX_EXPRESSION_CHARS = 2_000
MAX_RESULT_BITS = 14_000  # ~4,200 digits, under Python's 4,300-digit int-to-str limit
MAX_FACTORIAL = 5_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max,
    "sqrt": math.sqrt, "cbrt": math.cbrt, "exp": math.exp, "log": math.log, "log2": math.log2,
    "log10": math.log10, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
    "acos": math.acos, "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "degrees": math.degrees, "radians": math.radians, "floor": math.floor,
    "ceil": math.ceil, "trunc": math.trunc, "factorial": math.factorial, "comb": math.comb,
    "perm": math.perm, "gcd": math.gcd, "lcm": math.lcm, "hypot": math.hypot,
}  # fmt: skip


class CalculatorError(ValueError):
    """An expression the calculator refuses; the message is shown to the model."""


class CalculatorTool:
    """`kind: calculator`. Stateless, so thread-safe."""

    primary_argument = "expression"

    def __init__(
        self,
        name: str = "calculator",
        *,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._description = description or DEFAULT_DESCRIPTION
        self._schema = schema

    def schema(self) -> dict[str, Any]:
        if self._schema is not None:
            return copy.deepcopy(dict(self._schema))
        expression = {"type": "string", "description": "The arithmetic expression, e.g. (3 + 4) * 2^10."}
        return function_schema(self.name, self._description, {"expression": expression}, ["expression"])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        started = time.perf_counter()
        expression = arguments.get(self.primary_argument)
        if not isinstance(expression, str) or not expression.strip():
            return ToolResult(output="Give an arithmetic expression to evaluate.", error="bad_arguments")
        try:
            output = format_number(evaluate(expression))
            error = None
        except CalculatorError as exc:
            output, error = f"Cannot evaluate {expression.strip()!r}: {exc}", "bad_arguments"
        except (ArithmeticError, ValueError, TypeError) as exc:
            output, error = f"Math error in {expression.strip()!r}: {exc}", "math_error"
        return ToolResult(output=output, error=error, latency_ms=(time.perf_counter() - started) * 1000)


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; CalculatorError for anything outside the whitelist."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        # `^` is power here; rewritten before parsing so it gets power's precedence, not XOR's.
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"invalid syntax ({exc.msg})") from None
    return _eval(tree.body)


def format_number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        return node.value  # type: ignore[return-value]
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        result = _BINARY[type(node.op)](left, right)
        _check_size(result)
        return result  # type: ignore[no-any-return]
    if isinstance(node, ast.Call):
        return _call(node)
    raise CalculatorError(f"{_describe(node)} is not allowed")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
        raise CalculatorError(f"{_describe(node)} is not allowed")
    args = [_eval(a) for a in node.args]
    if node.func.id in ("factorial", "comb", "perm") and any(
        isinstance(a, int) and a > MAX_FACTORIAL for a in args
    ):
        raise CalculatorError(f"{node.func.id} arguments above {MAX_FACTORIAL} are too large")
    result = _FUNCTIONS[node.func.id](*args)
    _check_size(result)
    return result  # type: ignore[no-any-return]


def _check_power(base: Number, exponent: Number) -> None:
    # Integer powers are exact and can take unbounded time and memory: estimate the size first.
    if not (isinstance(base, int) and isinstance(exponent, int)):
        return
    if exponent > 0 and abs(base).bit_length() * exponent > MAX_RESULT_BITS:
        raise CalculatorError("the result would be too large")


def _check_size(value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise CalculatorError("the result would be too large")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return f"the function {node.func.id!r}"
    return f"{type(node).__name__} syntax"
