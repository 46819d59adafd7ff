"""The embedded engine: Qdrant Edge, the real Qdrant Rust engine in-process.

Each collection is a directory under ``data_dir``: ``shard/`` holds the Edge shard,
``collection.json`` the CollectionSpec (Edge has no collection metadata). Edge
validates little (duplicate sparse indices are mis-scored, NaN is stored), so only
validated :class:`SparseVector` objects reach it, and every call is wrapped so a
Rust panic surfaces as :class:`BackendError`. Edge has no background optimiser:
:meth:`finalize` runs it after an ingest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from splare_connect.backends import CollectionSpec, Fusion, Hit, PointRecord, create_or_adopt
from splare_connect.errors import BackendError
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.common import (
    METADATA_FIELD,
    RECORD_ID_FIELD,
    call_engine,
    check_vector,
    metadata_key,
    point_id,
    to_hits,
)
from splare_connect_qdrant.filters import to_edge_filter

SPEC_FILE = "collection.json"
SHARD_DIR = "shard"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SCROLL_PAGE = 1000


class EdgeBackend:
    """Collections stored as Qdrant Edge shards under one data directory.

    Args:
        data_dir: Directory holding one sub-directory per collection (created on demand).
    """

    def __init__(self, data_dir: str | Path = "./splare-data") -> None:
        self.data_dir = Path(data_dir)
        self._shards: dict[str, Any] = {}
        self._specs: dict[str, CollectionSpec] = {}

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection, or check that the existing one matches ``spec``."""
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        import qdrant_edge as edge

        folder = self._folder(spec.name)
        sparse_params = edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf if spec.idf else None)
        vectors = (
            {spec.dense_vector_name: edge.EdgeVectorParams(size=spec.dense_dim, distance=edge.Distance.Cosine)}
            if spec.dense_dim
            else None
        )
        config = edge.EdgeConfig(vectors=vectors, sparse_vectors={spec.sparse_vector_name: sparse_params})
        folder.mkdir(parents=True, exist_ok=True)
        shard = call_engine(
            f"creating collection {spec.name!r}",
            lambda: edge.EdgeShard.create(str(folder / SHARD_DIR), config),
        )
        for field in (metadata_key(f) for f in spec.indexed_fields):
            call_engine(
                f"indexing payload field {field!r}",
                lambda field=field: shard.update(
                    edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword)
                ),
            )
        self._shards[spec.name] = shard
        _write_json_atomically(folder / SPEC_FILE, spec.to_dict())
        self._specs[spec.name] = spec

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The stored spec, or None when the collection doesn't exist."""
        if name in self._specs:
            return self._specs[name]
        spec_file = self._folder(name) / SPEC_FILE
        if not spec_file.is_file():
            return None
        spec = CollectionSpec.from_dict(name, json.loads(spec_file.read_text(encoding="utf-8")))
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        """Collections under the data directory."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if (p / SPEC_FILE).is_file())

    def drop_collection(self, name: str) -> None:
        """Close and delete a collection's files."""
        shard = self._shards.pop(name, None)
        if shard is not None:
            call_engine(f"closing {name!r}", shard.close)
        self._specs.pop(name, None)
        folder = self._folder(name)
        if folder.exists():
            shutil.rmtree(folder)

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points; one Edge update for the whole batch."""
        import qdrant_edge as edge

        spec = self._spec(collection)
        edge_points = []
        for record in points:
            check_vector(spec, record.id, record.sparse)
            vector: dict[str, Any] = {
                spec.sparse_vector_name: edge.SparseVector(
                    record.sparse.indices.tolist(), record.sparse.values.tolist()
                )
            }
            if spec.dense_dim:
                vector[spec.dense_vector_name] = _dense_list(spec, record.id, record.dense)
            payload = {RECORD_ID_FIELD: record.id, **record.payload}
            edge_points.append(edge.Point(point_id(record.id), vector, payload))
        if edge_points:
            shard = self._shard(collection)
            call_engine(
                f"upserting {len(edge_points)} points into {collection!r}",
                lambda: shard.update(edge.UpdateOperation.upsert_points(edge_points)),
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by record id."""
        import qdrant_edge as edge

        if ids:
            shard = self._shard(collection)
            call_engine(
                f"deleting {len(ids)} points from {collection!r}",
                lambda: shard.update(edge.UpdateOperation.delete_points([point_id(i) for i in ids])),
            )

    def finalize(self, collection: str) -> None:
        """Flush to disk and run the optimiser (Edge has no background one)."""
        shard = self._shard(collection)
        call_engine(f"optimising {collection!r}", shard.optimize)
        call_engine(f"flushing {collection!r}", shard.flush)

    # ------------------------------------------------------------------- reads
    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's record id with the named payload fields."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        wanted = [RECORD_ID_FIELD, *fields]
        offset = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, with_payload=wanted, with_vector=False)
            records, offset = call_engine(f"scrolling {collection!r}", lambda r=request: shard.scroll(r))
            for record in records:
                payload = dict(record.payload or {})
                yield str(payload.pop(RECORD_ID_FIELD)), payload
            if offset is None:
                return

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by record id."""
        spec = self._spec(collection)
        shard = self._shard(collection)
        records = call_engine(
            f"retrieving from {collection!r}",
            lambda: shard.retrieve(
                [point_id(i) for i in ids],
                with_payload=[RECORD_ID_FIELD],
                with_vector=[spec.sparse_vector_name],
            ),
        )
        return {
            str(record.payload[RECORD_ID_FIELD]): _core_sparse(record.vector[spec.sparse_vector_name], spec)
            for record in records
        }

    def count(self, collection: str) -> int:
        """Number of points stored."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        return int(call_engine(f"counting {collection!r}", lambda: shard.count(edge.CountRequest(exact=True))))

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` by sparse dot product (exact)."""
        import qdrant_edge as edge

        spec = self._spec(collection)
        request = edge.QueryRequest(
            limit=k,
            query=edge.Query.Nearest(_edge_sparse(query), using=spec.sparse_vector_name),
            filter=to_edge_filter(filter),
            with_payload=True,
        )
        return self._run_query(collection, request)

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
        """Sparse and dense prefetches fused in the engine (RRF with explicit k, or DBSF)."""
        import qdrant_edge as edge

        spec = self._spec(collection)
        if not spec.dense_dim:
            raise BackendError(f"collection {collection!r} has no dense vectors; ingest with dense vectors first")
        edge_filter = to_edge_filter(filter)
        prefetches = [
            edge.Prefetch(
                limit=candidates,
                query=edge.Query.Nearest(_edge_sparse(sparse), using=spec.sparse_vector_name),
                filter=edge_filter,
            ),
            edge.Prefetch(
                limit=candidates,
                query=edge.Query.Nearest(_dense_list(spec, "query", dense), using=spec.dense_vector_name),
                filter=edge_filter,
            ),
        ]
        fused = edge.Fusion.Rrf(k=rrf_k, weights=list(weights)) if fusion == "rrf" else edge.Fusion.Dbsf()
        request = edge.QueryRequest(limit=k, query=fused, prefetches=prefetches, with_payload=True)
        return self._run_query(collection, request)

    def close(self) -> None:
        """Flush and close every open shard."""
        shards, self._shards = self._shards, {}
        for name, shard in shards.items():
            call_engine(f"closing {name!r}", shard.close)

    # ---------------------------------------------------------------- helpers
    def _run_query(self, collection: str, request: Any) -> list[Hit]:
        shard = self._shard(collection)
        return to_hits(call_engine(f"searching {collection!r}", lambda: shard.query(request)))

    def _spec(self, name: str) -> CollectionSpec:
        spec = self.describe_collection(name)
        if spec is None:
            raise BackendError(f"collection {name!r} does not exist under {self.data_dir}")
        return spec

    def _shard(self, name: str) -> Any:
        import qdrant_edge as edge

        if name not in self._shards:
            self._spec(name)
            path = str(self._folder(name) / SHARD_DIR)
            self._shards[name] = call_engine(f"opening {name!r}", lambda: edge.EdgeShard.load(path))
        return self._shards[name]

    def _folder(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise BackendError(
                f"collection name {name!r} must be 1-128 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return self.data_dir / name


def _edge_sparse(vector: SparseVector) -> Any:
    import qdrant_edge as edge

    return edge.SparseVector(vector.indices.tolist(), vector.values.tolist())


def _core_sparse(vector: Any, spec: CollectionSpec) -> SparseVector:
    return SparseVector(np.asarray(vector.indices, np.uint32), np.asarray(vector.values, np.float32), spec.sparse_dim)


def _dense_list(spec: CollectionSpec, record_id: str, dense: npt.NDArray[np.float32] | None) -> list[float]:
    if dense is None:
        raise BackendError(f"record {record_id!r}: collection {spec.name!r} needs a dense vector")
    array = np.asarray(dense, dtype=np.float32).reshape(-1)
    if array.shape[0] != spec.dense_dim or not np.isfinite(array).all():
        raise BackendError(
            f"record {record_id!r}: dense vector must be {spec.dense_dim} finite floats, got shape {array.shape}"
        )
    return array.tolist()


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


__all__ = ["METADATA_FIELD", "EdgeBackend"]
