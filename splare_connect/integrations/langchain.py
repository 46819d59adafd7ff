"""splare-connect for LangChain apps: a sparse embedding for langchain-qdrant, and a retriever.

Two ways in, depending on who owns the collection:

- The app already uses langchain-qdrant's ``QdrantVectorStore``: pass
  :class:`SplareSparseEmbeddings` as its ``sparse_embedding`` (``RetrievalMode.SPARSE`` or
  ``HYBRID`` with the app's own dense ``Embeddings``). LangChain owns the collection and
  its payload; splare-connect only turns text into sparse vectors.
- The collection was built by splare-connect (``Syncer``): wrap its
  :class:`~splare_connect.retriever.Retriever` in :class:`SplareRetriever`, a LangChain
  ``BaseRetriever`` that chains like any other. It keeps everything a splare collection
  adds (encoder fingerprint check, chunk grouping, fusion, filters, any backend).

Example:
    >>> from langchain_qdrant import QdrantVectorStore, RetrievalMode
    >>> store = QdrantVectorStore.from_texts(
    ...     texts, embedding=my_dense_embeddings, sparse_embedding=SplareSparseEmbeddings(),
    ...     location=":memory:", collection_name="docs", retrieval_mode=RetrievalMode.HYBRID,
    ... )  # doctest: +SKIP
    >>> store.similarity_search("how do I list files?", k=3)  # doctest: +SKIP

Requires ``pip install "splare-connect[langchain]"``; importing this module without it
raises :class:`~splare_connect.errors.MissingDependencyError` saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from splare_connect.integrations import require

# Imported first, so a missing framework is reported with the install command rather than
# as a bare ModuleNotFoundError from a line below.
require("langchain_core", "langchain")
require("langchain_qdrant", "langchain")

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_qdrant import SparseEmbeddings  # noqa: E402
from langchain_qdrant import SparseVector as LangChainSparseVector  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

from splare_connect.encoding.inputs import validate_texts  # noqa: E402
from splare_connect.errors import ConfigError  # noqa: E402
from splare_connect.integrations import encoder_from  # noqa: E402
from splare_connect.retriever import Retriever, SearchHit  # noqa: E402

if TYPE_CHECKING:
    from splare_connect.backends import Backend
    from splare_connect.encoder import SplareEncoder
    from splare_connect.sparse_vector import SparseVector

__all__ = ["SplareRetriever", "SplareSparseEmbeddings"]

# Options LangChain reads from ``invoke(..., **kwargs)`` itself; they are not search options.
_LANGCHAIN_INVOKE_OPTIONS = frozenset({"verbose"})


def _to_langchain(vector: SparseVector) -> LangChainSparseVector:
    # Plain ints and floats: langchain-qdrant's pydantic model and Qdrant's JSON both want them.
    return LangChainSparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())


class SplareSparseEmbeddings(SparseEmbeddings):
    """SPLARE sparse vectors for langchain-qdrant's ``QdrantVectorStore(sparse_embedding=...)``.

    Documents and queries are encoded differently (prefix and pruning), which is why
    ``embed_documents`` and ``embed_query`` are not interchangeable: index with the first,
    search with the second, as ``QdrantVectorStore`` does.

    A blank text (empty or whitespace) has no features and becomes an empty sparse vector.
    Qdrant stores it, and an empty *query* vector matches nothing: ``RetrievalMode.SPARSE``
    returns no results for a blank query, and ``HYBRID`` falls back to the dense ranking.
    That is the same rule as :meth:`Retriever.search`, so it is kept rather than raised.

    The async forms (inherited from ``SparseEmbeddings``) run the encoder in a worker
    thread, so the event loop keeps serving. One instance may be shared by threads: the
    encoder serialises its calls.

    Args:
        encoder: A loaded :class:`~splare_connect.encoder.SplareEncoder`, a registered model
            name or model directory, or None for the default model. Names are loaded through
            :func:`~splare_connect.integrations.shared_encoder`, so an app that also builds a
            :class:`SplareRetriever` loads the model once.
        batch_size: Texts per forward pass.
        **encoder_options: Loading options (``device``, ``precision`` ...) when ``encoder``
            is a name, a directory or None.

    Raises:
        ConfigError: ``batch_size`` is not positive, or loading options come with a loaded encoder.
    """

    def __init__(
        self,
        encoder: SplareEncoder | str | Path | None = None,
        *,
        batch_size: int = 32,
        **encoder_options: Any,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.encoder = encoder_from(encoder, **encoder_options)
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[LangChainSparseVector]:
        """Sparse vectors for documents, in input order (``document_top_k`` pruning).

        Raises:
            BadInputError: ``texts`` is one string rather than a list of them (it would be
                encoded one vector per character), or a text is not valid Unicode.
        """
        # encode() checks the texts itself (validate_texts): list(texts) would split a string.
        encoded = self.encoder.encode(texts, role="document", batch_size=self.batch_size)
        return [_to_langchain(vector) for vector in encoded.sparse]

    def embed_query(self, text: str) -> LangChainSparseVector:
        """The sparse vector of one query (``query_top_k`` pruning); empty for a blank text.

        Raises:
            BadInputError: ``text`` is not a string, or holds a lone surrogate.
        """
        [query] = validate_texts([text], name="query")
        return _to_langchain(self.encoder.encode([query], role="query").sparse[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(encoder={self.encoder!r}, batch_size={self.batch_size})"


class SplareRetriever(BaseRetriever):
    """A LangChain retriever over a splare-connect collection (any backend).

    Each hit becomes a ``Document`` whose ``page_content`` is the matched chunk's text and
    whose metadata is the document's fields plus ``score``, ``doc_id`` (the source
    document) and ``id`` (the chunk's record id, also ``Document.id``); with
    ``search_kwargs={"explain": True}`` it also carries ``features``.

    Args:
        retriever: The splare-connect :class:`~splare_connect.retriever.Retriever`.
        k: Number of results; ``invoke(query, k=3)`` overrides it for one call.
        search_kwargs: Further :meth:`Retriever.search` options (``hybrid``, ``filter``,
            ``group_by_document`` ...). Keywords given to ``invoke`` override them for one call.

    Example:
        >>> retriever = SplareRetriever.from_backend(load_backend("qdrant"), "docs", k=5,
        ...                                          search_kwargs={"hybrid": "rrf"})  # doctest: +SKIP
        >>> retriever.invoke("how do I list files?")  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = 4
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_backend(
        cls,
        backend: Backend,
        collection: str,
        encoder: SplareEncoder | str | Path | None = None,
        **kwargs: Any,
    ) -> SplareRetriever:
        """A retriever over ``collection`` in ``backend``.

        Args:
            backend: The backend holding the collection (``load_backend(...)``).
            collection: The collection's name.
            encoder: The encoder the collection was built with, a model name or
                directory, or None for the default model (loaded once per process).
            **kwargs: ``k``, ``search_kwargs`` and other retriever fields.

        Raises:
            BackendError: The collection does not exist.
            EncoderMismatchError: The collection was built by another encoder.
        """
        return cls(retriever=Retriever(encoder_from(encoder), backend, collection), **kwargs)

    def _search_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {**self.search_kwargs, **kwargs}
        for name in _LANGCHAIN_INVOKE_OPTIONS:
            options.pop(name, None)
        options.setdefault("k", self.k)
        return options

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [_to_document(hit) for hit in self.retriever.search(query, **self._search_options(kwargs))]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = await self.retriever.asearch(query, **self._search_options(kwargs))
        return [_to_document(hit) for hit in hits]


def _to_document(hit: SearchHit) -> Document:
    metadata: dict[str, Any] = {**hit.metadata, "score": hit.score, "doc_id": hit.doc_id, "id": hit.id}
    if hit.features is not None:
        metadata["features"] = hit.features
    return Document(page_content=hit.text or "", metadata=metadata, id=hit.id)
