"""The LangChain integration on the real frameworks and engines.

LangChain's own standard retriever suite runs on ``SplareRetriever`` over a collection synced
from real man pages, and langchain-qdrant's ``QdrantVectorStore`` runs end to end on
qdrant-client's local mode with ``SplareSparseEmbeddings``. The tiny model's rankings are
arbitrary, so result checks compare with a brute-force oracle over the same encoder's vectors.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_qdrant")
pytest.importorskip("splare_connect_qdrant")

from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from langchain_qdrant import SparseVector as LangChainSparseVector
from langchain_tests.integration_tests import RetrieversIntegrationTests

from splare_connect import ConfigError, MissingDependencyError, Retriever, Syncer, load_backend, read_iterable
from splare_connect.integrations.langchain import SplareRetriever, SplareSparseEmbeddings

STORE_RECORDS = 40  # pages indexed in the langchain-qdrant stores


class TinyDenseEmbeddings(Embeddings):
    """The app's dense model in these tests: the tiny encoder's own dense head."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(list(texts), role="document", dense=True).dense.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text], role="query", dense=True).dense[0].tolist()


def sparse_dot(query: Any, document: Any) -> float:
    _, in_query, in_document = np.intersect1d(query.indices, document.indices, return_indices=True)
    return float(np.dot(query.values[in_query].astype(np.float64), document.values[in_document]))


def as_pairs(vector: Any) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


# --- a splare-connect collection, for SplareRetriever -------------------------------------


@pytest.fixture(scope="module")
def splare_retriever(tiny_encoder, example_records) -> Iterator[Retriever]:  # type: ignore[no-untyped-def]
    backend = load_backend("qdrant", location=":memory:")
    Syncer(tiny_encoder, backend, "docs").run(read_iterable(example_records[:30]))
    yield Retriever(tiny_encoder, backend, "docs")
    backend.close()


class TestSplareRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's standard retriever tests (k in the constructor and in invoke, sync and async)."""

    # pytest-asyncio runs the suite's async test; its sync tests only get a harmless warning, silenced.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [
        pytest.mark.asyncio,
        pytest.mark.filterwarnings("ignore:The test <Function test_:pytest.PytestWarning"),
    ]
    _splare: Retriever

    @pytest.fixture(autouse=True)
    def _collection(self, splare_retriever: Retriever) -> None:
        type(self)._splare = splare_retriever

    @property
    def retriever_constructor(self) -> type[SplareRetriever]:
        return SplareRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self._splare, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "list directory contents"


def test_retriever_documents_carry_hit_fields(splare_retriever: Retriever) -> None:
    retriever = SplareRetriever(retriever=splare_retriever, k=5)
    query = "print the synopsis of a command"
    hits = splare_retriever.search(query, k=5)
    documents = retriever.invoke(query)
    assert len(documents) == len(hits) == 5
    for document, hit in zip(documents, hits, strict=True):
        assert document.id == hit.id == document.metadata["id"]
        assert document.page_content == hit.text
        assert document.metadata == {**hit.metadata, "score": hit.score, "doc_id": hit.doc_id, "id": hit.id}
    assert asyncio.run(retriever.ainvoke(query)) == documents


def test_retriever_search_kwargs_reach_the_search(splare_retriever: Retriever, tiny_encoder: Any) -> None:
    query = "copy files"
    grouped = SplareRetriever(retriever=splare_retriever, k=6, search_kwargs={"group_by_document": True})
    documents = grouped.invoke(query)
    assert len({d.metadata["doc_id"] for d in documents}) == len(documents)
    # Keywords given to invoke override the constructor's, for that call only.
    hybrid = grouped.invoke(query, k=3, hybrid="rrf", group_by_document=False)
    assert [d.id for d in hybrid] == [h.id for h in splare_retriever.search(query, k=3, hybrid="rrf")]
    assert len(grouped.invoke(query)) == 6
    explained = SplareRetriever(retriever=splare_retriever, k=2, search_kwargs={"explain": True}).invoke(query)
    assert all(d.metadata["features"] for d in explained)
    built = SplareRetriever.from_backend(splare_retriever.backend, "docs", encoder=tiny_encoder, k=2)
    assert [d.id for d in built.invoke(query)] == [h.id for h in splare_retriever.search(query, k=2)]


def test_retriever_blank_query_returns_nothing(splare_retriever: Retriever) -> None:
    assert SplareRetriever(retriever=splare_retriever).invoke("   ") == []


# --- langchain-qdrant's QdrantVectorStore with SplareSparseEmbeddings ---------------------


@pytest.fixture(scope="module")
def store_texts(example_records: list[dict]) -> tuple[list[str], list[dict]]:
    records = example_records[:STORE_RECORDS]
    return [r["text"][:1000] for r in records], [{"id": r["id"], "title": r["title"]} for r in records]


