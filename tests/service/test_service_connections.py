"""Slow and idle clients against a real ``splare-connect serve`` process on 127.0.0.1.

Raw sockets play the clients a plain HTTP library would never be: one that connects and
sends nothing, one that stops in the middle of its headers, one that drips a byte at a
time, one whose body is shorter than its ``Content-Length``. Each must be closed within
the configured timeout (plus a loose margin, never a tight timing), and a hundred of them
held open must neither lock out a normal client nor go past the connection cap.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from splare_connect.testing.service import RunningServer, start_server, stop_server

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 1.5
MARGIN_S = 2.0  # the loose bound: closed within timeout + MARGIN_S
HALF_HEADERS = b"POST /encode HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(scope="module")
def strict_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Encode only, short read timeouts (set through the environment, as a deployment would), slow answers.

    Batching waits 1 s for company: every /encode is answered after the header deadline.
    """
    log = tmp_path_factory.mktemp("strict-server") / "server.log"
    env = {
        "SPLARE_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
        "SPLARE_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
        "SPLARE_MAX_WAIT_MS": "1000",
    }
    running = start_server(tiny_model_dir, log, "--no-search", api_key=None, env=env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def capped_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Encode only, timeouts long enough to hold a hundred half-open connections, at most 110 connections.

    Set with the command's options (the strict server uses the environment variables).
    """
    log = tmp_path_factory.mktemp("capped-server") / "server.log"
    options = ("--no-search", "--header-timeout", "60", "--body-timeout", "60", "--max-connections", "110")
    running = start_server(tiny_model_dir, log, *options, api_key=None)
    yield running
    stop_server(running)


def connect(server: RunningServer, first_bytes: bytes = b"") -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def wait_closed(sock: socket.socket, limit_s: float, started: float | None = None) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock`` (read everything up to EOF or a reset), and what it sent.

    Time counts from ``started`` (a ``time.monotonic()`` value; default now). Raises
    AssertionError when the connection is still open ``limit_s`` after that.
    """
    started = time.monotonic() if started is None else started
    received = b""
    while True:
        left = limit_s - (time.monotonic() - started)
        if left <= 0:
            raise AssertionError(f"still open after {limit_s:.1f} s; received {received[:200]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started, received
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a ``Content-Length`` (headers and body), read within 10 s."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return received


def is_open(sock: socket.socket) -> bool:
    """Whether the server has neither sent anything on ``sock`` nor closed it."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def encode_once(server: RunningServer) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.post(server.url + "/encode", json={"texts": ["list files"], "role": "query"}, timeout=30)
    return response.status_code, time.monotonic() - started


def test_idle_and_half_sent_headers_are_closed_within_the_header_timeout(strict_server: RunningServer) -> None:
    started = time.monotonic()
    silent = connect(strict_server)
    half = connect(strict_server, HALF_HEADERS)
    try:
        silent_s, silent_answer = wait_closed(silent, HEADER_TIMEOUT_S + MARGIN_S, started)
        half_s, half_answer = wait_closed(half, HEADER_TIMEOUT_S + MARGIN_S, started)
    finally:
        silent.close()
        half.close()
    print(f"\nsends nothing: closed after {silent_s:.2f} s; half headers: closed after {half_s:.2f} s")
    assert min(silent_s, half_s) >= HEADER_TIMEOUT_S - 0.2  # the timeout closed them, not an error at once
    for answer in (silent_answer, half_answer):
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"--header-timeout" in answer


def test_a_client_dripping_its_headers_cannot_extend_the_deadline(strict_server: RunningServer) -> None:
    sock = connect(strict_server)
    started = time.monotonic()
    closed = False
    try:
        for byte in HALF_HEADERS:  # one byte every 0.1 s: 3.3 s in all, if the server let it
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if not is_open(sock):
                closed = True
                break
            time.sleep(0.1)
        if not closed:
            wait_closed(sock, HEADER_TIMEOUT_S + MARGIN_S)
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    print(f"\ndripping client: closed after {elapsed:.2f} s")
    assert elapsed < HEADER_TIMEOUT_S + MARGIN_S


def test_a_body_shorter_than_its_content_length_is_closed_within_the_body_timeout(
    strict_server: RunningServer,
) -> None:
    head = b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    sock = connect(strict_server, head + b'{"texts": ["')
    try:
        seconds, answer = wait_closed(sock, BODY_TIMEOUT_S + MARGIN_S)
    finally:
        sock.close()
    print(f"\nshort body: closed after {seconds:.2f} s")
    assert seconds >= BODY_TIMEOUT_S - 0.2
    assert answer.startswith(b"HTTP/1.1 408 ") and b"--body-timeout" in answer, answer


def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(
    strict_server: RunningServer,
) -> None:
    sock = connect(strict_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(HALF_HEADERS)
        seconds, answer = wait_closed(sock, HEADER_TIMEOUT_S + MARGIN_S)
    finally:
        sock.close()
    print(f"\nsecond request half sent: closed after {seconds:.2f} s")
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert encode_once(strict_server)[0] == 200


def test_a_slow_answer_is_not_cut_by_a_read_deadline(strict_server: RunningServer) -> None:
    """The deadlines cover reading the request only: an answer that takes longer than both still arrives.

    The strict server batches for up to 1 s (longer than its header timeout), so each
    /encode is answered after the header deadline would have passed. A request asking to
    upgrade (served as plain HTTP) ends in h11's MIGHT_SWITCH_PROTOCOL state, not DONE.
    """
    body = b'{"texts": ["list files"]}'
    head = b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    for extra in (b"", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"):
        started = time.monotonic()
        sock = connect(strict_server, head + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        try:
            answer = read_response(sock)
        finally:
            sock.close()
        seconds = time.monotonic() - started
        print(f"\n/encode answered after {seconds:.2f} s ({'upgrade asked' if extra else 'plain'})")
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert seconds > HEADER_TIMEOUT_S  # the answer did come after the header deadline


def test_a_normal_client_is_answered_while_a_hundred_half_open_connections_are_held(
    capped_server: RunningServer,
) -> None:
    assert encode_once(capped_server)[0] == 200  # warm
    held = [connect(capped_server, HALF_HEADERS) for _ in range(100)]
    try:
        status, seconds = encode_once(capped_server)
        print(f"\n/encode with 100 half-open connections held: {status} in {seconds:.3f} s")
        assert status == 200
        assert all(is_open(sock) for sock in held)  # they were really held during the request
    finally:
        for sock in held:
            sock.close()


def test_connections_beyond_the_cap_are_refused_at_once(capped_server: RunningServer) -> None:
    held: list[socket.socket] = []
    try:
        held = [connect(capped_server, HALF_HEADERS) for _ in range(110)]
        time.sleep(0.5)  # let the server accept them all
        assert all(is_open(sock) for sock in held), "a connection within the cap was refused"
        extra = connect(capped_server)
        try:
            seconds, answer = wait_closed(extra, 5.0)
        finally:
            extra.close()
        print(f"\nconnection 111 of a cap of 110: refused after {seconds:.3f} s")
        assert seconds < 2.0
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer, answer
        assert b"retry-after: 1" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    # The slots come back once those connections are gone.
    deadline = time.monotonic() + 10
    status = 0
    while time.monotonic() < deadline and status != 200:
        try:
            status = encode_once(capped_server)[0]
        except httpx.HTTPError:
            status = 0
        if status != 200:
            time.sleep(0.2)
    assert status == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header_timeout_s", 0),
        ("body_timeout_s", float("nan")),
        ("header_timeout_s", float("inf")),
        ("max_connections", 0),
    ],
)
def test_settings_refuse_timeouts_and_caps_that_would_disable_the_guards(field: str, value: float) -> None:
    from splare_connect.errors import ConfigError
    from splare_connect.service.settings import ServiceSettings

    with pytest.raises(ConfigError, match=field):
        ServiceSettings(**{field: value})  # type: ignore[arg-type]


def test_the_cap_is_lowered_to_fit_the_open_file_limit() -> None:
    """Under ``ulimit -n 128`` a cap of 512 would let connections exhaust the descriptors; it becomes 64."""
    code = (
        "import resource; hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard));"
        "from splare_connect.cli.serve import connection_cap; print(connection_cap(512), connection_cap(50))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["64", "50"]
    assert "--max-connections 512 lowered to 64 to fit the open-file limit of 128" in " ".join(result.stderr.split())
