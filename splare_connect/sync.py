"""Ingest and sync: encode only new or changed documents, and survive being killed.

The backend itself is the record of what is done. Every stored chunk carries its
document's ``doc_id``, ``content_hash`` and ``chunk_count``; a document counts as done
only when all its chunks are present with the current hash. A run reads that state
first, so one killed at any moment (``kill -9`` included) and started again skips the
finished documents, redoes the unfinished ones, and — point ids being deterministic —
never duplicates anything.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from splare_connect.backends import Backend, CollectionSpec, PointRecord, check_compatible
from splare_connect.backends.schema import CHUNK_COUNT, CONTENT_HASH, DOC_ID, StoredChunk
from splare_connect.chunking import DEFAULT_OVERLAP, Chunk, chunk_document, content_window, window_overlap
from splare_connect.documents import Document
from splare_connect.errors import BadRecordError, ConfigError, PartialWriteError, RecordsRejectedError
from splare_connect.record_rules import DEFAULT_LIMITS, RecordLimits, content_problem, id_problem
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

LOGGER = logging.getLogger(__name__)
STATE_FIELDS = (DOC_ID, CONTENT_HASH, CHUNK_COUNT)  # what a run reads to know which documents are done


@dataclass
class SyncReport:
    """What a sync did; ``to_dict`` gives the JSON the CLI prints."""

    documents: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    chunks_written: int = 0
    deleted_documents: int = 0
    skipped: list[BadRecordError] = field(default_factory=list)
    deletion_refused: str | None = None
    # The collection was written at other arithmetic than this run's encoder (bf16 vs fp32).
    arithmetic_note: str | None = None
    precision: str = "fp32"  # what this run's encoder computes at
    seconds: float = 0.0

    @property
    def encoded(self) -> int:
        """Documents encoded in this run (new + changed)."""
        return self.new + self.changed

    @property
    def documents_per_second(self) -> float:
        """Encoded documents per second of wall time."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [
            {"source": e.source, "line": e.line, "id": e.record_id, "error": str(e)} for e in self.skipped
        ]
        data["encoded"] = self.encoded
        data["documents_per_second"] = round(self.documents_per_second, 3)
        return data


@dataclass(frozen=True)
class Shard:
    """``index`` of ``count``: this worker handles the documents whose id hashes to it."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard must be i/n with 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"i/n"``."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError as exc:
            raise ConfigError(f"shard must look like i/n (for example 0/4), got {text!r}") from exc
        return cls(index, count)

    def owns(self, doc_id: str) -> bool:
        """Whether this shard handles ``doc_id`` (stable across runs and machines)."""
        if self.count == 1:
            return True
        digest = hashlib.sha1(doc_id.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass
class _Stored:
    hashes: set[str | None] = field(default_factory=set)
    records: set[str] = field(default_factory=set)
    chunk_count: int | None = None

    def complete_with(self, content_hash: str) -> bool:
        return self.hashes == {content_hash} and len(self.records) == self.chunk_count


WriteBatch = list[tuple[Document, list[Chunk]]]  # documents encoded and written together, with their chunks


@dataclass
class SyncRun:
    """One run's state: what the collection held at the start, what the source held so far, the counts."""

    stored: dict[str, _Stored]
    created: bool
    started: float
    report: SyncReport = field(default_factory=SyncReport)
    seen: dict[str, str] = field(default_factory=dict)  # id -> where it was read, for duplicate ids
    kept: set[str] = field(default_factory=set)  # ids of skipped records: in the source, so never "missing"


