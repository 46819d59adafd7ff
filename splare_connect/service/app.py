"""``create_app``: the service as a FastAPI application.

    app = create_app(SplareEncoder.from_pretrained(), load_backend("qdrant"), ServiceSettings.from_env())
    uvicorn.run(app, host="127.0.0.1", port=8000)

``splare-connect serve`` does exactly this; tests and applications that embed the
service build the app the same way. Endpoints:

- ``POST /encode``: texts to sparse (and dense) vectors, micro-batched with other requests.
- ``POST /search``: one query on a collection of the server's database.
- ``GET /healthz``: the model served and whether the server is ready (no API key needed).
- ``GET /metrics``: Prometheus metrics.
- ``GET /openapi.json`` and ``/docs``: the API schema (no API key needed).

Every error is ``{"detail": "<one line>"}`` with secrets masked; a failure the service
did not foresee is a 500 whose body says only that, logged on the server as one line
(``SPLARE_DEBUG=1`` logs the traceback).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from splare_connect.errors import (
    BackendError,
    BadInputError,
    CollectionNotAttachedError,
    CollectionNotFoundError,
    ConfigError,
    EncoderMismatchError,
    SplareError,
)
from splare_connect.redaction import safe_message
from splare_connect.search_settings import NO_FUSION
from splare_connect.service.auth import api_key_dependency
from splare_connect.service.limits import BodyLimitMiddleware, LimitError, check_query, check_texts
from splare_connect.service.metrics import MetricsMiddleware, ServiceMetrics
from splare_connect.service.micro_batching import BatcherClosedError, MicroBatcher, QueueFullError
from splare_connect.service.schemas import (
    EncodeRequest,
    EncodeResponse,
    ErrorBody,
    HealthResponse,
    SearchHitBody,
    SearchRequest,
)
from splare_connect.service.searching import Searcher, SearchUnavailableError
from splare_connect.service.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from splare_connect.backends import Backend
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.retriever import SearchHit

LOGGER = logging.getLogger("splare_connect.service")

# Each error type the service raises on purpose, with its HTTP status, most specific first.
_STATUS: list[tuple[type[Exception], int]] = [
    (QueueFullError, 503),
    (BatcherClosedError, 503),
    (CollectionNotFoundError, 404),
    (SearchUnavailableError, 404),
    (EncoderMismatchError, 409),
    (CollectionNotAttachedError, 409),
    (BackendError, 502),
    (ConfigError, 400),
    (BadInputError, 400),
    (SplareError, 400),
]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint can answer with (all ``ErrorBody``)."""
    reasons = {
        400: "Bad request: a bad filter, or an option the model or collection cannot serve.",
        401: "Missing or wrong API key.",
        404: "No such collection (or the server has no database).",
        409: "The collection was built by another model, or is not attached (splare-connect attach).",
        413: "Too many texts, a text or query too long, or a body too large.",
        422: "The body does not match the schema.",
        502: "The database failed.",
        503: "Busy (retry after Retry-After seconds), or shutting down.",
    }
    return {status: {"model": ErrorBody, "description": reasons[status]} for status in statuses}


