"""Qdrant adapter speed on embedded Edge, against raw Edge calls on the same vectors.

Vectors are pre-encoded and synthetic but SPLARE-shaped: feature ids drawn from a
Zipf-like distribution over the default model's 16,384 latents, ~300 non-zeros per
document and ~40 per query, log-normal weights. For each collection size:

- ingest: the adapter (``QdrantBackend.upsert`` on Edge of PointRecords, then ``finalize``)
  against raw Edge (``edge.Point`` lists, ``update``, ``optimize``, ``flush``), same
  batches of 256, same payloads;
- search: top-10 per query, adapter ``search`` against raw ``shard.query``; p50/p99 of
  each and the ratio of means. Queries alternate between the two so noise hits both.

Then ingest through qdrant-client (in-memory local mode, the code path a Qdrant server
gets), adapter against raw ``client.upsert``, ``--client-size`` documents.

    python benchmarks/qdrant_speed.py --sizes 10000 100000 --json .bench/qdrant_speed.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from report import percentile

from splare_connect import SparseVector
from splare_connect.backends import CollectionSpec, PointRecord

LATENTS = 16384
BATCH = 256


def synthetic_vectors(count: int, nnz: int, rng: np.random.Generator) -> list[SparseVector]:
    """Zipf-like feature use: feature rank r is drawn with probability ~ 1 / (r + 10)."""
    weights = 1.0 / (np.arange(LATENTS) + 10.0)
    cdf = np.cumsum(weights / weights.sum())
    permutation = rng.permutation(LATENTS)  # popular features are spread over the id range
    draws = permutation[np.minimum(np.searchsorted(cdf, rng.random((count, int(nnz * 1.6)))), LATENTS - 1)]
    vectors = []
    for row in draws:
        ids = np.unique(row)[:nnz]
        vectors.append(SparseVector(ids, rng.lognormal(-0.5, 0.6, ids.size).astype(np.float32), LATENTS))
    return vectors


def bench_size(size: int, queries: list[SparseVector], rng: np.random.Generator, workdir: Path) -> dict:
    import qdrant_edge as edge

    from splare_connect_qdrant import EdgeDriver, QdrantBackend

    documents = synthetic_vectors(size, 300, rng)
    records = [PointRecord(f"doc-{i}#0", v, None, {"doc_id": f"doc-{i}"}) for i, v in enumerate(documents)]

    # --- raw Edge
    raw_dir = workdir / f"raw-{size}"
    config = edge.EdgeConfig(sparse_vectors={"splare": edge.EdgeSparseVectorParams()})
    start = time.perf_counter()
    shard = edge.EdgeShard.create(str(raw_dir), config)
    for first in range(0, size, BATCH):
        points = [
            edge.Point(i, {"splare": edge.SparseVector(v.indices.tolist(), v.values.tolist())}, {"doc_id": f"doc-{i}"})
            for i, v in enumerate(documents[first : first + BATCH], start=first)
        ]
        shard.update(edge.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    raw_ingest = time.perf_counter() - start

    # --- adapter
    backend = QdrantBackend(EdgeDriver(workdir / "adapter"))
    start = time.perf_counter()
    backend.create_collection(
        CollectionSpec(f"bench{size}", sparse_dim=LATENTS, fingerprint={"name": "synthetic", "digest": "-"})
    )
    for first in range(0, size, BATCH):
        backend.upsert(f"bench{size}", records[first : first + BATCH])
    backend.finalize(f"bench{size}")
    adapter_ingest = time.perf_counter() - start

    raw_ms, adapter_ms = [], []
    for position, query in enumerate(queries):
        order = ("raw", "adapter") if position % 2 == 0 else ("adapter", "raw")
        for which in order:
            start = time.perf_counter()
            if which == "raw":
                # Like any caller: build the request from the vector, read each hit's score and payload.
                request = edge.QueryRequest(
                    limit=10,
                    query=edge.Query.Nearest(
                        edge.SparseVector(query.indices.tolist(), query.values.tolist()), using="splare"
                    ),
                    with_payload=True,
                )
                [(p.payload["doc_id"], p.score) for p in shard.query(request)]
                raw_ms.append((time.perf_counter() - start) * 1000)
            else:
                backend.search(f"bench{size}", query, k=10)
                adapter_ms.append((time.perf_counter() - start) * 1000)
    disk = sum(f.stat().st_size for f in (workdir / "adapter").rglob("*") if f.is_file())
    shard.close()
    backend.close()
    shutil.rmtree(raw_dir)
    shutil.rmtree(workdir / "adapter")
    return {
        "documents": size,
        "raw_ingest_docs_per_s": size / raw_ingest,
        "adapter_ingest_docs_per_s": size / adapter_ingest,
        "ingest_overhead_ratio": adapter_ingest / raw_ingest,
        "raw_search_ms_p50": statistics.median(raw_ms),
        "raw_search_ms_p99": percentile(raw_ms, 0.99),
        "adapter_search_ms_p50": statistics.median(adapter_ms),
        "adapter_search_ms_p99": percentile(adapter_ms, 0.99),
        "search_overhead_ratio": statistics.mean(adapter_ms) / statistics.mean(raw_ms),
        "adapter_disk_mb": disk / 1e6,
    }


def bench_client_ingest(size: int, rng: np.random.Generator) -> dict:
    """Ingest through qdrant-client (in-memory local mode, the server code path's engine):
    the adapter's ``QdrantBackend.upsert`` on qdrant-client against raw ``client.upsert`` of PointStructs."""
    from qdrant_client import QdrantClient, models

    from splare_connect_qdrant import create_backend

    documents = synthetic_vectors(size, 300, rng)
    records = [PointRecord(f"doc-{i}#0", v, None, {"doc_id": f"doc-{i}"}) for i, v in enumerate(documents)]

    client = QdrantClient(":memory:")
    start = time.perf_counter()
    client.create_collection("raw", vectors_config={}, sparse_vectors_config={"splare": models.SparseVectorParams()})
    for first in range(0, size, BATCH):
        points = [
            models.PointStruct(
                id=i,
                vector={"splare": models.SparseVector(indices=v.indices.tolist(), values=v.values.tolist())},
                payload={"doc_id": f"doc-{i}"},
            )
            for i, v in enumerate(documents[first : first + BATCH], start=first)
        ]
        client.upsert("raw", points)
    raw_seconds = time.perf_counter() - start
    client.close()

    backend = create_backend(location=":memory:")
    start = time.perf_counter()
    backend.create_collection(CollectionSpec("adapter", sparse_dim=LATENTS, fingerprint={"name": "synthetic"}))
    for first in range(0, size, BATCH):
        backend.upsert("adapter", records[first : first + BATCH])
    backend.finalize("adapter")
    adapter_seconds = time.perf_counter() - start
    backend.close()
    return {
        "documents": size,
        "client_raw_ingest_docs_per_s": size / raw_seconds,
        "client_adapter_ingest_docs_per_s": size / adapter_seconds,
        "client_ingest_overhead_ratio": adapter_seconds / raw_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--client-size", type=int, default=10_000, help="documents for the qdrant-client run (0: skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    queries = synthetic_vectors(args.queries, 40, rng)
    results = []
    with tempfile.TemporaryDirectory(prefix="qdrant-bench-") as workdir:
        for size in args.sizes:
            results.append(bench_size(size, queries, rng, Path(workdir)))
            row = results[-1]
            print(
                f"{size:>8} docs | ingest raw {row['raw_ingest_docs_per_s']:8.0f}/s adapter "
                f"{row['adapter_ingest_docs_per_s']:8.0f}/s ratio {row['ingest_overhead_ratio']:.2f} | search p50/p99 "
                f"raw {row['raw_search_ms_p50']:.2f}/{row['raw_search_ms_p99']:.2f} ms adapter "
                f"{row['adapter_search_ms_p50']:.2f}/{row['adapter_search_ms_p99']:.2f} ms "
                f"ratio {row['search_overhead_ratio']:.2f} | {row['adapter_disk_mb']:.0f} MB",
                flush=True,
            )
    client = bench_client_ingest(args.client_size, rng) if args.client_size else None
    if client:
        print(
            f"{client['documents']:>8} docs | qdrant-client local mode ingest "
            f"raw {client['client_raw_ingest_docs_per_s']:8.0f}/s "
            f"adapter {client['client_adapter_ingest_docs_per_s']:8.0f}/s "
            f"ratio {client['client_ingest_overhead_ratio']:.2f}",
            flush=True,
        )
    if args.json:
        report = {"machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "results": results}
        report["client"] = client
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
