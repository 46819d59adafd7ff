"""Collections in Milvus (Milvus Lite in-process, or a server) behind the core's Backend protocol.

Each collection splare-connect makes has one schema:

- ``id``: VARCHAR(36) primary key, the UUIDv5 of the record id
  (:func:`splare_connect.backends.schema.point_id`), so writing a record again replaces it;
- the sparse vector field (``spec.sparse_vector_name``): ``SPARSE_FLOAT_VECTOR`` with a
  ``SPARSE_INVERTED_INDEX``, metric IP, searched exactly (``drop_ratio_search`` 0);
- the dense vector field (``spec.dense_vector_name``), when the spec has one:
  ``FLOAT_VECTOR`` with a FLAT index, metric COSINE (Qdrant's and OpenSearch's choice);
- ``payload``: JSON, the record id and the point's payload (metadata under ``metadata``,
  which filters address);
- ``text``: nullable VARCHAR with the chunk's text, apart from ``payload`` so that a
  sync reading its state (:meth:`MilvusBackend.iter_payloads`) doesn't read every text.

The :class:`~splare_connect.backends.CollectionSpec` is stored as the collection property
``splare_connect`` (JSON), set in the same request that creates the collection: a
collection never exists without it, an application's own collection (no such property)
is told apart, and the spec is read with the schema in one request. Collection
properties are Milvus's key-value metadata, the counterpart of Qdrant's collection
metadata and OpenSearch's ``_meta``; a reserved row would count as a point and show up
in searches and scans.

Milvus refuses a sparse vector without a non-zero weight, so a blank document is
stored with one placeholder feature at id ``sparse_dim``: outside the model's width,
where no query has a feature (queries are checked against the width), so it matches
nothing; :meth:`MilvusBackend.fetch_sparse` gives it back empty.

**Attach** (:class:`~splare_connect.backends.AttachableBackend`, a Milvus server 2.6.2+
only; **not run against a server**, tested against a recording fake of ``MilvusClient``):
an application's collection gets a nullable ``SPARSE_FLOAT_VECTOR`` field with its
``SPARSE_INVERTED_INDEX`` and a nullable JSON field for splare-connect's state of each
row (``_splare``: ``{"hash": ...}``), both added with ``add_collection_field`` and marked
by their description; the spec goes in the collection property as above. Rows are
written with ``upsert(..., partial_update=True)`` carrying the primary key and those two
fields only, after checking that the rows still exist. The collections where that would
rewrite or add an app's row are refused first (:mod:`splare_connect_milvus.app_schema`).
Milvus Lite can't add a field, and refuses in one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
from splare_connect.backends.retrying import RetryPolicy
from splare_connect.backends.schema import RECORD_ID, SPEC_KEY, TEXT, point_id, pop_record_id, stored_payload
from splare_connect.backends.write_requests import split_by_size
from splare_connect.errors import BackendError, CollectionNotAttachedError, CollectionNotFoundError, ConfigError
from splare_connect.filters import INT64_MAX
from splare_connect.sparse_vector import SparseVector
from splare_connect_milvus.app_schema import SPARSE_MARK, STATE_MARK, AppSchema, attach_refusal
from splare_connect_milvus.errors import call_engine, refuses_data
from splare_connect_milvus.filters import PAYLOAD_FIELD, build_expression, quote

T = TypeVar("T")

ID_FIELD = "id"
TEXT_FIELD = "text"
RESERVED_FIELDS = (ID_FIELD, PAYLOAD_FIELD, TEXT_FIELD)
ID_LENGTH = 36  # a UUID's text
TEXT_LENGTH = 65_535  # Milvus's longest VARCHAR
MAX_SPARSE_ID = 2**32 - 2  # Milvus takes sparse ids below 2^32 - 1; the placeholder needs sparse_dim itself
_PAGE = 1000  # ids per delete or get request, points per scan page
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")  # Milvus collection and field names
_SPARSE_SEARCH = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}  # exact: no query feature dropped
_ATTACH_LITE = (
    "Milvus Lite cannot add a field to an existing collection (add_collection_field answers 'Method not "
    "implemented') nor store rows that leave a sparse field empty; attach needs a Milvus server 2.6.2+ (--url)"
)

# What Milvus does where backends differ (read by the core and the conformance kit).
CAPABILITIES = Capabilities(
    fusions=frozenset({Fusion.RRF, Fusion.WEIGHTED}),  # RRFRanker(k), WeightedRanker; Milvus has no DBSF
    weighted_fusions=frozenset({Fusion.WEIGHTED}),  # Milvus's RRFRanker takes no weights
    # A server 2.6.2+ attaches; Milvus Lite refuses in one line (inspect_collection's cannot_attach).
    attachable=True,
    weight_bits=None,  # SPARSE_FLOAT_VECTOR keeps float32 weights exactly
    checks_dense_on_write=True,
    concurrent_writers="with a server URL; a Milvus Lite database file is held by one process",
    empty_sparse=(
        "stored with one placeholder feature at id sparse_dim, outside the model's width (Milvus refuses a sparse "
        "vector without a non-zero weight): it matches no query, and fetch_sparse gives it back empty"
    ),
    id_limits="any string: the primary key is its UUIDv5 (VARCHAR 36), the record id kept in the payload",
    transport="grpc",
)


def check_name(what: str, name: str) -> None:
    """Refuse a collection or field name Milvus can't take, before anything is sent.

    Raises:
        ConfigError: Naming it and the rule.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"Milvus {what} name {name!r}: use letters, digits and '_', starting with a letter or '_' (at most 255)"
        )


