"""Request size limits: refused at once with a 4xx and a one-line reason.

A service that encodes whatever it is sent can be made to spend minutes (or its memory)
on one request. The limits come from :class:`~splare_connect.service.settings.ServiceSettings`:

- the body, in bytes, before it is parsed (:class:`BodyLimitMiddleware`, 413);
- texts per ``/encode`` request and characters per text (413);
- characters of a ``/search`` query (413) and its ``k`` (422);
- texts must be valid Unicode (422): a lone surrogate (JSON allows ``"\\ud800"``) would
  fail inside the tokenizer, after the text had been batched with other clients' texts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException

from splare_connect.errors import SplareError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LimitError(SplareError, ValueError):
    """A request exceeds a limit; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 413) -> None:
        self.status = status
        super().__init__(message)


def check_texts(texts: Sequence[str], *, max_texts: int, max_chars: int) -> None:
    """Refuse too many texts, a text too long, or one that is not valid Unicode.

    Raises:
        LimitError: 413 for sizes, 422 for a text that cannot be encoded as UTF-8.
    """
    if len(texts) > max_texts:
        raise LimitError(f"too many texts: {len(texts)} in one request, at most {max_texts}; send several requests")
    for position, text in enumerate(texts):
        if len(text) > max_chars:
            raise LimitError(
                f"texts[{position}] has {len(text)} characters, at most {max_chars}; split long documents into chunks"
            )
        check_unicode(text, f"texts[{position}]")


def check_query(query: str, k: int, *, max_chars: int, max_k: int) -> None:
    """Refuse a query too long or a ``k`` above the server's maximum.

    Raises:
        LimitError: 413 for the query's length, 422 for ``k``.
    """
    if len(query) > max_chars:
        raise LimitError(f"the query has {len(query)} characters, at most {max_chars}")
    if k > max_k:
        raise LimitError(f"k={k} is above this server's maximum of {max_k}", status=422)
    check_unicode(query, "the query")


def check_unicode(text: str, what: str) -> None:
    """Refuse text holding lone surrogates (not Unicode, so no tokenizer can read it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise LimitError(f"{what} is not valid Unicode (a lone surrogate at {error.start})", status=422) from None


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 before they are read whole.

    Checks ``Content-Length`` first, then counts the bytes actually received (a chunked
    request has no length), so a client cannot make the server buffer more than the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0
        answered = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not answered:
                await _too_large(send, self.max_bytes)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` to stop reading a body that went over the limit.

    An HTTP exception, so FastAPI, which turns other errors met while reading a body
    into a 400, passes it on to the app's handler as a 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body too large: at most {max_bytes} bytes")


async def _too_large(send: Send, max_bytes: int) -> None:
    body = b'{"detail":"request body too large: at most %d bytes"}' % max_bytes
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
