"""A small backend-agnostic filter language for metadata fields.

Python callers build :class:`Condition` objects (or pass their backend's own filter
models); the CLI parses the same conditions from text::

    lang=en             equal
    lang!=en            not equal
    section in 1,8      any of (comma-separated)
    year>=2020          range: >, >=, <, <=

Values that parse as integers or finite floats are compared as numbers, everything else
(``nan``, ``inf`` included) as strings. Several conditions are combined with AND.

Numbers must be what the engines store: integers are signed 64-bit in Qdrant and
OpenSearch alike, and JSON (the servers' wire format) has no NaN or infinity, while a NaN
compares unequal to everything. :class:`Condition` refuses anything else with a
:class:`~splare_connect.errors.ConfigError`, so a bad value is one clear error before any
engine sees it, whether it came from text or from Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from splare_connect.errors import ConfigError

Operator = Literal["eq", "ne", "in", "gt", "gte", "lt", "lte"]
Scalar = str | int | float | bool

_EXPRESSION = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(!=|>=|<=|=|>|<|\s+in\s+)\s*(.+?)\s*$")
_OPERATORS: dict[str, Operator] = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"^-?[0-9]+$")  # ASCII digits only: "٣٣" is a string, not 33


@dataclass(frozen=True)
class Condition:
    """One test on a metadata field.

    Attributes:
        key: Metadata field name (as it appears in the source records).
        op: ``eq``, ``ne``, ``in``, ``gt``, ``gte``, ``lt`` or ``lte``.
        value: A scalar, or a tuple of scalars for ``in``.
    """

    key: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if self.op == "in" and not isinstance(self.value, tuple):
            raise ConfigError(f"filter on {self.key!r}: 'in' needs a tuple of values")
        if self.op == "in" and not self.value:
            raise ConfigError(f"filter on {self.key!r}: 'in' needs at least one value, as in 'key in a,b'")
        if self.op in ("gt", "gte", "lt", "lte") and not isinstance(self.value, (int, float)):
            raise ConfigError(f"filter on {self.key!r}: range comparisons need a number, got {self.value!r}")
        for value in self.value if isinstance(self.value, tuple) else (self.value,):
            _check_number(self.key, value)


def _check_number(key: str, value: object) -> None:
    """Refuse numbers no engine can store or compare: outside signed 64 bits, NaN, infinite."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ConfigError(
            f"filter on {key!r}: {value} does not fit in a signed 64-bit integer (what the engines store); "
            f"use a value from {INT64_MIN} to {INT64_MAX}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"filter on {key!r}: {value} is not a finite number; filters compare finite numbers only")


def parse_condition(expression: str) -> Condition:
    """Parse one ``key<op>value`` expression (see the module docstring)."""
    match = _EXPRESSION.match(expression)
    if not match:
        raise ConfigError(
            f"cannot parse filter {expression!r}; expected key=value, key!=value, key>=number, or 'key in a,b,c'"
        )
    key, symbol, raw = match.group(1), match.group(2).strip(), match.group(3)
    if symbol == "in":
        return Condition(key, "in", tuple(_scalar(part.strip()) for part in raw.split(",") if part.strip()))
    return Condition(key, _OPERATORS[symbol], _scalar(raw))


def spellings(value: Scalar) -> list[Scalar]:
    """The values an equality on ``value`` should match: ``8`` and ``"8"`` alike.

    Engines compare stored values by type (the string ``"8"`` doesn't equal the integer
    ``8``), while metadata read from JSON or typed on a command line mixes the two freely;
    so every backend matches a value that reads as an integer in both spellings.
    """
    if isinstance(value, bool):
        return [value]
    if isinstance(value, int):
        return [value, str(value)]
    if isinstance(value, str) and _INTEGER.match(value) and len(value) <= 20 and INT64_MIN <= int(value) <= INT64_MAX:
        return [value, int(value)]  # a longer digit string cannot be a stored integer: only the string matches
    return [value]


def parse_filters(expressions: Sequence[str]) -> list[Condition]:
    """Parse several expressions (ANDed)."""
    return [parse_condition(expression) for expression in expressions]


def _scalar(raw: str) -> Scalar:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(number):  # "nan", "inf", "Infinity" are words here (a field may hold "Nan")
            return number
    return raw.strip("'\"")
