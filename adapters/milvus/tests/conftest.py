"""The kit's fixtures (the tiny real models, the example records), and a Milvus Lite backend per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from splare_connect.testing.fixtures import *  # noqa: F403 (fixtures are found by name)

pytest.importorskip("splare_connect_milvus")


@pytest.fixture
def lite(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """An empty Milvus Lite database in ``tmp_path`` (the real Milvus engine, in-process)."""
    from splare_connect_milvus import create_backend

    backend = create_backend(data_dir=tmp_path / "milvus")
    yield backend
    backend.close()
