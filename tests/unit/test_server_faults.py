"""Fault injection on the server paths, through the real clients.

A small HTTP server of our own (stdlib, 127.0.0.1, a free port) plays Qdrant or
OpenSearch and misbehaves on cue: 429 with ``Retry-After``, 5xx, a reply that never
comes, a body that isn't JSON, an error body that echoes the request headers
(credentials included). The backends are built by their real factories, so
qdrant-client (httpx) and opensearch-py (urllib3) do the HTTP, and the checks are on
what a user sees: the result, the time taken, the error message and the log.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from splare_connect import BackendError, ConfigError
from splare_connect.backends import CollectionSpec
from splare_connect.backends.retrying import parse_retry_after, retry_call
from splare_connect.backends.urls import check_url
from splare_connect.redaction import redact, safe_message

pytest.importorskip("splare_connect_qdrant")
pytest.importorskip("splare_connect_opensearch")
import splare_connect_opensearch
import splare_connect_qdrant

pytestmark = [
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]

QDRANT_KEY = "qk-Very-Secret-0123456789"
OS_USER, OS_PASSWORD = "admin", "os-Pw-Secret-987"
OS_BASIC = base64.b64encode(f"{OS_USER}:{OS_PASSWORD}".encode()).decode()
HANG_SECONDS = 3.0  # how long a "hanging" handler sleeps at most (it wakes early at teardown)


# ------------------------------------------------------------------ the fake server
@dataclass
class Reply:
    """One scripted answer; ``body`` may be a function of the request headers (to echo them)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Seen:
    at: float
    method: str
    path: str
    headers: dict[str, str]


