"""Reading sources: JSON Lines in the BEIR layout, and folders of text files.

The sync scenarios every backend must pass (resync, deletions, chunking, bad records,
shards, a killed ingest resumed) are the conformance kit's
(:mod:`splare_connect.testing.sync_conformance`), run from each adapter's tests.
"""

from __future__ import annotations

from pathlib import Path

from splare_connect import BadRecordError
from splare_connect.documents import Document, read_jsonl, read_source


def test_read_jsonl_accepts_beir_layout(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "title": "ls", "text": "list directory contents", "lang": "en"}\n')
    [document] = list(read_jsonl(corpus))
    assert isinstance(document, Document)
    assert (document.id, document.text, dict(document.metadata)) == (
        "d1",
        "ls\nlist directory contents",
        {"title": "ls", "lang": "en"},
    )


def test_directory_source_uses_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "setup.md").write_text("# Setup\nRun the installer.")
    (tmp_path / "notes.txt").write_text("plain text")
    (tmp_path / "broken.txt").write_bytes(b"\xff\xfe bad")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    items = list(read_source(tmp_path))
    assert [d.id for d in items if isinstance(d, Document)] == ["guides/setup.md", "notes.txt"]
    [error] = [e for e in items if isinstance(e, BadRecordError)]
    assert "invalid UTF-8" in str(error) and error.record_id == "broken.txt"
