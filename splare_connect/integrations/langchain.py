"""splare-connect for LangChain apps: a retriever, and a sparse embedding for langchain-qdrant.

Two ways in, depending on who owns the collection:

- The app already uses langchain-qdrant's ``QdrantVectorStore``: pass
  :class:`~splare_connect.integrations.langchain_qdrant.SplareSparseEmbeddings` (also
  importable from here; it loads langchain-qdrant only then) as its ``sparse_embedding`` (``RetrievalMode.SPARSE`` or
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

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

from splare_connect.integrations import encoder_from  # noqa: E402
from splare_connect.retriever import Retriever, SearchHit  # noqa: E402

if TYPE_CHECKING:
    from splare_connect.backends import Backend
    from splare_connect.encoding.encoder import SplareEncoder

__all__ = ["SplareRetriever"]  # and SplareSparseEmbeddings, loaded on first use (below)


def __getattr__(name: str) -> Any:
    """``SplareSparseEmbeddings`` lives with langchain-qdrant's store; loaded only when asked for,
    so the retriever needs langchain-core alone and never loads a database client."""
    if name == "SplareSparseEmbeddings":
        from splare_connect.integrations.langchain_qdrant import SplareSparseEmbeddings

        return SplareSparseEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Options LangChain reads from ``invoke(..., **kwargs)`` itself; they are not search options.
_LANGCHAIN_INVOKE_OPTIONS = frozenset({"verbose"})


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
