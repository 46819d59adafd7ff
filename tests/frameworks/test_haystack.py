"""Haystack integration in real pipelines on qdrant-haystack's QdrantDocumentStore (qdrant-client local mode).

The tiny model is random, so "the right page ranks first" is checked against an oracle
computed from the same encoder: sparse retrieval must return the brute-force dot-product
scores, and hybrid retrieval must put first every page that tops both the sparse and the
dense ranking of its own text (rank fusion keeps a shared winner first).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Haystack decides at import whether to send usage telemetry; these tests run offline.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

pytest.importorskip("haystack")
pytest.importorskip("haystack_integrations.document_stores.qdrant")

from haystack import Document, Pipeline, component
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import SparseEmbedding
from haystack_integrations.components.retrievers.qdrant import (
    QdrantHybridRetriever,
    QdrantSparseEmbeddingRetriever,
)
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from splare_connect.errors import MissingDependencyError
from splare_connect.integrations import shared_encoder
from splare_connect.integrations.haystack import SplareSparseDocumentEmbedder, SplareSparseTextEmbedder

PAGES = 8


@component
class TinyDenseTextEmbedder:
    """The app's dense query embedder: the tiny encoder's own dense head."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        encoder = shared_encoder(self.model_dir, device="cpu")
        return {"embedding": encoder.encode([text], role="query", dense=True).dense[0].tolist()}


