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

import os
from pathlib import Path
from typing import Any

from splare_connect.errors import ConfigError
from splare_connect_qdrant.edge import EdgeBackend
from splare_connect_qdrant.server import ServerBackend

__all__ = ["EdgeBackend", "ServerBackend", "create_backend"]

API_KEY_ENV = "QDRANT_API_KEY"
URL_ENV = "QDRANT_URL"


def create_backend(
    *,
    url: str | None = None,
    data_dir: str | Path | None = None,
    location: str | None = None,
    path: str | Path | None = None,
    timeout: float = 30.0,
    **options: Any,
) -> EdgeBackend | ServerBackend:
    """Create the Qdrant backend for the given location.

    Args:
        url: Qdrant server URL; defaults to ``$QDRANT_URL``. The API key comes from
            ``$QDRANT_API_KEY``.
        data_dir: Directory for embedded Edge collections (no URL).
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        path: Directory for qdrant-client's on-disk local mode.
        timeout: Request timeout for a server, in seconds.
        **options: Passed to :class:`ServerBackend` (batch sizes, retries).

    Raises:
        ConfigError: Conflicting locations were given.
    """
    url = url or os.environ.get(URL_ENV) or None
    chosen = [name for name, value in (("url", url), ("location", location), ("path", path)) if value]
    if len(chosen) > 1:
        raise ConfigError(f"give only one of url, location and path (got {', '.join(chosen)})")
    if data_dir is not None and chosen:
        raise ConfigError(f"data_dir is for the embedded engine; it can't be combined with {chosen[0]}")
    if not chosen:
        return EdgeBackend(data_dir or "./splare-data")
    from qdrant_client import QdrantClient

    if url:
        client = QdrantClient(url=url, api_key=os.environ.get(API_KEY_ENV) or None, timeout=int(timeout))
    elif location:
        client = QdrantClient(location=location)
    else:
        client = QdrantClient(path=str(path))
    return ServerBackend(client, **options)
