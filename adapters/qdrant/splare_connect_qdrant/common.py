"""What both Qdrant engines share: turning engine failures into one-line errors, and reading hits.

The stored-record schema (payload keys, the spec key, point ids) is the core's:
:mod:`splare_connect.backends.schema`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from splare_connect.backends import CollectionSpec, Hit
from splare_connect.backends.schema import pop_record_id
from splare_connect.errors import BackendError, RecordsRejectedError
from splare_connect.sparse_vector import SparseVector

T = TypeVar("T")


def check_vector(spec: CollectionSpec, record_id: str, vector: SparseVector) -> None:
    """Refuse a vector whose ids lie outside the collection's latent width."""
    if vector.nnz and int(vector.indices[-1]) >= spec.sparse_dim:
        raise BackendError(
            f"record {record_id!r}: feature id {int(vector.indices[-1])} is outside collection "
            f"{spec.name!r}'s width {spec.sparse_dim}"
        )


def call_engine(
    action: str, function: Callable[[], T], *, rejects_data: Callable[[BaseException], bool] | None = None
) -> T:
    """Run an engine call; turn anything it raises, Rust panics included, into BackendError.

    Qdrant Edge reports some bad input with ``pyo3_runtime.PanicException``, a
    ``BaseException`` that ``except Exception`` doesn't catch. The message is one line
    and redacted: a server's error body may span lines and echo the ``api-key`` header.
    Writes pass ``rejects_data``: errors it accepts mean the engine refused the records
    themselves and become :class:`RecordsRejectedError`.
    """
    from splare_connect.redaction import safe_message

    try:
        return function()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BackendError:
        raise
    except BaseException as exc:
        message = safe_message(f"{action} failed: {type(exc).__name__}: {exc}")
        if rejects_data is not None and rejects_data(exc):
            raise RecordsRejectedError(message) from exc
        raise BackendError(message) from exc


def to_hits(points: Sequence[Any]) -> list[Hit]:
    """Hits from scored points of either engine (``id``, ``score``, ``payload`` attributes)."""
    hits = []
    for point in points:
        payload = dict(point.payload or {})
        record_id = pop_record_id(payload, default=str(point.id))
        hits.append(Hit(id=record_id, score=float(point.score), payload=payload))
    return hits
