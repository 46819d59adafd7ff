"""The embedded engine: Qdrant Edge, the real Qdrant Rust engine in-process.

Each collection is a directory under ``data_dir``: ``shard/`` holds the Edge shard,
``collection.json`` the CollectionSpec (Edge has no collection metadata). Edge
validates little (duplicate sparse indices are mis-scored, NaN is stored), so only
validated :class:`SparseVector` objects reach it, and every call is wrapped so a
Rust panic surfaces as :class:`BackendError`. Edge has no background optimiser:
:meth:`finalize` runs it after an ingest.

Edge is in-process, so one process at a time may open a collection: opening a shard
or dropping a collection takes the collection's :class:`CollectionLock` until
:meth:`EdgeBackend.close` (parallel writers and readers need a Qdrant server). Every
filesystem failure and damaged ``collection.json`` is reported as a one-line
:class:`BackendError` naming the path, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from splare_connect.backends import CollectionSpec, Fusion, Hit, PointRecord, create_or_adopt
from splare_connect.backends.schema import RECORD_ID, metadata_path, point_id, stored_payload
from splare_connect.errors import BackendError
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.common import call_engine, check_vector, to_hits
from splare_connect_qdrant.filters import to_edge_filter
from splare_connect_qdrant.lock import CollectionLock, in_use_message

SPEC_FILE = "collection.json"
SHARD_DIR = "shard"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SCROLL_PAGE = 1000
_WAL_BUSY = "WouldBlock"  # Edge's error when another process (not taking our lock) has the shard open


class EdgeBackend:
    """Collections stored as Qdrant Edge shards under one data directory.

    Args:
        data_dir: Directory holding one sub-directory per collection (created on demand).
    """

    def __init__(self, data_dir: str | Path = "./splare-data") -> None:
        self.data_dir = Path(data_dir)
        # Checked now, not at the first write: a command then fails before loading a model.
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise BackendError(f"data directory {self.data_dir}: is a file, not a directory")
        self._shards: dict[str, Any] = {}
        self._locks: dict[str, CollectionLock] = {}
        self._specs: dict[str, CollectionSpec] = {}

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection, or check that the existing one matches ``spec``."""
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        import qdrant_edge as edge

        folder = self._folder(spec.name)
        with _on_disk(f"creating collection {spec.name!r}"):
            folder.mkdir(parents=True, exist_ok=True)
        sparse_params = edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf if spec.idf else None)
        vectors = (
            {spec.dense_vector_name: edge.EdgeVectorParams(size=spec.dense_dim, distance=edge.Distance.Cosine)}
            if spec.dense_dim
            else None
        )
        config = edge.EdgeConfig(vectors=vectors, sparse_vectors={spec.sparse_vector_name: sparse_params})
        shard = self._open(
            spec.name,
            f"creating collection {spec.name!r}",
            lambda: edge.EdgeShard.create(str(folder / SHARD_DIR), config),
        )
        for field in (metadata_path(f) for f in spec.indexed_fields):
            call_engine(
                f"indexing payload field {field!r}",
                lambda field=field: shard.update(
                    edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword)
                ),
            )
        with _on_disk(f"creating collection {spec.name!r}"):
            _write_json_atomically(folder / SPEC_FILE, spec.to_dict())
        self._specs[spec.name] = spec

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The stored spec, or None when the collection doesn't exist (no lock: the file is replaced atomically)."""
        if name in self._specs:
            return self._specs[name]
        spec_file = self._folder(name) / SPEC_FILE
        if not spec_file.is_file():
            return None
        with _on_disk(f"reading collection {name!r}"):
            raw = spec_file.read_bytes()
        spec = _parse_spec(spec_file, name, raw)
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        """Collections under the data directory (names a drop is still deleting are hidden)."""
        if not self.data_dir.is_dir():
            return []
        with _on_disk(f"listing collections in {self.data_dir}"):
            return sorted(
                p.name for p in self.data_dir.iterdir() if _SAFE_NAME.match(p.name) and (p / SPEC_FILE).is_file()
            )

    def drop_collection(self, name: str) -> None:
        """Close and delete a collection's files; refused while another process has it open.

        The directory is first renamed to a hidden name, so other processes see the whole
        collection or none of it, even if the deletion is interrupted.
        """
        folder = self._folder(name)
        self._close_one(name)
        self._specs.pop(name, None)
        with _on_disk(f"dropping collection {name!r}"):
            if not folder.exists():
                return
            lock = CollectionLock(folder, name)
            lock.acquire(dropping=True)
            try:
                doomed = folder.with_name(f".{name}.dropping-{secrets.token_hex(6)}")
                os.replace(folder, doomed)
                shutil.rmtree(doomed)
            finally:
                lock.release()

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points; one Edge update for the whole batch."""
        import qdrant_edge as edge

        spec = self._spec(collection)
        if not points:
            return
        for record in points:
            check_vector(spec, record.id, record.sparse)
        shard = self._shard(collection)

        def write() -> None:
            # Building the points converts payloads to the engine's types, which can refuse them too.
            edge_points = [self._edge_point(spec, record) for record in points]
            shard.update(edge.UpdateOperation.upsert_points(edge_points))

        # Anything but an I/O failure here is the engine refusing the data (TypeError, a panic ...).
        call_engine(
            f"upserting {len(points)} points into {collection!r}",
            write,
            rejects_data=lambda error: not isinstance(error, OSError),
        )

    @staticmethod
    def _edge_point(spec: CollectionSpec, record: PointRecord) -> Any:
        import qdrant_edge as edge

        vector: dict[str, Any] = {
            spec.sparse_vector_name: edge.SparseVector(record.sparse.indices.tolist(), record.sparse.values.tolist())
        }
        if spec.dense_dim:
            vector[spec.dense_vector_name] = _dense_list(spec, record.id, record.dense)
        return edge.Point(point_id(record.id), vector, stored_payload(record.id, record.payload))

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
        wanted = [RECORD_ID, *fields]
        offset = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, with_payload=wanted, with_vector=False)
            records, offset = call_engine(f"scrolling {collection!r}", lambda r=request: shard.scroll(r))
            for record in records:
                payload = dict(record.payload or {})
                yield str(payload.pop(RECORD_ID)), payload
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
                with_payload=[RECORD_ID],
                with_vector=[spec.sparse_vector_name],
            ),
        )
        return {
            str(record.payload[RECORD_ID]): _core_sparse(record.vector[spec.sparse_vector_name], spec)
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
        """Flush and close every open shard, releasing its collection to other processes."""
        for name in list(self._shards):
            self._close_one(name)

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
            self._open(name, f"opening {name!r}", lambda: edge.EdgeShard.load(path))
        return self._shards[name]

    def _open(self, name: str, action: str, open_shard: Callable[[], Any]) -> Any:
        """Lock the collection, then create or load its shard; both are kept until :meth:`_close_one`."""
        lock = CollectionLock(self._folder(name), name)
        with _on_disk(action):
            lock.acquire()
        try:
            shard = call_engine(action, open_shard)
        except BackendError as exc:
            lock.release()
            if _WAL_BUSY in str(exc):  # a process that doesn't take our lock (older version, Windows)
                raise BackendError(in_use_message(name, None)) from exc
            raise
        self._shards[name] = shard
        self._locks[name] = lock
        return shard

    def _close_one(self, name: str) -> None:
        """Close one collection's shard if open, and release its lock even if closing fails."""
        shard = self._shards.pop(name, None)
        lock = self._locks.pop(name, None)
        try:
            if shard is not None:
                call_engine(f"closing {name!r}", shard.close)
        finally:
            if lock is not None:
                lock.release()

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


def _parse_spec(spec_file: Path, name: str, raw: bytes) -> CollectionSpec:
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


@contextmanager
def _on_disk(action: str) -> Iterator[None]:
    """Report a failed filesystem call as one line naming the path and the problem, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise BackendError(f"{action} failed: {_disk_problem(exc)}") from exc


def _disk_problem(exc: OSError) -> str:
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


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


__all__ = ["EdgeBackend"]
