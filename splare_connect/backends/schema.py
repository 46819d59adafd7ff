"""What every backend stores for a chunk: the payload's keys, its typed record, the spec key, point ids.

One home for the stored-record schema, because the sync engine writes it, the retriever
reads it, and every backend stores, indexes and filters it: a key spelled differently in
one of them would silently break resuming a sync or showing results. Stored data is
forever, so nothing here may change spelling or shape:

- a point's payload is ``{"record_id", "doc_id", "chunk_index", "chunk_count",
  "content_hash", "metadata", "text"?}`` (``text`` only when the sync stores it);
  metadata fields live under ``metadata`` so that they can't clash with these keys, and
  filters address them as ``metadata.<key>``;
- the collection's :class:`~splare_connect.backends.CollectionSpec` is stored under the
  key ``splare_connect`` (Qdrant metadata, OpenSearch mapping ``_meta``);
- a point's database id is the UUIDv5 of its record id (:func:`point_id`).

On a collection another application made (*attached*, :mod:`splare_connect.attach`),
splare-connect writes nothing of the above into the points: it adds its sparse vector,
and one namespaced payload key, ``_splare`` (:data:`STATE_KEY`), holding
``{"hash": <hash of the point's id and the text it encoded>}`` (:func:`text_hash`), which the app's own
code never reads. The spec lives under ``splare_connect`` as for any collection.

Example:
    >>> chunk = StoredChunk("ls.1#0", doc_id="ls.1", chunk_index=0, chunk_count=1, content_hash="9f")
    >>> chunk.to_payload()
    {'doc_id': 'ls.1', 'chunk_index': 0, 'chunk_count': 1, 'content_hash': '9f', 'metadata': {}}
    >>> StoredChunk.from_payload("ls.1#0", chunk.to_payload()) == chunk
    True
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "CHUNK_COUNT",
    "CHUNK_INDEX",
    "CONTENT_HASH",
    "DOC_ID",
    "METADATA",
    "PAYLOAD_FIELDS",
    "RECORD_ID",
    "RECORD_NAMESPACE",
    "SPEC_KEY",
    "STATE_HASH",
    "STATE_KEY",
    "TEXT",
    "FieldKind",
    "PayloadField",
    "StoredChunk",
    "metadata_path",
    "native_point_id",
    "payload_value",
    "point_id",
    "pop_record_id",
    "stored_payload",
    "text_hash",
]

RECORD_ID = "record_id"
DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"
CHUNK_COUNT = "chunk_count"
CONTENT_HASH = "content_hash"
TEXT = "text"
METADATA = "metadata"
SPEC_KEY = "splare_connect"
STATE_KEY = "_splare"  # an attached point's splare-connect state: {"hash": ...}
STATE_HASH = "hash"

# Fixed forever: changing it would re-key every existing collection.
RECORD_NAMESPACE = uuid.UUID("5b1e4f1e-8a4c-4f0e-9d43-2d7c0f5a6e11")
_NAMESPACE_BYTES = RECORD_NAMESPACE.bytes

FieldKind = Literal["keyword", "integer", "text", "object"]
"""How a payload field is searched: exact values, numbers, full text, or nested fields."""

_MISSING: Any = object()


def point_id(record_id: str) -> str:
    """The database id of a record: UUIDv5 (RFC 4122) of ``record_id`` in ``RECORD_NAMESPACE``.

    Writing the same record twice must replace it, and every writer (a resumed run, a
    parallel shard, another machine) must compute the same id, so ids derive from the
    record id alone. Databases that limit id length or want UUIDs (Qdrant, OpenSearch's
    512-byte ``_id``) all accept it. Computed with hashlib directly: the same value as
    ``uuid.uuid5`` at a quarter of its cost, which matters when ingesting hundreds of
    thousands of points.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + record_id.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def text_hash(point: int | str, text: str) -> str:
    """The hash an attached point's state records of the text encoded for it (32 hex digits).

    A re-run compares it with the hash of the point's text now: equal (and the vector
    there) means the stored vector is current. The point's own id is hashed with the
    text, so a state an app copies from another point (a payload copied onto a point
    that keeps its old vector) never matches. ``surrogatepass`` lets any Python string
    be hashed; a text that has lone surrogates is refused before it is encoded anyway.
    """
    key = str(point).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(b"%d:" % len(key) + key + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def payload_value(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted payload path (``"metadata.source"``), or None when any step is missing."""
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def native_point_id(text: str) -> int | str:
    """A Qdrant point id from its string form: Qdrant ids are unsigned integers or UUIDs.

    Hits carry ids as strings; an attached collection's points keep the app's own ids,
    and ``"42"`` must go back to the database as the integer 42. Only ASCII digits make
    an integer: ``"²"`` and other Unicode digits pass ``isdigit()`` but not ``int()``.
    """
    return int(text) if text.isascii() and text.isdigit() else text


def metadata_path(key: str) -> str:
    """Payload path of a metadata field (``metadata.<key>``), as filters and indexes name it."""
    return f"{METADATA}.{key}"


def stored_payload(record_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a backend stores beside the vectors: the record id first, then the point's payload.

    The record id travels in the payload because databases key points by
    :func:`point_id`, which can't be turned back into the record id.
    """
    return {RECORD_ID: record_id, **payload}


def pop_record_id(payload: dict[str, Any], default: str = _MISSING) -> str:
    """Remove the record id from a stored payload and return it (``default`` when absent).

    Raises:
        KeyError: The payload has no record id and no ``default`` was given.
    """
    if default is _MISSING:
        return str(payload.pop(RECORD_ID))
    return str(payload.pop(RECORD_ID)) if RECORD_ID in payload else default


@dataclass(frozen=True)
class StoredChunk:
    """One stored chunk's payload, typed.

    Each field's ``kind`` says how databases index it (OpenSearch's mapping is built from
    :data:`PAYLOAD_FIELDS`). Field order is the mapping's order.

    Attributes:
        record_id: ``"<doc id>#<chunk>"``, the point's string id.
        doc_id: The source document's id.
        chunk_index: Which chunk of the document this is, from 0.
        chunk_count: How many chunks the document has; a sync counts a document as done
            only when all of them are stored. ``None`` when unknown.
        content_hash: Hash of the document's text and metadata when it was encoded; a sync
            re-encodes the document when it changes. ``None`` when unknown.
        text: The chunk's text, when the collection stores text.
        metadata: The document's other fields, stored under ``metadata``.
    """

    record_id: str = field(metadata={"kind": "keyword"})
    doc_id: str = field(metadata={"kind": "keyword"})
    chunk_index: int = field(default=0, metadata={"kind": "integer"})
    chunk_count: int | None = field(default=None, metadata={"kind": "integer"})
    content_hash: str | None = field(default=None, metadata={"kind": "keyword"})
    text: str | None = field(default=None, metadata={"kind": "text"})
    metadata: Mapping[str, Any] = field(default_factory=dict, metadata={"kind": "object"})

    def to_payload(self) -> dict[str, Any]:
        """The point's payload (without ``record_id``, which :func:`stored_payload` adds).

        Keys are in the order the sync engine has always written them; ``text`` is left
        out when ``None`` (collections made with ``store_text=False``).
        """
        payload: dict[str, Any] = {
            DOC_ID: self.doc_id,
            CHUNK_INDEX: self.chunk_index,
            CHUNK_COUNT: self.chunk_count,
            CONTENT_HASH: self.content_hash,
            METADATA: dict(self.metadata),
        }
        if self.text is not None:
            payload[TEXT] = self.text
        return payload

    @classmethod
    def from_payload(cls, record_id: str, payload: Mapping[str, Any]) -> StoredChunk:
        """Read a payload back; missing keys (a partial read, a foreign point) get neutral values.

        A missing ``doc_id`` means the record is its own document; missing metadata is
        empty; a missing chunk count or hash is ``None``, which never matches a real one.
        """
        count = payload.get(CHUNK_COUNT)
        content_hash = payload.get(CONTENT_HASH)
        return cls(
            record_id=record_id,
            doc_id=str(payload.get(DOC_ID, record_id)),
            chunk_index=int(payload.get(CHUNK_INDEX, 0)),
            chunk_count=None if count is None else int(count),
            content_hash=None if content_hash is None else str(content_hash),
            text=payload.get(TEXT),
            metadata=payload.get(METADATA) or {},
        )


@dataclass(frozen=True)
class PayloadField:
    """A stored payload key and how it is indexed."""

    name: str
    kind: FieldKind


PAYLOAD_FIELDS: tuple[PayloadField, ...] = tuple(PayloadField(f.name, f.metadata["kind"]) for f in fields(StoredChunk))
"""Every key a stored payload can hold, ``record_id`` included, in mapping order."""
