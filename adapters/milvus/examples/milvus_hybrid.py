"""Index the example man pages in Milvus, then search them: sparse, filtered, and hybrid (RRF and weighted).

Runs with no server: Milvus Lite keeps the collection in one file, <data-dir>/milvus.db.

    pip install -e adapters/milvus                          # once, from the repository root
    python adapters/milvus/examples/milvus_hybrid.py --limit 60
    python adapters/milvus/examples/milvus_hybrid.py --model path/to/model   # another model directory

Point it at a Milvus server (2.6+) with MILVUS_URL=http://host:19530 (and MILVUS_TOKEN if it
needs one): the same code then writes and searches there.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from splare_connect import Retriever, SplareEncoder, Syncer, load_backend, read_iterable
from splare_connect.filters import parse_filters

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "manpages.jsonl"
QUESTIONS = ["How do I copy a directory and everything in it?", "Wie packe ich ein tar-Archiv aus?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="index only the first N pages")
    parser.add_argument("--data-dir", default="./splare-data", help="where Milvus Lite keeps its file")
    parser.add_argument("--model", default=None, help="model name or directory (default: the default model)")
    parser.add_argument("--collection", default="manpages")
    args = parser.parse_args()

    with CORPUS.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][: args.limit]
    encoder = SplareEncoder.from_pretrained(args.model)
    # With MILVUS_URL set the factory reaches that server; otherwise Milvus Lite under --data-dir.
    backend = load_backend("milvus") if os.environ.get("MILVUS_URL") else load_backend("milvus", data_dir=args.data_dir)
    try:
        report = Syncer(encoder, backend, args.collection).run(read_iterable(records))
        print(f"indexed: {report.new} new, {report.unchanged} unchanged, {report.chunks_written} chunks written")
        retriever = Retriever(encoder, backend, args.collection)
        for question in QUESTIONS:
            print(f"\n### {question}")
            for label, options in (
                ("sparse", {}),
                ("sparse, section 1", {"filter": parse_filters(["section=1"])}),
                ("hybrid rrf", {"hybrid": "rrf"}),
                ("hybrid weighted 0.3/0.7", {"hybrid": "weighted", "weights": (0.3, 0.7)}),
            ):
                hits = retriever.search(question, k=3, group_by_document=True, **options)  # type: ignore[arg-type]
                print(f"{label:>24}: " + ", ".join(f"{hit.doc_id} ({hit.score:.3f})" for hit in hits))
    finally:
        backend.close()


if __name__ == "__main__":
    main()
