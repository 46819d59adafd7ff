"""Backend settings from the command line and the environment, declared by each backend.

A backend package declares the settings a user may change as ``BACKEND_OPTIONS``: a mapping
from the factory's keyword to a :class:`BackendOption` (how to read it from text, and what
it does). The CLI takes ``--backend-option KEY=VALUE`` (or ``$SPLARE_BACKEND_OPTIONS``,
space-separated), and :func:`parse_backend_options` turns those strings into typed keyword
arguments for the factory, refusing unknown keys and unreadable values with one line that
names the key. Secrets are never options: they come from the environment only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splare_connect.errors import ConfigError


@dataclass(frozen=True)
class BackendOption:
    """One setting a backend accepts: how its text is read, and what it does (for ``--help``)."""

    read: Callable[[str], Any]
    help: str


def parse_backend_options(pairs: Sequence[str], declared: Mapping[str, BackendOption], backend: str) -> dict[str, Any]:
    """``["replicas=0", ...]`` to ``{"replicas": 0}``, checked against what ``backend`` declares.

    Raises:
        ConfigError: A pair is not ``KEY=VALUE``, the key is not declared (the message
            lists the ones that are), or the value can't be read (the message says how).
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ConfigError(f"backend option {pair!r} must look like KEY=VALUE")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"backend {backend!r} has no option {key!r}; its options: {known}")
        try:
            options[key] = declared[key].read(text.strip())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend option {key}={text!r}: {exc}") from None
    return options


def read_bool(text: str) -> bool:
    """``true``/``false`` (also yes/no, on/off, 1/0)."""
    lowered = text.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


def read_count(minimum: int = 0) -> Callable[[str], int]:
    """A reader of whole numbers of at least ``minimum``."""

    def read(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"expected a whole number of at least {minimum}")
        return value

    return read


def read_positive(text: str) -> float:
    """A positive, finite number."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a positive number")
    return value


def read_choice(*choices: str) -> Callable[[str], str]:
    """A reader of one of ``choices``."""

    def read(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return read
