"""A misbehaving HTTP server, and the fault scenarios every server backend must pass.

:class:`FakeServer` (stdlib, bound to 127.0.0.1 only, a free port) plays a backend's
server and misbehaves on cue: 429 with ``Retry-After``, 5xx, a reply that never comes,
a body that isn't JSON, an error body that echoes the request headers, credentials
included. Every wait in it is bounded (a "hang" lasts at most :data:`HANG_SECONDS` and
ends at once when the server closes), and its serving loop stops when it is closed.

:class:`ServerFaultConformance` holds the scenarios. The backend is built by its real
factory, so the backend's own client library does the HTTP, and the checks are on what
a user sees: the result, the time taken, the error message and the log. An adapter's
tests subclass it and give what is its own: the shape of its server's answers and
errors, a cheap read and its answer, and how its credentials travel::

    from typing import Any, ClassVar
    from splare_connect.testing.fault_server import Reply, Seen, ServerFaultConformance
    from splare_connect_mydb import BACKEND

    class TestMyDbServerFaults(ServerFaultConformance):
        record = BACKEND
        probe_answer: ClassVar[Any] = 42
        secret_header: ClassVar[str | None] = "x-api-key"

        def root_answer(self) -> Any:
            return {"version": "2.0.0"}

        def default_reply(self, seen: Seen) -> Reply:
            if seen.path.endswith("/count"):
                return Reply(body={"count": 42})
            return Reply(404, {"error": "not found"})

        def probe(self, backend: Any) -> Any:
            return backend.count("docs")

Backend-specific scenarios (an endpoint only one engine has) belong in the adapter's
own tests, as plain tests on a :class:`FakeServer`.
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
from types import TracebackType
from typing import Any, ClassVar

import pytest

from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE
from splare_connect.errors import BackendError, ConfigError

__all__ = [
    "BAD_URLS",
    "HANG_SECONDS",
    "Credentials",
    "FakeServer",
    "Reply",
    "Seen",
    "ServerFaultConformance",
    "assert_no_secret",
    "echo_json",
    "echo_text",
]

HANG_SECONDS = 3.0  # how long a "hanging" reply waits at most (it ends early when the server closes)
READ_TIMEOUT = 10.0  # a connection that sends nothing is dropped after this many seconds
CLOSE_TIMEOUT = 5.0  # how long closing waits for the serving thread


# ------------------------------------------------------------------ the fake server
@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        status: The HTTP status.
        body: JSON-able data, a string sent as it is, or a function of the request
            headers (as sent, names in their original case) returning either: to echo them.
        headers: Extra response headers (``Retry-After``...).
        content_type: The ``Content-Type`` header.
        delay: Seconds to wait before answering (at most :data:`HANG_SECONDS`).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Seen:
    """A request the server received: when (``time.monotonic()``), its method, its path without
    the query, and its headers (names in lower case)."""

    at: float
    method: str
    path: str
    headers: dict[str, str]


class FakeServer:
    """An HTTP server on 127.0.0.1 that answers ``GET /`` with ``root``, other requests from
    ``script`` (in order), then ``forever`` if set, else ``default(seen)``.

    ``GET /`` (version checks, cluster info) is never scripted nor recorded in ``seen``.
    Use it as a context manager, or call :meth:`close`.
    """

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
        if method == "GET" and path == "/":
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
        """Wake "hanging" replies, stop serving and free the port."""
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=CLOSE_TIMEOUT)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    timeout = READ_TIMEOUT  # no read on the connection waits longer

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

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests look at ``FakeServer.seen``."""


# ---------------------------------------------------------------------- secrets
def _credential_first(headers: dict[str, str], secret_header: str) -> list[tuple[str, str]]:
    return sorted(headers.items(), key=lambda kv: kv[0].lower() != secret_header.lower())


def echo_json(secret_header: str) -> Callable[[dict[str, str]], dict[str, Any]]:
    """A hostile JSON error body: the request's headers, the credential first (within any truncation),
    in the error shapes of several engines (``status.error``, ``error.reason``)."""

    def body(headers: dict[str, str]) -> dict[str, Any]:
        secret = {k: v for k, v in headers.items() if k.lower() == secret_header.lower()}
        text = "; ".join(f"{k}: {v}" for k, v in secret.items())
        return {
            "status": {"error": f"Unauthorized, request headers were {text}"},
            "error": {"type": "security_exception", "reason": f"bad credentials in {text}"},
            "echo": dict(_credential_first(headers, secret_header)),
        }

    return body


