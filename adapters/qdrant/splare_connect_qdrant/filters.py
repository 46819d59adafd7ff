"""Core filter conditions to Qdrant filters, for Edge and for qdrant-client.

Both engines share Qdrant's filter model (must / must_not, match value / any /
except, ranges); only the Python classes differ. Filters that are already the
engine's own objects pass through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from splare_connect.errors import ConfigError
from splare_connect.filters import Condition
from splare_connect_qdrant.common import metadata_key

_RANGE_KEYS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}


def _is_conditions(filter_: Any) -> bool:
    return isinstance(filter_, Sequence) and all(isinstance(c, Condition) for c in filter_)


def to_edge_filter(filter_: Any) -> Any:
    """A ``qdrant_edge.Filter`` for a list of Conditions (or the filter itself)."""
    import qdrant_edge as edge

    if filter_ is None or (_is_conditions(filter_) and not filter_):
        return None
    if not _is_conditions(filter_):
        if isinstance(filter_, edge.Filter):
            return filter_
        raise ConfigError(f"unsupported filter for Qdrant Edge: {type(filter_).__name__}")
    must, must_not = [], []
    for condition in filter_:
        key = metadata_key(condition.key)
        if condition.op == "eq":
            must.append(edge.FieldCondition(key, match=edge.MatchValue(condition.value)))
        elif condition.op == "ne":
            must_not.append(edge.FieldCondition(key, match=edge.MatchValue(condition.value)))
        elif condition.op == "in":
            must.append(edge.FieldCondition(key, match=edge.MatchAny(list(condition.value))))  # type: ignore[arg-type]
        else:
            bound = {_RANGE_KEYS[condition.op]: float(condition.value)}  # type: ignore[arg-type]
            must.append(edge.FieldCondition(key, range=edge.RangeFloat(**bound)))
    return edge.Filter(must=must or None, must_not=must_not or None)


def to_client_filter(filter_: Any) -> Any:
    """A ``qdrant_client.models.Filter`` for a list of Conditions (or the filter itself)."""
    from qdrant_client import models

    if filter_ is None or (_is_conditions(filter_) and not filter_):
        return None
    if not _is_conditions(filter_):
        if isinstance(filter_, models.Filter):
            return filter_
        raise ConfigError(f"unsupported filter for Qdrant: {type(filter_).__name__}")
    must: list[Any] = []
    must_not: list[Any] = []
    for condition in filter_:
        key = metadata_key(condition.key)
        if condition.op == "eq":
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=condition.value)))
        elif condition.op == "ne":
            must_not.append(models.FieldCondition(key=key, match=models.MatchValue(value=condition.value)))
        elif condition.op == "in":
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(condition.value))))  # type: ignore[arg-type]
        else:
            bound = {_RANGE_KEYS[condition.op]: float(condition.value)}  # type: ignore[arg-type]
            must.append(models.FieldCondition(key=key, range=models.Range(**bound)))
    return models.Filter(must=must or None, must_not=must_not or None)
