"""Measure each candidate setting on a collection, as stored, on its engine; choose one.

Every query is encoded once (at the largest query top-k tried, with its dense embedding
when the collection has dense vectors), then each candidate searches the engine with it:
a top-k candidate prunes the encoded query, which is exactly what encoding at that top-k
gives. Quality is nDCG@10, MRR@10 and Recall@100 over documents (a document's best chunk),
macro-averaged over the query sets (one per language, say), so no set outweighs the others
by its size. Latency is each search call's wall time on the engine, p50 and p99.

The choice: the best mean nDCG@10 among the candidates within the latency budget, if it
beats the built-in defaults (plain sparse at the model's query top-k) by at least
``min_gain``; otherwise the defaults stay. The quality side is the same for the same seed;
latency is measured and varies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from splare_connect.backends.descriptor import Capabilities
from splare_connect.errors import ConfigError
from splare_connect.retriever import Retriever
from splare_connect.search_settings import NO_FUSION, SearchSettings
from splare_connect.tuning.candidates import hybrid_candidates, query_top_ks, sparse_candidates
from splare_connect.tuning.metrics import METRICS, mean_scores, score_ranking
from splare_connect.tuning.pruning import MAX_POINTS, PruningResult, measure_pruning, read_stored
from splare_connect.tuning.queries import QuerySet

__all__ = ["Measured", "TuneReport", "measure", "tune"]

DEPTH = 100  # documents ranked per query: Recall@100 needs them
Progress = Callable[[int, int, str], None]
# The app's query vectors: its embedding function over query texts, or the vectors by query id.
QueryDense = Callable[[list[str]], Any] | Mapping[str, Any]


@dataclass
class Measured:
    """One candidate's figures: per query set and macro-averaged, and its latency on the engine."""

    settings: SearchSettings
    scores: dict[str, dict[str, float]]
    mean: dict[str, float]
    latency_ms: tuple[float, float]  # p50, p99

    def label(self) -> str:
        return self.settings.describe().split(" (")[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": {k: v for k, v in self.settings.to_dict().items() if k not in ("source", "measured")},
            "label": self.label(),
            "mean": self.mean,
            "scores": self.scores,
            "latency_ms": {"p50": self.latency_ms[0], "p99": self.latency_ms[1]},
        }


@dataclass
class TuneReport:
    """What ``tune`` measured and chose."""

    collection: str
    query_sets: dict[str, int]
    known_item: bool
    measured: list[Measured]
    default: Measured
    chosen: Measured
    objective: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    using: str | None = None  # the app's dense field the hybrids fused with
    pruning: list[PruningResult] = field(default_factory=list)  # documents pruned, plain sparse, measured here
    static_side: list[Measured] = field(default_factory=list)  # a static query table's queries, plain sparse
    encode_ms: dict[str, float] = field(default_factory=dict)  # query encoding per query, batched: model, static

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "queries": self.query_sets,
            "known_item": self.known_item,
            "objective": self.objective,
            "default": self.default.to_dict(),
            "chosen": self.chosen.to_dict(),
            "candidates": [m.to_dict() for m in self.measured],
            "document_pruning": [p.to_dict() for p in self.pruning],
            "static_query_side": [m.to_dict() for m in self.static_side],
            "query_encoding_ms": self.encode_ms,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }

    def kept_settings(self, when: str) -> SearchSettings:
        """The chosen settings with where they came from, as ``--apply`` keeps them."""
        kind = "known-item" if self.known_item else "labelled"
        queries = sum(self.query_sets.values())
        source = (
            f"tune, {when}, {queries} {kind} queries: nDCG@10 {self.chosen.mean['nDCG@10']:.3f} "
            f"against {self.default.mean['nDCG@10']:.3f} for the defaults"
        )
        settings = self.chosen.settings
        if settings.fusion is not None and self.using is not None:
            settings = replace(settings, using=self.using)
        return settings.with_source(source, {"chosen": self.chosen.mean, "default": self.default.mean})


