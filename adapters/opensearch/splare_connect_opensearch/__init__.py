"""OpenSearch backend for splare-connect.

``create_backend(url=...)`` (or ``$OPENSEARCH_URL``) connects with opensearch-py.
Credentials come from the environment only, never from arguments or logs:

- ``OPENSEARCH_USERNAME`` and ``OPENSEARCH_PASSWORD``: HTTP basic auth;
- ``OPENSEARCH_API_KEY``: sent as ``Authorization: ApiKey <key>``.

A URL carrying ``user:password@`` is refused (opensearch-py would silently turn it into
basic auth, and the password would sit in shell history and tracebacks). TLS
certificates are verified by default; ``verify_certs=False`` must be asked for
explicitly and logs a warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.options import BackendOption, read_bool, read_choice, read_count, read_positive
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, DEFAULT_TIMEOUT, check_seconds
from splare_connect.backends.urls import check_url
from splare_connect.errors import ConfigError
from splare_connect.redaction import install_log_redaction
from splare_connect_opensearch.backend import CAPABILITIES, BulkWriteError, OpenSearchBackend

__all__ = ["BACKEND", "BulkWriteError", "OpenSearchBackend", "create_backend"]

LOGGER = logging.getLogger(__name__)
URL_ENV = "OPENSEARCH_URL"
USER_ENV, PASSWORD_ENV, API_KEY_ENV = "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD", "OPENSEARCH_API_KEY"
_CREDENTIALS_HINT = "set OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD (or OPENSEARCH_API_KEY) instead"


def _read_two_phase(text: str) -> tuple[float, float, int]:
    """``prune_ratio,expansion_rate,max_window_size``, as the two-phase processor takes them."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError("expected prune_ratio,expansion_rate,max_window_size (e.g. 0.4,5.0,10000)")
    return float(parts[0]), float(parts[1]), int(parts[2])


# What the CLI's --backend-option may set (see splare_connect.backends.options).
BACKEND_OPTIONS = {
    "query_mode": BackendOption(
        read_choice("auto", "neural_sparse", "rank_feature", "ann"), "how sparse queries are sent (auto: detected)"
    ),
    "approximate": BackendOption(read_bool, "also index a SEISMIC sparse_vector field (OpenSearch 3.3+)"),
    "quantization_ceiling": BackendOption(read_positive, "SEISMIC quantization ceiling (default: from the data)"),
    "two_phase": BackendOption(_read_two_phase, "two-phase sparse queries: prune_ratio,expansion_rate,window"),
    "shards": BackendOption(read_count(1), "primary shards of a new index"),
    "replicas": BackendOption(read_count(0), "replicas of a new index"),
    "max_chunk_bytes": BackendOption(read_count(1024), "bytes per bulk request"),
    "chunk_size": BackendOption(read_count(1), "documents per bulk request"),
    "verify_certs": BackendOption(read_bool, "verify TLS certificates (turning it off logs a warning)"),
    "ca_certs": BackendOption(str, "CA bundle for a private certificate authority"),
    "max_attempts": BackendOption(read_count(1), "tries per request before giving up"),
    "backoff_seconds": BackendOption(read_positive, "first retry delay, doubling each time"),
    "retry_deadline": BackendOption(read_positive, "seconds after which a request is not retried"),
}


def create_backend(
    *,
    url: str | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    client: Any = None,
    **options: Any,
) -> OpenSearchBackend:
    """Create the OpenSearch backend.

    Args:
        url: Cluster URL; defaults to ``$OPENSEARCH_URL``. A URL carrying
            ``user:password@`` is refused: credentials come from the environment.
        verify_certs: Verify TLS certificates (turning it off is logged as a warning).
        ca_certs: CA bundle for a private certificate authority.
        timeout: Seconds each request may take (connecting, or waiting between bytes of
            the reply) before it fails and is retried. None: 30 s.
        retry_deadline: Seconds after a request's first try past which it is not retried
            (and no retry sleep ends later). None: 120 s.
        client: An existing ``opensearchpy.OpenSearch`` client to use instead.
        **options: Passed to :class:`OpenSearchBackend` (``max_attempts``,
            ``backoff_seconds``, query and index options).

    Raises:
        ConfigError: No URL (and no client), a malformed URL (named, credentials
            masked), or a non-positive timeout or deadline.
    """
    options["retry_deadline"] = check_seconds("retry_deadline", retry_deadline, DEFAULT_RETRY_DEADLINE)
    if client is None:
        client = _client(url, verify_certs, ca_certs, check_seconds("timeout", timeout, DEFAULT_TIMEOUT))
    return OpenSearchBackend(client, **options)


def _client(url: str | None, verify_certs: bool, ca_certs: str | None, timeout: float) -> Any:
    """An opensearch-py client with credentials from the environment and no retries of its own."""
    from opensearchpy import OpenSearch

    from splare_connect_opensearch.connection import RetryAfterConnection

    from_env = not url and bool(os.environ.get(URL_ENV))
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise ConfigError(f"OpenSearch needs a URL: pass --url or set {URL_ENV}")
    url = check_url(url, env_name=URL_ENV if from_env else None, credentials_hint=_CREDENTIALS_HINT)
    install_log_redaction("opensearch", "opensearchpy.trace")  # opensearch-py logs error bodies at DEBUG
    if not verify_certs:
        LOGGER.warning("TLS certificate verification is OFF for %s: traffic can be intercepted", url)
    kwargs: dict[str, Any] = {
        "hosts": [url],
        "connection_class": RetryAfterConnection,
        "verify_certs": verify_certs,
        "ssl_show_warn": verify_certs,
        "timeout": timeout,
        "retry_on_timeout": False,  # retries (with backoff) are the backend's job
        "max_retries": 0,
    }
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    api_key = os.environ.get(API_KEY_ENV)
    if user and password:
        kwargs["http_auth"] = (user, password)
    elif api_key:
        kwargs["headers"] = {"Authorization": f"ApiKey {api_key}"}
    return OpenSearch(**kwargs)


# The record the core reads (entry point ``opensearch``): see splare_connect.backends.descriptor.
BACKEND = BackendDescriptor(
    name="opensearch",
    distribution="splare-connect-opensearch",
    summary="OpenSearch: rank_features / neural_sparse fields, SEISMIC, hybrid search pipelines",
    create=create_backend,
    options=BACKEND_OPTIONS,
    url_env=URL_ENV,
    secret_env=(PASSWORD_ENV, API_KEY_ENV),
    basic_auth_env=(USER_ENV, PASSWORD_ENV),
    without_url=None,
    capabilities=CAPABILITIES,
)
