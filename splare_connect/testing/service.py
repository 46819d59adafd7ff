"""A real ``splare-connect serve`` process for tests: started on 127.0.0.1 at a free port, stopped with bounded waits.

The root service tests and adapters' tests (a database's own connector to the service)
start it with :func:`start_server` and stop it with :func:`stop_server`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["API_KEY", "COLLECTION", "RunningServer", "free_port", "start_server", "stop_server"]

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
