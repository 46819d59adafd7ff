"""A collection another application made, queried before splare-connect attached to it (issue 33, defect 13).

The server's data directory holds a Qdrant Edge shard written with the engine's own API
only (no splare-connect spec), next to a collection ingested by splare-connect. ``/search``
on the app's shard is the client's mistake, answered 409 with what to run; it was a 502
("the database failed") before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from splare_connect.testing.service import RunningServer, start_server, stop_server

APP_SHARD = "kb"
DENSE = 8


def make_app_shard(data_dir: Path) -> None:
    """What a RAG application writes with qdrant-edge alone: a shard with a dense vector and a payload."""
    import qdrant_edge as edge

    config = edge.EdgeConfig(vectors={"openai": edge.EdgeVectorParams(size=DENSE, distance=edge.Distance.Cosine)})
    shard = edge.EdgeShard.create(str(data_dir / APP_SHARD), config)
    try:
        rng = np.random.default_rng(0)
        points = [
            edge.Point(i, {"openai": [float(x) for x in rng.standard_normal(DENSE)]}, {"page_content": f"doc {i}"})
            for i in range(1, 4)
        ]
        shard.update(edge.UpdateOperation.upsert_points(points))
    finally:
        shard.close()


@pytest.fixture(scope="module")
def app_data_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder, example_records) -> Path:  # type: ignore[no-untyped-def]
    from splare_connect.backends import load_backend
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    data_dir = tmp_path_factory.mktemp("app-edge")
    make_app_shard(data_dir)
    backend = load_backend("qdrant", data_dir=data_dir)
    try:
        Syncer(tiny_encoder, backend, "ours").run(read_iterable(example_records[:5]))
    finally:
        backend.close()
    return data_dir


@pytest.fixture(scope="module")
def app_server(
    tiny_model_dir: Path, app_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("app-server") / "server.log"
    running = start_server(tiny_model_dir, log, "--data-dir", str(app_data_dir), "--collection", "ours", api_key=None)
    yield running
    stop_server(running)


def test_searching_an_unattached_app_shard_is_a_409_saying_attach_it_first(app_server: RunningServer) -> None:
    response = httpx.post(app_server.url + "/search", json={"query": "doc", "collection": APP_SHARD}, timeout=30)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail
    assert f"collection {APP_SHARD!r} exists but was not created by splare-connect" in detail
    assert f"attach it first: splare-connect attach --text-field FIELD {APP_SHARD}" in detail
    # The server is fine: its own collection answers, and the refusal is repeatable.
    assert httpx.post(app_server.url + "/search", json={"query": "list files"}, timeout=30).status_code == 200
    again = httpx.post(app_server.url + "/search", json={"query": "doc", "collection": APP_SHARD}, timeout=30)
    assert again.status_code == 409


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_the_library_raises_collection_not_attached_still_a_backend_error(  # type: ignore[no-untyped-def]
    tiny_encoder, tmp_path: Path, engine: str
) -> None:
    from splare_connect.backends import load_backend
    from splare_connect.errors import BackendError, CollectionNotAttachedError
    from splare_connect.retriever import Retriever

    if engine == "edge":
        make_app_shard(tmp_path)
        backend = load_backend("qdrant", data_dir=tmp_path)
    else:  # qdrant-client's on-disk local mode: the app's collection has no splare-connect metadata
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(tmp_path / "local"))
        vectors = {"openai": models.VectorParams(size=DENSE, distance=models.Distance.COSINE)}
        client.create_collection(APP_SHARD, vectors_config=vectors, metadata={"owner": "app"})
        client.close()
        backend = load_backend("qdrant", path=tmp_path / "local")
    try:
        with pytest.raises(CollectionNotAttachedError, match="attach it first") as raised:
            Retriever(tiny_encoder, backend, APP_SHARD)
    finally:
        backend.close()
    assert isinstance(raised.value, BackendError)  # code that caught the old error keeps working
