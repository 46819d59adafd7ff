"""Connection guards for ``serve``: request read deadlines and a cap on open connections.

uvicorn (0.55) waits forever for a request's headers and body, and its
``limit_concurrency`` answers only once headers have arrived, so clients that open
connections and send nothing, drip one byte a second, or promise a body they never send
hold a socket each until the process runs out of file descriptors and everyone is locked
out. :func:`guarded_protocol` makes a subclass of uvicorn's h11 protocol that

- closes a connection whose request headers have not all arrived ``header_timeout_s``
  after it opened (or, on a kept-alive connection, after the next request's first byte),
  with a 408 when nothing has been answered yet;
- closes a connection whose request body has not all arrived ``body_timeout_s`` after its
  headers (a total deadline, not an idle one: a client dripping bytes cannot extend it);
- refuses a connection at once (a 503 with ``Retry-After``, then close) while
  ``max_connections`` are open, counted when the connection is accepted, before any byte
  is read.

Idle time between requests of a kept-alive connection stays uvicorn's ``timeout_keep_alive``.
A reverse proxy in front is still the advice for the internet; these guards keep a
directly reachable ``serve`` usable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_RETRY_AFTER_S = 1
_REFUSAL_LOG_EVERY_S = 10.0


def _raw_response(status: str, detail: str, extra_headers: str = "") -> bytes:
    """A complete HTTP/1.1 error response with a ``{"detail": ...}`` body and ``Connection: close``.

    Written straight to the socket: at these points h11 has no request to answer (the
    headers never arrived, or the connection is refused before reading anything).
    """
    body = json.dumps({"detail": detail}).encode("ascii")
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra_headers}connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and a connection cap (see the module docstring).

    The limits are class attributes, set by :func:`guarded_protocol`: uvicorn builds one
    protocol object per connection from the class it is given.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 512
    _last_refusal_log: float = float("-inf")
    _refused_since_log: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._refused = False

    # ---------------------------------------------------------------- connections
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection beyond the cap; otherwise start the header deadline."""
        if len(self.connections) >= self.max_connections:
            self._refused = True
            self.transport = transport
            self._log_refusal()
            detail = "too many open connections: retry later"
            transport.write(_raw_response("503 Service Unavailable", detail, f"retry-after: {_RETRY_AFTER_S}\r\n"))
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline; a refused connection was never counted, so nothing else to undo."""
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Start the header deadline at the first byte of a kept-alive connection's next request."""
        if self._refused:
            return
        if self._deadline is None and not self._reading_body and (self.cycle is None or self.cycle.response_complete):
            self._arm(self.header_timeout_s, "headers")
        super().data_received(data)

    def handle_events(self) -> None:
        """uvicorn's event loop over h11, with the deadlines moved as the request arrives.

        The headers arrived when h11's client state left ``IDLE``; the body when it reached
        ``DONE`` (``MIGHT_SWITCH_PROTOCOL`` for a request asking to upgrade, which is served as
        plain HTTP). Checked after uvicorn handled the events so that its own state is set.
        """
        super().handle_events()
        their_state = self.conn.their_state
        if not self._reading_body and their_state is h11.SEND_BODY:
            self._reading_body = True
            self._arm(self.body_timeout_s, "body")
        elif their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.MIGHT_SWITCH_PROTOCOL):
            self._reading_body = False
            self._disarm()
        elif their_state is h11.IDLE and self._reading_body:
            # The body of a request answered early ended and the next cycle began.
            self._reading_body = False
            if self.conn.trailing_data[0]:
                self._arm(self.header_timeout_s, "headers")
            else:
                self._disarm()

    def on_response_complete(self) -> None:
        """After a response the next request (pipelined or not) starts with no deadline armed."""
        if not self._reading_body:
            self._disarm()
        super().on_response_complete()

    def _log_refusal(self) -> None:
        """One warning per ``_REFUSAL_LOG_EVERY_S`` at most: a flood of connections must not flood the log too."""
        cls = type(self)
        cls._refused_since_log += 1
        now = self.loop.time()
        if now - cls._last_refusal_log >= _REFUSAL_LOG_EVERY_S:
            self.logger.warning(
                "refused %d connection(s): %d connections are open (--max-connections)",
                cls._refused_since_log,
                len(self.connections),
            )
            cls._last_refusal_log, cls._refused_since_log = now, 0

    # ---------------------------------------------------------------- deadlines
    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, part, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, part: str, seconds: float) -> None:
        """Close a connection whose request did not arrive in time (408 if nothing was answered)."""
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        self.logger.warning("closed a connection: request %s not received within %g s", part, seconds)
        # A request whose headers are late has no cycle yet (self.cycle is the previous request's).
        answered = part == "body" and self.cycle is not None and self.cycle.response_started
        if not answered:
            option = "--header-timeout" if part == "headers" else "--body-timeout"
            detail = f"request {part} not received within {seconds:g} s ({option}): send the whole request at once"
            self.transport.write(_raw_response("408 Request Timeout", detail))
        if part == "body" and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's receive() now returns http.disconnect; its send() is a no-op
            self.cycle.message_event.set()
        self.transport.close()


def guarded_protocol(*, header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.run(..., http=...)``."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "max_connections": max_connections},
    )
