"""Regression tests for what hostile testing found on the ingest path (issue 12).

Each runs the default backend, embedded, and a tiny real model. A collection
counts as readable when a fresh backend (a new process would do the same) can open,
count, scroll and search it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from splare_connect import BadRecordError, ConfigError, SparseVector
from splare_connect.backends import Backend, CollectionSpec, Fusion, Hit, PointRecord, load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.documents import Document, read_iterable, read_source
from splare_connect.filters import parse_filters
from splare_connect.record_rules import RecordLimits
from splare_connect.retriever import Retriever
from splare_connect.sync import Syncer
from splare_connect.testing.fixtures import clean_environment


def nested(levels: int) -> dict:
    value: dict = {"v": 1}
    for _ in range(levels):
        value = {"n": value}
    return value


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogatepass")
    return path


class PassThrough:
    """A real backend with every :class:`Backend` method passed to it: a test overrides the one to fault."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    def create_collection(self, spec: CollectionSpec) -> None:
        self.inner.create_collection(spec)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        return self.inner.describe_collection(name)

    def list_collections(self) -> list[str]:
        return self.inner.list_collections()

    def drop_collection(self, name: str) -> None:
        self.inner.drop_collection(name)

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        self.inner.upsert(collection, points)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self.inner.delete(collection, ids)

    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        return self.inner.iter_payloads(collection, fields)

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        return self.inner.fetch_sparse(collection, ids)

    def count(self, collection: str) -> int:
        return self.inner.count(collection)

    def finalize(self, collection: str) -> None:
        self.inner.finalize(collection)

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        return self.inner.search(collection, query, k=k, filter=filter)

    def hybrid_search(
        self,
        collection: str,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fusion: Fusion = Fusion.RRF,
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
        filter: Any = None,
        dense_field: str | None = None,
    ) -> list[Hit]:
        return self.inner.hybrid_search(
            collection,
            sparse,
            dense,
            k=k,
            fusion=fusion,
            rrf_k=rrf_k,
            weights=weights,
            candidates=candidates,
            filter=filter,
            dense_field=dense_field,
        )

    def close(self) -> None:
        self.inner.close()


def assert_readable(data_dir: Path, collection: str, tiny_encoder, expected_docs: set[str]) -> None:  # type: ignore[no-untyped-def]
    """A fresh backend opens the collection, counts, scrolls and searches it."""
    backend = load_backend(DEFAULT_BACKEND, data_dir=data_dir)
    try:
        docs = {payload["doc_id"] for _, payload in backend.iter_payloads(collection, ["doc_id"])}
        assert docs == expected_docs
        assert backend.count(collection) >= len(expected_docs)
        if expected_docs:
            assert Retriever(tiny_encoder, backend, collection).search("copy files", k=3)
    finally:
        backend.close()


def ingest(tiny_encoder, data_dir: Path, collection: str, source, **run_options):  # type: ignore[no-untyped-def]
    backend = load_backend(DEFAULT_BACKEND, data_dir=data_dir)
    try:
        return Syncer(tiny_encoder, backend, collection).run(source, **run_options)
    finally:
        backend.close()


# ------------------------------------------------------------------ defect 1
def test_deeply_nested_metadata_is_skipped_and_the_collection_stays_readable(
    tmp_path: Path, tiny_encoder, example_records
) -> None:  # type: ignore[no-untyped-def]
    good = example_records[:3]
    healthy = write_lines(tmp_path / "good.jsonl", [json.dumps(r) for r in good])
    ingest(tiny_encoder, tmp_path / "d", "c", read_source(healthy))
    # One deep line added to a healthy collection used to make all of it unreadable.
    source = write_lines(
        tmp_path / "nest.jsonl",
        [*(json.dumps(r) for r in good), json.dumps({"id": "deep", "text": "hi", "meta": nested(130)})],
    )
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_source(source))
    [error] = report.skipped
    assert error.line == 4 and error.record_id == "deep" and "nested more than 32 levels" in str(error)
    assert_readable(tmp_path / "d", "c", tiny_encoder, {r["id"] for r in good})


