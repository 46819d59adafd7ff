"""Qdrant backend for splare-connect: one backend, :class:`QdrantBackend`, over two engines.

``create_backend()`` picks the engine the way qdrant-client picks its own, and gives
:class:`QdrantBackend` the driver for it:

- no URL: **Qdrant Edge**, the real Qdrant engine embedded in-process, storing
  collections under ``data_dir`` (default ``./splare-data``): :class:`EdgeDriver`;
- ``url=...`` (or ``$QDRANT_URL``): a Qdrant server through qdrant-client, with the API
  key read from ``$QDRANT_API_KEY`` only, never from arguments or logs: :class:`ClientDriver`;
- ``location=":memory:"`` or ``path=...``: qdrant-client's local mode (pure Python,
  brute force), which implements the server API and is how the server code path is
  tested without a server: :class:`ClientDriver` too;
- ``client=...``: a ``QdrantClient`` the application already has (LangChain's,
  LlamaIndex's), shared rather than opened twice: :class:`ClientDriver`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.options import BackendOption, read_count, read_positive
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, DEFAULT_TIMEOUT, check_seconds
from splare_connect.backends.urls import check_url
from splare_connect.errors import ConfigError
from splare_connect_qdrant.backend import CAPABILITIES, QdrantBackend
from splare_connect_qdrant.client_driver import ClientDriver
from splare_connect_qdrant.edge_driver import EdgeDriver
from splare_connect_qdrant.write_batches import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_POINTS

__all__ = ["BACKEND", "ClientDriver", "EdgeDriver", "QdrantBackend", "create_backend"]

API_KEY_ENV = "QDRANT_API_KEY"
URL_ENV = "QDRANT_URL"
_CREDENTIALS_HINT = f"Qdrant takes an API key, not a user and password; put it in ${API_KEY_ENV}"


# What the CLI's --backend-option may set (see splare_connect.backends.options).
BACKEND_OPTIONS = {
    "max_batch_points": BackendOption(read_count(1), "points per write request (server, local mode)"),
    "max_batch_bytes": BackendOption(read_count(1024), "estimated JSON bytes per write request (server, local mode)"),
    "max_attempts": BackendOption(read_count(1), "tries per request before giving up (server, local mode)"),
    "backoff_seconds": BackendOption(read_positive, "first retry delay, doubling each time (server, local mode)"),
    "retry_deadline": BackendOption(read_positive, "seconds after which a request is not retried (server)"),
}


def create_backend(
    *,
    url: str | None = None,
    data_dir: str | Path | None = None,
    location: str | None = None,
    path: str | Path | None = None,
    client: Any = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    **options: Any,
) -> QdrantBackend:
    """Create the Qdrant backend for the given location.

    Args:
        url: Qdrant server URL; defaults to ``$QDRANT_URL``. The API key comes from
            ``$QDRANT_API_KEY``; a URL carrying ``user:password@`` is refused.
        data_dir: Directory for embedded Edge collections (no URL).
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        path: Directory for qdrant-client's on-disk local mode.
        client: A ``qdrant_client.QdrantClient`` the application made and keeps
            using; closing the backend leaves it open.
        timeout: Seconds each server request may take (connecting, sending, or waiting
            between bytes of the reply) before it fails and is retried. None: 30 s.
        retry_deadline: Seconds after a request's first try past which it is not retried
            (and no retry sleep ends later). None: 120 s. Ignored by the embedded engine.
        **options: For a server or local mode: ``max_batch_points`` and
            ``max_batch_bytes`` (write request caps, see :class:`QdrantBackend`),
            ``max_attempts`` and ``backoff_seconds`` (see :class:`ClientDriver`).
            Ignored by the embedded engine.

    Raises:
        ConfigError: Conflicting locations, a malformed URL (named, credentials
            masked), or a non-positive timeout or deadline.
    """
    explicit = url or location or path or client is not None  # an explicit place wins over $QDRANT_URL
    from_env = not explicit and bool(os.environ.get(URL_ENV))
    url = url or (None if explicit else os.environ.get(URL_ENV)) or None
    chosen = [
        name for name, value in (("url", url), ("location", location), ("path", path), ("client", client)) if value
    ]
    if len(chosen) > 1:
        raise ConfigError(f"give only one of url, location, path and client (got {', '.join(chosen)})")
    if data_dir is not None and chosen:
        raise ConfigError(f"data_dir is for the embedded engine; it can't be combined with {chosen[0]}")
    if not chosen:
        return QdrantBackend(EdgeDriver(data_dir or "./splare-data"))
    seconds = check_seconds("timeout", timeout, DEFAULT_TIMEOUT)
    deadline = check_seconds("retry_deadline", retry_deadline, DEFAULT_RETRY_DEADLINE)
    if client is not None:
        return _client_backend(client, deadline, owns_client=False, **options)
    if url:
        url = check_url(url, env_name=URL_ENV if from_env else None, credentials_hint=_CREDENTIALS_HINT)
        return _client_backend(_server_client(url, seconds), deadline, concurrent_writers=True, **options)
    from qdrant_client import QdrantClient

    client = QdrantClient(location=location) if location else QdrantClient(path=str(path))
    return _client_backend(client, deadline, **options)


def _client_backend(
    client: Any,
    retry_deadline: float,
    *,
    max_batch_points: int = DEFAULT_BATCH_POINTS,
    max_batch_bytes: int = DEFAULT_BATCH_BYTES,
    max_attempts: int = 6,
    backoff_seconds: float = 0.5,
    owns_client: bool = True,
    concurrent_writers: bool = False,
) -> QdrantBackend:
    """The backend over qdrant-client: writes capped in size (a server refuses bodies over 32 MB), requests retried."""
    driver = ClientDriver(
        client,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        retry_deadline=retry_deadline,
        owns_client=owns_client,
    )
    return QdrantBackend(
        driver,
        max_batch_points=max_batch_points,
        max_batch_bytes=max_batch_bytes,
        concurrent_writers=concurrent_writers,
    )


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


# The record the core reads (entry point ``qdrant``): see splare_connect.backends.descriptor.
BACKEND = BackendDescriptor(
    name="qdrant",
    distribution="splare-connect-qdrant",
    summary="Qdrant: embedded Qdrant Edge by default, any Qdrant server by URL",
    create=create_backend,
    options=BACKEND_OPTIONS,
    url_env=URL_ENV,
    secret_env=(API_KEY_ENV,),
    without_url="Qdrant Edge, the Qdrant engine embedded in-process, under --data-dir (default ./splare-data)",
    capabilities=CAPABILITIES,
)
