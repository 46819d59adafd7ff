"""Sync scenarios every backend must pass, with a tiny real model and real writes.

The sync engine (:class:`~splare_connect.sync.Syncer`) relies on a backend for its
state: content hashes and chunk counts in the payload, deletions by id, the spec guard.
These scenarios run it end to end on a backend: a resync that skips unchanged documents
and removes stale chunks, chunking and grouping, bad records skipped, shards that never
overlap, another encoder refused, and batch and async searches equal to single ones.
Subclass :class:`SyncConformance` in an adapter's tests (see :mod:`splare_connect.testing`).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from splare_connect.backends import Backend
from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.documents import Document, read_iterable, read_source
from splare_connect.errors import BadRecordError, EncoderMismatchError
from splare_connect.retriever import Retriever, SearchHit
from splare_connect.sync import Shard, Syncer
from splare_connect.testing.fixtures import clean_environment
from splare_connect.testing.points import assert_documents_whole
from splare_connect.testing.tiny_models import WORDS

__all__ = ["SyncConformance", "sample_records"]


def sample_records(count: int, seed: int = 0, *, words: tuple[int, int] = (20, 120)) -> list[dict[str, Any]]:
    """``count`` documents ``doc-<i>`` of random words from the tiny models' vocabulary, with metadata."""
    rng = random.Random(seed)
    return [
        {
            "id": f"doc-{i}",
            "title": f"page {i}",
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))),
            "section": str(1 + i % 8),
        }
        for i in range(count)
    ]


def documents(records: list[dict[str, Any]]) -> list[Document | BadRecordError]:
    return list(read_iterable(records))


def assert_same_hits(batches: list[list[SearchHit]], expected: list[list[SearchHit]]) -> None:
    """Same hits in the same order, scores equal up to float32 rounding."""
    assert [[h.id for h in hits] for hits in batches] == [[h.id for h in hits] for hits in expected]
    for hits, wanted in zip(batches, expected, strict=True):
        for hit, other in zip(hits, wanted, strict=True):
            assert hit.score == pytest.approx(other.score, rel=1e-5)
            assert (hit.text, dict(hit.metadata)) == (other.text, dict(other.metadata))