def test_metadata_at_the_depth_limit_lands(tmp_path: Path, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    limits = RecordLimits()
    records = [{"id": "deep-ok", "text": "copy files", "meta": nested(limits.max_depth - 2)}]
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    assert report.skipped == [] and report.new == 1
    assert_readable(tmp_path / "d", "c", tiny_encoder, {"deep-ok"})


# ------------------------------------------------------------------ defect 4
HOSTILE_LINES = {
    "nan": '{"id": "b", "text": "x", "s": NaN}',
    "infinity": '{"id": "c", "text": "x", "s": -Infinity}',
    "overflow float": '{"id": "d", "text": "x", "s": 1e400}',
    "huge int": '{"id": "e", "text": "x", "s": 123456789012345678901234567890}',
    "very long int": '{"id": "f", "text": "x", "s": ' + "9" * 5000 + "}",
    "surrogate text": '{"id": "g", "text": "bad \\ud800 text"}',
    "surrogate id": '{"id": "\\udfff", "text": "x"}',
    "surrogate key": '{"id": "h", "text": "x", "m": {"\\ud800": 1}}',
    "surrogate value": '{"id": "i", "text": "x", "m": ["ok", "\\udc00"]}',
    "100k levels": '{"id": "j", "text": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


def test_each_bad_value_costs_only_its_own_record(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    good = example_records[:2]
    lines = [json.dumps(good[0]), *HOSTILE_LINES.values(), json.dumps(good[1])]
    report = ingest(tiny_encoder, tmp_path / "d", "n", read_source(write_lines(tmp_path / "n.jsonl", lines)))
    assert report.new == 2
    assert sorted(error.line for error in report.skipped) == list(range(2, 2 + len(HOSTILE_LINES)))
    messages = {name: str(error) for name, error in zip(HOSTILE_LINES, report.skipped, strict=True)}
    assert "NaN is not valid JSON" in messages["nan"] and "-Infinity" in messages["infinity"]
    assert "not a finite number" in messages["overflow float"]
    assert "signed 64-bit" in messages["huge int"] and "invalid JSON" in messages["very long int"]
    assert all("lone surrogate" in messages[name] for name in HOSTILE_LINES if name.startswith("surrogate"))
    assert "nested" in messages["100k levels"]
    assert_readable(tmp_path / "d", "n", tiny_encoder, {r["id"] for r in good})


def test_python_objects_are_checked_like_json(tmp_path: Path, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    import datetime

    records = [
        {"id": "ok", "text": "copy files"},
        Document(id="nan", text="x", metadata={"score": float("nan")}),
        Document(id="date", text="x", metadata={"when": datetime.date(2026, 1, 1)}),
        Document(id="key", text="x", metadata={1: "int key"}),  # type: ignore[dict-item]
        Document(id="big", text="y" * 50, metadata={}),
    ]
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "d")
    try:
        report = Syncer(tiny_encoder, backend, "py", limits=RecordLimits(max_text_chars=40)).run(read_iterable(records))
    finally:
        backend.close()
    problems = {error.record_id: str(error) for error in report.skipped}
    assert report.new == 1 and set(problems) == {"nan", "date", "key", "big"}
    assert "metadata.score is nan" in problems["nan"] and "metadata.when is a date" in problems["date"]
    assert "int key" in problems["key"] and "over the limit of 40" in problems["big"]


# ------------------------------------------------------------------ defect 3
def test_delete_missing_keeps_documents_whose_record_is_now_bad(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:6]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    now_bad = [dict(r) for r in records]
    now_bad[2]["text"] = None
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(now_bad[:5]), delete_missing=True)
    assert report.deleted_documents == 1 and [e.record_id for e in report.skipped] == [records[2]["id"]]
    assert_readable(tmp_path / "d", "c", tiny_encoder, {r["id"] for r in records[:5]})


def test_a_pretty_printed_json_array_is_read_as_one(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:8]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    array = tmp_path / "a.json"
    array.write_text(json.dumps(records, indent=2), encoding="utf-8")
    items = list(read_source(array))
    assert [d.id for d in items if isinstance(d, Document)] == [r["id"] for r in records]
    assert items[0].line == 2 and items[1].line > items[0].line  # type: ignore[union-attr]
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_source(array), delete_missing=True)
    assert (report.unchanged, report.deleted_documents, report.skipped) == (8, 0, [])


def test_broken_json_array_reports_where_and_deletes_nothing(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:8]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    text = json.dumps(records[:3], indent=2)[:-2] + ",\n  {broken\n]"
    (tmp_path / "b.json").write_text(text, encoding="utf-8")
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_source(tmp_path / "b.json"), delete_missing=True)
    assert report.skipped[0].line == text[: text.index("{broken")].count("\n") + 1
    assert "invalid JSON" in str(report.skipped[0]) and report.unchanged == 3
    assert report.deleted_documents == 0 and "could not be read" in (report.deletion_refused or "")
    assert_readable(tmp_path / "d", "c", tiny_encoder, {r["id"] for r in records})


