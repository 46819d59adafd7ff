"""The service over real HTTP: a ``splare-connect serve`` process, the tiny real model, the default (embedded) backend.

Answers are compared with the library in this process: ``/encode`` with
``SplareEncoder.encode`` (exactly), ``/search`` with ``Retriever.search`` on a copy of
the same collection.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from splare_connect.testing.service import API_KEY, COLLECTION, RunningServer, start_server, stop_server


def post(server: RunningServer, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30.0)


def assert_one_line_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    detail = body["detail"]
    assert "\n" not in detail and "Traceback" not in detail and API_KEY not in detail
    for fragment in fragments:
        assert fragment in detail, detail
    return detail


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (labels matched exactly, in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    raise AssertionError(f"no sample {name}{labels} in the metrics")


# ------------------------------------------------------------------ health and identity
def test_healthz_is_open_and_names_the_model(server: RunningServer, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(server.url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "ready": True,
        "model": "tiny",
        "fingerprint_digest": tiny_encoder.fingerprint["digest"],
        "dim": tiny_encoder.dim,
        "dense_dim": tiny_encoder.dense_dim,
        "runtime": "torch",
        "precision": "fp32",
        "search": True,
    }


# ----------------------------------------------------------------------------- encode
@pytest.mark.parametrize("role", ["query", "document"])
def test_encode_returns_exactly_the_library_vectors(
    server: RunningServer,
    auth: dict[str, str],
    tiny_encoder,
    example_records,
    role: str,  # type: ignore[no-untyped-def]
) -> None:
    texts = [r["title"] for r in example_records[:3]] + [r["text"][:600] for r in example_records[3:6]] + [""]
    response = post(server, "/encode", {"texts": texts, "role": role, "dense": True}, auth)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny_encoder.encode(texts, role=role, dense=True)
    assert body["fingerprint_digest"] == tiny_encoder.fingerprint["digest"]
    assert (body["model"], body["dim"], body["dense_dim"]) == ("tiny", tiny_encoder.dim, tiny_encoder.dense_dim)
    assert body["truncated"] == expected.truncated.tolist()
    assert len(body["sparse"]) == len(texts)
    for got, vector in zip(body["sparse"], expected.sparse, strict=True):
        assert got["indices"] == vector.indices.tolist()
        np.testing.assert_array_equal(np.asarray(got["values"], np.float32), vector.values)
    np.testing.assert_array_equal(np.asarray(body["dense"], np.float32), expected.dense)
    assert body["sparse"][-1] == {"indices": [], "values": []}  # a blank text has no feature


def test_encode_dense_only_and_sparse_only(server: RunningServer, auth: dict[str, str]) -> None:
    dense_only = post(server, "/encode", {"texts": ["list files"], "sparse": False, "dense": True}, auth).json()
    assert dense_only["sparse"] is None and len(dense_only["dense"][0]) == dense_only["dense_dim"]
    sparse_only = post(server, "/encode", {"texts": ["list files"]}, auth).json()
    assert sparse_only["dense"] is None and len(sparse_only["sparse"]) == 1


# ----------------------------------------------------------------------------- search
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"k": 3, "filter": ["section=1"]},
        {"k": 5, "documents": True, "explain": True},
        {"k": 4, "hybrid": "rrf"},
        {"k": 4, "hybrid": "dbsf", "filter": ["section in 1,8"]},
    ],
    ids=["plain", "filter", "documents-explain", "hybrid-rrf", "hybrid-dbsf-filter"],
)
def test_search_returns_the_hits_of_an_in_process_retriever(
    server: RunningServer,
    auth: dict[str, str],
    search_retriever,
    example_records,
    options: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    from splare_connect.filters import parse_filters

    for query in [example_records[2]["title"], "copy files to another host", example_records[30]["title"]]:
        response = post(server, "/search", {"query": query, "collection": COLLECTION, **options}, auth)
        assert response.status_code == 200, response.text
        hits = response.json()
        expected = search_retriever.search(
            query,
            k=options.get("k", 10),
            filter=parse_filters(options.get("filter", [])),
            hybrid=options.get("hybrid"),
            explain=options.get("explain", False),
            group_by_document=options.get("documents", False),
        )
        assert [h["id"] for h in hits] == [h.id for h in expected]
        assert [h["doc_id"] for h in hits] == [h.doc_id for h in expected]
        assert [h["text"] for h in hits] == [h.text for h in expected]
        assert [h["metadata"] for h in hits] == [dict(h.metadata) for h in expected]
        assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], rel=1e-6)
        if options.get("explain"):
            assert [[(f["feature"], f["label"]) for f in h["features"]] for h in hits] == [
                [(f.feature, f.label) for f in h.features] for h in expected
            ]
        else:
            assert all(h["features"] is None for h in hits)


def test_search_uses_the_servers_collection_when_none_is_named(
    server: RunningServer,
    auth: dict[str, str],
    search_retriever,  # type: ignore[no-untyped-def]
) -> None:
    hits = post(server, "/search", {"query": "list directory contents", "k": 3}, auth).json()
    assert [h["id"] for h in hits] == [h.id for h in search_retriever.search("list directory contents", k=3)]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/encode", {"texts": ["x"], "role": "passage"}, 422, "role"),
        ("/encode", {"texts": []}, 422, "texts"),
        ("/encode", {"texts": ["x"], "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ("/encode", {"texts": "not a list"}, 422, "texts"),
        ("/encode", {"texts": ["x"] * 257}, 413, "too many texts: 257"),
        ("/encode", {"texts": ["ok", "y" * 20_001]}, 413, "texts[1] has 20001 characters"),
        ("/encode", {"texts": ["x"], "sparse": False, "dense": False}, 422, "ask for sparse, dense or both"),
        ("/search", {"query": "x", "filter": ["no operator here"]}, 400, "cannot parse filter"),
        ("/search", {"query": "x", "filter": ["year>=recent"]}, 400, "range comparisons need a number"),
        ("/search", {"query": "x", "filter": ["section=9223372036854775808"]}, 400, "signed 64-bit"),
        ("/search", {"query": "x", "filter": ["section in 1,99999999999999999999"]}, 400, "signed 64-bit"),
        ("/search", {"query": "x", "filter": ["section!=-9223372036854775809"]}, 400, "signed 64-bit"),
        ("/search", {"query": "x", "filter": ["section>=inf"]}, 400, "range comparisons need a number"),
        ("/search", {"query": "x", "collection": "nowhere"}, 404, "collection 'nowhere' does not exist"),
        ("/search", {"query": "x", "collection": "../etc"}, 422, "collection: String should match pattern"),
        ("/search", {"query": "x", "k": 0}, 422, "k"),
        ("/search", {"query": "x", "k": 1001}, 422, "k"),
        ("/search", {"query": "q" * 2_001}, 413, "the query has 2001 characters"),
        ("/search", {"k": 3}, 422, "query: Field required"),
    ],
    ids=[
        "bad-role",
        "no-texts",
        "unknown-field",
        "texts-not-a-list",
        "too-many-texts",
        "text-too-long",
        "nothing-asked",
        "bad-filter",
        "range-on-a-word",
        "filter-int-above-64-bits",
        "filter-in-above-64-bits",
        "filter-int-below-64-bits",
        "filter-range-infinite",
        "missing-collection",
        "bad-collection-name",
        "k-zero",
        "k-too-large",
        "query-too-long",
        "no-query",
    ],
)
def test_errors_are_one_line_4xx(
    server: RunningServer, auth: dict[str, str], path: str, body: Any, status: int, fragment: str
) -> None:
    assert_one_line_error(post(server, path, body, auth), status, fragment)


def test_malformed_json_lone_surrogates_and_unknown_paths_are_4xx(server: RunningServer, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    broken = httpx.post(server.url + "/encode", content=b'{"texts": ["x"', headers=headers, timeout=10)
    assert_one_line_error(broken, 422, "JSON decode error")
    surrogate = httpx.post(server.url + "/encode", content=b'{"texts": ["ok", "a\\ud800b"]}', headers=headers)
    assert_one_line_error(surrogate, 422, "texts[1] is not valid Unicode")
    query = httpx.post(server.url + "/search", content=b'{"query": "\\udfff"}', headers=headers)
    assert_one_line_error(query, 422, "the query is not valid Unicode")
    assert_one_line_error(httpx.get(server.url + "/nowhere", headers=auth), 404, "Not Found")
    assert_one_line_error(httpx.get(server.url + "/encode", headers=auth), 405, "Method Not Allowed")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"texts": ["caf\xe9"]}', "the body is not valid UTF-8 (at byte 15)"),
        (b'{"texts": ["\xff\xfe\xfa"]}', "the body is not valid UTF-8"),
        (b'{"texts": ["\xed\xa0\x80"]}', "texts[0] is not valid Unicode"),  # an encoded surrogate: JSON lets it by
    ],
    ids=["latin-1", "invalid-bytes", "encoded-surrogate"],
)
def test_a_body_that_is_not_utf8_is_422_as_documented(
    server: RunningServer, auth: dict[str, str], body: bytes, fragment: str
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    response = httpx.post(server.url + "/encode", content=body, headers=headers, timeout=10)
    assert_one_line_error(response, 422, fragment)


# ------------------------------------------------------------------------------- auth
def test_every_endpoint_but_health_and_schema_needs_the_key(server: RunningServer) -> None:
    body = {"texts": ["list files"]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": API_KEY}):
        refused = post(server, "/encode", body, headers)
        assert_one_line_error(refused, 401, "missing or wrong API key")
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert_one_line_error(post(server, "/search", {"query": "x"}), 401)
    assert_one_line_error(httpx.get(server.url + "/metrics"), 401)
    assert post(server, "/encode", body, {"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert post(server, "/encode", body, {"X-API-Key": API_KEY}).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200
    schema = httpx.get(server.url + "/openapi.json").json()
    assert API_KEY not in str(schema)
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])


def test_the_401_says_literally_how_to_send_the_key(server: RunningServer) -> None:
    """The hint itself is not masked as if it were a credential; a key that was sent still is."""
    refused = post(server, "/encode", {"texts": ["x"]}, {"Authorization": "Bearer not-the-key-9f8e"})
    detail = assert_one_line_error(refused, 401)
    assert detail == "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    assert "not-the-key-9f8e" not in detail


def test_the_key_never_reaches_the_server_log(server: RunningServer) -> None:
    post(server, "/encode", {"texts": [f"text mentioning {API_KEY}"]}, {"X-API-Key": "nearly-" + API_KEY})
    assert API_KEY not in server.log_tail(200_000)


# ------------------------------------------------------------------ batching, metrics
def test_concurrent_clients_are_batched_together(
    server: RunningServer,
    auth: dict[str, str],
    tiny_encoder,
    example_records,  # type: ignore[no-untyped-def]
) -> None:
    metrics_before = httpx.get(server.url + "/metrics", headers=auth).text
    batches_before = metric(metrics_before, "splare_encode_batch_texts_count")
    ones_before = metric(metrics_before, "splare_encode_batch_texts_bucket", le="1.0")
    titles = [r["title"] for r in example_records[:48]]
    clients, rounds = 16, 3
    barrier = threading.Barrier(clients)
    answers: dict[str, dict[str, Any]] = {}
    failures: list[str] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as session:
            barrier.wait(timeout=30)
            for round_ in range(rounds):
                text = titles[number * rounds + round_]
                response = session.post("/encode", json={"texts": [text], "role": "query"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answers[text] = response.json()["sparse"][0]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures and len(answers) == clients * rounds
    expected = tiny_encoder.encode(titles, role="query", batch_size=1).sparse
    for text, vector in zip(titles, expected, strict=True):
        # Padding in a shared batch may move the last bits of a weight, not the features.
        assert answers[text]["indices"] == vector.indices.tolist(), text
        np.testing.assert_allclose(answers[text]["values"], vector.values, rtol=1e-5, atol=1e-6)
    metrics_after = httpx.get(server.url + "/metrics", headers=auth).text
    batches = metric(metrics_after, "splare_encode_batch_texts_count") - batches_before
    single = metric(metrics_after, "splare_encode_batch_texts_bucket", le="1.0") - ones_before
    texts = metric(metrics_after, "splare_encode_batch_texts_sum") - metric(
        metrics_before, "splare_encode_batch_texts_sum"
    )
    assert texts == clients * rounds
    assert batches < texts and single < batches, (batches, single)  # several requests shared an encoder call


def test_metrics_count_requests_by_endpoint_and_status(server: RunningServer, auth: dict[str, str]) -> None:
    post(server, "/encode", {"texts": ["x"], "role": "nope"}, auth)
    post(server, "/search", {"query": "list files", "k": 2}, auth)
    post(server, "/search", {"query": "x"})
    response = httpx.get(server.url + "/metrics", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "splare_requests_total", endpoint="/encode", status="422") >= 1
    assert metric(text, "splare_requests_total", endpoint="/search", status="200") >= 1
    assert metric(text, "splare_requests_total", endpoint="/search", status="401") >= 1
    assert metric(text, "splare_request_seconds_count", endpoint="/search") >= 2
    assert metric(text, "splare_request_seconds_bucket", endpoint="/encode", le="+Inf") >= 1
    assert metric(text, "splare_queue_texts") == 0
    assert "python_gc_objects_collected_total" not in text  # the app's own registry, not the global one


# ------------------------------------------------------------------------ saturation
@pytest.fixture(scope="module")
def small_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Encode only, no key, a queue of one text and a long batching window: easy to saturate."""
    log = tmp_path_factory.mktemp("small-server") / "server.log"
    options = ("--no-search", "--max-queue", "1", "--max-wait-ms", "100", "--max-texts", "4", "--max-text-chars", "100")
    running = start_server(tiny_model_dir, log, *options, api_key=None)
    yield running
    stop_server(running)