class Syncer:
    """Brings a collection in line with a document source.

    Args:
        encoder: The encoder; its fingerprint is recorded in (and checked against) the
            collection.
        backend: Any :class:`Backend`.
        collection: Collection name.
        dense: Store the dense embedding too (default: when the encoder has one).
        store_text: Keep each chunk's text in the payload (needed to show results).
        indexed_fields: Metadata fields to index for filtering.
        idf: Ask the engine to weight query features by IDF.
        chunk_overlap: Tokens shared by consecutive chunks of a long document.
        batch_size: Texts per encoder forward pass.
        documents_per_write: Documents encoded and written together; also how much
            work a crash can lose.
        chunks_per_write: Chunks encoded and written together at most (a write holds
            fewer documents when they are long; a document with more chunks is written
            alone), which bounds memory per write.
        shard: Process only this shard of the documents (parallel workers).
        limits: What one record may hold (:class:`RecordLimits`); records beyond them
            are skipped and reported.
        max_delete_fraction: Share of the stored documents that ``delete_missing`` may
            remove in one run without ``force_delete``.
    """

    def __init__(
        self,
        encoder: SplareEncoder,
        backend: Backend,
        collection: str,
        *,
        dense: bool | None = None,
        store_text: bool = True,
        indexed_fields: tuple[str, ...] = (),
        idf: bool = False,
        chunk_overlap: int = DEFAULT_OVERLAP,
        batch_size: int = 32,
        documents_per_write: int = 64,
        chunks_per_write: int = 256,
        shard: Shard = Shard(),
        limits: RecordLimits = DEFAULT_LIMITS,
        max_delete_fraction: float = 0.5,
    ) -> None:
        self.encoder = encoder
        self.backend = backend
        self.collection = collection
        self.dense = encoder.has_dense if dense is None else dense
        if self.dense and not encoder.has_dense:
            raise ConfigError(f"model {encoder.config.name!r} has no dense embedding; use dense=False")
        self.store_text = store_text
        self.indexed_fields = indexed_fields
        self.idf = idf
        self.batch_size = batch_size
        self.documents_per_write = documents_per_write
        self.chunks_per_write = chunks_per_write
        self.shard = shard
        self.limits = limits
        self.max_delete_fraction = max_delete_fraction
        self._overlap_asked = chunk_overlap

    @cached_property
    def max_chunk_tokens(self) -> int:
        """Content tokens per chunk; read from the tokenizer when a document is first chunked,
        so a run with nothing to encode never builds the tokenizer (over a second for 250k pieces)."""
        return content_window(self.encoder)

    @cached_property
    def chunk_overlap(self) -> int:
        """Tokens consecutive chunks share (the asked overlap, capped by the window)."""
        return window_overlap(self.max_chunk_tokens, self._overlap_asked)

    def collection_spec(self, max_weight: float | None = None) -> CollectionSpec:
        """The spec this syncer creates (or expects to find)."""
        return CollectionSpec(
            name=self.collection,
            sparse_dim=self.encoder.dim,
            fingerprint=self.encoder.fingerprint,
            dense_dim=self.encoder.dense_dim if self.dense else None,
            idf=self.idf,
            indexed_fields=self.indexed_fields,
            max_weight=max_weight,
        )

    def run(
        self,
        source: Iterable[Document | BadRecordError],
        *,
        delete_missing: bool = False,
        force_delete: bool = False,
        on_progress: Callable[[SyncReport], None] | None = None,
    ) -> SyncReport:
        """Sync the collection with ``source``.

        Args:
            source: Documents (and bad-record errors, which are reported and skipped).
            delete_missing: Delete documents stored in this shard but absent from
                ``source``. A document whose record is skipped as bad is not absent: it
                is kept. Deleting is refused (``report.deletion_refused`` says why) when
                some records could not be read at all, so that their ids are unknown,
                or when more than ``max_delete_fraction`` of the stored documents would go.
            force_delete: Delete the missing documents even then.
            on_progress: Called after each write and at the end, for progress display.

        Returns:
            Counts of what happened; ``report.skipped`` lists the bad records.
        """
        run = self.begin()
        for batch in self.write_batches(source, run):
            self.write(batch, run)
            if on_progress:
                on_progress(run.report)
        self.end(run, delete_missing=delete_missing, force_delete=force_delete)
        if on_progress:
            on_progress(run.report)
        return run.report

    # The steps of a run, public so that another engine (splare_connect.distributed)
    # can encode the write batches elsewhere and keep every other rule of this one.

    def begin(self) -> SyncRun:
        """Check the collection and read what it holds, before anything is encoded.

        Raises:
            ConfigError: The collection is attached to another application's points.
            EncoderMismatchError: It was built by another encoder.
        """
        started = time.perf_counter()
        existing = self.backend.describe_collection(self.collection)
        if existing is not None and existing.attached:
            raise ConfigError(
                f"collection {self.collection!r} belongs to another application (splare-connect is attached to "
                "it); an ingest would replace its points: refresh its vectors with `splare-connect attach` instead"
            )
        # A new collection is created at the first write, once the largest document
        # weight is known (indexes that quantize weights need it); an existing one is
        # checked now, before anything is encoded.
        note = None
        if existing is not None:
            wanted = self.collection_spec(existing.max_weight)
            note = check_compatible(existing, wanted)
            self.backend.create_collection(wanted)
        stored = self._stored_state() if existing is not None else {}
        run = SyncRun(stored=stored, created=existing is not None, started=started)
        run.report.arithmetic_note = note
        run.report.precision = self.encoder.precision
        return run

    def write_batches(self, source: Iterable[Document | BadRecordError], run: SyncRun) -> Iterator[WriteBatch]:
        """The documents to encode, in write batches; counts and skips are recorded in ``run`` as it goes.

        A document is new, changed (encoded again) or unchanged (skipped: all its
        chunks are stored with its current content hash). A batch holds at most
        ``documents_per_write`` documents and, unless one document alone has more,
        ``chunks_per_write`` chunks.
        """
        report = run.report
        pending: WriteBatch = []
        pending_chunks = 0
        for item in source:
            error = item if isinstance(item, BadRecordError) else self._problem(item, run.seen)
            if error is not None:
                if error.record_id is not None:
                    run.kept.add(error.record_id)
                if error.record_id is None or self.shard.owns(error.record_id):
                    report.skipped.append(error)
                continue
            assert isinstance(item, Document)
            if not self.shard.owns(item.id):
                continue
            run.seen[item.id] = f"{item.source}:{item.line}" if item.line else str(item.source)
            report.documents += 1
            previous = run.stored.get(item.id)
            if previous is not None and previous.complete_with(item.content_hash):
                report.unchanged += 1
                continue
            if previous is None:
                report.new += 1
            else:
                report.changed += 1
            chunks = self._chunks(item)
            if pending and pending_chunks + len(chunks) > self.chunks_per_write:
                yield pending  # the write would grow past its chunk bound
                pending, pending_chunks = [], 0
            pending.append((item, chunks))
            pending_chunks += len(chunks)
            if len(pending) >= self.documents_per_write:
                yield pending
                pending, pending_chunks = [], 0
        if pending:
            yield pending

    def write(self, batch: WriteBatch, run: SyncRun) -> None:
        """Encode one write batch here and store it."""
        texts = [chunk.text for _, chunks in batch for chunk in chunks]
        encoded = self.encoder.encode(texts, role="document", dense=self.dense, batch_size=self.batch_size)
        self.store(batch, encoded.sparse, encoded.dense, run)

    def store(
        self,
        batch: WriteBatch,
        sparse: Sequence[SparseVector],
        dense: npt.NDArray[np.float32] | None,
        run: SyncRun,
    ) -> None:
        """Store one encoded write batch (vectors in chunk order), creating the collection at the first."""
        if not run.created:
            weights = [float(v.values.max()) for v in sparse if v.nnz]
            self.backend.create_collection(self.collection_spec(max(weights, default=None)))
            run.created = True
        failures = upsert_documents(self.backend, self.collection, point_groups(batch, sparse, dense, self.store_text))
        self.account(batch, failures, run)

    def account(self, batch: WriteBatch, failures: Sequence[tuple[str, str]], run: SyncRun) -> None:
        """Record a stored write batch: refused documents reported, stale chunks of changed ones deleted.

        Refused documents stay incomplete, so the next run tries them again; their stored
        chunks are kept as they are rather than lose the previous version.
        """
        report = run.report
        refused = {record_id for record_id, _ in failures}
        doc_of = {chunk.record_id: document for document, chunks in batch for chunk in chunks}
        refused_documents: dict[str, tuple[Document | None, str]] = {}
        for record_id, reason in failures:  # one line per refused document, not per chunk
            document = doc_of.get(record_id)
            refused_documents.setdefault(record_id if document is None else document.id, (document, reason))
        for doc_id, (document, reason) in refused_documents.items():
            report.skipped.append(
                BadRecordError(
                    f"refused by the database: {reason}",
                    source=None if document is None else document.source,
                    line=None if document is None else document.line,
                    record_id=doc_id,
                )
            )
        written = set(doc_of) - refused
        stale = sorted(
            record
            for document, _ in batch
            if document.id in run.stored and document.id not in refused_documents
            for record in run.stored[document.id].records - written
        )
        self.backend.delete(self.collection, stale)
        report.chunks_written += len(doc_of) - len(refused)
        LOGGER.info("wrote %d documents (%d chunks)", len(batch), len(doc_of))

    def end(self, run: SyncRun, *, delete_missing: bool = False, force_delete: bool = False) -> None:
        """Create the collection if nothing was written, delete missing documents if asked, finalize."""
        if not run.created:
            self.backend.create_collection(self.collection_spec())
            run.created = True
        if delete_missing:
            self._delete_missing(run.stored, run.seen.keys() | run.kept, run.report, force_delete)
        self.backend.finalize(self.collection)
        run.report.seconds = time.perf_counter() - run.started

    def _problem(self, document: Document, seen: dict[str, str]) -> BadRecordError | None:
        """Why this document can't be ingested (a broken record rule, a duplicate id), if it can't."""
        where: dict[str, Any] = {"source": document.source, "line": document.line}
        problem = id_problem(document.id, self.limits)
        if problem is not None:
            return BadRecordError(problem, **where)
        problem = content_problem(document.text, document.metadata, self.limits)
        if problem is None and document.id in seen:
            problem = f"duplicate id {document.id!r} (first seen at {seen[document.id]})"
        return None if problem is None else BadRecordError(problem, record_id=document.id, **where)

    def _delete_missing(self, stored: dict[str, _Stored], present: Set[str], report: SyncReport, force: bool) -> None:
        owned = [doc_id for doc_id in stored if self.shard.owns(doc_id)]
        missing = [doc_id for doc_id in owned if doc_id not in present]
        if not missing:
            return
        unreadable = sum(1 for error in report.skipped if error.record_id is None)
        refusal = None
        if unreadable and not force:
            refusal = (
                f"not deleting the {len(missing)} stored documents missing from the source: {unreadable} "
                "records could not be read, and a missing document cannot be told from an unreadable one; "
                "fix those records, or insist with --force-delete (force_delete=True)"
            )
        elif len(missing) > self.max_delete_fraction * len(owned) and not force:
            refusal = (
                f"not deleting the {len(missing)} stored documents missing from the source: that is "
                f"{len(missing) / len(owned):.0%} of the {len(owned)} stored, more than the "
                f"{self.max_delete_fraction:.0%} allowed; check the source, or insist with --force-delete "
                "(force_delete=True)"
            )
        if refusal is not None:
            LOGGER.warning(refusal)
            report.deletion_refused = refusal
            return
        for doc_id in missing:
            self.backend.delete(self.collection, sorted(stored[doc_id].records))
        report.deleted_documents = len(missing)

    def _chunks(self, document: Document) -> list[Chunk]:
        return chunk_document(document, self.encoder.tokenizer, self.max_chunk_tokens, self.chunk_overlap)

    def _stored_state(self) -> dict[str, _Stored]:
        state: dict[str, _Stored] = {}
        for record_id, payload in self.backend.iter_payloads(self.collection, STATE_FIELDS):
            chunk = StoredChunk.from_payload(record_id, payload)
            entry = state.setdefault(chunk.doc_id, _Stored())
            entry.hashes.add(chunk.content_hash)
            entry.records.add(record_id)
            entry.chunk_count = chunk.chunk_count
        return state


