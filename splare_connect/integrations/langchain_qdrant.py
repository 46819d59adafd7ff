"""SPLARE sparse vectors for langchain-qdrant's ``QdrantVectorStore`` (``sparse_embedding=``).

LangChain's sparse embedding interface belongs to langchain-qdrant, the framework's own
Qdrant store, so this module is the one place the LangChain integration loads a
database client; :mod:`splare_connect.integrations.langchain`'s retriever never does.

Requires ``pip install "splare-connect[langchain]"``; importing this module without it
raises :class:`~splare_connect.errors.MissingDependencyError` saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from splare_connect.integrations import require

require("langchain_core", "langchain")
require("langchain_qdrant", "langchain")

from langchain_qdrant import SparseEmbeddings  # noqa: E402
from langchain_qdrant import SparseVector as LangChainSparseVector  # noqa: E402

from splare_connect.encoding.inputs import validate_texts  # noqa: E402
from splare_connect.errors import ConfigError  # noqa: E402
from splare_connect.integrations import encoder_from  # noqa: E402

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.sparse_vector import SparseVector

__all__ = ["SplareSparseEmbeddings"]


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
        encoder: A loaded :class:`~splare_connect.encoding.encoder.SplareEncoder`, a registered model
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