class FakeServer:
    """Answers ``GET /`` with ``root``; other requests from ``script``, then ``forever`` or ``default``."""

    def __init__(self, root: Any, default: Callable[[Seen], Reply]) -> None:
        self.root, self.default = root, default
        self.script: list[Reply] = []
        self.forever: Reply | None = None
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reply_for(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        if method == "GET" and path == "/":  # version checks, cluster info: never scripted
            return Reply(body=self.root)
        seen = Seen(time.monotonic(), method, path, headers)
        with self._lock:
            self.seen.append(seen)
            if self.script:
                return self.script.pop(0)
        return self.forever or self.default(seen)

    def gaps(self) -> list[float]:
        """Seconds between consecutive (non-root) requests."""
        return [b.at - a.at for a, b in zip(self.seen, self.seen[1:], strict=False)]

    def close(self) -> None:
        self.stop.set()  # wakes "hanging" handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        reply = fake.reply_for(self.command, path, {k.lower(): v for k, v in self.headers.items()})
        if reply.delay:
            fake.stop.wait(min(reply.delay, HANG_SECONDS))
        body = reply.body(dict(self.headers)) if callable(reply.body) else reply.body
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout): nothing to do
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests look at ``FakeServer.seen``."""


# ------------------------------------------------------- Qdrant and OpenSearch shapes
def qdrant_ok(result: Any) -> dict[str, Any]:
    return {"result": result, "status": "ok", "time": 0.0001}


def qdrant_default(seen: Seen) -> Reply:
    if seen.path == "/collections":
        return Reply(body=qdrant_ok({"collections": [{"name": "docs"}, {"name": "abc"}]}))
    if seen.path.endswith("/points/count"):
        return Reply(body=qdrant_ok({"count": 7}))
    return Reply(404, {"status": {"error": f"Not found: {seen.path}"}, "time": 0.0})


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


def opensearch_default(seen: Seen) -> Reply:
    if seen.path.endswith("/_mapping"):
        return Reply(body={"docs": {"mappings": {"_meta": {"splare_connect": OS_META}, "properties": {}}}})
    if seen.path.endswith("/_count"):
        return Reply(body={"count": 42, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
    return Reply(404, {"error": {"type": "not_found", "reason": seen.path}, "status": 404})


def rate_limited(backend: str, retry_after: str | None = "1") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    if backend == "qdrant":
        return Reply(429, {"status": {"error": "Too many requests"}, "time": 0.0}, headers)
    error = {"type": "rejected_execution_exception", "reason": "too many requests"}
    return Reply(429, {"error": {"root_cause": [error], **error}, "status": 429}, headers)


@pytest.fixture
def servers() -> Iterator[Callable[[str], FakeServer]]:
    """Start fake servers on demand (``servers("qdrant")``); all are shut down afterwards."""
    started: list[FakeServer] = []

    def start(backend: str) -> FakeServer:
        if backend == "qdrant":
            server = FakeServer({"title": "qdrant - vector search engine", "version": "1.20.0"}, qdrant_default)
        else:
            server = FakeServer(OS_INFO, opensearch_default)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def connect(backend: str, server: FakeServer, **options: Any) -> Any:
    """A backend built by the real factory, pointed at the fake server."""
    options.setdefault("backoff_seconds", 0.05)
    factory = splare_connect_qdrant.create_backend if backend == "qdrant" else splare_connect_opensearch.create_backend
    return factory(url=server.url, **options)


def read(backend: str, client: Any) -> Any:
    """A real read: Qdrant lists collections, OpenSearch counts documents."""
    return client.list_collections() if backend == "qdrant" else client.count("docs")


EXPECTED = {"qdrant": ["abc", "docs"], "opensearch": 42}
BACKENDS = ["qdrant", "opensearch"]


# ---------------------------------------------------------------------- retries
@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_after_is_honoured_then_the_answer_is_used(backend: str, servers: Any) -> None:
    server = servers(backend)
    server.script = [rate_limited(backend), rate_limited(backend)]
    client = connect(backend, server, max_attempts=5, retry_deadline=20)
    assert read(backend, client) == EXPECTED[backend]
    assert len(server.seen) == 3
    assert all(gap >= 0.9 for gap in server.gaps()), server.gaps()  # Retry-After: 1, not the 0.05 s backoff


@pytest.mark.parametrize("backend", BACKENDS)
def test_endless_429_gives_up_after_max_attempts(backend: str, servers: Any) -> None:
    server = servers(backend)
    server.forever = rate_limited(backend)
    client = connect(backend, server, max_attempts=3, retry_deadline=30)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        read(backend, client)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "rate limited" in message and "gave up after 3 attempts" in message, message
    assert len(server.seen) == 3 and 1.8 < elapsed < 6
    assert "\n" not in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_endless_429_stops_at_the_retry_deadline(backend: str, servers: Any) -> None:
    server = servers(backend)
    server.forever = rate_limited(backend)
    client = connect(backend, server, max_attempts=100, retry_deadline=1.5)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"gave up after 2 attempts .*retry deadline of 1.5 s"):
        read(backend, client)
    assert time.monotonic() - started < 3 and len(server.seen) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_5xx_is_retried_with_exponential_backoff(backend: str, servers: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = servers(backend)
    unavailable = {"status": {"error": "Service Unavailable"}} if backend == "qdrant" else {"error": "unavailable"}
    server.script = [Reply(503, unavailable), Reply(502, unavailable)]
    client = connect(backend, server, backoff_seconds=0.2, max_attempts=4)
    with caplog.at_level(logging.WARNING):
        assert read(backend, client) == EXPECTED[backend]
    first, second = server.gaps()
    assert first >= 0.18 and second >= 0.38  # 0.2 s, then doubled
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and "attempt 1 of 4 failed" in retries[0]


def test_opensearch_describe_collection_is_retried_too(servers: Any) -> None:
    server = servers("opensearch")
    server.script = [Reply(503, {"error": "unavailable"})]
    client = connect("opensearch", server)
    spec = client.describe_collection("docs")
    assert spec is not None and spec.sparse_dim == 16384 and len(server.seen) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_that_cannot_answer_is_not_a_missing_collection(backend: str, servers: Any, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    """A search service answers 404 for a missing collection (CollectionNotFoundError, see
    tests/service) and 502 for a failing database: a retriever on a database that keeps
    failing must not say the collection is missing."""
    from splare_connect import CollectionNotFoundError, Retriever

    server = servers(backend)
    unavailable = {"status": {"error": "Service Unavailable"}} if backend == "qdrant" else {"error": "unavailable"}
    server.forever = Reply(503, unavailable)
    with pytest.raises(BackendError) as failed:
        Retriever(tiny_encoder, connect(backend, server, max_attempts=2), "docs")
    assert not isinstance(failed.value, CollectionNotFoundError) and "503" in str(failed.value)
    pytest.importorskip("fastapi")
    import asyncio

    from splare_connect.service.searching import Searcher

    async def open_retriever() -> None:
        searcher = Searcher(tiny_encoder, connect(backend, server, max_attempts=2))
        await searcher.start()
        try:
            await searcher.retriever("docs")
        finally:
            await searcher.close()

    with pytest.raises(BackendError) as failed:
        asyncio.run(open_retriever())
    assert not isinstance(failed.value, CollectionNotFoundError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hanging_server_is_cut_by_the_timeout(backend: str, servers: Any) -> None:
    server = servers(backend)
    server.forever = Reply(body={}, delay=HANG_SECONDS)
    client = connect(backend, server, timeout=0.5, max_attempts=2, retry_deadline=30)
    started = time.monotonic()
    with pytest.raises(BackendError, match="gave up after 2 attempts") as caught:
        read(backend, client)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed  # two 0.5 s timeouts and a short backoff, not the 3 s hang (nor 2 x 1 s)
    assert "timeout" in str(caught.value).lower()


@pytest.mark.parametrize(
    ("backend", "content_type"),
    [
        ("qdrant", "application/json"),
        ("qdrant", "text/html"),
        ("opensearch", "application/json"),
        ("opensearch", "text/html"),
        ("opensearch", "text/plain"),
    ],
)
def test_a_garbage_body_is_a_one_line_error_and_not_retried(backend: str, content_type: str, servers: Any) -> None:
    server = servers(backend)
    server.forever = Reply(200, "<html>\n<body>Gateway says hello</body>\n</html>", content_type=content_type)
    client = connect(backend, server)
    with pytest.raises(BackendError) as caught:
        read(backend, client)
    message = str(caught.value)
    assert "\n" not in message and "failed" in message, message
    assert len(server.seen) == 1  # a malformed reply would come back the same


# ---------------------------------------------------------------------- secrets
def echo_json(headers: dict[str, str]) -> dict[str, Any]:
    """A hostile error body: the request's headers, credentials first (within any truncation)."""
    secret = {k: v for k, v in headers.items() if k.lower() in ("api-key", "authorization")}
    rest = {k: v for k, v in headers.items() if k not in secret}
    text = "; ".join(f"{k}: {v}" for k, v in secret.items())
    return {
        "status": {"error": f"Unauthorized, request headers were {text}"},
        "error": {"type": "security_exception", "reason": f"bad credentials in {text}"},
        "echo": {**secret, **rest},
    }


