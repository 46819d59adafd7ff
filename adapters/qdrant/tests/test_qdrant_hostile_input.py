"""What hostile testing found on Qdrant Edge's own write path (issue 12).

The embedded engine keeps its own rules below the sync engine's record rules: a direct
upsert of a payload it can't take is refused, not written, and a create killed half way
leaves nothing in the way of the next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import qdrant_edge

from splare_connect import RecordsRejectedError, SparseVector
from splare_connect.backends import CollectionSpec, PointRecord
from splare_connect_qdrant import create_backend


def nested(levels: int) -> dict:
    value: dict = {"v": 1}
    for _ in range(levels):
        value = {"n": value}
    return value


def test_edge_refusing_a_payload_is_a_records_rejected_error(tmp_path: Path) -> None:
    """A direct upsert (no sync engine, no record rules) of a payload Edge can't take."""
    backend = create_backend(data_dir=tmp_path / "d")
    try:
        backend.create_collection(CollectionSpec(name="c", sparse_dim=8, fingerprint={"digest": "x"}))
        vector = SparseVector(np.array([1], np.uint32), np.array([0.5], np.float32), 8)
        with pytest.raises(RecordsRejectedError, match=r"record 'bad': payload\.score is nan"):
            backend.upsert("c", [PointRecord("bad", vector, None, {"score": float("nan")})])
        backend.upsert("c", [PointRecord("good", vector, None, {"score": 1.0})])
        assert backend.count("c") == 1
    finally:
        backend.close()


def test_edge_refuses_payloads_too_deep_for_its_own_log_whoever_writes(tmp_path: Path) -> None:
    """The engine-level guard: a direct upsert (no sync engine) can't brick the collection either."""
    vector = SparseVector(np.array([1], np.uint32), np.array([0.5], np.float32), 8)
    backend = create_backend(data_dir=tmp_path / "d")
    try:
        backend.create_collection(CollectionSpec(name="c", sparse_dim=8, fingerprint={"digest": "x"}))
        with pytest.raises(RecordsRejectedError, match="nested more than 64 levels"):
            backend.upsert("c", [PointRecord("deep", vector, None, {"m": nested(130)})])
        backend.upsert("c", [PointRecord("ok", vector, None, {"m": nested(20)})])
    finally:
        backend.close()
    reopened = create_backend(data_dir=tmp_path / "d")
    try:
        assert reopened.count("c") == 1
    finally:
        reopened.close()


def test_a_create_that_failed_or_was_killed_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    # What a create killed between making the shard and writing its description leaves: the
    # proof it writes first (creating.json), and the shard. Without the proof the shard is
    # not splare-connect's and is never cleared (adapters/qdrant/tests/test_qdrant_attach_ownership.py).
    (tmp_path / "d" / "c").mkdir(parents=True)
    (tmp_path / "d" / "c" / "creating.json").write_text('{"created_by": "splare-connect"}')
    qdrant_edge.EdgeShard.create(
        str(tmp_path / "d" / "c" / "shard"),
        qdrant_edge.EdgeConfig(sparse_vectors={"splare": qdrant_edge.EdgeSparseVectorParams()}),
    ).close()
    backend = create_backend(data_dir=tmp_path / "d")
    try:
        backend.create_collection(CollectionSpec(name="c", sparse_dim=8, fingerprint={"digest": "x"}))
        assert backend.list_collections() == ["c"] and backend.count("c") == 0
    finally:
        backend.close()
