"""The in-memory OpenSearch cluster (:mod:`tests.opensearch_memory`) over real HTTP on 127.0.0.1.

For tests where several processes write to one cluster (workers of a distributed
ingest): each opens its own opensearch-py client to this URL. Requests are answered one
at a time, as :class:`MemoryCluster` answers them in-process; a request it does not
model is a 500 whose body names it, so the test fails loudly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from opensearch_memory import MemoryCluster
from opensearch_recording import Request


@contextmanager
def serve_cluster(cluster: MemoryCluster) -> Iterator[str]:
    """Serve ``cluster`` on a free port of 127.0.0.1; yields its URL; stops on exit."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode("utf-8") if length else ""
            try:
                body = json.loads(text) if text else None
            except json.JSONDecodeError:
                body = text  # NDJSON (bulk) stays text
            request = Request(self.command, parts.path, dict(parse_qsl(parts.query)), body)
            try:
                with lock:
                    status, payload = cluster(request)
            except AssertionError as error:
                status, payload = 500, {"error": {"type": "not_modelled", "reason": str(error)}, "status": 500}
            raw = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is not the place for an access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
