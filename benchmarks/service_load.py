"""Load on the encoder service: micro-batched HTTP requests against sequential library calls.

Starts ``splare-connect serve --no-search`` on 127.0.0.1 (the default model, or
``--model PATH``), then on the same machine:

1. **Library baseline**: ``encoder.encode([q], role="query")`` called sequentially in
   this process (the server idle meanwhile), one short query at a time.
2. **Service**: single-query ``POST /encode`` requests (``role=query``) from 1, 4 and 16
   concurrent clients (threads, one keep-alive connection each), a bounded number of
   requests and seconds per level. Reported per level: requests/s, p50/p99 latency, and
   the mean micro-batch size from ``/metrics`` (texts per encoder call).
3. **Micro-batching gain**: service throughput at the highest level / library throughput.
4. **Server memory**: peak RSS of the server process (``VmHWM`` in ``/proc/<pid>/status``).
5. **Saturation**: a second server with a small queue bound (``--saturation-queue``),
   hit by ``--saturation-clients`` clients at once without retries: the share of 503
   refusals, and the latency of the accepted requests and of the refusals.

Queries are man-page titles from ``examples/manpages.jsonl`` ("how to use <title>").
Both sides run on the same CPU at different times, so the figures compare the two ways
of calling the same model, not two machines.

    python benchmarks/service_load.py --json .bench/service_load.json
    python benchmarks/service_load.py --model /path/to/tiny-model --requests 40 --sequential 40   # smoke run

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from report import percentile, print_and_save

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "manpages.jsonl"


def queries(count: int) -> list[str]:
    """``count`` short queries from the example corpus's titles (cycled if needed)."""
    with EXAMPLES.open(encoding="utf-8") as lines:
        titles = [json.loads(line)["title"] for line in lines]
    base = [f"how to use {title}" for title in titles]
    return [base[i % len(base)] for i in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A ``splare-connect serve`` subprocess on 127.0.0.1, stopped on exit (bounded waits)."""

    def __init__(self, model: str | None, options: list[str], log: Path, start_timeout: float = 600.0) -> None:
        import httpx

        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "splare_connect.cli", "serve", "--no-search", "--host", "127.0.0.1"]
        command += ["--port", self.url.rsplit(":", 1)[1], *(["--model", model] if model else []), *options]
        env = {k: v for k, v in os.environ.items() if k != "SPLARE_API_KEY"}
        env["SPLARE_LOG_LEVEL"] = "warning"
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited ({self.process.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise SystemExit(f"the server did not start within {start_timeout:.0f} s:\n{log.read_text()[-2000:]}")

    def peak_rss_mb(self) -> float:
        """The server's peak resident set size (VmHWM), in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else float("nan")

    def batch_stats(self) -> tuple[float, float]:
        """(encoder calls, texts encoded) so far, from /metrics."""
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=10).text
        values = {}
        for name in ("splare_encode_batch_texts_count", "splare_encode_batch_texts_sum"):
            match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
            values[name] = float(match.group(1)) if match else 0.0
        return values["splare_encode_batch_texts_count"], values["splare_encode_batch_texts_sum"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def load(url: str, texts: list[str], clients: int, max_seconds: float) -> dict[str, object]:
    """``len(texts)`` single-query requests from ``clients`` threads; stops early after ``max_seconds``."""
    import httpx

    lock = threading.Lock()
    position = 0
    accepted: list[float] = []
    refused: list[float] = []
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)  # the clients and this thread: all start at once
    stop_at = [float("inf")]

    def client() -> None:
        nonlocal position
        with httpx.Client(base_url=url, timeout=120) as session:
            session.get("/healthz")  # open the connection before the clock starts
            barrier.wait()
            while True:
                with lock:
                    if position >= len(texts) or time.perf_counter() > stop_at[0]:
                        return
                    text = texts[position]
                    position += 1
                started = time.perf_counter()
                response = session.post("/encode", json={"texts": [text], "role": "query"})
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        accepted.append(elapsed)
                    elif response.status_code == 503:
                        refused.append(elapsed)
                    else:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 600.0 + max_seconds  # until every client is connected
    barrier.wait(timeout=600)
    started = time.perf_counter()
    stop_at[0] = started + max_seconds
    for thread in threads:
        thread.join(timeout=max_seconds + 180)
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"unexpected answers at {clients} clients: {errors[:3]}")
    done = len(accepted) + len(refused)
    return {
        "requests": done,
        "rps": len(accepted) / wall if wall else 0.0,
        "p50_ms": 1000 * percentile(accepted, 0.50) if accepted else float("nan"),
        "p99_ms": 1000 * percentile(accepted, 0.99) if accepted else float("nan"),
        "refused": len(refused),
        "refused_p99_ms": 1000 * percentile(refused, 0.99) if refused else float("nan"),
    }


