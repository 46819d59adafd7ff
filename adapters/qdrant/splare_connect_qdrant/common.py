"""What both Qdrant engines share: point ids, the stored spec, payload keys, errors.

Point ids are UUIDv5 of the record's string id, so writing the same record twice
replaces it instead of duplicating it, and every writer (resumed runs, parallel
shards) computes the same id. The string id travels in the payload as ``record_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from splare_connect.backends import CollectionSpec
from splare_connect.backends.ids import RECORD_NAMESPACE, record_uuid
from splare_connect.errors import BackendError, EncoderMismatchError
from splare_connect.sparse_vector import SparseVector

POINT_ID_NAMESPACE = RECORD_NAMESPACE
SPEC_KEY = "splare_connect"
RECORD_ID_FIELD = "record_id"
METADATA_FIELD = "metadata"

T = TypeVar("T")


def point_id(record_id: str) -> str:
    """The Qdrant point id of a record id (UUIDv5, shared with every backend)."""
    return record_uuid(record_id)


def spec_to_dict(spec: CollectionSpec) -> dict[str, Any]:
    """JSON form of a CollectionSpec (stored with the collection)."""
    return {
        "sparse_dim": spec.sparse_dim,
        "dense_dim": spec.dense_dim,
        "fingerprint": dict(spec.fingerprint),
        "sparse_vector_name": spec.sparse_vector_name,
        "dense_vector_name": spec.dense_vector_name,
        "idf": spec.idf,
        "indexed_fields": list(spec.indexed_fields),
        "max_weight": spec.max_weight,
    }


def spec_from_dict(name: str, data: Mapping[str, Any]) -> CollectionSpec:
    """Inverse of :func:`spec_to_dict`."""
    return CollectionSpec(
        name=name,
        sparse_dim=int(data["sparse_dim"]),
        dense_dim=None if data.get("dense_dim") is None else int(data["dense_dim"]),
        fingerprint=dict(data["fingerprint"]),
        sparse_vector_name=str(data.get("sparse_vector_name", "splare")),
        dense_vector_name=str(data.get("dense_vector_name", "dense")),
        idf=bool(data.get("idf", False)),
        indexed_fields=tuple(data.get("indexed_fields", ())),
        max_weight=None if data.get("max_weight") is None else float(data["max_weight"]),
    )


def check_same_collection(existing: CollectionSpec, wanted: CollectionSpec) -> None:
    """Refuse to reuse a collection built by another encoder or with other vectors.

    Raises:
        EncoderMismatchError: The encoder fingerprints differ (mixing vector spaces
            corrupts search silently).
        BackendError: Vector shapes or names differ.
    """
    have, want = existing.fingerprint.get("digest"), wanted.fingerprint.get("digest")
    if have != want:
        raise EncoderMismatchError(
            f"collection {wanted.name!r} was built by encoder {existing.fingerprint.get('name')!r} "
            f"(digest {have}), but this encoder is {wanted.fingerprint.get('name')!r} (digest {want}); "
            "use another collection name, or drop this one and ingest again"
        )
    for attribute in ("sparse_dim", "dense_dim", "sparse_vector_name", "dense_vector_name", "idf"):
        if getattr(existing, attribute) != getattr(wanted, attribute):
            raise BackendError(
                f"collection {wanted.name!r} has {attribute}={getattr(existing, attribute)!r}, "
                f"but {getattr(wanted, attribute)!r} was asked for; drop it or use another name"
            )


def check_vector(spec: CollectionSpec, record_id: str, vector: SparseVector) -> None:
    """Refuse a vector whose ids lie outside the collection's latent width."""
    if vector.nnz and int(vector.indices[-1]) >= spec.sparse_dim:
        raise BackendError(
            f"record {record_id!r}: feature id {int(vector.indices[-1])} is outside collection "
            f"{spec.name!r}'s width {spec.sparse_dim}"
        )


def metadata_key(key: str) -> str:
    """Payload path of a metadata field (metadata lives under one key to avoid clashes)."""
    return f"{METADATA_FIELD}.{key}"


def call_engine(action: str, function: Callable[[], T]) -> T:
    """Run an engine call; turn anything it raises, Rust panics included, into BackendError.

    Qdrant Edge reports some bad input with ``pyo3_runtime.PanicException``, a
    ``BaseException`` that ``except Exception`` doesn't catch.
    """
    try:
        return function()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BackendError:
        raise
    except BaseException as exc:
        raise BackendError(f"{action} failed: {type(exc).__name__}: {exc}") from exc
