"""End-to-end query latency on embedded Qdrant Edge: encode the query, search top-10, return hits.

For each vector space (encoders with one fingerprint share one: torch and OpenVINO at
fp32), the whole man-page corpus is put into its own Edge collection (document vectors from
the evaluation's encoded-corpus cache, so a repeated run does not re-encode; the first run
encodes once), with the document text in the payload as ``splare-connect ingest`` stores
it. Then every dev query (all languages) goes through ``Retriever.search(query, k=10)``
once per encoder, against the collection of its space, the encoders alternating query by
query.

Peak memory: the process's peak RSS is read after loading, after serving, and (with
``--encode-docs N``) after encoding N documents; run one encoder per process for a
clean per-encoder figure (``--encoders openvino-fp32``), with ``--data-dir`` so that the
collections built by an earlier run are reused.

    python benchmarks/query_latency.py --encoders torch-fp32 openvino-fp32 --json .bench/query_latency.json

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
from report import CONTENDERS, percentile, print_and_save

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
    parser.add_argument("--encoders", nargs="+", default=["torch-fp32", "torch-int8"], choices=list(CONTENDERS))
    parser.add_argument("--queries", type=int, default=0, help="use the first N queries (default: all)")
    parser.add_argument("--encode-docs", type=int, default=0, help="also encode N documents, for peak RSS")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the Edge collections here and reuse them in later runs (default: a temporary directory)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
    }
    encoders = {
        name: SplareEncoder.from_pretrained(args.model, device="cpu", **CONTENDERS[name]) for name in args.encoders
    }
    result["peak_rss_mb_after_loading"] = peak_rss_mb()
    from splare_connect_qdrant import EdgeDriver, QdrantBackend

    dataset = load_beir(args.dataset)
    queries = [text for query_set in dataset.query_sets for text in query_set.queries.values()]
    queries = queries[: args.queries] if args.queries else queries
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as scratch:
        backend = QdrantBackend(EdgeDriver(args.data_dir or Path(scratch)))
        collections = {name: f"manpages-{encoder.fingerprint['digest']}" for name, encoder in encoders.items()}
        for name, encoder in encoders.items():  # a collection is searched by encoders of its vector space
            if collections[name] not in backend.list_collections():
                build_collection(encoder, backend, collections[name], dataset)
        result["documents"] = backend.count(collections[args.encoders[0]])
        result["queries"] = len(queries)
        retrievers = {name: Retriever(encoder, backend, collections[name]) for name, encoder in encoders.items()}
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