def create_app(
    encoder: SplareEncoder,
    backend: Backend | Callable[[], Backend] | None = None,
    settings: ServiceSettings | None = None,
) -> FastAPI:
    """The service's ASGI application.

    Args:
        encoder: The model to serve; shared by every request (its calls are serialised).
        backend: The database ``/search`` queries: a backend (the caller closes it), a
            function that opens one when the app starts (the app closes it), or
            ``None`` for an encode-only service (``/search`` answers 404).
        settings: Limits, batching and the API key; default
            :meth:`ServiceSettings.from_env` (the key from ``$SPLARE_API_KEY``).

    Returns:
        A FastAPI app; run it with uvicorn (its lifespan starts the micro-batcher and
        opens the backend).
    """
    from splare_connect import __version__
    from splare_connect.filters import parse_filters

    settings = settings or ServiceSettings.from_env()
    metrics = ServiceMetrics()
    batcher = MicroBatcher(
        encoder,
        max_batch_texts=settings.max_batch_texts,
        max_wait_ms=settings.max_wait_ms,
        max_queue_texts=settings.max_queue_texts,
        batch_size=settings.encode_batch_size,
        retry_after=settings.retry_after_s,
        on_batch=metrics.observe_batch,
        on_depth=metrics.set_queue,
    )
    searcher = None if backend is None else Searcher(encoder, backend, threads=settings.search_threads)
    identity = {
        "model": encoder.config.name,
        "fingerprint_digest": str(encoder.fingerprint["digest"]),
        "dim": encoder.dim,
        "dense_dim": encoder.dense_dim,
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            if searcher is not None:
                await searcher.start()
            app.state.ready = True
            yield
        finally:
            app.state.ready = False
            await batcher.close()
            if searcher is not None:
                await searcher.close()

    app = FastAPI(
        title="splare-connect",
        version=__version__,
        summary="SAE-latent learned sparse retrieval: the encoder as a service.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.ready = False
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.batcher = batcher
    _add_error_handlers(app)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts every answer
    protected = [Depends(api_key_dependency(settings.api_key))] if settings.api_key else []
    auth = (401,) if settings.api_key else ()

    @app.post(
        "/encode",
        response_model=EncodeResponse,
        responses=_errors(400, *auth, 413, 422, 503),
        dependencies=protected,
        summary="Encode texts into sparse (and dense) vectors",
    )
    async def encode(body: EncodeRequest) -> dict[str, Any]:
        """Vectors for ``texts`` in order. Requests that arrive together are encoded in one batch."""
        check_texts(body.texts, max_texts=settings.max_texts, max_chars=settings.max_text_chars)
        if not body.sparse and not body.dense:
            raise LimitError("nothing to return: ask for sparse, dense or both", status=422)
        if body.dense and not encoder.has_dense:
            raise ConfigError(f"model {encoder.config.name!r} defines no dense embedding: ask for sparse only")
        encoded = await batcher.encode(body.texts, role=body.role, dense=body.dense)
        return {
            **identity,
            "sparse": [{"indices": v.indices.tolist(), "values": v.values.tolist()} for v in encoded.sparse]
            if body.sparse
            else None,
            "dense": None if encoded.dense is None else encoded.dense.tolist(),
            "truncated": encoded.truncated,
        }

    @app.post(
        "/search",
        response_model=list[SearchHitBody],
        responses=_errors(400, *auth, 404, 409, 413, 422, 502, 503),
        dependencies=protected,
        summary="Search a collection",
    )
    async def search(body: SearchRequest) -> list[dict[str, Any]]:
        """The top ``k`` chunks (or documents) of a collection of the server's database for ``query``."""
        check_query(body.query, body.k, max_chars=settings.max_query_chars, max_k=settings.max_k)
        conditions = parse_filters(body.filter)
        if searcher is None:
            raise SearchUnavailableError("this server was started without a database (serve --no-search)")
        collection = body.collection or settings.default_collection
        retriever = await searcher.retriever(collection)
        chosen = retriever.settings.resolve(  # the request's options, else the collection's settings
            body.hybrid,
            body.weights,
            body.rrf_k,
            body.query_top_k,
            dense_given=False,
            own_dense=bool(retriever.spec.dense_dim),
        )
        encoded = await batcher.encode(
            [body.query], role="query", dense=chosen.fusion is not None, top_k=chosen.query_top_k
        )
        try:
            hits = await searcher.run(
                retriever.search_encoded,
                encoded.sparse[0],
                dense=None if encoded.dense is None else encoded.dense[0],
                k=body.k,
                filter=conditions,
                hybrid=str(chosen.fusion) if chosen.fusion is not None else NO_FUSION,
                weights=chosen.weights,
                rrf_k=chosen.rrf_k,
                query_top_k=chosen.query_top_k,
                explain=body.explain,
                group_by_document=body.documents,
            )
        except BackendError:
            searcher.forget(collection)  # the collection may have been dropped: check it again next time
            raise
        return [hit_body(hit) for hit in hits]

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        responses=_errors(503),
        summary="The model served and whether the server is ready",
    )
    async def healthz(request: Request) -> Any:
        """Open to everyone (no API key): load balancers probe it."""
        ready = bool(request.app.state.ready)
        body = {
            "status": "ok" if ready else "starting",
            "ready": ready,
            "search": searcher is not None,
            "runtime": encoder.runtime,
            "precision": encoder.precision,
            **identity,
        }
        return body if ready else JSONResponse(body, status_code=503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses=_errors(*auth),
        dependencies=protected,
        summary="Prometheus metrics",
    )
    async def prometheus_metrics() -> Response:
        """Requests by endpoint and status, latency, micro-batch sizes and queue depth, in Prometheus text format."""
        content, media_type = metrics.render()
        return Response(content, media_type=media_type)

    return app


def hit_body(hit: SearchHit) -> dict[str, Any]:
    """One search hit as the API returns it (``SearchHitBody``)."""
    return {
        "id": hit.id,
        "doc_id": hit.doc_id,
        "score": float(hit.score),
        "text": hit.text,
        "metadata": dict(hit.metadata),
        "chunk_index": hit.chunk_index,
        "features": None
        if hit.features is None
        else [{"feature": int(f.feature), "weight": float(f.weight), "label": f.label} for f in hit.features],
    }


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"detail": "<one line>"}``, secrets masked, with the right status."""

    async def splare_error(request: Request, error: Exception) -> JSONResponse:
        status = error.status if isinstance(error, LimitError) else _status_of(error)
        headers = {"Retry-After": str(getattr(error, "retry_after", 1))} if status == 503 else None
        return _error(status, str(error), headers)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _error(422, _validation_message(error.errors()))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        cause = error.__cause__
        if isinstance(cause, UnicodeDecodeError):  # FastAPI answers 400 for a body JSON cannot decode
            return _error(422, f"the body is not valid UTF-8 (at byte {cause.start}): send JSON encoded as UTF-8")
        return _error(error.status_code, str(error.detail), None if error.headers is None else dict(error.headers))

    app.add_exception_handler(SplareError, splare_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _status_of(error: Exception) -> int:
    return next(status for kind, status in _STATUS if isinstance(error, kind))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": safe_message(message)}, status_code=status, headers=headers)


def _validation_message(errors: Any) -> str:
    """pydantic's errors as one line: where and what, never the input (it may be a whole document)."""
    parts = []
    for error in list(errors)[:3]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more


class InternalErrorMiddleware:
    """An error nothing else handled becomes a 500 with a one-line body and a one-line log.

    Starlette would answer the same 500 but re-raise the error so that the server logs
    its traceback, which can carry request data or secrets; here the log line is
    redacted, and ``SPLARE_DEBUG=1`` adds the traceback.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            LOGGER.error(
                "internal error on %s: %s",
                scope.get("path", "?"),
                safe_message(f"{type(error).__name__}: {error}"),
                exc_info=error if os.environ.get("SPLARE_DEBUG") else None,
            )
            if not started:
                response = _error(500, "internal error (the server log has the details)")
                await response(scope, receive, send)
