"""A Qdrant server, or qdrant-client's local mode, through qdrant-client.

Every request is retried on timeouts, connection errors, 429 and 5xx by
:func:`splare_connect.backends.retrying.retry_call` (how qdrant-client's errors read:
:mod:`~splare_connect_qdrant.client_retry`): after the server's ``Retry-After`` on a
429, with exponential backoff otherwise, within ``max_attempts`` tries and a
``retry_deadline``. Writes wait for the server to apply them. The CollectionSpec is
stored in the collection's ``metadata`` (Qdrant 1.16+).

qdrant-client's local mode (``location=":memory:"`` or ``path=...``) implements the
same API in Python; the tests run this driver on it, since no server runs there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from splare_connect.backends import CollectionLayout, CollectionSpec, PointId, SparseUpdate
from splare_connect.backends.engine_calls import call_engine
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, RetryPolicy
from splare_connect.backends.schema import SPEC_KEY
from splare_connect.errors import BackendError, CollectionNotAttachedError
from splare_connect.sparse_vector import SparseVector
from splare_connect_qdrant.client_retry import QDRANT_ERRORS, refuses_data
from splare_connect_qdrant.common import not_ours_message
from splare_connect_qdrant.driver import EnginePoint, Fused, Nearest, Vector
from splare_connect_qdrant.filters import FilterClasses, build_filter, vector_presence_filter

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
_ADD_VECTOR_SINCE = (1, 18)  # PUT /collections/{name}/vectors/{vector} (qdrant/qdrant#8605)


class ClientDriver:
    """Collections on whatever a ``qdrant_client.QdrantClient`` talks to.

    Args:
        client: A ``qdrant_client.QdrantClient`` (server URL, or local mode).
        max_attempts: Tries per request before giving up.
        backoff_seconds: First retry delay; doubles each time (capped at 30 s). A 429's
            ``Retry-After`` replaces it (capped at 60 s).
        retry_deadline: Seconds after a request's first try past which it is not
            retried (None: 120 s). Worst case per request: about this plus one timeout.
        owns_client: Close the client on :meth:`close`; False for a client the
            application made and still uses (LangChain's, LlamaIndex's).
    """

    where = ""

    def __init__(
        self,
        client: Any,
        *,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
        retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.retry = RetryPolicy(QDRANT_ERRORS, max_attempts, backoff_seconds, retry_deadline, LOGGER)

    @property
    def retry_deadline(self) -> float | None:
        """Seconds after a request's first try past which it is not retried."""
        return self.retry.deadline

    def call(
        self, action: str, function: Callable[[], T], *, rejects_data: Callable[[BaseException], bool] | None = None
    ) -> T:
        """Run a request under the retry policy; any failure becomes a one-line, redacted BackendError."""
        return call_engine(action, lambda: self.retry.call(action, function), rejects_data=rejects_data)

    # ------------------------------------------------------------ collections
    def read_spec(self, name: str) -> CollectionSpec | None:
        """The spec stored in the collection's metadata, or None if it doesn't exist.

        Raises:
            BackendError: The collection exists but has no splare-connect spec.
        """
        layout = self.layout(name)
        if layout is None:
            return None
        if layout.spec is None:
            raise CollectionNotAttachedError(not_ours_message(name, layout.spec_key_taken))
        return layout.spec

    def layout(self, name: str) -> CollectionLayout | None:
        """The collection's named dense and sparse vectors (the unnamed one as ``""``) and spec, if any."""
        if not self.call(f"checking {name!r}", lambda: self.client.collection_exists(name)):
            return None
        info = self.call(f"reading {name!r}", lambda: self.client.get_collection(name))
        vectors = info.config.params.vectors
        if vectors is None:
            dense = {}
        elif isinstance(vectors, dict):
            dense = {vector: params.size for vector, params in vectors.items()}
        else:
            dense = {"": vectors.size}
        metadata = info.config.metadata or {}
        spec = CollectionSpec.parse_stored(name, metadata.get(SPEC_KEY))
        return CollectionLayout(
            name=name,
            dense=dense,
            sparse=tuple(info.config.params.sparse_vectors or {}),
            spec=spec,
            spec_key_taken=spec is None and SPEC_KEY in metadata,
        )

    def add_sparse_vector(self, collection: str, vector_name: str, idf: bool) -> None:
        """``PUT /collections/{name}/vectors/{vector}`` (Qdrant 1.18+); an older server is told apart."""
        from qdrant_client import models
        from qdrant_client.http.exceptions import UnexpectedResponse

        config = models.SparseVectorNameConfig(
            sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF if idf else None)
        )

        def create() -> None:
            try:
                self.client.create_vector_name(collection, vector_name, config, wait=True)
            except UnexpectedResponse as error:
                if error.status_code in (404, 405) and self.client.collection_exists(collection):
                    # The collection is there, the route is not: a server before 1.18.
                    route = f"PUT /collections/{collection}/vectors/{vector_name}"
                    evidence = f" (it answered HTTP {error.status_code} to {route})"
                    raise BackendError(_needs_newer_server(collection, vector_name, evidence)) from None
                raise

        self.call(f"adding sparse vector {vector_name!r} to {collection!r}", create)

    def store_spec(self, spec: CollectionSpec) -> None:
        """Merge the spec into the collection's metadata under ``splare_connect`` (other keys stay).

        The server's version is checked first: the spec would otherwise be stored on a
        server that then cannot add the vector it describes.
        """
        self._check_version_for_attach(spec.name, spec.sparse_vector_name)
        self.replace_spec(spec)

    def replace_spec(self, spec: CollectionSpec) -> None:
        """``update_collection`` with the spec under ``splare_connect``: Qdrant merges metadata, so other keys stay."""
        self.call(
            f"storing splare-connect's settings in {spec.name!r}",
            lambda: self.client.update_collection(spec.name, metadata={SPEC_KEY: spec.to_dict()}),
        )

    def _check_version_for_attach(self, collection: str, vector_name: str) -> None:
        """Refuse a server older than 1.18, which can't add a vector to an existing collection."""
        version = str(self.call("reading the server's version", self.client.info).version)
        try:
            numbers = tuple(int(part) for part in version.split("-")[0].split(".")[:2])
        except ValueError:
            return  # a development build: let the request itself say
        if numbers < _ADD_VECTOR_SINCE:
            raise BackendError(_needs_newer_server(collection, vector_name, f", and this one is {version}"))

    def update_vectors(
        self, collection: str, vector_name: str, state_key: str, updates: Sequence[SparseUpdate]
    ) -> None:
        """One ``batch_update_points`` request: ``update_vectors`` for all, then a ``set_payload`` per point.

        The vectors go first: if the request is cut short, a point may have its new
        vector without its new hash, and is simply encoded again next time.
        """
        from qdrant_client import models

        operations: list[Any] = [
            models.UpdateVectorsOperation(
                update_vectors=models.UpdateVectors(
                    points=[
                        models.PointVectors(id=u.point_id, vector={vector_name: _vector(u.sparse)}) for u in updates
                    ]
                )
            )
        ]
        operations += [
            models.SetPayloadOperation(
                set_payload=models.SetPayload(payload={state_key: dict(u.state)}, points=[u.point_id])
            )
            for u in updates
        ]
        self.call(
            f"updating {len(updates)} points of {collection!r}",
            lambda: self.client.batch_update_points(collection, update_operations=operations, wait=True),
            rejects_data=refuses_data,
        )

    def clear_vectors(self, collection: str, vector_name: str, state_key: str, point_ids: Sequence[PointId]) -> None:
        """One ``batch_update_points`` request: ``delete_vectors`` and ``delete_payload`` of the state key."""
        from qdrant_client import models

        points: list[Any] = list(point_ids)
        operations: list[Any] = [
            models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(points=points, vector=[vector_name])),
            models.DeletePayloadOperation(delete_payload=models.DeletePayload(keys=[state_key], points=points)),
        ]
        self.call(
            f"clearing {len(point_ids)} points of {collection!r}",
            lambda: self.client.batch_update_points(collection, update_operations=operations, wait=True),
        )

    def existing(self, collection: str, point_ids: Sequence[PointId]) -> set[PointId]:
        """Which of these ids exist (one retrieve, without payloads or vectors)."""
        records = self.call(
            f"retrieving from {collection!r}",
            lambda: self.client.retrieve(collection, ids=list(point_ids), with_payload=False, with_vectors=False),
        )
        return {record.id for record in records}

    def create(self, spec: CollectionSpec, keyword_fields: Sequence[str]) -> None:
        """Create the collection with the spec in its metadata, then its payload indexes."""
        from qdrant_client import models

        vectors = (
            {spec.dense_vector_name: models.VectorParams(size=spec.dense_dim, distance=models.Distance.COSINE)}
            if spec.dense_dim
            else {}
        )
        sparse = {
            spec.sparse_vector_name: models.SparseVectorParams(modifier=models.Modifier.IDF if spec.idf else None)
        }
        self.call(
            f"creating collection {spec.name!r}",
            lambda: self.client.create_collection(
                spec.name, vectors_config=vectors, sparse_vectors_config=sparse, metadata={SPEC_KEY: spec.to_dict()}
            ),
        )
        for field in keyword_fields:
            self.call(
                f"indexing payload field {field!r}",
                partial(
                    self.client.create_payload_index, spec.name, field, field_schema=models.PayloadSchemaType.KEYWORD
                ),
            )

    def list_collections(self) -> list[str]:
        """Collection names on the server."""
        response = self.call("listing collections", self.client.get_collections)
        return sorted(c.name for c in response.collections)

    def drop(self, name: str) -> None:
        """Delete a collection splare-connect made; one another application owns is refused, attached or not."""
        layout = self.layout(name)
        if layout is None:
            return
        if layout.spec is None or layout.spec.attached:
            raise BackendError(f"collection {name!r} belongs to another application; splare-connect does not drop it")
        self.call(f"dropping {name!r}", lambda: self.client.delete_collection(name))

    # ------------------------------------------------------------------ points
    def upsert(self, collection: str, points: Sequence[EnginePoint]) -> None:
        """One upsert request; pydantic refusing a point, or a 400/413/422 reply, is a refusal of the records."""
        from qdrant_client import models

        structs = call_engine(
            f"preparing {len(points)} points for {collection!r}",
            lambda: [
                models.PointStruct(
                    id=p.id, vector={name: _vector(v) for name, v in p.vectors.items()}, payload=dict(p.payload)
                )
                for p in points
            ],
            rejects_data=lambda error: True,
        )
        self.call(
            f"upserting {len(structs)} points into {collection!r}",
            lambda: self.client.upsert(collection, points=structs, wait=True),
            rejects_data=refuses_data,
        )

    def delete(self, collection: str, point_ids: Sequence[str]) -> None:
        """One delete request."""
        from qdrant_client import models

        selector = models.PointIdsList(points=list(point_ids))
        self.call(
            f"deleting {len(point_ids)} points from {collection!r}",
            lambda: self.client.delete(collection, points_selector=selector, wait=True),
        )

    def finalize(self, collection: str) -> None:
        """Nothing to do: a server optimises in the background, and writes waited for completion."""

    def scroll(
        self,
        collection: str,
        fields: Sequence[str],
        offset: Any,
        limit: int,
        has_vector: tuple[str, bool] | None = None,
    ) -> tuple[list[Any], Any]:
        """One page of points with the named payload fields, no vectors; ``has_vector`` filters on one vector."""
        scroll_filter = vector_presence_filter(has_vector, _filter_classes())
        records, next_offset = self.call(
            f"scrolling {collection!r}",
            lambda: self.client.scroll(
                collection,
                limit=limit,
                offset=offset,
                with_payload=list(fields),
                with_vectors=False,
                scroll_filter=scroll_filter,
            ),
        )
        return list(records), next_offset

    def retrieve(
        self, collection: str, point_ids: Sequence[int | str], fields: Sequence[str], vector: str
    ) -> list[Any]:
        """Points by id with the named payload fields and one vector."""
        return list(
            self.call(
                f"retrieving from {collection!r}",
                lambda: self.client.retrieve(
                    collection, ids=list(point_ids), with_payload=list(fields), with_vectors=[vector]
                ),
            )
        )

    def count(self, collection: str) -> int:
        """Exact number of points."""
        return int(self.call(f"counting {collection!r}", lambda: self.client.count(collection, exact=True)).count)

    def query(self, collection: str, query: Nearest | Fused, action: str) -> list[Any]:
        """One ``query_points`` request: a nearest-neighbour query, or prefetches fused by RRF or DBSF."""
        from qdrant_client import models

        if isinstance(query, Nearest):
            arguments: dict[str, Any] = {
                "query": _vector(query.vector),
                "using": query.using,
                "query_filter": build_filter(query.filter, _filter_classes()),
            }
        else:
            arguments = {
                "prefetch": [
                    models.Prefetch(
                        query=_vector(p.vector),
                        using=p.using,
                        limit=p.limit,
                        filter=build_filter(p.filter, _filter_classes()),
                    )
                    for p in query.prefetches
                ],
                "query": (
                    models.RrfQuery(rrf=models.Rrf(k=query.rrf_k, weights=list(query.weights)))
                    if query.fusion == "rrf"
                    else models.FusionQuery(fusion=models.Fusion.DBSF)
                ),
            }
        response = self.call(
            action, lambda: self.client.query_points(collection, limit=query.limit, with_payload=True, **arguments)
        )
        return list(response.points)

    def close(self) -> None:
        """Close the client, unless the application lent it."""
        if self.owns_client:
            self.client.close()


def _needs_newer_server(collection: str, vector_name: str, evidence: str) -> str:
    """Why attaching stops on a server that can't add a vector to an existing collection."""
    return (
        f"adding the sparse vector {vector_name!r} to collection {collection!r} needs a Qdrant server "
        f"1.18 or later{evidence}; upgrade the server"
    )


def _vector(vector: Vector) -> Any:
    """qdrant-client's form of a vector: its SparseVector model, or the dense list as it is."""
    from qdrant_client import models

    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())
    return vector


def _filter_classes() -> FilterClasses:
    from qdrant_client import models

    return FilterClasses(
        engine="Qdrant",
        native=models.Filter,
        field=lambda key, **kw: models.FieldCondition(key=key, **kw),
        match_value=lambda v: models.MatchValue(value=v),
        match_any=lambda vs: models.MatchAny(any=vs),
        range=models.Range,
        filter=models.Filter,
        has_vector=lambda name: models.HasVectorCondition(has_vector=name),
    )
