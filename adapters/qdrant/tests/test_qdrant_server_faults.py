"""The server-fault kit (splare_connect.testing.fault_server) against a fake Qdrant server.

qdrant-client (httpx) does the HTTP. The kit's scenarios run with Qdrant's answers and
error shapes; what only Qdrant has (adding a vector to a collection needs 1.18) is
tested here on the kit's FakeServer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from splare_connect import BackendError
from splare_connect.backends import CollectionSpec
from splare_connect.testing.fault_server import FakeServer, Reply, Seen, ServerFaultConformance

pytest.importorskip("splare_connect_qdrant")
import splare_connect_qdrant

pytestmark = [
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]

QDRANT_ROOT = {"title": "qdrant - vector search engine", "version": "1.20.0"}


def qdrant_ok(result: Any) -> dict[str, Any]:
    return {"result": result, "status": "ok", "time": 0.0001}


def qdrant_error(message: str) -> dict[str, Any]:
    return {"status": {"error": message}, "time": 0.0}


def qdrant_default(seen: Seen) -> Reply:
    if seen.path == "/collections":
        return Reply(body=qdrant_ok({"collections": [{"name": "docs"}, {"name": "abc"}]}))
    if seen.path.endswith("/points/count"):
        return Reply(body=qdrant_ok({"count": 7}))
    return Reply(404, qdrant_error(f"Not found: {seen.path}"))


class TestQdrantServerFaults(ServerFaultConformance):
    record = splare_connect_qdrant.BACKEND
    probe_answer: ClassVar[Any] = ["abc", "docs"]
    secret_header: ClassVar[str | None] = "api-key"

    def root_answer(self) -> Any:
        return QDRANT_ROOT

    def default_reply(self, seen: Seen) -> Reply:
        return qdrant_default(seen)

    def probe(self, backend: Any) -> Any:
        return backend.list_collections()

    def rate_limited_reply(self, retry_after: str | None = "1") -> Reply:
        return Reply(429, qdrant_error("Too many requests"), {"Retry-After": retry_after} if retry_after else {})

    def unavailable_reply(self, status: int = 503) -> Reply:
        return Reply(status, {"status": {"error": "Service Unavailable"}})

    def client_constructors(self) -> list[tuple[Any, str]]:
        import qdrant_client

        return [(qdrant_client, "QdrantClient")]


def test_adding_a_vector_names_the_server_version_needed() -> None:
    """Qdrant before 1.18 has no PUT /collections/{name}/vectors/{vector}: a 404 on an existing collection."""
    with FakeServer({**QDRANT_ROOT, "version": "1.17.1"}, qdrant_default) as server:
        server.script = [Reply(404, qdrant_error("Not Found")), Reply(body=qdrant_ok({"exists": True}))]
        backend = splare_connect_qdrant.create_backend(url=server.url, backoff_seconds=0.05)
        with pytest.raises(BackendError) as old:
            backend.driver.add_sparse_vector("kb", "splare", idf=False)
        assert str(old.value) == (
            "adding the sparse vector 'splare' to collection 'kb' needs a Qdrant server 1.18 or later "
            "(it answered HTTP 404 to PUT /collections/kb/vectors/splare); upgrade the server"
        )
        assert [(s.method, s.path) for s in server.seen] == [
            ("PUT", "/collections/kb/vectors/splare"),
            ("GET", "/collections/kb/exists"),
        ]
        # Attaching stores the spec first: the version is checked before anything is written.
        with pytest.raises(BackendError) as refused:
            backend.driver.store_spec(CollectionSpec("kb", 64, {"digest": "d"}, text_field="page_content"))
        assert str(refused.value).endswith(
            "needs a Qdrant server 1.18 or later, and this one is 1.17.1; upgrade the server"
        )
        assert all(s.method != "PATCH" for s in server.seen)
        server.seen.clear()
        server.script = [Reply(body=qdrant_ok({"operation_id": 1, "status": "completed"}))]
        backend.driver.add_sparse_vector("kb", "splare", idf=False)  # a 1.18+ server takes it
        assert [(s.method, s.path) for s in server.seen] == [("PUT", "/collections/kb/vectors/splare")]
        backend.close()
