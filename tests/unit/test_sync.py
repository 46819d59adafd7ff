"""Ingest and sync scenarios with a tiny real model and real man pages.

They run on the real Qdrant engines (Edge, qdrant-client's local mode) and, when
OPENSEARCH_URL points at a cluster, on OpenSearch too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from splare_connect import BadRecordError, EncoderMismatchError
from splare_connect.documents import Document, read_iterable, read_jsonl, read_source
from splare_connect.retriever import Retriever
from splare_connect.sync import Shard, Syncer
from splare_connect.testing.points import assert_documents_whole

pytest.importorskip("splare_connect_qdrant")


def docs(records: list[dict]) -> list[Document | BadRecordError]:
    return list(read_iterable(records))


def test_ingest_then_resync_changes_and_deletions(sync_backend, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:30]
    syncer = Syncer(tiny_encoder, sync_backend, "man", indexed_fields=("section",))
    first = syncer.run(docs(records))
    assert (first.documents, first.new, first.changed, first.unchanged) == (30, 30, 0, 0)
    stored = dict(sync_backend.iter_payloads("man", ["doc_id", "chunk_count"]))
    assert len(stored) == first.chunks_written == sync_backend.count("man")
    assert {p["doc_id"] for p in stored.values()} == {r["id"] for r in records}

    again = syncer.run(docs(records))
    assert (again.unchanged, again.encoded, again.chunks_written) == (30, 0, 0)

    changed = [dict(r) for r in records]
    changed[3]["text"] = "completely new text about copying files"  # now one chunk instead of many
    changed[4]["section"] = "9"  # metadata change also counts
    del changed[5:10]
    report = syncer.run(docs(changed), delete_missing=True)
    assert (report.changed, report.unchanged, report.deleted_documents) == (2, 23, 5)
    stored = dict(sync_backend.iter_payloads("man", ["doc_id", "chunk_count"]))
    by_doc: dict[str, int] = {}
    for payload in stored.values():
        by_doc[payload["doc_id"]] = by_doc.get(payload["doc_id"], 0) + 1
    assert set(by_doc) == {r["id"] for r in changed}
    assert by_doc[changed[3]["id"]] == 1  # stale chunks of the shortened document are gone
    assert all(count == stored[f"{doc}#0"]["chunk_count"] for doc, count in by_doc.items())


def test_long_documents_are_chunked_and_grouped(sync_backend, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    record = max(example_records[:40], key=lambda r: len(r["text"]))
    report = Syncer(tiny_encoder, sync_backend, "chunks", chunk_overlap=4).run(docs([record]))
    assert report.chunks_written > 3
    retriever = Retriever(tiny_encoder, sync_backend, "chunks")
    hits = retriever.search(record["text"][:200], k=report.chunks_written)
    assert {h.doc_id for h in hits} == {record["id"]} and len(hits) == report.chunks_written
    [best] = retriever.search(record["text"][:200], k=1, group_by_document=True)
    assert best.doc_id == record["id"] and best.text and best.text in (record["title"] + "\n" + record["text"])


def test_bad_records_are_reported_and_skipped(tmp_path: Path, sync_backend, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "mixed.jsonl"
    good = example_records[:4]
    lines = [
        json.dumps(good[0]).encode(),
        b'{"text": "no id here"}',
        json.dumps(good[1]).encode(),
        b'{"id": "x", "text": 42}',
        b"{not json",
        b'{"id": "bad-utf8", "text": "caf\xe9"}',
        b"",
        json.dumps(good[2]).encode(),
        json.dumps(good[0]).encode(),  # duplicate id
        json.dumps(good[3]).encode(),
    ]
    source.write_bytes(b"\n".join(lines) + b"\n")
    report = Syncer(tiny_encoder, sync_backend, "mixed").run(read_source(source))
    assert report.new == 4
    assert {p["doc_id"] for _, p in sync_backend.iter_payloads("mixed", ["doc_id"])} == {r["id"] for r in good}
    problems = {error.line: str(error) for error in report.skipped}
    assert sorted(problems) == [2, 4, 5, 6, 9]
    assert "no id" in problems[2] and "text is a int" in problems[4] and "invalid JSON" in problems[5]
    assert "invalid UTF-8" in problems[6] and "duplicate id" in problems[9] and f"{source}:1" in problems[9]
    assert all(error.source == str(source) for error in report.skipped)


def test_shards_split_the_work_without_overlap(sync_backend, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:24]
    reports = [Syncer(tiny_encoder, sync_backend, "sharded", shard=Shard(i, 3)).run(docs(records)) for i in range(3)]
    assert sum(r.new for r in reports) == 24 and all(r.new > 0 for r in reports)
    assert {p["doc_id"] for _, p in sync_backend.iter_payloads("sharded", ["doc_id"])} == {r["id"] for r in records}
    # An empty source would delete all of shard 0's documents: refused unless insisted on.
    refused = Syncer(tiny_encoder, sync_backend, "sharded", shard=Shard(0, 3)).run([], delete_missing=True)
    assert refused.deleted_documents == 0 and "100% of the" in (refused.deletion_refused or "")
    assert len({p["doc_id"] for _, p in sync_backend.iter_payloads("sharded", ["doc_id"])}) == 24
    # A shard's --delete-missing only touches its own documents.
    report = Syncer(tiny_encoder, sync_backend, "sharded", shard=Shard(0, 3)).run(
        [], delete_missing=True, force_delete=True
    )
    assert report.deleted_documents == reports[0].new
    assert len({p["doc_id"] for _, p in sync_backend.iter_payloads("sharded", ["doc_id"])}) == 24 - reports[0].new


def test_other_encoder_is_refused(sync_backend, tiny_encoder, other_tiny_model_dir, example_records) -> None:  # type: ignore[no-untyped-def]
    from splare_connect import SplareEncoder

    Syncer(tiny_encoder, sync_backend, "guarded").run(docs(example_records[:3]))
    other = SplareEncoder.from_pretrained(other_tiny_model_dir, device="cpu")
    with pytest.raises(EncoderMismatchError, match="digest"):
        Syncer(other, sync_backend, "guarded").run(docs(example_records[3:5]))
    with pytest.raises(EncoderMismatchError, match="same model"):
        Retriever(other, sync_backend, "guarded")
    assert sync_backend.count("guarded") == sum(1 for _ in sync_backend.iter_payloads("guarded", []))


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
    from splare_connect_qdrant import create_backend

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

    survivor = create_backend(data_dir=tmp_path / "data")
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

    final = create_backend(data_dir=tmp_path / "data")
    assert_documents_whole(final, "crash", {r["id"] for r in records})
    final.close()

    third = _cli(*args, env=env)
    out, _ = third.communicate(timeout=300)
    assert json.loads(out)["unchanged"] == total


def test_batch_and_async_search_match_single_search(sync_backend, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    Syncer(tiny_encoder, sync_backend, "forms").run(docs(example_records[:12]))
    retriever = Retriever(tiny_encoder, sync_backend, "forms")
    queries = [example_records[2]["text"][:80], example_records[7]["text"][:80]]
    single = [retriever.search(q, k=4) for q in queries]
    # Queries encoded in one padded batch differ from one-by-one encoding in the last
    # float bits (other matrix shapes), so scores are compared to float32 precision.
    assert_same_hits(retriever.search_batch(queries, k=4), single)
    assert asyncio.run(retriever.asearch(queries[0], k=4)) == single[0]
    assert_same_hits(asyncio.run(retriever.asearch_batch(queries, k=4)), single)
    hybrid = retriever.search(queries[0], k=4, hybrid="dbsf")
    assert len(hybrid) == 4 and {h.doc_id for h in hybrid} <= {r["id"] for r in example_records[:12]}


def assert_same_hits(batches: list[list], expected: list[list]) -> None:
    """Same hits in the same order, scores equal up to float32 rounding."""
    assert [[h.id for h in hits] for hits in batches] == [[h.id for h in hits] for hits in expected]
    for hits, wanted in zip(batches, expected, strict=True):
        for hit, other in zip(hits, wanted, strict=True):
            assert hit.score == pytest.approx(other.score, rel=1e-5)
            assert (hit.text, dict(hit.metadata)) == (other.text, dict(other.metadata))