def test_unreadable_source_refuses_to_delete_unless_forced(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:10]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    mangled = write_lines(tmp_path / "m.jsonl", [json.dumps(r)[:-3] for r in records[:7]] + [json.dumps(records[9])])
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_source(mangled), delete_missing=True)
    assert report.deleted_documents == 0 and "7 records could not be read" in (report.deletion_refused or "")
    assert_readable(tmp_path / "d", "c", tiny_encoder, {r["id"] for r in records})
    forced = ingest(tiny_encoder, tmp_path / "d", "c", read_source(mangled), delete_missing=True, force_delete=True)
    assert forced.deleted_documents == 9
    assert_readable(tmp_path / "d", "c", tiny_encoder, {records[9]["id"]})


def test_deleting_most_of_a_collection_needs_insisting(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    records = example_records[:10]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records[:4]), delete_missing=True)
    assert report.deleted_documents == 0 and "60% of the 10 stored" in (report.deletion_refused or "")
    allowed = ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records[:6]), delete_missing=True)
    assert allowed.deleted_documents == 4 and allowed.deletion_refused is None


# ------------------------------------------------------------------ defect 9
def test_directory_sources_stay_inside_and_skip_hidden_files(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("private key material")
    root = tmp_path / "docs"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "description.txt").write_text("git internals")
    (root / "CVS").mkdir()
    (root / "CVS" / "entries.txt").write_text("cvs internals")
    (root / ".env.md").write_text("TOKEN=abc")
    (root / "guide.md").write_text("# Guide")
    (root / "inside.txt").write_text("inside")
    (root / "alias.txt").symlink_to(root / "inside.txt")
    (root / "leak.txt").symlink_to(outside)
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    left_out: dict[str, str] = {}
    items = list(read_source(root, on_skip=lambda path, why: left_out.setdefault(path, why)))
    assert [d.id for d in items if isinstance(d, Document)] == ["alias.txt", "guide.md", "inside.txt"]
    assert "private key material" not in {d.text for d in items if isinstance(d, Document)}
    assert set(left_out) == {".git/", "CVS/", ".env.md", "leak.txt", "linked/"}
    assert "outside the directory" in left_out["leak.txt"] and "not followed" in left_out["linked/"]
    everything = [d.id for d in read_source(root, include_hidden=True) if isinstance(d, Document)]
    assert everything == [".env.md", ".git/description.txt", "CVS/entries.txt", "alias.txt", "guide.md", "inside.txt"]


# ----------------------------------------------------------------- defect 10
def test_writes_are_bounded_by_chunks(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    """A long record no longer drags a whole group of documents into one huge write."""
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "d")
    sizes: list[int] = []
    upsert = backend.upsert
    backend.upsert = lambda collection, points: (sizes.append(len(points)), upsert(collection, points))[1]  # type: ignore[method-assign]
    try:
        syncer = Syncer(tiny_encoder, backend, "c", chunks_per_write=20, chunk_overlap=4)
        report = syncer.run(read_iterable(example_records[:30]))
    finally:
        backend.close()
    longest = max(len(syncer._chunks(d)) for d in read_iterable(example_records[:30]))  # type: ignore[arg-type]
    assert sum(sizes) == report.chunks_written and len(sizes) > 1
    assert max(sizes) <= max(20, longest)  # a document longer than the bound is written alone


