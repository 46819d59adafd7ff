"""The embedded engine: Qdrant Edge, the real Qdrant Rust engine in-process.

Each collection is a directory under ``data_dir``: ``shard/`` holds the Edge shard,
``collection.json`` the CollectionSpec (:mod:`~splare_connect_qdrant.edge_files`; Edge
has no collection metadata). Edge validates little (duplicate sparse indices are
mis-scored, NaN is stored), so only validated :class:`SparseVector` objects reach it,
and every call is wrapped so a Rust panic surfaces as :class:`BackendError`. Edge has
no background optimiser: :meth:`EdgeDriver.finalize` runs it after an ingest.

Edge is in-process, so one process at a time may open a collection: opening a shard or
dropping a collection takes the collection's :class:`CollectionLock` until
:meth:`EdgeDriver.close` (parallel writers and readers need a Qdrant server).

A shard another application created directly under ``data_dir`` (``data_dir/<name>``
holding Edge's ``edge_config.json``) is that application's: splare-connect can attach
to it (:mod:`splare_connect.attach`), keeping its spec in ``splare_connect.json`` and
its lock in ``splare_connect.lock`` inside the shard's directory, which Edge ignores.
Edge has no API that reports a shard's vector fields, so they are read from
``edge_config.json``. The app must close the shard while splare-connect writes to it.

splare-connect deletes only what it can prove it created. Creating a collection writes
the proof, ``creating.json``, before any engine file, and removes it once
``collection.json`` (which proves it from then on) is written. A ``shard/`` with
neither beside it (an app's shard in this layout, or one whose ``collection.json`` was
lost) is never cleared, replaced or dropped: every command refuses it with one line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from splare_connect.backends import CollectionLayout, CollectionSpec, PointId, SparseUpdate
from splare_connect.backends.engine_calls import call_engine
from splare_connect.backends.schema import RECORD_ID
from splare_connect.errors import BackendError, CollectionNotAttachedError, RecordsRejectedError
from splare_connect.record_rules import json_value_problem
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.common import not_ours_message
from splare_connect_qdrant.driver import EnginePoint, Fused, Nearest, Vector
from splare_connect_qdrant.edge_files import SPEC_FILE, on_disk, read_spec_file, write_json_atomically
from splare_connect_qdrant.filters import FilterClasses, build_filter, vector_presence_filter
from splare_connect_qdrant.lock import LOCK_FILE, CollectionLock, in_use_message

SHARD_DIR = "shard"
EDGE_CONFIG = "edge_config.json"  # Edge's own description of a shard's vectors
APP_SPEC_FILE = "splare_connect.json"  # our spec, inside an app's shard directory
APP_LOCK_FILE = "splare_connect.lock"
CREATING_FILE = "creating.json"  # proof that splare-connect is creating this collection, written first
# Everything splare-connect puts in a collection's folder (write_json_atomically's temporaries included).
_OUR_ENTRIES = frozenset({SHARD_DIR, SPEC_FILE, CREATING_FILE, LOCK_FILE, "collection.tmp", "creating.tmp"})
# Payload nesting Edge is allowed to get: it fails to read its own log at ~125 levels;
# the sync engine's record rules allow 32 levels of metadata, well within this.
MAX_PAYLOAD_DEPTH = 64
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_WAL_BUSY = "WouldBlock"  # Edge's error when another process (not taking our lock) has the shard open


@dataclass(frozen=True)
class _Place:
    """Where a collection's files are: splare-connect's layout, or an app's own shard."""

    folder: Path
    app_shard: bool  # data_dir/<name> is itself a shard another application created

    @property
    def shard_dir(self) -> Path:
        return self.folder if self.app_shard else self.folder / SHARD_DIR

    @property
    def unproven(self) -> bool:
        """Our layout's ``shard/`` is there with no proof that splare-connect made it."""
        if self.app_shard or not (self.folder / SHARD_DIR).exists():
            return False
        return not (self.folder / SPEC_FILE).is_file() and not (self.folder / CREATING_FILE).is_file()

    def foreign_entries(self) -> list[str]:
        """Names in the collection's folder that splare-connect does not make there."""
        if self.app_shard or not self.folder.is_dir():
            return []
        return sorted(entry.name for entry in self.folder.iterdir() if entry.name not in _OUR_ENTRIES)

    def refuse_creating_here(self) -> None:
        """Stop a create where splare-connect would clear or fill what it did not make."""
        self.refuse_unproven()
        self.refuse_foreign("create a collection")

    def refuse_foreign(self, doing: str) -> None:
        """Stop a create or drop in a folder holding files splare-connect did not make.

        Raises:
            BackendError: Naming the folder and (some of) the files.
        """
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise BackendError(
                f"{self.folder} holds files splare-connect did not make ({shown}); it will not {doing} there: "
                "use another collection name or --data-dir, or move them away"
            )

    def refuse_unproven(self) -> None:
        """Stop any command at a shard splare-connect cannot prove it made.

        Raises:
            CollectionNotAttachedError: Naming the shard and how to attach to it instead.
        """
        if self.unproven:
            raise CollectionNotAttachedError(
                f"{self.folder / SHARD_DIR} is a Qdrant Edge shard that splare-connect did not create (no "
                f"{SPEC_FILE} beside it: an application's shard, or one whose description was lost); splare-connect "
                f"will not touch it. To attach to it as an application's shard: --data-dir {self.folder} and "
                f"collection {SHARD_DIR!r}"
            )

    @property
    def spec_file(self) -> Path:
        return self.folder / (APP_SPEC_FILE if self.app_shard else SPEC_FILE)

    def lock(self, name: str) -> CollectionLock:
        return CollectionLock(self.folder, name, APP_LOCK_FILE if self.app_shard else LOCK_FILE)


