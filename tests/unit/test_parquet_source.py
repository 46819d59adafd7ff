"""Parquet sources: the same records as JSONL, rows numbered, bad rows costing only themselves."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

from splare_connect.documents import Document, read_jsonl, read_parquet, read_source
from splare_connect.errors import BadRecordError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_parquet(path: Path, rows: list[dict], schema: object | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)
    return path


def test_parquet_gives_the_documents_and_hashes_jsonl_gives(tmp_path: Path, example_records: list[dict]) -> None:
    rows = [{"id": r["id"], "text": r["text"][:300], "section": r.get("section", "1")} for r in example_records[:7]]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    from_parquet = list(read_source(write_parquet(tmp_path / "docs.parquet", rows)))
    from_jsonl = list(read_jsonl(jsonl))
    assert all(isinstance(d, Document) for d in from_parquet)
    assert [(d.id, d.text, dict(d.metadata), d.content_hash) for d in from_parquet] == [  # type: ignore[union-attr]
        (d.id, d.text, dict(d.metadata), d.content_hash)  # type: ignore[union-attr]
        for d in from_jsonl
    ]
    assert [d.line for d in from_parquet] == list(range(1, 8))  # row numbers, across row groups


def test_bad_rows_are_reported_by_row_and_the_others_read(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "fine", "when": datetime.datetime(2026, 11, 30, 12, 0), "score": 1.5, "blob": None},
        {"id": None, "text": "no id", "when": None, "score": 2.0, "blob": None},
        {"id": "c", "text": "not finite", "when": None, "score": math.nan, "blob": None},
        {"id": "d", "text": "binary", "when": None, "score": 0.0, "blob": b"\x00\x01"},
        {"id": "e", "text": "also fine", "when": None, "score": 3.0, "blob": None},
    ]
    items = list(read_source(write_parquet(tmp_path / "mixed.parquet", rows)))
    good = [i for i in items if isinstance(i, Document)]
    bad = [i for i in items if isinstance(i, BadRecordError)]
    assert [d.id for d in good] == ["a", "e"]
    assert good[0].metadata["when"] == "2026-11-30T12:00:00"  # dates are stored as ISO 8601 strings
    assert [(e.source, e.line) for e in bad] == [(str(tmp_path / "mixed.parquet"), row) for row in (2, 3, 4)]
    assert "no id" in str(bad[0]) and "finite" in str(bad[1]) and "binary" in str(bad[2])


def test_a_file_that_is_not_parquet_is_one_bad_record_without_an_id(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    items = list(read_source(broken))
    assert len(items) == 1 and isinstance(items[0], BadRecordError)
    assert items[0].record_id is None and "cannot read Parquet" in str(items[0]) and "\n" not in str(items[0])


def test_numbers_and_nested_values_hash_as_in_jsonl(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "x", "year": 2024, "score": 0.25, "tags": ["cp", "files"], "extra": {"n": 1}},
        {"id": "b", "text": "y", "year": 1999, "score": 1.5, "tags": [], "extra": {"n": 2}},
    ]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    from_parquet = list(read_source(write_parquet(tmp_path / "docs.parquet", rows)))
    assert [(dict(d.metadata), d.content_hash) for d in from_parquet] == [  # type: ignore[union-attr]
        (dict(d.metadata), d.content_hash)  # type: ignore[union-attr]
        for d in read_jsonl(jsonl)
    ]


def test_rows_python_cannot_represent_cost_only_their_read(tmp_path: Path) -> None:
    """A timestamp past year 9999 cannot become a Python datetime: its rows are one bad record, no id."""
    path = tmp_path / "dates.parquet"
    broken = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "text": ["1", "2", "3", "4"],
            "when": pa.array([0, 400_000_000_000, 0, 0], pa.int64()),
        }
    )
    broken = broken.set_column(2, "when", broken.column("when").cast(pa.timestamp("s")))
    pq.write_table(broken, path)
    items = list(read_parquet(path, rows_per_read=2))
    good = [i.id for i in items if isinstance(i, Document)]
    bad = [i for i in items if isinstance(i, BadRecordError)]
    assert good == ["c", "d"]  # the second read holds only representable rows
    assert len(bad) == 1 and bad[0].record_id is None and "rows 1-2" in str(bad[0])
