"""Dynamic micro-batching: requests that arrive together are encoded together.

An encoder call has a fixed cost (Python, tokenizer set-up, a forward pass whose
matrix products are far from full for one short query), so sixteen queries encoded in
one call take little longer than one. A web server receives queries one per request;
:class:`MicroBatcher` regroups them:

1. Each request puts its texts in a queue and awaits a future.
2. One consumer takes the first waiting request, waits at most ``max_wait_ms`` from its
   arrival for others (less when the queue already holds ``max_batch_texts`` texts),
   takes requests in arrival order up to ``max_batch_texts`` texts, groups them by
   ``(role, dense, top_k)``, and calls ``encoder.encode`` once per group in a worker thread,
   so the event loop keeps accepting requests meanwhile.
3. Each request's future gets its own slice of the result.

The queue is bounded: when the texts already waiting plus a new request's would exceed
``max_queue_texts``, the request is refused at once (:class:`QueueFullError`, HTTP 503
with ``Retry-After``): a client can retry or go elsewhere, instead of waiting without
limit behind a backlog. A request is always accepted when nothing waits.

A failing group (a text the tokenizer cannot handle) is retried request by request, so
one bad request fails alone, not the others batched with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from splare_connect.errors import SplareError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from splare_connect.encoding.encoder import EncodeResult, SplareEncoder
    from splare_connect.encoding.inputs import Role
    from splare_connect.sparse_vector import SparseVector

LOGGER = logging.getLogger(__name__)


class QueueFullError(SplareError, RuntimeError):
    """Too many texts are waiting to be encoded: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BatcherClosedError(SplareError, RuntimeError):
    """The server is shutting down: requests still waiting are refused."""


@dataclass(frozen=True)
class Encoded:
    """One request's share of a batch, in the order of its texts.

    Attributes:
        sparse: One vector per text.
        dense: ``(n, hidden)`` float32 rows, or ``None`` when not asked for.
        truncated: True where a text was cut to the model's window.
    """

    sparse: list[SparseVector]
    dense: npt.NDArray[np.float32] | None
    truncated: list[bool]


@dataclass
class _Request:
    texts: list[str]
    role: Role
    dense: bool
    future: asyncio.Future[Encoded]
    arrived: float = field(default=0.0)
    top_k: int | None = None


