"""OpenSearch behind the splare-connect Backend protocol, through opensearch-py.

- Sparse vectors go into a ``rank_features`` field (exact scoring). Queries use
  ``neural_sparse`` with ``query_tokens`` when the neural-search plugin is present
  (2.14+), otherwise a bool/should of ``rank_feature`` clauses: the backend asks the
  cluster once (``GET /`` and ``GET /_cat/plugins``).
- An optional SEISMIC ``sparse_vector`` field (3.3+) serves approximate queries.
- Hybrid search is a ``hybrid`` query (sparse + ``knn``) through a search pipeline that
  the backend creates, idempotently, for the fusion asked for.
- Writes use ``helpers.streaming_bulk`` capped by bytes, with per-document failures
  collected and reported (never swallowed), 429s retried per document with backoff by
  the helper, and whole requests retried on 429, 5xx, timeouts and connection errors
  (safe: point ids are deterministic) by :func:`splare_connect.backends.retrying.retry_call`:
  after the server's ``Retry-After`` when a 429 carries one (see
  :mod:`splare_connect_opensearch.connection`), with exponential backoff otherwise,
  within ``max_attempts`` tries and a ``retry_deadline``.
- Error messages are one line and redacted: an error body may echo the request's
  ``Authorization`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

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
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, ErrorRules, RetryPolicy
from splare_connect.backends.schema import RECORD_ID, SPEC_KEY, point_id, pop_record_id
from splare_connect.errors import (
    BackendError,
    CollectionNotAttachedError,
    CollectionNotFoundError,
    ConfigError,
    PartialWriteError,
)
from splare_connect.redaction import safe_message
from splare_connect.sparse_vector import SparseVector
from splare_connect_opensearch import bodies

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
QueryMode = Literal["auto", "neural_sparse", "rank_feature", "ann"]

_RETRY_STATUS = {429, 500, 502, 503, 504}
_PAGE = 1000

# What OpenSearch does where backends differ (read by the core and the conformance kit).
CAPABILITIES = Capabilities(
    fusions=frozenset({Fusion.RRF, Fusion.DBSF}),  # search pipelines: score-ranker (RRF), z_score normalization
    weighted_fusions=frozenset({Fusion.RRF, Fusion.DBSF}),
    attachable=True,
    weight_bits=9,  # rank_features keeps a float32's top 9 significant bits
    checks_dense_on_write=False,  # the cluster checks a knn_vector's width and refuses the document in its reply
    concurrent_writers="always (a cluster)",
    empty_sparse="stored with no features (it matches no query)",
    id_limits="any string: the _id is its UUIDv5",
)
# Attach reads an app's index with the scroll API while it encodes: a page of 256 points
# takes minutes to encode on a CPU, so the search context is kept for 30 minutes.
_SCROLL_PAGE = 256
_SCROLL_KEEP = "30m"


class BulkWriteError(PartialWriteError):
    """Some documents of a bulk write were refused; the others were written.

    Attributes:
        failures: ``(record id, reason)`` for each refused document.
    """

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        shown = "; ".join(f"{record}: {reason}" for record, reason in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} documents were refused by OpenSearch: {shown}{more}", failures)


def is_retryable(error: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth retrying; other errors are not."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
    from opensearchpy.exceptions import TransportError

    if isinstance(error, OpenSearchConnectionError):  # includes ConnectionTimeout
        return True
    if isinstance(error, TransportError):
        return isinstance(error.status_code, int) and error.status_code in _RETRY_STATUS
    return False


def retry_after(error: BaseException) -> float | None:
    """Seconds a 429 asked to wait, when the connection could read ``Retry-After`` (else None: backoff)."""
    seconds = getattr(error, "retry_after_s", None)
    return float(seconds) if isinstance(seconds, (int, float)) else None


def describe(error: BaseException) -> str:
    """A short description of a request failure for retry warnings and give-up errors."""
    status = getattr(error, "status_code", None)
    text = _describe(error)
    return f"rate limited ({text})" if status == 429 else text


OPENSEARCH_ERRORS = ErrorRules(is_retryable, retry_after, describe)


class OpenSearchBackend:
    """Collections as OpenSearch indexes.

    Args:
        client: An ``opensearchpy.OpenSearch`` client.
        query_mode: ``"auto"`` (ask the cluster), ``"neural_sparse"``, ``"rank_feature"``
            (no plugin), or ``"ann"`` (the SEISMIC field; needs ``approximate``).
        approximate: Also index a SEISMIC ``sparse_vector`` field (OpenSearch 3.3+).
        seismic: SEISMIC method parameters (``n_postings``, ``cluster_ratio``, ...).
        quantization_ceiling: SEISMIC weight ceiling; default: the largest document
            weight the sync engine saw when it created the index.
        ann_parameters: Query-time SEISMIC parameters (``top_n``, ``heap_factor``).
        two_phase: ``(prune_ratio, expansion_rate, max_window_size)`` to run sparse
            queries through a ``neural_sparse_two_phase_processor`` pipeline.
        shards / replicas: Index settings.
        max_chunk_bytes: Bulk request size cap.
        max_attempts / backoff_seconds: Retry policy for whole requests (a 429's
            ``Retry-After`` replaces the backoff, capped at 60 s).
        retry_deadline: Seconds after a request's first try past which it is not
            retried (None: 120 s). Worst case per request: about this plus one timeout.
    """

    concurrent_writers = True  # a cluster takes writes from many processes at once

    def __init__(
        self,
        client: Any,
        *,
        query_mode: QueryMode = "auto",
        approximate: bool = False,
        seismic: Mapping[str, Any] | None = None,
        quantization_ceiling: float | None = None,
        ann_parameters: Mapping[str, Any] | None = None,
        two_phase: tuple[float, float, int] | None = None,
        shards: int = 1,
        replicas: int = 1,
        max_chunk_bytes: int = 8 * 1024 * 1024,
        chunk_size: int = 500,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
        retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    ) -> None:
        if query_mode == "ann" and not approximate:
            raise ConfigError("query_mode='ann' searches the SEISMIC field: set approximate=True too")
        self.client = client
        self.query_mode = query_mode
        self.approximate = approximate
        self.seismic = dict(seismic or {})
        self.quantization_ceiling = quantization_ceiling
        self.ann_parameters = dict(ann_parameters or {})
        self.two_phase = two_phase
        self.shards, self.replicas = shards, replicas
        self.max_chunk_bytes, self.chunk_size = max_chunk_bytes, chunk_size
        self.retry = RetryPolicy(OPENSEARCH_ERRORS, max_attempts, backoff_seconds, retry_deadline, LOGGER)
        self._specs: dict[str, CollectionSpec] = {}
        self._capabilities: dict[str, Any] | None = None
        self._pipelines: set[str] = set()
        self._layouts: dict[str, CollectionLayout] = {}
        self._routing: dict[str, dict[str, str]] = {}  # an attached index's custom routing, by document id

    @property
    def retry_deadline(self) -> float | None:
        """Seconds after a request's first try past which it is not retried."""
        return self.retry.deadline

    # ---------------------------------------------------------------- plumbing
    def _call(self, action: str, function: Callable[[], T]) -> T:
        """Run a request under the retry policy; failures become one-line, redacted BackendErrors."""
        from opensearchpy.exceptions import OpenSearchException

        try:
            result = self.retry.call(action, function)
        except BackendError:
            raise
        except OpenSearchException as exc:
            raise BackendError(safe_message(f"{action} failed: {_describe(exc)}")) from exc
        if isinstance(result, str):  # a text/plain reply: not OpenSearch, or a proxy's error page
            raise BackendError(safe_message(f"{action} failed: the reply is not JSON: {result}", limit=300))
        return result

    def capabilities(self) -> dict[str, Any]:
        """The cluster's version and whether the neural-search plugin is installed (asked once)."""
        if self._capabilities is None:
            info = self._call("reading cluster info", self.client.info)
            plugins = self._call("listing plugins", lambda: self.client.cat.plugins(format="json"))
            version = tuple(int(p) for p in str(info["version"]["number"]).split("-")[0].split(".")[:3])
            neural = any(str(p.get("component", "")).endswith("neural-search") for p in plugins)
            self._capabilities = {"version": version, "neural_search": neural}
        return self._capabilities

    def sparse_mode(self) -> str:
        """The sparse query form this backend sends."""
        if self.query_mode != "auto":
            return self.query_mode
        capabilities = self.capabilities()
        return (
            "neural_sparse" if capabilities["neural_search"] and capabilities["version"] >= (2, 14) else "rank_feature"
        )

    # ------------------------------------------------------------ collections
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the index (mapping ``_meta`` holds the spec), or check an existing one."""
        create_or_adopt(spec, self.describe_collection, lambda: self._create(spec))

    def _create(self, spec: CollectionSpec) -> None:
        body = bodies.index_body(
            spec,
            shards=self.shards,
            replicas=self.replicas,
            approximate=self.approximate,
            seismic=self.seismic,
            quantization_ceiling=self.quantization_ceiling,
        )
        self._call(f"creating index {spec.name!r}", lambda: self.client.indices.create(index=spec.name, body=body))
        self._specs[spec.name] = spec

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The spec from the index mapping's ``_meta``, or None if there is no such index."""
        if name in self._specs:
            return self._specs[name]
        layout = self.inspect_collection(name)
        if layout is None:
            return None
        if layout.spec is None and layout.spec_key_taken:
            raise CollectionNotAttachedError(
                f"index {name!r} exists but was not created by splare-connect: its metadata key {SPEC_KEY!r} in "
                "_meta holds the application's own data, so splare-connect can neither use nor attach to it"
            )
        if layout.spec is None:
            raise CollectionNotAttachedError(
                f"index {name!r} exists but was not created by splare-connect (no {SPEC_KEY!r} in _meta); "
                f"attach it first: splare-connect attach --text-field FIELD {name}"
            )
        self._specs[name] = layout.spec
        return layout.spec

    def _mapping(self, name: str) -> dict[str, Any] | None:
        """The index's mapping (``_meta``, ``properties``), or None when there is no such index."""
        from opensearchpy.exceptions import NotFoundError

        def get_mapping() -> Any:
            try:
                return self.client.indices.get_mapping(index=name)
            except NotFoundError:
                return None

        response = self._call(f"reading the mapping of {name!r}", get_mapping)
        if response is None:
            return None
        if len(response) != 1:
            # An alias or pattern over several indexes: one _meta written to all of them, or a
            # delete reaching indexes that are not ours. Refused.
            shown = ", ".join(sorted(response)[:5])
            raise BackendError(f"{name!r} names {len(response)} indexes ({shown}); name one index")
        return dict(next(iter(response.values()))["mappings"])

    # -------------------------------------------- indexes another app made
    def inspect_collection(self, name: str) -> CollectionLayout | None:
        """The index's top-level ``knn_vector`` and ``rank_features`` fields, and spec if any."""
        mapping = self._mapping(name)
        if mapping is None:
            return None
        properties = mapping.get("properties") or {}
        their_meta = mapping.get("_meta") or {}
        spec = bodies.spec_from_meta(name, their_meta.get(SPEC_KEY))
        return CollectionLayout(
            name=name,
            dense={
                field: int(value["dimension"])
                for field, value in properties.items()
                if value.get("type") == "knn_vector" and "dimension" in value
            },
            sparse=tuple(field for field, value in properties.items() if value.get("type") == "rank_features"),
            spec=spec,
            spec_key_taken=spec is None and SPEC_KEY in their_meta,
            payload_fields=tuple(properties),
            vectors_in_payload=True,
            cannot_attach=_source_problem(mapping.get("_source")),
        )

    def attach_collection(self, spec: CollectionSpec) -> None:
        """``PUT /<index>/_mapping``: the spec merged into the app's ``_meta``, the sparse field added."""
        mapping = self._mapping(spec.name)
        if mapping is None:
            raise CollectionNotFoundError(f"index {spec.name!r} does not exist")
        their_meta = {key: value for key, value in (mapping.get("_meta") or {}).items() if key != SPEC_KEY}
        body = bodies.attach_mapping(spec, their_meta)
        self._call(
            f"adding field {spec.sparse_vector_name!r} to index {spec.name!r}",
            lambda: self.client.indices.put_mapping(index=spec.name, body=body),
        )
        self._specs[spec.name] = spec
        self._layouts.pop(spec.name, None)

    def store_spec(self, spec: CollectionSpec) -> None:
        """``PUT /<index>/_mapping`` with only ``_meta``: the spec replaced, the app's keys sent back as they were."""
        self._spec(spec.name)  # it exists, and holds a spec
        mapping = self._mapping(spec.name) or {}
        their_meta = {key: value for key, value in (mapping.get("_meta") or {}).items() if key != SPEC_KEY}
        body = {"_meta": {**their_meta, SPEC_KEY: spec.to_dict()}}
        self._call(
            f"storing the settings of index {spec.name!r}",
            lambda: self.client.indices.put_mapping(index=spec.name, body=body),
        )
        self._specs[spec.name] = spec
        self._layouts.pop(spec.name, None)

    def iter_points(
        self, collection: str, fields: Sequence[str], sparse_vector_name: str | None = None
    ) -> Iterator[AppPoint]:
        """Every document with the named ``_source`` fields, through the scroll API in index order.

        With a vector name, each document's ``_source`` also brings that field, to tell
        whether it is there (OpenSearch has no cheaper test that is documented for
        ``rank_features``). A retried page could in principle skip one; its points are
        then encoded by the next run (a point is done only when its hash matches and its
        vector is there), never lost.
        """
        wanted = [*fields, *([sparse_vector_name] if sparse_vector_name and sparse_vector_name not in fields else [])]
        body = {"query": {"match_all": {}}, "_source": wanted, "size": _SCROLL_PAGE, "sort": ["_doc"]}
        routing = self._routing.setdefault(collection, {})
        response = self._call(
            f"reading {collection!r}", lambda: self.client.search(index=collection, body=body, scroll=_SCROLL_KEEP)
        )
        scroll_id = response.get("_scroll_id")
        try:
            while True:
                hits = response["hits"]["hits"]
                for hit in hits:
                    if hit.get("_routing") is not None:
                        routing[str(hit["_id"])] = str(hit["_routing"])
                    source = dict(hit.get("_source") or {})
                    has_sparse = sparse_vector_name is not None and sparse_vector_name in source
                    if sparse_vector_name is not None and sparse_vector_name not in fields:
                        source.pop(sparse_vector_name, None)
                    yield AppPoint(str(hit["_id"]), source, has_sparse)
                if len(hits) < _SCROLL_PAGE or not scroll_id:
                    return
                current = scroll_id
                response = self._call(
                    f"reading {collection!r}",
                    partial(self.client.scroll, scroll_id=current, scroll=_SCROLL_KEEP),
                )
                scroll_id = response.get("_scroll_id") or scroll_id
        finally:
            if scroll_id:
                self._release_scroll(scroll_id)

    def _release_scroll(self, scroll_id: str) -> None:
        """Free the scroll's search context: one try, never an error (it expires by itself anyway)."""
        try:
            self.client.clear_scroll(scroll_id=scroll_id)
        except Exception as error:  # cleanup only: the run's own outcome matters, not this
            LOGGER.debug("could not release a scroll: %s", safe_message(str(error)))

    def update_sparse(self, collection: str, updates: Sequence[SparseUpdate]) -> list[PointId]:
        """Bulk ``update`` actions that set two fields by script: never ``index``, which would replace the document."""
        spec = self._spec(collection)
        for update in updates:
            spec.check_width(str(update.point_id), update.sparse)
        routing = self._routing.get(collection, {})
        actions = [
            bodies.sparse_update(spec, str(u.point_id), u.sparse, u.state, routing.get(str(u.point_id)))
            for u in updates
        ]
        return self._bulk(
            f"updating {len(actions)} documents of {collection!r}", actions, by_id={a["_id"]: a["_id"] for a in actions}
        )

    def clear_sparse(self, collection: str, point_ids: Sequence[PointId]) -> None:
        """Bulk scripted ``update`` actions removing the sparse field and the state key (gone documents are skipped)."""
        spec = self._spec(collection)
        routing = self._routing.get(collection, {})
        actions = [bodies.sparse_clear(spec, str(point), routing.get(str(point))) for point in point_ids]
        if actions:
            self._bulk(f"clearing {len(actions)} documents of {collection!r}", actions, by_id={})

    def list_collections(self) -> list[str]:
        """Indexes whose mapping carries a splare-connect spec."""
        response = self._call("listing indexes", lambda: self.client.indices.get_mapping(index="*"))
        return sorted(
            name for name, value in response.items() if SPEC_KEY in ((value.get("mappings") or {}).get("_meta") or {})
        )

    def drop_collection(self, name: str) -> None:
        """Delete an index splare-connect made; one another application owns is refused, attached or not."""
        layout = self.inspect_collection(name)
        if layout is not None and (layout.spec is None or layout.spec.attached):
            raise BackendError(f"index {name!r} belongs to another application; splare-connect does not drop it")
        self._specs.pop(name, None)
        self._call(f"deleting index {name!r}", lambda: self.client.indices.delete(index=name))

    # ------------------------------------------------------------------ writes
    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Bulk-index points; refused documents are reported together, after the rest are written.

        Raises:
            BulkWriteError: Some documents were refused (mapping errors, ...); the
                others are stored.
        """
        spec = self._spec(collection)
        for record in points:
            spec.check_width(record.id, record.sparse)
        actions = [
            {
                "_op_type": "index",
                "_index": collection,
                "_id": point_id(record.id),
                "_source": bodies.document_source(
                    spec, record.id, record.sparse, record.dense, record.payload, approximate=self.approximate
                ),
            }
            for record in points
        ]
        self._bulk(
            f"writing {len(actions)} documents to {collection!r}", actions, by_id={point_id(r.id): r.id for r in points}
        )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by record id (missing ones are fine)."""
        actions = [{"_op_type": "delete", "_index": collection, "_id": point_id(i)} for i in ids]
        if actions:
            self._bulk(
                f"deleting {len(actions)} documents from {collection!r}", actions, by_id={point_id(i): i for i in ids}
            )

    def _bulk(self, action: str, actions: list[dict[str, Any]], by_id: Mapping[str, str]) -> list[PointId]:
        """Run bulk actions; return the ids of ``update``s whose document is gone (404), raise for other failures."""
        from opensearchpy import helpers

        missing: list[PointId] = []

        def run() -> list[tuple[str, str]]:
            failures = []
            missing.clear()
            for ok, item in helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_chunk_bytes=self.max_chunk_bytes,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=3,
                initial_backoff=self.retry.backoff_seconds,  # type: ignore[arg-type]  # a float sleeps as well; the stub says int
                max_backoff=30,
            ):
                if ok:
                    continue
                ((operation, result),) = item.items()
                if operation == "delete" and result.get("status") == 404:
                    continue  # deleting what isn't there is fine
                if operation == "update" and result.get("status") == 404:
                    missing.append(by_id.get(str(result.get("_id")), str(result.get("_id"))))
                    continue  # the app deleted the document meanwhile
                failures.append((by_id.get(str(result.get("_id")), str(result.get("_id"))), _reason(result)))
            return failures

        failures = self._call(action, run)
        if failures:
            raise BulkWriteError(failures)
        return list(missing)

    def finalize(self, collection: str) -> None:
        """Refresh the index so that what was written is searchable."""
        self._call(f"refreshing {collection!r}", lambda: self.client.indices.refresh(index=collection))

    # ------------------------------------------------------------------- reads
    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """All points' record ids and payload fields, paged with ``search_after`` on ``record_id``."""
        wanted = [RECORD_ID, *fields]
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": _PAGE,
                "query": {"match_all": {}},
                "_source": wanted,
                "sort": [{RECORD_ID: "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            response = self._call(f"reading {collection!r}", partial(self.client.search, index=collection, body=body))
            hits = response["hits"]["hits"]
            for hit in hits:
                source = dict(hit["_source"])
                yield pop_record_id(source), source
            if len(hits) < _PAGE:
                return
            after = hits[-1]["sort"]

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors (from ``_source``, exact, not the 9-bit indexed values)."""
        spec = self._spec(collection)
        if not ids:
            return {}
        response = self._call(
            f"fetching from {collection!r}",
            lambda: self.client.mget(
                index=collection,
                body={"ids": list(ids) if spec.attached else [point_id(i) for i in ids]},
                _source_includes=[RECORD_ID, spec.sparse_vector_name],
            ),
        )
        vectors = {}
        for doc in response["docs"]:
            if doc.get("found"):
                source = doc["_source"]
                weights = source.get(spec.sparse_vector_name) or {}
                record_id = str(doc["_id"]) if spec.attached else str(source[RECORD_ID])
                vectors[record_id] = SparseVector.from_pairs(
                    {int(k): float(v) for k, v in weights.items()}, spec.sparse_dim
                )
        return vectors

    def count(self, collection: str) -> int:
        """Number of documents."""
        return int(self._call(f"counting {collection!r}", lambda: self.client.count(index=collection))["count"])

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` by sparse dot product (scaled, see :func:`bodies.query_tokens`)."""
        spec = self._spec(collection)
        clause = bodies.sparse_query(spec, query, mode=self.sparse_mode(), k=k, ann_parameters=self.ann_parameters)
        body = bodies.search_body(spec, bodies.with_filter(clause, filter), k, self._app_vectors(spec))
        params = {}
        if self.two_phase is not None:
            params["search_pipeline"] = self._ensure_pipeline(*bodies.two_phase_pipeline(*self.two_phase))
        response = self._call(
            f"searching {collection!r}", lambda: self.client.search(index=collection, body=body, params=params)
        )
        return _hits(spec, response)

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
        """A ``hybrid`` query (sparse + knn on ``dense_field``, or the index's own) fused by a search pipeline.

        ``"rrf"`` uses the ``score-ranker-processor`` (2.19+) with ``rank_constant`` set
        explicitly; ``"dbsf"`` uses the ``normalization-processor`` with ``z_score``
        normalization (2.19+), OpenSearch's distribution-based score normalisation.
        """
        CAPABILITIES.check_fusion("OpenSearch", fusion, weights)
        spec = self._spec(collection)
        width, given = self._dense_width(spec, dense_field), np.asarray(dense).reshape(-1).shape[0]
        if given != width:
            raise BackendError(
                f"the dense query vector has {given} values, "
                f"but field {dense_field or spec.dense_vector_name!r} of index {collection!r} holds {width}"
            )
        if not self.capabilities()["neural_search"]:
            raise BackendError("hybrid search needs OpenSearch's neural-search plugin, which this cluster lacks")
        sparse_clause = bodies.sparse_query(
            spec, sparse, mode=self.sparse_mode(), k=candidates, ann_parameters=self.ann_parameters
        )
        dense_clause = bodies.knn_query(spec, dense, candidates, dense_field)
        query = {
            "hybrid": {"queries": [bodies.with_filter(sparse_clause, filter), bodies.with_filter(dense_clause, filter)]}
        }
        name, pipeline = (
            bodies.rrf_pipeline(rrf_k, weights)
            if fusion == "rrf"
            else bodies.normalization_pipeline("z_score", weights)
        )
        self._ensure_pipeline(name, pipeline)
        body = bodies.search_body(spec, query, k, self._app_vectors(spec))
        response = self._call(
            f"hybrid search in {collection!r}",
            lambda: self.client.search(index=collection, body=body, params={"search_pipeline": name}),
        )
        return _hits(spec, response)

    def _ensure_pipeline(self, name: str, body: dict[str, Any]) -> str:
        """PUT the pipeline once per backend (PUT is idempotent: same name, same body)."""
        if name not in self._pipelines:
            self._call(
                f"creating search pipeline {name!r}",
                lambda: self.client.transport.perform_request("PUT", f"/_search/pipeline/{name}", body=body),
            )
            self._pipelines.add(name)
        return name

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _dense_width(self, spec: CollectionSpec, dense_field: str | None) -> int:
        """The width of the dense field searched: the index's own, or the app's ``dense_field``."""
        if dense_field is None or (spec.dense_dim and dense_field == spec.dense_vector_name):
            if not spec.dense_dim:
                raise BackendError(
                    f"index {spec.name!r} has no dense field of splare-connect's; "
                    "pass your own query vector and the knn_vector field it is for"
                )
            return spec.dense_dim
        dense = self._layout(spec.name).dense
        if dense_field not in dense:
            names = ", ".join(repr(name) for name in dense) or "none"
            raise BackendError(f"index {spec.name!r} has no knn_vector field {dense_field!r} (its fields: {names})")
        return dense[dense_field]

    def _app_vectors(self, spec: CollectionSpec) -> list[str]:
        """The app's dense fields, which hits from an attached index leave out of ``_source``."""
        return list(self._layout(spec.name).dense) if spec.attached else []

    def _layout(self, name: str) -> CollectionLayout:
        """The index's fields, read once per backend (a field the app adds later needs a new backend)."""
        if name not in self._layouts:
            layout = self.inspect_collection(name)
            if layout is None:
                raise CollectionNotFoundError(f"index {name!r} does not exist")
            self._layouts[name] = layout
        return self._layouts[name]

    def _spec(self, name: str) -> CollectionSpec:
        spec = self.describe_collection(name)
        if spec is None:
            raise CollectionNotFoundError(f"index {name!r} does not exist")
        return spec


def _hits(spec: CollectionSpec, response: Mapping[str, Any]) -> list[Hit]:
    """Hits from a search reply; an attached index's documents keep their own ``_id`` and ``_source``."""
    hits = []
    for hit in response["hits"]["hits"]:
        source = dict(hit.get("_source") or {})
        record_id = str(hit["_id"]) if spec.attached else pop_record_id(source, default=str(hit["_id"]))
        hits.append(Hit(id=record_id, score=float(hit["_score"]), payload=source))
    return hits


def _reason(result: Mapping[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error or f"status {result.get('status')}")


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    info = getattr(exc, "info", None)
    reason = None
    if isinstance(info, Mapping):
        error = info.get("error")
        if isinstance(error, Mapping):
            reason = f"{error.get('type')}: {error.get('reason')}"
    return f"HTTP {status}: {reason}" if status and reason else f"{type(exc).__name__}: {exc}"


def _source_problem(source: Any) -> str | None:
    """Why the index's ``_source`` setting makes scripted updates lose the app's data, or None.

    An update rebuilds the document from its stored ``_source``: fields the index leaves
    out of ``_source`` (to save space on k-NN vectors, say) would be dropped from the
    document and no longer indexed.
    """
    if not isinstance(source, Mapping):
        return None
    if source.get("enabled") is False:
        return "its _source is disabled, and an update would lose every field of the documents it writes"
    left_out = [key for key in ("includes", "excludes") if source.get(key)]
    if left_out:
        return (
            f"its _source has {' and '.join(left_out)}, so an update would drop the fields _source leaves out "
            "from the documents it writes"
        )
    return None
