"""SPLARE in Haystack: sparse text and document embedder components.

They emit Haystack's ``SparseEmbedding``, so they plug into any document store that
takes one, qdrant-haystack's ``QdrantDocumentStore(use_sparse_embeddings=True)`` first:
index with :class:`SplareSparseDocumentEmbedder`, query with :class:`SplareSparseTextEmbedder`
feeding ``QdrantSparseEmbeddingRetriever`` (or ``QdrantHybridRetriever`` next to the app's
own dense embedder). Both components must name the same model: documents and queries are
encoded differently (prefix and pruning) but into the same feature space.

Example:
    >>> from haystack import Pipeline
    >>> from haystack_integrations.components.retrievers.qdrant import QdrantSparseEmbeddingRetriever
    >>> query = Pipeline()
    >>> query.add_component("sparse", SplareSparseTextEmbedder())
    >>> query.add_component("retriever", QdrantSparseEmbeddingRetriever(document_store=store))
    >>> query.connect("sparse.sparse_embedding", "retriever.query_sparse_embedding")

The model loads in ``warm_up()`` (the pipeline calls it), once per process however many
components name it (:func:`~splare_connect.integrations.shared_encoder`). Importing this
module without ``haystack-ai`` raises :class:`~splare_connect.errors.MissingDependencyError`
naming ``pip install "splare-connect[haystack]"``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splare_connect.encoding.inputs import validate_texts
from splare_connect.errors import BadInputError
from splare_connect.integrations import require, shared_encoder

require("haystack", "haystack")

from haystack import Document, component, default_from_dict, default_to_dict  # noqa: E402
from haystack.dataclasses import SparseEmbedding  # noqa: E402

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.sparse_vector import SparseVector

__all__ = ["SplareSparseDocumentEmbedder", "SplareSparseTextEmbedder"]


class _SplareComponent:
    """What both embedders share: the model they name, and loading it once."""

    def __init__(self, model: str | Path | None, device: str | None) -> None:
        # Serialised as given (a name or a directory), never as the loaded encoder.
        self.model = None if model is None else str(model)
        self.device = device
        self.encoder: SplareEncoder | None = None

    def warm_up(self) -> None:
        """Load the encoder, or reuse the one this process already loaded for the same model."""
        if self.encoder is None:
            options = {} if self.device is None else {"device": self.device}
            self.encoder = shared_encoder(self.model, **options)

    def _loaded(self) -> SplareEncoder:
        self.warm_up()
        assert self.encoder is not None
        return self.encoder

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}


def _sparse_embedding(vector: SparseVector) -> SparseEmbedding:
    return SparseEmbedding(indices=vector.indices.tolist(), values=vector.values.tolist())


@component
class SplareSparseTextEmbedder(_SplareComponent):
    """Encodes a query string as a SPLARE sparse embedding.

    Args:
        model: A registered model name or a model directory; None for the default model.
            It must be the model the documents were embedded with.
        device: Torch device (``"cpu"``, ``"cuda"``...); None picks one.

    Example:
        >>> SplareSparseTextEmbedder().run("list open files")["sparse_embedding"]
        SparseEmbedding(indices=[...], values=[...])
    """

    def __init__(self, model: str | Path | None = None, *, device: str | None = None) -> None:
        # Not super(): @component rebuilds the class, which breaks the zero-argument form.
        _SplareComponent.__init__(self, model, device)

    def to_dict(self) -> dict[str, Any]:
        """The component's settings (the model's name or path, not its weights)."""
        return default_to_dict(self, model=self.model, device=self.device)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplareSparseTextEmbedder:
        """Rebuild the component from :meth:`to_dict`'s output; the model loads in ``warm_up``."""
        return default_from_dict(cls, data)

    @component.output_types(sparse_embedding=SparseEmbedding)
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        Args:
            text: The query. A blank one has no features: its embedding is empty and
                matches no document.

        Returns:
            ``{"sparse_embedding": SparseEmbedding}``.

        Raises:
            BadInputError: ``text`` is not a string (use the document embedder for Documents),
                or holds a lone surrogate. It is a ``TypeError`` too.
        """
        if not isinstance(text, str):
            raise BadInputError(
                "SplareSparseTextEmbedder expects a string; to embed Documents use SplareSparseDocumentEmbedder"
            )
        [query] = validate_texts([text], name="query")
        vector = self._loaded().encode([query], role="query").sparse[0]
        return {"sparse_embedding": _sparse_embedding(vector)}


@component
class SplareSparseDocumentEmbedder(_SplareComponent):
    """Encodes Documents as SPLARE sparse embeddings, set on copies of them.

    Like Haystack's own embedders it returns new Documents (``dataclasses.replace``) and
    leaves the caller's untouched, so a dense embedder running on the same input in
    another branch of the pipeline is not affected.

    Args:
        model: A registered model name or a model directory; None for the default model.
        device: Torch device (``"cpu"``, ``"cuda"``...); None picks one.
        batch_size: Documents per forward pass.
        progress_bar: Show a progress bar; None shows one for long inputs on a terminal.
        meta_fields_to_embed: Meta fields whose values are embedded with the content,
            before it, as Haystack's embedders do (e.g. a title).
        embedding_separator: Joins those values and the content.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        progress_bar: bool | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> None:
        # Not super(): @component rebuilds the class, which breaks the zero-argument form.
        _SplareComponent.__init__(self, model, device)
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def to_dict(self) -> dict[str, Any]:
        """The component's settings (the model's name or path, not its weights)."""
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplareSparseDocumentEmbedder:
        """Rebuild the component from :meth:`to_dict`'s output; the model loads in ``warm_up``."""
        return default_from_dict(cls, data)

    def _text(self, document: Document) -> str:
        fields = [str(document.meta[key]) for key in self.meta_fields_to_embed if document.meta.get(key) is not None]
        return self.embedding_separator.join([*fields, document.content or ""])

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed Documents.

        Args:
            documents: Documents to embed; a Document without content (and without
                embedded meta fields) gets an empty sparse embedding.

        Returns:
            ``{"documents": [...]}``: copies of the input, in order, with ``sparse_embedding`` set.

        Raises:
            BadInputError: ``documents`` is not a list of Documents (use the text embedder for
                strings), or a Document's text holds a lone surrogate (naming its index). It
                is a ``TypeError`` too.
        """
        if not isinstance(documents, list) or any(not isinstance(doc, Document) for doc in documents):
            raise BadInputError(
                "SplareSparseDocumentEmbedder expects a list of Documents; "
                "to embed a string use SplareSparseTextEmbedder"
            )
        if not documents:
            return {"documents": []}
        texts = validate_texts([self._text(doc) for doc in documents], name="documents")
        vectors = (
            self._loaded()
            .encode(
                texts,
                role="document",
                batch_size=self.batch_size,
                show_progress=self.progress_bar,
            )
            .sparse
        )
        return {
            "documents": [
                replace(doc, sparse_embedding=_sparse_embedding(vector))
                for doc, vector in zip(documents, vectors, strict=True)
            ]
        }