class SyncConformance:
    """Sync scenarios. Subclasses set ``record`` and give a ``backend`` fixture (a fresh, empty backend).

    The tiny encoders come from :mod:`splare_connect.testing.fixtures` (``tiny_encoder``,
    ``other_tiny_encoder``), which the adapter's ``conftest.py`` imports.
    """

    record: ClassVar[BackendDescriptor]
    engine_fuses: ClassVar[bool] = True  # False: a stand-in engine without server-side fusion
    runs_cli: ClassVar[bool] = True  # False: the CLI scenarios already run in another class of this backend

    def cli_location(self, directory: Path) -> list[str] | None:
        """The arguments that reach a store under ``directory`` from another process; None skips.

        By default the backend's embedded engine under ``--data-dir``, where its record says
        one runs without a URL. A backend reached only by URL overrides this (or is skipped).
        """
        if not self.runs_cli or self.record.without_url is None:
            return None
        return ["--backend", self.record.name, "--data-dir", str(directory)]

    def open_location(self, directory: Path) -> Backend:
        """The store :meth:`cli_location` names, opened in this process."""
        return self.record.create(data_dir=directory)

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a conformance subclass gives a `backend` fixture: a fresh, empty backend")

    def test_ingest_then_resync_changes_and_deletions(self, backend: Backend, tiny_encoder: Any) -> None:
        records = sample_records(30, words=(20, 400))
        syncer = Syncer(tiny_encoder, backend, "man", indexed_fields=("section",))
        first = syncer.run(documents(records))
        assert (first.documents, first.new, first.changed, first.unchanged) == (30, 30, 0, 0)
        stored = dict(backend.iter_payloads("man", ["doc_id", "chunk_count"]))
        assert len(stored) == first.chunks_written == backend.count("man")
        assert {p["doc_id"] for p in stored.values()} == {r["id"] for r in records}

        again = syncer.run(documents(records))
        assert (again.unchanged, again.encoded, again.chunks_written) == (30, 0, 0)

        longest = max(range(30), key=lambda i: len(records[i]["text"]))
        changed = [dict(r) for r in records]
        changed[longest]["text"] = "copy the files"  # now one chunk instead of many
        moved = (longest + 1) % 30
        changed[moved]["section"] = "9"  # a metadata change counts too
        gone = [i for i in range(30) if i not in (longest, moved)][:5]
        changed = [r for i, r in enumerate(changed) if i not in gone]
        report = syncer.run(documents(changed), delete_missing=True)
        assert (report.changed, report.unchanged, report.deleted_documents) == (2, 23, 5)
        stored = dict(backend.iter_payloads("man", ["doc_id", "chunk_count"]))
        by_doc: dict[str, int] = {}
        for payload in stored.values():
            by_doc[payload["doc_id"]] = by_doc.get(payload["doc_id"], 0) + 1
        assert set(by_doc) == {r["id"] for r in changed}
        assert by_doc[records[longest]["id"]] == 1  # stale chunks of the shortened document are gone
        assert all(count == stored[f"{doc}#0"]["chunk_count"] for doc, count in by_doc.items())

    def test_long_documents_are_chunked_and_grouped(self, backend: Backend, tiny_encoder: Any) -> None:
        [record] = sample_records(1, seed=3, words=(900, 900))
        report = Syncer(tiny_encoder, backend, "chunks", chunk_overlap=4).run(documents([record]))
        assert report.chunks_written > 3
        retriever = Retriever(tiny_encoder, backend, "chunks")
        hits = retriever.search(record["text"][:200], k=report.chunks_written)
        assert {h.doc_id for h in hits} == {record["id"]} and len(hits) == report.chunks_written
        [best] = retriever.search(record["text"][:200], k=1, group_by_document=True)
        assert best.doc_id == record["id"] and best.text and best.text in (record["title"] + "\n" + record["text"])

    def test_bad_records_are_reported_and_skipped(self, backend: Backend, tiny_encoder: Any, tmp_path: Path) -> None:
        source = tmp_path / "mixed.jsonl"
        good = sample_records(4, seed=4)
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
        report = Syncer(tiny_encoder, backend, "mixed").run(read_source(source))
        assert report.new == 4
        assert {p["doc_id"] for _, p in backend.iter_payloads("mixed", ["doc_id"])} == {r["id"] for r in good}
        problems = {error.line or 0: str(error) for error in report.skipped}
        assert sorted(problems) == [2, 4, 5, 6, 9]
        assert "no id" in problems[2] and "text is a int" in problems[4] and "invalid JSON" in problems[5]
        assert "invalid UTF-8" in problems[6] and "duplicate id" in problems[9] and f"{source}:1" in problems[9]

    def test_blank_documents_are_stored_and_never_found(self, backend: Backend, tiny_encoder: Any) -> None:
        records = [*sample_records(3, seed=5), {"id": "blank", "text": "   "}, {"id": "empty", "text": ""}]
        syncer = Syncer(tiny_encoder, backend, "blanks")
        assert syncer.run(documents(records)).new == 5
        assert {p["doc_id"] for _, p in backend.iter_payloads("blanks", ["doc_id"])} >= {"blank", "empty"}
        assert syncer.run(documents(records)).unchanged == 5  # their state is kept: not encoded again
        hits = Retriever(tiny_encoder, backend, "blanks").search(records[0]["text"][:120], k=10)
        assert hits and not {h.doc_id for h in hits} & {"blank", "empty"}

    def test_shards_split_the_work_without_overlap(self, backend: Backend, tiny_encoder: Any) -> None:
        records = sample_records(24, seed=6)
        reports = [
            Syncer(tiny_encoder, backend, "sharded", shard=Shard(i, 3)).run(documents(records)) for i in range(3)
        ]
        assert sum(r.new for r in reports) == 24 and all(r.new > 0 for r in reports)
        assert {p["doc_id"] for _, p in backend.iter_payloads("sharded", ["doc_id"])} == {r["id"] for r in records}
        # An empty source would delete all of shard 0's documents: refused unless insisted on.
        refused = Syncer(tiny_encoder, backend, "sharded", shard=Shard(0, 3)).run([], delete_missing=True)
        assert refused.deleted_documents == 0 and "100% of the" in (refused.deletion_refused or "")
        assert len({p["doc_id"] for _, p in backend.iter_payloads("sharded", ["doc_id"])}) == 24
        # A shard's --delete-missing only touches its own documents.
        report = Syncer(tiny_encoder, backend, "sharded", shard=Shard(0, 3)).run(
            [], delete_missing=True, force_delete=True
        )
        assert report.deleted_documents == reports[0].new
        assert len({p["doc_id"] for _, p in backend.iter_payloads("sharded", ["doc_id"])}) == 24 - reports[0].new

    def test_other_tiny_encoder_is_refused(self, backend: Backend, tiny_encoder: Any, other_tiny_encoder: Any) -> None:
        records = sample_records(5, seed=7)
        Syncer(tiny_encoder, backend, "guarded").run(documents(records[:3]))
        with pytest.raises(EncoderMismatchError, match="digest"):
            Syncer(other_tiny_encoder, backend, "guarded").run(documents(records[3:]))
        with pytest.raises(EncoderMismatchError, match="same model"):
            Retriever(other_tiny_encoder, backend, "guarded")
        assert backend.count("guarded") == sum(1 for _ in backend.iter_payloads("guarded", []))

    def test_batch_and_async_search_match_single_search(self, backend: Backend, tiny_encoder: Any) -> None:
        records = sample_records(12, seed=8)
        Syncer(tiny_encoder, backend, "forms").run(documents(records))
        retriever = Retriever(tiny_encoder, backend, "forms")
        queries = [records[2]["text"][:80], records[7]["text"][:80]]
        single = [retriever.search(q, k=4) for q in queries]
        # Queries encoded in one padded batch differ from one-by-one encoding in the last
        # float bits (other matrix shapes), so scores are compared to float32 precision.
        assert_same_hits(retriever.search_batch(queries, k=4), single)
        assert asyncio.run(retriever.asearch(queries[0], k=4)) == single[0]
        assert_same_hits(asyncio.run(retriever.asearch_batch(queries, k=4)), single)
        for fusion in sorted(self.record.capabilities.fusions) if self.engine_fuses else ():
            hybrid = retriever.search(queries[0], k=4, hybrid=fusion)
            assert len(hybrid) == 4 and {h.doc_id for h in hybrid} <= {r["id"] for r in records}

    def test_a_killed_ingest_resumes_without_loss_or_duplicates(self, tmp_path: Path, tiny_model_dir: Path) -> None:
        """kill -9 the CLI's ingest after its first write, run it again: exact counts, finished work not redone."""
        location = self.cli_location(tmp_path / "store")
        if location is None:
            pytest.skip(f"no store of {self.record.name}'s that another process can reach here")
        records = sample_records(307, seed=9, words=(20, 400))  # several writes of at most 64 documents
        source = tmp_path / "corpus.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records))
        env = {**clean_environment(), "SPLARE_MODEL": str(tiny_model_dir)}
        command = [
            sys.executable,
            "-m",
            "splare_connect.cli",
            "ingest",
            str(source),
            "-c",
            "crash",
            "--json",
            *location,
        ]

        victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert victim.stderr is not None
        for line in victim.stderr:
            if line.startswith("progress:"):  # the first write has landed; more are to come
                break
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL

        survivor = self.open_location(tmp_path / "store")
        done_before = {p["doc_id"] for _, p in survivor.iter_payloads("crash", ["doc_id"])}
        survivor.close()
        assert 0 < len(done_before) < len(records)

        resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        report = json.loads(resumed.stdout)
        assert report["documents"] == len(records)
        assert report["new"] + report["changed"] + report["unchanged"] == len(records)
        assert report["unchanged"] == len(done_before) and report["encoded"] == len(records) - len(done_before)

        final = self.open_location(tmp_path / "store")
        try:
            assert_documents_whole(final, "crash", {r["id"] for r in records})
        finally:
            final.close()
        third = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert json.loads(third.stdout)["unchanged"] == len(records), third.stderr
