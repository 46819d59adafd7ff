"""Core filter conditions to Qdrant filters, for Edge and for qdrant-client.

Both engines share Qdrant's filter model (must / must_not / should, match value /
any, ranges); only the Python classes differ, so conditions are translated once, here,
and each driver hands over its engine's classes (:class:`FilterClasses`). Filters that
are already the engine's own objects pass through untouched.

Qdrant's keyword matches are typed: the string ``"8"`` doesn't match the integer
``8``. Metadata read from JSON or typed on a command line mixes the two freely, so a
value that reads as an integer matches both spellings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from splare_connect.backends.schema import metadata_path
from splare_connect.errors import ConfigError
from splare_connect.filters import Condition, Scalar, spellings


def _is_conditions(filter_: Any) -> bool:
    return (
        isinstance(filter_, Sequence)
        and not isinstance(filter_, str)
        and all(isinstance(c, Condition) for c in filter_)
    )


@dataclass(frozen=True)
class FilterClasses:
    """One engine's filter classes, wrapped to take the same arguments.

    Attributes:
        engine: The engine's name, for errors.
        native: The engine's own filter class; such filters pass through.
        field: ``field(key, match=...)`` or ``field(key, range=...)``: a field condition.
        match_value: One exact value.
        match_any: Any of a list of values of one type.
        range: ``range(gte=..., lt=...)`` and so on.
        filter: ``filter(must=..., must_not=..., should=...)``.
    """

    engine: str
    native: type
    field: Callable[..., Any]
    match_value: Callable[[Any], Any]
    match_any: Callable[[list[Any]], Any]
    range: Callable[..., Any]
    filter: Callable[..., Any]
    has_vector: Callable[[str], Any]


def vector_presence_filter(has_vector: tuple[str, bool] | None, classes: FilterClasses) -> Any:
    """The engine's filter keeping points that have (``(name, True)``) or lack (``(name, False)``) a vector."""
    if has_vector is None:
        return None
    name, present = has_vector
    condition = classes.has_vector(name)
    return classes.filter(must=[condition]) if present else classes.filter(must_not=[condition])


def build_filter(filter_: Any, classes: FilterClasses) -> Any:
    """The engine's filter for a list of Conditions (None for none), or the engine's own filter unchanged.

    Raises:
        ConfigError: ``filter_`` is neither conditions nor the engine's filter (another
            engine's or backend's, say).
    """
    if filter_ is None or (_is_conditions(filter_) and not filter_):
        return None
    if not _is_conditions(filter_):
        if isinstance(filter_, classes.native):
            return filter_
        raise ConfigError(f"unsupported filter for {classes.engine}: {type(filter_).__name__}")
    must: list[Any] = []
    must_not: list[Any] = []
    for condition in filter_:
        key = metadata_path(condition.key)
        if condition.op in ("eq", "ne", "in"):
            values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
            (must_not if condition.op == "ne" else must).append(_equals_any(classes, key, values))
        else:
            must.append(classes.field(key, range=classes.range(**{condition.op: float(condition.value)})))  # type: ignore[arg-type]
    return classes.filter(must=must or None, must_not=must_not or None)


def _equals_any(classes: FilterClasses, key: str, values: Sequence[Scalar]) -> Any:
    """A condition true when the field equals one of ``values`` (in any spelling)."""
    options = [v for value in values for v in spellings(value)]
    strings = [v for v in options if isinstance(v, str)]
    integers = [v for v in options if isinstance(v, int) and not isinstance(v, bool)]
    others = [v for v in options if isinstance(v, bool)]
    floats = [v for v in options if isinstance(v, float)]
    parts = [classes.field(key, match=classes.match_any(group)) for group in (strings, integers) if group]
    parts += [classes.field(key, match=classes.match_value(v)) for v in others]
    parts += [classes.field(key, range=classes.range(gte=v, lte=v)) for v in floats]
    return parts[0] if len(parts) == 1 else classes.filter(should=parts)