@pytest.fixture(scope="module")
def sparse_embeddings(tiny_encoder: Any) -> SplareSparseEmbeddings:
    return SplareSparseEmbeddings(tiny_encoder, batch_size=8)


@pytest.fixture(scope="module")
def oracle_query(tiny_encoder: Any, store_texts: tuple[list[str], list[dict]]) -> tuple[str, int]:
    """A page's own words that the tiny model ranks that page first for, by sparse and by dense score.

    The tiny model is random, so not every page qualifies; the oracle finds one that does
    (brute force over the same encoder's vectors), so both retrieval modes must put it first.
    """
    texts, _ = store_texts
    documents = tiny_encoder.encode(texts, role="document", dense=True)
    dense_documents = documents.dense / np.linalg.norm(documents.dense, axis=1, keepdims=True)
    for position, text in enumerate(texts):
        query = " ".join(text.split()[:12])
        encoded = tiny_encoder.encode([query], role="query", dense=True)
        sparse_scores = [sparse_dot(encoded.sparse[0], d) for d in documents.sparse]
        dense_scores = dense_documents @ encoded.dense[0]
        first = int(np.argmax(sparse_scores)) == position == int(np.argmax(dense_scores))
        if first and sorted(sparse_scores)[-2] < sparse_scores[position] * 0.999:  # and no near tie
            return query, position
    raise AssertionError("no page is ranked first for its own words by both scores; the tiny model changed")


@pytest.fixture(scope="module", params=[RetrievalMode.SPARSE, RetrievalMode.HYBRID], ids=["sparse", "hybrid"])
def store(
    request: pytest.FixtureRequest,
    tiny_encoder: Any,
    sparse_embeddings: SplareSparseEmbeddings,
    store_texts: tuple[list[str], list[dict]],
) -> Iterator[QdrantVectorStore]:
    texts, metadatas = store_texts
    mode = request.param
    store = QdrantVectorStore.from_texts(
        texts[:10],
        metadatas=metadatas[:10],
        embedding=TinyDenseEmbeddings(tiny_encoder) if mode == RetrievalMode.HYBRID else None,
        sparse_embedding=sparse_embeddings,
        location=":memory:",
        collection_name="man",
        retrieval_mode=mode,
        sparse_vector_name="splare",
        batch_size=16,
    )
    store.add_texts(texts[10:], metadatas=metadatas[10:], batch_size=16)  # add_texts after from_texts
    yield store
    store.client.close()


def test_store_keeps_the_encoder_vectors(
    store: QdrantVectorStore, tiny_encoder: Any, store_texts: tuple[list[str], list[dict]]
) -> None:
    texts, _ = store_texts
    points, _ = store.client.scroll("man", limit=STORE_RECORDS + 1, with_vectors=["splare"], with_payload=True)
    assert len(points) == STORE_RECORDS
    expected = dict(zip(texts, tiny_encoder.encode(texts, role="document").sparse, strict=True))
    for point in points:
        stored = point.vector["splare"]
        assert as_pairs(stored) == as_pairs(expected[point.payload["page_content"]])


def test_store_search_finds_the_oracle_page(
    store: QdrantVectorStore,
    tiny_encoder: Any,
    store_texts: tuple[list[str], list[dict]],
    oracle_query: tuple[str, int],
) -> None:
    texts, metadatas = store_texts
    query, position = oracle_query
    results = store.similarity_search_with_score(query, k=5)
    assert results[0][0].metadata.items() >= metadatas[position].items()  # langchain-qdrant adds _id, _collection_name
    assert results[0][0].page_content == texts[position]
    if store.retrieval_mode == RetrievalMode.SPARSE:
        # Every score is the dot product of the encoder's query and document vectors.
        query_vector = tiny_encoder.encode([query], role="query").sparse[0]
        documents = dict(zip(texts, tiny_encoder.encode(texts, role="document").sparse, strict=True))
        for document, score in results:
            assert score == pytest.approx(sparse_dot(query_vector, documents[document.page_content]), rel=1e-5)
    asynchronous = asyncio.run(store.asimilarity_search(query, k=5))
    assert [d.page_content for d in asynchronous] == [d.page_content for d, _ in results]


def test_store_blank_query(store: QdrantVectorStore) -> None:
    """A blank query's sparse vector is empty: sparse search finds nothing, hybrid keeps the dense ranking."""
    results = store.similarity_search("  ", k=3)
    if store.retrieval_mode == RetrievalMode.SPARSE:
        assert results == []
    else:
        assert len(results) == 3


def test_store_indexes_a_blank_document(sparse_embeddings: SplareSparseEmbeddings) -> None:
    store = QdrantVectorStore.from_texts(
        ["", "ls lists directory contents"],
        sparse_embedding=sparse_embeddings,
        location=":memory:",
        collection_name="blank",
        retrieval_mode=RetrievalMode.SPARSE,
    )
    assert [d.page_content for d in store.similarity_search("ls lists directory contents", k=5)] == [
        "ls lists directory contents"
    ]
    store.client.close()


