"""opensearch-py's urllib3 connection, with a 429's ``Retry-After`` kept on the error.

opensearch-py 3.2 raises ``TransportError(429, ...)`` without the response headers,
so a rate-limited client can't honour ``Retry-After``. This subclass remembers the
headers of the failing response (opensearch-py reads them just before raising) and
sets ``retry_after_s`` on the error. If a future opensearch-py stops calling that hook,
nothing breaks: the attribute is simply absent and retries fall back to backoff.
"""

from __future__ import annotations

import threading
from typing import Any

from opensearchpy import Urllib3HttpConnection
from opensearchpy.exceptions import TransportError

from splare_connect.backends.retrying import parse_retry_after

__all__ = ["RetryAfterConnection"]


class RetryAfterConnection(Urllib3HttpConnection):
    """A ``Urllib3HttpConnection`` whose 429 errors carry ``retry_after_s`` (seconds or None)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed_headers = threading.local()  # one connection serves several threads

    def get_response_headers(self, response: Any) -> Any:
        """Called by opensearch-py only for an error response, right before ``_raise_error``."""
        headers = super().get_response_headers(response)
        self._failed_headers.value = headers
        return headers

    def _raise_error(self, status_code: int, raw_data: str | bytes, content_type: str | None = None) -> None:
        headers = getattr(self._failed_headers, "value", None) or {}
        self._failed_headers.value = None
        try:
            super()._raise_error(status_code, raw_data, content_type)
        except TransportError as error:
            # read by the retry policy (opensearch-py declares no such attribute)
            error.retry_after_s = parse_retry_after(headers.get("retry-after")) if status_code == 429 else None  # type: ignore[attr-defined]
            raise
