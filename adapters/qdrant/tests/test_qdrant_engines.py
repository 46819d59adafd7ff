"""The Qdrant adapter's engine choice and what only the embedded engine does.

The search, filter, write and spec scenarios every engine shares are the conformance kit's,
run on each engine by ``test_qdrant_conformance.py``; Edge's own write-path guards are in
``test_qdrant_hostile_input.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from splare_connect import BackendError, ConfigError
from splare_connect.backends import CollectionSpec
from splare_connect.testing.points import DIM, FINGERPRINT, make_points

pytest.importorskip("splare_connect_qdrant")
from splare_connect_qdrant import ClientDriver, EdgeDriver, QdrantBackend, create_backend


def test_edge_panics_become_backend_errors(tmp_path: Path) -> None:
    import qdrant_edge as edge

    from splare_connect.backends.engine_calls import call_engine

    shard = edge.EdgeShard.create(
        str(tmp_path / "shard"), edge.EdgeConfig(sparse_vectors={"s": edge.EdgeSparseVectorParams()})
    )
    bad = edge.Point(1, {"s": edge.SparseVector([1, 2, 3], [0.5])}, {})  # lengths differ: Edge panics
    with pytest.raises(BackendError, match="upsert failed"):
        call_engine("upsert", lambda: shard.update(edge.UpdateOperation.upsert_points([bad])))
    shard.close()


def test_edge_collections_persist_across_processes_and_reopen(tmp_path: Path) -> None:
    first = create_backend(data_dir=tmp_path)
    first.create_collection(CollectionSpec("persist", sparse_dim=DIM, fingerprint=FINGERPRINT, dense_dim=8))
    points = make_points(40, seed=3)
    first.upsert("persist", points)
    first.finalize("persist")
    first.close()
    second = create_backend(data_dir=tmp_path)
    assert second.list_collections() == ["persist"] and second.count("persist") == 40
    assert second.search("persist", points[7].sparse, k=1)[0].id == points[7].id
    second.close()


def test_backend_selection_and_bad_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    embedded, local = create_backend(data_dir=tmp_path), create_backend(location=":memory:")
    assert isinstance(embedded, QdrantBackend) and isinstance(embedded.driver, EdgeDriver)
    assert isinstance(local, QdrantBackend) and isinstance(local.driver, ClientDriver)
    with pytest.raises(ConfigError, match="only one of"):
        create_backend(url="http://localhost:6333", path=tmp_path)
    with pytest.raises(BackendError, match="collection name"):
        create_backend(data_dir=tmp_path).describe_collection("../escape")
