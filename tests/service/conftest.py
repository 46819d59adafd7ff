"""A real ``splare-connect serve`` process for the service tests.

The server runs the tiny real model on 127.0.0.1 at a free port, with an embedded
Qdrant Edge collection ingested here by the real sync engine. It is started once per
test session (model loading dominates), stopped in teardown with bounded waits, and
its log is shown when it fails to start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")
pytest.importorskip("splare_connect_qdrant")

API_KEY = "test-key-3f9a7c21"
COLLECTION = "man"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    model_dir: Path, log: Path, *options: str, api_key: str | None = API_KEY, env: dict[str, str] | None = None
) -> RunningServer:
    """Start ``splare-connect serve`` (``env`` added to its environment); wait (bounded) for /healthz's 200."""
    import httpx

    port = free_port()
    env_extra = env
    env = {key: value for key, value in os.environ.items() if key not in ("SPLARE_API_KEY", "SPLARE_DEBUG")}
    if api_key is not None:
        env["SPLARE_API_KEY"] = api_key
    env["SPLARE_LOG_LEVEL"] = "warning"
    # The tests' reference encoder (torch at fp32, as tiny_encoder): the answers are compared
    # exactly with the library's. The default runtime is compared with it in test_openvino_runtime.
    env["SPLARE_RUNTIME"] = "torch"
    env["SPLARE_PRECISION"] = "fp32"
    env.update(env_extra or {})
    command = [
        sys.executable,
        "-m",
        "splare_connect.cli",
        "serve",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    server = RunningServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise AssertionError(f"the server did not start within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def stop_server(server: RunningServer) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it has not exited within 15 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def service_data_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder, example_records) -> Path:  # type: ignore[no-untyped-def]
    """An Edge data directory with collection ``man``: 40 man pages, dense vectors, ``section`` indexed.

    The backend is closed before the server starts: an embedded collection is used by
    one process at a time. A copy (``<dir>-copy``) serves the in-process reference
    retriever while the server holds the original.
    """
    import shutil

    from splare_connect.backends import load_backend
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    data_dir = tmp_path_factory.mktemp("service-edge")
    backend = load_backend("qdrant", data_dir=data_dir)
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

    backend = load_backend("qdrant", data_dir=service_data_dir.parent / (service_data_dir.name + "-copy"))
    yield Retriever(tiny_encoder, backend, COLLECTION)
    backend.close()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
