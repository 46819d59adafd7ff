"""Server-path policies: which failures are retried (with backoff), and byte-capped batches."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from splare_connect import BackendError, SparseVector
from splare_connect.backends import PointRecord
from splare_connect.cli.common import open_backend

pytest.importorskip("splare_connect_qdrant")
from splare_connect_qdrant.client_driver import ClientDriver
from splare_connect_qdrant.client_retry import is_retryable
from splare_connect_qdrant.write_batches import batches_by_size, estimated_json_bytes


def test_the_cli_options_reach_the_backend() -> None:
    """``--backend-option`` pairs arrive typed: the batch cap on the backend, the retry policy on its driver."""
    backend = open_backend("qdrant", "http://127.0.0.1:9", None, 0.5, ["max_batch_points=7", "max_attempts=2"])
    assert backend.max_batch_points == 7 and backend.driver.retry.max_attempts == 2
    backend.close()


def http_error(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status_code=status, reason_phrase="x", content=b"{}", headers=httpx.Headers())


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (http_error(429), True),
        (http_error(503), True),
        (http_error(500), True),
        (http_error(400), False),
        (http_error(404), False),
        (ResponseHandlingException(httpx.ReadTimeout("timed out")), True),
        (httpx.ConnectError("refused"), True),
        (ValueError("bad input"), False),
    ],
)
def test_retry_classification(error: BaseException, retry: bool) -> None:
    assert is_retryable(error) is retry


def test_transient_failures_are_retried_then_succeed() -> None:
    driver = ClientDriver(QdrantClient(location=":memory:"), backoff_seconds=0.001, max_attempts=4)
    failures = [http_error(503), ResponseHandlingException(httpx.ReadTimeout("slow"))]
    calls = []

    def flaky() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    assert driver.call("upsert", flaky) == "ok" and len(calls) == 3


def test_permanent_failures_and_exhausted_retries_raise_backend_error() -> None:
    driver = ClientDriver(QdrantClient(location=":memory:"), backoff_seconds=0.001, max_attempts=3)
    calls = []

    def bad_request() -> None:
        calls.append(1)
        raise http_error(400)

    with pytest.raises(BackendError, match="upsert failed"):
        driver.call("upsert", bad_request)
    assert len(calls) == 1

    def always_busy() -> None:
        calls.append(1)
        raise http_error(503)

    with pytest.raises(BackendError):
        driver.call("upsert", always_busy)
    assert len(calls) == 1 + 3


def test_batches_respect_count_and_bytes() -> None:
    rng = np.random.default_rng(0)
    points = [
        PointRecord(
            f"p{i}#0",
            SparseVector.clean(rng.choice(100_000, 300, replace=False), rng.uniform(0.1, 1, 300), 100_000),
            None,
            {"text": "x" * 1000},
        )
        for i in range(100)
    ]
    size = estimated_json_bytes(points[0])
    assert 7_000 < size < 10_000  # ~7.6 KB of JSON for a 300-non-zero point, plus the text
    by_bytes = list(batches_by_size(points, max_points=1000, max_bytes=10 * size))
    assert all(sum(estimated_json_bytes(p) for p in batch) <= 10 * size + size for batch in by_bytes)
    assert sum(len(b) for b in by_bytes) == 100 and len(by_bytes) >= 10
    by_count = list(batches_by_size(points, max_points=7, max_bytes=10**9))
    assert [len(b) for b in by_count] == [7] * 14 + [2]


def test_rate_limits_are_retried_and_malformed_replies_are_not() -> None:
    from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse

    from splare_connect_qdrant.client_retry import retry_after

    limited = ResourceExhaustedResponse("Too many requests", 3)
    assert is_retryable(limited) and retry_after(limited) == 3.0
    # a 429 whose Retry-After qdrant-client can't read as whole seconds
    fractional = QdrantException("Retry-After header value is not a valid integer: 1.5")
    assert is_retryable(fractional) and retry_after(fractional) == 1.5
    unreadable = ResponseHandlingException(ValueError("1 validation error for ParsingModel"))  # a 200 with a bad body
    assert not is_retryable(unreadable) and not is_retryable(QdrantException("something else"))
    headers = httpx.Headers({"Retry-After": "2"})
    assert retry_after(UnexpectedResponse(status_code=429, reason_phrase="x", content=b"", headers=headers)) == 2.0
    assert retry_after(http_error(503)) is None


def test_retries_stop_at_the_deadline_with_a_clear_message() -> None:
    driver = ClientDriver(QdrantClient(location=":memory:"), backoff_seconds=0.2, max_attempts=50, retry_deadline=0.5)
    calls = []

    def always_busy() -> None:
        calls.append(1)
        raise http_error(503)

    with pytest.raises(BackendError, match=r"upsert failed: gave up after 2 attempts .*retry deadline of 0.5 s"):
        driver.call("upsert", always_busy)
    assert len(calls) == 2  # slept 0.2 s; a 0.4 s sleep would end past 0.5 s
