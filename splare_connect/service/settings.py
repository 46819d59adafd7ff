"""What a running service allows and how it batches: one frozen, validated settings object.

The defaults suit one CPU server for interactive search and moderate ingest; every value
can be set from ``splare-connect serve`` options. The API key comes from the
environment only (``SPLARE_API_KEY``), never from an argument, so it stays out of shell
history and process listings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from splare_connect.errors import ConfigError

API_KEY_ENV = "SPLARE_API_KEY"


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and batching knobs of one service.

    Attributes:
        max_texts: Texts one ``/encode`` request may carry.
        max_text_chars: Characters per text (longer texts are refused, not cut: the
            encoder would truncate them to its token window anyway, and a client that
            sends whole books should chunk them first).
        max_query_chars: Characters of a ``/search`` query.
        max_k: Largest ``k`` a search may ask for.
        max_batch_texts: Texts encoded together in one micro-batch at most.
        max_wait_ms: How long the first waiting request waits for others to join its
            batch. A few milliseconds: short next to an encode, long enough for
            concurrent clients to meet.
        max_queue_texts: Texts allowed to wait; beyond it new requests get 503 with
            ``Retry-After`` at once instead of an unbounded wait. A request is always
            accepted when nothing waits, so one larger than the bound still runs.
        encode_batch_size: Texts per forward pass inside one encoder call.
        search_threads: Threads that query the database. 1 (the default) suits the
            embedded Qdrant engine, which is not shared between threads; a database
            server (Qdrant, OpenSearch) can take more.
        retry_after_s: Seconds a refused client is told to wait.
        default_collection: The collection ``/search`` uses when a request names none.
        header_timeout_s: Seconds a connection may take to send a request's headers
            (from connecting, or from the first byte of a kept-alive connection's next
            request); then it is closed (408). Stops clients that connect and send
            nothing, or drip bytes, from holding sockets forever.
        body_timeout_s: Seconds a request's body may take after its headers, in total
            (a dripping client cannot extend it); then the connection is closed.
        keep_alive_s: Seconds an idle kept-alive connection stays open between requests.
        max_connections: Open connections at most; more are refused at once with 503,
            before any byte is read. Keep it below the process's open-file limit.
        api_key: When set, every endpoint but ``/healthz`` and the API schema needs it.
            Kept out of ``repr``.
    """

    max_texts: int = 256
    max_text_chars: int = 20_000
    max_query_chars: int = 2_000
    max_k: int = 1000
    max_batch_texts: int = 64
    max_wait_ms: float = 5.0
    max_queue_texts: int = 1024
    encode_batch_size: int = 32
    search_threads: int = 1
    retry_after_s: int = 1
    default_collection: str = "splare"
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: int = 5
    max_connections: int = 512
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "max_texts",
            "max_text_chars",
            "max_query_chars",
            "max_k",
            "max_batch_texts",
            "max_queue_texts",
            "encode_batch_size",
            "search_threads",
            "retry_after_s",
            "max_connections",
            "keep_alive_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"service setting {name} must be a positive integer, got {value!r}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ConfigError(f"service setting max_wait_ms must be between 0 and 1000, got {self.max_wait_ms!r}")
        for name in ("header_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigError(f"service setting {name} must be seconds above 0 and at most 3600, got {value!r}")
        if self.max_k > 1000:
            raise ConfigError(f"service setting max_k is at most 1000 (the API's own bound), got {self.max_k}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(f"{API_KEY_ENV} is set but blank: unset it, or set it to the key clients must send")

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: room for ``max_texts`` texts of ``max_text_chars``
        characters at 4 UTF-8 bytes each, plus JSON punctuation."""
        return 4 * self.max_texts * self.max_text_chars + 64 * 1024

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceSettings:
        """Settings with the API key from ``$SPLARE_API_KEY`` (unset or empty: no key)."""
        key = os.environ.get(API_KEY_ENV) or None
        return cls(**{"api_key": key, **overrides})