def echo_text(secret_header: str) -> Callable[[dict[str, str]], str]:
    """A hostile plain-text error body: the request's headers, one a line, the credential first."""

    def body(headers: dict[str, str]) -> str:
        return "\n".join(f"{k}: {v}" for k, v in _credential_first(headers, secret_header))

    return body


def assert_no_secret(texts: list[str], secrets: tuple[str, ...] | list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked in: {text}"


@dataclass(frozen=True)
class Credentials:
    """How a backend's credentials travel, for the echo scenarios.

    Attributes:
        env: The environment variables to set (name: value).
        header: The request header that carries them (lower case).
        sent: The header's value the server must receive.
        secrets: Texts that must never appear in an error message or log.
        masked: What the echoed header looks like once redacted (``"Basic ***"``).
    """

    env: dict[str, str]
    header: str
    sent: str
    secrets: tuple[str, ...]
    masked: str


KEY = "key-Very-Secret-0123456789"
USER, PASSWORD = "admin", "pw-Very-Secret-987"

# (URL, a phrase the one-line error must hold): malformed server URLs, several with a password.
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
BAD_TIMEOUTS = [{"timeout": 0}, {"timeout": -1}, {"retry_deadline": 0}, {"timeout": "soon"}]


# ------------------------------------------------------------------ the scenarios
class ServerFaultConformance:
    """Fault scenarios for a backend's server path. Subclasses set ``record`` and the hooks below.

    Hooks a subclass must give (each raises NotImplementedError otherwise):
        :meth:`root_answer`, :meth:`default_reply`, :meth:`probe` with ``probe_answer``.

    Hooks with a default a subclass may override:
        :meth:`connect`, :meth:`rate_limited_reply`, :meth:`unavailable_reply`,
        :meth:`credentials` (with ``secret_header``), :meth:`client_constructors`.

    Attributes:
        record: The backend's :class:`BackendDescriptor`: its factory, ``url_env``,
            ``secret_env`` and ``basic_auth_env`` are read. A record whose
            ``capabilities.transport`` is not ``"http"`` skips the scenarios that need
            the server.
        probe_answer: What :meth:`probe` returns when :meth:`default_reply` answers.
        collection: The collection the scenarios read.
        garbage_content_types: The ``Content-Type`` headers a garbage body is sent with,
            one scenario each.
        echo_cases: ``(status, "json" | "text")``: the hostile error bodies echoing the
            request's credentials, one scenario each.
        secret_header: The header a key from ``record.secret_env[0]`` is sent in, for
            a backend without ``basic_auth_env`` (None: the echo scenarios are skipped).
    """

    record: ClassVar[BackendDescriptor]
    probe_answer: ClassVar[Any]
    collection: ClassVar[str] = "docs"
    garbage_content_types: ClassVar[tuple[str, ...]] = ("application/json", "text/html", "text/plain")
    echo_cases: ClassVar[tuple[tuple[int, str], ...]] = ((400, "json"), (401, "json"), (500, "json"), (500, "text"))
    secret_header: ClassVar[str | None] = None

    # ------------------------------------------------------------------ hooks
    def root_answer(self) -> Any:
        """The JSON body the server answers ``GET /`` with (version check, cluster info)."""
        raise NotImplementedError("a server-fault subclass gives root_answer(): its server's answer to GET /")

    def default_reply(self, seen: Seen) -> Reply:
        """The answer to a request nothing scripted: what makes :meth:`probe` return ``probe_answer``."""
        raise NotImplementedError("a server-fault subclass gives default_reply(seen): its server's ordinary answers")

    def probe(self, backend: Any) -> Any:
        """One cheap read through the backend (a count, the collection list), retried like any read."""
        raise NotImplementedError("a server-fault subclass gives probe(backend): a cheap read")

    def connect(self, url: str | None, **options: Any) -> Any:
        """The backend built by its real factory; ``url=None``: it reads ``record.url_env``."""
        return self.record.create(**({} if url is None else {"url": url}), **options)

    def rate_limited_reply(self, retry_after: str | None = "1") -> Reply:
        """The server's 429 answer, with ``Retry-After: retry_after`` unless None."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        return Reply(429, {"error": "too many requests"}, headers)

    def unavailable_reply(self, status: int = 503) -> Reply:
        """The server's answer when its database can't answer (502, 503)."""
        return Reply(status, {"error": "unavailable"})

    def credentials(self) -> Credentials:
        """How credentials are set and sent: HTTP basic auth from ``record.basic_auth_env``, else
        a key from ``record.secret_env[0]`` in the ``secret_header`` header."""
        if self.record.basic_auth_env:
            user_env, password_env = self.record.basic_auth_env
            basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            env = {user_env: USER, password_env: PASSWORD}
            return Credentials(env, "authorization", f"Basic {basic}", (PASSWORD, basic), "Basic ***")
        if self.record.secret_env and self.secret_header:
            header = self.secret_header.lower()
            return Credentials({self.record.secret_env[0]: KEY}, header, KEY, (KEY,), f"{header}: ***")
        pytest.skip(f"{self.record.name} names no basic_auth_env, and the subclass no secret_header")

    def client_constructors(self) -> list[tuple[Any, str]]:
        """``(owner, attribute)`` of every client class the factory might build: a malformed URL
        must be refused before any is called (each is replaced by one that fails the test)."""
        return []

    # ------------------------------------------------------------------ fixtures and helpers
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize by the subclass's class attributes (content types, echo cases); a subclass
        that needs its own ``pytest_generate_tests`` calls this one too."""
        cls = metafunc.cls or type(self)
        if "garbage_content_type" in metafunc.fixturenames:
            metafunc.parametrize("garbage_content_type", cls.garbage_content_types)
        if "echo_case" in metafunc.fixturenames:
            ids = [f"{status}-{kind}" for status, kind in cls.echo_cases]
            metafunc.parametrize("echo_case", cls.echo_cases, ids=ids)

    @pytest.fixture
    def server(self) -> Iterator[FakeServer]:
        """A fresh fake server playing this backend; closed afterwards."""
        if self.record.capabilities.transport != "http":
            pytest.skip(f"{self.record.name} reaches its server over {self.record.capabilities.transport}, not HTTP")
        with FakeServer(self.root_answer(), self.default_reply) as fake:
            yield fake

    @pytest.fixture(scope="class")
    @classmethod
    def fault_encoder(cls, tmp_path_factory: pytest.TempPathFactory) -> Any:
        """A tiny real encoder, for the scenarios that open a retriever."""
        from splare_connect import SplareEncoder
        from splare_connect.testing.tiny_models import build_tiny_model_dir

        directory = build_tiny_model_dir(tmp_path_factory.mktemp("fault-model"))
        return SplareEncoder.from_pretrained(directory, device="cpu", runtime="torch", precision="fp32")

    def open(self, server: FakeServer, **options: Any) -> Any:
        """:meth:`connect` to ``server``, with a short first backoff unless ``options`` set one."""
        options.setdefault("backoff_seconds", 0.05)
        return self.connect(server.url, **options)

    # ------------------------------------------------------------------ retries
    def test_retry_after_is_honoured_then_the_answer_is_used(self, server: FakeServer) -> None:
        server.script = [self.rate_limited_reply(), self.rate_limited_reply()]
        backend = self.open(server, max_attempts=5, retry_deadline=20)
        assert self.probe(backend) == self.probe_answer
        assert len(server.seen) == 3
        assert all(gap >= 0.9 for gap in server.gaps()), server.gaps()  # Retry-After: 1, not the 0.05 s backoff

    def test_endless_429_gives_up_after_max_attempts(self, server: FakeServer) -> None:
        server.forever = self.rate_limited_reply()
        backend = self.open(server, max_attempts=3, retry_deadline=30)
        started = time.monotonic()
        with pytest.raises(BackendError) as caught:
            self.probe(backend)
        elapsed = time.monotonic() - started
        message = str(caught.value)
        assert "rate limited" in message and "gave up after 3 attempts" in message, message
        assert len(server.seen) == 3 and 1.8 < elapsed < 6
        assert "\n" not in message

    def test_endless_429_stops_at_the_retry_deadline(self, server: FakeServer) -> None:
        server.forever = self.rate_limited_reply()
        backend = self.open(server, max_attempts=100, retry_deadline=1.5)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"gave up after 2 attempts .*retry deadline of 1.5 s"):
            self.probe(backend)
        assert time.monotonic() - started < 3 and len(server.seen) == 2

    def test_5xx_is_retried_with_exponential_backoff(
        self, server: FakeServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        server.script = [self.unavailable_reply(503), self.unavailable_reply(502)]
        backend = self.open(server, backoff_seconds=0.2, max_attempts=4)
        with caplog.at_level(logging.WARNING):
            assert self.probe(backend) == self.probe_answer
        first, second = server.gaps()
        assert first >= 0.18 and second >= 0.38  # 0.2 s, then doubled
        retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert len(retries) == 2 and "attempt 1 of 4 failed" in retries[0]

    def test_a_database_that_cannot_answer_is_not_a_missing_collection(
        self, server: FakeServer, fault_encoder: Any
    ) -> None:
        """A search service answers 404 for a missing collection (CollectionNotFoundError) and
        502 for a failing database: a retriever on a database that keeps failing must not say
        the collection is missing."""
        from splare_connect import CollectionNotFoundError, Retriever

        server.forever = self.unavailable_reply(503)
        with pytest.raises(BackendError) as failed:
            Retriever(fault_encoder, self.open(server, max_attempts=2), self.collection)
        assert not isinstance(failed.value, CollectionNotFoundError) and "503" in str(failed.value)
        pytest.importorskip("fastapi")
        import asyncio

        from splare_connect.service.searching import Searcher

        async def open_retriever() -> None:
            searcher = Searcher(fault_encoder, self.open(server, max_attempts=2))
            await searcher.start()
            try:
                await searcher.retriever(self.collection)
            finally:
                await searcher.close()

        with pytest.raises(BackendError) as failed:
            asyncio.run(open_retriever())
        assert not isinstance(failed.value, CollectionNotFoundError)

    def test_a_hanging_server_is_cut_by_the_timeout(self, server: FakeServer) -> None:
        server.forever = Reply(body={}, delay=HANG_SECONDS)
        backend = self.open(server, timeout=0.5, max_attempts=2, retry_deadline=30)
        started = time.monotonic()
        with pytest.raises(BackendError, match="gave up after 2 attempts") as caught:
            self.probe(backend)
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, elapsed  # two 0.5 s timeouts and a short backoff, not the 3 s hang (nor 2 x 1 s)
        assert "timeout" in str(caught.value).lower()

    def test_a_garbage_body_is_a_one_line_error_and_not_retried(
        self, server: FakeServer, garbage_content_type: str
    ) -> None:
        body = "<html>\n<body>Gateway says hello</body>\n</html>"
        server.forever = Reply(200, body, content_type=garbage_content_type)
        backend = self.open(server)
        with pytest.raises(BackendError) as caught:
            self.probe(backend)
        message = str(caught.value)
        assert "\n" not in message and "failed" in message, message
        assert len(server.seen) == 1  # a malformed reply would come back the same

    # ---------------------------------------------------------------------- secrets
    def test_errors_echoing_the_credentials_are_redacted(
        self,
        server: FakeServer,
        echo_case: tuple[int, str],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        status, kind = echo_case
        credentials = self.credentials()
        for name, value in credentials.env.items():
            monkeypatch.setenv(name, value)
        if kind == "json":
            server.forever = Reply(status, echo_json(credentials.header))
        else:
            server.forever = Reply(status, echo_text(credentials.header), content_type="text/plain")
        backend = self.open(server, max_attempts=2)
        with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as caught:
            self.probe(backend)
        assert server.seen[0].headers[credentials.header] == credentials.sent  # sent, and echoed back
        message = str(caught.value)
        assert "\n" not in message, message
        records = [r.getMessage() for r in caplog.records] + [caplog.text]
        assert credentials.masked in message, message  # the echo reached the message, masked
        assert_no_secret([message, *records], credentials.secrets)

    # ------------------------------------------------------------------ malformed URLs
    @pytest.mark.parametrize(("url", "problem"), BAD_URLS)
    def test_malformed_urls_are_one_line_config_errors_without_secrets(
        self, url: str, problem: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_client(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("a client was built for a malformed URL")

        for owner, attribute in self.client_constructors():
            monkeypatch.setattr(owner, attribute, no_client)
        with pytest.raises(ConfigError) as caught:
            self.connect(url)
        message = str(caught.value)
        assert problem in message and "\n" not in message, message
        assert "Secret-42" not in message and "Secret" not in message
        if problem == "credentials" and self.record.secret_env:
            assert self.record.secret_env[0] in message  # where the credential belongs instead

    def test_a_bad_url_from_the_environment_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        env = self.record.url_env
        if env is None:
            pytest.skip(f"{self.record.name} reads no URL from the environment")
        monkeypatch.setenv(env, "http://u:env-Secret-1@host:70000")
        with pytest.raises(ConfigError, match=rf"\${env} 'http://\*\*\*@host:70000' is not valid") as caught:
            self.connect(None)
        assert "env-Secret-1" not in str(caught.value)

    @pytest.mark.parametrize("options", BAD_TIMEOUTS)
    def test_bad_timeouts_are_config_errors(self, options: dict[str, Any]) -> None:
        with pytest.raises(ConfigError, match=next(iter(options))):
            self.connect("http://127.0.0.1:9", **options)

    def test_none_means_the_default_timeout_and_deadline(self, server: FakeServer) -> None:
        backend = self.connect(server.url, timeout=None, retry_deadline=None)  # as an unset CLI flag passes them
        assert backend.retry_deadline == DEFAULT_RETRY_DEADLINE and self.probe(backend) == self.probe_answer
        backend.close()
