"""Text from data or a server never drives the terminal (issue 33, defect 10).

A stored document, a record id or a server's answer can hold ``ESC ] 0 ; title BEL``
(renames the window), ``ESC [ 2J`` (clears the screen), the 8-bit CSI (U+009B) or a
bidi override. The CLI prints them as visible escapes, in tables, in ``--json`` and in
error lines; the JSON still decodes to the stored text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.cli.common import fail
from splare_connect.errors import SplareError
from splare_connect.terminal import printable, printable_json
from tests.unit.test_service_client_faults import FakeService, answer

HOSTILE = "copy \u001b]0;PWNED\u0007 files \u001b[2J now \u009b2J \u007f \u202eevil\u202c [bold]loud[/]"
HOSTILE_ID = "doc\u001b[31m\u0007"
RAW = ("\u001b", "\u0007", "\u009b", "\u007f", "\u202e", "\u202c")


def assert_inert(output: str) -> None:
    raw = [hex(ord(c)) for c in RAW if c in output]
    assert not raw, f"terminal controls printed raw: {raw}"


def test_printable_escapes_controls_and_bidi_and_keeps_the_rest() -> None:
    assert printable("a\u001bb\u0007c\u009bd\u007fe\u202ef\u2066g") == "a\\x1bb\\x07c\\x9bd\\x7fe\\u202ef\\u2066g"
    assert printable("tab\there") == "tab\\x09here"
    assert printable("Grüße, 日本語 [bold]") == "Grüße, 日本語 [bold]"
    assert printable("l\u200er\u200fa\u061cs\u2028p\u2029") == "l\\u200er\\u200fa\\u061cs\\u2028p\\u2029"


def test_printable_json_decodes_to_the_same_data() -> None:
    data = [{"text": HOSTILE, "id": HOSTILE_ID, "lang": "日本語"}]
    text = printable_json(data)
    assert_inert(text)
    assert json.loads(text) == data and "日本語" in text


@pytest.fixture
def hostile_collection(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    source = tmp_path / "h.jsonl"
    source.write_text(json.dumps({"id": HOSTILE_ID, "text": HOSTILE}) + "\n", encoding="utf-8")
    env = {"SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "d"), "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["ingest", str(source), "-c", "h"], env=env)
    assert result.exit_code == 0, result.output
    return env


def test_local_search_shows_stored_controls_as_escapes(hostile_collection: dict[str, str]) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["search", "copy files", "-c", "h"], env=hostile_collection)
    assert table.exit_code == 0, table.output
    assert_inert(table.stdout)
    assert "\\x1b]0;PWNED\\x07" in table.stdout and "[bold]loud[/]" in table.stdout  # visible, markup as text
    as_json = runner.invoke(app, ["search", "copy files", "-c", "h", "--json"], env=hostile_collection)
    assert as_json.exit_code == 0, as_json.output
    assert_inert(as_json.stdout)
    [row] = json.loads(as_json.stdout)
    assert row["text"] == HOSTILE and row["doc_id"] == HOSTILE_ID  # scripts still get the stored text
    listed = runner.invoke(app, ["collections", "info", "h"], env=hostile_collection)
    assert listed.exit_code == 0 and "points" in listed.stdout


def test_server_hits_and_errors_show_controls_as_escapes() -> None:
    hit = {"id": HOSTILE_ID + "#0", "doc_id": HOSTILE_ID, "score": 1.0, "text": HOSTILE, "metadata": {}}
    hit["features"] = [{"feature": 3, "weight": 0.5, "label": "lab\u001b[2Jel"}]
    good = FakeService(answer(json.dumps([hit]).encode()))
    bad = FakeService(answer(json.dumps({"detail": "no \u001b]0;PWNED\u0007 way \u009b2J"}).encode(), 400))
    runner = CliRunner()
    env = {"COLUMNS": "300"}
    try:
        for options in ([], ["--json"], ["--explain"]):
            result = runner.invoke(app, ["search", "copy files", "--server", good.url, *options], env=env)
            assert result.exit_code == 0, result.output
            assert_inert(result.stdout)
        refused = runner.invoke(app, ["search", "copy files", "--server", bad.url], env=env)
        assert refused.exit_code == 1
        assert_inert(refused.stderr)
        assert "no \\x1b]0;PWNED\\x07 way" in refused.stderr
    finally:
        good.close()
        bad.close()


def test_error_lines_show_controls_as_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    # Not every message quotes with repr(): a server's detail, a file name, an OS error's text.
    stop = fail(SplareError("cannot read /data/\u001b]0;PWNED\u0007x.jsonl: \u009b2J gone"))
    assert stop.exit_code == 1
    err = capsys.readouterr().err
    assert_inert(err)
    assert "/data/\\x1b]0;PWNED\\x07x.jsonl: \\x9b2J gone" in err
