"""Storage and search scenarios every backend must pass, against a float64 brute-force oracle.

Each scenario stores synthetic chunks (:func:`~splare_connect.testing.points.make_points`)
and checks the backend's answers against the exact dot product over the vectors as the
engine keeps them: exactly, or rounded to the significant bits the backend's record says
it keeps (``Capabilities.weight_bits``). Hybrid scenarios run the fusions the record
lists and check that the others, and weights where a fusion takes none, are refused in
one line. Subclass :class:`BackendConformance` in an adapter's tests (see
:mod:`splare_connect.testing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pytest

from splare_connect import BackendError, ConfigError, EncoderMismatchError, SparseVector
from splare_connect.backends import Backend, CollectionSpec, Hit, PointRecord
from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.protocol import SpecStoringBackend
from splare_connect.choices import Fusion
from splare_connect.errors import CollectionNotFoundError
from splare_connect.filters import Condition, parse_filters
from splare_connect.search_settings import SearchSettings
from splare_connect.testing.points import DIM, FINGERPRINT, make_points, random_queries

__all__ = ["BackendConformance", "assert_congruent", "brute_force", "stored_weight"]


def stored_weight(weight: float, bits: int | None) -> float:
    """``weight`` as an engine keeping ``bits`` significant bits stores it (None: the float32 itself)."""
    value = np.array([weight], np.float32)
    if bits is None:
        return float(value[0])
    drop = np.uint32(24 - bits)  # a float32 has 24 significant bits
    return float((value.view(np.uint32) >> drop << drop).view(np.float32)[0])


def brute_force(
    points: list[PointRecord],
    query: SparseVector,
    keep: Callable[[PointRecord], bool] = lambda p: True,
    bits: int | None = None,
) -> list[tuple[str, float]]:
    """Every matching point's score, best first: the float64 dot product with weights as stored."""
    weights = query.to_dict()

    def score(point: PointRecord) -> float:
        return sum(weights[i] * stored_weight(v, bits) for i, v in point.sparse.to_dict().items() if i in weights)

    scored = [(p.id, score(p)) for p in points if keep(p)]
    return sorted((s for s in scored if s[1] > 0), key=lambda s: -s[1])


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


