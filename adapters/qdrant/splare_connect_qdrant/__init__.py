"""Qdrant backend for splare-connect.

``create_backend()`` picks the engine the way qdrant-client picks its own:

- no URL: **Qdrant Edge**, the real Qdrant engine embedded in-process, storing
  collections under ``data_dir`` (default ``./splare-data``);
- ``url=...`` (or ``$QDRANT_URL``): a Qdrant server through qdrant-client, with the API
  key read from ``$QDRANT_API_KEY`` only, never from arguments or logs;
- ``location=":memory:"`` or ``path=...``: qdrant-client's local mode (pure Python,
  brute force), which implements the server API and is how the server code path is
  tested without a server.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, DEFAULT_TIMEOUT, check_seconds
from splare_connect.backends.urls import check_url
from splare_connect.errors import ConfigError
from splare_connect_qdrant.edge import EdgeBackend
from splare_connect_qdrant.server import ServerBackend

__all__ = ["EdgeBackend", "ServerBackend", "create_backend"]

API_KEY_ENV = "QDRANT_API_KEY"
URL_ENV = "QDRANT_URL"
_CREDENTIALS_HINT = f"Qdrant takes an API key, not a user and password; put it in ${API_KEY_ENV}"


def create_backend(
    *,
    url: str | None = None,
    data_dir: str | Path | None = None,
    location: str | None = None,
    path: str | Path | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    **options: Any,
) -> EdgeBackend | ServerBackend:
    """Create the Qdrant backend for the given location.

    Args:
        url: Qdrant server URL; defaults to ``$QDRANT_URL``. The API key comes from
            ``$QDRANT_API_KEY``; a URL carrying ``user:password@`` is refused.
        data_dir: Directory for embedded Edge collections (no URL).
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        path: Directory for qdrant-client's on-disk local mode.
        timeout: Seconds each server request may take (connecting, sending, or waiting
            between bytes of the reply) before it fails and is retried. None: 30 s.
        retry_deadline: Seconds after a request's first try past which it is not retried
            (and no retry sleep ends later). None: 120 s. Ignored by the embedded engine.
        **options: Passed to :class:`ServerBackend` (batch sizes, ``max_attempts``,
            ``backoff_seconds``).

    Raises:
        ConfigError: Conflicting locations, a malformed URL (named, credentials
            masked), or a non-positive timeout or deadline.
    """
    from_env = not url and bool(os.environ.get(URL_ENV))
    url = url or os.environ.get(URL_ENV) or None
    chosen = [name for name, value in (("url", url), ("location", location), ("path", path)) if value]
    if len(chosen) > 1:
        raise ConfigError(f"give only one of url, location and path (got {', '.join(chosen)})")
    if data_dir is not None and chosen:
        raise ConfigError(f"data_dir is for the embedded engine; it can't be combined with {chosen[0]}")
    if not chosen:
        return EdgeBackend(data_dir or "./splare-data")
    seconds = check_seconds("timeout", timeout, DEFAULT_TIMEOUT)
    options["retry_deadline"] = check_seconds("retry_deadline", retry_deadline, DEFAULT_RETRY_DEADLINE)
    if url:
        url = check_url(url, env_name=URL_ENV if from_env else None, credentials_hint=_CREDENTIALS_HINT)
        return ServerBackend(_server_client(url, seconds), **options)
    from qdrant_client import QdrantClient

    client = QdrantClient(location=location) if location else QdrantClient(path=str(path))
    return ServerBackend(client, **options)


def _server_client(url: str, timeout: float) -> Any:
    """A qdrant-client for a server whose every HTTP request is bounded by ``timeout`` seconds.

    qdrant-client rounds its timeout up to whole seconds; the underlying httpx client is
    then given the exact value, so ``timeout=0.5`` means half a second.
    """
    import httpx
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=os.environ.get(API_KEY_ENV) or None, timeout=math.ceil(timeout))
    http = getattr(getattr(getattr(client._client, "openapi_client", None), "client", None), "_client", None)
    if isinstance(http, httpx.Client):
        http.timeout = httpx.Timeout(timeout)
    return client
