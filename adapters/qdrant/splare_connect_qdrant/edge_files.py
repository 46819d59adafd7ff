"""The embedded engine's files: the collection description, and disk failures told in one line.

Qdrant Edge has no collection metadata, so each collection's
:class:`~splare_connect.backends.CollectionSpec` is a ``collection.json`` beside its
shard, replaced atomically so a reader sees the old file or the new one. Everything
that can go wrong on disk (a damaged description, a file where a directory should be, a
read-only mount) is reported as one :class:`BackendError` line naming the path.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from splare_connect.backends import CollectionSpec
from splare_connect.errors import BackendError

SPEC_FILE = "collection.json"


def read_spec_file(spec_file: Path, name: str) -> CollectionSpec | None:
    """The spec in ``spec_file``, or None when there is no such file.

    Raises:
        BackendError: The file can't be read or is damaged (one line saying what is wrong).
    """
    if not spec_file.is_file():
        return None
    with on_disk(f"reading collection {name!r}"):
        raw = spec_file.read_bytes()
    return parse_spec(spec_file, name, raw)


def parse_spec(spec_file: Path, name: str, raw: bytes) -> CollectionSpec:
    """The CollectionSpec in ``collection.json``, or a one-line error saying what is wrong with it."""
    problem: str
    if not raw.strip():
        problem = "empty file"
    else:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 text: byte {exc.start}"
        except json.JSONDecodeError as exc:
            problem = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        else:
            if not isinstance(data, dict):
                problem = f"a JSON {type(data).__name__}, not an object"
            else:
                try:
                    return CollectionSpec.from_dict(name, data)
                except KeyError as exc:
                    problem = f"no {exc.args[0]!r} field"
                except (TypeError, ValueError) as exc:
                    problem = f"bad field value: {exc}"
    raise BackendError(f"{spec_file}: damaged collection description ({problem}); restore it or drop the collection")


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` beside ``path`` and rename it into place, so readers never see half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


@contextmanager
def on_disk(action: str) -> Iterator[None]:
    """Report a failed filesystem call as one line naming the path and the problem, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise BackendError(f"{action} failed: {disk_problem(exc)}") from exc


def disk_problem(exc: OSError) -> str:
    """``path: problem`` for an OSError, naming the regular file that stands where a directory should be."""
    path = Path(exc.filename) if exc.filename else None
    if path is not None and exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{path}: " + ("is" if blocker == path else f"{blocker} is") + " a file, not a directory"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (the embedded engine needs a writable data directory, even to search)"
    return f"{path}: {reason}" if path is not None else reason