class EdgeDriver:
    """Collections stored as Qdrant Edge shards under one data directory.

    Args:
        data_dir: Directory holding one sub-directory per collection (created on demand).

    Raises:
        BackendError: ``data_dir`` is a file (checked now, so that a command fails
            before it loads a model, not at its first write).
    """

    retry_deadline = None  # in-process: nothing to retry

    def __init__(self, data_dir: str | Path = "./splare-data") -> None:
        self.data_dir = Path(data_dir)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise BackendError(f"data directory {self.data_dir}: is a file, not a directory")
        self.where = f" under {self.data_dir}"
        self._shards: dict[str, Any] = {}
        self._locks: dict[str, CollectionLock] = {}

    # ------------------------------------------------------------ collections
    def read_spec(self, name: str) -> CollectionSpec | None:
        """The spec in ``collection.json`` (no lock needed: the file is replaced atomically).

        Raises:
            BackendError: ``data_dir/<name>`` is an app's shard that splare-connect has not attached to.
        """
        place = self._place(name)
        place.refuse_unproven()
        spec = read_spec_file(place.spec_file, name)
        if spec is None and place.app_shard:
            raise CollectionNotAttachedError(not_ours_message(name))
        return spec

    def layout(self, name: str) -> CollectionLayout | None:
        """The shard's vector fields, from the spec (our layout) or Edge's ``edge_config.json`` (an app's)."""
        place = self._place(name)
        place.refuse_unproven()
        spec = read_spec_file(place.spec_file, name)
        if not place.app_shard:
            if spec is None:
                return None
            dense = {spec.dense_vector_name: spec.dense_dim} if spec.dense_dim else {}
            return CollectionLayout(name, dense, (spec.sparse_vector_name,), spec)
        config_file = place.folder / EDGE_CONFIG
        with on_disk(f"reading {config_file}"):
            try:
                config = json.loads(config_file.read_text(encoding="utf-8"))
                dense = {vector: int(params["size"]) for vector, params in (config.get("vectors") or {}).items()}
                sparse = tuple(config.get("sparse_vectors") or {})
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise BackendError(f"{config_file}: not a Qdrant Edge shard configuration ({exc})") from None
        return CollectionLayout(name, dense, sparse, spec)

    def add_sparse_vector(self, collection: str, vector_name: str, idf: bool) -> None:
        """Add a sparse vector field to the shard (Edge keeps it in ``edge_config.json``)."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        call_engine(
            f"adding sparse vector {vector_name!r} to {collection!r}",
            lambda: shard.update(
                edge.UpdateOperation.create_sparse_vector(vector_name, edge.Modifier.Idf if idf else None)
            ),
        )

    def store_spec(self, spec: CollectionSpec) -> None:
        """Write ``splare_connect.json`` inside the app's shard directory (atomically)."""
        with on_disk(f"attaching to {spec.name!r}"):
            write_json_atomically(self._place(spec.name).spec_file, spec.to_dict())

    def replace_spec(self, spec: CollectionSpec) -> None:
        """Rewrite the collection's ``splare_connect.json`` (atomically): the shard is untouched."""
        with on_disk(f"storing the settings of {spec.name!r}"):
            write_json_atomically(self._place(spec.name).spec_file, spec.to_dict())

    def update_vectors(
        self, collection: str, vector_name: str, state_key: str, updates: Sequence[SparseUpdate]
    ) -> None:
        """``update_vectors`` for the batch, then ``set_payload`` of the state key per point."""
        import qdrant_edge as edge

        shard = self._shard(collection)

        def write() -> None:
            vectors = [edge.PointVectors(u.point_id, {vector_name: _vector(u.sparse)}) for u in updates]
            shard.update(edge.UpdateOperation.update_vectors(vectors))
            for update in updates:
                shard.update(edge.UpdateOperation.set_payload([update.point_id], {state_key: dict(update.state)}))

        call_engine(f"updating {len(updates)} points of {collection!r}", write, rejects_data=_refuses_data)

    def clear_vectors(self, collection: str, vector_name: str, state_key: str, point_ids: Sequence[PointId]) -> None:
        """``delete_vectors`` and ``delete_payload`` of the state key (a missing point fails the update)."""
        import qdrant_edge as edge

        shard = self._shard(collection)

        def clear() -> None:
            shard.update(edge.UpdateOperation.delete_vectors(list(point_ids), [vector_name]))
            shard.update(edge.UpdateOperation.delete_payload(list(point_ids), [state_key]))

        call_engine(f"clearing {len(point_ids)} points of {collection!r}", clear)

    def existing(self, collection: str, point_ids: Sequence[PointId]) -> set[PointId]:
        """Which of these ids exist."""
        shard = self._shard(collection)
        records = call_engine(
            f"retrieving from {collection!r}",
            lambda: shard.retrieve(list(point_ids), with_payload=False, with_vector=False),
        )
        return {record.id for record in records}

    def create(self, spec: CollectionSpec, keyword_fields: Sequence[str]) -> None:
        """Create the shard and its payload indexes, then ``collection.json``: the collection exists once that does."""
        import qdrant_edge as edge

        place = self._place(spec.name)
        folder = place.folder
        if place.app_shard:  # never create our layout inside an app's shard
            raise CollectionNotAttachedError(not_ours_message(spec.name))
        place.refuse_creating_here()
        with on_disk(f"creating collection {spec.name!r}"):
            folder.mkdir(parents=True, exist_ok=True)
        sparse_params = edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf if spec.idf else None)
        vectors = (
            {spec.dense_vector_name: edge.EdgeVectorParams(size=spec.dense_dim, distance=edge.Distance.Cosine)}
            if spec.dense_dim
            else None
        )
        config = edge.EdgeConfig(vectors=vectors, sparse_vectors={spec.sparse_vector_name: sparse_params})

        def make_shard() -> Any:
            # Under the collection's lock: checked again (another process may have been
            # here meanwhile), then the proof, then the first engine file.
            if (folder / SPEC_FILE).is_file():
                raise BackendError(f"collection {spec.name!r} was created by another process meanwhile")
            place.refuse_creating_here()
            with on_disk(f"creating collection {spec.name!r}"):
                write_json_atomically(folder / CREATING_FILE, {"created_by": "splare-connect", "collection": spec.name})
            return edge.EdgeShard.create(_leftover_cleared(folder / SHARD_DIR), config)

        shard = self._open(spec.name, f"creating collection {spec.name!r}", make_shard)
        try:
            for field in keyword_fields:
                call_engine(
                    f"indexing payload field {field!r}",
                    partial(
                        shard.update, edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword)
                    ),
                )
            with on_disk(f"creating collection {spec.name!r}"):
                write_json_atomically(folder / SPEC_FILE, spec.to_dict())
                (folder / CREATING_FILE).unlink()
        except BackendError:
            # Without its description the shard is unreachable (not listed, not droppable)
            # and blocks the name: remove it, under the lock we still hold.
            self._close_one(spec.name)
            shutil.rmtree(folder / SHARD_DIR, ignore_errors=True)
            raise

    def list_collections(self) -> list[str]:
        """Collections under the data directory (names a drop is still deleting are hidden)."""
        if not self.data_dir.is_dir():
            return []
        with on_disk(f"listing collections in {self.data_dir}"):
            return sorted(
                p.name
                for p in self.data_dir.iterdir()
                if _SAFE_NAME.match(p.name) and ((p / SPEC_FILE).is_file() or (p / APP_SPEC_FILE).is_file())
            )

    def drop(self, name: str) -> None:
        """Close and delete a collection's files; refused while another process has it open.

        The directory is first renamed to a hidden name, so other processes see the whole
        collection or none of it, even if the deletion is interrupted.
        """
        place = self._place(name)
        if place.app_shard:
            raise BackendError(f"collection {name!r} belongs to another application; splare-connect does not drop it")
        place.refuse_unproven()
        place.refuse_foreign("drop the folder")
        folder = place.folder
        self._close_one(name)
        with on_disk(f"dropping collection {name!r}"):
            if not folder.exists():
                return
            lock = place.lock(name)
            lock.acquire(dropping=True)
            try:
                doomed = folder.with_name(f".{name}.dropping-{secrets.token_hex(6)}")
                os.replace(folder, doomed)
                shutil.rmtree(doomed)
            finally:
                lock.release()

    # ------------------------------------------------------------------ points
    def upsert(self, collection: str, points: Sequence[EnginePoint]) -> None:
        """One Edge update for the batch; a conversion error or a panic is the engine refusing the data.

        Raises:
            RecordsRejectedError: A payload nested deeper than :data:`MAX_PAYLOAD_DEPTH`
                (Edge stores it, then cannot read its own write-ahead log again, ~125
                levels: the whole collection would be lost), or the engine refused the data.
        """
        import qdrant_edge as edge

        for point in points:
            problem = json_value_problem(point.payload, "payload", MAX_PAYLOAD_DEPTH)
            if problem is not None:
                raise RecordsRejectedError(f"record {point.payload[RECORD_ID]!r}: {problem}")
        shard = self._shard(collection)

        def write() -> None:
            # Building the points converts payloads to the engine's types, which can refuse them too.
            edge_points = [
                edge.Point(p.id, {name: _vector(v) for name, v in p.vectors.items()}, dict(p.payload)) for p in points
            ]
            shard.update(edge.UpdateOperation.upsert_points(edge_points))

        call_engine(f"upserting {len(points)} points into {collection!r}", write, rejects_data=_refuses_data)

    def delete(self, collection: str, point_ids: Sequence[str]) -> None:
        """Delete points in one Edge update."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        call_engine(
            f"deleting {len(point_ids)} points from {collection!r}",
            lambda: shard.update(edge.UpdateOperation.delete_points(list(point_ids))),
        )

    def finalize(self, collection: str) -> None:
        """Run the optimiser (Edge has no background one), then flush to disk."""
        shard = self._shard(collection)
        call_engine(f"optimising {collection!r}", shard.optimize)
        call_engine(f"flushing {collection!r}", shard.flush)

    def scroll(
        self,
        collection: str,
        fields: Sequence[str],
        offset: Any,
        limit: int,
        has_vector: tuple[str, bool] | None = None,
    ) -> tuple[list[Any], Any]:
        """One page of points with the named payload fields, no vectors; ``has_vector`` filters on one vector."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        scroll_filter = vector_presence_filter(has_vector, _filter_classes())
        request = edge.ScrollRequest(
            offset=offset, limit=limit, filter=scroll_filter, with_payload=list(fields), with_vector=False
        )
        records, next_offset = call_engine(f"scrolling {collection!r}", lambda: shard.scroll(request))
        return list(records), next_offset

    def retrieve(
        self, collection: str, point_ids: Sequence[int | str], fields: Sequence[str], vector: str
    ) -> list[Any]:
        """Points by id with the named payload fields and one vector."""
        shard = self._shard(collection)
        return list(
            call_engine(
                f"retrieving from {collection!r}",
                lambda: shard.retrieve(list(point_ids), with_payload=list(fields), with_vector=[vector]),
            )
        )

    def count(self, collection: str) -> int:
        """Exact number of points."""
        import qdrant_edge as edge

        shard = self._shard(collection)
        return int(call_engine(f"counting {collection!r}", lambda: shard.count(edge.CountRequest(exact=True))))

    def query(self, collection: str, query: Nearest | Fused, action: str) -> list[Any]:
        """One ``QueryRequest``: a nearest-neighbour query, or prefetches fused by RRF or DBSF."""
        import qdrant_edge as edge

        if isinstance(query, Nearest):
            request = edge.QueryRequest(
                limit=query.limit,
                query=edge.Query.Nearest(_vector(query.vector), using=query.using),
                filter=build_filter(query.filter, _filter_classes()),
                with_payload=True,
            )
        else:
            prefetches = [
                edge.Prefetch(
                    limit=p.limit,
                    query=edge.Query.Nearest(_vector(p.vector), using=p.using),
                    filter=build_filter(p.filter, _filter_classes()),
                )
                for p in query.prefetches
            ]
            fused = (
                edge.Fusion.Rrf(k=query.rrf_k, weights=list(query.weights))
                if query.fusion == "rrf"
                else edge.Fusion.Dbsf()
            )
            # The stub lists Fusion, not its Rrf/Dbsf variants, which the engine takes
            request = edge.QueryRequest(limit=query.limit, query=fused, prefetches=prefetches, with_payload=True)  # type: ignore[arg-type]
        shard = self._shard(collection)
        return list(call_engine(action, lambda: shard.query(request)))

    def close(self) -> None:
        """Flush and close every open shard, releasing its collection to other processes."""
        for name in list(self._shards):
            self._close_one(name)

    # ---------------------------------------------------------------- helpers
    def _shard(self, name: str) -> Any:
        """The collection's open shard, opened (and locked) on first use."""
        import qdrant_edge as edge

        if name not in self._shards:
            path = str(self._place(name).shard_dir)
            self._open(name, f"opening {name!r}", lambda: edge.EdgeShard.load(path))
        return self._shards[name]

    def _open(self, name: str, action: str, open_shard: Callable[[], Any]) -> Any:
        """Lock the collection, then create or load its shard; both are kept until :meth:`_close_one`."""
        lock = self._place(name).lock(name)
        with on_disk(action):
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

    def _place(self, name: str) -> _Place:
        folder = self._folder(name)
        return _Place(folder, (folder / EDGE_CONFIG).is_file())

    def _folder(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise BackendError(
                f"collection name {name!r} must be 1-128 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return self.data_dir / name


def _vector(vector: Vector) -> Any:
    """Edge's form of a vector: its SparseVector, or the dense list as it is."""
    import qdrant_edge as edge

    if isinstance(vector, SparseVector):
        return edge.SparseVector(vector.indices.tolist(), vector.values.tolist())
    return vector


def _refuses_data(error: BaseException) -> bool:
    """What Edge raises for data it won't take: a conversion error, or a panic on odd input."""
    return isinstance(error, (TypeError, ValueError, OverflowError)) or type(error).__name__ == "PanicException"


def _leftover_cleared(shard_dir: Path) -> str:
    """The shard path, emptied of what a create killed before writing the description left.

    Called with the collection's lock held, no ``collection.json`` present and the proof
    that splare-connect made it (``creating.json``, checked before this create wrote its
    own): no process can be using that shard, it was never a usable collection, and it
    is ours to delete.
    """
    if shard_dir.exists():
        shutil.rmtree(shard_dir)
    return str(shard_dir)


def _filter_classes() -> FilterClasses:
    import qdrant_edge as edge

    return FilterClasses(
        engine="Qdrant Edge",
        native=edge.Filter,
        field=lambda key, **kw: edge.FieldCondition(key, **kw),
        match_value=edge.MatchValue,
        match_any=edge.MatchAny,
        range=edge.RangeFloat,
        filter=edge.Filter,
        has_vector=edge.HasVectorCondition,
    )
