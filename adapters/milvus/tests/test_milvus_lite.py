"""The Backend protocol on Milvus Lite (the real Milvus engine, in-process), against a float64 oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from milvus_points import DIM, brute_force, make_points, random_queries, spec

from splare_connect import BackendError, ConfigError, EncoderMismatchError, SparseVector
from splare_connect.backends import Backend, PointRecord
from splare_connect.errors import CollectionNotAttachedError, CollectionNotFoundError, RecordsRejectedError
from splare_connect.filters import Condition, parse_filters
from splare_connect_milvus import create_backend


@pytest.fixture(scope="module")
def points() -> list[PointRecord]:
    return make_points(300)


@pytest.fixture
def loaded(lite, points):  # type: ignore[no-untyped-def]
    lite.create_collection(spec())
    lite.upsert("docs", points)
    lite.finalize("docs")
    return lite


def assert_like_oracle(hits, expected, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """The same ids in the same order, scores equal to float32 accumulation (weights kept exactly)."""
    assert [h.id for h in hits] == [i for i, _ in expected], what
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-5), what


# ------------------------------------------------------------------ collections
def test_it_is_a_backend_and_the_spec_is_stored_with_the_collection(lite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(lite, Backend)
    lite.create_collection(spec())
    assert lite.describe_collection("docs") == spec() and lite.list_collections() == ["docs"]
    lite.create_collection(spec())  # the same spec again: adopted
    lite.close()
    reopened = create_backend(data_dir=tmp_path / "milvus")  # read back from the file, not a cache
    try:
        assert reopened.describe_collection("docs") == spec()
        assert reopened.describe_collection("nothing") is None
        other = spec(fingerprint={"name": "other", "digest": "d2"})
        with pytest.raises(EncoderMismatchError, match="digest d1"):
            reopened.create_collection(other)
        with pytest.raises(BackendError, match="sparse_dim"):
            reopened.create_collection(spec(sparse_dim=DIM * 2))
        with pytest.raises(BackendError, match="dense_dim"):
            reopened.create_collection(spec(dense_dim=None))
        reopened.drop_collection("docs")
        reopened.drop_collection("docs")  # gone already: nothing to do
        assert reopened.describe_collection("docs") is None and reopened.list_collections() == []
        with pytest.raises(CollectionNotFoundError, match=r"'docs' does not exist in .*milvus\.db"):
            reopened.count("docs")
    finally:
        reopened.close()


def test_an_apps_milvus_lite_client_is_recognised_and_left_open(lite) -> None:  # type: ignore[no-untyped-def]
    shared = create_backend(client=lite.client)
    assert shared.lite and shared.retry is None and not shared.owns_client
    shared.close()
    assert lite.list_collections() == []  # still open


def test_what_milvus_cannot_hold_is_refused_before_anything_is_created(lite) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no IDF"):
        lite.create_collection(spec(idf=True))
    with pytest.raises(ConfigError, match="collection name 'my-docs'"):
        lite.create_collection(spec("my-docs"))
    with pytest.raises(ConfigError, match="taken by the payload columns"):
        lite.create_collection(spec(sparse_vector_name="payload"))
    with pytest.raises(ConfigError, match=r"field name 'a\.b'"):
        lite.create_collection(spec(dense_vector_name="a.b"))
    assert lite.list_collections() == []


def test_a_collection_another_app_made_is_not_used_nor_dropped(lite) -> None:  # type: ignore[no-untyped-def]
    lite.client.create_collection("app", dimension=4)
    with pytest.raises(CollectionNotAttachedError, match="not created by splare-connect"):
        lite.describe_collection("app")
    with pytest.raises(CollectionNotAttachedError):
        lite.drop_collection("app")
    assert "app" in lite.list_collections()


# ------------------------------------------------------------------ writes and reads
def test_upsert_is_idempotent_delete_count_payloads_and_exact_vectors(loaded, points) -> None:  # type: ignore[no-untyped-def]
    assert loaded.count("docs") == 300
    loaded.upsert("docs", points[:50])  # the same ids again: replaced, not added
    assert loaded.count("docs") == 300
    loaded.delete("docs", [p.id for p in points[:10]] + ["never-stored#0"])
    assert loaded.count("docs") == 290
    stored = dict(loaded.iter_payloads("docs", ["doc_id", "content_hash", "chunk_count"]))
    assert len(stored) == 290 and stored["doc-10#0"] == {"doc_id": "doc-10", "content_hash": "h10", "chunk_count": 1}
    full = dict(loaded.iter_payloads("docs", ["text", "metadata"]))
    assert full["doc-12#0"] == {"text": "text 12", "metadata": points[12].payload["metadata"]}
    vectors = loaded.fetch_sparse("docs", ["doc-11#0", "doc-3#0", "doc-250#0"])
    assert list(vectors) == ["doc-11#0", "doc-250#0"]
    for record_id, vector in vectors.items():  # float32 weights come back bit for bit
        original = points[int(record_id[4:-2])].sparse
        assert vector == original and vector.values.dtype == np.float32
        assert np.array_equal(vector.values, original.values) and np.array_equal(vector.indices, original.indices)


def test_scans_page_through_every_point_once(loaded, points) -> None:  # type: ignore[no-untyped-def]
    loaded.page_size = 7  # 300 points: 43 pages, the last one short
    scanned = [record_id for record_id, _ in loaded.iter_payloads("docs", [])]
    assert sorted(scanned) == sorted(p.id for p in points)


def test_a_changed_record_replaces_the_old_one(loaded, points) -> None:  # type: ignore[no-untyped-def]
    changed = PointRecord(
        points[0].id, SparseVector.from_pairs({7: 2.5}, DIM), points[0].dense, {**points[0].payload, "text": "new"}
    )
    loaded.upsert("docs", [changed])
    assert loaded.count("docs") == 300
    assert loaded.fetch_sparse("docs", [changed.id])[changed.id] == changed.sparse
    [hit] = loaded.search("docs", SparseVector.from_pairs({7: 1.0}, DIM), k=1, filter=[Condition("lang", "eq", "en")])
    assert (hit.id, hit.payload["text"]) == (changed.id, "new")


def test_vectors_that_do_not_fit_are_refused_before_writing(loaded, points) -> None:  # type: ignore[no-untyped-def]
    sparse = points[0].sparse
    for dense in (np.ones(7, np.float32), np.full(8, np.inf, np.float32), None):
        with pytest.raises(BackendError, match="dense vector"):
            loaded.upsert("docs", [points[1], PointRecord("odd#0", sparse, dense, {"doc_id": "odd"})])
    too_wide = PointRecord("x#0", SparseVector.from_pairs({DIM + 5: 1.0}), np.ones(8, np.float32), {})
    with pytest.raises(BackendError, match="outside collection 'docs'"):
        loaded.upsert("docs", [too_wide])
    assert loaded.count("docs") == 300 and "odd#0" not in dict(loaded.iter_payloads("docs", []))


def test_records_milvus_refuses_are_reported_as_rejected(lite, caplog) -> None:  # type: ignore[no-untyped-def]
    lite.create_collection(spec("small", dense_dim=None))
    huge = PointRecord("big#0", SparseVector.from_pairs({1: 1.0}, DIM), None, {"doc_id": "big", "text": "x" * 70_000})
    with caplog.at_level("DEBUG", logger="pymilvus"), pytest.raises(RecordsRejectedError) as refused:
        lite.upsert("small", [huge])
    assert "\n" not in str(refused.value) and "writing 1 points to 'small' failed: " in str(refused.value)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # pymilvus's traceback logs are dropped


def test_blank_documents_are_kept_for_sync_and_match_no_query(lite) -> None:  # type: ignore[no-untyped-def]
    lite.create_collection(spec("blank", dense_dim=None))
    empty = SparseVector(np.zeros(0, np.uint32), np.zeros(0, np.float32), DIM)
    blank = PointRecord("blank#0", empty, None, {"doc_id": "blank", "content_hash": "e", "text": ""})
    full = PointRecord("full#0", SparseVector.from_pairs({3: 1.0}, DIM), None, {"doc_id": "full", "content_hash": "f"})
    lite.upsert("blank", [blank, full])
    assert lite.count("blank") == 2
    assert dict(lite.iter_payloads("blank", ["content_hash", "text"]))["blank#0"] == {"content_hash": "e", "text": ""}
    assert lite.fetch_sparse("blank", ["blank#0"])["blank#0"].nnz == 0
    everything = SparseVector.from_pairs({i: 1.0 for i in range(DIM)}, DIM)
    assert [h.id for h in lite.search("blank", everything, k=10)] == ["full#0"]
    assert lite.search("blank", empty, k=10) == []
    with pytest.raises(BackendError, match="feature id 2048 is outside"):  # the placeholder's id is never queried
        lite.search("blank", SparseVector.from_pairs({DIM: 1.0}), k=10)


# ------------------------------------------------------------------ search
def test_sparse_search_equals_the_float64_oracle(loaded, points) -> None:  # type: ignore[no-untyped-def]
    for query in random_queries(6, seed=42):
        hits = loaded.search("docs", query, k=10)
        assert_like_oracle(hits, brute_force(points, query)[:10])
    [top] = loaded.search("docs", points[40].sparse, k=1)
    assert top.id == "doc-40#0" and dict(top.payload) == dict(points[40].payload)


def test_search_survives_reopening_the_file(loaded, points, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    loaded.close()
    reopened = create_backend(data_dir=tmp_path / "milvus")  # Milvus releases collections on reopening
    try:
        query = random_queries(1, seed=3)[0]
        assert_like_oracle(reopened.search("docs", query, k=5), brute_force(points, query)[:5])
        assert reopened.count("docs") == 300
    finally:
        reopened.close()


FILTER_CASES = {
    "lang=de": lambda m: m.get("lang") == "de",
    "lang!=de": lambda m: m.get("lang") != "de",  # a point without lang is kept
    "lang in en,fr": lambda m: m.get("lang") in ("en", "fr"),
    "year>=2015": lambda m: m["year"] >= 2015,
    "year<2003": lambda m: m["year"] < 2003,
    "year=2004": lambda m: m["year"] == 2004,
    "section=3": lambda m: m["section"] == "3",  # stored as a string, typed as a number
    "section in 2,5": lambda m: m["section"] in ("2", "5"),
    "section!=1": lambda m: m["section"] != "1",
    "section>=3": lambda m: False,  # a range compares numbers; "3" is a string (as in Qdrant)
}


@pytest.mark.parametrize("expression", list(FILTER_CASES))
def test_filters_equal_the_oracle(loaded, points, expression: str) -> None:  # type: ignore[no-untyped-def]
    keep = FILTER_CASES[expression]
    query = random_queries(1, seed=9)[0]
    expected = brute_force(points, query, lambda p: keep(p.payload["metadata"]))[:15]
    hits = loaded.search("docs", query, k=15, filter=parse_filters([expression]))
    assert_like_oracle(hits, expected, expression)


def test_conditions_combine_and_a_raw_expression_passes_through(loaded, points) -> None:  # type: ignore[no-untyped-def]
    query = random_queries(1, seed=11)[0]
    both = [Condition("lang", "eq", "en"), Condition("year", "gt", 2010)]
    expected = brute_force(
        points, query, lambda p: p.payload["metadata"].get("lang") == "en" and p.payload["metadata"]["year"] > 2010
    )
    assert_like_oracle(loaded.search("docs", query, k=50, filter=both), expected[:50])
    raw = loaded.search("docs", query, k=50, filter='payload["metadata"]["year"] > 2010')
    assert raw and all(h.payload["metadata"]["year"] > 2010 for h in raw)
    with pytest.raises(ConfigError, match="unsupported filter for Milvus: dict"):
        loaded.search("docs", query, k=5, filter={"must": []})


def test_filter_values_and_keys_cannot_inject_expressions(lite) -> None:  # type: ignore[no-untyped-def]
    lite.create_collection(spec("odd", dense_dim=None))
    tricky = ['de" or 1 == 1 or "', 'back\\slash"', "new\nline\ttab", "ü ✓ '单' \\u00fc", 'a"]["b', "\x01ctl"]
    records = [
        PointRecord(
            f"r{i}#0", SparseVector.from_pairs({1: 1.0 + i}, DIM), None, {"doc_id": f"r{i}", "metadata": {"v": value}}
        )
        for i, value in enumerate(tricky)
    ]
    lite.upsert("odd", records)
    query = SparseVector.from_pairs({1: 1.0}, DIM)
    for i, value in enumerate(tricky):
        assert [h.id for h in lite.search("odd", query, k=10, filter=[Condition("v", "eq", value)])] == [f"r{i}#0"]
    assert lite.search("odd", query, k=10, filter=[Condition('v"] == "x" or payload["doc_id', "eq", "r0")]) == []
    assert lite.search("odd", query, k=10, filter=[Condition("v", "in", ("none", 'x" or true or "'))]) == []


# ------------------------------------------------------------------ hybrid
def test_hybrid_rrf_fuses_both_sides_with_its_k(loaded, points) -> None:  # type: ignore[no-untyped-def]
    target = points[17]
    weak = SparseVector.from_pairs({int(target.sparse.indices[0]): 0.01}, DIM)
    assert loaded.hybrid_search("docs", weak, target.dense, k=5, fusion="rrf")[0].id == target.id
    sparse, dense = points[8].sparse, points[9].dense
    for rrf_k in (2, 60):  # Milvus's RRF adds 1 / (k + rank) per side, ranks counted from 1
        top = loaded.hybrid_search("docs", sparse, dense, k=3, rrf_k=rrf_k)[0]
        assert 1 / (rrf_k + 1) - 1e-6 <= top.score <= 2 / (rrf_k + 1) + 1e-6
    filtered = loaded.hybrid_search(
        "docs", points[3].sparse, points[3].dense, k=10, filter=[Condition("lang", "eq", "fr")]
    )
    assert filtered and all(h.payload["metadata"]["lang"] == "fr" for h in filtered)
    dense_only = loaded.hybrid_search("docs", SparseVector.from_pairs({}, DIM), target.dense, k=3)
    assert dense_only[0].id == target.id  # a query with no features: the dense side alone


def test_hybrid_weighted_follows_its_weights(loaded, points) -> None:  # type: ignore[no-untyped-def]
    sparse_best = loaded.search("docs", points[3].sparse, k=1)[0].id
    far = -points[3].dense
    by_sparse = loaded.hybrid_search("docs", points[3].sparse, far, k=5, fusion="weighted", weights=(1.0, 0.0))
    assert by_sparse[0].id == sparse_best
    by_dense = loaded.hybrid_search(
        "docs", points[3].sparse, points[20].dense, k=5, fusion="weighted", weights=(0.0, 1.0)
    )
    assert by_dense[0].id == points[20].id
    scaled = loaded.hybrid_search(
        "docs", points[3].sparse, points[20].dense, k=5, fusion="weighted", weights=(2.0, 6.0)
    )
    same = loaded.hybrid_search(
        "docs", points[3].sparse, points[20].dense, k=5, fusion="weighted", weights=(1 / 3, 1.0)
    )
    assert [h.id for h in scaled] == [h.id for h in same]
    with pytest.raises(ConfigError, match="weights of 0 or more"):
        loaded.hybrid_search("docs", points[3].sparse, far, k=5, fusion="weighted", weights=(-1.0, 1.0))


def test_fusions_milvus_lacks_are_refused_in_one_line(loaded, points) -> None:  # type: ignore[no-untyped-def]
    sparse, dense = points[3].sparse, points[3].dense
    with pytest.raises(ConfigError, match=r"^Milvus has no dbsf fusion; it offers: rrf, weighted$"):
        loaded.hybrid_search("docs", sparse, dense, fusion="dbsf")
    with pytest.raises(
        ConfigError, match=r"^Milvus's RRF fusion takes no weights \(got \(1.0, 0.0\)\): use hybrid='weighted'"
    ):
        loaded.hybrid_search("docs", sparse, dense, fusion="rrf", weights=(1.0, 0.0))
    equal = loaded.hybrid_search("docs", sparse, dense, k=5, weights=(2.0, 2.0))
    assert [h.id for h in equal] == [h.id for h in loaded.hybrid_search("docs", sparse, dense, k=5)]


def test_hybrid_refuses_dense_queries_that_do_not_fit(loaded, points) -> None:  # type: ignore[no-untyped-def]
    for bad in (np.ones(7, np.float32), np.full(8, np.nan, np.float32)):
        with pytest.raises(BackendError, match="dense vector must be 8 finite floats"):
            loaded.hybrid_search("docs", points[0].sparse, bad, k=3)
    with pytest.raises(BackendError, match="no dense vector 'openai'"):
        loaded.hybrid_search("docs", points[0].sparse, points[0].dense, k=3, dense_field="openai")
    loaded.create_collection(spec("sparse_only", dense_dim=None))
    with pytest.raises(BackendError, match="has no dense vectors of splare-connect's"):
        loaded.hybrid_search("sparse_only", points[0].sparse, points[0].dense, k=3)


# ------------------------------------------------------------------ attach
def test_attach_is_refused_on_milvus_lite_in_one_line(lite, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    from splare_connect.attach import Attacher

    lite.client.create_collection("app", dimension=4)
    layout = lite.inspect_collection("app")
    assert layout is not None and layout.dense == {"vector": 4} and layout.spec is None
    assert layout.cannot_attach is not None and "Milvus Lite cannot add a field" in layout.cannot_attach
    with pytest.raises(ConfigError) as refused:
        Attacher(tiny_encoder, lite, "app", text_field="text").run()
    message = str(refused.value)
    assert "\n" not in message and "Milvus Lite cannot add a field" in message and "server 2.6.2+" in message
    assert "nothing was changed" in message
    info = lite.client.describe_collection("app")
    assert info["properties"] == {} and [f["name"] for f in info["fields"]] == ["id", "vector"]  # nothing changed
    # The attach calls themselves refuse on Milvus Lite too, in the same line.
    for call in (
        lambda: list(lite.iter_points("app", ["text"])),
        lambda: lite.clear_sparse("app", [1]),
        lambda: lite.update_sparse("app", []),
    ):
        with pytest.raises(ConfigError, match="Milvus Lite cannot add a field"):
            call()
