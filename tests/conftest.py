"""Shared fixtures: the kit's tiny real models and example records, the default backend, a tiny dataset."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from splare_connect.backends import Backend, load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.testing.fixtures import *  # noqa: F403 (fixtures are found by name)


@pytest.fixture
def default_backend(tmp_path: Path) -> Iterator[Backend]:
    """The backend commands use when none is named, embedded under ``tmp_path``.

    The root tests need *a* backend to test the core against; each backend's own
    behaviour is tested by the conformance kit from its adapter's tests.
    """
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    yield backend
    backend.close()


@pytest.fixture
def ingest_examples(tmp_path: Path, tiny_encoder, example_records: list[dict]) -> Callable[[int], Path]:  # type: ignore[no-untyped-def]
    """Ingests the first ``count`` example man pages (dense vectors, text) as collection ``man`` of the
    default backend under ``tmp_path/data``, with the tiny model; returns that data directory."""
    from splare_connect.documents import read_iterable
    from splare_connect.sync import Syncer

    def ingest(count: int) -> Path:
        backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
        try:
            Syncer(tiny_encoder, backend, "man").run(read_iterable(example_records[:count]))
        finally:
            backend.close()
        return tmp_path / "data"

    return ingest


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
