"""The default model end to end on a live OpenSearch cluster (runs only when OPENSEARCH_URL is set)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app

pytest.importorskip("splare_connect_opensearch")
pytestmark = [
    pytest.mark.default_model,
    pytest.mark.skipif(
        not os.environ.get("OPENSEARCH_URL"), reason="OPENSEARCH_URL is not set: no OpenSearch cluster to test against"
    ),
]

INDEX = "splare-connect-live-test"


def test_cli_ingest_sparse_and_hybrid_search(tmp_path: Path, example_records: list[dict]) -> None:
    wanted = {"cp.1", "ls.1", "chmod.1", "tar.1", "mv.1"}
    chosen = [r for r in example_records if r["id"] in wanted] + [
        r for r in example_records[:20] if r["id"] not in wanted
    ]
    source = tmp_path / "pages.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    runner = CliRunner()
    base = ["--backend", "opensearch", "--collection", INDEX]
    runner.invoke(app, ["collections", "drop", INDEX, "--yes", "--backend", "opensearch"])
    ingest = runner.invoke(app, ["ingest", str(source), *base, "--index-field", "section", "--json"])
    assert ingest.exit_code == 0, ingest.output
    sparse = runner.invoke(app, ["search", "copy files and directories", *base, "-k", "3", "--json"])
    assert "cp.1" in [hit["doc_id"] for hit in json.loads(sparse.stdout)]
    hybrid = runner.invoke(
        app, ["search", "change file permissions", *base, "--hybrid", "rrf", "--documents", "--json"]
    )
    assert "chmod.1" in [hit["doc_id"] for hit in json.loads(hybrid.stdout)]
    filtered = runner.invoke(app, ["search", "list files", *base, "--filter", "section=1", "--json"])
    assert all(hit["metadata"]["section"] == "1" for hit in json.loads(filtered.stdout))
    again = runner.invoke(app, ["sync", str(source), *base, "--json"])
    assert json.loads(again.stdout)["unchanged"] == len(chosen)
    assert runner.invoke(app, ["collections", "drop", INDEX, "--yes", "--backend", "opensearch"]).exit_code == 0
