"""OpenSearch backend for splare-connect.

``create_backend(url=...)`` (or ``$OPENSEARCH_URL``) connects with opensearch-py.
Credentials come from the environment only, never from arguments or logs:

- ``OPENSEARCH_USERNAME`` and ``OPENSEARCH_PASSWORD``: HTTP basic auth;
- ``OPENSEARCH_API_KEY``: sent as ``Authorization: ApiKey <key>``.

TLS certificates are verified by default; ``verify_certs=False`` must be asked for
explicitly and logs a warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from splare_connect.errors import ConfigError
from splare_connect_opensearch.backend import BulkWriteError, OpenSearchBackend

__all__ = ["BulkWriteError", "OpenSearchBackend", "create_backend"]

LOGGER = logging.getLogger(__name__)
URL_ENV = "OPENSEARCH_URL"


def create_backend(
    *,
    url: str | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout: float = 30.0,
    client: Any = None,
    **options: Any,
) -> OpenSearchBackend:
    """Create the OpenSearch backend.

    Args:
        url: Cluster URL; defaults to ``$OPENSEARCH_URL``.
        verify_certs: Verify TLS certificates (turning it off is logged as a warning).
        ca_certs: CA bundle for a private certificate authority.
        timeout: Request timeout in seconds.
        client: An existing ``opensearchpy.OpenSearch`` client to use instead.
        **options: Passed to :class:`OpenSearchBackend`.

    Raises:
        ConfigError: No URL (and no client) was given.
    """
    if client is None:
        from opensearchpy import OpenSearch

        url = url or os.environ.get(URL_ENV)
        if not url:
            raise ConfigError(f"OpenSearch needs a URL: pass --url or set {URL_ENV}")
        if not verify_certs:
            LOGGER.warning("TLS certificate verification is OFF for %s: traffic can be intercepted", url)
        kwargs: dict[str, Any] = {
            "hosts": [url],
            "verify_certs": verify_certs,
            "ssl_show_warn": verify_certs,
            "timeout": timeout,
            "retry_on_timeout": False,  # retries (with backoff) are the backend's job
            "max_retries": 0,
        }
        if ca_certs:
            kwargs["ca_certs"] = ca_certs
        user, password = os.environ.get("OPENSEARCH_USERNAME"), os.environ.get("OPENSEARCH_PASSWORD")
        api_key = os.environ.get("OPENSEARCH_API_KEY")
        if user and password:
            kwargs["http_auth"] = (user, password)
        elif api_key:
            kwargs["headers"] = {"Authorization": f"ApiKey {api_key}"}
        client = OpenSearch(**kwargs)
    return OpenSearchBackend(client, **options)
