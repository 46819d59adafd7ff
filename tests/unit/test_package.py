"""Package surface: cheap import, pinned public names, backend discovery by entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import splare_connect
from splare_connect.backends import Backend, load_backend
from splare_connect.backends.discovery import available_backends
from splare_connect.errors import ConfigError, MissingDependencyError


def test_import_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, splare_connect, splare_connect.backends;"
        "heavy = [m for m in ('torch', 'transformers', 'qdrant_client', 'qdrant_edge', 'opensearchpy') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_names_are_pinned() -> None:
    assert sorted(splare_connect.__all__) == sorted(
        [
            "BackendError",
            "BadInputError",
            "BadRecordError",
            "CheckpointError",
            "ConfigError",
            "EncodeResult",
            "EncoderConfig",
            "EncoderMismatchError",
            "MissingDependencyError",
            "PartialWriteError",
            "RecordsRejectedError",
            "SparseVector",
            "SplareEncoder",
            "SplareError",
            "__version__",
        ]
    )
    for name in splare_connect.__all__:
        assert getattr(splare_connect, name) is not None


@pytest.fixture
def third_party_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a backend the way a third-party distribution would: dist-info + entry point."""
    package = tmp_path / "toy_backend.py"
    package.write_text(
        "class ToyBackend:\n"
        "    def __init__(self, **options): self.options = options\n"
        + "".join(
            f"    def {name}(self, *a, **k): return None\n"
            for name in (
                "create_collection",
                "describe_collection",
                "list_collections",
                "drop_collection",
                "upsert",
                "delete",
                "search",
                "hybrid_search",
                "close",
                "iter_payloads",
                "count",
                "finalize",
                "fetch_sparse",
            )
        )
        + "def create(**options): return ToyBackend(**options)\n"
        + "def broken(**options): return object()\n"
    )
    dist_info = tmp_path / "toy_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[splare_connect.backends]\ntoy = toy_backend:create\nbroken = toy_backend:broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("third_party_backend")
def test_third_party_backend_is_found_by_entry_point() -> None:
    assert "toy" in available_backends()
    backend = load_backend("toy", url="http://example.invalid")
    assert isinstance(backend, Backend)
    assert backend.options == {"url": "http://example.invalid"}  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="does not implement the Backend protocol"):
        load_backend("broken")


def test_missing_backend_says_what_to_install() -> None:
    if "opensearch" not in available_backends():
        with pytest.raises(MissingDependencyError, match="pip install splare-connect-opensearch"):
            load_backend("opensearch")
    with pytest.raises(MissingDependencyError, match="no backend named 'nosuchdb'"):
        load_backend("nosuchdb")
