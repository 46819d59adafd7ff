"""How qdrant-client's errors are read: which to retry, how long a 429 asked to wait, what to say.

qdrant-client reports a 429 carrying ``Retry-After`` as ``ResourceExhaustedResponse``
(or, when that header is not an integer, as a ``QdrantException`` saying so), other
statuses as ``UnexpectedResponse``, and wraps both transport failures and unparseable
200 replies in ``ResponseHandlingException``. The retry loop itself is the core's
(:func:`splare_connect.backends.retrying.retry_call`); this module only answers its
questions for qdrant-client.
"""

from __future__ import annotations

from splare_connect.backends.retrying import ErrorRules, parse_retry_after

_RETRY_STATUS = {429, 500, 502, 503, 504}
_BAD_RETRY_AFTER = "Retry-After header value is not a valid integer: "  # qdrant-client's message for a 429


def _is_transport_failure(error: BaseException) -> bool:
    """A timeout or a dropped connection: the request may succeed if sent again."""
    import httpx

    return isinstance(error, (httpx.TransportError, TimeoutError, ConnectionError))


def is_retryable(error: BaseException) -> bool:
    """Timeouts, dropped connections, 429 and 5xx are worth retrying; 4xx and bad replies are not.

    Of what ``ResponseHandlingException`` wraps, only transport failures are transient:
    a malformed reply would come back the same.
    """
    from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return True
    if isinstance(error, QdrantException):
        return _BAD_RETRY_AFTER in str(error)
    if isinstance(error, UnexpectedResponse):
        return error.status_code in _RETRY_STATUS
    if isinstance(error, ResponseHandlingException):
        return _is_transport_failure(error.source)
    return _is_transport_failure(error)


def retry_after(error: BaseException) -> float | None:
    """Seconds a 429 asked to wait: ``ResourceExhaustedResponse.retry_after_s`` or the header.

    qdrant-client only understands whole seconds; for "1.5" or an HTTP date it raises
    a ``QdrantException`` quoting the value, which is read from its message.
    """
    from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
    from qdrant_client.http.exceptions import UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return float(error.retry_after_s)
    if isinstance(error, UnexpectedResponse) and error.status_code == 429:
        return parse_retry_after(error.headers.get("retry-after"))
    if isinstance(error, QdrantException) and _BAD_RETRY_AFTER in str(error):
        return parse_retry_after(str(error).split(_BAD_RETRY_AFTER, 1)[1])
    return None


def describe(error: BaseException) -> str:
    """A short description of a request failure for retry warnings and give-up errors."""
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResourceExhaustedResponse):
        return f"rate limited (HTTP 429, Retry-After: {error.retry_after_s} s): {error}"
    if isinstance(error, UnexpectedResponse):
        limited = "rate limited, " if error.status_code == 429 else ""
        body = error.content[:200].decode("utf-8", "replace")
        return f"{limited}HTTP {error.status_code} {error.reason_phrase}: {body}"
    if isinstance(error, ResponseHandlingException):
        error = error.source
    return f"{type(error).__name__}: {error}"


QDRANT_ERRORS = ErrorRules(is_retryable, retry_after, describe)


def refuses_data(error: BaseException) -> bool:
    """A 400, 413 or 422 answer to a write: the server refused these records (their size or content)."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    return isinstance(error, UnexpectedResponse) and error.status_code in (400, 413, 422)
