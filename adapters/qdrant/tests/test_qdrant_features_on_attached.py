"""``features why-not`` on a collection attached to an app's own Qdrant points ends in one line.

``"\u00b2".isdigit()`` is true but ``int("\u00b2")`` fails: an odd record id must be a one-line
error naming it, never a ValueError from the entry point's catch-all.
"""

from __future__ import annotations

from pathlib import Path

from qdrant_attach_app import App
from typer.testing import CliRunner

from splare_connect.cli import app


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


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
