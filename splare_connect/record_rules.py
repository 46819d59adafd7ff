"""What a source record may hold: the rules every engine accepts, checked before any write.

Engines are not a safe place to find out that a value is bad. Qdrant Edge, for one,
accepts metadata nested ~125 levels deep and then cannot read its own write-ahead log
again, so one record makes the whole collection unreadable; NaN or a lone UTF-16
surrogate makes a whole batch fail. The sync engine therefore checks every document
against these rules first and skips the ones that break them, with their file and
line, so a bad record never costs the good ones beside it or the collection.

The rules (``RecordLimits`` holds the numbers):

- id: a non-empty string of at most ``max_id_chars`` characters;
- text: at most ``max_text_chars`` characters, which bounds the chunks, memory and time
  one record can take;
- metadata: JSON values only (objects with string keys, arrays, strings, finite numbers,
  integers within signed 64 bits, booleans, null), nested at most ``max_depth`` levels,
  at most ``max_metadata_bytes`` bytes as JSON;
- every string (id, text, keys, values): valid Unicode, i.e. no lone surrogates, which
  cannot be written as UTF-8.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class RecordLimits:
    """Bounds on one record; the defaults are documented in the README's input rules.

    Attributes:
        max_depth: Nesting levels allowed in metadata (``{"a": {"b": 1}}`` is 2).
        max_metadata_bytes: Size of the metadata as compact UTF-8 JSON.
        max_text_chars: Characters of text per record (about 2,000 chunks of 512
            tokens at most for the default model).
        max_id_chars: Characters of the id.
    """

    max_depth: int = 32
    max_metadata_bytes: int = 1_000_000
    max_text_chars: int = 1_000_000
    max_id_chars: int = 1024


DEFAULT_LIMITS = RecordLimits()


def id_problem(doc_id: str, limits: RecordLimits = DEFAULT_LIMITS) -> str | None:
    """What makes an id unusable, as one line, or ``None`` if it is fine."""
    if not isinstance(doc_id, str):
        return f"id is a {type(doc_id).__name__}, not a string"
    if not doc_id.strip():
        return "id is empty"
    if len(doc_id) > limits.max_id_chars:
        return f"id is {len(doc_id):,} characters long, over the limit of {limits.max_id_chars:,}"
    if not is_valid_unicode(doc_id):
        return "id holds a lone surrogate (not valid Unicode)"
    return None


def content_problem(text: str, metadata: Mapping[str, Any], limits: RecordLimits = DEFAULT_LIMITS) -> str | None:
    """What makes a record's text or metadata unusable, as one line naming the field, or ``None``."""
    if not isinstance(text, str):
        return f"text is a {type(text).__name__}, not a string"
    if not isinstance(metadata, Mapping):
        return f"metadata is a {type(metadata).__name__}, not a mapping of fields"
    if len(text) > limits.max_text_chars:
        return (
            f"text is {len(text):,} characters long, over the limit of {limits.max_text_chars:,}; "
            "split the document, or raise the limit (--max-chars)"
        )
    if not is_valid_unicode(text):
        return "text holds a lone surrogate (not valid Unicode)"
    problem = json_value_problem(metadata, "metadata", limits.max_depth)
    if problem is not None:
        return problem
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        return f"metadata is {size:,} bytes as JSON, over the limit of {limits.max_metadata_bytes:,}"
    return None


def json_value_problem(value: Any, path: str, max_depth: int) -> str | None:
    """The first reason ``value`` is not storable JSON, naming where it is; ``None`` if it is.

    Iterative, so a Python object nested far deeper than the recursion limit is
    reported instead of crashing the check.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, Mapping):
            if depth >= max_depth:
                return f"{where} is nested more than {max_depth} levels deep"
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where} has a {type(key).__name__} key {key!r:.40}; keys must be strings"
                if not is_valid_unicode(key):
                    return f"{where} has a key holding a lone surrogate (not valid Unicode)"
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, (list, tuple)):
            if depth >= max_depth:
                return f"{where} is nested more than {max_depth} levels deep"
            stack.extend((child, f"{where}[{index}]", depth + 1) for index, child in enumerate(item))
        else:
            problem = _scalar_problem(item)
            if problem is not None:
                return f"{where} {problem}"
    return None


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return "is an integer outside the signed 64-bit range"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value}, not a finite number"
    if isinstance(value, str):
        return None if is_valid_unicode(value) else "holds a lone surrogate (not valid Unicode)"
    return f"is a {type(value).__name__}, not a JSON value (string, number, boolean, null, list or object)"


def is_valid_unicode(text: str) -> bool:
    """False for strings holding lone surrogates, which UTF-8 cannot encode.

    The one check of its kind: records here, texts given to ``encode`` in
    :func:`splare_connect.encoding.inputs.validate_texts`.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
