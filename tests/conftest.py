"""Shared fixtures: a tiny real model directory, and the real Qdrant engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from splare_connect.testing.points import random_unit
from splare_connect.testing.tiny_models import build_tiny_model_dir

EXAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "examples" / "manpages.jsonl"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("other-model"), sae_seed=7, name="other")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from splare_connect import SplareEncoder

    # torch at fp32, named: the unit tests' exact reference. The default runtime (the
    # compiled graph) is tested against it in test_openvino_runtime and through the CLI.
    return SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="torch", precision="fp32")


@pytest.fixture(scope="session")
def example_records() -> list[dict]:
    """Real man-page records from examples/manpages.jsonl."""
    with EXAMPLE_CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def open_qdrant(engine: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real Qdrant engine: embedded Edge, or qdrant-client's local mode (the server API)."""
    pytest.importorskip("splare_connect_qdrant")
    from splare_connect.backends import load_backend

    options = {
        "edge": {"data_dir": tmp_path / "edge"},
        "local-memory": {"location": ":memory:"},
        "local-path": {"path": tmp_path / "local"},
    }[engine]
    return load_backend("qdrant", **options)


# Indexes the shared sync scenarios create; on a live cluster only these are ever dropped.
SCENARIO_COLLECTIONS = ("man", "chunks", "mixed", "sharded", "guarded", "forms")


@pytest.fixture(params=["edge", "local-memory", "local-path", "opensearch"])
def sync_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """The engines the sync scenarios run on: Qdrant's, and a live OpenSearch when OPENSEARCH_URL is set."""
    import os

    from splare_connect.backends import load_backend

    if request.param == "opensearch":
        pytest.importorskip("splare_connect_opensearch")
        url = os.environ.get("OPENSEARCH_URL")
        if not url:
            pytest.skip("OPENSEARCH_URL is not set: no OpenSearch cluster to run the sync scenarios against")
        backend = load_backend("opensearch", url=url, replicas=0)
        for name in SCENARIO_COLLECTIONS:
            if backend.describe_collection(name) is not None:
                backend.drop_collection(name)
        yield backend
        for name in SCENARIO_COLLECTIONS:
            if backend.describe_collection(name) is not None:
                backend.drop_collection(name)
        backend.close()
        return
    backend = open_qdrant(request.param, tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def tiny_dataset(tmp_path: Path, example_records: list[dict]) -> Path:
    """A 24-document BEIR dataset with training pairs and an en-dev query set, from real man pages."""
    root = tmp_path / "data"
    (root / "queries").mkdir(parents=True)
    (root / "qrels").mkdir()
    (root / "train").mkdir()
    records = example_records[:24]
    with (root / "corpus.jsonl").open("w") as corpus:
        for r in records:
            corpus.write(json.dumps({"_id": r["id"], "title": "", "text": r["text"][:400]}) + "\n")
    with (root / "train" / "pairs.jsonl").open("w") as pairs:
        for r in records[:16]:
            pairs.write(json.dumps({"query": r["title"] + " command", "lang": "en", "doc_id": r["id"]}) + "\n")
    with (root / "queries" / "en-dev.jsonl").open("w") as queries:
        for r in records[16:]:
            queries.write(json.dumps({"_id": "q:" + r["id"], "text": r["title"]}) + "\n")
    (root / "qrels" / "en-dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q:{r['id']}\t{r['id']}\t1\n" for r in records[16:])
    )
    return root


__all__ = ["build_tiny_model_dir", "random_unit"]
