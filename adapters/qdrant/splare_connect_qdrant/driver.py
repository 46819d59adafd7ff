"""The seam between the one Qdrant backend and its two engines.

:class:`~splare_connect_qdrant.backend.QdrantBackend` decides *what* to store and ask
(which vectors, which checks, which prefetches, how to batch); a driver only says it in
its engine's words and runs it. The two engines share Qdrant's data model but not its
Python classes (``qdrant_edge.Point`` vs ``qdrant_client.models.PointStruct``, a
``QueryRequest`` vs ``query_points`` arguments), so requests cross this seam as the
neutral values below. This is qdrant-client's own design: one facade, one base
interface, a local and a remote implementation.

Drivers report every failure as a one-line :class:`~splare_connect.errors.BackendError`
(:class:`~splare_connect.errors.RecordsRejectedError` when the engine refused the
records themselves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from splare_connect.backends import CollectionLayout, CollectionSpec, Fusion, PointId, SparseUpdate
from splare_connect.sparse_vector import SparseVector

Vector = SparseVector | list[float]
"""A sparse vector, or a dense one as a list of floats."""


@dataclass(frozen=True)
class EnginePoint:
    """A point as stored: its database id, its named vectors and its payload."""

    id: str
    vectors: Mapping[str, Vector]
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Nearest:
    """The ``limit`` points nearest to ``vector`` in the vector field ``using``, among those ``filter`` keeps.

    ``filter`` is a list of core conditions or the engine's own filter object; the
    driver translates it (and refuses another engine's).
    """

    using: str
    vector: Vector
    limit: int
    filter: Any = None


@dataclass(frozen=True)
class Fused:
    """The top ``limit`` points of several :class:`Nearest` rankings fused by the engine.

    Attributes:
        prefetches: The rankings, each with its own filter.
        fusion: ``"rrf"`` (with ``rrf_k`` and ``weights``) or ``"dbsf"``.
        rrf_k: RRF's rank constant, always sent (Qdrant's default is 2).
        weights: One weight per prefetch (RRF only).
        limit: Points returned.
    """

    prefetches: tuple[Nearest, ...]
    fusion: Fusion
    rrf_k: int
    weights: tuple[float, ...]
    limit: int


class QdrantDriver(Protocol):
    """What an engine does for :class:`~splare_connect_qdrant.backend.QdrantBackend`.

    Attributes:
        where: Where collections live, for "does not exist" messages (``" under <dir>"``
            or ``""``).
        retry_deadline: Seconds after a request's first try past which it is not
            retried; None for an engine that doesn't retry (in-process).
    """

    where: str

    @property
    def retry_deadline(self) -> float | None: ...

    def read_spec(self, name: str) -> CollectionSpec | None:
        """The spec stored with a collection, or None when it doesn't exist."""

    def create(self, spec: CollectionSpec, keyword_fields: Sequence[str]) -> None:
        """Create a collection for ``spec``, with keyword indexes on the payload paths given, and store the spec."""

    def list_collections(self) -> list[str]:
        """Names of the collections."""

    def drop(self, name: str) -> None:
        """Delete a collection and everything in it."""

    def upsert(self, collection: str, points: Sequence[EnginePoint]) -> None:
        """Write one batch of points (building the engine's objects may refuse them, too)."""

    def delete(self, collection: str, point_ids: Sequence[str]) -> None:
        """Delete points by database id (missing ones are ignored)."""

    def finalize(self, collection: str) -> None:
        """Make recent writes durable and fast to search."""

    def scroll(
        self,
        collection: str,
        fields: Sequence[str],
        offset: Any,
        limit: int,
        has_vector: tuple[str, bool] | None = None,
    ) -> tuple[list[Any], Any]:
        """One page of points (``.payload`` with ``fields``) and the next page's offset (None: done).

        ``has_vector=(name, True)`` keeps only points that have the vector ``name``,
        ``(name, False)`` only those that don't.
        """

    def retrieve(
        self, collection: str, point_ids: Sequence[int | str], fields: Sequence[str], vector: str
    ) -> list[Any]:
        """Points by database id, with ``fields`` of the payload and the vector ``vector`` (``.vector[vector]``)."""

    def count(self, collection: str) -> int:
        """Number of points (exact)."""

    def query(self, collection: str, query: Nearest | Fused, action: str) -> list[Any]:
        """Scored points (``.id``, ``.score``, ``.payload``), best first; ``action`` names it in errors."""

    # -------------------------------------------- collections another app made
    def layout(self, name: str) -> CollectionLayout | None:
        """The collection's vector fields and stored spec, whoever made it; None when it doesn't exist."""

    def add_sparse_vector(self, collection: str, vector_name: str, idf: bool) -> None:
        """Add a sparse vector field to an existing collection (a no-op if it exists alike)."""

    def store_spec(self, spec: CollectionSpec) -> None:
        """Store the spec of an attached collection, leaving the app's own metadata as it is."""

    def replace_spec(self, spec: CollectionSpec) -> None:
        """Replace the spec kept with an existing collection (its search settings); nothing else changes."""

    def update_vectors(
        self, collection: str, vector_name: str, state_key: str, updates: Sequence[SparseUpdate]
    ) -> None:
        """Set one sparse vector and the state payload key on existing points; nothing else changes."""

    def clear_vectors(self, collection: str, vector_name: str, state_key: str, point_ids: Sequence[PointId]) -> None:
        """Delete one vector and the state payload key from points; a missing point fails the request."""

    def existing(self, collection: str, point_ids: Sequence[PointId]) -> set[PointId]:
        """Which of these point ids exist."""

    def close(self) -> None:
        """Release files, locks and connections."""
