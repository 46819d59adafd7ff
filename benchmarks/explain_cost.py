"""What labelling costs an explained search: ``explain=True`` with and without the feature dictionary.

The default model and the man-page collection that ``query_latency.py --data-dir`` left on
disk (its Edge collection, named by the fingerprint); dev queries through
``Retriever.search(query, k=10, explain=True)``, with the dictionary and without it
alternating query by query in one process. Also times the lookup alone (labelling the
explained features of ten hits).

    python benchmarks/explain_cost.py --data-dir .bench/latency-edge --queries 200 --json .bench/explain_cost.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from report import percentile, print_and_save

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.features import labelled
from splare_connect.retriever import Retriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runtime", default="openvino")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from splare_connect_qdrant import EdgeDriver, QdrantBackend

    labelled_encoder = SplareEncoder.from_pretrained(device="cpu", runtime=args.runtime)
    plain_encoder = SplareEncoder.from_pretrained(device="cpu", runtime=args.runtime)
    dictionary = labelled_encoder.feature_dictionary
    if dictionary is None:
        raise SystemExit("the default model has no feature dictionary")
    plain_encoder.__dict__["feature_dictionary"] = None  # the cached property, set to "no dictionary"
    dataset = load_beir(args.dataset)
    queries = [text for query_set in dataset.query_sets for text in query_set.queries.values()][: args.queries]
    backend = QdrantBackend(EdgeDriver(args.data_dir))
    collection = f"manpages-{labelled_encoder.fingerprint['digest']}"
    retrievers = {
        "with labels": Retriever(labelled_encoder, backend, collection),
        "without": Retriever(plain_encoder, backend, collection),
    }
    for retriever in retrievers.values():
        retriever.search(queries[0], k=10, explain=True)
    latencies: dict[str, list[float]] = {name: [] for name in retrievers}
    lookups: list[float] = []
    for index, query in enumerate(queries):
        for name in list(retrievers)[:: 1 if index % 2 == 0 else -1]:
            start = time.perf_counter()
            hits = retrievers[name].search(query, k=10, explain=True)
            latencies[name].append((time.perf_counter() - start) * 1000)
        pairs = [[(f.feature, f.weight) for f in hit.features or []] for hit in hits]
        start = time.perf_counter()
        for hit_pairs in pairs:
            labelled(hit_pairs, dictionary)
        lookups.append((time.perf_counter() - start) * 1000)
    backend.close()
    result: dict[str, object] = {"queries": len(queries), "runtime": args.runtime}
    for name, values in latencies.items():
        result[f"{name} p50 ms"] = statistics.median(values)
        result[f"{name} p99 ms"] = percentile(values, 0.99)
    result["labelling 10 hits alone, p50 ms"] = statistics.median(lookups)
    result["labelling 10 hits alone, p99 ms"] = percentile(lookups, 0.99)
    print_and_save(result, args.json, digits=3)


if __name__ == "__main__":
    main()
