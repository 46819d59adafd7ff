"""``features build`` and ``features why-not`` end in one-line errors (issue 33, defect 13).

Before, ``build -o FILE`` ended in ``FileExistsError`` and ``why-not QUERY ²`` on an
attached collection in ``ValueError`` (``"²".isdigit()`` is true, ``int("²")`` fails),
both through the entry point's catch-all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.backends.schema import native_point_id
from splare_connect.cli import app
from tests.unit.test_attach import App

pytest.importorskip("splare_connect_qdrant")


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_build_into_an_existing_file_names_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"text": "copy files"}) + "\n", encoding="utf-8")
    taken = tmp_path / "taken.txt"
    taken.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["features", "build", str(source), "-o", str(taken), "--model", str(tiny_model_dir)]
    )
    line = one_line_error(result)
    assert f"--output {taken}" in line and "not a directory" in line and "FileExistsError" not in line
    assert taken.read_text(encoding="utf-8") == "mine"


def test_build_into_a_folder_it_cannot_create_names_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text(json.dumps({"text": "copy files"}) + "\n", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    inside_a_file = tmp_path / "file" / "dictionary"
    result = CliRunner().invoke(
        app, ["features", "build", str(source), "-o", str(inside_a_file), "--model", str(tiny_model_dir)]
    )
    line = one_line_error(result)
    assert f"cannot write the feature dictionary to {inside_a_file}" in line


def test_native_point_id_takes_only_ascii_digits_as_integers() -> None:
    assert native_point_id("42") == 42
    assert native_point_id("\u00b2") == "\u00b2"  # superscript two: isdigit() but not int()
    assert native_point_id("\u0664\u0662") == "\u0664\u0662"  # Arabic-Indic digits: not Qdrant's id form


def test_why_not_on_an_attached_collection_with_an_odd_id(
    tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]
) -> None:
    application = App("edge", tmp_path)
    application.create(example_records[:4])
    application.close()
    env = {"SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "edge")}
    runner = CliRunner()
    attached = runner.invoke(app, ["attach", "kb", "--text-field", "page_content"], env=env)
    assert attached.exit_code in (0, 3), attached.output
    for record in ("\u00b2", "not-a-uuid", "12345"):
        result = runner.invoke(app, ["features", "why-not", "copy files", record, "-c", "kb"], env=env)
        line = one_line_error(result)
        assert "'kb'" in line and record in line, line  # what and where (the adapter words the reason)
    found = runner.invoke(app, ["features", "why-not", "copy files", "1", "-c", "kb"], env=env)
    assert found.exit_code == 0 and "score" in found.stdout, found.output
