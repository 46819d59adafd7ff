"""``features build`` and ``features why-not`` end in one-line errors (issue 33, defect 13).

Before, ``build -o FILE`` ended in ``FileExistsError`` and ``why-not QUERY ²`` on an
attached collection in ``ValueError`` (``"²".isdigit()`` is true, ``int("²")`` fails),
both through the entry point's catch-all.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from splare_connect.backends.schema import native_point_id
from splare_connect.cli import app


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
