"""Where documents come from: JSONL, JSON and Parquet files, directories of text files, Python iterables.

Readers yield either a :class:`Document` or a :class:`BadRecordError` describing a
record that can't be used (with its file and line), so one bad line never costs the
good records beside it: the sync engine reports and skips the errors.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from splare_connect.errors import BadRecordError, ConfigError, MissingDependencyError
from splare_connect.record_rules import INT64_MAX, INT64_MIN

LOGGER = logging.getLogger(__name__)
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".text")
# Left out of directory sources with hidden files, unless asked for (some are not hidden by name).
VCS_FOLDERS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"})


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

    @cached_property
    def content_hash(self) -> str:
        """Hash of text and metadata: sync re-encodes a document only when this changes.

        Cached: sync reads it to compare with the stored state and again for every chunk it writes.
        """
        blob = json.dumps(
            {"text": self.text, "metadata": self.metadata}, sort_keys=True, ensure_ascii=False, default=str
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def read_source(
    path: str | Path,
    *,
    include_hidden: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
) -> Iterator[Document | BadRecordError]:
    """Read a JSONL file, a ``.json`` file holding an array of records, a Parquet file, or a directory of text files.

    Args:
        path: The file or directory.
        include_hidden: For a directory: also read hidden files and folders (names starting
            with ``.``, such as ``.git``), which are left out by default.
        on_skip: For a directory: called with ``(relative path, reason)`` for each file
            left out (hidden, or a link leading outside the directory).

    Raises:
        ConfigError: The path doesn't exist or is neither a ``.jsonl``/``.json`` file nor a directory.
    """
    location = Path(path)
    if location.is_dir():
        return read_directory(location, include_hidden=include_hidden, on_skip=on_skip)
    if location.is_file() and location.suffix in (".jsonl", ".ndjson"):
        return read_jsonl(location)
    if location.is_file() and location.suffix == ".json":
        return read_json(location)
    if location.is_file() and location.suffix == ".parquet":
        return read_parquet(location)
    if not location.exists():
        raise ConfigError(f"source not found: {location}")
    raise ConfigError(
        f"{location}: expected a .jsonl, .json or .parquet file or a directory of {', '.join(TEXT_SUFFIXES)} files"
    )


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
                record = parse_json(line)
            except ValueError as exc:
                yield BadRecordError(str(exc), source=source, line=number)
                continue
            yield document_from_record(record, source=source, line=number)


def read_json(path: str | Path) -> Iterator[Document | BadRecordError]:
    """Documents from a ``.json`` file: an array of records, or JSONL under a ``.json`` name.

    A pretty-printed array spans many lines, none of which is a record by itself; it is
    read as one value, and each record is reported by the line where it starts.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        yield BadRecordError(f"invalid UTF-8 at byte {exc.start}", source=source)
        return
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        yield from read_jsonl(path)
        return
    yield from _read_array(text, start + 1, source)


