"""Splitting writes into requests a server accepts: capped by point count and by estimated JSON size.

A Qdrant server refuses bodies over 32 MB by default, and a 300-non-zero point is about
7.6 KB of JSON, so writes are split before they are sent. The embedded engine takes
any batch in one update; it passes no caps and gets one batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from splare_connect.backends import PointRecord
from splare_connect.backends.write_requests import split_by_size

DEFAULT_BATCH_POINTS = 256
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024


def estimated_json_bytes(record: PointRecord) -> int:
    """Rough size of a point in a REST upsert body (ids ~10 B, weights ~12 B each)."""
    dense = 0 if record.dense is None else 20 * len(record.dense)
    payload = len(json.dumps(record.payload, ensure_ascii=False, default=str).encode())
    return 200 + 24 * record.sparse.nnz + dense + payload


def batches_by_size(
    points: Sequence[PointRecord], max_points: int | None, max_bytes: int | None
) -> Iterator[list[PointRecord]]:
    """Points in batches of at most ``max_points`` and ~``max_bytes`` of REST JSON (no caps: one batch)."""
    return split_by_size(points, max_points, max_bytes, estimated_json_bytes)
