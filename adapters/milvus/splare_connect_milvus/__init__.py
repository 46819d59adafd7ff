"""Milvus backend for splare-connect: :class:`MilvusBackend` over a ``pymilvus.MilvusClient``.

``create_backend()`` picks where the collections are:

- no URL (and no ``$MILVUS_URL``): **Milvus Lite**, the Milvus engine run by pymilvus
  from one database file, ``<data_dir>/milvus.db`` (``data_dir`` defaults to
  ``./splare-data``); one process at a time;
- ``url=...`` (or ``$MILVUS_URL``): a Milvus server (2.6+), with the token read from
  ``$MILVUS_TOKEN`` only, never from arguments or logs; a URL carrying ``user:password@``
  is refused (put ``user:password`` in ``$MILVUS_TOKEN``);
- ``client=...``: a ``MilvusClient`` the application already has, shared rather than
  opened twice (closing the backend leaves it open).

Attaching to an application's collection (``splare-connect attach``) works on a server
2.6.2+ only, and has not been run against one (see :mod:`splare_connect_milvus.app_schema`);
Milvus Lite refuses it in one line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.options import BackendOption, read_count, read_positive
from splare_connect.backends.retrying import DEFAULT_RETRY_DEADLINE, DEFAULT_TIMEOUT, RetryPolicy, check_seconds
from splare_connect.backends.urls import check_url
from splare_connect.errors import ConfigError
from splare_connect_milvus.backend import CAPABILITIES, MilvusBackend
from splare_connect_milvus.errors import MILVUS_ERRORS, call_engine, quiet_lite_timestamp_errors, quiet_pymilvus_errors

__all__ = ["BACKEND", "BACKEND_OPTIONS", "CAPABILITIES", "MilvusBackend", "create_backend"]

LOGGER = logging.getLogger(__name__)
URL_ENV = "MILVUS_URL"
TOKEN_ENV = "MILVUS_TOKEN"
LITE_FILE = "milvus.db"
_CREDENTIALS_HINT = f"Milvus takes a token (an API key, or user:password); put it in ${TOKEN_ENV}"

# What the CLI's --backend-option may set (see splare_connect.backends.options).
BACKEND_OPTIONS = {
    "max_batch_points": BackendOption(read_count(1), "points per write request"),
    "max_batch_bytes": BackendOption(read_count(1024), "estimated bytes per write request"),
    "max_attempts": BackendOption(read_count(1), "tries per request before giving up (server)"),
    "backoff_seconds": BackendOption(read_positive, "first retry delay, doubling each time (server)"),
    "retry_deadline": BackendOption(read_positive, "seconds after which a request is not retried (server)"),
    "db_name": BackendOption(str, "the server database holding the collections (server; default: its default)"),
}


def create_backend(
    *,
    url: str | None = None,
    data_dir: str | Path | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry_deadline: float | None = DEFAULT_RETRY_DEADLINE,
    client: Any = None,
    max_batch_points: int = 256,
    max_batch_bytes: int = 16 * 1024 * 1024,
    max_attempts: int = 6,
    backoff_seconds: float = 0.5,
    db_name: str | None = None,
) -> MilvusBackend:
    """Create the Milvus backend for the given location.

    Args:
        url: Milvus server URL (``http://host:19530``); defaults to ``$MILVUS_URL``. The
            token comes from ``$MILVUS_TOKEN``; a URL carrying ``user:password@`` is refused.
        data_dir: Directory of the Milvus Lite database file (no URL); default ``./splare-data``.
        timeout: Seconds each server request may take (pymilvus retries a dropped
            connection within it). None: 30 s.
        retry_deadline: Seconds after a request's first try past which it is not retried.
            None: 120 s. Milvus Lite doesn't retry.
        client: A ``pymilvus.MilvusClient`` the application made and keeps using.
        max_batch_points: Points per write request.
        max_batch_bytes: Estimated bytes per write request (a server caps gRPC messages).
        max_attempts: Tries per server request, the first included.
        backoff_seconds: First retry delay; doubles each time (capped at 30 s).
        db_name: The server database (default: the server's default database).

    Raises:
        ConfigError: Conflicting locations, a malformed URL (named, credentials masked),
            or a non-positive timeout or deadline.
    """
    quiet_pymilvus_errors()
    explicit = bool(url) or client is not None
    from_env = not explicit and bool(os.environ.get(URL_ENV))
    url = url or (None if explicit else os.environ.get(URL_ENV)) or None
    chosen = [name for name, value in (("url", url), ("client", client)) if value is not None]
    if len(chosen) > 1:
        raise ConfigError("give only one of url and client")
    if data_dir is not None and chosen:
        raise ConfigError(f"data_dir is for Milvus Lite; it can't be combined with {chosen[0]}")
    seconds = check_seconds("timeout", timeout, DEFAULT_TIMEOUT)
    deadline = check_seconds("retry_deadline", retry_deadline, DEFAULT_RETRY_DEADLINE)
    policy = RetryPolicy(MILVUS_ERRORS, max_attempts, backoff_seconds, deadline, LOGGER)
    if client is not None:
        lite = _runs_lite(client)
        if lite:
            quiet_lite_timestamp_errors()
        retry, wait = (None, None) if lite else (policy, seconds)
        return MilvusBackend(
            client,
            lite=lite,
            retry=retry,
            timeout=wait,
            owns_client=False,
            max_batch_points=max_batch_points,
            max_batch_bytes=max_batch_bytes,
        )
    if url:
        url = check_url(url, env_name=URL_ENV if from_env else None, credentials_hint=_CREDENTIALS_HINT)
        server = _server_client(url, seconds, db_name)
        return MilvusBackend(
            server,
            lite=False,
            where=f" on {url}",
            retry=policy,
            timeout=seconds,
            concurrent_writers=True,
            max_batch_points=max_batch_points,
            max_batch_bytes=max_batch_bytes,
        )
    if db_name is not None:
        raise ConfigError("db_name is for a Milvus server; Milvus Lite keeps one database per file")
    directory = Path(data_dir or "./splare-data")
    path = directory / LITE_FILE
    return MilvusBackend(
        _lite_client(directory, path),
        lite=True,
        lite_file=path,
        where=f" in {path}",
        max_batch_points=max_batch_points,
        max_batch_bytes=max_batch_bytes,
    )


def _lite_client(directory: Path, path: Path) -> Any:
    """A MilvusClient running Milvus Lite on ``path`` (its directory made if needed)."""
    from pymilvus import MilvusClient

    quiet_lite_timestamp_errors()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the Milvus Lite directory {str(directory)!r}: {exc.strerror}") from None
    return call_engine(f"opening Milvus Lite at {str(path)!r}", lambda: MilvusClient(str(path)))


def _runs_lite(client: Any) -> bool:
    """Whether an application's MilvusClient talks to a Milvus Lite server pymilvus started in this process.

    pymilvus rewrites a ``.db`` URI to a local gRPC address and keeps nothing else; the
    servers milvus-lite started are matched by port (private structures: any surprise
    means "not Lite", which only changes the wording of the attach refusal and adds retries).
    """
    try:
        from milvus_lite.server_manager import server_manager_instance

        address = str(client._config.address)
        ports = {str(entry[-1]) for entry in server_manager_instance._servers.values()}
        return address.startswith(("127.0.0.1:", "localhost:")) and address.rsplit(":", 1)[-1] in ports
    except Exception:
        return False


def _server_client(url: str, timeout: float, db_name: str | None) -> Any:
    """A MilvusClient for a server, its token from ``$MILVUS_TOKEN`` only."""
    from pymilvus import MilvusClient

    kwargs: dict[str, Any] = {"uri": url, "timeout": timeout}
    token = os.environ.get(TOKEN_ENV)
    if token:
        kwargs["token"] = token
    if db_name:
        kwargs["db_name"] = db_name
    return call_engine(f"connecting to Milvus at {url}", lambda: MilvusClient(**kwargs))


# The record the core reads (entry point ``milvus``): see splare_connect.backends.descriptor.
BACKEND = BackendDescriptor(
    name="milvus",
    distribution="splare-connect-milvus",
    summary="Milvus: Milvus Lite in-process by default, a Milvus server 2.6+ by URL",
    create=create_backend,
    options=BACKEND_OPTIONS,
    url_env=URL_ENV,
    secret_env=(TOKEN_ENV,),
    without_url="Milvus Lite, the Milvus engine run in-process from one file, under --data-dir (default ./splare-data)",
    capabilities=CAPABILITIES,
)
