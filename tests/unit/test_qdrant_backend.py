"""Congruence suite: the same scenarios on Qdrant Edge and on qdrant-client's local mode.

Scores are checked against a float64 brute-force dot product over the same vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splare_connect import BackendError, EncoderMismatchError, SparseVector
from splare_connect.backends import CollectionSpec, PointRecord
from splare_connect.filters import Condition, parse_filters
from tests.conftest import random_unit

pytest.importorskip("splare_connect_qdrant")

DIM = 2048
FINGERPRINT = {"name": "test-encoder", "digest": "d1"}


def make_points(count: int, seed: int = 0, dense_dim: int = 8) -> list[PointRecord]:
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


def brute_force(points: list[PointRecord], query: SparseVector, keep=lambda p: True) -> list[tuple[str, float]]:
    scored = [(p.id, p.sparse.dot(query)) for p in points if keep(p)]
    scored = [s for s in scored if s[1] > 0]
    return sorted(scored, key=lambda s: -s[1])


@pytest.fixture
def loaded(qdrant_backend):  # type: ignore[no-untyped-def]
    spec = CollectionSpec("docs", sparse_dim=DIM, fingerprint=FINGERPRINT, dense_dim=8, indexed_fields=("lang",))
    qdrant_backend.create_collection(spec)
    points = make_points(300)
    qdrant_backend.upsert("docs", points)
    qdrant_backend.finalize("docs")
    return qdrant_backend, points


def test_sparse_search_is_exact(loaded) -> None:  # type: ignore[no-untyped-def]
    backend, points = loaded
    rng = np.random.default_rng(42)
    for _ in range(5):
        indices = rng.choice(DIM, size=40, replace=False)
        query = SparseVector.clean(indices, rng.uniform(0.1, 2.0, size=40), DIM)
        expected = brute_force(points, query)[:10]
        hits = backend.search("docs", query, k=10)
        assert [round(h.score, 3) for h in hits] == [round(s, 3) for _, s in expected]
        assert {h.id for h in hits if h.score > expected[-1][1] + 1e-4} <= {i for i, _ in expected}
        assert hits[0].payload["doc_id"] == hits[0].id.split("#")[0]


def test_filters(loaded) -> None:  # type: ignore[no-untyped-def]
    backend, points = loaded
    query = points[5].sparse
    cases = {
        "lang=de": lambda m: m["lang"] == "de",
        "lang!=de": lambda m: m["lang"] != "de",
        "lang in en,fr": lambda m: m["lang"] in ("en", "fr"),
        "year>=2015": lambda m: m["year"] >= 2015,
        "year<2003": lambda m: m["year"] < 2003,
        "section=3": lambda m: m["section"] == "3",  # stored as a string, typed as a number
    }
    for expression, keep in cases.items():
        expected = brute_force(points, query, lambda p, keep=keep: keep(p.payload["metadata"]))[:10]
        hits = backend.search("docs", query, k=10, filter=parse_filters([expression]))
        assert [round(h.score, 4) for h in hits] == [round(s, 4) for _, s in expected], expression
        assert all(keep(h.payload["metadata"]) for h in hits), expression
    both = [Condition("lang", "eq", "en"), Condition("year", "gt", 2010)]
    hits = backend.search("docs", query, k=50, filter=both)
    assert hits and all(h.payload["metadata"]["lang"] == "en" and h.payload["metadata"]["year"] > 2010 for h in hits)


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_fuses_both_sides(loaded, fusion: str) -> None:  # type: ignore[no-untyped-def]
    backend, points = loaded
    target = points[17]
    # Sparse query matches doc 17 weakly; dense query is doc 17's own vector.
    weak = SparseVector.from_pairs({int(target.sparse.indices[0]): 0.01}, DIM)
    hits = backend.hybrid_search("docs", weak, target.dense, k=5, fusion=fusion)
    assert hits[0].id == target.id
    sparse_only = backend.search("docs", points[3].sparse, k=1)[0].id
    dense_far = -points[3].dense
    fused = backend.hybrid_search("docs", points[3].sparse, dense_far, k=10, fusion=fusion, weights=(1.0, 0.0))
    assert fused[0].id == sparse_only  # dense weight 0: the sparse ranking decides
    filtered = backend.hybrid_search(
        "docs", points[3].sparse, points[3].dense, k=10, fusion=fusion, filter=[Condition("lang", "eq", "fr")]
    )
    assert filtered and all(h.payload["metadata"]["lang"] == "fr" for h in filtered)


def test_rrf_k_is_sent(loaded) -> None:  # type: ignore[no-untyped-def]
    backend, points = loaded
    sparse, dense = points[8].sparse, points[9].dense
    small_k = backend.hybrid_search("docs", sparse, dense, k=3, rrf_k=2)
    large_k = backend.hybrid_search("docs", sparse, dense, k=3, rrf_k=60)
    # Qdrant's RRF adds 1 / (k + rank) per side, ranks counted from 0: the top point
    # scores between 1/k (first on one side) and 2/k (first on both).
    assert 1 / 2 - 1e-6 <= small_k[0].score <= 2 / 2 + 1e-6
    assert 1 / 60 - 1e-6 <= large_k[0].score <= 2 / 60 + 1e-6


def test_upsert_is_idempotent_and_delete_works(loaded) -> None:  # type: ignore[no-untyped-def]
    backend, points = loaded
    backend.upsert("docs", points[:50])  # same ids again: replaced, not added
    assert backend.count("docs") == 300
    backend.delete("docs", [p.id for p in points[:10]] + ["never-stored#0"])
    assert backend.count("docs") == 290
    stored = dict(backend.iter_payloads("docs", ["doc_id", "content_hash"]))
    assert len(stored) == 290 and stored["doc-10#0"] == {"doc_id": "doc-10", "content_hash": "h10"}
    vectors = backend.fetch_sparse("docs", ["doc-11#0", "doc-3#0"])
    assert list(vectors) == ["doc-11#0"] and vectors["doc-11#0"] == points[11].sparse


def test_spec_is_stored_and_checked(loaded) -> None:  # type: ignore[no-untyped-def]
    backend, _ = loaded
    spec = backend.describe_collection("docs")
    assert spec is not None and spec.fingerprint == FINGERPRINT and spec.dense_dim == 8
    assert "docs" in backend.list_collections()
    other = CollectionSpec("docs", sparse_dim=DIM, fingerprint={"name": "other", "digest": "d2"}, dense_dim=8)
    with pytest.raises(EncoderMismatchError, match="digest d1"):
        backend.create_collection(other)
    wider = CollectionSpec("docs", sparse_dim=DIM * 2, fingerprint=FINGERPRINT, dense_dim=8)
    with pytest.raises(BackendError, match="sparse_dim"):
        backend.create_collection(wider)
    too_wide = PointRecord("x#0", SparseVector.from_pairs({DIM + 5: 1.0}), np.ones(8, np.float32), {})
    with pytest.raises(BackendError, match="outside collection 'docs'"):
        backend.upsert("docs", [too_wide])
    backend.drop_collection("docs")
    assert backend.describe_collection("docs") is None and "docs" not in backend.list_collections()


def test_duplicate_unsorted_and_nan_entries_never_reach_the_engine(qdrant_backend) -> None:  # type: ignore[no-untyped-def]
    qdrant_backend.create_collection(CollectionSpec("raw", sparse_dim=DIM, fingerprint=FINGERPRINT))
    with pytest.raises(ValueError, match="finite"):
        SparseVector.clean([3, 1], [0.5, float("nan")], DIM)
    with pytest.raises(ValueError, match="strictly increasing"):
        SparseVector(np.array([5, 1, 5]), np.array([1.0, 1.0, 1.0]), DIM)
    cleaned = SparseVector.clean([5, 1, 5, 9], [1.0, 2.0, 3.0, 0.0], DIM)  # duplicate 5 merged by max, zero dropped
    qdrant_backend.upsert("raw", [PointRecord("p#0", cleaned, None, {"doc_id": "p"})])
    [hit] = qdrant_backend.search("raw", SparseVector.from_pairs({1: 1.0, 5: 1.0}, DIM), k=5)
    assert hit.score == pytest.approx(2.0 + 3.0)


def test_edge_panics_become_backend_errors(tmp_path: Path) -> None:
    import qdrant_edge as edge

    from splare_connect_qdrant.common import call_engine

    shard = edge.EdgeShard.create(
        str(tmp_path / "shard"), edge.EdgeConfig(sparse_vectors={"s": edge.EdgeSparseVectorParams()})
    )
    bad = edge.Point(1, {"s": edge.SparseVector([1, 2, 3], [0.5])}, {})  # lengths differ: Edge panics
    with pytest.raises(BackendError, match="upsert failed"):
        call_engine("upsert", lambda: shard.update(edge.UpdateOperation.upsert_points([bad])))
    shard.close()


def test_edge_collections_persist_across_processes_and_reopen(tmp_path: Path) -> None:
    from splare_connect_qdrant import create_backend

    first = create_backend(data_dir=tmp_path)
    first.create_collection(CollectionSpec("persist", sparse_dim=DIM, fingerprint=FINGERPRINT, dense_dim=8))
    points = make_points(40, seed=3)
    first.upsert("persist", points)
    first.finalize("persist")
    first.close()
    second = create_backend(data_dir=tmp_path)
    assert second.list_collections() == ["persist"] and second.count("persist") == 40
    assert second.search("persist", points[7].sparse, k=1)[0].id == points[7].id
    second.close()


def test_backend_selection_and_bad_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from splare_connect import ConfigError
    from splare_connect_qdrant import ClientDriver, EdgeDriver, QdrantBackend, create_backend

    monkeypatch.delenv("QDRANT_URL", raising=False)
    embedded, local = create_backend(data_dir=tmp_path), create_backend(location=":memory:")
    assert isinstance(embedded, QdrantBackend) and isinstance(embedded.driver, EdgeDriver)
    assert isinstance(local, QdrantBackend) and isinstance(local.driver, ClientDriver)
    with pytest.raises(ConfigError, match="only one of"):
        create_backend(url="http://localhost:6333", path=tmp_path)
    with pytest.raises(BackendError, match="collection name"):
        create_backend(data_dir=tmp_path).describe_collection("../escape")
