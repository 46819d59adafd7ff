"""Reading JSON settings files into frozen dataclasses, naming what is wrong."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from splare_connect.errors import ConfigError


def read_settings(file: Path, cls: type, *, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """The JSON object in ``file``, checked to hold only ``cls``'s field names.

    Raises:
        ``error`` (ConfigError by default): the file is missing, not JSON, not an object,
        or has keys ``cls`` doesn't know (listed with the valid ones).
    """
    if not file.is_file():
        raise error(f"{file} is missing")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{file}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{file}: unknown settings {unknown}; valid ones are {sorted(known)}")
    return data
