"""A RAG application's own Qdrant collection, written and read with the engine's own API only.

The attach tests play this application: it makes its collection (a named dense vector
``openai``, a payload of ``page_content`` + ``metadata``, its own integer and UUID point
ids) and edits it as apps do, while splare-connect attaches to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from splare_connect.backends.schema import STATE_KEY
from splare_connect_qdrant import create_backend

DENSE = 8
ENGINES = ["edge", "local-memory", "local-path"]


def app_id(i: int) -> int | str:
    """The app's own ids: integers for odd points, UUIDs for even ones."""
    return i if i % 2 else f"00000000-0000-4000-8000-{i:012d}"


def short(record: dict[str, Any]) -> str:
    """A record's text cut to fit the tiny model's 22-token window (long texts have a test of their own)."""
    return record["text"][:40]


def app_vector(i: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(i).standard_normal(DENSE)]


class App:
    """A RAG application's own collection, written and read with the engine's own API only."""

    def __init__(self, engine: str, tmp_path: Path, *, distance: str = "cosine") -> None:
        self.engine = engine
        self.distance = distance  # "dot" keeps vectors exactly as written (cosine ones read back normalised)
        self.tmp_path = tmp_path
        self.client: Any = None
        self.shard: Any = None

    # -- the app's writes
    def create(self, records: list[dict[str, Any]]) -> None:
        points = [
            (
                app_id(i),
                app_vector(i),
                {
                    "page_content": short(r),
                    "metadata": {"source": r["id"], "title": r["title"]},
                    "record_id": f"app-{i}",  # a key of the app's own that splare-connect's records also use
                },
            )
            for i, r in enumerate(records)
        ]
        points.append((9001, app_vector(9001), {"metadata": {"source": "no-text"}}))
        points.append((9002, app_vector(9002), {"page_content": 42, "metadata": {"source": "number"}}))
        if self.engine == "edge":
            import qdrant_edge as edge

            config = edge.EdgeConfig(
                vectors={
                    "openai": edge.EdgeVectorParams(
                        size=DENSE, distance=edge.Distance.Dot if self.distance == "dot" else edge.Distance.Cosine
                    )
                }
            )
            self.shard = edge.EdgeShard.create(str(self.tmp_path / "edge" / "kb"), config)
            self.upsert(points)
            self.close()
            return
        from qdrant_client import QdrantClient, models

        self.client = (
            QdrantClient(":memory:")
            if self.engine == "local-memory"
            else QdrantClient(path=str(self.tmp_path / "local"))
        )
        self.client.create_collection(
            "kb",
            vectors_config={
                "openai": models.VectorParams(
                    size=DENSE, distance=models.Distance.DOT if self.distance == "dot" else models.Distance.COSINE
                )
            },
            metadata={"owner": "app"},
        )
        self.upsert(points)
        if self.engine == "local-path":
            self.close()

    def upsert(self, points: list[tuple[Any, list[float], dict[str, Any]]]) -> None:
        if self.engine == "edge":
            import qdrant_edge as edge

            self._shard().update(
                edge.UpdateOperation.upsert_points([edge.Point(i, {"openai": v}, p) for i, v, p in points])
            )
            return
        from qdrant_client import models

        self._client().upsert("kb", [models.PointStruct(id=i, vector={"openai": v}, payload=p) for i, v, p in points])

    def set_text(self, point: Any, text: str) -> None:
        if self.engine == "edge":
            import qdrant_edge as edge

            self._shard().update(edge.UpdateOperation.set_payload([point], {"page_content": text}))
            return
        self._client().set_payload("kb", {"page_content": text}, points=[point])

    def put(self, point: Any, vectors: dict[str, Any], payload: dict[str, Any]) -> None:
        """Upsert one whole point: ``vectors`` as :meth:`points` gives them (dense lists, sparse dicts)."""
        if self.engine == "edge":
            import qdrant_edge as edge

            engine_vectors = {
                name: edge.SparseVector(v["indices"], v["values"]) if isinstance(v, dict) else v
                for name, v in vectors.items()
            }
            self._shard().update(edge.UpdateOperation.upsert_points([edge.Point(point, engine_vectors, payload)]))
            return
        from qdrant_client import models

        engine_vectors = {name: models.SparseVector(**v) if isinstance(v, dict) else v for name, v in vectors.items()}
        self._client().upsert("kb", [models.PointStruct(id=point, vector=engine_vectors, payload=payload)])

    def set_payload(self, point: Any, payload: dict[str, Any]) -> None:
        """Merge keys into one point's payload (Qdrant's ``set_payload``)."""
        if self.engine == "edge":
            import qdrant_edge as edge

            self._shard().update(edge.UpdateOperation.set_payload([point], payload))
            return
        self._client().set_payload("kb", payload, points=[point])

    def delete_payload_key(self, point: Any, key: str) -> None:
        """Remove one key from a point's payload."""
        if self.engine == "edge":
            import qdrant_edge as edge

            self._shard().update(edge.UpdateOperation.delete_payload([point], [key]))
            return
        self._client().delete_payload("kb", [key], points=[point])

    def delete(self, point: Any) -> None:
        if self.engine == "edge":
            import qdrant_edge as edge

            self._shard().update(edge.UpdateOperation.delete_points([point]))
            return
        from qdrant_client import models

        self._client().delete("kb", points_selector=models.PointIdsList(points=[point]))

    # -- the app's reads
    def points(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Every point: (payload, vectors), vectors as plain lists."""
        if self.engine == "edge":
            import qdrant_edge as edge

            records, _ = self._shard().scroll(edge.ScrollRequest(limit=10_000, with_payload=True, with_vector=True))
        else:
            records, _ = self._client().scroll("kb", limit=10_000, with_payload=True, with_vectors=True)
        found = {}
        for record in records:
            vectors = {}
            for name, vector in (record.vector or {}).items():
                vectors[name] = (
                    {"indices": list(vector.indices), "values": [float(v) for v in vector.values]}
                    if hasattr(vector, "indices")
                    else [float(v) for v in vector]
                )
            found[str(record.id)] = (dict(record.payload or {}), vectors)
        return found

    def snapshot_of_theirs(self) -> bytes:
        """Bytes of everything the app owns: ids, payload without ``_splare``, vectors but ``splare``.

        Read afresh from disk where the engine is on disk: qdrant-client's local mode shows
        cosine vectors normalised in memory but stores them as given.
        """
        self.close()
        theirs = {
            point: (
                {k: v for k, v in payload.items() if k != STATE_KEY},
                {k: v for k, v in vectors.items() if k != "splare"},
            )
            for point, (payload, vectors) in self.points().items()
        }
        return json.dumps(theirs, sort_keys=True).encode()

    def snapshot_of_everything(self) -> bytes:
        """Bytes of every point (all payload keys, all vectors), the vector fields and the collection's metadata."""
        self.close()
        points = self.points()
        if self.engine == "edge":
            folder = self.tmp_path / "edge" / "kb"
            config = json.loads((folder / "edge_config.json").read_text())
            fields = {
                "vectors": sorted(config.get("vectors") or {}),
                "sparse": sorted(config.get("sparse_vectors") or {}),
            }
            metadata: Any = (folder / "splare_connect.json").is_file()  # our spec (the lock file holds none)
        else:
            info = self._client().get_collection("kb")
            vectors = info.config.params.vectors
            fields = {
                "vectors": sorted(vectors) if isinstance(vectors, dict) else [""],
                "sparse": sorted(info.config.params.sparse_vectors or {}),
            }
            metadata = info.config.metadata
            if self.engine == "local-path":
                self.close()
        return json.dumps({"points": points, "fields": fields, "metadata": metadata}, sort_keys=True).encode()

    # -- handing the engine to splare-connect
    def backend(self) -> Any:
        """splare-connect's backend on the same collection (the app first closes what the engine holds exclusively)."""
        self.close()
        if self.engine == "edge":
            return create_backend(data_dir=self.tmp_path / "edge")
        if self.engine == "local-path":
            return create_backend(path=self.tmp_path / "local")
        return create_backend(client=self.client)

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        if self.client is not None and self.engine == "local-path":
            self.client.close()
            self.client = None

    def _shard(self) -> Any:
        if self.shard is None:
            import qdrant_edge as edge

            self.shard = edge.EdgeShard.load(str(self.tmp_path / "edge" / "kb"))
        return self.shard

    def _client(self) -> Any:
        if self.client is None:
            from qdrant_client import QdrantClient

            self.client = QdrantClient(path=str(self.tmp_path / "local"))
        return self.client
