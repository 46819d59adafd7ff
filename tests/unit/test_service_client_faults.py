"""The service client against servers that misbehave (issue 33: defects 5, 6, 7).

A small HTTP server of our own (stdlib, 127.0.0.1, a free port) plays ``splare-connect
serve`` and answers each request with a scripted function: a redirect to another
origin, a body trickled a byte at a time, a body over the client's size cap, bytes that
are not UTF-8, JSON nested too deep, hits of the wrong shape. Every handler is bounded
in count and time and stops when the test ends. The checks are on what a user sees:
a :class:`ServiceError` with one line, through ``ServiceClient`` and through
``splare-connect search --server``, and never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.service.client import ServiceClient, ServiceError

KEY = "client-key-0123456789abcdef"
Respond = Callable[[BaseHTTPRequestHandler], None]


class FakeService:
    """Records each request's path and headers, then answers it with ``respond``."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        fake: FakeService = self.server.fake  # type: ignore[attr-defined]
        fake.seen.append((self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client hung up, as it should
            fake.respond(self)
        self.close_connection = True

    do_GET = do_POST = _serve  # noqa: N815 (http.server's names)


@pytest.fixture
def fakes() -> Iterator[Callable[[Respond], FakeService]]:
    started: list[FakeService] = []

    def start(respond: Respond) -> FakeService:
        started.append(FakeService(respond))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


def answer(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Respond:
    """A handler sending ``body`` whole, with a matching Content-Length."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def hits(*rows: object) -> Respond:
    return answer(json.dumps(list(rows)).encode())


GOOD_HIT = {"id": "ls.1#0", "doc_id": "ls.1", "score": 1.5, "text": "list files", "metadata": {}}


def search_error(url: str, **options: object) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        ServiceClient(url, api_key=KEY, **options).search("list files", collection="man", k=3)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message and KEY not in message
    return caught.value


def cli_search(url: str, *options: str) -> str:
    """``splare-connect search --server URL``: must end in exit 1 with one line on stderr."""
    result = CliRunner().invoke(
        app, ["search", "list files", "--server", url, "-c", "man", *options], env={"SPLARE_API_KEY": KEY}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output and KEY not in result.output, result.output
    return lines[0]


# ------------------------------------------------------------------ defect 5: redirects
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_key_never_leaves(fakes, status: int) -> None:  # type: ignore[no-untyped-def]
    elsewhere = fakes(hits(GOOD_HIT))
    redirecting = fakes(answer(b"", status, {"Location": f"{elsewhere.url}/search?token=s3cret-in-url"}))
    error = search_error(redirecting.url)
    assert f"redirected to {elsewhere.url}/search" in str(error) and "does not follow redirects" in str(error)
    assert "s3cret-in-url" not in str(error)
    assert elsewhere.seen == []
    assert "redirected" in cli_search(redirecting.url)
    assert elsewhere.seen == [] and len(redirecting.seen) == 2
    assert redirecting.seen[0][1].get("Authorization") == f"Bearer {KEY}"  # the key went to the URL it was given


# ------------------------------------------------------------------ defect 6: deadline and size
def trickle(head: bytes, byte: bytes, count: int, every: float) -> Respond:
    """Sends ``head``, then ``byte`` ``count`` times, one every ``every`` seconds (stops at teardown)."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        fake: FakeService = handler.server.fake  # type: ignore[attr-defined]
        handler.wfile.write(head)
        handler.wfile.flush()
        for _ in range(count):
            if fake.stop.wait(every):
                return
            handler.wfile.write(byte)
            handler.wfile.flush()

    return respond


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",  # body trickles
        b"HTTP/1.1 200 OK\r\nX-Slow: ",  # headers trickle
    ],
    ids=["body", "headers"],
)
def test_the_timeout_bounds_the_whole_call(fakes, head: bytes) -> None:  # type: ignore[no-untyped-def]
    # Each byte comes well within the timeout, so only a deadline for the whole call ends it.
    slow = fakes(trickle(head, b" ", count=30, every=0.25))
    started = time.monotonic()
    error = search_error(slow.url, timeout=1.0)
    assert time.monotonic() - started < 1.8
    assert "did not answer within 1" in str(error)


def test_a_declared_body_over_the_cap_is_refused_unread(fakes) -> None:  # type: ignore[no-untyped-def]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n["
    big = fakes(trickle(head, b" " * 1000, count=20, every=0.1))
    started = time.monotonic()
    error = search_error(big.url, max_response_bytes=65536, timeout=5.0)
    assert time.monotonic() - started < 1.0  # refused on the header, not after waiting for the body
    assert "10,000,000 bytes" in str(error) and "65,536" in str(error)


def test_a_streamed_body_over_the_cap_stops_being_read(fakes) -> None:  # type: ignore[no-untyped-def]
    def respond(handler: BaseHTTPRequestHandler) -> None:  # chunked, no length declared: 4 MB in 16 KB chunks
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b" " * 16384
        for _ in range(256):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    error = search_error(fakes(respond).url, max_response_bytes=65536)
    assert "more than 65,536 bytes" in str(error)


def test_the_size_cap_is_checked() -> None:
    with pytest.raises(ServiceError, match="max_response_bytes"):
        ServiceClient("http://127.0.0.1:1", max_response_bytes=0)


# ------------------------------------------------------------------ defect 7: every failure a ServiceError
BAD_ANSWERS = {
    "not utf-8": answer(b'[{"id": "\xff\xfe"}]'),
    "error body not utf-8": answer(b'{"detail": "\xff\xfe"}', 400),
    "nested too deep": answer(b"[" * 100_000 + b"]" * 100_000),
    "retry-after superscript": answer(b'{"detail": "busy"}', 503, {"Retry-After": "\u00b2"}),
    "short body": trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[1, 2", b"", count=0, every=0),
    "not json": answer(b"<html>hello</html>"),
}


@pytest.mark.parametrize("name", list(BAD_ANSWERS))
def test_every_bad_answer_is_a_one_line_service_error(fakes, name: str) -> None:  # type: ignore[no-untyped-def]
    fake = fakes(BAD_ANSWERS[name])
    search_error(fake.url)
    cli_search(fake.url)


def test_retry_after_is_read_when_it_is_a_number(fakes) -> None:  # type: ignore[no-untyped-def]
    error = search_error(fakes(answer(b'{"detail": "queue full"}', 503, {"Retry-After": "2.5"})).url)
    assert error.status == 503 and error.retry_after == 2.5 and "queue full" in str(error)


BAD_HITS = {
    "a dict": ({"id": "x"}, "the service answered an object instead of a list of hits"),
    "a hit that is a string": ("ls.1", "hit 0 is a string, not an object"),
    "no id": ({k: v for k, v in GOOD_HIT.items() if k != "id"}, "hit 0 has no 'id'"),
    "score a string": ({**GOOD_HIT, "score": "high"}, "hit 0's 'score' is a string, not a number"),
    "score null": ({**GOOD_HIT, "score": None}, "hit 0's 'score' is null, not a number"),
    "score infinite": ({**GOOD_HIT, "score": 1e999}, "hit 0's 'score' is inf, not a finite number"),
    "text a number": ({**GOOD_HIT, "text": 5}, "hit 0's 'text' is a number, not a string or null"),
    "metadata a list": ({**GOOD_HIT, "metadata": [1]}, "hit 0's 'metadata' is an array, not an object"),
    "features a string": ({**GOOD_HIT, "features": "x"}, "hit 0's 'features' is a string, not an array"),
    "feature without weight": ({**GOOD_HIT, "features": [{"feature": 3}]}, "hit 0's feature 0 has no 'weight'"),
    "feature id a string": (
        {**GOOD_HIT, "features": [{"feature": "a", "weight": 1.0}]},
        "hit 0's feature 0 has 'feature' a string, not an integer >= 0",
    ),
}


@pytest.mark.parametrize("name", list(BAD_HITS))
def test_an_unexpected_hit_is_named(fakes, name: str) -> None:  # type: ignore[no-untyped-def]
    answer_, expected = BAD_HITS[name]
    body = answer_ if name == "a dict" else [answer_]
    fake = fakes(answer(json.dumps(body).encode()))
    error = search_error(fake.url)
    assert expected in str(error), str(error)
    assert expected in cli_search(fake.url)
    assert expected in cli_search(fake.url, "--json")


def test_well_formed_hits_still_print(fakes) -> None:  # type: ignore[no-untyped-def]
    hit = {**GOOD_HIT, "chunk_index": 0, "features": [{"feature": 7, "weight": 0.5, "label": None}]}
    fake = fakes(hits(hit, {**GOOD_HIT, "id": "cp.1#0", "doc_id": "cp.1", "text": None, "metadata": None}))
    result = CliRunner().invoke(app, ["search", "list files", "--server", fake.url, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["doc_id"] for r in rows] == ["ls.1", "cp.1"] and rows[0]["features"] == [[7, 0.5, None]]
    assert rows[1]["text"] is None and rows[1]["metadata"] == {}
