"""A Qdrant server (or qdrant-client's local mode) through qdrant-client.

Writes are split into batches capped by count and by estimated JSON size (a server
refuses bodies over 32 MB by default; a 300-non-zero point is ~7.6 KB). Every request
is retried on timeouts, connection errors, 429 and 5xx by
:func:`splare_connect.backends.retrying.retry_call`: after the server's ``Retry-After``
on a 429 (qdrant-client raises ``ResourceExhaustedResponse`` for those), with
exponential backoff otherwise, within ``max_attempts`` tries and a ``retry_deadline``.
The CollectionSpec is stored in the collection's ``metadata`` (Qdrant 1.16+).

qdrant-client's local mode (``location=":memory:"`` or ``path=...``) implements the
same API in Python; the tests use it for this code path, since no server runs there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from splare_connect.backends import CollectionSpec, Fusion, Hit, PointRecord, create_or_adopt
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, check_seconds, parse_retry_after, retry_call
from splare_connect.backends.schema import RECORD_ID, SPEC_KEY, metadata_path, point_id, stored_payload
from splare_connect.errors import BackendError
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.common import call_engine, check_vector, to_hits
from splare_connect_qdrant.filters import to_client_filter

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BATCH_POINTS = 256
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
_SCROLL_PAGE = 1000
_RETRY_STATUS = {429, 500, 502, 503, 504}
_BAD_RETRY_AFTER = "Retry-After header value is not a valid integer: "  # qdrant-client's message for a 429


def _is_transport_failure(error: BaseException) -> bool:
    """A timeout or a dropped connection: the request may succeed if sent again."""
    import httpx

    return isinstance(error, (httpx.TransportError, TimeoutError, ConnectionError))


def is_retryable(error: BaseException) -> bool:
    """Timeouts, dropped connections, 429 and 5xx are worth retrying; 4xx and bad replies are not.

    qdrant-client reports a 429 carrying ``Retry-After`` as ``ResourceExhaustedResponse``
    (or, when that header is not an integer, as a ``QdrantException`` saying so), other
    statuses as ``UnexpectedResponse``, and wraps both transport failures and
    unparseable 200 replies in ``ResponseHandlingException``: only the former are
    transient, a malformed reply would come back the same.
    """
    from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return True
    if isinstance(error, QdrantException):
        return _BAD_RETRY_AFTER in str(error)
    if isinstance(error, UnexpectedResponse):
        return error.status_code in _RETRY_STATUS
    if isinstance(error, ResponseHandlingException):
        return _is_transport_failure(error.source)
    return _is_transport_failure(error)


def retry_after(error: BaseException) -> float | None:
    """Seconds a 429 asked to wait: ``ResourceExhaustedResponse.retry_after_s`` or the header.

    qdrant-client only understands whole seconds; for "1.5" or an HTTP date it raises
    a ``QdrantException`` quoting the value, which is read from its message.
    """
    from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
    from qdrant_client.http.exceptions import UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return float(error.retry_after_s)
    if isinstance(error, UnexpectedResponse) and error.status_code == 429:
        return parse_retry_after(error.headers.get("retry-after"))
    if isinstance(error, QdrantException) and _BAD_RETRY_AFTER in str(error):
        return parse_retry_after(str(error).split(_BAD_RETRY_AFTER, 1)[1])
    return None


def describe(error: BaseException) -> str:
    """A short description of a request failure for retry warnings and give-up errors."""
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return f"rate limited (HTTP 429, Retry-After: {error.retry_after_s} s): {error}"
    if isinstance(error, UnexpectedResponse):
        limited = "rate limited, " if error.status_code == 429 else ""
        body = error.content[:200].decode("utf-8", "replace")
        return f"{limited}HTTP {error.status_code} {error.reason_phrase}: {body}"
    if isinstance(error, ResponseHandlingException):
        error = error.source
    return f"{type(error).__name__}: {error}"


def estimated_json_bytes(record: PointRecord) -> int:
    """Rough size of a point in a REST upsert body (ids ~10 B, weights ~12 B each)."""
    dense = 0 if record.dense is None else 20 * len(record.dense)
    payload = len(json.dumps(record.payload, ensure_ascii=False, default=str).encode())
    return 200 + 24 * record.sparse.nnz + dense + payload


def batches_by_size(points: Sequence[PointRecord], max_points: int, max_bytes: int) -> Iterator[list[PointRecord]]:
    """Split points into batches of at most ``max_points`` points and ~``max_bytes`` bytes."""
    batch: list[PointRecord] = []
    size = 0
    for record in points:
        record_size = estimated_json_bytes(record)
        if batch and (len(batch) >= max_points or size + record_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


class ServerBackend:
    """Qdrant through qdrant-client: a server by URL, or local mode for tests.

    Args:
        client: A ``qdrant_client.QdrantClient``.
        max_batch_points: Points per upsert request.
        max_batch_bytes: Estimated JSON bytes per upsert request.
        max_attempts: Tries per request before giving up.
        backoff_seconds: First retry delay; doubles each time (capped at 30 s). A 429's
            ``Retry-After`` replaces it (capped at 60 s).
        retry_deadline: Seconds after a request's first try past which it is not
            retried (None: 120 s). Worst case per request: about this plus one timeout.
    """

    def __init__(
        self,
        client: Any,
        *,
        max_batch_points: int = DEFAULT_BATCH_POINTS,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
        retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    ) -> None:
        self.client = client
        self.max_batch_points = max_batch_points
        self.max_batch_bytes = max_batch_bytes
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.retry_deadline = check_seconds("retry_deadline", retry_deadline, DEFAULT_RETRY_DEADLINE)
        self._specs: dict[str, CollectionSpec] = {}

    def _call(
        self, action: str, function: Callable[[], T], *, rejects_data: Callable[[BaseException], bool] | None = None
    ) -> T:
        """Run a request under the retry policy; any failure becomes a one-line, redacted BackendError."""
        return call_engine(
            action,
            lambda: retry_call(
                action,
                function,
                is_retryable=is_retryable,
                retry_after=retry_after,
                describe=describe,
                max_attempts=self.max_attempts,
                backoff_seconds=self.backoff_seconds,
                deadline=self.retry_deadline,
                logger=LOGGER,
            ),
            rejects_data=rejects_data,
        )

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with its spec in metadata, or check an existing one."""
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        vectors = (
            {spec.dense_vector_name: models.VectorParams(size=spec.dense_dim, distance=models.Distance.COSINE)}
            if spec.dense_dim
            else {}
        )
        sparse = {
            spec.sparse_vector_name: models.SparseVectorParams(modifier=models.Modifier.IDF if spec.idf else None)
        }
        self._call(
            f"creating collection {spec.name!r}",
            lambda: self.client.create_collection(
                spec.name,
                vectors_config=vectors,
                sparse_vectors_config=sparse,
                metadata={SPEC_KEY: spec.to_dict()},
            ),
        )
        for field in (metadata_path(f) for f in spec.indexed_fields):
            self._call(
                f"indexing payload field {field!r}",
                lambda field=field: self.client.create_payload_index(
                    spec.name, field, field_schema=models.PayloadSchemaType.KEYWORD
                ),
            )
        self._specs[spec.name] = spec

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The spec stored in the collection's metadata, or None if it doesn't exist."""
        if name in self._specs:
            return self._specs[name]
        if not self._call(f"checking {name!r}", lambda: self.client.collection_exists(name)):
            return None
        info = self._call(f"reading {name!r}", lambda: self.client.get_collection(name))
        stored = (info.config.metadata or {}).get(SPEC_KEY)
        if stored is None:
            raise BackendError(
                f"collection {name!r} exists but was not created by splare-connect (no {SPEC_KEY!r} metadata)"
            )
        spec = CollectionSpec.from_dict(name, stored)
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        """Collection names on the server."""
        response = self._call("listing collections", self.client.get_collections)
        return sorted(c.name for c in response.collections)

    def drop_collection(self, name: str) -> None:
        """Delete a collection."""
        self._specs.pop(name, None)
        self._call(f"dropping {name!r}", lambda: self.client.delete_collection(name))

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Upsert in size-capped batches, each retried with backoff."""
        from qdrant_client import models

        spec = self._spec(collection)
        for batch in batches_by_size(points, self.max_batch_points, self.max_batch_bytes):
            for record in batch:
                check_vector(spec, record.id, record.sparse)
            # Building the structs validates the payloads (pydantic), which can refuse them.
            structs = call_engine(
                f"preparing {len(batch)} points for {collection!r}",
                lambda batch=batch: [_point_struct(spec, record, models) for record in batch],
                rejects_data=lambda error: True,
            )
            self._call(
                f"upserting {len(structs)} points into {collection!r}",
                lambda structs=structs: self.client.upsert(collection, points=structs, wait=True),
                rejects_data=_refuses_data,
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by record id."""
        from qdrant_client import models

        for start in range(0, len(ids), 1000):
            selector = models.PointIdsList(points=[point_id(i) for i in ids[start : start + 1000]])
            self._call(
                f"deleting points from {collection!r}",
                lambda selector=selector: self.client.delete(collection, points_selector=selector, wait=True),
            )

    def finalize(self, collection: str) -> None:
        """Nothing to do: a server optimises in the background and writes waited for completion."""
        self._spec(collection)

    # ------------------------------------------------------------------- reads
    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's record id with the named payload fields."""
        wanted = [RECORD_ID, *fields]
        offset = None
        while True:
            records, offset = self._call(
                f"scrolling {collection!r}",
                lambda offset=offset: self.client.scroll(
                    collection, limit=_SCROLL_PAGE, offset=offset, with_payload=wanted, with_vectors=False
                ),
            )
            for record in records:
                payload = dict(record.payload or {})
                yield str(payload.pop(RECORD_ID)), payload
            if offset is None:
                return

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by record id."""
        spec = self._spec(collection)
        records = self._call(
            f"retrieving from {collection!r}",
            lambda: self.client.retrieve(
                collection,
                ids=[point_id(i) for i in ids],
                with_payload=[RECORD_ID],
                with_vectors=[spec.sparse_vector_name],
            ),
        )
        result = {}
        for record in records:
            stored = record.vector[spec.sparse_vector_name]
            result[str(record.payload[RECORD_ID])] = SparseVector(
                np.asarray(stored.indices, np.uint32), np.asarray(stored.values, np.float32), spec.sparse_dim
            )
        return result

    def count(self, collection: str) -> int:
        """Number of points stored."""
        return int(self._call(f"counting {collection!r}", lambda: self.client.count(collection, exact=True)).count)

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` by sparse dot product."""
        from qdrant_client import models

        spec = self._spec(collection)
        response = self._call(
            f"searching {collection!r}",
            lambda: self.client.query_points(
                collection,
                query=models.SparseVector(indices=query.indices.tolist(), values=query.values.tolist()),
                using=spec.sparse_vector_name,
                query_filter=to_client_filter(filter),
                limit=k,
                with_payload=True,
            ),
        )
        return to_hits(response.points)

    def hybrid_search(
        self,
        collection: str,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
        filter: Any = None,
    ) -> list[Hit]:
        """Sparse and dense prefetches fused by the server (RRF with explicit k, or DBSF)."""
        from qdrant_client import models

        spec = self._spec(collection)
        if not spec.dense_dim:
            raise BackendError(f"collection {collection!r} has no dense vectors; ingest with dense vectors first")
        client_filter = to_client_filter(filter)
        prefetch = [
            models.Prefetch(
                query=models.SparseVector(indices=sparse.indices.tolist(), values=sparse.values.tolist()),
                using=spec.sparse_vector_name,
                limit=candidates,
                filter=client_filter,
            ),
            models.Prefetch(
                query=np.asarray(dense, np.float32).tolist(),
                using=spec.dense_vector_name,
                limit=candidates,
                filter=client_filter,
            ),
        ]
        fused = (
            models.RrfQuery(rrf=models.Rrf(k=rrf_k, weights=list(weights)))
            if fusion == "rrf"
            else models.FusionQuery(fusion=models.Fusion.DBSF)
        )
        response = self._call(
            f"hybrid search in {collection!r}",
            lambda: self.client.query_points(collection, prefetch=prefetch, query=fused, limit=k, with_payload=True),
        )
        return to_hits(response.points)

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def _spec(self, name: str) -> CollectionSpec:
        spec = self.describe_collection(name)
        if spec is None:
            raise BackendError(f"collection {name!r} does not exist")
        return spec


def _point_struct(spec: CollectionSpec, record: PointRecord, models: Any) -> Any:
    vector: dict[str, Any] = {
        spec.sparse_vector_name: models.SparseVector(
            indices=record.sparse.indices.tolist(), values=record.sparse.values.tolist()
        )
    }
    if spec.dense_dim:
        if record.dense is None:
            raise BackendError(f"record {record.id!r}: collection {spec.name!r} needs a dense vector")
        vector[spec.dense_vector_name] = np.asarray(record.dense, np.float32).tolist()
    return models.PointStruct(id=point_id(record.id), vector=vector, payload=stored_payload(record.id, record.payload))


def _refuses_data(error: BaseException) -> bool:
    """A 400, 413 or 422 answer to a write: the server refused these records (their size or content)."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    return isinstance(error, UnexpectedResponse) and error.status_code in (400, 413, 422)
