"""The slow one-time steps say so before they start (issue 35, item 7).

A newcomer's first command built the default model and compiled its graph, half a
minute, without a word. Now each step prints one line on stderr first, once, and stdout
stays clean for ``--json``. Run through the real CLI with the tiny model, in a fresh
model cache under ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.models import registry


def notes(stderr: str, about: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:") and about in line]


def test_building_a_registered_model_is_announced_once(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = registry.ModelDescription(
        name="tiny-registered",
        description="the tiny test model, built like a registered one",
        build=lambda target: shutil.copytree(tiny_model_dir, target),
        build_cost="a test copy",
    )
    monkeypatch.setitem(registry.MODELS, model.name, model)
    env = {"SPLARE_CONNECT_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"}
    command = ["features", "show", "copy files", "--model", model.name, "--runtime", "torch", "--json"]
    runner = CliRunner()

    first = runner.invoke(app, command, env=env)
    assert first.exit_code == 0, first.output
    assert notes(first.stderr, "building model") == [
        f"note: building model tiny-registered on first use (a test copy, in {tmp_path / 'cache'})"
    ]
    json.loads(first.stdout)  # nothing but the JSON on stdout

    again = runner.invoke(app, command, env=env)
    assert again.exit_code == 0, again.output
    assert not notes(again.stderr, "first use")


def test_compiling_the_graph_is_announced_once(tmp_path: Path, tiny_model_dir: Path, example_records: list) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("splare_connect_qdrant")
    source = tmp_path / "pages.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in example_records[:8]), encoding="utf-8")
    env = {
        "SPLARE_CONNECT_CACHE": str(tmp_path / "cache"),
        "SPLARE_MODEL": str(tiny_model_dir),
        "SPLARE_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "300",
    }
    runner = CliRunner()

    ingest = runner.invoke(app, ["ingest", str(source), "-c", "man", "--json"], env=env)
    assert ingest.exit_code == 0, ingest.output
    [note] = notes(ingest.stderr, "first use")
    assert note.startswith("note: compiling model tiny into one OpenVINO graph on first use (once;")
    assert json.loads(ingest.stdout)["encoded"] == 8  # the note went to stderr only

    search = runner.invoke(app, ["search", "copy files", "-c", "man", "--json"], env=env)
    assert search.exit_code == 0, search.output
    assert not notes(search.stderr, "first use")  # the graph came from the cache
    assert json.loads(search.stdout)
