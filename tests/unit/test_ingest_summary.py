"""What ingest prints, as a newcomer first reads it (issue 35, item 7).

The real CLI, the tiny model and embedded Qdrant (Edge) under ``tmp_path``: each
progress line once (the last one used to come twice: after the last write and again
at the end), and a re-ingest that finds nothing new says so, without a rate of
``0.0 documents/s``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app

pytest.importorskip("splare_connect_qdrant")

DOCUMENTS = 40


@pytest.fixture
def ingest_env(tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]) -> dict[str, str]:
    source = tmp_path / "pages.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in example_records[:DOCUMENTS]), encoding="utf-8")
    return {
        "SPLARE_MODEL": str(tiny_model_dir),
        "SPLARE_DATA_DIR": str(tmp_path / "data"),
        "SOURCE": str(source),
        "COLUMNS": "200",
    }


def ingest(env: dict[str, str]) -> tuple[list[str], str]:
    """``(progress lines, stdout)`` of ``splare-connect ingest SOURCE -c man``."""
    result = CliRunner().invoke(app, ["ingest", env["SOURCE"], "-c", "man"], env=env)
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress:")]
    return progress, result.stdout


def test_each_progress_line_is_printed_once(ingest_env: dict[str, str]) -> None:
    progress, out = ingest(ingest_env)
    assert progress, "no progress line"
    assert len(progress) == len(set(progress)), f"a progress line repeated: {progress}"
    assert progress[-1].startswith(f"progress: {DOCUMENTS} documents read, {DOCUMENTS} encoded")
    assert re.fullmatch(
        rf"{DOCUMENTS} documents: {DOCUMENTS} new, 0 changed, 0 unchanged, 0 deleted; \d+ chunks written; "
        r"0 skipped; [\d.]+ s \([\d.]+ documents/s\)\n",
        out,
    ), out


def test_a_reingest_with_nothing_to_encode_says_so_without_a_rate(ingest_env: dict[str, str]) -> None:
    ingest(ingest_env)
    progress, out = ingest(ingest_env)
    assert len(progress) == 1
    assert re.fullmatch(rf"nothing to encode: {DOCUMENTS} documents unchanged, 0 deleted; 0 skipped; [\d.]+ s\n", out)
    assert "documents/s" not in out


def test_search_takes_top_k_as_its_long_form(ingest_env: dict[str, str]) -> None:
    ingest(ingest_env)
    runner = CliRunner()
    for option in ("--top-k", "-k"):
        result = runner.invoke(app, ["search", "copy files", "-c", "man", option, "2", "--json"], env=ingest_env)
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == 2
