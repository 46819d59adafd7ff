"""End to end with the default model: the CLI and the Retriever on embedded Qdrant Edge,
and the same scenario against a real Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.models.registry import DEFAULT_MODEL

pytest.importorskip("splare_connect_qdrant")
pytestmark = pytest.mark.default_model

WANTED = {"cp.1", "ls.1", "chmod.1", "tar.1", "mv.1", "rm.1", "grep.1", "ssh.1", "find.1"}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory, example_records: list[dict]) -> Path:
    chosen = [r for r in example_records if r["id"] in WANTED]
    chosen += [r for r in example_records[:30] if r["id"] not in WANTED]
    path = tmp_path_factory.mktemp("corpus") / "pages.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    return path


def test_cli_ingest_and_search_on_embedded_qdrant(small_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SPLARE_DATA_DIR": str(tmp_path / "data")}
    ingest = runner.invoke(app, ["ingest", str(small_corpus), "--index-field", "section", "--json"], env=env)
    assert ingest.exit_code == 0, ingest.output
    report = json.loads(ingest.stdout)
    assert report["new"] == report["documents"] >= 35 and report["skipped"] == []

    search = runner.invoke(app, ["search", "copy files and directories", "-k", "3", "--json"], env=env)
    assert search.exit_code == 0, search.output
    assert "cp.1" in [hit["doc_id"] for hit in json.loads(search.stdout)]
    # The OpenVINO runtime writes the same vectors, so it searches the collection torch wrote.
    fast = runner.invoke(
        app, ["search", "copy files and directories", "-k", "3", "--runtime", "openvino", "--json"], env=env
    )
    assert fast.exit_code == 0, fast.output
    assert [hit["doc_id"] for hit in json.loads(fast.stdout)] == [hit["doc_id"] for hit in json.loads(search.stdout)]

    hybrid = runner.invoke(
        app, ["search", "change file permissions", "-k", "3", "--hybrid", "rrf", "--documents", "--json"], env=env
    )
    assert "chmod.1" in [hit["doc_id"] for hit in json.loads(hybrid.stdout)]

    filtered = runner.invoke(app, ["search", "list files", "--filter", "section=1", "--explain", "--json"], env=env)
    hits = json.loads(filtered.stdout)
    assert hits and all(hit["metadata"]["section"] == "1" for hit in hits)
    assert all(abs(sum(f[1] for f in hit["features"]) - hit["score"]) < 1e-3 * max(1, hit["score"]) for hit in hits)

    info = runner.invoke(app, ["collections", "info", "splare", "--json"], env=env)
    assert json.loads(info.stdout)["encoder"]["name"] == DEFAULT_MODEL
    again = runner.invoke(app, ["sync", str(small_corpus), "--json"], env=env)
    assert json.loads(again.stdout)["unchanged"] == report["documents"]
    dropped = runner.invoke(app, ["collections", "drop", "splare", "--yes"], env=env)
    assert dropped.exit_code == 0
    listed = runner.invoke(app, ["collections", "list", "--json"], env=env)
    assert json.loads(listed.stdout) == []


def test_bad_records_exit_with_status_3(tmp_path: Path, small_corpus: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_text(small_corpus.read_text(encoding="utf-8").splitlines()[0] + '\n{"id": 5}\n')
    result = CliRunner().invoke(app, ["ingest", str(source), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 3
    assert f"{source}:2: text is missing" in result.output


def test_example_rag_script(tmp_path: Path) -> None:
    import runpy
    import sys

    script = Path(__file__).resolve().parents[3] / "examples" / "rag_search.py"
    argv = sys.argv
    sys.argv = [str(script), "--limit", "25", "--data-dir", str(tmp_path / "data")]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert (tmp_path / "data" / "manpages" / "collection.json").is_file()


@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="QDRANT_URL is not set: no Qdrant server to test against")
def test_same_scenario_on_a_real_qdrant_server(small_corpus: Path) -> None:
    from splare_connect import SplareEncoder
    from splare_connect.backends import load_backend
    from splare_connect.documents import read_source
    from splare_connect.retriever import Retriever
    from splare_connect.sync import Syncer

    encoder = SplareEncoder.from_pretrained()
    backend = load_backend("qdrant", url=os.environ["QDRANT_URL"])
    name = "splare_connect_integration"
    if backend.describe_collection(name) is not None:
        backend.drop_collection(name)
    report = Syncer(encoder, backend, name, indexed_fields=("section",)).run(read_source(small_corpus))
    assert report.new == report.documents
    hits = Retriever(encoder, backend, name).search("copy files and directories", k=3, hybrid="rrf")
    assert "cp.1" in [h.doc_id for h in hits]
    backend.drop_collection(name)