class BackendConformance:
    """Storage and search scenarios. Subclasses set ``record`` and give a ``backend`` fixture.

    Attributes:
        record: The backend's :class:`BackendDescriptor`; its capabilities say what to expect.
        engine_fuses: False where the engine under test is a stand-in that does not model
            server-side fusion (OpenSearch's in-memory index): the hybrid scenarios are
            skipped, and the adapter must test its fusion requests elsewhere.
    """

    record: ClassVar[BackendDescriptor]
    engine_fuses: ClassVar[bool] = True
    collection: ClassVar[str] = "docs"

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a conformance subclass gives a `backend` fixture: a fresh, empty backend")

    # ------------------------------------------------------------------ helpers
    @property
    def bits(self) -> int | None:
        return self.record.capabilities.weight_bits

    @property
    def tolerance(self) -> float:
        """Relative error of a score: 0 for exact engines, 2**-(bits-1) for lossy ones."""
        return 0.0 if self.bits is None else 2.0 ** -(self.bits - 1)

    def load(self, backend: Backend, points: list[PointRecord]) -> None:
        spec = CollectionSpec(
            self.collection, sparse_dim=DIM, fingerprint=FINGERPRINT, dense_dim=8, indexed_fields=("lang",)
        )
        backend.create_collection(spec)
        backend.upsert(self.collection, points)
        backend.finalize(self.collection)

    @pytest.fixture
    def loaded(self, backend: Backend) -> tuple[Backend, list[PointRecord]]:
        points = make_points(300)
        self.load(backend, points)
        return backend, points

    def skip_unless_fusing(self, fusion: Fusion) -> None:
        if not self.engine_fuses:
            pytest.skip("the engine under test does not model server-side fusion")
        if fusion not in self.record.capabilities.fusions:
            pytest.skip(f"{self.record.name} offers no {fusion} fusion")

    # ------------------------------------------------------------------ scenarios
    def test_sparse_search_is_exact(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        backend, points = loaded
        for query in random_queries(5, seed=42):
            expected = brute_force(points, query, bits=self.bits)[:10]
            hits = backend.search(self.collection, query, k=10)
            assert [round(h.score, 3) for h in hits] == [round(s, 3) for _, s in expected]
            assert {h.id for h in hits if h.score > expected[-1][1] + 1e-4} <= {i for i, _ in expected}
            assert hits[0].payload["doc_id"] == hits[0].id.split("#")[0]

    def test_filters(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        backend, points = loaded
        query = points[5].sparse
        cases: dict[str, Callable[[Any], bool]] = {
            "lang=de": lambda m: m["lang"] == "de",
            "lang!=de": lambda m: m["lang"] != "de",
            "lang in en,fr": lambda m: m["lang"] in ("en", "fr"),
            "year>=2015": lambda m: m["year"] >= 2015,
            "year<2003": lambda m: m["year"] < 2003,
            "section=3": lambda m: m["section"] == "3",  # stored as a string, typed as a number
            "section in 2,5": lambda m: m["section"] in ("2", "5"),
            "section!=1": lambda m: m["section"] != "1",
        }
        for expression, keep in cases.items():

            def matches(point: PointRecord, keep: Callable[[Any], bool] = keep) -> bool:
                return keep(point.payload["metadata"])

            expected = brute_force(points, query, matches, self.bits)[:10]
            hits = backend.search(self.collection, query, k=10, filter=parse_filters([expression]))
            assert [round(h.score, 4) for h in hits] == [round(s, 4) for _, s in expected], expression
            assert all(keep(h.payload["metadata"]) for h in hits), expression
        both = [Condition("lang", "eq", "en"), Condition("year", "gt", 2010)]
        hits = backend.search(self.collection, query, k=50, filter=both)
        assert hits and all(
            h.payload["metadata"]["lang"] == "en" and h.payload["metadata"]["year"] > 2010 for h in hits
        )

    def test_a_negated_filter_keeps_points_without_the_field(self, backend: Backend) -> None:
        """``lang!=de`` keeps a point that has no ``lang``; ``lang=...`` and ``lang in ...`` never match it."""
        points = make_points(60, seed=3)
        for point in points[7::10]:
            del point.payload["metadata"]["lang"]  # type: ignore[attr-defined]
        self.load(backend, points)
        query = points[7].sparse
        cases: dict[str, Callable[[Any], bool]] = {
            "lang!=de": lambda m: m.get("lang") != "de",
            "lang=en": lambda m: m.get("lang") == "en",
            "lang in en,fr": lambda m: m.get("lang") in ("en", "fr"),
        }
        for expression, keep in cases.items():

            def matches(point: PointRecord, keep: Callable[[Any], bool] = keep) -> bool:
                return keep(point.payload["metadata"])

            expected = brute_force(points, query, matches, self.bits)[:20]
            hits = backend.search(self.collection, query, k=20, filter=parse_filters([expression]))
            assert [round(h.score, 4) for h in hits] == [round(s, 4) for _, s in expected], expression
            assert ("doc-7#0" in {h.id for h in hits}) == (expression == "lang!=de"), expression

    def test_a_filter_value_cannot_change_the_query(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        """Quotes, backslashes and operators in a value are data: they match nothing here."""
        backend, points = loaded
        for value in ('de" or lang != "x', "de' || true || '", "de\\", '") or (1==1', "*"):
            hits = backend.search(self.collection, points[5].sparse, k=10, filter=[Condition("lang", "eq", value)])
            assert hits == [], value

    @pytest.mark.parametrize("fusion", list(Fusion))
    def test_hybrid_fuses_both_sides(self, loaded: tuple[Backend, list[PointRecord]], fusion: Fusion) -> None:
        self.skip_unless_fusing(fusion)
        backend, points = loaded
        target = points[17]
        # The sparse query matches doc 17 weakly; the dense query is doc 17's own vector.
        weak = SparseVector.from_pairs({int(target.sparse.indices[0]): 0.01}, DIM)
        assert target.dense is not None and points[3].dense is not None
        hits = backend.hybrid_search(self.collection, weak, target.dense, k=5, fusion=fusion)
        assert hits[0].id == target.id
        filtered = backend.hybrid_search(
            self.collection,
            points[3].sparse,
            points[3].dense,
            k=10,
            fusion=fusion,
            filter=[Condition("lang", "eq", "fr")],
        )
        assert filtered and all(h.payload["metadata"]["lang"] == "fr" for h in filtered)

    @pytest.mark.parametrize("fusion", list(Fusion))
    def test_hybrid_weights_are_used_or_refused(
        self, loaded: tuple[Backend, list[PointRecord]], fusion: Fusion
    ) -> None:
        self.skip_unless_fusing(fusion)
        backend, points = loaded
        assert points[3].dense is not None
        sparse_only = backend.search(self.collection, points[3].sparse, k=1)[0].id
        dense_far = -points[3].dense
        if fusion in self.record.capabilities.weighted_fusions:
            fused = backend.hybrid_search(
                self.collection, points[3].sparse, dense_far, k=10, fusion=fusion, weights=(1.0, 0.0)
            )
            assert fused[0].id == sparse_only  # dense weight 0: the sparse ranking decides
            return
        with pytest.raises(ConfigError, match="fusion takes no weights"):
            backend.hybrid_search(self.collection, points[3].sparse, dense_far, k=10, fusion=fusion, weights=(1.0, 0.0))
        equal = backend.hybrid_search(
            self.collection, points[3].sparse, dense_far, k=10, fusion=fusion, weights=(2.0, 2.0)
        )
        unweighted = backend.hybrid_search(self.collection, points[3].sparse, dense_far, k=10, fusion=fusion)
        assert [h.id for h in equal] == [h.id for h in unweighted]
        assert [h.score for h in equal] == pytest.approx([h.score for h in unweighted])

    @pytest.mark.parametrize("fusion", list(Fusion))
    def test_a_fusion_the_engine_lacks_is_refused_in_one_line(
        self, loaded: tuple[Backend, list[PointRecord]], fusion: Fusion
    ) -> None:
        if fusion in self.record.capabilities.fusions:
            pytest.skip(f"{self.record.name} runs {fusion}")
        backend, points = loaded
        assert points[0].dense is not None
        with pytest.raises(ConfigError, match=f"has no {fusion} fusion") as refused:
            backend.hybrid_search(self.collection, points[0].sparse, points[0].dense, k=3, fusion=fusion)
        assert "\n" not in str(refused.value)

    def test_rrf_k_is_sent(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        self.skip_unless_fusing(Fusion.RRF)
        backend, points = loaded
        assert points[9].dense is not None
        sparse, dense = points[8].sparse, points[9].dense
        small_k = backend.hybrid_search(self.collection, sparse, dense, k=3, rrf_k=2)
        large_k = backend.hybrid_search(self.collection, sparse, dense, k=3, rrf_k=60)
        # RRF adds 1 / (k + rank) per side (rank from 0 or 1, by engine): the top point
        # scores between 1/(k+1) (first on one side) and 2/k (first on both).
        assert 1 / 3 - 1e-6 <= small_k[0].score <= 2 / 2 + 1e-6
        assert 1 / 61 - 1e-6 <= large_k[0].score <= 2 / 60 + 1e-6

    def test_hybrid_refuses_a_dense_query_of_the_wrong_shape(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        self.skip_unless_fusing(Fusion.RRF)
        backend, points = loaded
        for bad in (np.ones(7, np.float32), np.full(8, np.nan, np.float32)):
            with pytest.raises(BackendError, match="dense"):
                backend.hybrid_search(self.collection, points[0].sparse, bad, k=3)

    def test_a_dense_vector_of_the_wrong_shape_is_refused_before_writing(
        self, loaded: tuple[Backend, list[PointRecord]]
    ) -> None:
        if not self.record.capabilities.checks_dense_on_write:
            pytest.skip(f"{self.record.name}'s server checks dense vectors and refuses the record in its reply")
        backend, points = loaded
        sparse = points[0].sparse
        for dense in (np.ones(7, np.float32), np.full(8, np.inf, np.float32), None):
            record = PointRecord("odd#0", sparse, dense, {"doc_id": "odd"})
            with pytest.raises(BackendError, match="dense vector"):
                backend.upsert(self.collection, [points[1], record])
        assert backend.count(self.collection) == 300
        assert "odd#0" not in dict(backend.iter_payloads(self.collection, []))

    def test_upsert_is_idempotent_and_delete_works(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        backend, points = loaded
        backend.upsert(self.collection, points[:50])  # same ids again: replaced, not added
        assert backend.count(self.collection) == 300
        backend.delete(self.collection, [p.id for p in points[:10]] + ["never-stored#0"])
        assert backend.count(self.collection) == 290
        stored = dict(backend.iter_payloads(self.collection, ["doc_id", "content_hash"]))
        assert len(stored) == 290 and stored["doc-10#0"] == {"doc_id": "doc-10", "content_hash": "h10"}
        vectors = backend.fetch_sparse(self.collection, ["doc-11#0", "doc-3#0"])
        assert list(vectors) == ["doc-11#0"] and vectors["doc-11#0"] == points[11].sparse

    def test_spec_is_stored_and_checked(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        backend, _ = loaded
        name = self.collection
        spec = backend.describe_collection(name)
        assert spec is not None and spec.fingerprint == FINGERPRINT and spec.dense_dim == 8
        assert name in backend.list_collections()
        other = CollectionSpec(name, sparse_dim=DIM, fingerprint={"name": "other", "digest": "d2"}, dense_dim=8)
        with pytest.raises(EncoderMismatchError, match="digest d1"):
            backend.create_collection(other)
        wider = CollectionSpec(name, sparse_dim=DIM * 2, fingerprint=FINGERPRINT, dense_dim=8)
        with pytest.raises(BackendError, match="sparse_dim"):
            backend.create_collection(wider)
        too_wide = PointRecord("x#0", SparseVector.from_pairs({DIM + 5: 1.0}), np.ones(8, np.float32), {})
        with pytest.raises(BackendError, match=f"outside collection '{name}'"):
            backend.upsert(name, [too_wide])
        backend.drop_collection(name)
        assert backend.describe_collection(name) is None and name not in backend.list_collections()

    def test_search_settings_are_kept_with_the_collection(self, loaded: tuple[Backend, list[PointRecord]]) -> None:
        """``store_spec`` keeps a collection's search settings; its points and the guard's fingerprint stay."""
        backend, points = loaded
        if not isinstance(backend, SpecStoringBackend):
            pytest.skip(f"{self.record.name} cannot store a collection's search settings")
        spec = backend.describe_collection(self.collection)
        assert spec is not None and spec.search is None
        settings = SearchSettings(query_top_k=20, hybrid="rrf", weights=(1.0, 0.5), rrf_k=30, source="a test")
        backend.store_spec(replace(spec, search=settings))
        assert backend.describe_collection(self.collection) == replace(spec, search=settings)
        assert backend.count(self.collection) == 300
        assert backend.search(self.collection, points[4].sparse, k=1)[0].id == "doc-4#0"
        backend.store_spec(spec)  # back to the defaults
        assert backend.describe_collection(self.collection) == spec
        with pytest.raises(CollectionNotFoundError):
            backend.store_spec(replace(spec, name="nowhere"))

    def test_duplicate_unsorted_and_nan_entries_never_reach_the_engine(self, backend: Backend) -> None:
        backend.create_collection(CollectionSpec("raw", sparse_dim=DIM, fingerprint=FINGERPRINT))
        with pytest.raises(ValueError, match="finite"):
            SparseVector.clean([3, 1], [0.5, float("nan")], DIM)
        with pytest.raises(ValueError, match="strictly increasing"):
            SparseVector(np.array([5, 1, 5]), np.array([1.0, 1.0, 1.0]), DIM)
        cleaned = SparseVector.clean([5, 1, 5, 9], [1.0, 2.0, 3.0, 0.0], DIM)  # duplicate 5 merged by max, 0 dropped
        backend.upsert("raw", [PointRecord("p#0", cleaned, None, {"doc_id": "p"})])
        backend.finalize("raw")
        [hit] = backend.search("raw", SparseVector.from_pairs({1: 1.0, 5: 1.0}, DIM), k=5)
        assert hit.score == pytest.approx(2.0 + 3.0)

    def test_a_record_without_features_is_kept_and_matches_nothing(self, backend: Backend) -> None:
        """A blank document has no features: sync must still find it stored, and no query may return it."""
        backend.create_collection(CollectionSpec("blank", sparse_dim=DIM, fingerprint=FINGERPRINT))
        empty = SparseVector.from_pairs({}, DIM)
        full = SparseVector.from_pairs({7: 1.0}, DIM)
        backend.upsert(
            "blank",
            [PointRecord("e#0", empty, None, {"doc_id": "e"}), PointRecord("f#0", full, None, {"doc_id": "f"})],
        )
        backend.finalize("blank")
        assert backend.count("blank") == 2
        assert dict(backend.iter_payloads("blank", ["doc_id"]))["e#0"] == {"doc_id": "e"}
        assert [h.id for h in backend.search("blank", SparseVector.from_pairs({7: 1.0, 8: 1.0}, DIM), k=5)] == ["f#0"]
