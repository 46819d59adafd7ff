"""Attach: SPLARE vectors on a collection another application made, kept up to date.

A RAG stack already has its collection: its own point ids, a payload with the text
(``page_content``), its dense vectors (``openai``). :class:`Attacher` adds one sparse
vector field beside them and fills it from each point's text, writing only that vector
and one namespaced payload key, ``_splare`` (``{"hash": <hash of the text encoded>}``):
never a whole point, so nothing of the app's changes. The spec (encoder fingerprint,
text field) is stored with the collection under ``splare_connect``.

A run reads every point's text and ``_splare.hash``. It encodes only points whose text
is new or changed since the last run, picks up points the app added meanwhile, and
takes points the app deleted (even while it runs) in its stride. Points whose text
field is missing or not a string are reported by id and skipped. A run killed at any
moment resumes: a point counts as done only once its hash is written, after its vector.

Texts longer than the model window are encoded window by window and max-pooled, which
is the SPLARE pooling (``max_t``) over all their tokens, so no text is cut short.

    report = Attacher(encoder, backend, "kb", text_field="page_content").run()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from splare_connect.backends import AttachableBackend, Backend, CollectionSpec, PointId, SparseUpdate
from splare_connect.backends.protocol import check_same_encoder
from splare_connect.backends.schema import STATE_HASH, STATE_KEY, payload_value, text_hash
from splare_connect.chunking import chunk_document, content_window, window_overlap
from splare_connect.documents import Document
from splare_connect.errors import BackendError, CollectionNotFoundError, ConfigError, PartialWriteError
from splare_connect.record_rules import DEFAULT_LIMITS, RecordLimits, content_problem
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from splare_connect.encoder import SplareEncoder

LOGGER = logging.getLogger(__name__)


@dataclass
class AttachReport:
    """What an attach run did; ``to_dict`` gives the JSON the CLI prints.

    Attributes:
        attached_now: This run added the sparse field (the first run).
        points: Points read.
        unchanged: Points whose vector was already current.
        encoded: Points encoded and written.
        vanished: Points the app deleted between being read and being written.
        skipped: ``(point id, reason)`` for points without a usable text.
        seconds: Wall time.
    """

    attached_now: bool = False
    points: int = 0
    unchanged: int = 0
    encoded: int = 0
    vanished: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"id": point, "error": reason} for point, reason in self.skipped]
        return data


class Attacher:
    """Keeps a SPLARE sparse vector on every point of someone else's collection.

    Args:
        encoder: The encoder; its fingerprint is stored with the collection and checked
            on every later run and query.
        backend: A backend that can attach (Qdrant server, local mode or Edge; OpenSearch).
        collection: The app's collection (or index) name.
        text_field: Payload path of each point's text; dots go into nested objects
            (``"metadata.body"``). It may change between runs: points whose text at the
            new path differs are encoded again.
        doc_id_field: Payload path of the source document's id, for grouping results by
            document (None: as the last run had it; on the first, each point is its own
            document).
        sparse_vector_name: The sparse field to add (None: as attached before, else
            ``"splare"``); it must not exist yet unless a previous attach made it.
        idf: Ask the engine to weight query features by IDF (Qdrant; None: as attached
            before, else no).
        batch_size: Texts per encoder forward pass.
        points_per_write: Points encoded and written together (also what a crash can lose).
        limits: Text limits (:class:`RecordLimits`); longer texts are skipped and reported.
    """

    def __init__(
        self,
        encoder: SplareEncoder,
        backend: Backend,
        collection: str,
        *,
        text_field: str,
        doc_id_field: str | None = None,
        sparse_vector_name: str | None = None,
        idf: bool | None = None,
        batch_size: int = 32,
        points_per_write: int = 64,
        limits: RecordLimits = DEFAULT_LIMITS,
    ) -> None:
        if not isinstance(backend, AttachableBackend):
            raise ConfigError(f"the {type(backend).__name__} backend cannot attach to existing collections")
        if points_per_write < 1:
            raise ConfigError(f"points_per_write must be at least 1, got {points_per_write}")
        self.encoder = encoder
        self.backend: Any = backend
        self.collection = collection
        self.text_field = text_field
        self.doc_id_field = doc_id_field
        self.sparse_vector_name = sparse_vector_name
        self.idf = idf
        self.batch_size = batch_size
        self.points_per_write = points_per_write
        self.limits = limits
        self.window = content_window(encoder)
        self.overlap = window_overlap(self.window)  # as the sync engine's chunks

    def run(self, *, on_progress: Callable[[AttachReport], None] | None = None) -> AttachReport:
        """Attach if needed, then encode every point whose text changed since the last run.

        Raises:
            BackendError: No such collection, a field name clash, or the engine refused.
            ConfigError: The collection is splare-connect's own, or was attached with
                other settings.
            EncoderMismatchError: It was attached with another encoder.
        """
        started = time.perf_counter()
        report = AttachReport(attached_now=self._attach())
        text_field = self.text_field
        fields = {text_field.split(".")[0], STATE_KEY}
        pending: list[tuple[PointId, str, str]] = []

        def flush() -> None:
            self._write(pending, report)
            pending.clear()
            if on_progress:
                on_progress(report)

        for point_id, payload in self.backend.iter_points(self.collection, sorted(fields)):
            report.points += 1
            text = payload_value(payload, text_field)
            problem = _text_problem(text, text_field, self.limits)
            if problem is not None:
                report.skipped.append((str(point_id), problem))
                continue
            current = text_hash(text)
            if payload_value(payload, f"{STATE_KEY}.{STATE_HASH}") == current:
                report.unchanged += 1
                continue
            pending.append((point_id, text, current))
            if len(pending) >= self.points_per_write:
                flush()
        if pending:
            flush()
        self.backend.finalize(self.collection)
        report.seconds = time.perf_counter() - started
        if on_progress:
            on_progress(report)
        return report

    def spec_for(self, stored: CollectionSpec | None) -> CollectionSpec:
        """The spec this run stores: the settings given, the rest as the collection was attached."""
        return CollectionSpec(
            name=self.collection,
            sparse_dim=self.encoder.dim,
            fingerprint=self.encoder.fingerprint,
            sparse_vector_name=self.sparse_vector_name or (stored.sparse_vector_name if stored else "splare"),
            idf=self.idf if self.idf is not None else (stored.idf if stored else False),
            text_field=self.text_field,
            doc_id_field=self.doc_id_field or (stored.doc_id_field if stored else None),
        )

    def _attach(self) -> bool:
        """Check the collection, store the spec and add the sparse field (idempotent); True on the first run."""
        layout = self.backend.inspect_collection(self.collection)
        if layout is None:
            raise CollectionNotFoundError(
                f"collection {self.collection!r} does not exist; attach adds vectors to an existing one"
            )
        stored = layout.spec
        if stored is not None and not stored.attached:
            raise ConfigError(
                f"collection {self.collection!r} was made by splare-connect; keep it in sync with `ingest`"
            )
        spec = self.spec_for(stored)
        if stored is not None:
            check_same_encoder(
                self.collection,
                stored.fingerprint,
                spec.fingerprint,
                remedy="attach with the model it was attached with",
            )
            for setting in ("sparse_vector_name", "idf"):
                if getattr(stored, setting) != getattr(spec, setting):
                    raise ConfigError(
                        f"collection {self.collection!r} is attached with {setting}={getattr(stored, setting)!r}, "
                        f"not {getattr(spec, setting)!r}; its stored vectors are for that setting"
                    )
        else:
            name = spec.sparse_vector_name
            if name in layout.dense or name in layout.sparse:
                raise BackendError(
                    f"collection {self.collection!r} already has a vector named {name!r} that splare-connect did "
                    "not make; choose another name for the SPLARE vector (--sparse-name)"
                )
            self._check_text_field()
        # Every run re-states the spec and the field (both idempotent), so a first run
        # killed between the two is completed by the next.
        self.backend.attach_collection(spec)
        return stored is None

    def _check_text_field(self, sample: int = 1000) -> None:
        """Before anything is written on a first run: some point must have a string at the text field.

        Otherwise the field name is most likely mistyped, and attaching would store it and
        skip every point. An empty collection passes (the app may fill it later).
        """
        top = self.text_field.split(".")[0]
        seen = 0
        for _, payload in self.backend.iter_points(self.collection, [top]):
            if isinstance(payload_value(payload, self.text_field), str):
                return
            seen += 1
            if seen >= sample:
                break
        if seen:
            raise ConfigError(
                f"none of the first {seen} points of {self.collection!r} has a string at {self.text_field!r}; "
                "check --text-field (nothing was changed)"
            )

    def _write(self, pending: list[tuple[PointId, str, str]], report: AttachReport) -> None:
        vectors = self._encode([text for _, text, _ in pending])
        updates = [
            SparseUpdate(point_id, vector, {STATE_HASH: current})
            for (point_id, _, current), vector in zip(pending, vectors, strict=True)
        ]
        try:
            vanished = self.backend.update_sparse(self.collection, updates)
            refused: list[tuple[str, str]] = []
        except PartialWriteError as error:  # some points refused, the others written: keep going
            vanished = []
            refused = [(point, f"refused by the database: {reason}") for point, reason in error.failures]
        report.vanished += len(vanished)
        report.skipped += refused
        written = len(updates) - len(vanished) - len(refused)
        report.encoded += written
        LOGGER.info("attached vectors to %d points", written)

    def _encode(self, texts: list[str]) -> list[SparseVector]:
        """Document vectors; a text past the window is encoded in windows and max-pooled."""
        tokenizer = self.encoder.tokenizer
        windows: list[list[str]] = [
            [chunk.text for chunk in chunk_document(Document("-", text), tokenizer, self.window, self.overlap)]
            for text in texts
        ]
        flat = [window for text_windows in windows for window in text_windows]
        encoded = self.encoder.encode(flat, role="document", batch_size=self.batch_size).sparse
        vectors, position = [], 0
        for text_windows in windows:
            parts = encoded[position : position + len(text_windows)]
            position += len(text_windows)
            vectors.append(parts[0] if len(parts) == 1 else _max_pooled(parts, self.encoder.config.document_top_k))
        return vectors


def _text_problem(text: Any, text_field: str, limits: RecordLimits) -> str | None:
    """Why a point's text can't be encoded, naming the field, or None."""
    if text is None:
        return f"no text: payload field {text_field!r} is missing or null"
    if not isinstance(text, str):
        return f"payload field {text_field!r} is a {type(text).__name__}, not a string"
    problem = content_problem(text, {}, limits)
    return None if problem is None else f"payload field {text_field!r}: {problem}"


def _max_pooled(parts: list[SparseVector], top_k: int | None) -> SparseVector:
    """The element-wise maximum of window vectors, pruned to ``top_k``.

    Exact for SPLARE: a feature in the top k of the whole text is in the top k of the
    window where it peaks, so pruning windows first loses nothing.
    """
    merged: dict[int, float] = {}
    for part in parts:
        for index, weight in zip(part.indices.tolist(), part.values.tolist(), strict=True):
            if weight > merged.get(index, 0.0):
                merged[index] = weight
    return SparseVector.from_pairs(merged, parts[0].dim).top_k(top_k)