# --- SplareSparseEmbeddings itself --------------------------------------------------------


def test_embeddings_match_the_encoder(sparse_embeddings: SplareSparseEmbeddings, tiny_encoder: Any) -> None:
    texts = ["copy files and directories", "Verzeichnisinhalte auflisten", ""]
    documents = sparse_embeddings.embed_documents(texts)
    assert all(isinstance(v, LangChainSparseVector) for v in documents)
    expected = tiny_encoder.encode(texts, role="document").sparse
    assert [as_pairs(v) for v in documents] == [as_pairs(v) for v in expected]
    assert documents[2] == LangChainSparseVector(indices=[], values=[])
    query = sparse_embeddings.embed_query(texts[0])
    assert as_pairs(query) == as_pairs(tiny_encoder.encode([texts[0]], role="query").sparse[0])
    assert all(type(i) is int for i in query.indices) and all(type(v) is float for v in query.values)


def test_async_embeddings_run_off_the_event_loop(tiny_encoder: Any) -> None:
    class RecordingEmbeddings(SplareSparseEmbeddings):
        """Notes the thread each call runs in (the encoding itself is the real one)."""

        threads: list[int]

        def embed_documents(self, texts: list[str]) -> list[LangChainSparseVector]:
            self.threads.append(threading.get_ident())
            return super().embed_documents(texts)

        def embed_query(self, text: str) -> LangChainSparseVector:
            self.threads.append(threading.get_ident())
            return super().embed_query(text)

    embeddings = RecordingEmbeddings(tiny_encoder)
    embeddings.threads = []
    texts = ["change file mode bits", "remove files"]

    async def both() -> tuple[list[LangChainSparseVector], LangChainSparseVector, int]:
        documents, query = await asyncio.gather(embeddings.aembed_documents(texts), embeddings.aembed_query(texts[0]))
        return documents, query, threading.get_ident()

    documents, query, loop_thread = asyncio.run(both())
    assert len(embeddings.threads) == 2 and loop_thread not in embeddings.threads
    assert documents == embeddings.embed_documents(texts)
    assert query == embeddings.embed_query(texts[0])


def test_threads_share_one_embeddings(sparse_embeddings: SplareSparseEmbeddings, example_records: list[dict]) -> None:
    batches = [[r["text"][:300] for r in example_records[start : start + 5]] for start in range(0, 30, 5)]
    sequential = [sparse_embeddings.embed_documents(batch) for batch in batches]
    results: list[list[list[LangChainSparseVector]]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                results[worker].extend(sparse_embeddings.embed_documents(batch) for batch in batches)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert results == [sequential * 3, sequential * 3]


def test_embeddings_from_a_model_directory_share_one_encoder(tiny_model_dir: Path) -> None:
    first = SplareSparseEmbeddings(tiny_model_dir, device="cpu")
    second = SplareSparseEmbeddings(str(tiny_model_dir), device="cpu", batch_size=4)
    assert first.encoder is second.encoder


def test_embeddings_refuse_bad_settings(tiny_encoder: Any) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        SplareSparseEmbeddings(tiny_encoder, batch_size=0)
    with pytest.raises(ConfigError, match="model name"):
        SplareSparseEmbeddings(tiny_encoder, device="cpu")


# --- the optional dependency --------------------------------------------------------------


@pytest.mark.parametrize(
    ("absent", "module"),
    [
        ("langchain_core", "splare_connect.integrations.langchain"),
        ("langchain_core", "splare_connect.integrations.langchain_qdrant"),
        ("langchain_qdrant", "splare_connect.integrations.langchain_qdrant"),
    ],
)
def test_missing_langchain_names_the_extra(monkeypatch: pytest.MonkeyPatch, absent: str, module: str) -> None:
    import importlib

    monkeypatch.setitem(sys.modules, absent, None)  # what `import` sees when a package is not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingDependencyError, match=r'pip install "splare-connect\[langchain\]"') as raised:
        importlib.import_module(module)
    assert isinstance(raised.value, ImportError) and absent in str(raised.value)


def test_the_retriever_never_loads_a_database_client() -> None:
    """Not even indirectly: SplareSparseEmbeddings (langchain-qdrant) loads only when asked for."""
    code = (
        "import sys; from splare_connect.integrations.langchain import SplareRetriever; "
        "print(sorted(m for m in sys.modules if m.startswith(('langchain_qdrant', 'qdrant_client'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "from splare_connect.integrations.langchain import SplareSparseEmbeddings; print(SplareSparseEmbeddings)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "splare_connect.integrations.langchain_qdrant.SplareSparseEmbeddings" in out


def test_importing_the_package_does_not_import_langchain() -> None:
    code = (
        "import sys, splare_connect, splare_connect.integrations; "
        "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'qdrant_client'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
