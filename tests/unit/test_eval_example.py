"""examples/eval-mini: a dataset to try ``splare-connect eval`` on without building one (issue 35, item 7).

40 dev queries of the man-page collection in five languages over 300 pages, made by
scripts/make_eval_example.py. The eval runs on it here with the tiny model; the files
are checked to be what the script makes whenever the collection is at hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.evaluation import load_beir

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "eval-mini"
COLLECTION = REPO / "data" / "manpages"  # built as BENCHMARKS.md says; not in the repository


def test_the_example_is_small_dev_data_with_every_judged_page() -> None:
    dataset = load_beir(EXAMPLE)
    names = [s.name for s in dataset.query_sets]
    assert names == ["de-dev", "en-dev", "es-dev", "fr-dev", "ru-dev"]  # dev splits only, never test
    assert sum(len(s.queries) for s in dataset.query_sets) == 40
    assert len(dataset.doc_ids) == 300
    judged = {doc for s in dataset.query_sets for relevant in s.qrels.values() for doc in relevant}
    assert judged <= set(dataset.doc_ids)
    assert all(s.qrels.keys() == s.queries.keys() for s in dataset.query_sets)
    assert sum(f.stat().st_size for f in EXAMPLE.rglob("*") if f.is_file()) < 1_000_000


def test_eval_runs_on_the_example(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ir_measures")
    pytest.importorskip("bm25s")
    command = ["eval", str(EXAMPLE), "--model", str(tiny_model_dir), "--cache-dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["scores"]
    assert sorted(scores) == ["de-dev", "en-dev", "es-dev", "fr-dev", "ru-dev"]
    for by_system in scores.values():
        assert {"sparse", "dense", "hybrid", "bm25"} <= by_system.keys()
        assert all(0.0 <= m["nDCG@10"] <= 1.0 for m in by_system.values())


@pytest.mark.skipif(not (COLLECTION / "corpus.jsonl").is_file(), reason="data/manpages is not built here")
def test_the_script_makes_the_shipped_files(tmp_path: Path) -> None:
    script = REPO / "scripts" / "make_eval_example.py"
    subprocess.run([sys.executable, str(script), str(COLLECTION), "--out", str(tmp_path)], check=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if p.is_file() and p.suffix != ".md")
    assert made == shipped
    for path in made:
        assert (tmp_path / path).read_bytes() == (EXAMPLE / path).read_bytes(), path