def point_groups(
    batch: WriteBatch,
    sparse: Sequence[SparseVector],
    dense: npt.NDArray[np.float32] | None,
    store_text: bool,
) -> list[list[PointRecord]]:
    """The points of one encoded write batch, one group per document (vectors in chunk order)."""
    groups: list[list[PointRecord]] = []
    position = 0
    for document, chunks in batch:
        group = []
        for chunk in chunks:
            row = StoredChunk(
                record_id=chunk.record_id,
                doc_id=document.id,
                chunk_index=chunk.index,
                chunk_count=chunk.count,
                content_hash=document.content_hash,
                text=chunk.text if store_text else None,
                metadata=document.metadata,
            )
            vector = None if dense is None else dense[position]
            group.append(PointRecord(chunk.record_id, sparse[position], vector, row.to_payload()))
            position += 1
        groups.append(group)
    return groups


def upsert_documents(backend: Backend, collection: str, groups: list[list[PointRecord]]) -> list[tuple[str, str]]:
    """Write one group of points per document; return ``(record id, reason)`` for each refused point.

    When the database refuses a write's data (:class:`RecordsRejectedError`), the
    documents are written apart by halving, so one bad document costs a few more
    writes and the others land. A partial write reports its own refused points.
    """
    points = [point for group in groups for point in group]
    try:
        backend.upsert(collection, points)
    except PartialWriteError as error:
        return list(error.failures)
    except RecordsRejectedError as error:
        if len(groups) == 1:
            return [(point.id, str(error)) for point in points]
        middle = len(groups) // 2
        return upsert_documents(backend, collection, groups[:middle]) + upsert_documents(
            backend, collection, groups[middle:]
        )
    return []
