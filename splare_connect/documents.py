"""Where documents come from: JSONL files, directories of text files, Python iterables.

Readers yield either a :class:`Document` or a :class:`BadRecordError` describing a
record that can't be used (with its file and line), so one bad line never costs the
good records beside it: the sync engine reports and skips the errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splare_connect.errors import BadRecordError, ConfigError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".text")


@dataclass(frozen=True)
class Document:
    """One source document.

    Attributes:
        id: Stable unique id (the JSONL ``id``/``_id``, or a file's relative path).
        text: The text to encode (a BEIR ``title`` is put in front of ``text``).
        metadata: Other fields, stored as payload and usable in filters.
        source: File the document came from, for error messages.
        line: Line number in ``source``, for JSONL.
    """

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    line: int | None = None

    @property
    def content_hash(self) -> str:
        """Hash of text and metadata: sync re-encodes a document only when this changes."""
        blob = json.dumps(
            {"text": self.text, "metadata": self.metadata}, sort_keys=True, ensure_ascii=False, default=str
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def read_source(path: str | Path) -> Iterator[Document | BadRecordError]:
    """Read a JSONL file or a directory of text/markdown files.

    Raises:
        ConfigError: The path doesn't exist or is neither a ``.jsonl`` file nor a directory.
    """
    location = Path(path)
    if location.is_dir():
        return read_directory(location)
    if location.is_file() and location.suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(location)
    if not location.exists():
        raise ConfigError(f"source not found: {location}")
    raise ConfigError(f"{location}: expected a .jsonl file or a directory of {', '.join(TEXT_SUFFIXES)} files")


def read_jsonl(path: str | Path) -> Iterator[Document | BadRecordError]:
    """Documents from a JSONL file: one object per line with ``id`` (or BEIR ``_id``) and ``text``.

    ``title`` (BEIR) is prepended to ``text`` and also kept as metadata; every other
    field becomes metadata. Blank lines are ignored.
    """
    source = str(path)
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRecordError(f"invalid UTF-8 at byte {exc.start}", source=source, line=number)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadRecordError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source, line=number)
                continue
            yield document_from_record(record, source=source, line=number)


def read_directory(path: str | Path) -> Iterator[Document | BadRecordError]:
    """Documents from text/markdown files under a directory; the id is the relative path."""
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
        relative = file.relative_to(root).as_posix()
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            yield BadRecordError(f"invalid UTF-8 at byte {exc.start}", source=str(file), record_id=relative)
            continue
        yield Document(id=relative, text=text, metadata={"path": relative}, source=str(file))


def read_iterable(items: Iterable[Any]) -> Iterator[Document | BadRecordError]:
    """Documents from Python objects: Documents, dicts shaped like JSONL records, or errors."""
    for position, item in enumerate(items):
        if isinstance(item, (Document, BadRecordError)):
            yield item
        else:
            yield document_from_record(item, source="<iterable>", line=position + 1)


def document_from_record(record: Any, *, source: str, line: int) -> Document | BadRecordError:
    """Validate one record and turn it into a Document (or say what's wrong)."""
    if not isinstance(record, dict):
        return BadRecordError(f"expected a JSON object, got {type(record).__name__}", source=source, line=line)
    raw_id = record.get("id", record.get("_id"))
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return BadRecordError("record has no id (expected 'id' or '_id')", source=source, line=line)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        return BadRecordError(f"id must be a string or integer, got {type(raw_id).__name__}", source=source, line=line)
    doc_id = str(raw_id)
    text = record.get("text")
    if not isinstance(text, str):
        kind = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return BadRecordError(f"text is {kind}", source=source, line=line, record_id=doc_id)
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        return BadRecordError("title is not a string", source=source, line=line, record_id=doc_id)
    metadata = {k: v for k, v in record.items() if k not in ("id", "_id", "text")}
    if title:
        text = f"{title}\n{text}"
    return Document(id=doc_id, text=text, metadata=metadata, source=source, line=line)