def test_a_full_queue_refuses_at_once_with_retry_after(small_server: RunningServer) -> None:
    clients = 24
    barrier = threading.Barrier(clients)
    results: list[tuple[int, str | None, float]] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=small_server.url, timeout=60) as session:
            barrier.wait(timeout=30)
            response = session.post("/encode", json={"texts": [f"query {number}"], "role": "query"})
            results.append(
                (response.status_code, response.headers.get("Retry-After"), response.elapsed.total_seconds())
            )
            if response.status_code == 503:
                assert_one_line_error(response, 503, "the server is busy")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = [status for status, _, _ in results]
    assert len(results) == clients and set(statuses) <= {200, 503}
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    assert all(retry == "1" for status, retry, _ in results if status == 503)
    refused_latency = max(seconds for status, _, seconds in results if status == 503)
    assert refused_latency < 5.0  # refused at once, not after a wait


def test_limits_follow_the_servers_settings(small_server: RunningServer) -> None:
    assert_one_line_error(post(small_server, "/encode", {"texts": ["a"] * 5}), 413, "at most 4")
    assert_one_line_error(post(small_server, "/encode", {"texts": ["a" * 101]}), 413, "at most 100")
    too_big = b'{"texts": ["' + b"a" * 200_000 + b'"]}'
    response = httpx.post(small_server.url + "/encode", content=too_big, headers={"Content-Type": "application/json"})
    assert_one_line_error(response, 413, "request body too large")
    assert_one_line_error(post(small_server, "/search", {"query": "x"}), 404, "started without a database")
    assert post(small_server, "/encode", {"texts": ["no key needed here"]}).status_code == 200
