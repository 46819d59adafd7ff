"""Splitting a write into requests a server accepts: at most so many records, and about so many bytes.

Servers cap a request's body (Qdrant 32 MB by default; Milvus's gRPC messages too), so
adapters split writes before sending them, each estimating a record's size in its own
wire format. The splitting itself is the same everywhere: greedy, in order, a record
never split, and a record larger than the byte cap sent alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["split_by_size"]

T = TypeVar("T")


def split_by_size(
    records: Sequence[T], max_records: int | None, max_bytes: int | None, size_of: Callable[[T], int]
) -> Iterator[list[T]]:
    """``records`` in batches of at most ``max_records`` and ~``max_bytes`` (``size_of`` each).

    With neither cap, all records form one batch and no size is estimated (an estimate
    can cost an encoding per record).
    """
    if max_records is None and max_bytes is None:
        if records:
            yield list(records)
        return
    batch: list[T] = []
    size = 0
    for record in records:
        record_size = size_of(record) if max_bytes is not None else 0
        full = max_records is not None and len(batch) >= max_records
        if batch and (full or (max_bytes is not None and size + record_size > max_bytes)):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch
