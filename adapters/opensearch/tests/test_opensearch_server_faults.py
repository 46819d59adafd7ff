"""The server-fault kit (splare_connect.testing.fault_server) against a fake OpenSearch cluster.

opensearch-py (urllib3) does the HTTP. The kit's scenarios run with OpenSearch's answers
and error shapes, credentials sent as HTTP basic auth; what only this backend does
(describing a collection reads the mapping, and is retried too) is tested here on the
kit's FakeServer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from splare_connect.testing.fault_server import FakeServer, Reply, Seen, ServerFaultConformance

pytest.importorskip("splare_connect_opensearch")
import splare_connect_opensearch

OS_META = {
    "sparse_dim": 16384,
    "dense_dim": 0,
    "fingerprint": {"name": "enc", "digest": "abc123"},
    "sparse_vector_name": "splare",
    "dense_vector_name": "dense",
    "idf": False,
    "indexed_fields": [],
    "max_weight": 3.5,
}
OS_INFO = {"name": "node-1", "cluster_name": "opensearch", "version": {"distribution": "opensearch", "number": "3.3.0"}}
UNAVAILABLE = {"error": "unavailable"}


def opensearch_default(seen: Seen) -> Reply:
    if seen.path.endswith("/_mapping"):
        return Reply(body={"docs": {"mappings": {"_meta": {"splare_connect": OS_META}, "properties": {}}}})
    if seen.path.endswith("/_count"):
        return Reply(body={"count": 42, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
    return Reply(404, {"error": {"type": "not_found", "reason": seen.path}, "status": 404})


class TestOpenSearchServerFaults(ServerFaultConformance):
    record = splare_connect_opensearch.BACKEND
    probe_answer: ClassVar[Any] = 42

    def root_answer(self) -> Any:
        return OS_INFO

    def default_reply(self, seen: Seen) -> Reply:
        return opensearch_default(seen)

    def probe(self, backend: Any) -> Any:
        return backend.count(self.collection)

    def rate_limited_reply(self, retry_after: str | None = "1") -> Reply:
        error = {"type": "rejected_execution_exception", "reason": "too many requests"}
        body = {"error": {"root_cause": [error], **error}, "status": 429}
        return Reply(429, body, {"Retry-After": retry_after} if retry_after else {})

    def unavailable_reply(self, status: int = 503) -> Reply:
        return Reply(status, UNAVAILABLE)

    def client_constructors(self) -> list[tuple[Any, str]]:
        import opensearchpy

        return [(opensearchpy, "OpenSearch")]


def test_opensearch_describe_collection_is_retried_too() -> None:
    with FakeServer(OS_INFO, opensearch_default) as server:
        server.script = [Reply(503, UNAVAILABLE)]
        backend = splare_connect_opensearch.create_backend(url=server.url, backoff_seconds=0.05)
        spec = backend.describe_collection("docs")
        assert spec is not None and spec.sparse_dim == 16384 and len(server.seen) == 2
