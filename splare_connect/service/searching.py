"""Searches for the service: one :class:`~splare_connect.retriever.Retriever` per collection,
and the database queried in worker threads so the event loop never waits on it.

A retriever checks the collection's encoder fingerprint when it is made; it is made on
the first search of a collection and kept. A collection that does not exist is not
remembered (it may be ingested later), and a cached retriever is dropped when its
collection disappears.

The backend is called from a small thread pool (``search_threads``, 1 by default):
the :class:`~splare_connect.backends.Backend` protocol does not promise thread safety,
and the embedded Qdrant engine is not shared between threads; a database server can be
given more threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from splare_connect.errors import SplareError

if TYPE_CHECKING:
    from splare_connect.backends import Backend
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.retriever import Retriever

T = TypeVar("T")


class SearchUnavailableError(SplareError, RuntimeError):
    """The server was started without a database (HTTP 404 on ``/search``)."""


class Searcher:
    """The database side of ``/search``.

    Args:
        encoder: The server's encoder (each retriever checks collections against it).
        backend: A backend, or a function that opens one; a function is called at
            :meth:`start`, in a worker thread, and the backend it returns is closed at
            :meth:`close` (a backend passed in belongs to the caller).
        threads: Worker threads that call the backend.
    """

    def __init__(self, encoder: SplareEncoder, backend: Any, *, threads: int = 1) -> None:
        self.encoder = encoder
        self._source = backend
        self.backend: Backend | None = None
        self._owns_backend = False
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._retrievers: dict[str, Retriever] = {}
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        """Open the backend (when given a factory) in a worker thread."""
        from splare_connect.backends import Backend

        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="splare-search")
        self._lock = asyncio.Lock()
        if isinstance(self._source, Backend):
            self.backend = self._source
        else:
            self.backend = await self.run(self._source)
            self._owns_backend = True

    async def close(self) -> None:
        """Close a backend this searcher opened; stop the worker threads."""
        if self._executor is None:
            return
        if self._owns_backend and self.backend is not None:
            await self.run(self.backend.close)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``function`` in a backend worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args, **kwargs))

    async def retriever(self, collection: str) -> Retriever:
        """The collection's retriever, made (and its fingerprint checked) on first use.

        Raises:
            SearchUnavailableError: The server has no database.
            CollectionNotFoundError: No such collection (a database that cannot be asked
                raises its BackendError, not this).
            EncoderMismatchError: The collection was built by another encoder.
        """
        if self.backend is None or self._lock is None:
            raise SearchUnavailableError("this server was started without a database (serve --no-search)")
        cached = self._retrievers.get(collection)
        if cached is not None:
            return cached
        async with self._lock:
            if collection not in self._retrievers:
                self._retrievers[collection] = await self.run(self._open, collection)
            return self._retrievers[collection]

    def forget(self, collection: str) -> None:
        """Drop a cached retriever (its collection was dropped or changed)."""
        self._retrievers.pop(collection, None)

    def _open(self, collection: str) -> Retriever:
        from splare_connect.retriever import Retriever

        assert self.backend is not None
        return Retriever(self.encoder, self.backend, collection)
