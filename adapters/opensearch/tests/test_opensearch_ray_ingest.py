"""Ray Data ingest on OpenSearch: every worker writes to the server itself.

The cluster is the in-memory index served over HTTP on 127.0.0.1 (:mod:`opensearch_http`),
so the workers reach it through the real client as they would a real cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from opensearch_http import serve_cluster  # noqa: E402
from opensearch_memory import MemoryCluster  # noqa: E402

from splare_connect.backends.location import BackendLocation  # noqa: E402
from splare_connect.distributed.ray_ingest import EncoderRecipe, RayIngest  # noqa: E402
from splare_connect.documents import read_source  # noqa: E402
from splare_connect.sync import Syncer, SyncReport  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield
    ray.shutdown()


def write_jsonl(path: Path, records: list[dict], bad_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in records]
    for position, bad in enumerate(bad_lines):
        lines.insert(3 + 5 * position, bad)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def counts(report: SyncReport) -> dict[str, Any]:
    data = report.to_dict()
    return {
        key: data[key]
        for key in ("documents", "new", "changed", "unchanged", "deleted_documents", "chunks_written", "skipped")
    }


def test_workers_write_to_a_server_themselves(
    tmp_path: Path, local_cluster: None, tiny_encoder, tiny_model_dir: Path, example_records: list[dict]
) -> None:  # type: ignore[no-untyped-def]
    """A database server takes writes from every worker; the index equals a local sync's."""
    source = write_jsonl(tmp_path / "docs.jsonl", example_records[:20], ("[1, 2]",))
    cluster = MemoryCluster()
    with serve_cluster(cluster) as url:
        location = BackendLocation("opensearch", url=url, options=("replicas=0",))
        backend = location.open()
        try:
            expected = Syncer(tiny_encoder, backend, "local", documents_per_write=3).run(read_source(source))
            ingest = RayIngest(
                Syncer(tiny_encoder, backend, "remote", documents_per_write=3),
                EncoderRecipe(model=str(tiny_model_dir)),
                location=location,
            )
            assert ingest.workers_write
            report = ingest.run(read_source(source))
        finally:
            backend.close()
    assert counts(report) == counts(expected)
    assert cluster.documents["remote"] == cluster.documents["local"]
    assert cluster.mappings["remote"] == cluster.mappings["local"]