class MicroBatcher:
    """Encodes the texts of concurrent requests together (see the module docstring).

    Args:
        encoder: The encoder; its ``encode`` runs in one dedicated worker thread (the
            encoder serialises calls anyway, and a CPU forward pass uses every core).
        max_batch_texts: Texts per micro-batch at most.
        max_wait_ms: How long the first waiting request waits for company.
        max_queue_texts: Texts allowed to wait before requests are refused.
        batch_size: Texts per forward pass inside one ``encode`` call.
        retry_after: Seconds a refused request is told to wait.
        on_batch: Called with the number of texts of each ``encode`` call (metrics).
        on_depth: Called with the number of waiting texts whenever it changes (metrics).

    Example:
        >>> batcher = MicroBatcher(encoder)                                # doctest: +SKIP
        >>> await batcher.start()                                          # doctest: +SKIP
        >>> encoded = await batcher.encode(["list files"], role="query")   # doctest: +SKIP
        >>> encoded.sparse[0].nnz > 0                                      # doctest: +SKIP
        True
    """

    def __init__(
        self,
        encoder: SplareEncoder,
        *,
        max_batch_texts: int = 64,
        max_wait_ms: float = 5.0,
        max_queue_texts: int = 1024,
        batch_size: int = 32,
        retry_after: int = 1,
        on_batch: Callable[[int], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.encoder = encoder
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue_texts = max_queue_texts
        self.batch_size = batch_size
        self.retry_after = retry_after
        self._on_batch = on_batch or (lambda texts: None)
        self._on_depth = on_depth or (lambda texts: None)
        self._pending: deque[_Request] = deque()
        self._waiting_texts = 0
        self._in_flight: list[_Request] = []
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def waiting_texts(self) -> int:
        """Texts queued and not yet taken into a batch."""
        return self._waiting_texts

    async def start(self) -> None:
        """Start the consumer on the running event loop (the app's startup does this)."""
        if self._task is not None:
            return
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="splare-encode")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="splare-micro-batcher")

    async def close(self) -> None:
        """Stop the consumer; requests still waiting or being encoded get :class:`BatcherClosedError`."""
        self._closed = True
        stranded = [*self._pending, *self._in_flight]  # taken now: the consumer forgets its batch when cancelled
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        error = BatcherClosedError("the server is shutting down")
        for request in stranded:
            if not request.future.done():
                request.future.set_exception(error)
        self._pending.clear()
        self._set_waiting(0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def encode(
        self, texts: Sequence[str], *, role: Role, dense: bool = False, top_k: int | None = None
    ) -> Encoded:
        """Encode ``texts`` together with whatever else is waiting (``top_k``: as ``encoder.encode``).

        Raises:
            QueueFullError: Too many texts are already waiting.
            BatcherClosedError: The batcher was closed (or never started).
            SplareError: The encoder refused the texts (a bad ``role``, ``dense`` on a
                model without a dense embedding).
        """
        if self._closed or self._task is None or self._arrived is None:
            raise BatcherClosedError("the encoder is not running (the server is starting or shutting down)")
        items = list(texts)
        if self._waiting_texts and self._waiting_texts + len(items) > self.max_queue_texts:
            raise QueueFullError(
                f"the server is busy: {self._waiting_texts} texts are waiting to be encoded "
                f"(at most {self.max_queue_texts}); retry after {self.retry_after} s",
                self.retry_after,
            )
        loop = asyncio.get_running_loop()
        request = _Request(items, role, dense, loop.create_future(), loop.time(), top_k)
        self._pending.append(request)
        self._set_waiting(self._waiting_texts + len(items))
        self._arrived.set()
        return await request.future

    # ----------------------------------------------------------------- consumer
    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            if not batch:
                continue
            self._in_flight = batch
            try:
                await self._encode_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never let one batch stop the consumer
                LOGGER.exception("micro-batch failed")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
            finally:
                self._in_flight = []

    async def _gather(self) -> list[_Request]:
        """Wait for a request, then for company (up to ``max_wait`` after it arrived); take a batch."""
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = self._pending[0].arrived + self.max_wait
        while self._waiting_texts < self.max_batch_texts:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        taken: list[_Request] = []
        count = 0
        while self._pending:
            head = self._pending[0]
            if taken and count + len(head.texts) > self.max_batch_texts:
                break
            self._pending.popleft()
            self._waiting_texts -= len(head.texts)
            if head.future.done():  # the client went away while it waited
                continue
            taken.append(head)
            count += len(head.texts)
        self._set_waiting(self._waiting_texts)
        return taken

    async def _encode_batch(self, batch: list[_Request]) -> None:
        groups: dict[tuple[str, bool, int | None], list[_Request]] = {}
        for request in batch:
            groups.setdefault((request.role, request.dense, request.top_k), []).append(request)
        for (role, dense, top_k), requests in groups.items():
            try:
                result = await self._call_encoder([t for r in requests for t in r.texts], role, dense, top_k)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if len(requests) == 1:
                    _fail(requests[0], error)
                    continue
                # Find the request the encoder refused: each is encoded alone, the others still succeed.
                for request in requests:
                    try:
                        _resolve(request, await self._call_encoder(request.texts, role, dense, top_k), 0)
                    except asyncio.CancelledError:
                        raise
                    except Exception as single_error:
                        _fail(request, single_error)
                continue
            start = 0
            for request in requests:
                _resolve(request, result, start)
                start += len(request.texts)

    async def _call_encoder(self, texts: list[str], role: str, dense: bool, top_k: int | None) -> EncodeResult:
        self._on_batch(len(texts))
        call = partial(
            self.encoder.encode,
            texts,
            role=role,  # type: ignore[arg-type]  # "query" or "document": the request schema checks it
            dense=dense,
            batch_size=self.batch_size,
            show_progress=False,
            **({"top_k": top_k} if top_k is not None else {}),  # asked only when a search sets it
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _set_waiting(self, texts: int) -> None:
        self._waiting_texts = texts
        self._on_depth(texts)


def _resolve(request: _Request, result: Any, start: int) -> None:
    """Give ``request`` its rows ``start:start + n`` of an encoder result."""
    if request.future.done():
        return
    end = start + len(request.texts)
    dense = None if result.dense is None else result.dense[start:end]
    request.future.set_result(
        Encoded(sparse=result.sparse[start:end], dense=dense, truncated=[bool(t) for t in result.truncated[start:end]])
    )


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(error)
