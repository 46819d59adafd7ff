"""The interface every vector-database backend implements.

The core (sync engine, retriever, CLI) talks only to this protocol; each adapter
(``splare-connect-qdrant``, ``splare-connect-opensearch``, or a third party's) maps it
onto its database. Records carry the core's own types (:class:`SparseVector`, numpy
dense vectors, plain-dict payloads); conversion happens inside the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from splare_connect.sparse_vector import SparseVector

Fusion = Literal["rrf", "dbsf"]


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection holds and which encoder made its vectors.

    Attributes:
        name: Collection (Qdrant) or index (OpenSearch) name.
        sparse_dim: Width of the sparse vectors (the SAE's latent count).
        fingerprint: The encoder's fingerprint (``SplareEncoder.fingerprint``);
            stored with the collection and checked before every write and query.
        dense_dim: Width of the dense vectors, or ``None`` for a sparse-only collection.
        sparse_vector_name: Name of the sparse vector field.
        dense_vector_name: Name of the dense vector field.
        idf: Ask the engine to weight query features by inverse document frequency.
        indexed_fields: Payload fields to index for filtering.
        max_weight: Largest document weight seen when the collection was created
            (the sync engine fills it in); indexes that quantize weights use it as
            their ceiling. Not compared when checking an existing collection.
    """

    name: str
    sparse_dim: int
    fingerprint: Mapping[str, Any]
    dense_dim: int | None = None
    sparse_vector_name: str = "splare"
    dense_vector_name: str = "dense"
    idf: bool = False
    indexed_fields: tuple[str, ...] = ()
    max_weight: float | None = None


@dataclass(frozen=True)
class PointRecord:
    """One stored unit: a document or a chunk of one.

    Attributes:
        id: Stable string id (document id, or ``"<doc id>#<chunk>"``); backends derive
            their own point ids from it deterministically, so re-writing is idempotent.
        sparse: The sparse vector.
        dense: Dense vector, when the collection has one.
        payload: JSON-compatible fields stored beside the vectors.
    """

    id: str
    sparse: SparseVector
    dense: npt.NDArray[np.float32] | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Operations the core needs from a vector database."""

    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection, or check that an existing one matches ``spec``."""

    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The stored spec of a collection, or ``None`` if it doesn't exist."""

    def list_collections(self) -> list[str]:
        """Names of the collections this backend holds."""

    def drop_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points (same id: replaced, never duplicated)."""

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by their string ids (missing ids are ignored)."""

    def iter_payloads(self, collection: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every point's string id with the named payload fields (sync reads its state this way)."""

    def fetch_sparse(self, collection: str, ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by record id (missing ids are left out); used to explain scores."""

    def count(self, collection: str) -> int:
        """Number of points stored."""

    def finalize(self, collection: str) -> None:
        """Make recent writes durable and fast to search (flush; optimise where the engine needs it)."""

    def search(self, collection: str, query: SparseVector, *, k: int = 10, filter: Any = None) -> list[Hit]:
        """Top ``k`` points by sparse dot product.

        ``filter`` is a list of :class:`splare_connect.filters.Condition` (any backend)
        or the backend's own filter object.
        """

    def hybrid_search(
        self,
        collection: str,
        sparse: SparseVector,
        dense: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
        filter: Any = None,
    ) -> list[Hit]:
        """Top ``k`` points fusing sparse and dense rankings in the engine.

        Args:
            fusion: ``"rrf"`` (reciprocal rank fusion) or ``"dbsf"``
                (distribution-based score fusion).
            rrf_k: RRF's rank constant, always sent explicitly (Qdrant's default is 2,
                most systems use 60).
            weights: ``(sparse, dense)`` weights of the two rankings.
            candidates: Points each side contributes before fusion.
        """

    def close(self) -> None:
        """Release connections and files."""
