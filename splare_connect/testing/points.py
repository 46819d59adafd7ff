"""Synthetic stored chunks for backend tests: random sparse and dense vectors with real-looking payloads,
and the check that a collection holds whole documents. numpy only."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from splare_connect import SparseVector
from splare_connect.backends import PointRecord

DIM = 2048
FINGERPRINT = {"name": "test-encoder", "digest": "d1"}


def random_unit(rng: np.random.Generator, dim: int) -> npt.NDArray[np.float32]:
    """A random direction of ``dim`` float32s, norm 1."""
    vector = rng.normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_points(count: int, seed: int = 0, dense_dim: int = 8) -> list[PointRecord]:
    """``count`` one-chunk documents ``doc-<i>#0`` with 5-59 features and metadata cycling lang, year, section."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(count):
        indices = rng.choice(DIM, size=rng.integers(5, 60), replace=False)
        values = rng.gamma(2.0, 0.5, size=indices.size) + 0.01
        payload = {
            "doc_id": f"doc-{i}",
            "chunk_index": 0,
            "chunk_count": 1,
            "content_hash": f"h{i}",
            "text": f"text {i}",
            "metadata": {"lang": ["en", "de", "fr"][i % 3], "year": 2000 + i % 20, "section": str(1 + i % 8)},
        }
        points.append(
            PointRecord(f"doc-{i}#0", SparseVector.clean(indices, values, DIM), random_unit(rng, dense_dim), payload)
        )
    return points


def random_queries(count: int, seed: int) -> list[SparseVector]:
    """``count`` queries of 40 features with weights in [0.1, 2)."""
    rng = np.random.default_rng(seed)
    return [
        SparseVector.clean(rng.choice(DIM, size=40, replace=False), rng.uniform(0.1, 2.0, size=40), DIM)
        for _ in range(count)
    ]


def assert_documents_whole(backend: Any, collection: str, doc_ids: set[str]) -> None:
    """The collection holds exactly ``doc_ids``, each with all of its chunks and no extra one
    (what a sync killed mid-run and resumed must leave)."""
    payloads = dict(backend.iter_payloads(collection, ["doc_id", "chunk_count"]))
    per_doc: dict[str, int] = {}
    for payload in payloads.values():
        per_doc[payload["doc_id"]] = per_doc.get(payload["doc_id"], 0) + 1
    assert set(per_doc) == doc_ids
    assert all(per_doc[d] == payloads[f"{d}#0"]["chunk_count"] for d in per_doc)  # no missing or extra chunk
    assert backend.count(collection) == len(payloads) == sum(per_doc.values())