def measure(
    retriever: Retriever,
    query_sets: Sequence[QuerySet],
    candidates: Sequence[SearchSettings],
    encoded: dict[str, tuple[Any, Any]],
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    using: str | None = None,
) -> list[Measured]:
    """Each candidate's figures; stops before a candidate once ``deadline`` (monotonic) has passed.

    ``using`` names the app's dense field that ``encoded``'s dense vectors were made for
    (None: the collection's own).
    """
    results: list[Measured] = []
    for position, settings in enumerate(candidates):
        if deadline is not None and time.monotonic() > deadline and results:
            break
        if progress:
            progress(position, len(candidates), settings.describe().split(" (")[0])
        per_set: dict[str, dict[str, float]] = {}
        timings: list[float] = []
        for query_set in query_sets:
            per_query = []
            for query_id in query_set.queries:
                sparse, dense = encoded[query_id]
                started = time.perf_counter()
                hits = retriever.search_encoded(
                    sparse,
                    dense=dense,
                    k=DEPTH,
                    hybrid=settings.hybrid or NO_FUSION,
                    weights=settings.weights,
                    rrf_k=settings.rrf_k,
                    query_top_k=settings.query_top_k,
                    group_by_document=True,
                    using=using if settings.fusion is not None else None,
                )
                timings.append(time.perf_counter() - started)
                # Fused scores tie often (RRF: ranks (1, 3) and (3, 1) score alike), and engines
                # order ties as they happen to run; ordered by id, the same seed scores the same.
                ranked = [hit.doc_id for hit in sorted(hits, key=lambda hit: (-hit.score, hit.doc_id))]
                per_query.append(score_ranking(ranked, query_set.qrels.get(query_id, {})))
            per_set[query_set.name] = mean_scores(per_query)
        mean = {name: float(np.mean([scores[name] for scores in per_set.values()])) for name in METRICS}
        p50, p99 = (float(v) * 1000 for v in np.percentile(timings, [50, 99]))
        results.append(Measured(settings, per_set, mean, (p50, p99)))
    if progress:
        progress(len(candidates), len(candidates), "done")
    return results


def tune(
    retriever: Retriever,
    query_sets: Sequence[QuerySet],
    capabilities: Capabilities,
    *,
    max_latency_ms: float | None = None,
    min_gain: float = 0.002,
    time_budget_s: float | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
    query_dense: QueryDense | None = None,
    using: str | None = None,
    document_top_ks: Sequence[int] = (),
    static_queries: Any = None,
) -> TuneReport:
    """Measure the candidates on ``retriever``'s collection and choose one (see the module docstring).

    Args:
        retriever: A retriever on the collection (its encoder is the collection's).
        query_sets: The queries and their judgements (labelled, or known items).
        capabilities: The backend's (its record's): which fusions to try.
        max_latency_ms: The p99 search latency a choice may have (None: no limit).
        min_gain: How much better than the defaults (mean nDCG@10) a choice must be.
        time_budget_s: Stop trying candidates after this long (the defaults are always measured).
        batch_size: Queries per encoder call.
        progress: Called with (candidates done, candidates, the one starting).
        query_dense: The app's own query vectors for its dense field ``using`` (an attached
            collection's, say): a function from query texts to one vector each (its
            embedding model), or the vectors by query id. None: the collection's own.
        using: The dense field ``query_dense`` is for.
        document_top_ks: Document weights to try keeping (plain sparse at the best query
            top-k), measured by pruning the stored vectors in memory (:mod:`.pruning`);
            reported, not chosen: applying one means rewriting the stored vectors.
        static_queries: A static (inference-free) query table for the model
            (:class:`~splare_connect.encoding.static_queries.StaticQueryEncoder`): plain
            sparse with its queries is measured too, and reported (searches use a table
            when given one, ``--static-queries``: it is not a setting a collection keeps).
    """
    started = time.monotonic()
    deadline = None if time_budget_s is None else started + time_budget_s
    notes = []
    model_k = retriever.encoder.config.query_top_k or 40
    if (query_dense is None) != (using is None):
        raise ConfigError("the app's query vectors and the dense field they are for go together: give both or neither")
    own_dense = query_dense is None and bool(retriever.spec.dense_dim)
    has_dense = own_dense or query_dense is not None
    texts = [(query_id, text) for s in query_sets for query_id, text in s.queries.items()]
    encoded, encode_ms = _encode_queries(
        retriever, texts, own_dense, query_dense, batch_size, max(query_top_ks(model_k))
    )
    tried = sparse_candidates(model_k)
    sparse = measure(retriever, query_sets, tried, encoded, progress=progress, deadline=deadline)
    default = sparse[0]  # plain sparse at the model's query top-k: the built-in defaults
    best_sparse = max(sparse, key=lambda m: m.mean["nDCG@10"])
    measured = list(sparse)
    if has_dense:
        hybrids = hybrid_candidates(best_sparse.settings.query_top_k or model_k, capabilities)
        tried += hybrids
        measured += measure(retriever, query_sets, hybrids, encoded, progress=progress, deadline=deadline, using=using)
    else:
        notes.append("the collection has no dense vectors of its own, and no query vectors were given: no hybrids")
    static_side: list[Measured] = []
    if static_queries is not None:
        encoding = time.perf_counter()
        static_sparse = static_queries.encode_queries([text for _, text in texts])
        encode_ms["static"] = 1000 * (time.perf_counter() - encoding) / max(len(texts), 1)
        static_encoded = {query_id: (static_sparse[i], None) for i, (query_id, _) in enumerate(texts)}
        static_side = measure(retriever, query_sets, sparse_candidates(model_k), static_encoded, deadline=deadline)
        notes.append("the static query side is reported, not kept: searches use a table when given --static-queries")
    if len(measured) < len(tried):
        notes.append(f"stopped at the time budget ({time_budget_s:g} s): {len(tried) - len(measured)} not measured")
    pruning: list[PruningResult] = []
    if document_top_ks:
        pruning = _measure_pruning(retriever, query_sets, encoded, best_sparse, document_top_ks, notes, progress)
    chosen = _choose(measured, default, max_latency_ms, min_gain, notes)
    if any(s.known_item for s in query_sets):
        notes.append(
            "known-item queries (a document's first sentence, one answer each) measure something narrower than "
            "real questions, and favour sparse matching: bring labelled queries for a choice you can rely on"
        )
    objective = "best mean nDCG@10" + (f" within {max_latency_ms:g} ms p99" if max_latency_ms is not None else "")
    return TuneReport(
        collection=retriever.collection,
        query_sets={s.name: len(s.queries) for s in query_sets},
        known_item=any(s.known_item for s in query_sets),
        measured=measured,
        default=default,
        chosen=chosen,
        objective=objective,
        seconds=time.monotonic() - started,
        notes=notes,
        using=using,
        pruning=pruning,
        static_side=static_side,
        encode_ms=encode_ms,
    )


