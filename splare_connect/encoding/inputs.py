"""Checks on what callers pass to ``encode``: texts, role and batch size.

They run before any tokenizing, so a bad call fails at once with a message that says
what to change, not deep inside the tokenizer or after a long encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from splare_connect.errors import BadInputError, ConfigError
from splare_connect.record_rules import is_valid_unicode

Role = Literal["query", "document"]
ROLES: tuple[Role, ...] = ("query", "document")


def validate_texts(texts: Sequence[str], *, name: str = "texts") -> list[str]:
    """The texts as a list, after checking that each one is a ``str`` of valid Unicode.

    A bare ``str`` (or ``bytes``) is refused: it is a sequence too, and iterating it
    would encode each character as a text. A lone surrogate (``"\\ud800"``: a Python
    str may hold one, UTF-8 cannot) is refused here, before the tokenizer fails on it
    with a ``TypeError`` that names no text.

    Args:
        texts: The texts.
        name: What the caller calls them, for messages (``documents[3]``).

    Raises:
        BadInputError: ``texts`` is a string or not iterable, or an item is not a
            string or holds a lone surrogate (the message gives its index).
    """
    if isinstance(texts, (str, bytes)):
        raise BadInputError(
            f"expected a sequence of strings, got a single {type(texts).__name__}; wrap it in a list: [text]"
        )
    try:
        items = list(texts)
    except TypeError as exc:
        raise BadInputError(f"expected a sequence of strings, got {type(texts).__name__}") from exc
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise BadInputError(f"{name}[{index}] is a {type(item).__name__}, not a str: {item!r:.80}")
        if not is_valid_unicode(item):
            raise BadInputError(f"{name}[{index}] {_surrogate_problem(item)}")
    return items


def _surrogate_problem(text: str) -> str:
    """Where ``text``'s first lone surrogate is, as the end of a message (``text`` must hold one)."""
    position = next(i for i, char in enumerate(text) if "\ud800" <= char <= "\udfff")
    return (
        f"holds a lone surrogate at position {position} (not valid Unicode); "
        "decode the source with errors='replace', or drop the text"
    )


def check_role(role: str) -> Role:
    """``role`` itself when it is ``"query"`` or ``"document"``.

    Raises:
        ConfigError: Any other value.
    """
    if role not in ROLES:
        raise ConfigError(f"role must be 'query' or 'document', got {role!r}")
    return role  # type: ignore[return-value]


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` itself when it is positive.

    Raises:
        ConfigError: Zero or negative.
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    return batch_size
