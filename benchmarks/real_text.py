"""SPLARE vectors against Qdrant's own BM25, on real text, in the same engine (embedded Edge).

The man-page corpus goes into two raw Edge shards, growing in steps (the first N documents
for each size): one with the default model's document vectors (pre-encoded, read from
the evaluation cache), one with ``qdrant_edge.Bm25`` vectors (English stemming and
stopwords; IDF applied by the engine, ``Modifier.Idf``), i.e. what a Qdrant user gets
from ``Qdrant/bm25``. Per size: ingest documents/s (BM25: embedding + writes; SPLARE:
writes of pre-encoded vectors; SPLARE's encoding rate is in the encoder benchmark),
disk size, search-only top-10 p50/p99 over pre-embedded dev queries, and quality on the
full corpus (nDCG@10 / MRR@10 with ir-measures), per dev query set.

    python benchmarks/real_text.py --sizes 1500 3000 6000 --json .bench/real_text.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import ir_measures
import qdrant_edge as edge
from report import percentile

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.models import cache_dir

BATCH = 256


def fill_shard(path: Path, vectors: list[edge.SparseVector], idf: bool) -> tuple[edge.EdgeShard, float]:
    """A raw Edge shard holding ``vectors`` (point id = corpus position); returns it and the seconds taken."""
    params = edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf) if idf else edge.EdgeSparseVectorParams()
    start = time.perf_counter()
    shard = edge.EdgeShard.create(str(path), edge.EdgeConfig(sparse_vectors={"v": params}))
    for first in range(0, len(vectors), BATCH):
        points = [edge.Point(first + i, {"v": v}, {}) for i, v in enumerate(vectors[first : first + BATCH])]
        shard.update(edge.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    return shard, time.perf_counter() - start


def search(shard: edge.EdgeShard, query: edge.SparseVector) -> list[tuple[int, float]]:
    request = edge.QueryRequest(limit=10, query=edge.Query.Nearest(query, using="v"), with_payload=False)
    return [(int(point.id), point.score) for point in shard.query(request)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 3000, 6000])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_beir(args.dataset)
    encoder = SplareEncoder.from_pretrained(device="cpu")
    corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache_dir() / "eval")
    bm25 = edge.Bm25(edge.Bm25Config(language="english"))
    start = time.perf_counter()
    bm25_docs = [bm25.embed_document(text) for text in dataset.doc_texts]
    bm25_embed_seconds = time.perf_counter() - start
    splare_docs = [edge.SparseVector(v.indices.tolist(), v.values.tolist()) for v in corpus.sparse]

    query_ids, query_texts, qrels = [], [], []
    for query_set in dataset.query_sets:
        for query_id, text in query_set.queries.items():
            query_ids.append((query_set.name, query_id))
            query_texts.append(text)
        qrels.extend(
            ir_measures.Qrel(f"{query_set.name}/{q}", d, rel)
            for q, docs in query_set.qrels.items()
            for d, rel in docs.items()
        )
    splare_queries = [
        edge.SparseVector(v.indices.tolist(), v.values.tolist()) for v in encoder.encode_queries(query_texts)
    ]
    bm25_queries = [bm25.embed_query(text) for text in query_texts]

    rows = []
    with tempfile.TemporaryDirectory(prefix="real-text-") as workdir:
        for size in sorted(set(min(s, len(dataset.doc_ids)) for s in args.sizes)):
            row: dict[str, float] = {"documents": size}
            shards = {}
            for name, docs, idf in (("splare", splare_docs, False), ("bm25", bm25_docs, True)):
                shard, seconds = fill_shard(Path(workdir) / f"{name}-{size}", docs[:size], idf)
                if name == "bm25":
                    seconds += bm25_embed_seconds * size / len(bm25_docs)
                shards[name] = shard
                row[f"{name}_ingest_docs_per_s"] = size / seconds
                row[f"{name}_disk_mb"] = (
                    sum(f.stat().st_size for f in (Path(workdir) / f"{name}-{size}").rglob("*") if f.is_file()) / 1e6
                )
            times: dict[str, list[float]] = {"splare": [], "bm25": []}
            runs: dict[str, list[ir_measures.ScoredDoc]] = {"splare": [], "bm25": []}
            for position, (splare_query, bm25_query) in enumerate(zip(splare_queries, bm25_queries, strict=True)):
                order = ("splare", "bm25") if position % 2 == 0 else ("bm25", "splare")
                for name in order:
                    query = splare_query if name == "splare" else bm25_query
                    start = time.perf_counter()
                    hits = search(shards[name], query)
                    times[name].append((time.perf_counter() - start) * 1000)
                    set_name, query_id = query_ids[position]
                    runs[name].extend(
                        ir_measures.ScoredDoc(f"{set_name}/{query_id}", dataset.doc_ids[doc], score)
                        for doc, score in hits
                    )
            for name in ("splare", "bm25"):
                row[f"{name}_search_ms_p50"] = statistics.median(times[name])
                row[f"{name}_search_ms_p99"] = percentile(times[name], 0.99)
                shards[name].close()
            if size == len(dataset.doc_ids):
                for name in ("splare", "bm25"):
                    for query_set in dataset.query_sets:
                        wanted = [q for q in qrels if q.query_id.startswith(query_set.name + "/")]
                        scored = [s for s in runs[name] if s.query_id.startswith(query_set.name + "/")]
                        scores = ir_measures.calc_aggregate(
                            [ir_measures.nDCG @ 10, ir_measures.RR @ 10], wanted, scored
                        )
                        row[f"{name}_{query_set.name}_ndcg10"] = scores[ir_measures.nDCG @ 10]
                        row[f"{name}_{query_set.name}_mrr10"] = scores[ir_measures.RR @ 10]
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        report = {"machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "results": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
