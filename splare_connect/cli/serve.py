"""``serve``: the encoder as an HTTP service (see :mod:`splare_connect.service`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import Precision, Runtime
from splare_connect.cli.common import (
    BackendOption,
    BackendOptionsOption,
    CollectionOption,
    DataDirOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    StaticQueriesOption,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    open_backend,
    print_line,
)
from splare_connect.errors import MissingDependencyError, SplareError

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

# serve's tuning knobs, below the common options in --help (see common.DATABASE_PANEL).
LIMITS_PANEL = "Batching and limits"
CONNECTIONS_PANEL = "Client connections"


def serve(
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    static_queries: StaticQueriesOption = None,
    trust_remote_code: TrustRemoteCodeOption = False,
    host: Annotated[
        str,
        typer.Option(
            envvar="SPLARE_HOST",
            help="Address to listen on; the default serves this machine only. Set SPLARE_API_KEY before "
            "listening on a network address.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SPLARE_PORT", min=1, max=65535, help="Port to listen on.")] = 8000,
    backend: BackendOption = DEFAULT_BACKEND,
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    search: Annotated[
        bool,
        typer.Option(
            "--search/--no-search",
            help="Serve /search on the database; --no-search serves /encode only and opens no database.",
        ),
    ] = True,
    max_batch: Annotated[
        int,
        typer.Option(
            min=1, envvar="SPLARE_MAX_BATCH", help="Texts encoded together at most.", rich_help_panel=LIMITS_PANEL
        ),
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1000.0,
            envvar="SPLARE_MAX_WAIT_MS",
            metavar="<ms>",
            help="How long a request waits for others to batch with.",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = 5.0,
    max_queue: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SPLARE_MAX_QUEUE",
            help="Texts allowed to wait for the encoder; beyond it requests get 503.",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = 1024,
    max_texts: Annotated[
        int, typer.Option(min=1, help="Texts per /encode request.", rich_help_panel=LIMITS_PANEL)
    ] = 256,
    max_text_chars: Annotated[
        int, typer.Option(min=1, help="Characters per text.", rich_help_panel=LIMITS_PANEL)
    ] = 20_000,
    search_threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Threads querying the database: 1 for an embedded engine; a server can take more.",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = 1,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            max=3600.0,
            envvar="SPLARE_HEADER_TIMEOUT",
            metavar="<seconds>",
            help="Seconds a client may take to send a request's headers (then 408).",
            rich_help_panel=CONNECTIONS_PANEL,
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            max=3600.0,
            envvar="SPLARE_BODY_TIMEOUT",
            metavar="<seconds>",
            help="Seconds a client may take to send a request's body.",
            rich_help_panel=CONNECTIONS_PANEL,
        ),
    ] = 60.0,
    keep_alive: Annotated[
        int,
        typer.Option(
            min=1,
            max=3600,
            envvar="SPLARE_KEEP_ALIVE",
            metavar="<seconds>",
            help="Seconds an idle connection is kept open.",
            rich_help_panel=CONNECTIONS_PANEL,
        ),
    ] = 5,
    max_connections: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SPLARE_MAX_CONNECTIONS",
            help="Open connections at most; more are refused (503). Lowered to fit the open-file limit.",
            rich_help_panel=CONNECTIONS_PANEL,
        ),
    ] = 512,
) -> None:
    """Serve the encoder over HTTP: POST /encode, POST /search, GET /healthz, GET /metrics.

    Requests arriving together are encoded together. With SPLARE_API_KEY set, every endpoint but
    /healthz and the API schema needs 'Authorization: Bearer <key>' (or 'X-API-Key: <key>').
    """
    try:
        import uvicorn

        from splare_connect.service.app import create_app
        from splare_connect.service.connections import guarded_protocol
        from splare_connect.service.settings import ServiceSettings
    except ImportError as error:
        raise fail(
            MissingDependencyError(f"serve needs {error.name or 'FastAPI'}: pip install 'splare-connect[serve]'")
        ) from error
    from splare_connect.cli.common import load_encoder
    from splare_connect.redaction import install_log_redaction

    try:
        settings = ServiceSettings.from_env(
            max_batch_texts=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue_texts=max_queue,
            max_texts=max_texts,
            max_text_chars=max_text_chars,
            search_threads=search_threads,
            default_collection=collection,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive,
            max_connections=connection_cap(max_connections),
        )
        store = open_backend(backend, url, data_dir, timeout, backend_option) if search else None
    except SplareError as error:
        raise fail(error) from error
    try:
        encoder = load_encoder(model, precision, trust_remote_code, runtime, static_queries=static_queries)
        app = create_app(encoder, store, settings)
        if host not in _LOOPBACK and not settings.api_key:
            print_line("[bold yellow]warning:[/]", f"listening on {host} without an API key: set SPLARE_API_KEY")
        auth = "API key required" if settings.api_key else "no API key"
        print_line(
            "[bold]serving[/]",
            f"{encoder.config.name} (fingerprint {str(encoder.fingerprint['digest'])[:12]}) on http://{host}:{port} "
            f"({auth}; {'search on ' + backend if store is not None else 'encode only'})",
        )
        install_log_redaction("uvicorn", "uvicorn.error", "uvicorn.access", "splare_connect.service")
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=os.environ.get("SPLARE_LOG_LEVEL", "info").lower(),
            server_header=False,
            http=guarded_protocol(
                header_timeout_s=settings.header_timeout_s,
                body_timeout_s=settings.body_timeout_s,
                max_connections=settings.max_connections,
            ),
            timeout_keep_alive=settings.keep_alive_s,
            ws="none",  # no WebSocket endpoints: an upgrade request is answered as plain HTTP
        )
    except SplareError as error:
        raise fail(error) from error
    finally:
        if store is not None:
            store.close()


# File descriptors kept for everything but client connections: the listening socket, the
# model's and the database's files, logs.
_RESERVED_FILES = 64


def connection_cap(requested: int) -> int:
    """``requested``, lowered (with a note) so that open connections cannot exhaust the open-file limit.

    Past the limit ``accept`` fails and even the database cannot open a file, so a cap
    above it protects nothing.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # not on POSIX: keep what was asked
        return requested
    if soft == resource.RLIM_INFINITY or requested <= soft - _RESERVED_FILES:
        return requested
    fitted = max(1, soft - _RESERVED_FILES)
    print_line(
        "[bold yellow]note:[/]",
        f"--max-connections {requested} lowered to {fitted} to fit the open-file limit of {soft} "
        "(raise it with ulimit -n)",
    )
    return fitted
