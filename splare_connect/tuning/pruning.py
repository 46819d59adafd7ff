"""What keeping fewer weights per stored document would do, measured without re-encoding anything.

Re-encoding with a smaller ``document_top_k`` keeps each document's strongest weights,
which is exactly what pruning its stored vector gives (docs/evaluation.md). So the stored
vectors are read once, pruned in memory, and the queries scored against them here, exactly
(a float64 dot product over an inverted index in numpy): nothing is written to the
engine. Latency is not measured for these: the engine never holds the pruned vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from splare_connect.backends.schema import payload_value
from splare_connect.sparse_vector import SparseVector
from splare_connect.tuning.metrics import METRICS, mean_scores, score_ranking
from splare_connect.tuning.queries import QuerySet

__all__ = ["MAX_POINTS", "PruningResult", "measure_pruning", "read_stored"]

PAGE = 1000  # stored vectors read per request
MAX_POINTS = 200_000  # larger collections are not read whole into memory: pruning is not measured


@dataclass(frozen=True)
class PruningResult:
    """Plain sparse search quality with documents pruned to ``document_top_k`` weights (None: as stored)."""

    document_top_k: int | None
    mean: dict[str, float]
    scores: dict[str, dict[str, float]]
    stored_weights: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_top_k": self.document_top_k,
            "mean": self.mean,
            "scores": self.scores,
            "stored_weights": self.stored_weights,
        }


def read_stored(backend: Any, collection: str, doc_field: str) -> tuple[list[str], list[SparseVector]]:
    """Every point's document id and stored sparse vector."""
    fields = [doc_field.split(".")[0]] if doc_field else []
    owners = dict(backend.iter_payloads(collection, fields))
    ids = sorted(owners)
    documents, vectors = [], []
    for start in range(0, len(ids), PAGE):
        page = ids[start : start + PAGE]
        stored = backend.fetch_sparse(collection, page)
        for point_id in page:
            if point_id in stored:
                owner = payload_value(owners[point_id], doc_field) if doc_field else None
                documents.append(str(owner or point_id))
                vectors.append(stored[point_id])
    return documents, vectors


def measure_pruning(
    documents: Sequence[str],
    vectors: Sequence[SparseVector],
    query_sets: Sequence[QuerySet],
    queries: Mapping[str, SparseVector],
    document_top_ks: Sequence[int | None],
    progress: Callable[[str], None] | None = None,
) -> list[PruningResult]:
    """Each pruning's figures, over the given (already pruned to their top-k) query vectors."""
    results = []
    doc_index = {doc: i for i, doc in enumerate(dict.fromkeys(documents))}
    owner = np.array([doc_index[doc] for doc in documents], np.int64)
    names = list(doc_index)
    for top_k in document_top_ks:
        if progress:
            progress(f"documents pruned to {top_k or 'all'} weights")
        pruned = [v.top_k(top_k) for v in vectors]
        postings = _postings(pruned)
        per_set = {}
        for query_set in query_sets:
            per_query = []
            for query_id in query_set.queries:
                ranked = _rank(postings, queries[query_id], owner, len(names), names)
                per_query.append(score_ranking(ranked, query_set.qrels.get(query_id, {})))
            per_set[query_set.name] = mean_scores(per_query)
        mean = {name: float(np.mean([s[name] for s in per_set.values()])) for name in METRICS}
        results.append(PruningResult(top_k, mean, per_set, int(sum(v.nnz for v in pruned))))
    return results


def _postings(vectors: Sequence[SparseVector]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Feature id -> (point rows, weights): the inverted index an engine would build."""
    if not vectors:
        return {}
    rows = np.concatenate([np.full(v.nnz, i, np.int64) for i, v in enumerate(vectors)])
    features = np.concatenate([v.indices.astype(np.int64) for v in vectors])
    weights = np.concatenate([v.values.astype(np.float64) for v in vectors])
    order = np.argsort(features, kind="stable")
    features, rows, weights = features[order], rows[order], weights[order]
    bounds = np.flatnonzero(np.diff(features)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(features)]])
    return {int(features[a]): (rows[a:b], weights[a:b]) for a, b in zip(starts, ends, strict=True)}


def _rank(
    postings: Mapping[int, tuple[np.ndarray, np.ndarray]],
    query: SparseVector,
    owner: np.ndarray,
    documents: int,
    names: Sequence[str],
    depth: int = 100,
) -> list[str]:
    """Documents by their best point's dot product with ``query``, ties by id, top ``depth``."""
    scores = np.zeros(len(owner), np.float64)
    for feature, weight in zip(query.indices.tolist(), query.values.tolist(), strict=True):
        if feature in postings:
            rows, values = postings[feature]
            np.add.at(scores, rows, weight * values)
    best = np.full(documents, -np.inf)
    np.maximum.at(best, owner, scores)
    hit = np.flatnonzero(best > 0)
    ordered = sorted(hit.tolist(), key=lambda d: (-best[d], names[d]))[:depth]
    return [names[d] for d in ordered]
