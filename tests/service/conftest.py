"""A real ``splare-connect serve`` process for the service tests.

The server runs the tiny real model on 127.0.0.1 at a free port, with a collection of
the default (embedded) backend ingested here by the real sync engine. It is started once per
test session (model loading dominates), stopped in teardown with bounded waits, and
its log is shown when it fails to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.testing.service import (
    API_KEY,
    COLLECTION,
    RunningServer,
    free_port,
    start_server,
    stop_server,
)

__all__ = ["API_KEY", "COLLECTION", "RunningServer", "free_port", "start_server", "stop_server"]


@pytest.fixture(scope="session")
def service_data_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder, example_records) -> Path:  # type: ignore[no-untyped-def]
    """The default backend's data directory with collection ``man``: 40 pages, dense vectors, ``section`` indexed.

    The backend is closed before the server starts: an embedded collection is used by
    one process at a time. A copy (``<dir>-copy``) serves the in-process reference
    retriever while the server holds the original.
    """
    import shutil

    from splare_connect.backends import load_backend
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    data_dir = tmp_path_factory.mktemp("service-edge")
    backend = load_backend(DEFAULT_BACKEND, data_dir=data_dir)
    try:
        report = Syncer(tiny_encoder, backend, COLLECTION, indexed_fields=("section",)).run(
            read_iterable(example_records[:40])
        )
        assert report.documents == 40
    finally:
        backend.close()
    shutil.copytree(data_dir, data_dir.parent / (data_dir.name + "-copy"))
    return data_dir


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, service_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The main server: API key required, search on the Edge collection, default limits."""
    log = tmp_path_factory.mktemp("service-log") / "server.log"
    running = start_server(
        tiny_model_dir, log, "--data-dir", str(service_data_dir), "--collection", COLLECTION, "--max-wait-ms", "20"
    )
    yield running
    stop_server(running)
    assert running.process.returncode is not None


@pytest.fixture(scope="session")
def search_retriever(tiny_encoder, service_data_dir: Path):  # type: ignore[no-untyped-def]
    """An in-process retriever on a copy of the server's collection (the server holds the original's lock)."""
    from splare_connect.backends import load_backend
    from splare_connect.retriever import Retriever

    backend = load_backend(DEFAULT_BACKEND, data_dir=service_data_dir.parent / (service_data_dir.name + "-copy"))
    yield Retriever(tiny_encoder, backend, COLLECTION)
    backend.close()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