def library_baseline(model: str | None, texts: list[str], options: dict[str, str]) -> dict[str, float]:
    """Sequential ``encoder.encode([q], role="query")`` in this process."""
    from splare_connect import SplareEncoder

    encoder = SplareEncoder.from_pretrained(model, **options)
    for text in texts[:5]:  # warm-up
        encoder.encode([text], role="query")
    latencies = []
    started = time.perf_counter()
    for text in texts:
        begun = time.perf_counter()
        encoder.encode([text], role="query")
        latencies.append(time.perf_counter() - begun)
    wall = time.perf_counter() - started
    del encoder
    return {
        "rps": len(texts) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model name or directory (default: the default model)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--runtime", default="torch")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=800, help="requests per level at most")
    parser.add_argument("--sequential", type=int, default=300, help="library calls in the baseline")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="seconds per level at most")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--saturation-clients", type=int, default=32)
    parser.add_argument("--saturation-queue", type=int, default=4, help="the saturation server's --max-queue")
    parser.add_argument("--saturation-requests", type=int, default=800)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if args.model is None:
        from splare_connect.models import resolve_model

        try:
            resolve_model(None)
        except Exception as error:  # the default model cannot be built here
            raise SystemExit(f"the default model is not available ({error}); pass --model PATH") from None
    model_options = {"precision": args.precision, "runtime": args.runtime}
    cli_options = ["--precision", args.precision, "--runtime", args.runtime]
    texts = queries(max(args.requests, args.sequential, args.saturation_requests))
    result: dict[str, object] = {"model": args.model or "default", "cpus": os.cpu_count() or 0}

    baseline = library_baseline(args.model, texts[: args.sequential], model_options)
    result |= {f"library_{key}": value for key, value in baseline.items()}

    with tempfile.TemporaryDirectory(prefix="splare-service-load-") as scratch:
        batching = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        server = Server(args.model, [*cli_options, *batching], Path(scratch) / "server.log")
        try:
            load(server.url, texts[:20], 1, 30.0)  # warm-up
            for clients in args.levels:
                calls_before, texts_before = server.batch_stats()
                level = load(server.url, texts[: args.requests], clients, args.max_seconds)
                calls, encoded = server.batch_stats()
                level["mean_batch"] = (encoded - texts_before) / max(1.0, calls - calls_before)
                result |= {f"service_c{clients}_{key}": value for key, value in level.items() if "refused" not in key}
            top = max(args.levels)
            result["batching_gain"] = float(result[f"service_c{top}_rps"]) / baseline["rps"]  # type: ignore[arg-type]
            result["server_peak_rss_mb"] = server.peak_rss_mb()
        finally:
            server.stop()

        saturation_options = ["--max-queue", str(args.saturation_queue), *batching]
        server = Server(args.model, [*cli_options, *saturation_options], Path(scratch) / "saturated.log")
        try:
            load(server.url, texts[:10], 1, 30.0)  # warm-up
            level = load(server.url, texts[: args.saturation_requests], args.saturation_clients, args.max_seconds)
            result["saturation_clients"] = args.saturation_clients
            result["saturation_queue"] = args.saturation_queue
            result["saturation_refused_share"] = int(level["refused"]) / max(1, int(level["requests"]))  # type: ignore[call-overload]
            result["saturation_accepted_rps"] = level["rps"]
            result["saturation_accepted_p50_ms"] = level["p50_ms"]
            result["saturation_accepted_p99_ms"] = level["p99_ms"]
            result["saturation_refused_p99_ms"] = level["refused_p99_ms"]
        finally:
            server.stop()
    print_and_save(result, args.json, digits=2)


if __name__ == "__main__":
    main()
