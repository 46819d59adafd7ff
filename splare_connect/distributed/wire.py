"""Write batches and encoded vectors as plain rows, for sending to worker processes and back.

A Ray Data row holds strings, bytes and numbers well; documents with arbitrary metadata
and variable-length sparse vectors do not fit a table's columns, so a write batch
travels as one JSON string and its vectors as packed arrays. Both round-trip exactly:
float32 values and the documents' content hashes come back bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from splare_connect.chunking import Chunk
from splare_connect.documents import Document
from splare_connect.errors import ConfigError
from splare_connect.sparse_vector import SparseVector
from splare_connect.sync import WriteBatch


def batch_to_json(batch: WriteBatch) -> str:
    """One write batch (documents and their chunks) as JSON.

    Raises:
        ConfigError: A document's metadata holds a value JSON cannot carry (possible only
            for Python iterables as the source; files give JSON values).
    """
    documents = []
    for document, chunks in batch:
        documents.append(
            {
                "id": document.id,
                "text": document.text,
                "metadata": dict(document.metadata),
                "source": document.source,
                "line": document.line,
                "chunks": [[c.record_id, c.index, c.count, c.text, c.start] for c in chunks],
            }
        )
    try:
        return json.dumps(documents, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"a distributed ingest sends metadata as JSON, and a value cannot be sent: {error}") from None


def batch_from_json(text: str) -> WriteBatch:
    """The write batch :func:`batch_to_json` wrote."""
    batch: WriteBatch = []
    for item in json.loads(text):
        document = Document(
            id=item["id"], text=item["text"], metadata=item["metadata"], source=item["source"], line=item["line"]
        )
        chunks = [
            Chunk(record_id=rid, doc_id=document.id, index=index, count=count, text=chunk_text, start=start)
            for rid, index, count, chunk_text, start in item["chunks"]
        ]
        batch.append((document, chunks))
    return batch


def pack_vectors(sparse: Sequence[SparseVector], dense: npt.NDArray[np.float32] | None) -> dict[str, Any]:
    """Sparse vectors (and dense rows) as four byte strings and the width."""
    lengths = np.array([v.nnz for v in sparse], np.int64)
    return {
        "dim": sparse[0].dim if sparse else 0,
        "lengths": lengths.tobytes(),
        "indices": np.concatenate([v.indices for v in sparse] or [np.zeros(0, np.uint32)]).tobytes(),
        "values": np.concatenate([v.values for v in sparse] or [np.zeros(0, np.float32)]).tobytes(),
        "dense": b"" if dense is None else np.ascontiguousarray(dense, np.float32).tobytes(),
    }


def unpack_vectors(row: dict[str, Any]) -> tuple[list[SparseVector], npt.NDArray[np.float32] | None]:
    """The vectors :func:`pack_vectors` packed."""
    lengths = np.frombuffer(row["lengths"], np.int64)
    indices = np.frombuffer(row["indices"], np.uint32)
    values = np.frombuffer(row["values"], np.float32)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    dim = int(row["dim"])
    sparse = [SparseVector(indices[s:e], values[s:e], dim) for s, e in zip(starts, ends, strict=True)]
    dense = None
    if len(row["dense"]):
        dense = np.frombuffer(row["dense"], np.float32).reshape(len(sparse), -1)
    return sparse, dense
