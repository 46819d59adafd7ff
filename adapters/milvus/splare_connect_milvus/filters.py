"""Core filter conditions to Milvus boolean expressions on the stored payload.

A point's metadata lives in the JSON field ``payload`` under ``metadata``, so the
condition ``lang=de`` reads ``payload["metadata"]["lang"] == "de"``. Three rules make
the expressions answer like the other backends (the congruence scenarios):

- **Numbers and strings.** Milvus compares JSON values by type: the string ``"3"`` is not
  equal to the number ``3``. Metadata read from JSON or typed on a command line mixes the
  two freely, so an equality on a value that reads as an integer matches both spellings
  (as the Qdrant adapter does); a range compares numbers only (a string never matches a
  range, in Qdrant as here).
- **Missing fields and ``!=``.** ``x != v`` and ``not (x == v)`` are false in Milvus for a
  point that lacks ``x``; Qdrant's ``must_not`` (and OpenSearch's ``must_not``) keep such a
  point. ``!=`` is written ``not exists x or not (x == v ...)``.
- **``in``.** Milvus Lite refuses ``in [...]`` on a JSON path, so ``in`` is an ``or`` of
  equalities.

Values and keys are written as Milvus string literals with ``\\`` and ``"`` escaped (and
newlines, tabs, carriage returns as their escapes; Milvus takes other characters raw and
knows no ``\\u`` escape), so no user value can end the literal and add an expression of
its own. A string filter passes through untouched: it is the caller's own Milvus
expression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from splare_connect.backends.schema import METADATA
from splare_connect.errors import ConfigError
from splare_connect.filters import Condition, Scalar, spellings

PAYLOAD_FIELD = "payload"  # the JSON field holding each point's payload (metadata under "metadata")

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RANGE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def quote(text: str) -> str:
    """A Milvus string literal holding ``text`` exactly."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def literal(value: Scalar) -> str:
    """A Milvus literal for one scalar: ``true``/``false``, a number, or a quoted string.

    Raises:
        ConfigError: A number that is not finite (Condition refuses them already).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"filters compare finite numbers only, got {value}")
        return repr(float(value))
    return quote(str(value))


def field_path(key: str, attached: bool = False) -> str:
    """The JSON path of a metadata key: ``a.b`` is ``payload["metadata"]["a"]["b"]`` (dots nest, as in Qdrant).

    On an attached collection the app's own ``metadata`` (a JSON field, or a key of its
    dynamic field) holds it: ``metadata["a"]["b"]``, as Qdrant reads an attached point's
    ``metadata.a.b``.
    """
    head = METADATA if attached else PAYLOAD_FIELD + f"[{quote(METADATA)}]"
    return head + "".join(f"[{quote(part)}]" for part in key.split("."))


def _equals_any(path: str, values: Sequence[Scalar]) -> str:
    parts: list[str] = []
    for value in values:
        parts += [part for v in spellings(value) if (part := f"{path} == {literal(v)}") not in parts]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def _is_conditions(filter_: Any) -> bool:
    return (
        isinstance(filter_, Sequence)
        and not isinstance(filter_, str)
        and all(isinstance(c, Condition) for c in filter_)
    )


def condition_expression(condition: Condition, attached: bool = False) -> str:
    """One condition as a Milvus expression (on an attached collection's own ``metadata``, if ``attached``)."""
    path = field_path(condition.key, attached)
    if condition.op in ("eq", "in"):
        values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
        return _equals_any(path, values)
    if condition.op == "ne":
        return f"(not exists {path} or not {_equals_any(path, (condition.value,))})"  # type: ignore[arg-type]
    return f"{path} {_RANGE[condition.op]} {literal(condition.value)}"  # type: ignore[arg-type]


def build_expression(filter_: Any, attached: bool = False) -> str:
    """The Milvus expression for a list of Conditions (``""`` for none), or a string expression unchanged.

    ``attached``: the collection is an application's, its metadata in its own ``metadata`` field.

    Raises:
        ConfigError: ``filter_`` is neither conditions nor a string (another backend's filter object).
    """
    if filter_ is None:
        return ""
    if isinstance(filter_, str):
        return filter_
    if not _is_conditions(filter_):
        raise ConfigError(
            f"unsupported filter for Milvus: {type(filter_).__name__} "
            "(pass splare_connect.filters.Condition objects, or a Milvus expression string)"
        )
    return " and ".join(condition_expression(condition, attached) for condition in filter_)
