"""One HTTP exchange with a service, bounded in time, in size and in where it goes.

``urllib`` alone is unsafe for a client that carries an API key: it follows redirects
and keeps the ``Authorization`` header on the way (another origin reads the key), its
timeout is per socket read (a server sending a byte every few seconds holds a call
forever), and ``read()`` takes a body of any size into memory. :func:`exchange` keeps
urllib (proxies, TLS) but:

- follows no redirect: a 3xx comes back as an answer like any other, for the caller to refuse;
- gives the whole call one deadline: a timer shuts the connection's socket when it
  passes, whatever phase the call is in (connect, TLS, headers, body), and every body
  read waits at most the time left;
- reads the body in chunks up to ``max_bytes``: a larger ``Content-Length`` is refused
  before any of the body is read, and a body without one stops being read past the cap.

Standard library only, like the client that uses it.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

__all__ = ["Answer", "ExchangeError", "exchange"]

_CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Answer:
    """What the service answered: any status, 3xx included, and the whole body."""

    status: int
    reason: str
    headers: Message
    body: bytes


class ExchangeError(Exception):
    """The exchange failed; ``kind`` says how, for the caller to word it.

    ``kind`` is ``"late"`` (the deadline passed), ``"too_big"`` (over ``max_bytes``;
    ``declared`` is the announced length, or None when the body just kept coming),
    ``"short"`` (the body ended before its ``Content-Length``) or ``"unreachable"``
    (``reason`` says why).
    """

    def __init__(self, kind: str, reason: str = "", declared: int | None = None, received: int = 0) -> None:
        self.kind, self.reason, self.declared, self.received = kind, reason, declared, received
        super().__init__(f"{kind}: {reason}")


class _Watch:
    """The sockets of one call, and the timer that shuts them when its deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Seconds to the deadline; raises ``late`` once it has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise ExchangeError("late")
        return left

    def add(self, sock: socket.socket) -> None:
        """Watch a new connection's socket (a duplicate, so TLS wrapping it later is watched too)."""
        try:
            twin = sock.dup()
        except OSError:
            twin = sock
        with self._lock:
            self._sockets.append(twin)
            if self.expired:
                _shut(twin)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    """Wake any read blocked on ``sock``'s connection (a shutdown reaches every descriptor of it)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[http.client.HTTPConnection], watch: _Watch) -> type[http.client.HTTPConnection]:
    """``base`` whose sockets ``watch`` sees the moment they connect."""

    class Watched(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            create: Callable[..., socket.socket] = self._create_connection  # type: ignore[has-type]  # typeshed leaves it untyped

            def create_and_watch(*a: Any, **k: Any) -> socket.socket:
                sock = create(*a, **k)
                watch.add(sock)
                return sock

            self._create_connection = create_and_watch

    return Watched


class _Watching:
    """A urllib handler whose connections ``watch`` sees (mixed into the HTTP and HTTPS handlers)."""

    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_watched(http_class, self.watch), req, **kwargs)  # type: ignore[misc]


class _WatchedHTTP(_Watching, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_Watching, urllib.request.HTTPSHandler):
    pass


class _EveryStatusIsAnAnswer(urllib.request.HTTPErrorProcessor):
    """Hands back 3xx, 4xx and 5xx responses as they are, so urllib never follows a redirect."""

    def http_response(self, request: Any, response: Any) -> Any:
        return response

    https_response = http_response


def exchange(request: urllib.request.Request, *, timeout: float, max_bytes: int, use_env_proxy: bool = True) -> Answer:
    """Send ``request`` and read the answer, within ``timeout`` seconds and ``max_bytes`` bytes.

    Args:
        request: The request (method, URL, headers, body).
        timeout: Seconds for the whole call: connect, send, headers and body.
        max_bytes: The largest body accepted.
        use_env_proxy: Use ``$http_proxy`` and friends (no: connect directly).

    Raises:
        ExchangeError: No complete answer within the bounds; ``kind`` says why.
    """
    watch = _Watch(timeout)
    try:
        opener = urllib.request.build_opener(
            *([] if use_env_proxy else [urllib.request.ProxyHandler({})]),
            _EveryStatusIsAnAnswer(),
            _WatchedHTTP(watch),
            _WatchedHTTPS(watch),
        )
        try:
            with opener.open(request, timeout=watch.left()) as response:
                body = _read_body(response, watch, max_bytes)
                return Answer(response.status, str(response.reason or ""), response.headers, body)
        except ExchangeError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            if watch.expired or time.monotonic() >= watch.deadline:
                raise ExchangeError("late") from None
            if isinstance(error, http.client.IncompleteRead):  # a chunked body cut short
                raise ExchangeError("short", received=len(error.partial)) from None
            reason = str(getattr(error, "reason", error)) or type(error).__name__
            raise ExchangeError("unreachable", reason) from None
    finally:
        watch.close()


def _read_body(response: http.client.HTTPResponse, watch: _Watch, max_bytes: int) -> bytes:
    """The body, one socket read at a time, each waiting at most until the deadline."""
    length = response.headers.get("Content-Length", "").strip()
    declared = int(length) if _DIGITS.fullmatch(length) else None
    if declared is not None and declared > max_bytes:
        raise ExchangeError("too_big", declared=declared)
    parts: list[bytes] = []
    size = 0
    while True:
        _set_timeout(response, watch.left())
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise ExchangeError("too_big")
        parts.append(chunk)
    complete = declared is not None and size == declared
    if watch.expired and not complete:  # the timer's shutdown looks like the end of the body
        raise ExchangeError("late")
    if declared is not None and size < declared:
        raise ExchangeError("short", declared=declared, received=size)
    return b"".join(parts)


def _set_timeout(response: http.client.HTTPResponse, seconds: float) -> None:
    """Let the next read of ``response`` wait ``seconds`` at most."""
    raw = getattr(response.fp, "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(seconds)
