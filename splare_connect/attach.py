"""Attach: SPLARE vectors on a collection another application made, kept up to date.

A RAG stack already has its collection: its own point ids, a payload with the text
(``page_content``), its dense vectors (``openai``). :class:`Attacher` adds one sparse
vector field beside them and fills it from each point's text, writing only that vector
and one namespaced payload key, ``_splare`` (``{"hash": <hash of the text encoded>}``):
never a whole point, so nothing of the app's changes. The spec (encoder fingerprint,
text field, state key) is stored with the collection under ``splare_connect``.

**Ownership.** splare-connect writes only names it owns and can show it owns. Before
the first write, every reserved name is checked against what is there: a vector of that
name, a ``splare_connect`` metadata key, or any point with a ``_splare`` payload key
means the app already uses it, and attach refuses with one line (the payload key and
the vector name can be chosen instead: ``state_key``, ``sparse_vector_name``). A
collection whose dense vector is unnamed is refused unless asked for
(``allow_unnamed_vector``): once it has a named sparse vector too, Qdrant returns the
app's vector in a map (``{"": [...]}``) instead of a list, which breaks code that reads
it as a list. Once attached, the state key and its values are splare-connect's.

**Convergence.** A run reads every point's text, state and whether it has the sparse
vector. It encodes a point whose text hash differs from its state *or* whose vector is
missing (an app that re-upserts a point with the payload it read but only its own
vectors, or copies a point to a new id, removes it), picks up points the app added
meanwhile, and takes points the app deleted (even while it runs) in its stride. A point
without a usable text (missing, not a string, past the limits) is reported by id and
loses splare-connect's vector and state, which would otherwise still match its old
text. A run killed at any moment resumes: a point counts as done only once its hash is
written, after its vector.

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

from splare_connect.backends import AttachableBackend, Backend, CollectionLayout, CollectionSpec, PointId, SparseUpdate
from splare_connect.backends.protocol import check_same_encoder, check_state_key
from splare_connect.backends.schema import SPEC_KEY, STATE_HASH, STATE_KEY, payload_value, text_hash
from splare_connect.chunking import chunk_document, content_window, window_overlap
from splare_connect.documents import Document
from splare_connect.errors import BackendError, CollectionNotFoundError, ConfigError, PartialWriteError
from splare_connect.record_rules import DEFAULT_LIMITS, RecordLimits, content_problem
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

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
        cleared: Points without a usable text that lost splare-connect's vector and state.
        skipped: ``(point id, reason)`` for points without a usable text.
        seconds: Wall time.
    """

    attached_now: bool = False
    points: int = 0
    unchanged: int = 0
    encoded: int = 0
    vanished: int = 0
    cleared: int = 0
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
        state_key: The payload key for splare-connect's state of each point (None: as
            attached before, else ``"_splare"``); one the app already uses is refused.
        allow_unnamed_vector: Attach to a collection whose dense vector is unnamed,
            accepting that the app then reads its vector back in a map keyed ``""``.
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
        state_key: str | None = None,
        allow_unnamed_vector: bool = False,
        batch_size: int = 32,
        points_per_write: int = 64,
        limits: RecordLimits = DEFAULT_LIMITS,
    ) -> None:
        if not isinstance(backend, AttachableBackend):
            raise ConfigError(f"the {type(backend).__name__} backend cannot attach to existing collections")
        if points_per_write < 1:
            raise ConfigError(f"points_per_write must be at least 1, got {points_per_write}")
        if state_key is not None:
            check_state_key(state_key)
            if text_field.split(".")[0] == state_key:
                raise ConfigError(f"the text field {text_field!r} cannot live under the state key {state_key!r}")
        self.encoder = encoder
        self.backend: Any = backend
        self.collection = collection
        self.text_field = text_field
        self.doc_id_field = doc_id_field
        self.sparse_vector_name = sparse_vector_name
        self.idf = idf
        self.state_key = state_key
        self.allow_unnamed_vector = allow_unnamed_vector
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
        spec, attached_now = self._attach()
        report = AttachReport(attached_now=attached_now)
        text_field, state_key = self.text_field, spec.state_key
        fields = {text_field.split(".")[0], state_key}
        pending: list[tuple[PointId, str, str]] = []
        stale: list[PointId] = []

        def flush() -> None:
            self._write(pending, report)
            pending.clear()
            if on_progress:
                on_progress(report)

        for point in self.backend.iter_points(self.collection, sorted(fields), spec.sparse_vector_name):
            report.points += 1
            text = payload_value(point.payload, text_field)
            problem = _text_problem(text, text_field, self.limits)
            if problem is not None:
                report.skipped.append((str(point.id), problem))
                if point.has_sparse or state_key in point.payload:
                    stale.append(point.id)
                continue
            current = text_hash(point.id, text)
            if point.has_sparse and payload_value(point.payload, f"{state_key}.{STATE_HASH}") == current:
                report.unchanged += 1
                continue
            pending.append((point.id, text, current))
            if len(pending) >= self.points_per_write:
                flush()
        if pending:
            flush()
        for start in range(0, len(stale), self.points_per_write):
            batch = stale[start : start + self.points_per_write]
            self.backend.clear_sparse(self.collection, batch)
            report.cleared += len(batch)
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
            state_key=self.state_key or (stored.state_key if stored else STATE_KEY),
        )

    def _attach(self) -> tuple[CollectionSpec, bool]:
        """Check the collection, store the spec and add the sparse field (idempotent).

        Returns:
            The spec in force, and whether this was the first run.
        """
        layout = self.backend.inspect_collection(self.collection)
        if layout is None:
            raise CollectionNotFoundError(
                f"collection {self.collection!r} does not exist; attach adds vectors to an existing one"
            )
        if layout.cannot_attach is not None:
            raise ConfigError(f"cannot attach to {self.collection!r}: {layout.cannot_attach} (nothing was changed)")
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
            for setting in ("sparse_vector_name", "idf", "state_key"):
                if getattr(stored, setting) != getattr(spec, setting):
                    raise ConfigError(
                        f"collection {self.collection!r} is attached with {setting}={getattr(stored, setting)!r}, "
                        f"not {getattr(spec, setting)!r}; its stored vectors are for that setting"
                    )
        else:
            self._check_names_are_free(layout, spec)
            self._check_text_field()
        # Every run re-states the spec and the field (both idempotent), so a first run
        # killed between the two is completed by the next.
        self.backend.attach_collection(spec)
        return spec, stored is None

    def _check_names_are_free(self, layout: CollectionLayout, spec: CollectionSpec) -> None:
        """Before the first write: every name splare-connect would write must be unused by the app.

        Raises:
            BackendError: The vector name is taken.
            ConfigError: The metadata key, or the state key on some point, is the app's;
                or the app's dense vector is unnamed and that was not accepted.
        """
        name = spec.sparse_vector_name
        if name in layout.dense or name in layout.sparse:
            raise BackendError(
                f"collection {self.collection!r} already has a vector named {name!r} that splare-connect did "
                "not make; choose another name for the SPLARE vector (--sparse-name)"
            )
        if layout.spec_key_taken:
            raise ConfigError(
                f"metadata key {SPEC_KEY!r} of {self.collection!r} is the application's own; splare-connect keeps "
                "its settings under that key and will not overwrite it (nothing was changed)"
            )
        if "" in layout.dense and not self.allow_unnamed_vector:
            raise ConfigError(
                f"collection {self.collection!r} has an unnamed dense vector: once a named sparse vector is added, "
                "the database returns it to the app as {'': [...]} instead of a list, which breaks code reading "
                "it as a list; pass --allow-unnamed-vector (allow_unnamed_vector=True) if your app reads vectors "
                "by name or not at all (nothing was changed)"
            )
        if name in layout.payload_fields:
            raise BackendError(
                f"collection {self.collection!r} already declares a field named {name!r}; choose another name "
                "for the SPLARE vector (--sparse-name) (nothing was changed)"
            )
        if spec.state_key in layout.payload_fields:
            raise ConfigError(
                f"collection {self.collection!r} already declares a field {spec.state_key!r}; choose another key "
                "for splare-connect's state (--state-key) (nothing was changed)"
            )
        scanned = [spec.state_key, *([name] if layout.vectors_in_payload else [])]
        for point in self.backend.iter_points(self.collection, scanned):
            if spec.state_key in point.payload:
                raise ConfigError(
                    f"point {point.id} of {self.collection!r} already has a payload key {spec.state_key!r} that "
                    "splare-connect did not write; choose another key for splare-connect's state (--state-key) "
                    "(nothing was changed)"
                )
            if name in point.payload:
                raise BackendError(
                    f"point {point.id} of {self.collection!r} already has a field {name!r}; choose another name "
                    "for the SPLARE vector (--sparse-name) (nothing was changed)"
                )

    def _check_text_field(self, sample: int = 1000) -> None:
        """Before anything is written on a first run: some point must have a string at the text field.

        Otherwise the field name is most likely mistyped, and attaching would store it and
        skip every point. An empty collection passes (the app may fill it later).
        """
        top = self.text_field.split(".")[0]
        seen = 0
        for point in self.backend.iter_points(self.collection, [top]):
            if isinstance(payload_value(point.payload, self.text_field), str):
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
