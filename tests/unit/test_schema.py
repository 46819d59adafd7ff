"""The stored-record schema: its spellings are pinned, because stored collections outlive the code."""

from __future__ import annotations

import json
import uuid

import pytest

from splare_connect.backends.schema import (
    PAYLOAD_FIELDS,
    RECORD_NAMESPACE,
    SPEC_KEY,
    StoredChunk,
    metadata_path,
    point_id,
    pop_record_id,
    stored_payload,
)


def test_payload_keys_kinds_and_order_are_pinned() -> None:
    assert [(f.name, f.kind) for f in PAYLOAD_FIELDS] == [
        ("record_id", "keyword"),
        ("doc_id", "keyword"),
        ("chunk_index", "integer"),
        ("chunk_count", "integer"),
        ("content_hash", "keyword"),
        ("text", "text"),
        ("metadata", "object"),
    ]
    assert SPEC_KEY == "splare_connect" and metadata_path("lang") == "metadata.lang"


def test_a_chunk_is_stored_as_it_always_was() -> None:
    chunk = StoredChunk("ls.1#2", "ls.1", 2, 3, "9f86d081", "list files", {"section": "1"})
    stored = stored_payload(chunk.record_id, chunk.to_payload())
    # The JSON a database keeps, byte for byte: key order included.
    assert json.dumps(stored) == (
        '{"record_id": "ls.1#2", "doc_id": "ls.1", "chunk_index": 2, "chunk_count": 3, '
        '"content_hash": "9f86d081", "metadata": {"section": "1"}, "text": "list files"}'
    )
    assert "text" not in StoredChunk("a#0", "a", 0, 1, "h").to_payload()  # store_text=False
    payload = dict(stored)
    assert pop_record_id(payload) == "ls.1#2" and StoredChunk.from_payload("ls.1#2", payload) == chunk


def test_partial_and_foreign_payloads_read_with_neutral_values() -> None:
    partial = StoredChunk.from_payload("x#0", {"content_hash": "h"})
    assert (partial.doc_id, partial.chunk_index, partial.chunk_count, partial.text, dict(partial.metadata)) == (
        "x#0",
        0,
        None,
        None,
        {},
    )
    assert pop_record_id({"doc_id": "d"}, default="7") == "7"
    with pytest.raises(KeyError):
        pop_record_id({"doc_id": "d"})


def test_point_ids_are_uuid5_of_record_ids() -> None:
    for record_id in ("doc-1#0", "ünïcode/päth.md#12", "", "x" * 1000):
        assert point_id(record_id) == str(uuid.uuid5(RECORD_NAMESPACE, record_id))
    assert point_id("doc-1#0") == "00e6e595-c12a-5709-8243-64144ea25fcb"  # the namespace is fixed forever
