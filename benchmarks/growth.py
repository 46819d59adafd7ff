"""How search latency, ingest rate and index size grow with the collection, on embedded Edge.

Synthetic SPLARE-shaped vectors (``qdrant_speed.synthetic_vectors``: ~300 non-zeros per
document, ~40 per query, Zipf-like feature use over 16,384 latents), generated batch by
batch so that a million documents fit in memory. For each size:

- Edge through the adapter: ingest documents/s (``upsert`` in batches of 256, then
  ``finalize``), disk size, top-10 search p50/p99;
- the baseline, an exact dot product over a scipy CSC matrix of the same vectors (only
  the query's columns are read, then ``argpartition``): build time, in-memory size,
  top-10 p50/p99; and Edge's recall@10 against it (ties at the 10th score count as hits).

    python benchmarks/growth.py --sizes 10000 100000 1000000 --json .bench/growth.json

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

import numpy as np
from qdrant_speed import BATCH, LATENTS, synthetic_vectors
from report import percentile
from scipy import sparse

from splare_connect import SparseVector
from splare_connect.backends import CollectionSpec, PointRecord


def exact_top10(matrix: sparse.csc_matrix, query: SparseVector) -> tuple[np.ndarray, np.ndarray]:
    """Top-10 document rows and scores by exact dot product, reading only the query's columns."""
    scores = matrix[:, query.indices.astype(np.int64)] @ query.values.astype(np.float64)
    top = np.argpartition(-scores, 10)[:10]
    top = top[np.argsort(-scores[top])]
    return top, scores[top]


def bench_size(size: int, queries: list[SparseVector], workdir: Path, seed: int) -> dict[str, float]:
    from splare_connect_qdrant import EdgeDriver, QdrantBackend

    rng = np.random.default_rng(seed)
    backend = QdrantBackend(EdgeDriver(workdir / f"edge-{size}"))
    name = f"growth{size}"
    backend.create_collection(
        CollectionSpec(name, sparse_dim=LATENTS, fingerprint={"name": "synthetic", "digest": "-"})
    )
    rows, cols, vals = [], [], []
    ingest_seconds = 0.0
    for first in range(0, size, BATCH):
        vectors = synthetic_vectors(min(BATCH, size - first), 300, rng)
        records = [
            PointRecord(f"doc-{first + i}#0", v, None, {"doc_id": f"doc-{first + i}"}) for i, v in enumerate(vectors)
        ]
        start = time.perf_counter()
        backend.upsert(name, records)
        ingest_seconds += time.perf_counter() - start
        for i, v in enumerate(vectors):
            rows.append(np.full(v.nnz, first + i, np.int32))
            cols.append(v.indices)
            vals.append(v.values)
    start = time.perf_counter()
    backend.finalize(name)
    ingest_seconds += time.perf_counter() - start

    start = time.perf_counter()
    matrix = sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols).astype(np.int32))),
        shape=(size, LATENTS),
        dtype=np.float32,
    )
    build_seconds = time.perf_counter() - start
    del rows, cols, vals

    edge_ms, exact_ms, recalls = [], [], []
    for position, query in enumerate(queries):
        for which in ("edge", "exact") if position % 2 == 0 else ("exact", "edge"):
            start = time.perf_counter()
            if which == "edge":
                hits = backend.search(name, query, k=10)
                edge_ms.append((time.perf_counter() - start) * 1000)
            else:
                _, scores = exact_top10(matrix, query)
                exact_ms.append((time.perf_counter() - start) * 1000)
        # A hit counts when its score reaches the exact 10th score (ties are equally right).
        tenth = scores[-1]
        recalls.append(sum(1 for hit in hits if hit.score >= tenth - 1e-4 * abs(tenth)) / 10)
    disk = sum(f.stat().st_size for f in (workdir / f"edge-{size}").rglob("*") if f.is_file())
    backend.close()
    return {
        "documents": size,
        "edge_ingest_docs_per_s": size / ingest_seconds,
        "edge_disk_mb": disk / 1e6,
        "edge_search_ms_p50": statistics.median(edge_ms),
        "edge_search_ms_p99": percentile(edge_ms, 0.99),
        "edge_recall_at_10_vs_exact": float(np.mean(recalls)),
        "csc_build_s": build_seconds,
        "csc_memory_mb": (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 1e6,
        "csc_search_ms_p50": statistics.median(exact_ms),
        "csc_search_ms_p99": percentile(exact_ms, 0.99),
        "search_ratio_edge_over_csc_means": statistics.mean(edge_ms) / statistics.mean(exact_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=None, help="where the Edge shards go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    queries = synthetic_vectors(args.queries, 40, np.random.default_rng(0))
    results = []
    with tempfile.TemporaryDirectory(prefix="growth-bench-", dir=args.workdir) as workdir:
        for size in args.sizes:
            results.append(bench_size(size, queries, Path(workdir), seed=size))
            print(json.dumps(results[-1]), flush=True)
    columns = list(results[0])
    print(" | ".join(columns))
    for row in results:
        print(" | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    if args.json:
        report = {"machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "results": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
