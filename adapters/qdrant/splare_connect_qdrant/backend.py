"""One Qdrant backend over two engines: the collection logic, written once.

:class:`QdrantBackend` implements the core's Backend protocol: it caches and checks the
collection spec, refuses vectors that don't fit the collection (sparse ids past its
width, dense vectors of the wrong size or not finite), batches writes, pages reads,
lays out hybrid queries (one sparse and one dense prefetch, each filtered, fused by
the engine) and turns scored points into hits. What differs between engines is a
driver's job (:mod:`splare_connect_qdrant.driver`):

- :class:`~splare_connect_qdrant.edge_driver.EdgeDriver`: Qdrant Edge in-process, one
  directory per collection, one process at a time;
- :class:`~splare_connect_qdrant.client_driver.ClientDriver`: qdrant-client, a server
  by URL or qdrant-client's local mode, every request under the retry policy.

Both engines therefore check the same things and answer the same queries, which the
conformance kit (``adapters/qdrant/tests/test_qdrant_conformance.py``) holds them to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from splare_connect.backends import (
    AppPoint,
    CollectionLayout,
    CollectionSpec,
    Fusion,
    Hit,
    PointId,
    PointRecord,
    SparseUpdate,
    create_or_adopt,
)
from splare_connect.backends.descriptor import Capabilities
from splare_connect.backends.schema import (
    RECORD_ID,
    metadata_path,
    native_point_id,
    point_id,
    pop_record_id,
    stored_payload,
)
from splare_connect.errors import BackendError, CollectionNotFoundError
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.driver import EnginePoint, Fused, Nearest, QdrantDriver
from splare_connect_qdrant.write_batches import batches_by_size

_PAGE = 1000  # points per scroll page, ids per delete request

# What Qdrant's engines do where backends differ (read by the core and the conformance kit).
CAPABILITIES = Capabilities(
    fusions=frozenset({Fusion.RRF, Fusion.DBSF}),
    weighted_fusions=frozenset({Fusion.RRF}),  # weighted RRF (Qdrant 1.17+); DBSF takes no weights
    attachable=True,
    concurrent_writers="with a server URL; the embedded engine is held by one process",
    empty_sparse="stored as an empty sparse vector (it matches no query)",
    id_limits="any string: the point id is derived from it, and the record id kept in the payload",
)


class QdrantBackend:
    """Collections in a Qdrant engine; see :func:`splare_connect_qdrant.create_backend` to make one.

    Args:
        driver: The engine: an ``EdgeDriver`` or a ``ClientDriver``.
        max_batch_points: Points per write request (None: no cap).
        max_batch_bytes: Estimated JSON bytes per write request (None: no cap).
        concurrent_writers: Whether other processes may write to the same collections at
            the same time: true of a Qdrant server, not of the embedded engine or
            qdrant-client's local mode (a distributed ingest writes from one process then).
    """

    def __init__(
        self,
        driver: QdrantDriver,
        *,
        max_batch_points: int | None = None,
        max_batch_bytes: int | None = None,
        concurrent_writers: bool = False,
    ) -> None:
        self.driver = driver
        self.concurrent_writers = concurrent_writers
        self.max_batch_points = max_batch_points
        self.max_batch_bytes = max_batch_bytes
        self._specs: dict[str, CollectionSpec] = {}
        self._layouts: dict[str, CollectionLayout] = {}

    @property
    def retry_deadline(self) -> float | None:
        """Seconds after a request's first try past which it is not retried (None: the engine doesn't retry)."""
        return self.driver.retry_deadline

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with its spec stored beside it, or check that the existing one matches."""
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        self.driver.create(spec, [metadata_path(field) for field in spec.indexed_fields])
        self._specs[spec.name] = spec

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The stored spec, or None when the collection doesn't exist (read once, then cached)."""
        if name in self._specs:
            return self._specs[name]
        spec = self.driver.read_spec(name)
        if spec is not None:
            self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        """Names of the collections."""
        return self.driver.list_collections()

    def drop_collection(self, name: str) -> None:
        """Delete a collection and everything in it; the driver refuses one another application owns."""
        self._specs.pop(name, None)
        self._layouts.pop(name, None)
        self.driver.drop(name)

    def store_spec(self, spec: CollectionSpec) -> None:
        """Replace the spec kept with an existing collection of ours (its search settings)."""
        self._spec(spec.name)  # it exists, and holds a spec
        self.driver.replace_spec(spec)
        self._specs[spec.name] = spec

    # ------------------------------------------- collections another app made
    def inspect_collection(self, name: str) -> CollectionLayout | None:
        """The collection's vector fields and spec, whoever made it (None: no such collection)."""
        return self.driver.layout(name)

    def attach_collection(self, spec: CollectionSpec) -> None:
        """Store the spec beside the app's metadata, then add the sparse vector field (both idempotent)."""
        self.driver.store_spec(spec)
        self.driver.add_sparse_vector(spec.name, spec.sparse_vector_name, spec.idf)
        self._specs[spec.name] = spec
        self._layouts.pop(spec.name, None)

    def iter_points(
        self, collection: str, fields: Sequence[str], sparse_vector_name: str | None = None
    ) -> Iterator[AppPoint]:
        """Every point with the named top-level payload fields, and whether it has the sparse vector.

        With a vector name, two filtered scrolls (points with it, then points without
        it) tell which points have it without reading any vector.
        """
        if sparse_vector_name is None:
            yield from self._scroll_points(collection, fields, None)
            return
        for present in (True, False):
            yield from self._scroll_points(collection, fields, (sparse_vector_name, present))

    def _scroll_points(
        self, collection: str, fields: Sequence[str], has_vector: tuple[str, bool] | None
    ) -> Iterator[AppPoint]:
        offset = None
        while True:
            records, offset = self.driver.scroll(collection, list(fields), offset, _PAGE, has_vector)
            for record in records:
                yield AppPoint(record.id, dict(record.payload or {}), has_vector is not None and has_vector[1])
            if offset is None:
                return

    def clear_sparse(self, collection: str, point_ids: Sequence[PointId]) -> None:
        """Delete the sparse vector and the state key from these points (one request).

        Points the app deleted since they were read are skipped (:meth:`_write_existing`).
        """
        spec = self._spec(collection)
        self._write_existing(
            collection,
            list(point_ids),
            lambda ids: self.driver.clear_vectors(collection, spec.sparse_vector_name, spec.state_key, ids),
        )

    def update_sparse(self, collection: str, updates: Sequence[SparseUpdate]) -> list[PointId]:
        """Write the vectors (``update_vectors``) and state (``set_payload``) onto existing points.

        One request per call (the caller sizes it). Points the app deleted since they were
        read are skipped (:meth:`_write_existing`) and returned.
        """
        spec = self._spec(collection)
        for update in updates:
            spec.check_width(str(update.point_id), update.sparse)

        def write(ids: list[PointId]) -> None:
            keep = set(ids)
            pending = [update for update in updates if update.point_id in keep]
            self.driver.update_vectors(collection, spec.sparse_vector_name, spec.state_key, pending)

        return self._write_existing(collection, [update.point_id for update in updates], write)

    def _write_existing(
        self, collection: str, point_ids: list[PointId], write: Callable[[list[PointId]], None]
    ) -> list[PointId]:
        """Run ``write`` on these points; the ids of those the app deleted meanwhile.

        A request naming a deleted point fails as a whole (a server, local mode and Edge
        alike); the points still there are then written again (every write here is
        idempotent) and the vanished ones returned. A failure with every point present is
        the write's own, and raised.
        """
        pending, vanished = point_ids, list[PointId]()
        while pending:
            try:
                write(pending)
                break
            except BackendError:
                present = self.driver.existing(collection, pending)
                if len(present) == len(pending):
                    raise  # not a deletion: the write itself failed
                vanished += [point for point in pending if point not in present]
                pending = [point for point in pending if point in present]
        return vanished

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points, in batches within the size caps.

        Raises:
            BackendError: A vector doesn't fit the collection (nothing of its batch is written).
            RecordsRejectedError: The engine refused the records' data.
        """
        spec = self._spec(collection)
        for batch in batches_by_size(points, self.max_batch_points, self.max_batch_bytes):
            self.driver.upsert(collection, [_engine_point(spec, record) for record in batch])

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by record id (missing ones are ignored)."""
        if not ids:
            return
        self._spec(collection)
        for start in range(0, len(ids), _PAGE):
            self.driver.delete(collection, [point_id(i) for i in ids[start : start + _PAGE]])

    def finalize(self, collection: str) -> None:
        """Make recent writes durable and fast to search (the embedded engine optimises here)."""
        self._spec(collection)
        self.driver.finalize(collection)

    # ------------------------------------------------------------------- reads
    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's record id with the named payload fields."""
        self._spec(collection)
        wanted = [RECORD_ID, *fields]
        offset = None
        while True:
            records, offset = self.driver.scroll(collection, wanted, offset, _PAGE)
            for record in records:
                payload = dict(record.payload or {})
                yield pop_record_id(payload), payload
            if offset is None:
                return

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by record id (missing ids are left out)."""
        spec = self._spec(collection)
        name = spec.sparse_vector_name
        if spec.attached:  # the app's own point ids, as hits spell them
            records = self.driver.retrieve(collection, [native_point_id(i) for i in ids], [], name)
        else:
            records = self.driver.retrieve(collection, [point_id(i) for i in ids], [RECORD_ID], name)
        return {
            (str(record.id) if spec.attached else str(record.payload[RECORD_ID])): SparseVector(
                np.asarray(record.vector[name].indices, np.uint32),
                np.asarray(record.vector[name].values, np.float32),
                spec.sparse_dim,
            )
            for record in records
            if name in (record.vector or {})
        }

    def count(self, collection: str) -> int:
        """Number of points stored."""
        self._spec(collection)
        return self.driver.count(collection)

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` by sparse dot product (exact)."""
        spec = self._spec(collection)
        nearest = Nearest(spec.sparse_vector_name, query, k, filter)
        return _hits(spec, self.driver.query(collection, nearest, f"searching {collection!r}"))

    def hybrid_search(
        self,
        collection: str,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fusion: Fusion = Fusion.RRF,
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
        filter: Any = None,
        dense_field: str | None = None,
    ) -> list[Hit]:
        """Sparse and dense prefetches, each filtered, fused in the engine (RRF with explicit k, or DBSF).

        ``dense_field`` names one of the collection's dense vectors (an app's own, such as
        ``"openai"``; ``""`` for an unnamed one) that ``dense`` was made for.

        Raises:
            ConfigError: A fusion Qdrant lacks, or unequal ``weights`` with DBSF (see
                :data:`CAPABILITIES`).
        """
        CAPABILITIES.check_fusion("Qdrant", fusion, weights)
        spec = self._spec(collection)
        using, width = self._dense_field(spec, dense_field)
        fused = Fused(
            prefetches=(
                Nearest(spec.sparse_vector_name, sparse, candidates, filter),
                Nearest(using, _dense_list(spec.name, width, "query", dense), candidates, filter),
            ),
            fusion=fusion,
            rrf_k=rrf_k,
            weights=tuple(weights),
            limit=k,
        )
        return _hits(spec, self.driver.query(collection, fused, f"hybrid search in {collection!r}"))

    def close(self) -> None:
        """Release the engine's files, locks and connections."""
        self.driver.close()

    def _dense_field(self, spec: CollectionSpec, dense_field: str | None) -> tuple[str, int]:
        """The dense vector to search and its width: the collection's own, or the one named."""
        if dense_field is None:
            if not spec.dense_dim:
                raise BackendError(
                    f"collection {spec.name!r} has no dense vectors of splare-connect's; "
                    "pass your own query vector and the dense field it is for"
                )
            return spec.dense_vector_name, spec.dense_dim
        if spec.dense_dim and dense_field == spec.dense_vector_name:
            return dense_field, spec.dense_dim
        layout = self._layout(spec.name)
        if dense_field not in layout.dense:
            names = ", ".join(repr(name) for name in layout.dense) or "none"
            raise BackendError(
                f"collection {spec.name!r} has no dense vector {dense_field!r} (its dense vectors: {names})"
            )
        return dense_field, layout.dense[dense_field]

    def _layout(self, name: str) -> CollectionLayout:
        """The collection's vector fields, read once per backend (a field the app adds later needs a new one)."""
        if name not in self._layouts:
            layout = self.inspect_collection(name)
            if layout is None:
                raise CollectionNotFoundError(f"collection {name!r} does not exist{self.driver.where}")
            self._layouts[name] = layout
        return self._layouts[name]

    def _spec(self, name: str) -> CollectionSpec:
        spec = self.describe_collection(name)
        if spec is None:
            raise CollectionNotFoundError(f"collection {name!r} does not exist{self.driver.where}")
        return spec


