"""A RAG-style retrieval step: index the example man pages, then fetch context for questions.

Runs on a laptop with no server: the default model and embedded Qdrant (Edge).

    python examples/rag_search.py                   # all 307 pages (~1.5 min to encode on 2 cores)
    python examples/rag_search.py --limit 60        # a quicker subset

Point it at a Qdrant server with QDRANT_URL=http://... (and QDRANT_API_KEY if needed).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from splare_connect import Retriever, SplareEncoder, Syncer, load_backend, read_iterable

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "How do I copy a directory and everything in it?",
    "Wie packe ich ein tar-Archiv aus?",  # German: how do I unpack a tar archive?
    "change the permissions of a file",
]


def build_context(retriever: Retriever, question: str, k: int = 3) -> str:
    """The prompt context an LLM would get: the best chunk of the top documents."""
    hits = retriever.search(question, k=k, group_by_document=True, hybrid="rrf")
    return "\n\n".join(f"[{hit.doc_id}] {(hit.text or '')[:300]}" for hit in hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="index only the first N pages")
    parser.add_argument("--data-dir", default="./splare-data", help="where embedded Qdrant stores the collection")
    args = parser.parse_args()

    with (HERE / "manpages.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][: args.limit]
    encoder = SplareEncoder.from_pretrained()
    # With QDRANT_URL set the factory reaches that server; otherwise the embedded engine under --data-dir.
    backend = load_backend("qdrant") if os.environ.get("QDRANT_URL") else load_backend("qdrant", data_dir=args.data_dir)
    report = Syncer(encoder, backend, "manpages", indexed_fields=("section",)).run(read_iterable(records))
    print(f"indexed: {report.new} new, {report.unchanged} unchanged, {report.chunks_written} chunks written")

    retriever = Retriever(encoder, backend, "manpages")
    for question in QUESTIONS:
        print(f"\n### {question}\n{build_context(retriever, question)}")
    backend.close()


if __name__ == "__main__":
    main()
