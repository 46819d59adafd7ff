"""SPLARE in LlamaIndex: sparse functions for its Qdrant vector store, and a retriever.

Two ways in, depending on who owns the collection:

- The app keeps LlamaIndex's ``QdrantVectorStore`` (its nodes, its dense embed model,
  its hybrid query modes) and only swaps the sparse side: :func:`splare_sparse_fns`
  gives the ``sparse_doc_fn`` / ``sparse_query_fn`` the store calls.
- The collection is built by splare-connect (``Syncer``, the CLI): :class:`SplareRetriever`
  is a LlamaIndex ``BaseRetriever`` over a :class:`~splare_connect.retriever.Retriever`,
  so query engines and chat engines use it like any other retriever.

Example:
    >>> from qdrant_client import QdrantClient
    >>> from llama_index.vector_stores.qdrant import QdrantVectorStore
    >>> from splare_connect.integrations.llama_index import splare_sparse_fns
    >>> doc_fn, query_fn = splare_sparse_fns()
    >>> store = QdrantVectorStore(
    ...     client=QdrantClient(":memory:"), collection_name="docs", enable_hybrid=True,
    ...     sparse_doc_fn=doc_fn, sparse_query_fn=query_fn,
    ... )

Importing this module without ``llama-index-core`` raises
:class:`~splare_connect.errors.MissingDependencyError` naming ``pip install "splare-connect[llamaindex]"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from splare_connect.integrations import encoder_from, require

require("llama_index.core", "llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import Role, SplareEncoder
    from splare_connect.retriever import Retriever, SearchHit

__all__ = ["SparseFns", "SplareRetriever", "splare_sparse_fns"]

# LlamaIndex's ``SparseEncoderCallable``: texts in, (indices per text, values per text) out.
SparseEncoderFn = Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]


class SparseFns(NamedTuple):
    """The two callables ``QdrantVectorStore`` takes: unpack it, or read ``.doc_fn`` and ``.query_fn``.

    Attributes:
        doc_fn: For ``sparse_doc_fn``: encodes node texts as documents.
        query_fn: For ``sparse_query_fn``: encodes query strings as queries.
    """

    doc_fn: SparseEncoderFn
    query_fn: SparseEncoderFn


def splare_sparse_fns(encoder: SplareEncoder | str | Path | None = None, *, batch_size: int = 32) -> SparseFns:
    """``sparse_doc_fn`` and ``sparse_query_fn`` for LlamaIndex's ``QdrantVectorStore``.

    Documents and queries are encoded differently (prefix and pruning), which is why the
    store takes two functions and why both must come from the same encoder. The encoder
    is loaded here, not on the first insert, so a missing model fails at set-up.

    Args:
        encoder: A loaded :class:`~splare_connect.encoding.encoder.SplareEncoder`, or a registered
            model name or model directory (None: the default model), loaded once per
            process through :func:`~splare_connect.integrations.shared_encoder`.
        batch_size: Texts per forward pass.

    Returns:
        ``(doc_fn, query_fn)``; each maps ``list[str]`` to ``(indices, values)``, one list
        of each per text. A blank text gives empty lists (it has no features). Each raises
        :class:`~splare_connect.errors.BadInputError` for one string instead of a list, or
        a text that is not valid Unicode (naming its index).
    """
    encoder = encoder_from(encoder)
    return SparseFns(
        doc_fn=_sparse_fn(encoder, "document", batch_size),
        query_fn=_sparse_fn(encoder, "query", batch_size),
    )


def _sparse_fn(encoder: SplareEncoder, role: Role, batch_size: int) -> SparseEncoderFn:
    def encode(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        # Passed as given, not list()-ed: encode() checks the texts, and list("abc") would
        # encode one text per character.
        vectors = encoder.encode(texts, role=role, batch_size=batch_size).sparse
        return [v.indices.tolist() for v in vectors], [v.values.tolist() for v in vectors]

    encode.__name__ = f"splare_{role}_fn"
    encode.__qualname__ = encode.__name__
    return encode


class SplareRetriever(BaseRetriever):
    """A LlamaIndex retriever over a collection that splare-connect built and keeps in sync.

    Each hit becomes a ``TextNode`` whose id is the stored chunk id (``"<doc id>#<chunk>"``)
    and whose metadata is the document's metadata plus ``doc_id`` (the source document), so
    answers can cite their source.

    Args:
        retriever: A :class:`~splare_connect.retriever.Retriever` (it holds the encoder, the
            backend and the collection, and checks they match).
        similarity_top_k: Number of nodes returned (the ``k`` of ``Retriever.search``).
        search_kwargs: Further options for ``Retriever.search`` (``hybrid="rrf"``,
            ``filter=...``, ``group_by_document=True``, ...), passed through unchanged.
        **kwargs: ``BaseRetriever`` options (``callback_manager``, ``verbose``, ...).

    Example:
        >>> nodes = SplareRetriever(retriever, similarity_top_k=5).retrieve("resize a partition")
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        similarity_top_k: int = 10,
        search_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.retriever = retriever
        self.similarity_top_k = similarity_top_k
        self.search_kwargs = dict(search_kwargs or {})
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search(query_bundle.query_str, k=self.similarity_top_k, **self.search_kwargs)
        return [_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self.retriever.asearch(query_bundle.query_str, k=self.similarity_top_k, **self.search_kwargs)
        return [_node(hit) for hit in hits]


def _node(hit: SearchHit) -> NodeWithScore:
    node = TextNode(text=hit.text or "", id_=hit.id, metadata={**hit.metadata, "doc_id": hit.doc_id})
    return NodeWithScore(node=node, score=hit.score)