@component
class TinyDenseDocumentEmbedder:
    """The app's dense document embedder: the tiny encoder's own dense head."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        from dataclasses import replace

        encoder = shared_encoder(self.model_dir, device="cpu")
        dense = encoder.encode([doc.content or "" for doc in documents], dense=True).dense
        return {"documents": [replace(doc, embedding=row.tolist()) for doc, row in zip(documents, dense, strict=True)]}


def _matrix(vectors: list[Any]) -> np.ndarray:
    return np.stack([vector.to_dense().astype(np.float64) for vector in vectors])


@pytest.fixture(scope="module")
def pages(example_records: list[dict]) -> list[Document]:
    return [
        Document(id=record["id"], content=record["text"][:400], meta={"title": record["title"]})
        for record in example_records[:PAGES]
    ]


@pytest.fixture(scope="module")
def store(tiny_model_dir: Path, tiny_encoder: Any, pages: list[Document]) -> QdrantDocumentStore:
    store = QdrantDocumentStore(
        ":memory:", index="pages", use_sparse_embeddings=True, embedding_dim=tiny_encoder.dense_dim, progress_bar=False
    )
    indexing = Pipeline()
    indexing.add_component("sparse", SplareSparseDocumentEmbedder(tiny_model_dir, device="cpu", batch_size=4))
    indexing.add_component("dense", TinyDenseDocumentEmbedder(str(tiny_model_dir)))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("sparse.documents", "dense.documents")
    indexing.connect("dense.documents", "writer.documents")
    assert indexing.run({"sparse": {"documents": pages}})["writer"]["documents_written"] == len(pages)
    return store


def test_document_embedder_sets_the_encoders_vectors_on_copies(tiny_model_dir: Path, tiny_encoder: Any) -> None:
    documents = [
        Document(content="ls lists directory contents", meta={"title": "ls"}),
        Document(content=None, meta={"title": "empty"}),
    ]
    embedder = SplareSparseDocumentEmbedder(tiny_model_dir, device="cpu", meta_fields_to_embed=["title"])
    result = embedder.run(documents)["documents"]
    assert all(doc.sparse_embedding is None for doc in documents), "the caller's Documents were changed"
    assert [doc.id for doc in result] == [doc.id for doc in documents]
    expected = tiny_encoder.encode(["ls\nls lists directory contents", "empty\n"]).sparse
    for doc, vector in zip(result, expected, strict=True):
        assert doc.sparse_embedding.indices == vector.indices.tolist()
        np.testing.assert_allclose(doc.sparse_embedding.values, vector.values, rtol=1e-6)
    assert embedder.run([]) == {"documents": []}
    with pytest.raises(TypeError, match="SplareSparseTextEmbedder"):
        embedder.run("a string")  # type: ignore[arg-type]


def test_stored_sparse_vectors_are_the_encoders(
    tiny_encoder: Any, store: QdrantDocumentStore, pages: list[Document]
) -> None:
    stored = {doc.id: doc.sparse_embedding for doc in store.filter_documents()}
    expected = tiny_encoder.encode([doc.content for doc in pages]).sparse
    for doc, vector in zip(pages, expected, strict=True):
        assert stored[doc.id].indices == vector.indices.tolist()
        np.testing.assert_allclose(stored[doc.id].values, vector.values, rtol=1e-6)


def test_sparse_pipeline_returns_the_brute_force_scores(
    tiny_model_dir: Path, tiny_encoder: Any, store: QdrantDocumentStore, pages: list[Document]
) -> None:
    query = Pipeline()
    query.add_component("sparse", SplareSparseTextEmbedder(tiny_model_dir, device="cpu"))
    query.add_component("retriever", QdrantSparseEmbeddingRetriever(document_store=store, top_k=3))
    query.connect("sparse.sparse_embedding", "retriever.query_sparse_embedding")
    documents = _matrix(tiny_encoder.encode([doc.content for doc in pages]).sparse)
    ids = [doc.id for doc in pages]
    for page in pages[:3]:
        scores = (_matrix(tiny_encoder.encode([page.content], role="query").sparse) @ documents.T)[0]
        found = query.run({"sparse": {"text": page.content}})["retriever"]["documents"]
        assert [doc.score for doc in found] == pytest.approx([scores[ids.index(doc.id)] for doc in found], rel=1e-4)
        assert [doc.score for doc in found] == pytest.approx(sorted(scores, reverse=True)[:3], rel=1e-4)


def test_hybrid_pipeline_ranks_the_page_first(
    tiny_model_dir: Path, tiny_encoder: Any, store: QdrantDocumentStore, pages: list[Document]
) -> None:
    texts = [doc.content for doc in pages]
    documents = tiny_encoder.encode(texts, dense=True)
    queries = tiny_encoder.encode(texts, role="query", dense=True)
    sparse_top = (_matrix(queries.sparse) @ _matrix(documents.sparse).T).argmax(axis=1)
    dense_top = (queries.dense @ documents.dense.T).argmax(axis=1)
    winners = [i for i in range(len(pages)) if sparse_top[i] == dense_top[i] == i]
    assert winners, "the fixture has no page that tops both rankings of its own text"
    query = Pipeline()
    query.add_component("sparse", SplareSparseTextEmbedder(tiny_model_dir, device="cpu"))
    query.add_component("dense", TinyDenseTextEmbedder(str(tiny_model_dir)))
    query.add_component("retriever", QdrantHybridRetriever(document_store=store, top_k=3))
    query.connect("sparse.sparse_embedding", "retriever.query_sparse_embedding")
    query.connect("dense.embedding", "retriever.query_embedding")
    for i in winners:
        found = query.run({"sparse": {"text": texts[i]}, "dense": {"text": texts[i]}})["retriever"]["documents"]
        assert found[0].id == pages[i].id


def test_blank_texts(tiny_model_dir: Path, store: QdrantDocumentStore) -> None:
    embedding = SplareSparseTextEmbedder(tiny_model_dir, device="cpu").run("   ")["sparse_embedding"]
    assert embedding == SparseEmbedding(indices=[], values=[])
    assert QdrantSparseEmbeddingRetriever(document_store=store).run(query_sparse_embedding=embedding)["documents"] == []
    # A Document without content is stored with an empty sparse embedding, and no sparse query finds it.
    blank_store = QdrantDocumentStore(":memory:", index="blank", use_sparse_embeddings=True, progress_bar=False)
    embedder = SplareSparseDocumentEmbedder(tiny_model_dir, device="cpu")
    documents = embedder.run([Document(id="blank", content=None), Document(id="ls", content="ls lists files")])
    assert blank_store.write_documents(documents["documents"]) == 2
    query = SplareSparseTextEmbedder(tiny_model_dir, device="cpu").run("ls lists files")["sparse_embedding"]
    found = QdrantSparseEmbeddingRetriever(document_store=blank_store).run(query_sparse_embedding=query)["documents"]
    assert [doc.id for doc in found] == ["ls"]


def test_to_dict_from_dict_round_trip(tiny_model_dir: Path) -> None:
    text = SplareSparseTextEmbedder(tiny_model_dir, device="cpu")
    assert text.to_dict() == {
        "type": "splare_connect.integrations.haystack.SplareSparseTextEmbedder",
        "init_parameters": {"model": str(tiny_model_dir), "device": "cpu"},
    }
    documents = SplareSparseDocumentEmbedder(batch_size=8, meta_fields_to_embed=["title"], embedding_separator=" | ")
    restored = SplareSparseDocumentEmbedder.from_dict(documents.to_dict())
    assert restored.to_dict() == documents.to_dict()
    assert (restored.model, restored.batch_size, restored.meta_fields_to_embed) == (None, 8, ["title"])
    assert restored.encoder is None, "from_dict must not load the model (warm_up does)"

    pipeline = Pipeline()
    pipeline.add_component("sparse", text)
    # Haystack only rebuilds classes from trusted modules; the app opts in, the integration does not.
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["splare_connect.integrations.haystack"])
    embedder = loaded.get_component("sparse")
    assert isinstance(embedder, SplareSparseTextEmbedder)
    assert loaded.run({"sparse": {"text": "list files"}}) == {"sparse": text.run("list files")}


def test_threads_share_one_encoder_and_get_the_same_vectors(tiny_model_dir: Path, example_records: list[dict]) -> None:
    texts = [record["text"][:200] for record in example_records[:6]]
    sequential = SplareSparseTextEmbedder(tiny_model_dir, device="cpu")
    expected = [sequential.run(text)["sparse_embedding"] for text in texts]
    embedders = [SplareSparseTextEmbedder(tiny_model_dir, device="cpu") for _ in range(2)]
    results: list[list[SparseEmbedding]] = [[], []]
    errors: list[BaseException] = []

    def work(position: int) -> None:
        try:
            embedders[position].warm_up()
            for _ in range(3):
                results[position].extend(embedders[position].run(text)["sparse_embedding"] for text in texts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(position,)) for position in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [expected * 3, expected * 3]
    assert embedders[0].encoder is embedders[1].encoder is sequential.encoder
    assert shared_encoder(tiny_model_dir, device="cpu") is sequential.encoder


def test_missing_haystack_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "haystack", None)
    monkeypatch.delitem(sys.modules, "splare_connect.integrations.haystack")
    with pytest.raises(MissingDependencyError, match=r'pip install "splare-connect\[haystack\]"'):
        importlib.import_module("splare_connect.integrations.haystack")