def echo_text(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in sorted(headers.items(), key=lambda kv: kv[0].lower() != "authorization"))


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked in: {text}"


@pytest.mark.parametrize("status", [400, 401, 500])
def test_qdrant_errors_echoing_the_api_key_are_redacted(
    status: int, servers: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", QDRANT_KEY)
    server = servers("qdrant")
    server.forever = Reply(status, echo_json)
    client = connect("qdrant", server, max_attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as caught:
        client.list_collections()
    assert server.seen[0].headers["api-key"] == QDRANT_KEY  # the key was sent, and echoed back
    message = str(caught.value)
    assert "api-key" in message and "***" in message, message  # the echo reached the message, masked
    records = [r.getMessage() for r in caplog.records] + [caplog.text]
    assert_no_secret([message, *records], [QDRANT_KEY])


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [(400, echo_json, "application/json"), (401, echo_json, "application/json"), (500, echo_text, "text/plain")],
)
def test_opensearch_errors_echoing_basic_auth_are_redacted(
    status: int,
    body: Any,
    content_type: str,
    servers: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENSEARCH_USERNAME", OS_USER)
    monkeypatch.setenv("OPENSEARCH_PASSWORD", OS_PASSWORD)
    server = servers("opensearch")
    server.forever = Reply(status, body, content_type=content_type)
    client = connect("opensearch", server, max_attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as caught:
        client.count("docs")
    assert server.seen[0].headers["authorization"] == f"Basic {OS_BASIC}"  # sent, and echoed back
    message = str(caught.value)
    assert "\n" not in message
    records = [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("Basic ***" in text for text in [message, *records])  # the echo was there, masked
    assert_no_secret([message, *records], [OS_PASSWORD, OS_BASIC])


# ------------------------------------------------------------------ malformed URLs
BAD_URLS = [
    ("http://user:pw-Secret-42@host:99999", "credentials (user:password@)"),
    ("http://user:pw-Secret-42@host:99999", "65535"),
    ("http://host:99999", "port"),
    ("http://user:pw-Secret-42@db.example:6333", "credentials"),
    ("https://:pw-Secret-42@db.example", "credentials"),
    ("http://user:pw/Secret-42@db.example", "credentials"),  # a "/" in the password
    ("localhost:6333", "no scheme"),
    ("db.example", "no scheme"),
    ("http://db.example:port", "port"),
    ("ftp://db.example", "scheme"),
    ("http://", "no scheme"),
    ("http://db example:6333", "whitespace"),
    ("http://[::1:6333", "parsed"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
def test_malformed_urls_are_one_line_config_errors_without_secrets(
    backend: str, url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opensearchpy
    import qdrant_client

    def no_client(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a client was built for a malformed URL")

    monkeypatch.setattr(qdrant_client, "QdrantClient", no_client)
    monkeypatch.setattr(opensearchpy, "OpenSearch", no_client)
    factory = splare_connect_qdrant.create_backend if backend == "qdrant" else splare_connect_opensearch.create_backend
    with pytest.raises(ConfigError) as caught:
        factory(url=url)
    message = str(caught.value)
    assert problem in message and "\n" not in message, message
    assert "Secret-42" not in message and "Secret" not in message
    if problem == "credentials":
        assert ("QDRANT_API_KEY" if backend == "qdrant" else "OPENSEARCH_PASSWORD") in message


@pytest.mark.parametrize(("backend", "env"), [("qdrant", "QDRANT_URL"), ("opensearch", "OPENSEARCH_URL")])
def test_a_bad_url_from_the_environment_names_the_variable(
    backend: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "http://u:env-Secret-1@host:70000")
    factory = splare_connect_qdrant.create_backend if backend == "qdrant" else splare_connect_opensearch.create_backend
    with pytest.raises(ConfigError, match=rf"\${env} 'http://\*\*\*@host:70000' is not valid") as caught:
        factory()
    assert "env-Secret-1" not in str(caught.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": -1}, {"retry_deadline": 0}, {"timeout": "soon"}])
def test_bad_timeouts_are_config_errors(backend: str, options: dict[str, Any]) -> None:
    factory = splare_connect_qdrant.create_backend if backend == "qdrant" else splare_connect_opensearch.create_backend
    with pytest.raises(ConfigError, match=next(iter(options))):
        factory(url="http://127.0.0.1:9", **options)


@pytest.mark.parametrize("backend", BACKENDS)
def test_none_means_the_default_timeout_and_deadline(backend: str, servers: Any) -> None:
    server = servers(backend)
    factory = splare_connect_qdrant.create_backend if backend == "qdrant" else splare_connect_opensearch.create_backend
    client = factory(url=server.url, timeout=None, retry_deadline=None)  # as an unset CLI flag passes them
    assert client.retry_deadline == 120.0 and read(backend, client) == EXPECTED[backend]
    client.close()


def test_check_url_returns_good_urls_stripped() -> None:
    assert check_url(" https://db.example:6333/prefix ") == "https://db.example:6333/prefix"
    assert check_url("http://[::1]:9200") == "http://[::1]:9200"


# ------------------------------------------------------------------ redact() itself
@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("http://user:pw123@host:99999/x", "pw123", "http://***@host:99999/x"),
        ("see https://a:p@ss@db.example/x?mail=a@b", "p@ss", "https://***@db.example/x?mail=a@b"),
        ("http://u:p/w0rd@host:9200", "p/w0rd", "http://***@host:9200"),
        ('{"api-key": "abc123", "host": "h"}', "abc123", '{"api-key": "***", "host": "h"}'),
        ('{"x-api-key":"zz-top"}', "zz-top", '{"x-api-key":"***"}'),
        ("api-key: abc123\r\nAccept: */*", "abc123", "api-key: ***\r\nAccept: */*"),
        ("Authorization: Basic dXNlcjpwdw==", "dXNlcjpwdw==", "Authorization: Basic ***"),
        ("'authorization': 'Basic dXNlcjpwdw=='", "dXNlcjpwdw==", "'authorization': 'Basic ***'"),
        ('"Authorization": "Bearer eyJ.a.b"', "eyJ.a.b", '"Authorization": "Bearer ***"'),
        ("authorization: ApiKey a2V5LTEyMw==", "a2V5LTEyMw==", "authorization: ApiKey ***"),
        ("password=hunter22&user=bob", "hunter22", "password=***&user=bob"),
        ('{"passwd": "hunter22", "client_secret": "s3"}', "hunter22", '{"passwd": "***", "client_secret": "***"}'),
        ("access_token: t0k3n-x", "t0k3n-x", "access_token: ***"),
        ('b\'{"h": "{\\\\"api-key\\\\": \\\\"abc123\\\\"}"}\'', "abc123", "api-key"),
    ],
)
def test_redact_masks_credentials_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    masked = redact(text)
    assert secret not in masked and kept in masked, masked


def test_redact_masks_secret_environment_values_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "qk-raw-1234")
    monkeypatch.setenv("OPENSEARCH_API_KEY", "os-key-5678")
    monkeypatch.setenv("OPENSEARCH_USERNAME", "admin")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "pw with space")
    basic = base64.b64encode(b"admin:pw with space").decode()
    text = f"echo qk-raw-1234 and os-key-5678, pw%20with%20space, pw with space, {basic}"
    masked = redact(text)
    for secret in ("qk-raw-1234", "os-key-5678", "pw%20with%20space", "pw with space", basic):
        assert secret not in masked
    monkeypatch.setenv("QDRANT_API_KEY", "ab")  # too short to mask literally: "ab" stays in "tab"
    assert redact("a tab") == "a tab"


def test_redact_leaves_ordinary_text_alone() -> None:
    for text in (
        '"query_tokens": {"7": 64.0}',
        "security_exception: missing authentication credentials for REST request [/_count]",
        "collection 'docs' does not exist",
        "http://db.example:6333/collections",
        '"password": ""',
    ):
        assert redact(text) == text
    assert safe_message("a\n  b\tc") == "a b c" and len(safe_message("x" * 5000)) == 600


# ------------------------------------------------------------- the retry helper itself
def test_retry_call_gives_up_at_once_when_retry_after_passes_the_deadline() -> None:
    calls: list[float] = []

    def busy() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("429")

    started = time.monotonic()
    with pytest.raises(BackendError, match=r"gave up after 1 attempt in .*the server asked to wait 30 s"):
        retry_call(
            "upserting", busy, is_retryable=lambda e: True, retry_after=lambda e: 30.0, max_attempts=5, deadline=5
        )
    assert len(calls) == 1 and time.monotonic() - started < 1


def test_parse_retry_after() -> None:
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    assert parse_retry_after("2") == 2.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 31  # type: ignore[operator]


# ------------------------------------------------- attaching on an older server
def test_adding_a_vector_names_the_server_version_needed() -> None:
    """Qdrant before 1.18 has no PUT /collections/{name}/vectors/{vector}: a 404 on an existing collection."""
    server = FakeServer({"title": "qdrant - vector search engine", "version": "1.17.1"}, qdrant_default)
    try:
        server.script = [
            Reply(404, {"status": {"error": "Not Found"}, "time": 0.0}),
            Reply(body=qdrant_ok({"exists": True})),
        ]
        backend = connect("qdrant", server)
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
    finally:
        server.close()


def test_redaction_keeps_the_shape_of_records_whose_formatter_reads_their_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's access log formats ``record.args`` as a tuple: a redacted record must still be one."""
    import logging

    from uvicorn.logging import AccessFormatter

    from splare_connect.redaction import RedactingFilter

    monkeypatch.setenv("SPLARE_API_KEY", "k3y-that-must-not-show")
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    for path in ("/healthz", "/encode?api_key=k3y-that-must-not-show"):
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "GET", path, "1.1", 200),
            None,
        )
        RedactingFilter().filter(record)
        line = formatter.format(record)
        assert line.startswith('127.0.0.1:5000 - "GET /') and line.endswith(" 200 OK")
        assert "k3y-that-must-not-show" not in line
