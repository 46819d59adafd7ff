"""Helpers for tests that compare two ingest runs (local against Ray, say): a source file, and what a report counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["report_counts", "write_jsonl"]

COUNTED = ("documents", "new", "changed", "unchanged", "deleted_documents", "chunks_written", "skipped")


def write_jsonl(path: Path, records: list[dict[str, Any]], bad_lines: tuple[str, ...] = ()) -> Path:
    """``records`` as a JSON Lines file, with ``bad_lines`` slipped in (the 4th, 9th... line)."""
    lines = [json.dumps(r) for r in records]
    for position, bad in enumerate(bad_lines):
        lines.insert(3 + 5 * position, bad)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def report_counts(report: Any) -> dict[str, Any]:
    """What a :class:`~splare_connect.sync.SyncReport` counts, without its timings (which differ run to run)."""
    data = report.to_dict()
    return {key: data[key] for key in COUNTED}
