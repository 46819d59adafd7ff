"""The conformance kit on OpenSearch: the real client over an in-memory index, and a live cluster.

:mod:`opensearch_memory` answers the recorded requests with the clauses' documented
semantics and keeps document weights as ``rank_features`` does (9 significant bits, as
the record's capabilities say). It does not model search pipelines, so the hybrid
scenarios are skipped there; the fusion requests are pinned in
``test_opensearch_requests.py``, and a live cluster (``$OPENSEARCH_URL``) runs them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opensearch_memory import MemoryCluster

from splare_connect.testing.conformance import BackendConformance
from splare_connect.testing.sync_conformance import SyncConformance
from splare_connect_opensearch import BACKEND, OpenSearchBackend, create_backend


class TestInMemoryIndex(BackendConformance, SyncConformance):
    record = BACKEND
    engine_fuses = False

    @pytest.fixture
    def backend(self) -> Iterator[OpenSearchBackend]:
        opened = create_backend(client=MemoryCluster().client(), replicas=0, backoff_seconds=0.001)
        yield opened
        opened.close()


@pytest.mark.skipif(not os.environ.get("OPENSEARCH_URL"), reason="OPENSEARCH_URL is not set: no cluster to run on")
class TestLiveCluster(BackendConformance, SyncConformance):
    record = BACKEND

    @pytest.fixture
    def backend(self) -> Iterator[OpenSearchBackend]:
        opened = create_backend(replicas=0)
        made = ("docs", "raw", "blank", "man", "chunks", "mixed", "blanks", "sharded", "guarded", "forms")
        for name in made:  # only the indexes these scenarios make are ever dropped
            if opened.describe_collection(name) is not None:
                opened.drop_collection(name)
        yield opened
        for name in made:
            if opened.describe_collection(name) is not None:
                opened.drop_collection(name)
        opened.close()
