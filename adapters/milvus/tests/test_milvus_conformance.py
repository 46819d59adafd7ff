"""The conformance kit on Milvus Lite, the real Milvus engine run in-process from a file.

The kit reads the record's capabilities: Milvus fuses with RRF (no weights) and a
weighted ranker, has no DBSF, and keeps weights exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splare_connect.testing.conformance import BackendConformance
from splare_connect.testing.sync_conformance import SyncConformance
from splare_connect_milvus import BACKEND, create_backend


class TestMilvusLite(BackendConformance, SyncConformance):
    record = BACKEND

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
        opened = create_backend(data_dir=tmp_path / "milvus")
        yield opened
        opened.close()
