"""LlamaIndex integration on the real framework and a real Qdrant engine (qdrant-client local mode).

The tiny model is random, so "the right page ranks first" is checked against an oracle
computed from the same encoder: sparse search must return the brute-force dot-product
ranking, and hybrid search must put first every page that tops both the sparse and the
dense ranking of its own text (any fusion of two lists keeps a shared winner first).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.vector_stores.qdrant")
pytest.importorskip("splare_connect_qdrant")

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from splare_connect import Retriever, Syncer, load_backend, read_iterable
from splare_connect.errors import MissingDependencyError
from splare_connect.integrations import shared_encoder
from splare_connect.integrations.llama_index import SplareRetriever, splare_sparse_fns

PAGES = 8

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


class TinyDenseEmbedding(BaseEmbedding):
    """The app's dense model: the tiny encoder's own dense head, behind LlamaIndex's interface."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Any) -> None:
        super().__init__(model_name="tiny-dense", embed_batch_size=16)
        self._encoder = encoder

    def _embed(self, texts: list[str], role: str) -> list[list[float]]:
        return self._encoder.encode(list(texts), role=role, dense=True).dense.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text], "document")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "document")


def _dense_matrix(vectors: list[Any]) -> np.ndarray:
    return np.stack([vector.to_dense().astype(np.float64) for vector in vectors])


@pytest.fixture(scope="module")
def nodes(example_records: list[dict]) -> list[TextNode]:
    return [
        TextNode(text=record["text"][:400], metadata={"page": record["id"], "section": record["section"]})
        for record in example_records[:PAGES]
    ]


@pytest.fixture(scope="module")
def hybrid_index(tiny_encoder: Any, nodes: list[TextNode]) -> tuple[VectorStoreIndex, QdrantClient, QdrantVectorStore]:
    client = QdrantClient(":memory:")
    doc_fn, query_fn = splare_sparse_fns(tiny_encoder, batch_size=4)
    store = QdrantVectorStore(
        client=client, collection_name="pages", enable_hybrid=True, sparse_doc_fn=doc_fn, sparse_query_fn=query_fn
    )
    index = VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=TinyDenseEmbedding(tiny_encoder),
    )
    return index, client, store


def _pages(results: list[NodeWithScore]) -> list[str]:
    return [result.node.metadata["page"] for result in results]


def test_stored_sparse_vectors_are_the_encoders(tiny_encoder: Any, nodes: list[TextNode], hybrid_index: Any) -> None:
    _, client, store = hybrid_index
    records = client.retrieve("pages", [node.node_id for node in nodes], with_vectors=True)
    stored = {record.id: record.vector[store.sparse_vector_name] for record in records}
    expected = tiny_encoder.encode([node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]).sparse
    assert len(stored) == len(nodes)
    for node, vector in zip(nodes, expected, strict=True):
        assert vector.nnz > 0
        assert stored[node.node_id].indices == vector.indices.tolist()
        np.testing.assert_allclose(stored[node.node_id].values, vector.values, rtol=1e-6)


def test_sparse_mode_returns_the_brute_force_ranking(
    tiny_encoder: Any, nodes: list[TextNode], hybrid_index: Any
) -> None:
    index, _, _ = hybrid_index
    documents = _dense_matrix(
        tiny_encoder.encode([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]).sparse
    )
    retriever = index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=3)
    pages = [node.metadata["page"] for node in nodes]
    for node in nodes[:3]:
        query = node.get_content()
        scores = (_dense_matrix(tiny_encoder.encode([query], role="query").sparse) @ documents.T)[0]
        results = retriever.retrieve(query)
        # Each hit carries its page's brute-force score, and they are the three best (ties may swap pages).
        assert [r.score for r in results] == pytest.approx([scores[pages.index(p)] for p in _pages(results)], rel=1e-4)
        assert [r.score for r in results] == pytest.approx(sorted(scores, reverse=True)[:3], rel=1e-4)


def test_hybrid_mode_ranks_the_page_first(tiny_encoder: Any, nodes: list[TextNode], hybrid_index: Any) -> None:
    index, _, _ = hybrid_index
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    documents = tiny_encoder.encode(texts, dense=True)
    queries = tiny_encoder.encode([node.get_content() for node in nodes], role="query", dense=True)
    sparse_top = (_dense_matrix(queries.sparse) @ _dense_matrix(documents.sparse).T).argmax(axis=1)
    dense_top = (queries.dense @ documents.dense.T).argmax(axis=1)
    winners = [i for i in range(len(nodes)) if sparse_top[i] == dense_top[i] == i]
    assert winners, "the fixture has no page that tops both rankings of its own text"
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=3, sparse_top_k=5)
    for i in winners:
        assert _pages(retriever.retrieve(nodes[i].get_content()))[0] == nodes[i].metadata["page"]


