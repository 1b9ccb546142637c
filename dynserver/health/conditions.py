"""Conditions on one check result (issue 17): expected_json, max_response_time and invert.

Pure: the probes observe, these evaluate what one observation saw; the state machine decides.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonpath

# Longest first, so "<=" is not read as "<" followed by "=".
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_ORDERING = {"<", "<=", ">", ">="}
ONE_OF_OPERATORS = "one of " + " ".join(_OPERATORS)

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class JsonCondition:
    """`$.path OP literal`: every value the path selects in the body must compare true."""

    text: str  # as written, for reasons and the config's echo
    path: str
    operator: str
    literal: Scalar
    # Out of eq and hash: two loads of one config give equal monitors (path says it all).
    compiled: jsonpath.JSONPath | jsonpath.CompoundJSONPath = field(compare=False, repr=False)

    def evaluate(self, body: bytes) -> tuple[bool, str]:
        """ok and a reason a person understands; never raises on what a target sends."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return False, "body is not JSON"
        values = self.compiled.findall(document)
        if not values:
            return False, f"json {self.path} matches nothing"
        compare = _OPERATORS[self.operator]
        for value in values:
            if not _comparable(self.operator, value, self.literal):
                return False, (
                    f"json {self.path} is {_show(value)}, not comparable with "
                    f"{self.operator} {_show(self.literal)}"
                )
            if not compare(value, self.literal):
                expected = f"{self.operator} {_show(self.literal)}"
                return False, f"json {self.path} is {_show(value)}, expected {expected}"
        return True, f"json {self.text}"


def parse_json_condition(text: str) -> JsonCondition:
    """`$.status == "ok"` -> a JsonCondition; ValueError says what is wrong with it."""
    split = _split(text)
    if split is None:
        raise ValueError(f'expected `$.path OP value` with OP {ONE_OF_OPERATORS}, e.g. $.status == "ok"')
    path, op, right = split
    if not path.startswith("$"):
        raise ValueError(f"expected a JSON path starting with $, got {path!r}")
    try:
        compiled = jsonpath.compile(path)
    except jsonpath.JSONPathError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"bad JSON path {path!r}: {first_line}") from None
    try:
        literal = json.loads(right)
    except ValueError:
        literal = _NOT_A_SCALAR
    if literal is _NOT_A_SCALAR or isinstance(literal, (list, dict)) or _is_nan(literal):
        raise ValueError(
            f"expected a JSON string, number, true, false or null after {op}, got {right} "
            '(a string in double quotes: "ok")'
        )
    if op in _ORDERING and not (_is_number(literal) or isinstance(literal, str)):
        raise ValueError(f"expected a number or a string after {op} (it orders), got {right}")
    text = f"{path} {op} {right}"
    return JsonCondition(text=text, path=path, operator=op, literal=literal, compiled=compiled)


def _split(text: str) -> tuple[str, str, str] | None:
    """The first operator outside brackets, parentheses and quotes: the path's own filters
    ($.items[?@.a == 1]) keep theirs. Only this split is ours; the path is jsonpath's."""
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif depth == 0:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    path, right = text[:i].strip(), text[i + len(op) :].strip()
                    return (path, op, right) if path and right else None
        i += 1
    return None


_NOT_A_SCALAR = object()


def _is_nan(value: object) -> bool:
    """NaN and Infinity: Python's json reads them, JSON has no such literal."""
    return isinstance(value, float) and not math.isfinite(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(op: str, value: object, literal: Scalar) -> bool:
    """JSON's types, not Python's: true is not 1, and "5" is not 5."""
    if _is_number(literal):
        return _is_number(value)
    if op in _ORDERING or literal is not None:
        return type(value) is type(literal)
    return True  # == null / != null: any value may be compared with null


def _show(value: object) -> str:
    return json.dumps(value)


def expiry_reason(expires: float, now: float, days: float) -> str | None:
    """'certificate expires in 2.9 days (under 14)' when it does; None while it does not."""
    left = (expires - now) / 86400
    if left >= days:
        return None
    if left <= 0:
        return f"certificate expired {-left:.1f} days ago"
    return f"certificate expires in {left:.1f} days (under {days:g})"


def slow_reason(latency: float, limit: float) -> str | None:
    """max_response_time: a passing check slower than the limit fails, with the time it took."""
    if latency > limit:
        return f"slow: {latency:.3f} s > {limit:.3f} s"
    return None


def inverted(ok: bool, reason: str) -> tuple[bool, str]:
    """invert: a check that must fail (Route 53's invert, Uptime Kuma's upside-down mode)."""
    return not ok, f"inverted: {reason}"