class MilvusBackend:
    """Collections in Milvus; see :func:`splare_connect_milvus.create_backend` to make one.

    Args:
        client: A ``pymilvus.MilvusClient`` (Milvus Lite file, or a server).
        lite: Whether ``client`` runs Milvus Lite (attach is refused there with its reason).
        where: Where the collections are, for messages (``" in ./splare-data/milvus.db"``).
        retry: The retry policy for a server; None for Milvus Lite (nothing to retry).
        timeout: Seconds each request may take (pymilvus retries within it); None: no limit.
        max_batch_points: Points per write request.
        max_batch_bytes: Estimated bytes per write request (a server's gRPC messages are capped).
        owns_client: Close the client on :meth:`close`; False for a client the application keeps.
        concurrent_writers: Whether other processes may write the same collections at once
            (true of a server, not of a Milvus Lite file).
    """

    def __init__(
        self,
        client: Any,
        *,
        lite: bool,
        where: str = "",
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        max_batch_points: int = 256,
        max_batch_bytes: int = 16 * 1024 * 1024,
        owns_client: bool = True,
        concurrent_writers: bool = False,
        lite_file: Path | None = None,
    ) -> None:
        self.client = client
        self.lite_file = lite_file
        self.lite = lite
        self.where = where
        self.retry = retry
        self.timeout = timeout
        self.max_batch_points = max_batch_points
        self.max_batch_bytes = max_batch_bytes
        self.owns_client = owns_client
        self.concurrent_writers = concurrent_writers
        self.page_size = _PAGE
        self._specs: dict[str, CollectionSpec] = {}
        self._loaded: set[str] = set()
        self._schemas: dict[str, AppSchema] = {}  # app collections' schemas (attach), read once
        self._writable: set[str] = set()  # attached collections found safe to write (attach_refusal)
        self._version: str | None = None  # the server's, read once (attach only)

    @property
    def retry_deadline(self) -> float | None:
        """Seconds after a request's first try past which it is not retried (None: Milvus Lite doesn't retry)."""
        return None if self.retry is None else self.retry.deadline

    def _call(self, action: str, function: Callable[[], T], *, writes: bool = False) -> T:
        """One request: retried on a server, and any failure one redacted line naming ``action``."""
        retry = self.retry
        run = function if retry is None else (lambda: retry.call(action, function))
        return call_engine(action, run, rejects_data=refuses_data if writes else None)

    def _options(self) -> dict[str, Any]:
        return {} if self.timeout is None else {"timeout": self.timeout}

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with its spec stored as a property, or check that the existing one matches.

        Raises:
            ConfigError: A name Milvus can't take, a vector name that clashes with the
                payload columns, IDF asked for (Milvus weights sparse vectors as given), or
                a width past Milvus's sparse ids.
        """
        check_name("collection", spec.name)
        for name in (spec.sparse_vector_name, spec.dense_vector_name):
            check_name("field", name)
            if name in RESERVED_FIELDS:
                raise ConfigError(f"vector name {name!r} is taken by the payload columns {RESERVED_FIELDS}")
        if spec.idf:
            raise ConfigError(
                "Milvus has no IDF weighting for a sparse vector field given as vectors (its BM25 function works "
                "on text it analyzes itself); create the collection without idf"
            )
        if spec.sparse_dim > MAX_SPARSE_ID:
            raise ConfigError(f"Milvus takes sparse ids below 2^32 - 1; a width of {spec.sparse_dim} is too large")
        if spec.attached:
            raise ConfigError(
                _ATTACH_LITE if self.lite else "an application's collection is attached to (attach), not created"
            )
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
        schema.add_field(spec.sparse_vector_name, DataType.SPARSE_FLOAT_VECTOR)
        if spec.dense_dim:
            schema.add_field(spec.dense_vector_name, DataType.FLOAT_VECTOR, dim=spec.dense_dim)
        schema.add_field(PAYLOAD_FIELD, DataType.JSON)
        schema.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=TEXT_LENGTH, nullable=True)
        index = MilvusClient.prepare_index_params()
        index.add_index(spec.sparse_vector_name, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        if spec.dense_dim:
            index.add_index(spec.dense_vector_name, index_type="FLAT", metric_type="COSINE")
        self._call(
            f"creating collection {spec.name!r}",
            lambda: self.client.create_collection(
                spec.name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                properties={SPEC_KEY: json.dumps(spec.to_dict(), sort_keys=True)},
                **self._options(),
            ),
        )
        self._specs[spec.name] = spec
        self._loaded.add(spec.name)  # created with its indexes: Milvus loads it

    def _describe(self, name: str) -> dict[str, Any] | None:
        """Milvus's description of a collection (schema, properties), or None when it doesn't exist."""
        if not self._call(f"checking collection {name!r}", lambda: self.client.has_collection(name, **self._options())):
            return None
        info = self._call(
            f"reading collection {name!r}", lambda: self.client.describe_collection(name, **self._options())
        )
        return dict(info)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The stored spec, or None when the collection doesn't exist (read once, then cached).

        Raises:
            CollectionNotAttachedError: The collection exists but splare-connect didn't make it.
        """
        if name in self._specs:
            return self._specs[name]
        info = self._describe(name)
        if info is None:
            return None
        stored = (info.get("properties") or {}).get(SPEC_KEY)
        try:
            data = json.loads(stored) if isinstance(stored, str) else None
        except ValueError:
            data = None
        spec = CollectionSpec.parse_stored(name, data)
        if spec is None:
            taken = "holds something else" if stored is not None else "is missing"
            if self.lite:
                remedy = _ATTACH_LITE
            elif stored is not None:
                remedy = "it is the application's own, so splare-connect can neither use nor attach to it"
            else:
                remedy = f"attach it first: splare-connect attach --text-field FIELD {name}"
            raise CollectionNotAttachedError(
                f"collection {name!r} exists but was not created by splare-connect (its property {SPEC_KEY!r} "
                f"{taken}); {remedy}"
            )
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        """Names of the collections."""
        return sorted(self._call("listing collections", lambda: self.client.list_collections(**self._options())))

    def drop_collection(self, name: str) -> None:
        """Delete a collection splare-connect made, and everything in it (a missing one is left as it is).

        Raises:
            CollectionNotAttachedError: Another application made it; it is not dropped.
            BackendError: splare-connect is attached to it: it is the application's, and not dropped.
        """
        self._specs.pop(name, None)
        self._loaded.discard(name)
        self._schemas.pop(name, None)
        spec = self.describe_collection(name)
        if spec is None:
            return
        if spec.attached:
            raise BackendError(f"collection {name!r} belongs to another application; splare-connect does not drop it")
        self._call(f"dropping collection {name!r}", lambda: self.client.drop_collection(name, **self._options()))
        self._specs.pop(name, None)

    # ------------------------------------------- collections another app made
    # Not run against a Milvus server: tested against a recording fake of MilvusClient
    # (tests/test_milvus_server_attach.py). See splare_connect_milvus.app_schema for what is refused.
    def inspect_collection(self, name: str) -> CollectionLayout | None:
        """The collection's fields and spec, whoever made it, and why attach can't write into it here (if so).

        Attach reads this first, so a refusal (``cannot_attach``) comes in one line before
        anything is changed: Milvus Lite always; on a server, the cases of
        :func:`~splare_connect_milvus.app_schema.attach_refusal`. The fields attach added
        (told by their description) are left out of ``sparse`` and ``payload_fields``, so a
        first run killed between adding them and storing the spec is completed by the next.
        """
        info = self._describe(name)
        if info is None:
            return None
        schema = AppSchema.read(name, info)
        self._schemas[name] = schema
        stored = schema.properties.get(SPEC_KEY)
        try:
            spec = CollectionSpec.parse_stored(name, json.loads(stored)) if isinstance(stored, str) else None
        except ValueError:
            spec = None
        return CollectionLayout(
            name=name,
            dense=schema.dense(),
            sparse=schema.sparse(),
            spec=spec,
            spec_key_taken=spec is None and stored is not None,
            payload_fields=schema.taken(),
            cannot_attach=_ATTACH_LITE if self.lite else self._refusal(schema),
        )

    def store_spec(self, spec: CollectionSpec) -> None:
        """Replace the ``splare_connect`` collection property (the spec, with its search settings); nothing else."""
        self._spec(spec.name)  # it exists, and holds a spec
        self._call(
            f"storing splare-connect's settings in {spec.name!r}",
            lambda: self.client.alter_collection_properties(
                spec.name, {SPEC_KEY: json.dumps(spec.to_dict(), sort_keys=True)}, **self._options()
            ),
        )
        self._specs[spec.name] = spec

    def attach_collection(self, spec: CollectionSpec) -> None:
        """Add the nullable sparse field, the nullable state field and the sparse index, then store the spec.

        Each step is skipped when done already, so a re-run (or a run after one killed
        midway) completes the collection. The sparse field is added first: a server that
        can't add a nullable vector field refuses it with nothing changed. The app's own
        properties stay (``alter_collection_properties`` sets only ``splare_connect``).

        Raises:
            ConfigError: Milvus Lite; a field name Milvus can't take; the two names equal;
                IDF asked for; a width past Milvus's sparse ids; a collection attach must
                not write into (:func:`~splare_connect_milvus.app_schema.attach_refusal`).
            BackendError: A field of one of those names that attach didn't add, or the
                server refused a step.
        """
        name = spec.name
        if self.lite:
            raise ConfigError(f"cannot attach to {name!r}: {_ATTACH_LITE}")
        check_name("field", spec.sparse_vector_name)
        check_name("field", spec.state_key)
        if spec.sparse_vector_name == spec.state_key:
            raise ConfigError(f"the SPLARE field and the state field can't both be named {spec.state_key!r}")
        if spec.idf:
            raise ConfigError("Milvus has no IDF weighting for sparse vectors given as vectors; attach without idf")
        if spec.sparse_dim > MAX_SPARSE_ID:
            raise ConfigError(f"Milvus takes sparse ids below 2^32 - 1; a width of {spec.sparse_dim} is too large")
        self._schemas.pop(name, None)
        schema = self._app_schema(name)
        refusal = self._refusal(schema)
        if refusal is not None:
            raise ConfigError(f"cannot attach to {name!r}: {refusal} (nothing was changed)")
        from pymilvus import DataType, MilvusClient

        wanted = (
            (spec.sparse_vector_name, DataType.SPARSE_FLOAT_VECTOR, SPARSE_MARK),
            (spec.state_key, DataType.JSON, STATE_MARK),
        )
        for field, kind, mark in wanted:
            if field in schema.fields:
                if schema.fields[field].get("description") != mark:
                    raise BackendError(
                        f"collection {name!r} already has a field {field!r} that splare-connect did not add; choose "
                        "another name (--sparse-name, --state-key)"
                    )
                continue
            try:
                self._call(
                    f"adding the nullable field {field!r} to {name!r}",
                    lambda field=field, kind=kind, mark=mark: self.client.add_collection_field(  # type: ignore[misc]
                        name, field, kind, desc=mark, nullable=True, **self._options()
                    ),
                )
            except BackendError as error:
                if kind != DataType.SPARSE_FLOAT_VECTOR:
                    raise
                raise BackendError(
                    f"{error} (a nullable vector field needs a recent Milvus 2.6.x; nothing was changed)"
                ) from None
        indexes = self._call(
            f"reading the indexes of {spec.sparse_vector_name!r} in {name!r}",
            lambda: self.client.list_indexes(name, field_name=spec.sparse_vector_name, **self._options()),
        )
        if not indexes:
            index = MilvusClient.prepare_index_params()
            index.add_index(spec.sparse_vector_name, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            self._call(
                f"indexing {spec.sparse_vector_name!r} of {name!r}",
                lambda: self.client.create_index(name, index, **self._options()),
            )
        self._call(
            f"storing splare-connect's settings in {name!r}",
            lambda: self.client.alter_collection_properties(
                name, {SPEC_KEY: json.dumps(spec.to_dict(), sort_keys=True)}, **self._options()
            ),
        )
        self._schemas.pop(name, None)  # read again, with the new fields
        self._specs[name] = spec
        self._writable.add(name)
        self._loaded.discard(name)  # loaded again before the first read, the new field with it

    def iter_points(
        self, collection: str, fields: Sequence[str], sparse_vector_name: str | None = None
    ) -> Iterator[AppPoint]:
        """Every row in primary-key order, with those of the named fields it has, and whether it has the vector.

        Rows are read a page at a time (``pk > last``, the order of pymilvus's query
        iterator) with Strong consistency. A field the collection can't return (a vector,
        or an undeclared name without a dynamic field) is left out; a null value counts as
        missing. ``has_sparse`` reads the vector (a null field comes back as None): whether
        a filter on a null vector field works is not documented.

        Raises:
            ConfigError: Milvus Lite (see :meth:`inspect_collection`).
        """
        if self.lite:
            raise ConfigError(f"cannot attach to {collection!r}: {_ATTACH_LITE}")
        schema = self._app_schema(collection)
        self._load(collection)
        wanted = [name for name in dict.fromkeys(fields) if schema.readable(name)]
        vector = sparse_vector_name if sparse_vector_name in schema.fields else None
        output = [name for name in wanted if name != schema.pk] + ([vector] if vector else [])
        for row in self._scan(collection, output, schema.pk, schema.pk_is_str, strong=True):
            payload = {name: row[name] for name in wanted if row.get(name) is not None}
            yield AppPoint(row[schema.pk], payload, bool(vector and row.get(vector)))

    def clear_sparse(self, collection: str, point_ids: Sequence[PointId]) -> None:
        """Set the SPLARE field and the state field of these rows to null (partial upserts); nothing else changes.

        Rows the app deleted meanwhile are skipped (:meth:`_write_existing`).
        """
        spec, schema = self._attached(collection)
        rows = {key: {schema.pk: key, spec.sparse_vector_name: None, spec.state_key: None} for key in point_ids}
        self._write_existing(collection, schema, rows)

    def update_sparse(self, collection: str, updates: Sequence[SparseUpdate]) -> list[PointId]:
        """Write each row's SPLARE vector and state with partial upserts: the primary key and those two fields only.

        A vector with no features is stored as the blank-document placeholder (Milvus
        refuses an empty sparse vector). Rows the app deleted since they were read are
        skipped and returned (:meth:`_write_existing`).

        Raises:
            BackendError: A vector outside the collection's width (nothing written), or the server refused.
        """
        spec, schema = self._attached(collection)
        for update in updates:
            spec.check_width(str(update.point_id), update.sparse)
        rows = {
            update.point_id: {
                schema.pk: update.point_id,
                spec.sparse_vector_name: _sparse_dict(update.sparse) if update.sparse.nnz else {spec.sparse_dim: 1.0},
                spec.state_key: dict(update.state),
            }
            for update in updates
        }
        return self._write_existing(collection, schema, rows)

    def _write_existing(self, collection: str, schema: AppSchema, rows: dict[PointId, dict[str, Any]]) -> list[PointId]:
        """Partial-upsert ``rows`` (by primary key) where the row still exists; the keys of those that don't.

        Milvus runs a partial upsert of a missing key as an insert, so each batch is first
        checked (``pk in [...]``, Strong); a row the app deletes between that check and the
        write makes Milvus refuse the request (the row lacks the app's required fields,
        which :func:`~splare_connect_milvus.app_schema.attach_refusal` made sure exist), and
        the batch is checked again and written without it. A refusal with every row
        present is the write's own, and raised.
        """
        vanished: list[PointId] = []
        keys = list(rows)
        for start in range(0, len(keys), self.max_batch_points):
            batch = keys[start : start + self.max_batch_points]
            present = self._existing(collection, schema, batch)
            vanished += [key for key in batch if key not in present]
            pending = [key for key in batch if key in present]
            while pending:
                try:
                    self._call(
                        f"writing the SPLARE fields of {len(pending)} rows of {collection!r}",
                        lambda pending=pending: self.client.upsert(  # type: ignore[misc]
                            collection, [rows[key] for key in pending], partial_update=True, **self._options()
                        ),
                        writes=True,
                    )
                    break
                except BackendError:
                    present = self._existing(collection, schema, pending)
                    if len(present) == len(pending):
                        raise  # not a deletion: the write itself failed
                    vanished += [key for key in pending if key not in present]
                    pending = [key for key in pending if key in present]
        return vanished

    def _existing(self, collection: str, schema: AppSchema, keys: Sequence[PointId]) -> set[PointId]:
        """Which of these primary keys have a row now (Strong consistency)."""
        found: set[PointId] = set()
        for start in range(0, len(keys), _PAGE):
            batch = keys[start : start + _PAGE]
            expression = f"{schema.pk} in [{', '.join(schema.literal(key) for key in batch)}]"
            rows = self._call(
                f"checking which of {len(batch)} rows of {collection!r} exist",
                lambda expression=expression: self.client.query(  # type: ignore[misc]
                    collection,
                    filter=expression,
                    output_fields=[schema.pk],
                    consistency_level="Strong",
                    **self._options(),
                ),
            )
            found.update(row[schema.pk] for row in rows)
        return found

    def _attached(self, collection: str) -> tuple[CollectionSpec, AppSchema]:
        """The spec and schema of a collection attach may write into, checked once per backend.

        Raises:
            ConfigError: Milvus Lite; not an attached collection; or one attach must not write into.
        """
        if self.lite:
            raise ConfigError(f"cannot attach to {collection!r}: {_ATTACH_LITE}")
        spec = self._spec(collection)
        if not spec.attached:
            raise ConfigError(f"collection {collection!r} was made by splare-connect; keep it in sync with `ingest`")
        schema = self._app_schema(collection)
        if collection not in self._writable:
            refusal = self._refusal(schema)
            if refusal is not None:
                raise ConfigError(f"cannot write into {collection!r}: {refusal}")
            self._writable.add(collection)
        return spec, schema

    def _app_schema(self, name: str) -> AppSchema:
        """A collection's schema, read once (again after attach changes it)."""
        if name not in self._schemas:
            info = self._describe(name)
            if info is None:
                raise CollectionNotFoundError(f"collection {name!r} does not exist{self.where}")
            self._schemas[name] = AppSchema.read(name, info)
        return self._schemas[name]

    def _refusal(self, schema: AppSchema) -> str | None:
        """Why attach must not write into this collection on this server (its version read once), or None."""
        if self._version is None:
            self._version = str(
                self._call("reading the server's version", lambda: self.client.get_server_version(**self._options()))
            )
        partitions: list[str] = []
        if not schema.partition_key:
            partitions = list(
                self._call(
                    f"listing the partitions of {schema.name!r}",
                    lambda: self.client.list_partitions(schema.name, **self._options()),
                )
            )
        return attach_refusal(schema, self._version, partitions)

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points, in batches within the size caps.

        Raises:
            BackendError: A vector doesn't fit the collection (nothing of its batch is written).
            RecordsRejectedError: Milvus refused the records' data.
        """
        spec = self._spec(collection)
        rows = [_row(spec, record) for record in points]  # every record checked before anything is written
        for batch in split_by_size(rows, self.max_batch_points, self.max_batch_bytes, _row_bytes):
            self._call(
                f"writing {len(batch)} points to {collection!r}",
                lambda batch=batch: self.client.upsert(collection, batch, **self._options()),  # type: ignore[misc]
                writes=True,
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by record id (missing ones are ignored)."""
        self._spec(collection)
        for start in range(0, len(ids), _PAGE):
            keys = [point_id(i) for i in ids[start : start + _PAGE]]
            self._call(
                f"deleting {len(keys)} points from {collection!r}",
                lambda keys=keys: self.client.delete(collection, ids=keys, **self._options()),  # type: ignore[misc]
            )

    def finalize(self, collection: str) -> None:
        """Make recent writes durable (flush) and the collection searchable (load)."""
        self._spec(collection)
        self._call(f"flushing {collection!r}", lambda: self.client.flush(collection, **self._options()))
        self._loaded.discard(collection)
        self._load(collection)

    # ------------------------------------------------------------------- reads
    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's record id with the named top-level payload fields (the text only when named)."""
        self._spec(collection)
        output = [PAYLOAD_FIELD, *([TEXT_FIELD] if TEXT in fields else [])]
        for row in self._scan(collection, output):
            payload = _payload(row)
            record_id = pop_record_id(payload, default=str(row.get(ID_FIELD)))
            yield record_id, {name: payload[name] for name in fields if name in payload}

    def _scan(
        self, collection: str, output: list[str], pk: str = ID_FIELD, pk_is_str: bool = True, strong: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every row, in primary-key order, a page at a time (``pk > last`` with the server's iterator ordering).

        pymilvus's ``query_iterator`` does the same (its first page ``pk != ""`` or, for an
        INT64 key, below the largest int64), but first asks for a session timestamp that
        Milvus Lite doesn't implement (it logs a gRPC traceback each time). ``strong``: read
        with Strong consistency (an app's collection may default to less).
        """
        last: int | str | None = None
        consistency = {"consistency_level": "Strong"} if strong else {}
        while True:
            if last is None:
                expression = f'{pk} != ""' if pk_is_str else f"{pk} <= {INT64_MAX}"
            else:
                expression = f"{pk} > {quote(str(last)) if pk_is_str else int(last)}"
            page = self._call(
                f"reading points of {collection!r}",
                lambda expression=expression: self.client.query(  # type: ignore[misc]
                    collection,
                    filter=expression,
                    limit=self.page_size,
                    output_fields=output,
                    iterator="True",
                    reduce_stop_for_best="True",
                    **consistency,
                    **self._options(),
                ),
            )
            rows = [dict(row) for row in page]
            rows.sort(key=(lambda row: str(row[pk])) if pk_is_str else (lambda row: int(row[pk])))
            yield from rows
            if len(rows) < self.page_size:
                return
            last = rows[-1][pk]

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by record id, in the order asked (missing ids are left out)."""
        spec = self._spec(collection)
        if spec.attached:
            return self._fetch_attached(spec, ids)
        found: dict[str, SparseVector] = {}
        for start in range(0, len(ids), _PAGE):
            keys = [point_id(i) for i in ids[start : start + _PAGE]]
            rows = self._call(
                f"reading vectors of {collection!r}",
                lambda keys=keys: self.client.get(  # type: ignore[misc]
                    collection, ids=keys, output_fields=[spec.sparse_vector_name, PAYLOAD_FIELD], **self._options()
                ),
            )
            for row in rows:
                record_id = str((row.get(PAYLOAD_FIELD) or {}).get(RECORD_ID, row.get(ID_FIELD)))
                found[record_id] = _sparse(spec, row.get(spec.sparse_vector_name))
        return {i: found[i] for i in ids if i in found}

    def _fetch_attached(self, spec: CollectionSpec, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored SPLARE vectors of an app's rows by their primary keys (rows without one are left out)."""
        schema = self._app_schema(spec.name)
        keys: list[PointId] = []
        for text in ids:
            try:
                keys.append(schema.native(text))
            except ValueError:  # not an INT64 key: no such row
                continue
        found: dict[str, SparseVector] = {}
        for start in range(0, len(keys), _PAGE):
            batch = keys[start : start + _PAGE]
            rows = self._call(
                f"reading vectors of {spec.name!r}",
                lambda batch=batch: self.client.get(  # type: ignore[misc]
                    spec.name, ids=batch, output_fields=[spec.sparse_vector_name], **self._options()
                ),
            )
            for row in rows:
                if row.get(spec.sparse_vector_name) is not None:
                    found[str(row[schema.pk])] = _sparse(spec, row[spec.sparse_vector_name])
        return {i: found[i] for i in ids if i in found}

    def count(self, collection: str) -> int:
        """Number of points stored."""
        self._spec(collection)
        rows = self._call(
            f"counting {collection!r}",
            lambda: self.client.query(collection, filter="", output_fields=["count(*)"], **self._options()),
        )
        return int(rows[0]["count(*)"])

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` by sparse dot product (exact: no query feature is dropped).

        ``filter``: :class:`~splare_connect.filters.Condition` objects, or a Milvus
        expression string of the caller's own.
        """
        spec = self._spec(collection)
        spec.check_width("the query", query)
        expression = build_expression(filter, attached=spec.attached)
        if query.nnz == 0:  # no features: nothing matches (Milvus refuses an empty sparse vector)
            return []
        results = self._call(
            f"searching {collection!r}",
            lambda: self.client.search(
                collection,
                data=[_sparse_dict(query)],
                anns_field=spec.sparse_vector_name,
                limit=k,
                filter=expression,
                output_fields=self._hit_fields(spec),
                search_params=_SPARSE_SEARCH,
                **self._options(),
            ),
        )
        return self._hits(spec, results)

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
        """Sparse and dense searches, each filtered, fused by Milvus (``RRFRanker(rrf_k)`` or ``WeightedRanker``).

        Weighted fusion sums each side's scores normalised by Milvus (``norm_score``),
        times its weight. Milvus takes weights in [0, 1]: larger ones are scaled so the
        larger is 1, which ranks the same.

        Raises:
            ConfigError: DBSF (Milvus has none), unequal ``weights`` with RRF (Milvus's
                RRF takes none; see :data:`CAPABILITIES`), negative or all-zero weights.
        """
        CAPABILITIES.check_fusion("Milvus", fusion, weights)
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        spec = self._spec(collection)
        spec.check_width("the query", sparse)
        field, width, metric = self._dense_field(spec, dense_field)
        vector = _dense_list(spec.name, width, "query", dense)
        expression = build_expression(filter, attached=spec.attached)
        requests, sides = [], []
        if sparse.nnz:  # a query with no features has no sparse side (Milvus refuses an empty sparse vector)
            requests.append(
                AnnSearchRequest(
                    [_sparse_dict(sparse)], spec.sparse_vector_name, _SPARSE_SEARCH, candidates, expr=expression
                )
            )
            sides.append(0)
        requests.append(AnnSearchRequest([vector], field, {"metric_type": metric}, candidates, expr=expression))
        sides.append(1)
        ranker: Any
        if Fusion(fusion) == Fusion.RRF:
            ranker = RRFRanker(int(rrf_k))
        else:
            ranker = WeightedRanker(*[w for i, w in enumerate(_unit_weights(weights)) if i in sides])
        results = self._call(
            f"hybrid search in {collection!r}",
            lambda: self.client.hybrid_search(
                collection, requests, ranker, limit=k, output_fields=self._hit_fields(spec), **self._options()
            ),
        )
        return self._hits(spec, results)

    def close(self) -> None:
        """Close the client (unless the application owns it), and stop the Milvus Lite file's server.

        pymilvus keeps the in-process Lite server, and its lock on the file, until the
        process exits; stopping it lets another process (the next command, a resumed
        ingest) open the file, as closing Qdrant Edge does.
        """
        if not self.owns_client:
            return
        call_engine("closing the Milvus client", self.client.close)
        if self.lite_file is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(self.lite_file))

    # ----------------------------------------------------------------- helpers
    def _dense_field(self, spec: CollectionSpec, dense_field: str | None) -> tuple[str, int, str]:
        """The dense field to search, its width and its index's metric: the collection's own, or the one named."""
        if dense_field is None or (spec.dense_dim and dense_field == spec.dense_vector_name):
            if not spec.dense_dim:
                raise BackendError(
                    f"collection {spec.name!r} has no dense vectors of splare-connect's; "
                    "pass your own query vector and the dense field it is for"
                )
            return spec.dense_vector_name, spec.dense_dim, "COSINE"
        dense = self._app_schema(spec.name).dense()
        if dense_field not in dense:
            names = ", ".join(repr(name) for name in dense) or "none"
            raise BackendError(
                f"collection {spec.name!r} has no dense vector {dense_field!r} (its dense vectors: {names})"
            )
        index = self._call(
            f"reading the index of {dense_field!r} in {spec.name!r}",
            lambda: self.client.describe_index(spec.name, dense_field, **self._options()),
        )
        return dense_field, dense[dense_field], str((index or {}).get("metric_type") or "COSINE")

    def _hit_fields(self, spec: CollectionSpec) -> list[str]:
        """The fields a hit returns: ours, or an attached collection's own scalars (its text and doc id among them).

        An attached collection's text or doc id field may be a key of its dynamic field:
        named too. Other dynamic keys are not returned.
        """
        if not spec.attached:
            return [PAYLOAD_FIELD, TEXT_FIELD]
        schema = self._app_schema(spec.name)
        tops = [path.split(".")[0] for path in (spec.text_field, spec.doc_id_field) if path]
        extra = [top for top in tops if top not in schema.fields and schema.dynamic]
        return list(dict.fromkeys([*schema.scalars(), *extra]))

    def _hits(self, spec: CollectionSpec, results: Any) -> list[Hit]:
        """Hits from one query's results: an attached collection's by its own primary key, its row as the payload."""
        if not spec.attached:
            return _hits(results)
        pk = self._app_schema(spec.name).pk
        hits = []
        for hit in results[0] if results else []:
            payload = {key: value for key, value in dict(hit.get("entity") or {}).items() if key != pk}
            hits.append(Hit(id=str(hit.get(pk)), score=float(hit.get("distance")), payload=payload))
        return hits

    def _load(self, name: str) -> None:
        """Load a collection before its first read (Milvus reads only loaded collections; reopening releases them)."""
        if name not in self._loaded:
            self._call(f"loading {name!r}", lambda: self.client.load_collection(name, **self._options()))
            self._loaded.add(name)

    def _spec(self, name: str) -> CollectionSpec:
        spec = self.describe_collection(name)
        if spec is None:
            raise CollectionNotFoundError(f"collection {name!r} does not exist{self.where}")
        self._load(name)
        return spec


def _sparse_dict(vector: SparseVector) -> dict[int, float]:
    """``{feature id: weight}``, the form pymilvus sends; float32 weights convert to float exactly."""
    return dict(zip(vector.indices.tolist(), vector.values.tolist(), strict=True))


def _sparse(spec: CollectionSpec, stored: Any) -> SparseVector:
    """A stored sparse vector (``{id: weight}``) as the core's type, without the blank-document placeholder."""
    pairs = sorted((int(i), float(v)) for i, v in dict(stored or {}).items() if int(i) != spec.sparse_dim)
    return SparseVector(
        np.asarray([i for i, _ in pairs], np.uint32), np.asarray([v for _, v in pairs], np.float32), spec.sparse_dim
    )


def _row(spec: CollectionSpec, record: PointRecord) -> dict[str, Any]:
    """A record as stored, once its vectors are known to fit the collection."""
    spec.check_width(record.id, record.sparse)
    payload = stored_payload(record.id, record.payload)
    text = payload.pop(TEXT) if isinstance(payload.get(TEXT), str) else None
    row: dict[str, Any] = {
        ID_FIELD: point_id(record.id),
        spec.sparse_vector_name: _sparse_dict(record.sparse) if record.sparse.nnz else {spec.sparse_dim: 1.0},
        PAYLOAD_FIELD: payload,
        TEXT_FIELD: text,
    }
    if spec.dense_dim:
        row[spec.dense_vector_name] = _dense_list(spec.name, spec.dense_dim, record.id, record.dense)
    return row


def _row_bytes(row: dict[str, Any]) -> int:
    """Rough size of a row in a write request (ids and weights ~10 B each, dense 4 B a value)."""
    size = 100 + len(json.dumps(row[PAYLOAD_FIELD], ensure_ascii=False, default=str).encode())
    size += len((row[TEXT_FIELD] or "").encode())
    for value in row.values():
        if isinstance(value, dict) and value is not row[PAYLOAD_FIELD]:
            size += 10 * len(value)
        elif isinstance(value, list):
            size += 4 * len(value)
    return size


def _dense_list(collection: str, width: int, record_id: str, dense: npt.NDArray[np.float32] | None) -> list[float]:
    """A dense vector of the field's width with finite values, as a list (checked before anything is sent)."""
    if dense is None:
        raise BackendError(f"record {record_id!r}: collection {collection!r} needs a dense vector")
    array = np.asarray(dense, dtype=np.float32).reshape(-1)
    if array.shape[0] != width or not np.isfinite(array).all():
        raise BackendError(f"record {record_id!r}: dense vector must be {width} finite floats, got shape {array.shape}")
    return array.tolist()


def _unit_weights(weights: tuple[float, float]) -> tuple[float, float]:
    """``(sparse, dense)`` weights within Milvus's [0, 1], scaled so the larger is 1 when one is over 1.

    Raises:
        ConfigError: A negative or non-finite weight, or both zero.
    """
    values = tuple(float(w) for w in weights)
    if any(not np.isfinite(w) or w < 0 for w in values) or max(values) == 0:
        raise ConfigError(f"Milvus's weighted fusion takes weights of 0 or more, not both 0; got {tuple(weights)}")
    top = max(values)
    return (values[0] / top, values[1] / top) if top > 1 else (values[0], values[1])


def _payload(row: Any) -> dict[str, Any]:
    """A stored row's payload: the JSON field with the text put back."""
    payload = dict(row.get(PAYLOAD_FIELD) or {})
    text = row.get(TEXT_FIELD)
    if text is not None:
        payload[TEXT] = text
    return payload


def _hits(results: Any) -> list[Hit]:
    """Hits from one query's results (``id``, ``distance``, ``entity``)."""
    hits = []
    for hit in results[0] if results else []:
        payload = _payload(hit.get("entity") or {})
        record_id = pop_record_id(payload, default=str(hit.get(ID_FIELD, hit.get("id"))))
        hits.append(Hit(id=record_id, score=float(hit.get("distance")), payload=payload))
    return hits
