"""Synthetic stored chunks and a float64 brute-force oracle for the Milvus adapter's tests.

The same shape as the repository's ``tests/points.py`` (one-chunk documents with lang, year
and section metadata, section stored as a string), kept here until the conformance kit
(``splare_connect.testing``) offers its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from splare_connect import SparseVector
from splare_connect.backends import CollectionSpec, PointRecord

DIM = 2048
DENSE = 8
FINGERPRINT = {"name": "test-encoder", "digest": "d1"}


def spec(name: str = "docs", **overrides: object) -> CollectionSpec:
    settings: dict = {"sparse_dim": DIM, "fingerprint": FINGERPRINT, "dense_dim": DENSE, "indexed_fields": ("lang",)}
    settings.update(overrides)
    return CollectionSpec(name, **settings)


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    vector = rng.normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_points(count: int, seed: int = 0) -> list[PointRecord]:
    """``count`` one-chunk documents ``doc-<i>#0``: 5-59 features with float32 weights, cycling metadata.

    Every 10th document has no ``lang`` (``!=`` must keep it, as Qdrant's ``must_not`` does).
    """
    rng = np.random.default_rng(seed)
    points = []
    for i in range(count):
        indices = rng.choice(DIM, size=rng.integers(5, 60), replace=False)
        values = rng.gamma(2.0, 0.5, size=indices.size) + 0.01
        metadata: dict = {"year": 2000 + i % 20, "section": str(1 + i % 8)}
        if i % 10 != 7:
            metadata["lang"] = ["en", "de", "fr"][i % 3]
        payload = {
            "doc_id": f"doc-{i}",
            "chunk_index": 0,
            "chunk_count": 1,
            "content_hash": f"h{i}",
            "text": f"text {i}",
            "metadata": metadata,
        }
        points.append(PointRecord(f"doc-{i}#0", SparseVector.clean(indices, values, DIM), unit(rng, DENSE), payload))
    return points


def random_queries(count: int, seed: int) -> list[SparseVector]:
    rng = np.random.default_rng(seed)
    return [
        SparseVector.clean(rng.choice(DIM, size=40, replace=False), rng.uniform(0.1, 2.0, size=40), DIM)
        for _ in range(count)
    ]


def dot64(a: SparseVector, b: SparseVector) -> float:
    """The float64 dot product of the float32 weights."""
    left, right = a.to_dict(), b.to_dict()
    return float(sum(np.float64(v) * np.float64(right[i]) for i, v in left.items() if i in right))


def brute_force(
    points: list[PointRecord], query: SparseVector, keep: Callable[[PointRecord], bool] = lambda p: True
) -> list[tuple[str, float]]:
    """Every matching point with a positive score, best first."""
    scored = [(p.id, dot64(p.sparse, query)) for p in points if keep(p)]
    return sorted([s for s in scored if s[1] > 0], key=lambda s: -s[1])
