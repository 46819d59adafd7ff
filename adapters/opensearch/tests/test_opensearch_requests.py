"""The OpenSearch backend's requests, checked against the documented API.

The real opensearch-py client runs over a recording connection
(tests/opensearch_recording.py): every request is captured and answered with a reply
shaped like OpenSearch's documented responses, errors included. No cluster is involved.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearch_recording import (
    CLUSTER_INFO,
    PLUGINS_WITH_NEURAL,
    Recorder,
    Request,
    acknowledged,
    bulk_response,
    index_not_found,
    recording_client,
    search_response,
)

from splare_connect import BackendError, ConfigError, EncoderMismatchError, SparseVector
from splare_connect.backends import CollectionSpec, PointRecord
from splare_connect.backends.schema import PAYLOAD_FIELDS, point_id
from splare_connect.cli.common import open_backend
from splare_connect.filters import parse_filters

pytest.importorskip("splare_connect_opensearch")
from splare_connect_opensearch import BulkWriteError, OpenSearchBackend, bodies, create_backend

FINGERPRINT = {"name": "enc", "digest": "abc123"}
SPEC = CollectionSpec("docs", sparse_dim=16384, fingerprint=FINGERPRINT, dense_dim=4, indexed_fields=("section",))


def mapping_response(spec_meta: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"docs": {"mappings": {"_meta": {"splare_connect": spec_meta}, "properties": {}}}}


def stored_meta(**changes: Any) -> dict[str, Any]:
    meta = {
        "sparse_dim": 16384,
        "dense_dim": 4,
        "fingerprint": FINGERPRINT,
        "sparse_vector_name": "splare",
        "dense_vector_name": "dense",
        "idf": False,
        "indexed_fields": ["section"],
        "max_weight": 3.5,
    }
    meta.update(changes)
    return meta


class Cluster:
    """Scripted replies for an OpenSearch 3.3 cluster with (or without) neural-search."""

    def __init__(self, *, index_exists: bool = True, neural: bool = True, meta: dict[str, Any] | None = None) -> None:
        self.index_exists = index_exists
        self.neural = neural
        self.meta = meta or stored_meta()
        self.search_hits: list[tuple[str, float, dict[str, Any]]] = []
        self.refuse: dict[str, tuple[int, dict[str, Any]]] = {}
        self.failures_before_success: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, request: Request) -> tuple[int, Any]:
        if self.failures_before_success:
            return self.failures_before_success.pop(0)
        method, path = request.method, request.path
        if path == "/" and method == "GET":
            return 200, CLUSTER_INFO
        if path == "/_cat/plugins":
            return 200, PLUGINS_WITH_NEURAL if self.neural else PLUGINS_WITH_NEURAL[:2]
        if path.endswith("/_mapping"):
            return mapping_response(self.meta) if self.index_exists else index_not_found("docs")
        if method == "PUT" and path == "/docs":
            self.index_exists = True
            return acknowledged("docs")
        if path.startswith("/_search/pipeline/"):
            return acknowledged()
        if path == "/_bulk":
            return bulk_response(request, self.refuse)
        if path.endswith("/_search"):
            return search_response(self.search_hits)
        if path.endswith("/_refresh"):
            return 200, {"_shards": {"total": 2, "successful": 1, "failed": 0}}
        if path.endswith("/_count"):
            return 200, {"count": 42, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
        raise AssertionError(f"unexpected request {method} {path}")


def make_backend(cluster: Cluster, **options: Any) -> tuple[OpenSearchBackend, Recorder]:
    recorder = Recorder(cluster)
    backend = create_backend(client=recording_client(recorder), backoff_seconds=0.001, **options)
    return backend, recorder


def test_index_mapping_follows_the_documented_api() -> None:
    backend, recorder = make_backend(Cluster(index_exists=False))
    backend.create_collection(SPEC)
    [put] = recorder.find("PUT", "/docs")
    properties = put.body["mappings"]["properties"]
    assert properties["splare"] == {"type": "rank_features"}
    assert properties["dense"] == {
        "type": "knn_vector",
        "dimension": 4,
        "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"},
    }
    assert properties["metadata"]["properties"] == {"section": {"type": "keyword"}}
    assert properties["record_id"] == {"type": "keyword"}
    assert put.body["settings"]["index"]["knn"] is True
    assert put.body["mappings"]["_meta"]["splare_connect"]["fingerprint"] == FINGERPRINT


def test_mapping_and_excludes_follow_the_schema_and_the_spec() -> None:
    spec = CollectionSpec("docs", sparse_dim=64, fingerprint={"digest": "d"}, dense_dim=4, indexed_fields=("lang",))
    properties = bodies.index_body(spec)["mappings"]["properties"]
    assert list(properties) == ["splare", *(f.name for f in PAYLOAD_FIELDS), "dense"]
    assert bodies.source_excludes(spec) == ["splare*", "dense*"]
    renamed = CollectionSpec("docs", sparse_dim=64, fingerprint={}, sparse_vector_name="sv", dense_vector_name="dv")
    assert bodies.search_body(renamed, {"match_all": {}}, 3)["_source"] == {"excludes": ["sv*", "dv*"]}
    # A pattern that would also hide a payload field gives way to the exact names.
    clashing = CollectionSpec("docs", sparse_dim=64, fingerprint={}, sparse_vector_name="te", dense_vector_name="meta")
    assert bodies.source_excludes(clashing) == ["te", "te_ann", "meta"]


def test_existing_index_from_another_encoder_is_refused() -> None:
    backend, recorder = make_backend(Cluster(meta=stored_meta(fingerprint={"name": "old", "digest": "zzz"})))
    with pytest.raises(EncoderMismatchError, match="digest zzz"):
        backend.create_collection(SPEC)
    assert not recorder.find("PUT", "/docs")
    same, _ = make_backend(Cluster())
    same.create_collection(SPEC)  # same fingerprint: nothing to do
    assert same.describe_collection("docs").max_weight == 3.5  # type: ignore[union-attr]


def test_bulk_lines_use_integer_feature_names_and_deterministic_ids() -> None:
    backend, recorder = make_backend(Cluster())
    vector = SparseVector(np.array([3, 17, 16000]), np.array([0.5, 2.25, 1e-40], dtype=np.float64), 16384)
    backend.upsert(
        "docs",
        [PointRecord("page.1#0", vector, np.array([1, 0, 0, 0], np.float32), {"doc_id": "page.1", "text": "t"})],
    )
    [bulk] = recorder.find("POST", "/_bulk")
    action, source = bulk.ndjson
    assert action == {"index": {"_index": "docs", "_id": point_id("page.1#0")}}
    # 1e-40 is below Float.MIN_NORMAL (rejected by rank_features) and scores nothing: dropped.
    assert source["splare"] == {"3": 0.5, "17": 2.25}
    assert all("." not in key and key.isdigit() for key in source["splare"])
    assert source["dense"] == [1.0, 0.0, 0.0, 0.0]
    assert source["record_id"] == "page.1#0" and source["doc_id"] == "page.1"


def test_per_document_errors_are_reported_and_others_written() -> None:
    cluster = Cluster()
    bad = point_id("bad#0")
    cluster.refuse = {
        bad: (
            400,
            {
                "type": "mapper_parsing_exception",
                "reason": "failed to parse field [metadata.section] of type [keyword]",
            },
        )
    }
    backend, recorder = make_backend(cluster)
    points = [
        PointRecord(f"{name}#0", SparseVector.from_pairs({1: 1.0}, 16384), np.ones(4, np.float32), {"doc_id": name})
        for name in ("good", "bad", "also-good")
    ]
    with pytest.raises(BulkWriteError) as caught:
        backend.upsert("docs", points)
    assert caught.value.failures == [
        ("bad#0", "mapper_parsing_exception: failed to parse field [metadata.section] of type [keyword]")
    ]
    assert len(recorder.find("POST", "/_bulk")[0].ndjson) == 6  # all three were sent


def test_rejected_documents_are_retried_by_the_bulk_helper() -> None:
    cluster = Cluster()
    busy = point_id("busy#0")
    rejection = (
        429,
        {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"},
    )
    cluster.refuse = {busy: rejection}
    backend, recorder = make_backend(cluster)
    original = cluster.__call__

    def respond(request: Request) -> tuple[int, Any]:
        if request.path == "/_bulk" and len(recorder.find("POST", "/_bulk")) > 1:
            cluster.refuse = {}  # the second attempt is accepted
        return original(request)

    recorder.respond = respond
    backend.upsert(
        "docs", [PointRecord("busy#0", SparseVector.from_pairs({1: 1.0}, 16384), np.ones(4, np.float32), {})]
    )
    bulks = recorder.find("POST", "/_bulk")
    assert len(bulks) == 2 and bulks[1].ndjson[0]["index"]["_id"] == busy


def test_whole_request_failures_are_retried_with_backoff() -> None:
    cluster = Cluster()
    unavailable = {
        "error": {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/2/no master];"},
        "status": 503,
    }
    cluster.failures_before_success = [(503, unavailable), (502, {"error": "bad gateway", "status": 502})]
    backend, recorder = make_backend(cluster)
    assert backend.count("docs") == 42
    assert len(recorder.find("POST", "/docs/_count")) == 3

    cluster.failures_before_success = [
        (400, {"error": {"type": "parsing_exception", "reason": "bad query"}, "status": 400})
    ]
    with pytest.raises(BackendError, match="HTTP 400: parsing_exception: bad query"):
        backend.count("docs")


def test_neural_sparse_query_with_query_tokens_filter_and_scaling() -> None:
    cluster = Cluster()
    cluster.search_hits = [
        (
            point_id("ls.1#0"),
            9.5,
            {"record_id": "ls.1#0", "doc_id": "ls.1", "text": "list", "metadata": {"section": "1"}},
        )
    ]
    backend, recorder = make_backend(cluster)
    query = SparseVector.from_pairs({7: 100.0, 42: 50.0}, 16384)  # above the (0, 64] range
    [hit] = backend.search("docs", query, k=5, filter=parse_filters(["section=1", "lang!=de"]))
    [search] = recorder.find("POST", "/docs/_search")
    body = search.body
    assert body["size"] == 5 and body["_source"] == {"excludes": ["splare*", "dense*"]}
    bool_query = body["query"]["bool"]
    tokens = bool_query["must"][0]["neural_sparse"]["splare"]["query_tokens"]
    assert tokens == {"7": 64.0, "42": 32.0}  # scaled by 0.64: same ranking, weights within (0, 64]
    assert bool_query["filter"] == [{"term": {"metadata.section": "1"}}]
    assert bool_query["must_not"] == [{"term": {"metadata.lang": "de"}}]
    assert (hit.id, hit.score, hit.payload["doc_id"]) == ("ls.1#0", 9.5, "ls.1")
    assert "record_id" not in hit.payload


def test_without_the_plugin_the_query_falls_back_to_rank_feature_clauses() -> None:
    backend, recorder = make_backend(Cluster(neural=False))
    assert backend.sparse_mode() == "rank_feature"
    backend.search("docs", SparseVector.from_pairs({5: 0.5, 9: 1.5}, 16384), k=3)
    body = recorder.find("POST", "/docs/_search")[0].body
    assert body["query"] == {
        "bool": {
            "should": [
                {"rank_feature": {"field": "splare.5", "boost": 0.5, "linear": {}}},
                {"rank_feature": {"field": "splare.9", "boost": 1.5, "linear": {}}},
            ]
        }
    }
    with pytest.raises(BackendError, match="neural-search plugin"):
        backend.hybrid_search("docs", SparseVector.from_pairs({5: 1.0}, 16384), np.ones(4, np.float32))


def test_rank_feature_fallback_respects_the_clause_limit() -> None:
    from splare_connect_opensearch import bodies

    many = SparseVector.from_pairs({i: 1.0 + i / 10_000 for i in range(3000)}, 16384)
    clauses = bodies.sparse_query(SPEC, many, mode="rank_feature", k=10)["bool"]["should"]
    assert len(clauses) == bodies.DEFAULT_MAX_CLAUSES
    assert {c["rank_feature"]["field"] for c in clauses} == {f"splare.{i}" for i in range(3000 - 1024, 3000)}


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_query_goes_through_an_idempotent_pipeline(fusion: str) -> None:
    backend, recorder = make_backend(Cluster())
    sparse = SparseVector.from_pairs({5: 1.0}, 16384)
    dense = np.array([0.5, 0.5, 0.5, 0.5], np.float32)
    for _ in range(2):
        backend.hybrid_search(
            "docs", sparse, dense, k=10, fusion=fusion, rrf_k=60, weights=(3.0, 1.0), filter=parse_filters(["a=b"])
        )
    [pipeline] = recorder.find("PUT", "/_search/pipeline/")  # created once, reused
    processor = pipeline.body["phase_results_processors"][0]
    if fusion == "rrf":
        assert processor == {
            "score-ranker-processor": {
                "combination": {"technique": "rrf", "rank_constant": 60, "parameters": {"weights": [0.75, 0.25]}}
            }
        }
    else:
        assert processor == {
            "normalization-processor": {
                "normalization": {"technique": "z_score"},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.75, 0.25]}},
            }
        }
    searches = recorder.find("POST", "/docs/_search")
    assert len(searches) == 2 and searches[0].params["search_pipeline"] == pipeline.path.rsplit("/", 1)[1]
    sparse_part, dense_part = searches[0].body["query"]["hybrid"]["queries"]
    assert sparse_part["bool"]["must"][0]["neural_sparse"]["splare"]["query_tokens"] == {"5": 1.0}
    assert dense_part["bool"]["must"][0] == {"knn": {"dense": {"vector": [0.5, 0.5, 0.5, 0.5], "k": 100}}}
    assert sparse_part["bool"]["filter"] == dense_part["bool"]["filter"] == [{"term": {"metadata.a": "b"}}]


def test_two_phase_pipeline() -> None:
    backend, recorder = make_backend(Cluster(), two_phase=(0.4, 5.0, 10000))
    backend.search("docs", SparseVector.from_pairs({5: 1.0}, 16384), k=3)
    [pipeline] = recorder.find("PUT", "/_search/pipeline/")
    assert pipeline.body["request_processors"] == [
        {
            "neural_sparse_two_phase_processor": {
                "tag": "splare-two-phase",
                "enabled": True,
                "two_phase_parameter": {"prune_ratio": 0.4, "expansion_rate": 5.0, "max_window_size": 10000},
            }
        }
    ]
    assert recorder.find("POST", "/docs/_search")[0].params["search_pipeline"] == pipeline.path.rsplit("/", 1)[1]


def test_the_cli_options_reach_the_backend() -> None:
    """``--backend-option`` pairs arrive typed; the data directory (embedded engines only) is not passed."""
    backend = open_backend(
        "opensearch", "http://127.0.0.1:9", Path("ignored"), None, ["replicas=0", "two_phase=0.4,5,10000"]
    )
    assert backend.replicas == 0 and backend.two_phase == (0.4, 5.0, 10000)
    backend.close()


def test_seismic_field_mapping_and_query() -> None:
    backend, recorder = make_backend(
        Cluster(index_exists=False), approximate=True, query_mode="ann", seismic={"n_postings": 4000}
    )
    backend.create_collection(CollectionSpec("docs", sparse_dim=16384, fingerprint=FINGERPRINT, max_weight=3.5))
    put = recorder.find("PUT", "/docs")[0].body
    assert put["settings"]["index"]["sparse"] is True
    assert put["mappings"]["properties"]["splare_ann"] == {
        "type": "sparse_vector",
        "method": {
            "name": "seismic",
            "parameters": {"n_postings": 4000, "quantization_ceiling_ingest": 3.5, "quantization_ceiling_search": 3.5},
        },
    }
    backend.upsert("docs", [PointRecord("a#0", SparseVector.from_pairs({9: 1.0}, 16384), None, {})])
    assert recorder.find("POST", "/_bulk")[0].ndjson[1]["splare_ann"] == {"9": 1.0}
    backend.search("docs", SparseVector.from_pairs({9: 1.0}, 16384), k=7)
    query = recorder.find("POST", "/docs/_search")[0].body["query"]
    assert query == {"neural_sparse": {"splare_ann": {"query_tokens": {"9": 1.0}, "method_parameters": {"k": 7}}}}


def test_seismic_refuses_wide_models_and_missing_ceilings() -> None:
    backend, _ = make_backend(Cluster(index_exists=False), approximate=True)
    with pytest.raises(ConfigError, match="ids >= 32768 collide"):
        backend.create_collection(CollectionSpec("docs", sparse_dim=131072, fingerprint=FINGERPRINT, max_weight=3.0))
    with pytest.raises(ConfigError, match="quantization_ceiling"):
        backend.create_collection(CollectionSpec("docs", sparse_dim=16384, fingerprint=FINGERPRINT))
    with pytest.raises(ConfigError, match="approximate=True"):
        make_backend(Cluster(), query_mode="ann")


def test_payload_paging_and_fetching_vectors() -> None:
    cluster = Cluster()
    backend, recorder = make_backend(cluster)
    pages = [
        [(f"id{i}", 1.0, {"record_id": f"doc{i:05d}#0", "doc_id": f"doc{i:05d}"}) for i in range(1000)],
        [("last", 1.0, {"record_id": "zzz#0", "doc_id": "zzz"})],
    ]

    def respond(request: Request) -> tuple[int, Any]:
        if request.path == "/docs/_search":
            return search_response(pages.pop(0))
        if request.path == "/docs/_mget":
            return 200, {
                "docs": [
                    {
                        "_index": "docs",
                        "_id": point_id("a#0"),
                        "found": True,
                        "_source": {"record_id": "a#0", "splare": {"12": 0.5, "3": 1.25}},
                    },
                    {"_index": "docs", "_id": point_id("gone#0"), "found": False},
                ]
            }
        return cluster(request)

    recorder.respond = respond
    payloads = list(backend.iter_payloads("docs", ["doc_id"]))
    assert len(payloads) == 1001 and payloads[-1] == ("zzz#0", {"doc_id": "zzz"})
    first, second = recorder.find("POST", "/docs/_search")
    assert first.body["sort"] == [{"record_id": "asc"}] and "search_after" not in first.body
    assert second.body["search_after"] == ["doc00999#0"]
    vectors = backend.fetch_sparse("docs", ["a#0", "gone#0"])
    assert list(vectors) == ["a#0"] and vectors["a#0"].to_dict() == {3: 1.25, 12: 0.5}
    mget = recorder.find("POST", "/docs/_mget")[0]
    assert mget.body == {"ids": [point_id("a#0"), point_id("gone#0")]}


def test_sync_reports_refused_documents_and_keeps_the_rest(tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    cluster = Cluster(index_exists=False, meta=None)
    backend, recorder = make_backend(cluster)
    records = example_records[:3]
    refused_record = f"{records[1]['id']}#0"
    cluster.refuse = {point_id(refused_record): (400, {"type": "mapper_parsing_exception", "reason": "bad"})}
    report = Syncer(tiny_encoder, backend, "docs").run(read_iterable(records))
    assert [(e.record_id, e.line) for e in report.skipped] == [(refused_record.split("#")[0], 2)]
    assert "refused by the database: mapper_parsing_exception: bad" in str(report.skipped[0])
    put = recorder.find("PUT", "/docs")[0]
    assert put.body["mappings"]["_meta"]["splare_connect"]["max_weight"] > 0  # created at the first write
    assert recorder.find("POST", "/docs/_refresh")


def test_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", "https://search.example:9200")
    monkeypatch.setenv("OPENSEARCH_USERNAME", "admin")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "s3cret")
    backend = create_backend()
    connection = backend.client.transport.connection_pool.connections[0]
    assert connection.host == "https://search.example:9200"
    assert connection.headers["authorization"].startswith("Basic ")
    monkeypatch.delenv("OPENSEARCH_USERNAME")
    monkeypatch.setenv("OPENSEARCH_API_KEY", "key-123")
    with caplog.at_level(logging.WARNING):
        insecure = create_backend(verify_certs=False)
    assert insecure.client.transport.connection_pool.connections[0].headers["authorization"] == "ApiKey key-123"
    assert "verification is OFF" in caplog.text and "s3cret" not in caplog.text and "key-123" not in caplog.text
    monkeypatch.delenv("OPENSEARCH_URL")
    with pytest.raises(ConfigError, match="OPENSEARCH_URL"):
        create_backend()


def test_error_responses_name_type_and_reason() -> None:
    cluster = Cluster()
    cluster.failures_before_success = [
        (401, {"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401})
    ]
    backend, _ = make_backend(cluster)
    with pytest.raises(BackendError, match="HTTP 401: security_exception: missing authentication credentials"):
        backend.search("docs", SparseVector.from_pairs({1: 1.0}, 16384))
    assert json.dumps(CLUSTER_INFO)  # the canned replies are plain JSON


def test_losing_a_creation_race_to_a_compatible_index_is_fine() -> None:
    cluster = Cluster(index_exists=False)
    original = cluster.__call__

    def respond(request: Request) -> tuple[int, Any]:
        if request.method == "PUT" and request.path == "/docs":  # another worker created it first
            cluster.index_exists = True
            error = {"type": "resource_already_exists_exception", "reason": "index [docs/abc] already exists"}
            return 400, {"error": {"root_cause": [error], **error}, "status": 400}
        return original(request)

    backend, recorder = make_backend(cluster)
    recorder.respond = respond
    backend.create_collection(SPEC)  # the winner's spec (stored_meta) matches
    assert backend.describe_collection("docs") is not None
