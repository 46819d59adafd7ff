"""Congruence suite: the same scenarios on every installed backend and engine.

The engines: Qdrant Edge (embedded), qdrant-client's local mode in memory and on disk
(the server code path), and OpenSearch's real client over an in-memory index
(:mod:`tests.opensearch_memory`, answering the recorded requests with the clauses'
documented semantics). Each scenario runs on each engine against one oracle, a float64
brute-force dot product over the vectors as the engine keeps them (exact for Qdrant,
9 significant bits per document weight for OpenSearch's ``rank_features``), and
:func:`test_every_engine_answers_like_the_embedded_one` compares the engines' results
with one another, as qdrant-client's ``tests/congruence_tests`` do for its two engines.

Hybrid fusion runs in OpenSearch's search pipelines, which the in-memory index does not
model; OpenSearch's hybrid requests are pinned in
``adapters/opensearch/tests/test_opensearch_requests.py``. Each adapter's own rules
(Edge's process lock, the server retry policy, OpenSearch's request bodies) are tested
beside the adapter, in ``adapters/<name>/tests/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splare_connect import BackendError, ConfigError, EncoderMismatchError, SparseVector
from splare_connect.backends import CollectionSpec, Hit, PointRecord
from splare_connect.filters import Condition, parse_filters
from tests.conftest import open_qdrant
from splare_connect.testing.points import DIM, FINGERPRINT, make_points, random_queries

ENGINES = ["edge", "local-memory", "local-path", "opensearch-memory"]
FUSING = "hybrid fusion runs in OpenSearch search pipelines, which the in-memory index does not model"


@dataclass
class Engine:
    """A backend under test and how its engine keeps document weights."""

    name: str
    backend: Any
    stored: Callable[[float], float] | None = None  # None: exactly
    fuses: bool = True
    checks_dense: bool = True  # False: the server checks dense vectors (a refused document in the reply)

    @property
    def tolerance(self) -> float:
        """Relative error of a score: 0 for exact engines, 2**-8 for 9 significant bits per weight."""
        return 0.0 if self.stored is None else 2.0**-8


def open_engine(name: str, tmp_path: Path) -> Engine:
    """A fresh, empty engine of one kind (skipped when its adapter isn't installed)."""
    if name == "opensearch-memory":
        pytest.importorskip("splare_connect_opensearch")
        from splare_connect_opensearch import create_backend
        from tests.opensearch_memory import MemoryCluster, stored_weight

        backend = create_backend(client=MemoryCluster().client(), replicas=0, backoff_seconds=0.001)
        return Engine(name, backend, stored=stored_weight, fuses=False, checks_dense=False)
    return Engine(name, open_qdrant(name, tmp_path))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    opened = open_engine(request.param, tmp_path)
    yield opened
    opened.backend.close()


def brute_force(
    points: list[PointRecord], query: SparseVector, keep=lambda p: True, engine: Engine | None = None
) -> list[tuple[str, float]]:
    """Every matching point's score, best first: the float64 dot product with the weights as the engine keeps them."""

    def score(point: PointRecord) -> float:
        if engine is None or engine.stored is None:
            return point.sparse.dot(query)
        weights = query.to_dict()
        return sum(weights[i] * engine.stored(v) for i, v in point.sparse.to_dict().items() if i in weights)

    scored = [(p.id, score(p)) for p in points if keep(p)]
    scored = [s for s in scored if s[1] > 0]
    return sorted(scored, key=lambda s: -s[1])


def load(engine: Engine, points: list[PointRecord]) -> None:
    spec = CollectionSpec("docs", sparse_dim=DIM, fingerprint=FINGERPRINT, dense_dim=8, indexed_fields=("lang",))
    engine.backend.create_collection(spec)
    engine.backend.upsert("docs", points)
    engine.backend.finalize("docs")


@pytest.fixture
def loaded(engine: Engine) -> tuple[Engine, list[PointRecord]]:
    points = make_points(300)
    load(engine, points)
    return engine, points


# ------------------------------------------------------------------ scenarios
def test_sparse_search_is_exact(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    for query in random_queries(5, seed=42):
        expected = brute_force(points, query, engine=engine)[:10]
        hits = engine.backend.search("docs", query, k=10)
        assert [round(h.score, 3) for h in hits] == [round(s, 3) for _, s in expected]
        assert {h.id for h in hits if h.score > expected[-1][1] + 1e-4} <= {i for i, _ in expected}
        assert hits[0].payload["doc_id"] == hits[0].id.split("#")[0]


def test_filters(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    backend = engine.backend
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
        expected = brute_force(points, query, lambda p, keep=keep: keep(p.payload["metadata"]), engine)[:10]
        hits = backend.search("docs", query, k=10, filter=parse_filters([expression]))
        assert [round(h.score, 4) for h in hits] == [round(s, 4) for _, s in expected], expression
        assert all(keep(h.payload["metadata"]) for h in hits), expression
    both = [Condition("lang", "eq", "en"), Condition("year", "gt", 2010)]
    hits = backend.search("docs", query, k=50, filter=both)
    assert hits and all(h.payload["metadata"]["lang"] == "en" and h.payload["metadata"]["year"] > 2010 for h in hits)


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_fuses_both_sides(loaded, fusion: str) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    if not engine.fuses:
        pytest.skip(FUSING)
    backend = engine.backend
    target = points[17]
    # Sparse query matches doc 17 weakly; dense query is doc 17's own vector.
    weak = SparseVector.from_pairs({int(target.sparse.indices[0]): 0.01}, DIM)
    hits = backend.hybrid_search("docs", weak, target.dense, k=5, fusion=fusion)
    assert hits[0].id == target.id
    sparse_only = backend.search("docs", points[3].sparse, k=1)[0].id
    dense_far = -points[3].dense
    if fusion == "rrf":
        fused = backend.hybrid_search("docs", points[3].sparse, dense_far, k=10, fusion=fusion, weights=(1.0, 0.0))
        assert fused[0].id == sparse_only  # dense weight 0: the sparse ranking decides
    else:  # Qdrant's DBSF has no weights: asking for them is refused, not ignored
        with pytest.raises(ConfigError, match=r"DBSF fusion takes no weights .* use hybrid='rrf'"):
            backend.hybrid_search("docs", points[3].sparse, dense_far, k=10, fusion=fusion, weights=(1.0, 0.0))
        equal = backend.hybrid_search("docs", points[3].sparse, dense_far, k=10, fusion=fusion, weights=(2.0, 2.0))
        unweighted = backend.hybrid_search("docs", points[3].sparse, dense_far, k=10, fusion=fusion)
        assert [h.id for h in equal] == [h.id for h in unweighted]
        assert [h.score for h in equal] == pytest.approx([h.score for h in unweighted])
    filtered = backend.hybrid_search(
        "docs", points[3].sparse, points[3].dense, k=10, fusion=fusion, filter=[Condition("lang", "eq", "fr")]
    )
    assert filtered and all(h.payload["metadata"]["lang"] == "fr" for h in filtered)


def test_rrf_k_is_sent(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    if not engine.fuses:
        pytest.skip(FUSING)
    backend = engine.backend
    sparse, dense = points[8].sparse, points[9].dense
    small_k = backend.hybrid_search("docs", sparse, dense, k=3, rrf_k=2)
    large_k = backend.hybrid_search("docs", sparse, dense, k=3, rrf_k=60)
    # Qdrant's RRF adds 1 / (k + rank) per side, ranks counted from 0: the top point
    # scores between 1/k (first on one side) and 2/k (first on both).
    assert 1 / 2 - 1e-6 <= small_k[0].score <= 2 / 2 + 1e-6
    assert 1 / 60 - 1e-6 <= large_k[0].score <= 2 / 60 + 1e-6


def test_hybrid_refuses_a_dense_query_of_the_wrong_shape(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    if not engine.fuses:
        pytest.skip(FUSING)
    for bad in (np.ones(7, np.float32), np.full(8, np.nan, np.float32)):
        with pytest.raises(BackendError, match="dense vector must be 8 finite floats"):
            engine.backend.hybrid_search("docs", points[0].sparse, bad, k=3)


def test_a_dense_vector_of_the_wrong_shape_is_refused_before_writing(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    if not engine.checks_dense:
        pytest.skip("OpenSearch checks the dimension itself and refuses the document in its bulk reply")
    sparse = points[0].sparse
    for dense in (np.ones(7, np.float32), np.full(8, np.inf, np.float32), None):
        record = PointRecord("odd#0", sparse, dense, {"doc_id": "odd"})
        with pytest.raises(BackendError, match="dense vector"):
            engine.backend.upsert("docs", [points[1], record])
    assert engine.backend.count("docs") == 300 and "odd#0" not in dict(engine.backend.iter_payloads("docs", []))


def test_upsert_is_idempotent_and_delete_works(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, points = loaded
    backend = engine.backend
    backend.upsert("docs", points[:50])  # same ids again: replaced, not added
    assert backend.count("docs") == 300
    backend.delete("docs", [p.id for p in points[:10]] + ["never-stored#0"])
    assert backend.count("docs") == 290
    stored = dict(backend.iter_payloads("docs", ["doc_id", "content_hash"]))
    assert len(stored) == 290 and stored["doc-10#0"] == {"doc_id": "doc-10", "content_hash": "h10"}
    vectors = backend.fetch_sparse("docs", ["doc-11#0", "doc-3#0"])
    assert list(vectors) == ["doc-11#0"] and vectors["doc-11#0"] == points[11].sparse


def test_spec_is_stored_and_checked(loaded) -> None:  # type: ignore[no-untyped-def]
    engine, _ = loaded
    backend = engine.backend
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


def test_duplicate_unsorted_and_nan_entries_never_reach_the_engine(engine: Engine) -> None:
    backend = engine.backend
    backend.create_collection(CollectionSpec("raw", sparse_dim=DIM, fingerprint=FINGERPRINT))
    with pytest.raises(ValueError, match="finite"):
        SparseVector.clean([3, 1], [0.5, float("nan")], DIM)
    with pytest.raises(ValueError, match="strictly increasing"):
        SparseVector(np.array([5, 1, 5]), np.array([1.0, 1.0, 1.0]), DIM)
    cleaned = SparseVector.clean([5, 1, 5, 9], [1.0, 2.0, 3.0, 0.0], DIM)  # duplicate 5 merged by max, zero dropped
    backend.upsert("raw", [PointRecord("p#0", cleaned, None, {"doc_id": "p"})])
    [hit] = backend.search("raw", SparseVector.from_pairs({1: 1.0, 5: 1.0}, DIM), k=5)
    assert hit.score == pytest.approx(2.0 + 3.0)


# ------------------------------------------------------------------ engines against each other
def assert_congruent(reference: list[Hit], hits: list[Hit], tolerance: float, what: str) -> None:
    """The same ranking: identical for exact engines; for a lossy one, the same ids wherever the
    reference's scores are further apart than the loss, and each score within it."""
    if tolerance == 0.0:
        assert [(h.id, round(h.score, 4)) for h in hits] == [(h.id, round(h.score, 4)) for h in reference], what
        return
    assert len(hits) == len(reference), what
    by_id = {h.id: h.score for h in reference}
    for hit in hits:
        if hit.id in by_id:
            assert hit.score == pytest.approx(by_id[hit.id], rel=tolerance), what
    floor = reference[-1].score * (1 + 2 * tolerance) if reference else 0.0
    assert {h.id for h in reference if h.score > floor} <= {h.id for h in hits}, what


def test_every_engine_answers_like_the_embedded_one(tmp_path: Path) -> None:
    points = make_points(300, seed=5)
    engines = []
    for name in ENGINES:
        try:
            engines.append(open_engine(name, tmp_path / name))
        except pytest.skip.Exception:
            continue
    if len(engines) < 2 or engines[0].tolerance:
        pytest.skip("needs the Qdrant adapter (the exact reference) and one more engine")
    try:
        for engine in engines:
            load(engine, points)
        questions: list[tuple[str, SparseVector, int, Any]] = [
            *((f"query {i}", q, 10, None) for i, q in enumerate(random_queries(4, seed=7))),
            ("a stored document", points[40].sparse, 20, None),
            ("lang=fr, year>2012", points[41].sparse, 15, parse_filters(["lang=fr", "year>2012"])),
            ("section in 2,5", points[42].sparse, 15, parse_filters(["section in 2,5"])),
            ("section!=1", points[43].sparse, 15, parse_filters(["section!=1"])),
        ]
        for what, query, k, conditions in questions:
            reference = engines[0].backend.search("docs", query, k=k, filter=conditions)
            assert reference, what
            for engine in engines[1:]:
                hits = engine.backend.search("docs", query, k=k, filter=conditions)
                assert_congruent(reference, hits, engine.tolerance, f"{engine.name}: {what}")
                top = next((h for h in hits if h.id == reference[0].id), reference[0])
                assert dict(top.payload) == dict(reference[0].payload), what
        states = [sorted(e.backend.iter_payloads("docs", ["doc_id", "content_hash", "chunk_count"])) for e in engines]
        assert all(state == states[0] for state in states), "sync state differs between engines"
    finally:
        for engine in engines:
            engine.backend.close()
