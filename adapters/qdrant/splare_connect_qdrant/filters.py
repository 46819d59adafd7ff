"""Core filter conditions to Qdrant filters, for Edge and for qdrant-client.

Both engines share Qdrant's filter model (must / must_not / should, match value /
any, ranges); only the Python classes differ, so conditions are translated once into
a neutral form and then built with either engine's classes. Filters that are already
an engine's own objects pass through untouched.

Qdrant's keyword matches are typed: the string ``"8"`` doesn't match the integer
``8``. Metadata read from JSON or typed on a command line mixes the two freely, so a
value that reads as an integer matches both spellings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from splare_connect.backends.schema import metadata_path
from splare_connect.errors import ConfigError
from splare_connect.filters import Condition, Scalar

_INTEGER = re.compile(r"^-?\d+$")


def _is_conditions(filter_: Any) -> bool:
    return (
        isinstance(filter_, Sequence)
        and not isinstance(filter_, str)
        and all(isinstance(c, Condition) for c in filter_)
    )


def spellings(value: Scalar) -> list[Scalar]:
    """The values a condition on ``value`` should match (``8`` and ``"8"`` alike)."""
    if isinstance(value, bool):
        return [value]
    if isinstance(value, int):
        return [value, str(value)]
    if isinstance(value, str) and _INTEGER.match(value):
        return [value, int(value)]
    return [value]


class _Builder:
    """Builds one engine's filter objects from neutral pieces."""

    def __init__(self, field: Any, match_value: Any, match_any: Any, range_: Any, filter_: Any) -> None:
        self.field, self.match_value, self.match_any, self.range, self.filter = (
            field,
            match_value,
            match_any,
            range_,
            filter_,
        )

    def equals_any(self, key: str, values: Sequence[Scalar]) -> Any:
        """A condition true when the field equals one of ``values`` (in any spelling)."""
        options = [v for value in values for v in spellings(value)]
        strings = [v for v in options if isinstance(v, str)]
        integers = [v for v in options if isinstance(v, int) and not isinstance(v, bool)]
        others = [v for v in options if isinstance(v, bool)]
        floats = [v for v in options if isinstance(v, float)]
        parts = [self.field(key, match=self.match_any(group)) for group in (strings, integers) if group]
        parts += [self.field(key, match=self.match_value(v)) for v in others]
        parts += [self.field(key, range=self.range(gte=v, lte=v)) for v in floats]
        return parts[0] if len(parts) == 1 else self.filter(should=parts)

    def build(self, conditions: Sequence[Condition]) -> Any:
        must: list[Any] = []
        must_not: list[Any] = []
        for condition in conditions:
            key = metadata_path(condition.key)
            if condition.op in ("eq", "ne", "in"):
                values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
                (must_not if condition.op == "ne" else must).append(self.equals_any(key, values))
            else:
                must.append(self.field(key, range=self.range(**{condition.op: float(condition.value)})))  # type: ignore[arg-type]
        return self.filter(must=must or None, must_not=must_not or None)


def to_edge_filter(filter_: Any) -> Any:
    """A ``qdrant_edge.Filter`` for a list of Conditions (or the filter itself)."""
    import qdrant_edge as edge

    if filter_ is None or (_is_conditions(filter_) and not filter_):
        return None
    if not _is_conditions(filter_):
        if isinstance(filter_, edge.Filter):
            return filter_
        raise ConfigError(f"unsupported filter for Qdrant Edge: {type(filter_).__name__}")
    return _Builder(
        field=lambda key, **kw: edge.FieldCondition(key, **kw),
        match_value=edge.MatchValue,
        match_any=edge.MatchAny,
        range_=edge.RangeFloat,
        filter_=edge.Filter,
    ).build(filter_)


def to_client_filter(filter_: Any) -> Any:
    """A ``qdrant_client.models.Filter`` for a list of Conditions (or the filter itself)."""
    from qdrant_client import models

    if filter_ is None or (_is_conditions(filter_) and not filter_):
        return None
    if not _is_conditions(filter_):
        if isinstance(filter_, models.Filter):
            return filter_
        raise ConfigError(f"unsupported filter for Qdrant: {type(filter_).__name__}")
    return _Builder(
        field=lambda key, **kw: models.FieldCondition(key=key, **kw),
        match_value=lambda v: models.MatchValue(value=v),
        match_any=lambda vs: models.MatchAny(any=vs),
        range_=models.Range,
        filter_=models.Filter,
    ).build(filter_)