def read_parquet(path: str | Path, *, rows_per_read: int = 1024) -> Iterator[Document | BadRecordError]:
    """Documents from a Parquet file: one row per record, with the fields of a JSONL record.

    A record's ``line`` is its row number (1-based). Values JSON has no type for are
    stored as JSON ones, so that payloads and content hashes are the same whatever
    the file format: dates and times as ISO 8601 strings, decimals as strings (a float32
    column is read as the nearest double, which may hash apart from its JSONL text). A row
    holding binary data or a non-finite number is a bad record; a file that cannot be
    read (not Parquet, a damaged page) is one bad record without an id, which stops
    ``--delete-missing`` from taking its unread rows for deleted documents.

    Raises:
        MissingDependencyError: pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            "reading Parquet needs pyarrow: pip install pyarrow (or splare-connect[ray], which brings it)"
        ) from exc
    source = str(path)
    row = 0
    try:
        for batch in pyarrow.parquet.ParquetFile(source).iter_batches(batch_size=rows_per_read):
            try:
                records = batch.to_pylist()
            except (ValueError, OverflowError, pyarrow.ArrowException) as exc:  # a date out of Python's range
                first, row = row + 1, row + batch.num_rows
                message = f"cannot read rows {first}-{row}: {' '.join(str(exc).split())}"
                yield BadRecordError(message, source=source)  # no ids known: nothing is deleted
                continue
            for record in records:
                row += 1
                try:
                    values = parse_json(json.dumps(record, default=_json_value, ensure_ascii=False))
                except (TypeError, ValueError) as exc:
                    yield BadRecordError(str(exc), source=source, line=row)
                    continue
                yield document_from_record(values, source=source, line=row)
    except (OSError, pyarrow.ArrowException) as exc:
        where = f"after row {row}" if row else "at the start"
        yield BadRecordError(f"cannot read Parquet {where}: {' '.join(str(exc).split())}", source=source)


def _json_value(value: Any) -> Any:
    """A JSON value for a Parquet value JSON has no type for."""
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    kind = "binary data" if isinstance(value, (bytes, bytearray)) else f"a {type(value).__name__} value"
    raise TypeError(f"{kind} has no JSON form and cannot be stored")


def _read_array(text: str, position: int, source: str) -> Iterator[Document | BadRecordError]:
    """Walk a JSON array item by item, so each record gets its own line number and errors."""
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)
    line, counted_to = 1, 0

    def line_at(offset: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, offset)
        counted_to = offset
        return line

    position = _skip_space(text, position)
    if text.startswith("]", position):
        return
    while True:
        where = line_at(position)
        try:
            record, position = decoder.raw_decode(text, position)
        except (RecursionError, ValueError) as exc:
            # One bad item costs only itself: skip to where the next item begins.
            message = _too_deep() if isinstance(exc, RecursionError) else _json_error(exc)
            yield BadRecordError(message, source=source, line=where)
            position = _end_of_item(text, position)
        else:
            yield document_from_record(record, source=source, line=where)
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
            continue
        if text.startswith("]", position) and not text[position + 1 :].strip():
            return
        yield BadRecordError(
            "invalid JSON: expected ',' or the end of the array; the rest cannot be read",
            source=source,
            line=line_at(position),
        )
        return


def _end_of_item(text: str, position: int) -> int:
    """Where the array item starting at ``position`` ends: the ``,`` or ``]`` after it, or the end.

    A plain scan for brackets outside strings, so it also gets past items that the
    decoder cannot read (nesting past the recursion limit, a 5,000-digit number, NaN).
    """
    depth, in_string, index = 0, False, position
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return index
            depth -= 1
        elif char == "," and depth == 0:
            return index
        index += 1
    return index


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def parse_json(line: str) -> Any:
    """``json.loads`` for untrusted input: every failure is a ValueError with a one-line message.

    NaN and Infinity (which Python's json accepts, but JSON does not) are refused; a value
    nested deeper than Python's recursion limit is reported instead of raising RecursionError.
    """
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(_too_deep()) from None
    except ValueError as exc:
        raise ValueError(_json_error(exc)) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _json_error(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        where = f"column {error.colno}" if error.lineno == 1 else f"line {error.lineno}, column {error.colno}"
        return f"invalid JSON: {error.msg} ({where})"
    return f"invalid JSON: {error}"


def _too_deep() -> str:
    return "invalid JSON: nested too deeply to read"


def read_directory(
    path: str | Path,
    *,
    include_hidden: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
) -> Iterator[Document | BadRecordError]:
    """Documents from text/markdown files under a directory; the id is the relative path.

    The walk stays inside the directory: a link leading outside it is not read (its
    target's content would become searchable), and linked folders are not followed.
    Hidden files and folders (``.git``, ``.env`` ...) and version-control folders are
    left out unless ``include_hidden``, also when a link inside the tree points at them.
    Each file left out is passed to ``on_skip`` as ``(relative path, reason)`` and
    logged. A folder that cannot be listed is a bad record without an id, so that
    ``--delete-missing`` does not take its files for deleted ones.
    """
    root = Path(path)
    real_root = root.resolve()

    def skip(relative: str, reason: str) -> None:
        LOGGER.info("not reading %s: %s", relative, reason)
        if on_skip is not None:
            on_skip(relative, reason)

    unlistable: list[OSError] = []
    readable: list[tuple[str, Path]] = []
    for folder, subfolders, files in os.walk(root, followlinks=False, onerror=unlistable.append):
        here = Path(folder)
        kept = []
        for name in sorted(subfolders):
            relative = (here / name).relative_to(root).as_posix()
            if not include_hidden and _is_hidden(name):
                skip(relative + "/", "hidden or version-control folder (--include-hidden reads it)")
            elif (here / name).is_symlink():
                skip(relative + "/", "linked folder, not followed")
            else:
                kept.append(name)
        subfolders[:] = kept
        for name in sorted(files):
            file = here / name
            relative = file.relative_to(root).as_posix()
            if file.suffix.lower() not in TEXT_SUFFIXES:
                continue
            reason = _why_not_read(file, name, real_root, include_hidden)
            if reason is not None:
                skip(relative, reason)
            else:
                readable.append((relative, file))
    for error in unlistable:
        yield BadRecordError(f"cannot list this folder: {error.strerror}", source=str(error.filename))
    for relative, file in sorted(readable):
        yield _read_text_file(file, relative)


def _why_not_read(file: Path, name: str, real_root: Path, include_hidden: bool) -> str | None:
    """Why a text file under the root is left out, or None to read it."""
    if not include_hidden and _is_hidden(name):
        return "hidden file (--include-hidden reads it)"
    try:
        target = file.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, or a loop of links
        return "link that leads nowhere (missing target, or a loop)"
    if not target.is_relative_to(real_root):
        return "link to a file outside the directory"
    if not include_hidden and any(_is_hidden(part) for part in target.relative_to(real_root).parts):
        return "link to a hidden file (--include-hidden reads it)"
    if not target.is_file():
        return "not a regular file"
    return None


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in VCS_FOLDERS


def _read_text_file(file: Path, relative: str) -> Document | BadRecordError:
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadRecordError(f"invalid UTF-8 at byte {exc.start}", source=str(file), record_id=relative)
    except OSError as exc:
        return BadRecordError(f"cannot read: {exc.strerror}", source=str(file), record_id=relative)
    return Document(id=relative, text=text, metadata={"path": relative}, source=str(file))


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
    if raw_id is None:
        return BadRecordError("record has no id (expected 'id' or '_id')", source=source, line=line)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        return BadRecordError(f"id must be a string or integer, got {type(raw_id).__name__}", source=source, line=line)
    if isinstance(raw_id, int) and not INT64_MIN <= raw_id <= INT64_MAX:
        return BadRecordError("id is an integer outside the signed 64-bit range", source=source, line=line)
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
