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
        spec_key_taken: The collection's metadata has the key splare-connect keeps its
            spec under (``splare_connect``), holding something else: the app's own data.
        payload_fields: Top-level payload fields the collection declares (OpenSearch's
            mapped properties; Qdrant declares none): names the app has taken even where
            no document holds them yet.
        vectors_in_payload: Vectors are stored among the payload fields (OpenSearch's
            ``_source``), so a document's own key can clash with the vector's name.
        cannot_attach: Why splare-connect cannot write into this collection without
            losing some of the app's data (OpenSearch: a ``_source`` that leaves fields
            out, which a scripted update would drop); None when it can.
    """

    name: str
    dense: Mapping[str, int] = field(default_factory=dict)
    sparse: tuple[str, ...] = ()
    spec: CollectionSpec | None = None
    spec_key_taken: bool = False
    payload_fields: tuple[str, ...] = ()
    vectors_in_payload: bool = False
    cannot_attach: str | None = None


@dataclass(frozen=True)
class AppPoint:
    """One point of an app's collection as attach reads it.

    Attributes:
        id: The point's own id.
        payload: The named top-level payload fields.
        has_sparse: Whether the point has splare-connect's sparse vector now. An app
            that re-upserts a point with the payload it read (our state key included)
            but only its own vectors removes it, so the state alone is never trusted.
    """

    id: PointId
    payload: dict[str, Any]
    has_sparse: bool = False


@dataclass(frozen=True)
class SparseUpdate:
    """One point's new sparse vector and splare-connect's state beside it.

    Attributes:
        point_id: The point's own id.
        sparse: The vector, stored under the spec's ``sparse_vector_name``.
        state: Stored under the spec's state key (``_splare`` unless chosen otherwise):
            ``{"hash": ...}``; the rest of the payload is left as it is.
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

    def iter_points(
        self, collection: str, fields: Sequence[str], sparse_vector_name: str | None = None
    ) -> Iterator[AppPoint]:
        """Every point with the named top-level payload fields.

        Args:
            sparse_vector_name: Report whether each point has this sparse vector
                (``has_sparse``); None: don't look (the field may not exist yet).
        """

    def clear_sparse(self, collection: str, point_ids: Sequence[PointId]) -> None:
        """Remove splare-connect's sparse vector and state key from these points; nothing else changes.

        For points whose text went away: their old vector would still match the old text.
        Points the app deleted meanwhile are ignored.
        """

    def update_sparse(self, collection: str, updates: Sequence[SparseUpdate]) -> list[PointId]:
        """Write sparse vectors and state onto existing points, never replacing a point.

        Returns:
            The ids of points that no longer exist (the app deleted them meanwhile);
            they are skipped, the others written.
        """