def test_empty_in_filter_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one value"):
        parse_filters(["section in ,"])


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "splare_connect.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_cli_reproductions_end_in_one_line_errors(tmp_path: Path, tiny_model_dir: Path, example_records) -> None:  # type: ignore[no-untyped-def]
    """The issue's reproductions, through the CLI: exit codes, one-line errors, no traceback."""
    env = clean_environment()
    env["SPLARE_MODEL"] = str(tiny_model_dir)
    deep = {"id": "deep", "text": "hi", "meta": nested(130)}
    write_lines(tmp_path / "nest.jsonl", [json.dumps(example_records[0]), json.dumps(deep)])
    ingested = run_cli("ingest", "nest.jsonl", "-c", "c", "--data-dir", "d", env=env, cwd=tmp_path)
    assert ingested.returncode == 3 and "nest.jsonl:2: metadata.meta" in ingested.stderr
    info = run_cli("collections", "info", "c", "--data-dir", "d", "--json", env=env, cwd=tmp_path)
    assert info.returncode == 0 and json.loads(info.stdout)["points"] >= 1

    # Arguments are checked before the model loads: a model that doesn't exist is never reached.
    no_model = {**env, "SPLARE_MODEL": str(tmp_path / "no-such-model")}
    for args, message in (
        (("--backend", "nosuch"), "backend 'nosuch' is not installed"),
        (("--shard", "3/2"), "shard must be i/n"),
        (("--url", "http://127.0.0.1:99999"), "port"),
        (("--data-dir", "nest.jsonl"), "data directory nest.jsonl: is a file, not a directory"),
        (("--index-field", "a b"), "cannot index field 'a b'"),
        (("--batch-size", "0"), "--batch-size"),
    ):
        result = run_cli("ingest", "nest.jsonl", "-c", "c", *args, env=no_model, cwd=tmp_path)
        assert result.returncode in (1, 2) and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "no-such-model" not in result.stderr
    bad_filter = run_cli("search", "hi", "-c", "c", "-f", "section in ,", env=no_model, cwd=tmp_path)
    assert bad_filter.returncode == 1 and "at least one value" in bad_filter.stderr
    sparse_only = run_cli("ingest", "nest.jsonl", "-c", "s", "--data-dir", "d", "--no-dense", env=env, cwd=tmp_path)
    assert sparse_only.returncode == 3
    no_dense = run_cli("search", "hi", "-c", "s", "--data-dir", "d", "--hybrid", "rrf", env=no_model, cwd=tmp_path)
    assert no_dense.returncode == 1 and "no dense vectors" in no_dense.stderr and "no-such-model" not in no_dense.stderr


def test_bad_records_with_markup_are_printed_as_text(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {**os.environ, "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "d")}
    write_lines(tmp_path / "m.jsonl", ['{"id": "[/]", "text": "one"}', '{"id": "[/]", "text": "two"}'])
    result = run_cli("ingest", "m.jsonl", "-c", "c", env=env, cwd=tmp_path)
    assert result.returncode == 3 and "m.jsonl:2: duplicate id '[/]'" in result.stderr, result.stderr


def test_bad_record_messages_survive_undecodable_file_names(tmp_path: Path) -> None:
    error = BadRecordError("invalid UTF-8 at byte 0", source=os.fsdecode(b"/tmp/caf\xe9.txt"))
    assert str(error).encode("utf-8") and "caf\\udce9" in str(error)


# ------------------------------------------------------- refused by the database
def test_documents_the_database_refuses_are_found_and_the_others_land(
    tmp_path: Path, tiny_encoder, example_records
) -> None:  # type: ignore[no-untyped-def]
    """A database rule the record rules can't know (here: no 'poison' field) costs only its documents."""
    from splare_connect import RecordsRejectedError

    class Strict(PassThrough):
        writes = 0

        def upsert(self, collection, points):  # type: ignore[no-untyped-def]
            Strict.writes += 1
            if any("poison" in point.payload["metadata"] for point in points):
                raise RecordsRejectedError("upserting failed: field 'poison' is not allowed")
            super().upsert(collection, points)

    records = [dict(r) for r in example_records[:16]]
    records[3]["poison"] = records[11]["poison"] = True
    backend = Strict(load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "d"))
    try:
        report = Syncer(tiny_encoder, backend, "c", documents_per_write=16, chunks_per_write=10_000).run(
            read_iterable(records)
        )
    finally:
        backend.close()
    refused = {error.record_id.split("#")[0] for error in report.skipped if error.record_id}
    assert refused == {records[3]["id"], records[11]["id"]}
    assert all("refused by the database" in str(error) and error.line for error in report.skipped)
    assert Strict.writes <= 1 + 2 * 2 * 4  # halving: a few writes per refused document, not one per document
    assert_readable(tmp_path / "d", "c", tiny_encoder, {r["id"] for i, r in enumerate(records) if i not in (3, 11)})


def test_a_database_refusing_everything_reports_every_document(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    from splare_connect import RecordsRejectedError

    class Refusing(PassThrough):
        def upsert(self, collection, points):  # type: ignore[no-untyped-def]
            raise RecordsRejectedError("upserting failed: payload too large")

    records = example_records[:4]
    backend = Refusing(load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "d"))
    try:
        report = Syncer(tiny_encoder, backend, "c").run(read_iterable(records))
    finally:
        backend.close()
    assert [error.record_id for error in report.skipped] == [r["id"] for r in records]  # once each, not per chunk
    assert all("payload too large" in str(error) for error in report.skipped) and report.chunks_written == 0


def test_one_bad_item_in_a_json_array_costs_only_itself(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    good = [json.dumps(r) for r in example_records[:3]]
    items = [good[0], '{"id": "n", "text": "x", "s": NaN}', good[1], '{"id": "big", "s": ' + "9" * 5000 + "}"]
    items += ['{"id": "deep", "m": ' + "[" * 5000 + "]" * 5000 + "}", good[2]]
    (tmp_path / "a.json").write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_source(tmp_path / "a.json"))
    assert report.new == 3 and [error.line for error in report.skipped] == [3, 5, 6]
    assert "NaN is not valid JSON" in str(report.skipped[0]) and "nested too deeply" in str(report.skipped[2])


def test_python_records_of_the_wrong_type_are_skipped(tmp_path: Path, tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    records = [
        Document(id=123, text="x"),  # type: ignore[arg-type]
        Document(id="t", text=None),  # type: ignore[arg-type]
        Document(id="m", text="x", metadata=["not", "a", "mapping"]),  # type: ignore[arg-type]
        {"id": "ok", "text": "copy files"},
    ]
    report = ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(records))
    assert report.new == 1 and [str(e) for e in report.skipped] == [
        "id is a int, not a string",
        "text is a NoneType, not a string",
        "metadata is a list, not a mapping of fields",
    ]


def test_a_field_name_that_cannot_be_indexed_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot index field 'a b'"):
        CollectionSpec(name="c", sparse_dim=8, fingerprint={"digest": "x"}, indexed_fields=("a b",))


def test_blank_queries_find_nothing(tmp_path: Path, tiny_encoder, example_records) -> None:  # type: ignore[no-untyped-def]
    ingest(tiny_encoder, tmp_path / "d", "c", read_iterable(example_records[:3]))
    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "d")
    try:
        retriever = Retriever(tiny_encoder, backend, "c")
        assert retriever.search("") == [] and retriever.search("  \n") == []
        assert retriever.search(example_records[0]["text"][:60])
    finally:
        backend.close()


