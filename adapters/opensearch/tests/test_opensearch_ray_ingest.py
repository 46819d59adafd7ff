"""Ray Data ingest on OpenSearch: every worker writes to the server itself.

The cluster is the in-memory index served over HTTP on 127.0.0.1 (:mod:`opensearch_http`),
so the workers reach it through the real client as they would a real cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from opensearch_http import serve_cluster  # noqa: E402
from opensearch_memory import MemoryCluster  # noqa: E402

from splare_connect.backends.location import BackendLocation  # noqa: E402
from splare_connect.distributed.ray_ingest import EncoderRecipe, RayIngest  # noqa: E402
from splare_connect.documents import read_source  # noqa: E402
from splare_connect.sync import Syncer  # noqa: E402
from splare_connect.testing.ingest_runs import report_counts, write_jsonl  # noqa: E402


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
    assert report_counts(report) == report_counts(expected)
    assert cluster.documents["remote"] == cluster.documents["local"]
    assert cluster.mappings["remote"] == cluster.mappings["local"]
