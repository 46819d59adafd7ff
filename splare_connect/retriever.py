"""Retriever: the search API a RAG application calls, on any backend.

    retriever = Retriever(encoder, load_backend("qdrant"), "docs")
    for hit in retriever.search("how do I list files?", k=5):
        print(hit.score, hit.doc_id, hit.text[:80])

The collection's encoder fingerprint is checked once, when the retriever is made:
querying vectors from one encoder against documents from another gives meaningless
results without any error, so it is refused.

Hybrid search fuses the sparse ranking with a dense one in the engine: the encoder's
own dense embedding (collections splare-connect made with dense vectors), or a query
vector the caller's model made for one of the collection's dense fields
(``dense=..., using="openai"``), which is how an app keeps its own dense model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splare_connect.backends import Backend, Hit
from splare_connect.backends.protocol import check_same_encoder
from splare_connect.backends.schema import StoredChunk, payload_value
from splare_connect.choices import Fusion
from splare_connect.errors import BackendError, BadInputError, CollectionNotFoundError, ConfigError
from splare_connect.features.explanation import FeatureWeight, MissExplanation, explain_miss, labelled
from splare_connect.search_settings import NO_FUSION, ResolvedSearch, SearchSettings
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from splare_connect.encoding.encoder import SplareEncoder


@dataclass(frozen=True)
class SearchHit:
    """One result.

    Attributes:
        id: Stored record id (``"<doc id>#<chunk>"``).
        doc_id: The source document's id.
        score: Engine score (dot product, or the fused score in hybrid search).
        text: The chunk's text, when the collection stores text.
        metadata: The document's metadata fields.
        chunk_index: Which chunk of the document matched.
        features: With ``explain=True``: the matched features, largest contribution
            first, as ``(feature, contribution, label)``
            (:class:`~splare_connect.features.FeatureWeight`); the contributions sum to
            the sparse score, and ``label`` says what the feature means when the model
            has a feature dictionary (else ``None``).
    """

    id: str
    doc_id: str
    score: float
    text: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunk_index: int = 0
    features: list[FeatureWeight] | None = None


class Retriever:
    """Searches one collection with one encoder.

    Args:
        encoder: Must be the encoder the collection was built with (checked).
        backend: Any backend holding the collection (made by a sync, or attached to).
        collection: Collection name.

    Raises:
        CollectionNotFoundError: The collection doesn't exist.
        BackendError: The database could not be asked.
        EncoderMismatchError: The collection was built by another encoder.
    """

    def __init__(self, encoder: SplareEncoder, backend: Backend, collection: str) -> None:
        self.encoder = encoder
        self.backend = backend
        self.collection = collection
        spec = backend.describe_collection(collection)
        if spec is None:
            raise CollectionNotFoundError(f"collection {collection!r} does not exist; ingest documents into it first")
        # Documents written at other arithmetic than this encoder's (bf16 vs fp32): one line, else None.
        self.arithmetic_note = check_same_encoder(
            collection,
            spec.fingerprint,
            encoder.fingerprint,
            remedy="query it with the same model and settings",
        )
        self.spec = spec

    @property
    def settings(self) -> SearchSettings:
        """The collection's search settings (``tune --apply``, ``collections settings``), or the defaults.

        Every search uses them where the call leaves an option out (None); an explicit
        argument always wins.
        """
        return self.spec.search or SearchSettings()

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filter: Any = None,
        hybrid: Fusion | str | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        query_top_k: int | None = None,
        explain: bool = False,
        group_by_document: bool = False,
        dense: npt.ArrayLike | None = None,
        using: str | None = None,
    ) -> list[SearchHit]:
        """Top ``k`` chunks (or documents) for a query.

        Args:
            query: The query text.
            k: Number of results.
            filter: Conditions (:mod:`splare_connect.filters`) or a backend-native filter.
            hybrid: ``"rrf"``, ``"dbsf"`` or ``"weighted"`` to fuse the sparse ranking with
                a dense one, where the backend runs that fusion; ``"none"`` for sparse
                only. None: the collection's setting (:attr:`settings`), else sparse only
                (``"rrf"`` when ``dense`` is given).
            weights: ``(sparse, dense)`` fusion weights, where the fusion takes them (the
                backend's record says; others refuse unequal weights). None: the
                collection's setting, else equal.
            rrf_k: RRF rank constant, always sent (Qdrant's own default is 2). None: the
                collection's setting, else 60.
            query_top_k: Query weights kept. None: the collection's setting, else the
                model's ``query_top_k``. A search-time setting: the fingerprint check is
                unaffected.
            explain: Attach each hit's matched features and their contributions.
            group_by_document: Return the best chunk of each document, ``k`` documents.
            dense: The query's dense vector from your own model; fused with the sparse
                ranking against the dense field ``using``. None: the encoder's own
                dense embedding, when the collection has it.
            using: The collection's dense vector field ``dense`` was made for (a Qdrant
                named vector such as ``"openai"``, ``""`` for an unnamed one; an
                OpenSearch ``knn_vector`` field). None: splare-connect's own.

        Example:
            >>> retriever.search("reset a password", dense=openai_embed(q), using="openai")  # doctest: +SKIP
        """
        return self.search_batch(
            [query],
            k=k,
            filter=filter,
            hybrid=hybrid,
            weights=weights,
            rrf_k=rrf_k,
            query_top_k=query_top_k,
            explain=explain,
            group_by_document=group_by_document,
            dense=None if dense is None else [dense],  # type: ignore[arg-type]  # one row: a nested sequence
            using=using,
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        filter: Any = None,
        hybrid: Fusion | str | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        query_top_k: int | None = None,
        explain: bool = False,
        group_by_document: bool = False,
        dense: npt.ArrayLike | None = None,
        using: str | None = None,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for several queries, encoded in one batch; ``dense`` holds one row per query."""
        _check_search(k, hybrid)
        own_dense = dense is None
        chosen = self.settings.resolve(
            hybrid, weights, rrf_k, query_top_k, dense_given=dense is not None, own_dense=bool(self.spec.dense_dim)
        )
        if dense is not None and using is None:
            using = self.settings.using
        fusion = chosen.fusion
        if dense is not None:
            dense = _dense_rows(dense, len(queries))
        elif using is not None:
            raise ConfigError(f"using={using!r} names a dense field: pass the query's vector for it as dense=...")
        elif fusion is not None and not self.spec.dense_dim:
            raise ConfigError(
                f"collection {self.collection!r} has no dense vectors of splare-connect's: pass your own query "
                "vector and its field (dense=..., using=...) for hybrid search"
            )
        encoded = self.encoder.encode(
            list(queries), role="query", dense=fusion is not None and own_dense, top_k=chosen.query_top_k
        )
        results = []
        for position, sparse in enumerate(encoded.sparse):
            rows = encoded.dense if own_dense else dense
            query_dense = None if rows is None else rows[position]
            results.append(self._search_one(sparse, query_dense, k, filter, chosen, explain, group_by_document, using))
        return results

    def search_encoded(
        self,
        sparse: SparseVector,
        *,
        dense: npt.ArrayLike | None = None,
        k: int = 10,
        filter: Any = None,
        hybrid: Fusion | str | None = None,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        query_top_k: int | None = None,
        explain: bool = False,
        group_by_document: bool = False,
        using: str | None = None,
    ) -> list[SearchHit]:
        """:meth:`search` for a query this retriever's encoder has already encoded.

        For callers that encode queries themselves: the HTTP service encodes the queries
        of many clients in one batch, then searches each. The results are those of
        :meth:`search` for the same text.

        Args:
            sparse: The query's sparse vector (``encoder.encode([q], role="query")``).
            dense: The query's dense vector: the encoder's own (``dense=True``) for the
                collection's dense field, or your model's for the field ``using``.
                Needed for hybrid search, ignored otherwise.
            k, filter, hybrid, weights, rrf_k, explain, group_by_document, using: As
                :meth:`search`.

        Raises:
            ConfigError: A bad ``k`` or ``hybrid``, or hybrid search without a dense vector.
        """
        _check_search(k, hybrid)
        # Only the dense vector passed here can fuse: the caller encoded this query already.
        chosen = self.settings.resolve(
            hybrid, weights, rrf_k, query_top_k, dense_given=dense is not None, own_dense=False
        )
        if chosen.fusion is not None and dense is None:
            raise ConfigError("hybrid search needs the query's dense vector (encode it with dense=True)")
        if chosen.fusion is not None and using is None and not self.spec.dense_dim:
            raise ConfigError(
                f"collection {self.collection!r} has no dense vectors of splare-connect's: hybrid is unavailable"
            )
        sparse = sparse.top_k(chosen.query_top_k)  # the caller encodes at this top-k or more
        query_dense = None if chosen.fusion is None or dense is None else _dense_rows([dense], 1)[0]  # type: ignore[arg-type]  # one row: a nested sequence
        return self._search_one(sparse, query_dense, k, filter, chosen, explain, group_by_document, using)

    def _search_one(
        self,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32] | None,
        k: int,
        filter: Any,
        chosen: ResolvedSearch,
        explain: bool,
        group_by_document: bool,
        using: str | None,
    ) -> list[SearchHit]:
        """One encoded query: the engine's hits, grouped by document if asked, as search hits."""
        fetch = k * 4 if group_by_document else k
        hits = self._query(sparse, dense, fetch, filter, chosen, using)
        if group_by_document:
            hits = self._best_per_document(hits)[:k]
        return self._to_search_hits(hits, sparse if explain else None)

    def explain_miss(self, query: str, record_id: str) -> MissExplanation:
        """Why a stored record did not match ``query`` (or matched weakly): which of the
        query's features it has, and which it lacks, with labels when the model has a
        feature dictionary.

        Raises:
            BackendError: No record ``record_id`` in the collection.
        """
        [vector] = self.encoder.encode([query], role="query").sparse
        stored = self.backend.fetch_sparse(self.collection, [record_id])
        if record_id not in stored:
            raise BackendError(f"collection {self.collection!r} has no record {record_id!r}")
        return explain_miss(record_id, vector, stored[record_id], self.encoder.feature_dictionary)

    async def asearch(self, query: str, **options: Any) -> list[SearchHit]:
        """:meth:`search` without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.search, query, **options)

    async def asearch_batch(self, queries: Sequence[str], **options: Any) -> list[list[SearchHit]]:
        """:meth:`search_batch` without blocking the event loop."""
        return await asyncio.to_thread(self.search_batch, queries, **options)

    def _query(
        self,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32] | None,
        k: int,
        filter: Any,
        chosen: ResolvedSearch,
        using: str | None,
    ) -> list[Hit]:
        if chosen.fusion is None:
            # A query with no features (a blank text) matches nothing. Said here, once:
            # OpenSearch would read an empty bool query as match-all.
            return [] if sparse.nnz == 0 else self.backend.search(self.collection, sparse, k=k, filter=filter)
        assert dense is not None
        return self.backend.hybrid_search(
            self.collection,
            sparse,
            dense,
            k=k,
            fusion=chosen.fusion,
            rrf_k=chosen.rrf_k,
            weights=chosen.weights,
            candidates=max(100, 2 * k),
            filter=filter,
            # Only when asked: a backend written before dense_field existed keeps working.
            **({"dense_field": using} if using is not None else {}),
        )

    def _to_search_hits(self, hits: list[Hit], query: SparseVector | None) -> list[SearchHit]:
        stored = self.backend.fetch_sparse(self.collection, [h.id for h in hits]) if query is not None else {}
        results = []
        for hit in hits:
            features = (
                labelled(query.contributions(stored[hit.id]), self.encoder.feature_dictionary)
                if query is not None and hit.id in stored
                else None
            )
            if self.spec.attached:
                results.append(self._attached_hit(hit, features))
                continue
            chunk = StoredChunk.from_payload(hit.id, hit.payload)
            results.append(
                SearchHit(
                    id=hit.id,
                    doc_id=chunk.doc_id,
                    score=hit.score,
                    text=chunk.text,
                    metadata=chunk.metadata,
                    chunk_index=chunk.chunk_index,
                    features=features,
                )
            )
        return results

    def _attached_hit(self, hit: Hit, features: list[FeatureWeight] | None) -> SearchHit:
        """A hit from an app's own point: its text at the text field, the rest of its payload as metadata."""
        text_field = self.spec.text_field
        assert text_field is not None
        text = payload_value(hit.payload, text_field)
        metadata = {key: value for key, value in hit.payload.items() if key not in (self.spec.state_key, text_field)}
        return SearchHit(
            id=hit.id,
            doc_id=self._document_of(hit),
            score=hit.score,
            text=text if isinstance(text, str) else None,
            metadata=metadata,
            features=features,
        )

    def _document_of(self, hit: Hit) -> str:
        """The hit's source document id: from the stored chunk, or an attached collection's doc id field."""
        if not self.spec.attached:
            return StoredChunk.from_payload(hit.id, hit.payload).doc_id
        value = payload_value(hit.payload, self.spec.doc_id_field) if self.spec.doc_id_field else None
        return hit.id if value is None else str(value)

    def _best_per_document(self, hits: list[Hit]) -> list[Hit]:
        best: dict[str, Hit] = {}
        for hit in hits:
            best.setdefault(self._document_of(hit), hit)
        return list(best.values())


def _check_search(k: int, hybrid: Fusion | str | None) -> None:
    """Refuse a non-positive ``k`` or an unknown fusion before anything is encoded or sent."""
    if k <= 0:
        raise ConfigError(f"k must be positive, got {k}")
    if hybrid is not None and hybrid != NO_FUSION and hybrid not in tuple(Fusion):
        raise ConfigError(f"hybrid must be one of {[f.value for f in Fusion]}, {NO_FUSION!r} or None, got {hybrid!r}")


def _dense_rows(dense: npt.ArrayLike, queries: int) -> npt.NDArray[np.float32]:
    """The caller's dense query vectors as a (queries, width) float32 array of finite values.

    Raises:
        BadInputError: Not one finite vector per query.
    """
    import numpy as np

    try:
        rows = np.asarray(dense, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"dense must be a vector of numbers: {exc}") from None
    if rows.ndim != 2 or rows.shape[0] != queries or rows.shape[1] == 0 or not np.isfinite(rows).all():
        raise BadInputError(
            f"dense must hold one finite vector per query ({queries}), got an array of shape {rows.shape}"
        )
    return rows
