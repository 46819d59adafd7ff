"""End-to-end query latency on embedded Qdrant Edge: encode the query, search top-10, return hits.

For each precision, the whole man-page corpus is put into its own Edge collection, encoded
at that precision (document vectors from the evaluation's encoded-corpus cache, so a
repeated run does not re-encode; the first run encodes once), with the document text in
the payload as ``splare-connect ingest`` stores it. Then every dev query (all languages)
goes through ``Retriever.search(query, k=10)`` once per precision, against the collection
of its precision, the precisions alternating query by query.

Peak memory: the process's peak RSS is read after loading, after serving, and (with
``--encode-docs N``) after encoding N documents; run one precision per process for a
clean per-precision figure (``--precision int8``).

    python benchmarks/query_latency.py --precision fp32 int8 --json .bench/query_latency.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from report import percentile, print_and_save

from splare_connect import SplareEncoder
from splare_connect.backends import Backend, CollectionSpec, PointRecord
from splare_connect.evaluation import BeirDataset, load_beir
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.models import cache_dir
from splare_connect.retriever import Retriever


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_collection(encoder: SplareEncoder, backend: Backend, name: str, dataset: BeirDataset) -> None:
    """Put the whole corpus, encoded by ``encoder`` (or read from the evaluation cache), into ``name``."""
    corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache_dir() / "eval")
    backend.create_collection(CollectionSpec(name, sparse_dim=encoder.dim, fingerprint=encoder.fingerprint))
    records = [
        PointRecord(f"{doc_id}#0", vector, None, {"doc_id": doc_id, "text": text})
        for doc_id, text, vector in zip(dataset.doc_ids, dataset.doc_texts, corpus.sparse, strict=True)
    ]
    for start in range(0, len(records), 256):
        backend.upsert(name, records[start : start + 256])
    backend.finalize(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    parser.add_argument("--model", default=None, help="model name or directory (default model if omitted)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    parser.add_argument("--queries", type=int, default=0, help="use the first N queries (default: all)")
    parser.add_argument("--encode-docs", type=int, default=0, help="also encode N documents, for peak RSS")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
    }
    encoders = {
        name: SplareEncoder.from_pretrained(args.model, device="cpu", precision=name) for name in args.precision
    }
    result["peak_rss_mb_after_loading"] = peak_rss_mb()
    from splare_connect_qdrant import EdgeDriver, QdrantBackend

    dataset = load_beir(args.dataset)
    queries = [text for query_set in dataset.query_sets for text in query_set.queries.values()]
    queries = queries[: args.queries] if args.queries else queries
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as workdir:
        backend = QdrantBackend(EdgeDriver(Path(workdir)))
        for name, encoder in encoders.items():  # a collection is searched at the precision it was ingested with
            build_collection(encoder, backend, f"manpages-{name}", dataset)
        result["documents"] = backend.count(f"manpages-{args.precision[0]}")
        result["queries"] = len(queries)
        retrievers = {name: Retriever(encoder, backend, f"manpages-{name}") for name, encoder in encoders.items()}
        for retriever in retrievers.values():  # warm-up
            retriever.search(queries[0], k=10)
        latencies: dict[str, list[float]] = {name: [] for name in retrievers}
        for index, query in enumerate(queries):
            for name in list(retrievers)[:: 1 if index % 2 == 0 else -1]:
                start = time.perf_counter()
                retrievers[name].search(query, k=10)
                latencies[name].append((time.perf_counter() - start) * 1000)
        result["peak_rss_mb_after_serving"] = peak_rss_mb()
        backend.close()
    for name, values in latencies.items():
        result[f"{name}_query_ms_p50"] = statistics.median(values)
        result[f"{name}_query_ms_p99"] = percentile(values, 0.99)
        result[f"{name}_query_ms_mean"] = statistics.mean(values)
    if args.encode_docs:
        for encoder in encoders.values():
            encoder.encode_documents(dataset.doc_texts[: args.encode_docs], batch_size=32)
        result["peak_rss_mb_after_encoding"] = peak_rss_mb()
    print_and_save(result, args.json, digits=2)


if __name__ == "__main__":
    main()