def _engine_point(spec: CollectionSpec, record: PointRecord) -> EnginePoint:
    """A record as stored, once its vectors are known to fit the collection."""
    spec.check_width(record.id, record.sparse)
    vectors: dict[str, SparseVector | list[float]] = {spec.sparse_vector_name: record.sparse}
    if spec.dense_dim:
        vectors[spec.dense_vector_name] = _dense_list(spec.name, spec.dense_dim, record.id, record.dense)
    return EnginePoint(point_id(record.id), vectors, stored_payload(record.id, record.payload))


def _dense_list(collection: str, width: int, record_id: str, dense: npt.NDArray[np.float32] | None) -> list[float]:
    """A dense vector of the field's width with finite values, as a list; the engines check neither."""
    if dense is None:
        raise BackendError(f"record {record_id!r}: collection {collection!r} needs a dense vector")
    array = np.asarray(dense, dtype=np.float32).reshape(-1)
    if array.shape[0] != width or not np.isfinite(array).all():
        raise BackendError(f"record {record_id!r}: dense vector must be {width} finite floats, got shape {array.shape}")
    return array.tolist()


def _hits(spec: CollectionSpec, points: Sequence[Any]) -> list[Hit]:
    """Hits from scored points (``id``, ``score``, ``payload``).

    A point splare-connect wrote carries its record id in the payload; an attached
    collection's point is the app's, so its id is the app's point id and its payload is
    left as the app wrote it (even if it has a ``record_id`` key of its own).
    """
    hits = []
    for point in points:
        payload = dict(point.payload or {})
        record_id = str(point.id) if spec.attached else pop_record_id(payload, default=str(point.id))
        hits.append(Hit(id=record_id, score=float(point.score), payload=payload))
    return hits