def test_blank_texts(tiny_encoder: Any) -> None:
    doc_fn, query_fn = splare_sparse_fns(tiny_encoder)
    assert doc_fn(["", " \u200b "]) == ([[], []], [[], []])
    client = QdrantClient(":memory:")
    store = QdrantVectorStore(
        client=client, collection_name="blank", enable_hybrid=True, sparse_doc_fn=doc_fn, sparse_query_fn=query_fn
    )
    blank, spaces, page = TextNode(text=""), TextNode(text=" \u200b "), TextNode(text="ls lists directory contents")
    index = VectorStoreIndex(
        [blank, spaces, page],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=TinyDenseEmbedding(tiny_encoder),
    )
    # LlamaIndex itself skips a node without content; a whitespace-only one is stored with an empty sparse vector.
    stored = {record.id: record.vector for record in client.scroll("blank", with_vectors=True)[0]}
    assert set(stored) == {spaces.node_id, page.node_id}
    assert stored[spaces.node_id][store.sparse_vector_name].indices == []
    sparse = index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=5)
    assert [n.node.node_id for n in sparse.retrieve("directory contents")] == [page.node_id]
    assert sparse.retrieve(" ") == []
    # In hybrid mode a blank query has no sparse side: the dense ranking alone answers.
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=5)
    assert {n.node.node_id for n in hybrid.retrieve(" ")} == {spaces.node_id, page.node_id}


@pytest.fixture(scope="module")
def synced_retriever(tiny_encoder: Any, example_records: list[dict]) -> Retriever:
    backend = load_backend("qdrant", location=":memory:")
    Syncer(tiny_encoder, backend, "docs").run(read_iterable(example_records[:PAGES]))
    return Retriever(tiny_encoder, backend, "docs")


def test_retriever_returns_the_splare_hits_as_nodes(synced_retriever: Retriever, example_records: list[dict]) -> None:
    query = example_records[1]["text"][:200]
    hits = synced_retriever.search(query, k=4)
    nodes = SplareRetriever(synced_retriever, similarity_top_k=4).retrieve(query)
    assert [n.node.node_id for n in nodes] == [hit.id for hit in hits]
    assert [n.score for n in nodes] == [hit.score for hit in hits]
    by_id = {record["id"]: record for record in example_records}
    for node, hit in zip(nodes, hits, strict=True):
        assert isinstance(node, NodeWithScore)
        assert node.node.get_content() == hit.text
        assert node.node.metadata["doc_id"] == hit.doc_id
        assert node.node.metadata["section"] == by_id[hit.doc_id]["section"]


def test_retriever_async_and_search_kwargs(synced_retriever: Retriever, example_records: list[dict]) -> None:
    query = example_records[2]["text"][:200]
    options = {"hybrid": "rrf", "group_by_document": True}
    hits = synced_retriever.search(query, k=3, **options)
    retriever = SplareRetriever(synced_retriever, similarity_top_k=3, search_kwargs=options)
    assert [n.node.node_id for n in asyncio.run(retriever.aretrieve(query))] == [hit.id for hit in hits]
    assert [n.node.node_id for n in retriever.retrieve(query)] == [hit.id for hit in hits]


def test_shared_encoder_serves_threads_the_same_vectors(tiny_model_dir: Path, example_records: list[dict]) -> None:
    texts = [record["text"][:200] for record in example_records[:6]]
    encoder = shared_encoder(tiny_model_dir, device="cpu")
    doc_fn, query_fn = splare_sparse_fns(encoder)
    expected = (doc_fn(texts), query_fn(texts))
    encoders: list[Any] = []
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            shared = shared_encoder(tiny_model_dir, device="cpu")
            encoders.append(shared)
            fns = splare_sparse_fns(shared)
            for _ in range(3):
                results.append((fns.doc_fn(texts), fns.query_fn(texts)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert encoders == [encoder, encoder]
    assert all(shared is encoder for shared in encoders)
    assert results == [expected] * 6


def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index", None)
    monkeypatch.setitem(sys.modules, "llama_index.core", None)
    monkeypatch.delitem(sys.modules, "splare_connect.integrations.llama_index")
    with pytest.raises(MissingDependencyError, match=r'pip install "splare-connect\[llamaindex\]"'):
        importlib.import_module("splare_connect.integrations.llama_index")
