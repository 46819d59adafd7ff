"""Reading JSON settings and checkpoint configs, naming what is wrong."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from splare_connect.errors import ConfigError


def read_json_object(file: Path, *, error: type[Exception] = ConfigError, what: str = "file") -> dict[str, Any]:
    """The JSON object in ``file``.

    Raises:
        ``error``: the file is missing (named as ``what``), not JSON, or not an object.
    """
    if not file.is_file():
        raise error(f"missing {what}: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def reject_unknown_keys(cls: type, data: dict[str, Any], source: str, *, error: type[Exception] = ConfigError) -> None:
    """Raise ``error`` naming any key of ``data`` that is not a field of dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{source}: unknown settings {unknown}; valid ones are {sorted(known)}")


def read_settings(file: Path, cls: type, *, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """The JSON object in ``file``, checked to hold only ``cls``'s field names."""
    data = read_json_object(file, error=error, what="settings file")
    reject_unknown_keys(cls, data, str(file), error=error)
    return data
