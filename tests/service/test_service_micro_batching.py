"""The micro-batcher and the app's error handling, in process, with a fake encoder (no model, no sockets).

A fake encoder records every call, so the tests can see which requests were encoded
together; its vectors depend on the text only, so each request can check it got its
own slice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from splare_connect.errors import BadInputError
from splare_connect.sparse_vector import SparseVector

pytest.importorskip("fastapi")

from splare_connect.service.micro_batching import BatcherClosedError, MicroBatcher, QueueFullError


class FakeEncoder:
    """Encodes text ``t`` as the one feature ``len(t) % 8`` with weight ``len(t) + 1``; ``dense`` is ``[len, 1]``."""

    def __init__(self, *, delay: float = 0.0, refuse: str | None = None, crash: bool = False) -> None:
        self.config = SimpleNamespace(name="fake")
        self.fingerprint = {"digest": "f" * 32}
        self.dim, self.dense_dim, self.has_dense = 8, 2, True
        self.delay, self.refuse, self.crash = delay, refuse, crash
        self.calls: list[tuple[list[str], str, bool]] = []
        self.lock = threading.Lock()

    def encode(self, texts: list[str], *, role: str, dense: bool, batch_size: int, show_progress: bool) -> Any:
        with self.lock:
            self.calls.append((list(texts), role, dense))
            time.sleep(self.delay)
            if self.crash:
                raise RuntimeError("boom with password=hunter2 inside")
            if self.refuse is not None and self.refuse in texts:
                raise BadInputError(f"cannot encode {self.refuse!r}")
            sparse = [SparseVector(np.array([len(t) % 8]), np.array([len(t) + 1.0]), dim=8) for t in texts]
            rows = np.array([[len(t), 1.0] for t in texts], np.float32) if dense else None
            return SimpleNamespace(sparse=sparse, dense=rows, truncated=np.zeros(len(texts), bool))


async def gather_encodes(batcher: MicroBatcher, requests: list[tuple[list[str], str, bool]]) -> list[Any]:
    await batcher.start()
    try:
        tasks = [batcher.encode(texts, role=role, dense=dense) for texts, role, dense in requests]
        return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await batcher.close()


def test_requests_arriving_together_share_one_call_per_role_and_dense() -> None:
    encoder = FakeEncoder()
    batcher = MicroBatcher(encoder, max_wait_ms=50)  # type: ignore[arg-type]
    requests = [
        (["a"], "query", False),
        (["bbb", "cc"], "query", False),
        (["dddd"], "document", True),
        (["e"], "query", False),
    ]
    results = asyncio.run(gather_encodes(batcher, requests))
    assert sorted(encoder.calls, key=lambda c: c[1]) == [
        (["dddd"], "document", True),
        (["a", "bbb", "cc", "e"], "query", False),
    ]
    for (texts, _, dense), result in zip(requests, results, strict=True):
        assert [v.values.tolist() for v in result.sparse] == [[len(t) + 1.0] for t in texts]
        assert (result.dense is not None) == dense
    assert results[2].dense.tolist() == [[4.0, 1.0]]


def test_batches_hold_at_most_max_batch_texts() -> None:
    encoder = FakeEncoder()
    batcher = MicroBatcher(encoder, max_batch_texts=3, max_wait_ms=50)  # type: ignore[arg-type]
    results = asyncio.run(gather_encodes(batcher, [([f"t{i}"], "query", False) for i in range(7)]))
    assert [len(texts) for texts, _, _ in encoder.calls] == [3, 3, 1]
    assert [r.sparse[0].values.tolist() for r in results] == [[3.0]] * 7


def test_a_full_queue_refuses_and_an_empty_one_always_accepts() -> None:
    async def scenario() -> list[Any]:
        encoder = FakeEncoder(delay=0.05)
        batcher = MicroBatcher(encoder, max_queue_texts=2, max_wait_ms=20, retry_after=3)  # type: ignore[arg-type]
        await batcher.start()
        try:
            big = await batcher.encode(["a", "b", "c", "d"], role="query")  # larger than the bound, queue empty
            assert len(big.sparse) == 4
            tasks = [asyncio.ensure_future(batcher.encode([f"q{i}"], role="query")) for i in range(4)]
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await batcher.close()

    results = asyncio.run(scenario())
    refused = [r for r in results if isinstance(r, QueueFullError)]
    assert len(refused) == 2 and all(error.retry_after == 3 for error in refused)
    assert "2 texts are waiting" in str(refused[0])


def test_a_refused_text_fails_its_own_request_only() -> None:
    encoder = FakeEncoder(refuse="bad")
    batcher = MicroBatcher(encoder, max_wait_ms=50)  # type: ignore[arg-type]
    results = asyncio.run(
        gather_encodes(batcher, [(["ok"], "query", False), (["bad"], "query", False), (["fine"], "query", False)])
    )
    assert isinstance(results[1], BadInputError)
    assert results[0].sparse[0].values.tolist() == [3.0] and results[2].sparse[0].values.tolist() == [5.0]


def test_closing_refuses_waiting_requests() -> None:
    async def scenario() -> Any:
        batcher = MicroBatcher(FakeEncoder(delay=0.2), max_wait_ms=0)  # type: ignore[arg-type]
        await batcher.start()
        first = asyncio.ensure_future(batcher.encode(["a"], role="query"))
        await asyncio.sleep(0.05)  # being encoded
        second = asyncio.ensure_future(batcher.encode(["b"], role="query"))
        await asyncio.sleep(0)
        await batcher.close()
        results = await asyncio.gather(first, second, return_exceptions=True)
        with pytest.raises(BatcherClosedError):
            await batcher.encode(["c"], role="query")
        return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, BatcherClosedError) for r in results)


def test_an_unforeseen_failure_is_a_one_line_500_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    from starlette.testclient import TestClient

    from splare_connect.service.app import create_app
    from splare_connect.service.settings import ServiceSettings

    app = create_app(FakeEncoder(crash=True), None, ServiceSettings())  # type: ignore[arg-type]
    with TestClient(app) as client, caplog.at_level("ERROR", logger="splare_connect.service"):
        response = client.post("/encode", json={"texts": ["x"]})
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (the server log has the details)"}
    assert 'splare_requests_total{endpoint="/encode",status="500"} 1.0' in metrics
    [record] = [r for r in caplog.records if r.name == "splare_connect.service"]
    assert "boom" in record.getMessage() and "hunter2" not in record.getMessage() and record.exc_info is None


def test_settings_refuse_bad_values_and_keep_the_key_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    from splare_connect.errors import ConfigError
    from splare_connect.service.settings import ServiceSettings

    monkeypatch.setenv("SPLARE_API_KEY", "sekrit-value")
    settings = ServiceSettings.from_env(max_batch_texts=8)
    assert settings.api_key == "sekrit-value" and "sekrit" not in repr(settings)
    with pytest.raises(ConfigError, match="max_queue_texts must be a positive integer"):
        dataclasses.replace(settings, max_queue_texts=0)  # a changed copy is validated again
    monkeypatch.setenv("SPLARE_API_KEY", "   ")
    with pytest.raises(ConfigError, match="set but blank"):
        ServiceSettings.from_env()
