"""Prometheus metrics of one service, in the app's own registry.

Each app gets its own :class:`prometheus_client.CollectorRegistry`: two apps in one
process (tests, an app embedding the service) never mix their counts, and the global
registry's process metrics are left to whoever owns the process.

Exposed at ``GET /metrics``:

- ``splare_requests_total{endpoint, status}``: requests answered, by endpoint and HTTP status.
- ``splare_request_seconds{endpoint}``: request latency (histogram), queueing included.
- ``splare_encode_batch_texts``: texts per encoder call (histogram): the micro-batches;
  a mean above 1 means concurrent requests were encoded together.
- ``splare_queue_texts``: texts waiting to be encoded now (gauge).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths with their own label; anything else (unknown URLs, probes) is counted as "other",
# so a scanner cannot grow the label set without bound.
ENDPOINTS = ("/encode", "/search", "/healthz", "/metrics", "/openapi.json", "/docs")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServiceMetrics:
    """The service's counters, histograms and gauge (see the module docstring)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "splare_requests",
            "HTTP requests answered, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "splare_request_seconds",
            "Request latency in seconds, queueing included.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_texts = Histogram(
            "splare_encode_batch_texts",
            "Texts per encoder call (micro-batch size).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_texts = Gauge("splare_queue_texts", "Texts waiting to be encoded.", registry=self.registry)

    def observe_batch(self, texts: int) -> None:
        self.batch_texts.observe(texts)

    def set_queue(self, texts: int) -> None:
        self.queue_texts.set(texts)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP response by endpoint and status and times it (a plain ASGI middleware).

    Outermost, so refusals made before routing (401, 413, 503) are counted too.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            self.metrics.requests.labels(endpoint, str(status)).inc()
