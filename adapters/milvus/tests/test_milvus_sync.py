"""Ingest, re-sync, Retriever and the CLI on Milvus Lite, with the repository's tiny real model and man pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.documents import read_iterable
from splare_connect.filters import parse_filters
from splare_connect.retriever import Retriever
from splare_connect.sync import Syncer

REPO = Path(__file__).resolve().parents[3]


def test_ingest_resync_and_retrieve(lite, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:30]
    syncer = Syncer(tiny_encoder, lite, "man", indexed_fields=("section",))
    first = syncer.run(list(read_iterable(records)))
    assert (first.documents, first.new, first.changed, first.unchanged) == (30, 30, 0, 0)
    stored = dict(lite.iter_payloads("man", ["doc_id", "chunk_count"]))
    assert len(stored) == first.chunks_written == lite.count("man")
    assert {p["doc_id"] for p in stored.values()} == {r["id"] for r in records}

    again = syncer.run(list(read_iterable(records)))
    assert (again.unchanged, again.encoded, again.chunks_written) == (30, 0, 0)

    changed = [dict(r) for r in records]
    changed[3]["text"] = "completely new text about copying files"
    changed[4]["section"] = "9"
    del changed[5:10]
    report = syncer.run(list(read_iterable(changed)), delete_missing=True)
    assert (report.changed, report.unchanged, report.deleted_documents) == (2, 23, 5)
    by_doc: dict[str, int] = {}
    for payload in dict(lite.iter_payloads("man", ["doc_id"])).values():
        by_doc[payload["doc_id"]] = by_doc.get(payload["doc_id"], 0) + 1
    assert set(by_doc) == {r["id"] for r in changed} and by_doc[changed[3]["id"]] == 1

    # The tiny model is random: check the engine's arithmetic, not relevance. Every score is
    # the query's dot product with the stored vector, best first.
    retriever = Retriever(tiny_encoder, lite, "man")
    query = "completely new text about copying files"
    hits = retriever.search(query, k=5)
    encoded = tiny_encoder.encode_queries([query])[0]
    stored_vectors = lite.fetch_sparse("man", [h.id for h in hits])
    assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.score for h in hits] == pytest.approx([encoded.dot(stored_vectors[h.id]) for h in hits], rel=1e-5)
    assert all(h.text for h in hits)
    section = changed[4]["section"]
    filtered = retriever.search(query, k=50, filter=parse_filters([f"section={section}"]))
    assert filtered and all(h.metadata["section"] == section for h in filtered)
    for fusion in ("rrf", "weighted"):
        fused = retriever.search(query, k=5, hybrid=fusion)
        assert len(fused) == 5 and {h.doc_id for h in fused} <= set(by_doc), fusion
    [explained] = retriever.search(query, k=1, explain=True)
    assert explained.id == hits[0].id and explained.features


def test_cli_ingest_then_search(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    common = ["--backend", "milvus", "--data-dir", str(data), "--model", str(tiny_model_dir), "-c", "man"]
    runner = CliRunner()
    env = {"COLUMNS": "200", "MILVUS_URL": ""}
    ingest = runner.invoke(app, ["ingest", str(REPO / "examples" / "manpages.jsonl"), *common], env=env)
    assert ingest.exit_code == 0, ingest.output
    assert (data / "milvus.db").exists()
    found = runner.invoke(app, ["search", "copy files", *common, "--json", "-k", "3"], env=env)
    assert found.exit_code == 0, found.output
    rows = json.loads(found.stdout)
    assert len(rows) == 3 and all(row["doc_id"] and row["score"] > 0 for row in rows)
    hybrid = runner.invoke(app, ["search", "copy files", *common, "--json", "--hybrid", "weighted"], env=env)
    assert hybrid.exit_code == 0, hybrid.output
    refused = runner.invoke(app, ["search", "copy files", *common, "--hybrid", "dbsf"], env=env)
    assert refused.exit_code != 0 and "Milvus has no dbsf fusion" in refused.output
