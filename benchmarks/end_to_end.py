"""Encode a query and search the whole man-page corpus on Qdrant Edge: p50 and p99, and peak RSS.

The corpus is the evaluation's cached document vectors at the default settings (``splare-connect
eval data/manpages`` fills the cache; without it they are encoded now, which takes a while),
written into an Edge collection once, one point per page as the evaluation scores them. Then
each contender runs in a fresh process, loads its encoder, and times ``Retriever.search(query,
k=10)`` (query encoding plus the engine's top 10) over the en-dev queries, after a warm-up; the
process's peak RSS is what serving with it costs. Contenders take turns, so a noisy neighbour
slows all alike.

    python benchmarks/end_to_end.py --dataset data/manpages --queries 300

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import CONTENDERS, cpu_flags, percentile, print_and_save

# The serving process: CONTENDERS options are JSON, so a flag such as lazy arrives as a bool.
_SERVE = """
import json, resource, sys, time
from splare_connect import SplareEncoder
from splare_connect.retriever import Retriever
from splare_connect_qdrant import create_backend
data_dir, options, queries = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
encoder = SplareEncoder.from_pretrained(device="cpu", **options)
retriever = Retriever(encoder, create_backend(data_dir=data_dir), "manpages")
for query in queries[:10]:
    retriever.search(query, k=10)
times = []
for query in queries:
    start = time.perf_counter()
    retriever.search(query, k=10)
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"ms": times, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ran_at": f"{encoder.runtime} {encoder.precision}"}))
"""


def build_collection(dataset: Path, data_dir: Path) -> int:
    """The corpus's cached default-model vectors, written into an Edge collection; returns the point count."""
    from splare_connect import SplareEncoder
    from splare_connect.backends import CollectionSpec, PointRecord
    from splare_connect.backends.schema import StoredChunk
    from splare_connect.chunking import chunk_record_id
    from splare_connect.evaluation import load_beir
    from splare_connect.evaluation.corpus_cache import encode_corpus
    from splare_connect.models import cache_dir
    from splare_connect_qdrant import create_backend

    data = load_beir(dataset)
    encoder = SplareEncoder.from_pretrained(device="cpu", lazy=True)
    corpus = encode_corpus(encoder, data.doc_ids, data.doc_texts, cache_dir() / "eval")
    backend = create_backend(data_dir=data_dir)
    weights = [float(v.values.max()) for v in corpus.sparse if v.nnz]
    spec = CollectionSpec(
        name="manpages",
        sparse_dim=encoder.dim,
        fingerprint=encoder.fingerprint,
        dense_dim=encoder.dense_dim,
        max_weight=max(weights),
    )
    backend.create_collection(spec)
    points = []
    for position, (doc_id, text) in enumerate(zip(data.doc_ids, data.doc_texts, strict=True)):
        row = StoredChunk(chunk_record_id(doc_id, 0), doc_id, 0, 1, "-", text, {})
        dense = None if corpus.dense is None else corpus.dense[position]
        points.append(PointRecord(row.record_id, corpus.sparse[position], dense, row.to_payload()))
    for start in range(0, len(points), 256):
        backend.upsert("manpages", points[start : start + 256])
    count = backend.count("manpages")
    backend.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    parser.add_argument("--queries-file", type=Path, default=None, help="default: the dataset's en-dev queries")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--contenders", type=lambda text: text.split(","), default=["torch-fp32", "default"])
    parser.add_argument("--rounds", type=int, default=2, help="each contender runs this many times, in turns")
    parser.add_argument(
        "--static-queries", type=Path, default=None, help="a static query table: adds the 'static-queries' contender"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.static_queries is not None:
        # lazy: a sparse search with a static table never needs the model (the CLI search does the same)
        CONTENDERS["static-queries"] = {"static_queries": str(args.static_queries), "lazy": True}
        args.contenders.append("static-queries")

    queries_file = args.queries_file or args.dataset / "queries" / "en-dev.jsonl"
    with queries_file.open(encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line, _ in zip(lines, range(args.queries), strict=False)]
    result: dict[str, object] = {"cpu": cpu_flags(), "queries": len(queries)}
    with tempfile.TemporaryDirectory() as scratch:
        result["points"] = build_collection(args.dataset, Path(scratch))
        runs: dict[str, list[dict]] = {name: [] for name in args.contenders}
        for _ in range(args.rounds):
            for name in args.contenders:
                command = [sys.executable, "-c", _SERVE, scratch, json.dumps(CONTENDERS[name]), json.dumps(queries)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for name, outcomes in runs.items():
        times = [ms for outcome in outcomes for ms in outcome["ms"]]
        result[f"{name}_ran_at"] = outcomes[0]["ran_at"]
        result[f"{name}_search_ms_p50"] = statistics.median(times)
        result[f"{name}_search_ms_p99"] = percentile(times, 0.99)
        result[f"{name}_peak_rss_mb"] = max(outcome["rss_mb"] for outcome in outcomes)
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
