"""The README's backend table says what each installed backend's record says.

The records (:mod:`splare_connect.backends.descriptor`) are where a backend describes
itself; the table is their summary for users, so each installed backend has a row
naming its URL and secret variables and whether it attaches, as its record does.
"""

from __future__ import annotations

from pathlib import Path

from splare_connect.backends.discovery import installed_descriptors

README = Path(__file__).resolve().parents[2] / "README.md"


def table_rows() -> dict[str, list[str]]:
    """The backend table's rows by backend name, each as its cells."""
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].split("`")[1]] = cells
    return rows


def test_every_installed_backend_has_a_row_agreeing_with_its_record() -> None:
    rows = table_rows()
    records = installed_descriptors()
    assert records
    for record in records:
        assert record.name in rows, f"README's backend table has no row for {record.name!r}"
        _, install, _, url, secrets, attach, _ = rows[record.name]
        assert record.name in install
        assert (record.url_env or "--url") in url, record.name
        assert all(name in secrets for name in record.secret_env), record.name
        assert attach.startswith("yes" if record.capabilities.attachable else "no"), record.name


def test_the_backends_command_shows_each_record() -> None:
    import json

    from typer.testing import CliRunner

    from splare_connect.backends.default import DEFAULT_BACKEND
    from splare_connect.cli import app

    listed = CliRunner().invoke(app, ["backends", "--json"])
    assert listed.exit_code == 0, listed.output
    by_name = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    records = installed_descriptors()
    assert set(by_name) == {record.name for record in records}
    for record in records:
        entry = by_name[record.name]
        assert entry["url_env"] == record.url_env and entry["secret_env"] == list(record.secret_env)
        assert entry["options"].keys() == record.options.keys()
        assert entry["capabilities"]["attachable"] == record.capabilities.attachable
        assert entry["capabilities"]["fusions"] == sorted(str(f) for f in record.capabilities.fusions)
        assert entry["default"] == (record.name == DEFAULT_BACKEND)
    table = CliRunner().invoke(app, ["backends"], env={"COLUMNS": "120"})
    assert table.exit_code == 0 and all(record.name in table.stdout for record in records)