def _app_vectors(query_dense: QueryDense | None, texts: list[tuple[str, str]]) -> Any:
    """The app's query vectors in ``texts`` order, as float32 rows.

    Raises:
        ConfigError: A query without a vector, or not one finite vector per query.
    """
    if query_dense is None:
        return None
    if callable(query_dense):
        rows = np.asarray(query_dense([text for _, text in texts]), dtype=np.float32)
    else:
        missing = [query_id for query_id, _ in texts if query_id not in query_dense]
        if missing:
            raise ConfigError(f"no query vector for {len(missing)} queries, e.g. {missing[0]!r}")
        rows = np.asarray([query_dense[query_id] for query_id, _ in texts], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] != len(texts) or not np.isfinite(rows).all():
        raise ConfigError(f"the app's query vectors must be {len(texts)} finite vectors of one width")
    return rows


def _measure_pruning(
    retriever: Retriever,
    query_sets: Sequence[QuerySet],
    encoded: Mapping[str, tuple[Any, Any]],
    best_sparse: Measured,
    document_top_ks: Sequence[int],
    notes: list[str],
    progress: Progress | None,
) -> list[PruningResult]:
    """Plain sparse at the best query top-k, with documents as stored and pruned to each top-k."""
    points = retriever.backend.count(retriever.collection)
    if points > MAX_POINTS:
        notes.append(f"document pruning not measured: {points} points are more than {MAX_POINTS} to read here")
        return []
    spec = retriever.spec
    doc_field = (spec.doc_id_field or "") if spec.attached else "doc_id"
    documents, vectors = read_stored(retriever.backend, retriever.collection, doc_field)
    query_k = best_sparse.settings.query_top_k
    queries = {query_id: sparse.top_k(query_k) for query_id, (sparse, _) in encoded.items()}

    def step(label: str) -> None:
        if progress:
            progress(0, 1, label)

    results = measure_pruning(documents, vectors, query_sets, queries, [None, *document_top_ks], step)
    notes.append(
        "document pruning was measured on the stored vectors pruned in memory (plain sparse, query top-k "
        f"{query_k}); it is reported, not applied: applying it would rewrite the stored vectors"
    )
    return results


def _encode_queries(
    retriever: Retriever,
    texts: list[tuple[str, str]],
    own_dense: bool,
    query_dense: QueryDense | None,
    batch_size: int,
    widest: int,
) -> tuple[dict[str, tuple[Any, Any]], dict[str, float]]:
    """Every query encoded once, at the widest top-k tried, with its dense vector; and the time per query."""
    started = time.perf_counter()
    result = retriever.encoder.encode(
        [text for _, text in texts], role="query", dense=own_dense, batch_size=batch_size, top_k=widest
    )
    encode_ms = {"model": 1000 * (time.perf_counter() - started) / max(len(texts), 1)}
    dense_rows = result.dense if own_dense else _app_vectors(query_dense, texts)
    encoded = {
        query_id: (result.sparse[i], None if dense_rows is None else dense_rows[i])
        for i, (query_id, _) in enumerate(texts)
    }
    return encoded, encode_ms


def _choose(
    measured: list[Measured], default: Measured, max_latency_ms: float | None, min_gain: float, notes: list[str]
) -> Measured:
    """The best mean nDCG@10 within the latency budget, if it beats the defaults by ``min_gain``."""
    allowed = [m for m in measured if max_latency_ms is None or m.latency_ms[1] <= max_latency_ms]
    if not allowed:
        notes.append(f"no candidate met the latency budget ({max_latency_ms:g} ms p99): the defaults stay")
        return default
    best = max(allowed, key=lambda m: m.mean["nDCG@10"])
    if best is not default and best.mean["nDCG@10"] < default.mean["nDCG@10"] + min_gain:
        notes.append(f"no candidate beat the defaults by {min_gain} nDCG@10: the defaults stay")
        return default
    return best
