"""Check a ``POST /search`` answer's shape once, where it enters the client.

The client cannot trust what comes back: a proxy, an older or foreign server, or a
hostile one may answer an object instead of a list, a hit without ``id``, a string
score or a malformed ``features`` list. Checked here, every caller (the CLI's table
and JSON, an application) gets hits of the documented types or one line naming what
is wrong, never a ``KeyError`` or ``TypeError`` later.

The shape is :class:`splare_connect.service.schemas.SearchHitBody`'s, checked with
plain code so the client stays free of pydantic and quick to import.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["HitShapeError", "check_hits"]


class HitShapeError(ValueError):
    """The answer is not a list of hits; the message names the hit and the field."""


def _json_type(value: Any) -> str:
    """``value``'s type as JSON names it, for messages about what a server sent."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_hits(answer: Any) -> list[dict[str, Any]]:
    """``answer`` itself when it is a list of well-formed hits.

    Each hit is an object with ``id`` and ``doc_id`` (strings) and ``score`` (a finite
    number); ``text`` is a string or null, ``metadata`` an object or null, and
    ``features``, when present, an array of ``{feature: integer >= 0, weight: finite
    number, label: string or null}``. Other fields are let through.

    Raises:
        HitShapeError: The first thing that does not fit, as ``hit 2's 'score' is a string, not a number``.
    """
    if not isinstance(answer, list):
        raise HitShapeError(f"the service answered {_json_type(answer)} instead of a list of hits")
    for index, hit in enumerate(answer):
        problem = _hit_problem(hit, f"hit {index}")
        if problem is not None:
            raise HitShapeError(f"the service answered an unexpected hit: {problem}")
    return answer


def _hit_problem(hit: Any, name: str) -> str | None:
    if not isinstance(hit, dict):
        return f"{name} is {_json_type(hit)}, not an object"
    for field in ("id", "doc_id", "score"):
        if field not in hit:
            return f"{name} has no {field!r}"
    for field in ("id", "doc_id"):
        if not isinstance(hit[field], str):
            return f"{name}'s {field!r} is {_json_type(hit[field])}, not a string"
    score = hit["score"]
    if not _is_number(score):
        return f"{name}'s 'score' is {_json_type(score)}, not a number"
    if not math.isfinite(score):
        return f"{name}'s 'score' is {score}, not a finite number"
    if hit.get("text") is not None and not isinstance(hit["text"], str):
        return f"{name}'s 'text' is {_json_type(hit['text'])}, not a string or null"
    if hit.get("metadata") is not None and not isinstance(hit["metadata"], dict):
        return f"{name}'s 'metadata' is {_json_type(hit['metadata'])}, not an object"
    features = hit.get("features")
    if features is None:
        return None
    if not isinstance(features, list):
        return f"{name}'s 'features' is {_json_type(features)}, not an array"
    for number, feature in enumerate(features):
        problem = _feature_problem(feature)
        if problem is not None:
            return f"{name}'s feature {number} {problem}"
    return None


def _feature_problem(feature: Any) -> str | None:
    if not isinstance(feature, dict):
        return f"is {_json_type(feature)}, not an object"
    for field in ("feature", "weight"):
        if field not in feature:
            return f"has no {field!r}"
    if not isinstance(feature["feature"], int) or isinstance(feature["feature"], bool) or feature["feature"] < 0:
        return f"has 'feature' {_json_type(feature['feature'])}, not an integer >= 0"
    if not _is_number(feature["weight"]) or not math.isfinite(feature["weight"]):
        return f"has 'weight' {_json_type(feature['weight'])}, not a finite number"
    if feature.get("label") is not None and not isinstance(feature["label"], str):
        return f"has 'label' {_json_type(feature['label'])}, not a string or null"
    return None
