"""Reading sources, and a killed ingest resumed, with a tiny real model and real man pages.

The sync scenarios every backend must pass are the conformance kit's
(:mod:`splare_connect.testing.sync_conformance`), run from each adapter's tests; these run
the CLI on the default backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from splare_connect import BadRecordError
from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.documents import Document, read_jsonl, read_source
from splare_connect.testing.points import assert_documents_whole


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


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "splare_connect.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_killed_ingest_resumes_without_loss_or_duplicates(
    tmp_path: Path, tiny_model_dir: Path, example_records
) -> None:  # type: ignore[no-untyped-def]
    """kill -9 an ingest mid-run, run it again: exact counts, finished work not redone."""

    records = example_records  # 307 documents: several writes of at most 64 documents or 256 chunks
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    env = {**os.environ, "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "data")}
    args = ("ingest", str(source), "--collection", "crash", "--json")

    victim = _cli(*args, env=env)
    progress_lines = 0
    assert victim.stderr is not None
    for line in victim.stderr:
        progress_lines += line.startswith("progress:")
        if progress_lines == 1:  # the first write has landed; more are to come
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    survivor = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    done_before = {p["doc_id"] for _, p in survivor.iter_payloads("crash", ["doc_id"])}
    survivor.close()
    assert 0 < len(done_before) < len(records)

    resumed = _cli(*args, env=env)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    report = json.loads(out)
    total = len(records)
    assert report["documents"] == total
    assert report["new"] + report["changed"] + report["unchanged"] == total
    assert report["unchanged"] == len(done_before) and report["encoded"] == total - report["unchanged"]

    final = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    assert_documents_whole(final, "crash", {r["id"] for r in records})
    final.close()

    third = _cli(*args, env=env)
    out, _ = third.communicate(timeout=300)
    assert json.loads(out)["unchanged"] == total