def test_directory_walk_survives_loops_fifos_unlistable_folders_and_links_to_hidden_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import splare_connect.documents as documents

    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / ".secrets").mkdir()
    (root / ".secrets" / "key.md").write_text("secret")
    (root / "public.md").symlink_to(root / ".secrets" / "key.md")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    os.mkfifo(root / "pipe.txt")
    (root / "fine.txt").write_text("fine")
    (root / "sub" / "kept.md").write_text("kept")
    real_walk = os.walk

    def walk_with_an_unlistable_folder(top, **options):  # type: ignore[no-untyped-def]
        options["onerror"](PermissionError(13, "Permission denied", str(root / "locked")))
        yield from real_walk(top, **options)

    monkeypatch.setattr(documents.os, "walk", walk_with_an_unlistable_folder)
    left_out: dict[str, str] = {}
    items = list(read_source(root, on_skip=lambda path, why: left_out.setdefault(path, why)))
    assert [d.id for d in items if isinstance(d, Document)] == ["fine.txt", "sub/kept.md"]
    [error] = [e for e in items if isinstance(e, BadRecordError)]
    assert error.record_id is None and "cannot list this folder: Permission denied" in str(error)
    assert "hidden" in left_out["public.md"] and "leads nowhere" in left_out["loop.txt"]
    assert "not a regular file" in left_out["pipe.txt"]


def test_search_output_shows_stored_markup_as_text(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {**os.environ, "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(tmp_path / "d")}
    write_lines(tmp_path / "m.jsonl", ['{"id": "[/]", "text": "copy [bold]files[/] now"}'])
    assert run_cli("ingest", "m.jsonl", "-c", "c", env=env, cwd=tmp_path).returncode == 0
    result = run_cli("search", "copy files", "-c", "c", env=env, cwd=tmp_path)
    assert result.returncode == 0 and "[/]" in result.stdout and "[bold]files[/]" in result.stdout, result.stderr
