"""The conformance kit on each of Qdrant's engines.

Qdrant Edge (embedded, the default), and qdrant-client's local mode in memory and on
disk, which implements the server API: the code path a Qdrant server takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splare_connect.testing.conformance import BackendConformance
from splare_connect.testing.sync_conformance import SyncConformance
from splare_connect_qdrant import BACKEND, QdrantBackend, create_backend


class TestEdge(BackendConformance, SyncConformance):
    record = BACKEND

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[QdrantBackend]:
        opened = create_backend(data_dir=tmp_path / "edge")
        yield opened
        opened.close()


class TestLocalMemory(BackendConformance, SyncConformance):
    record = BACKEND
    runs_cli = False  # the CLI reaches Qdrant's embedded engine: TestEdge runs those scenarios

    @pytest.fixture
    def backend(self) -> Iterator[QdrantBackend]:
        opened = create_backend(location=":memory:")
        yield opened
        opened.close()


class TestLocalPath(BackendConformance, SyncConformance):
    record = BACKEND
    runs_cli = False

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[QdrantBackend]:
        opened = create_backend(path=tmp_path / "local")
        yield opened
        opened.close()
