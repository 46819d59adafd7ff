"""What a backend offers to attach SPLARE vectors to a collection another application made.

An ordinary RAG stack owns its collection: its point ids, its payload, its dense
vectors. Attaching (:mod:`splare_connect.attach`) adds one sparse vector field beside
them and fills it point by point, without rewriting a point: Qdrant's
``update_vectors`` (never ``upsert``, which replaces the whole point), OpenSearch's
partial ``_update``. A backend that can do this implements :class:`AttachableBackend`
on top of :class:`~splare_connect.backends.Backend`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from splare_connect.backends.protocol import CollectionSpec
from splare_connect.sparse_vector import SparseVector

PointId = int | str
"""A point's id as the database keeps it (Qdrant: an unsigned integer or a UUID string)."""


@dataclass(frozen=True)
class CollectionLayout:
    """The vector fields a collection has, whoever made it.

    Attributes:
        name: Collection or index name.
        dense: Dense vector fields and their widths (Qdrant's unnamed vector is ``""``).
        sparse: Sparse vector fields (OpenSearch: ``rank_features`` fields).
        spec: splare-connect's spec, when it created or attached the collection.
    """

    name: str
    dense: Mapping[str, int] = field(default_factory=dict)
    sparse: tuple[str, ...] = ()
    spec: CollectionSpec | None = None


@dataclass(frozen=True)
class SparseUpdate:
    """One point's new sparse vector and splare-connect's state beside it.

    Attributes:
        point_id: The point's own id.
        sparse: The vector, stored under the spec's ``sparse_vector_name``.
        state: Stored under the payload key ``_splare`` (``{"hash": ...}``); the rest
            of the payload is left as it is.
    """

    point_id: PointId
    sparse: SparseVector
    state: Mapping[str, Any]


@runtime_checkable
class AttachableBackend(Protocol):
    """Operations attaching needs beyond :class:`~splare_connect.backends.Backend`."""

    def inspect_collection(self, name: str) -> CollectionLayout | None:
        """The collection's vector fields (and spec, if any), or None when it doesn't exist."""

    def attach_collection(self, spec: CollectionSpec) -> None:
        """Add ``spec.sparse_vector_name`` to an existing collection and store ``spec`` beside it.

        Nothing else of the collection changes: not its other fields, not its own
        metadata (the spec is merged in under ``splare_connect``).

        Raises:
            BackendError: The engine cannot add a field to an existing collection (the
                message names the version needed).
        """

    def iter_points(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[PointId, dict[str, Any]]]:
        """Every point's own id with the named top-level payload fields."""

    def update_sparse(self, collection: str, updates: Sequence[SparseUpdate]) -> list[PointId]:
        """Write sparse vectors and state onto existing points, never replacing a point.

        Returns:
            The ids of points that no longer exist (the app deleted them meanwhile);
            they are skipped, the others written.
        """
