"""The interface every vector-database backend implements.

The core (sync engine, retriever, CLI) talks only to this protocol; each adapter
(``splare-connect-qdrant``, ``splare-connect-opensearch``, or a third party's) maps it
onto its database. Records carry the core's own types (:class:`SparseVector`, numpy
dense vectors, plain-dict payloads); conversion happens inside the adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from splare_connect.backends.schema import STATE_KEY
from splare_connect.choices import Fusion
from splare_connect.errors import BackendError, ConfigError, EncoderMismatchError
from splare_connect.search_settings import SearchSettings
from splare_connect.sparse_vector import SparseVector


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
        text_field: Set on a collection another application made and splare-connect
            *attached* to (:mod:`splare_connect.attach`): the payload path of each
            point's text. splare-connect then owns only its sparse vector and the
            ``_splare`` payload key; points, ids and everything else are the app's.
        doc_id_field: On an attached collection, the payload path naming each point's
            source document (None: each point is its own document).
        state_key: On an attached collection, the top-level payload key holding
            splare-connect's state of each point (``{"hash": ...}``): ``_splare`` unless
            the app already used that name when it was attached. Stored, so every later
            command finds it again.
        search: The collection's default search settings (``tune --apply`` or
            ``collections settings``); None: the built-in defaults. Not compared when
            checking an existing collection.
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
    text_field: str | None = None
    doc_id_field: str | None = None
    state_key: str = STATE_KEY
    search: SearchSettings | None = None

    def __post_init__(self) -> None:
        check_field_names(self.indexed_fields)
        check_field_names([f for f in (self.text_field, self.doc_id_field) if f is not None])
        check_state_key(self.state_key)

    @property
    def attached(self) -> bool:
        """Whether another application owns this collection (splare-connect only added its vector)."""
        return self.text_field is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored with the collection (Qdrant metadata, OpenSearch ``_meta``, a file)."""
        return {
            "sparse_dim": self.sparse_dim,
            "dense_dim": self.dense_dim,
            "fingerprint": dict(self.fingerprint),
            "sparse_vector_name": self.sparse_vector_name,
            "dense_vector_name": self.dense_vector_name,
            "idf": self.idf,
            "indexed_fields": list(self.indexed_fields),
            "max_weight": self.max_weight,
            # Only attached collections carry these, so existing specs stay byte for byte as they were.
            **(
                {"text_field": self.text_field, "doc_id_field": self.doc_id_field, "state_key": self.state_key}
                if self.attached
                else {}
            ),
            **({"search": self.search.to_dict()} if self.search is not None else {}),
        }

    def check_width(self, record_id: str, vector: SparseVector) -> None:
        """Refuse a vector whose feature ids lie outside the collection's latent width.

        Engines would store it, and its features would silently match another model's.

        Raises:
            BackendError: Naming the record, the feature id and the width.
        """
        if vector.nnz and int(vector.indices[-1]) >= self.sparse_dim:
            raise BackendError(
                f"record {record_id!r}: feature id {int(vector.indices[-1])} is outside collection "
                f"{self.name!r}'s width {self.sparse_dim}"
            )

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> CollectionSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=name,
            sparse_dim=int(data["sparse_dim"]),
            dense_dim=None if data.get("dense_dim") is None else int(data["dense_dim"]),
            fingerprint=dict(data["fingerprint"]),
            sparse_vector_name=str(data.get("sparse_vector_name", "splare")),
            dense_vector_name=str(data.get("dense_vector_name", "dense")),
            idf=bool(data.get("idf", False)),
            indexed_fields=tuple(data.get("indexed_fields", ())),
            max_weight=None if data.get("max_weight") is None else float(data["max_weight"]),
            text_field=None if data.get("text_field") is None else str(data["text_field"]),
            doc_id_field=None if data.get("doc_id_field") is None else str(data["doc_id_field"]),
            state_key=str(data.get("state_key", STATE_KEY)),
            search=_stored_search(data.get("search")),
        )

    @classmethod
    def parse_stored(cls, name: str, data: Any) -> CollectionSpec | None:
        """The spec stored under the ``splare_connect`` metadata key, or None when the value is not one.

        That key is in the application's metadata, where the app may have put something
        of its own under the same name (a string, a list, an unrelated object): that is
        not a spec of ours, and reading it must not crash every command.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("fingerprint"), Mapping):
            return None
        try:
            return cls.from_dict(name, data)
        except (KeyError, TypeError, ValueError, ConfigError):
            return None


def _stored_search(data: Any) -> SearchSettings | None:
    """The stored search settings; None when absent or unreadable (they are defaults, and a bad
    entry must not hide the collection's spec, which guards its vectors)."""
    if not isinstance(data, Mapping):
        return None
    try:
        return SearchSettings.from_dict(data)
    except (ConfigError, TypeError, ValueError, IndexError):
        return None


# A metadata field name that every engine can index: dot-separated segments of letters,
# digits, '_' and '-' (a space, a bracket or an empty segment breaks Qdrant's payload paths).
_FIELD_NAME = re.compile(r"^[\w\-]+(\.[\w\-]+)*$")


_STATE_KEY_NAME = re.compile(r"^[\w\-]{1,64}$")


def check_state_key(name: str) -> None:
    """Refuse a state key that is not one plain top-level payload key (no dots: nothing nested).

    Raises:
        ConfigError: Naming the key and the rule.
    """
    if not isinstance(name, str) or not _STATE_KEY_NAME.match(name):
        raise ConfigError(f"state key {name!r}: use 1-64 letters, digits, '_' and '-' (one top-level payload key)")


def check_field_names(names: Sequence[str]) -> None:
    """Refuse field names an engine cannot index, before anything is created.

    Raises:
        ConfigError: Naming the field and the rule.
    """
    for name in names:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise ConfigError(
                f"cannot index field {name!r}: use letters, digits, '_' and '-', with '.' between nested names"
            )


def create_or_adopt(
    spec: CollectionSpec,
    describe: Callable[[str], CollectionSpec | None],
    create: Callable[[], None],
) -> bool:
    """Create a collection, or adopt an existing compatible one; what every backend's
    ``create_collection`` does.

    Parallel workers (``--shard i/n``) may race to create the same collection: the
    loser's create fails, and it adopts the winner's collection if it is compatible.

    Returns:
        True if this call created the collection.

    Raises:
        EncoderMismatchError / BackendError: The existing collection doesn't match.
    """
    existing = describe(spec.name)
    if existing is not None:
        check_compatible(existing, spec)
        return False
    try:
        create()
    except BackendError:
        winner = describe(spec.name)
        if winner is None:
            raise
        check_compatible(winner, spec)
        return False
    return True


def describe_encoder(fingerprint: Mapping[str, Any]) -> str:
    """``'name' (digest …)``, with the precision when it is not fp32, for error messages."""
    precision = f" at {fingerprint['precision']}" if fingerprint.get("precision") else ""
    return f"{fingerprint.get('name')!r}{precision} (digest {fingerprint.get('digest')})"


def weights_digest(fingerprint: Mapping[str, Any]) -> str | None:
    """The digest of an encoder's weights and settings alone, without its arithmetic.

    fp32 and bf16 fingerprints hash no precision, so their ``digest`` is it. An int8
    fingerprint hashes its precision and records this one beside it; one written before
    int8 fingerprints recorded it has none (``None``).
    """
    if "weights_digest" in fingerprint:
        return str(fingerprint["weights_digest"])
    if fingerprint.get("precision") in (None, "fp32", "bf16"):
        return None if fingerprint.get("digest") is None else str(fingerprint["digest"])
    return None


def check_same_encoder(
    collection: str, stored: Mapping[str, Any], current: Mapping[str, Any], *, remedy: str
) -> str | None:
    """Refuse an encoder with other weights than the one a collection was built with.

    Mixing vector spaces corrupts search silently, for writes and queries alike. fp32 and
    bf16 of the same weights (documents written at bf16, queried at fp32, or an
    inference-free query side of the same model) are one vector space: allowed, and said
    in the returned note. int8 is refused against the others even with the same weights:
    its vectors move too far (int8 queries on fp32 documents: English nDCG@10 0.590
    against 0.635 all-fp32), so it keeps a space of its own.

    Returns:
        ``None`` when the arithmetic is the same too, else one line saying how it differs.

    Raises:
        EncoderMismatchError: Naming both encoders and ``remedy``.
    """
    same_digest = stored.get("digest") == current.get("digest")
    same_weights = weights_digest(stored) is not None and weights_digest(stored) == weights_digest(current)
    if not (same_digest or same_weights):
        legacy = stored.get("precision") == "int8" and weights_digest(stored) is None
        hint = (
            "; it was written at int8 before collections recorded the digest of their weights, so only "
            "precision int8 can tell it is the same model"
            if legacy
            else ""
        )
        raise EncoderMismatchError(
            f"collection {collection!r} was built by encoder {describe_encoder(stored)}, "
            f"but this encoder is {describe_encoder(current)}; {remedy}{hint}"
        )
    written_at = str(stored.get("precision") or "fp32")
    runs_at = str(current.get("precision") or "fp32")
    if written_at == runs_at:
        return None
    if "int8" in (written_at, runs_at):
        raise EncoderMismatchError(
            f"collection {collection!r} was written at {written_at} and this encoder runs at {runs_at}: the same "
            "weights, but int8 vectors mixed with others cost retrieval quality (int8 queries on fp32 documents: "
            f"English nDCG@10 0.590 against 0.635); use precision {written_at}"
        )
    return f"collection {collection!r} was written at {written_at}; this encoder runs at {runs_at} (same weights)"


_COMPARED = ("sparse_dim", "dense_dim", "sparse_vector_name", "dense_vector_name", "idf", "text_field", "doc_id_field")


def check_compatible(existing: CollectionSpec, wanted: CollectionSpec) -> str | None:
    """Refuse to reuse a collection built by another encoder or with other vectors.

    Returns:
        A note when the encoder runs at other arithmetic than the collection was
        written at (see :func:`check_same_encoder`), else ``None``.

    Raises:
        EncoderMismatchError: The encoder fingerprints differ (mixing vector spaces
            corrupts search silently).
        BackendError: Vector widths, names or the IDF setting differ.
    """
    note = check_same_encoder(
        wanted.name,
        existing.fingerprint,
        wanted.fingerprint,
        remedy="use another collection name, or drop this one and ingest again",
    )
    for attribute in _COMPARED:
        if getattr(existing, attribute) != getattr(wanted, attribute):
            raise BackendError(
                f"collection {wanted.name!r} has {attribute}={getattr(existing, attribute)!r}, "
                f"but {getattr(wanted, attribute)!r} was asked for; drop it or use another name"
            )
    return note


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
        """Insert or replace points (same id: replaced, never duplicated).

        Raises:
            PartialWriteError: Some points were refused and the others stored.
            RecordsRejectedError: The database refused the points' data (not the
                connection); the sync engine then writes the documents apart to find
                the refused ones.
        """

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
        fusion: Fusion = Fusion.RRF,
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
        candidates: int = 100,
        filter: Any = None,
        dense_field: str | None = None,
    ) -> list[Hit]:
        """Top ``k`` points fusing sparse and dense rankings in the engine.

        Args:
            dense: The dense query vector: the encoder's own, or one the caller's
                model made for ``dense_field``.
            dense_field: The dense vector field to search (Qdrant named vector,
                OpenSearch ``knn_vector`` field); None: the collection's own.
            fusion: ``"rrf"`` (reciprocal rank fusion) or ``"dbsf"``
                (distribution-based score fusion).
            rrf_k: RRF's rank constant, always sent explicitly (Qdrant's default is 2,
                most systems use 60).
            weights: ``(sparse, dense)`` weights of the two rankings.
            candidates: Points each side contributes before fusion.
        """

    def close(self) -> None:
        """Release connections and files."""


@runtime_checkable
class SpecStoringBackend(Protocol):
    """A backend that can replace the spec kept with an existing collection.

    Used to keep a collection's search settings (:class:`~splare_connect.search_settings.SearchSettings`)
    with it. Separate from :class:`Backend`, so a backend written before it still loads;
    one without it refuses ``tune --apply`` and ``collections settings`` in one line.
    """

    def store_spec(self, spec: CollectionSpec) -> None:
        """Replace the stored spec of collection ``spec.name``; nothing else about it changes.

        Raises:
            CollectionNotFoundError: There is no such collection, or it holds no spec of ours.
        """
