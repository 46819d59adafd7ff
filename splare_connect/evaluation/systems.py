"""The retrieval systems compared: SAE-sparse, dense, BM25, and their hybrids (RRF and DBSF).

Scoring is exact and in memory (a sparse or dense matrix product over the whole
corpus), so the figures measure the models, not an index's approximations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from splare_connect.errors import MissingDependencyError
from splare_connect.sparse_vector import SparseVector

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}


def sparse_matrix(vectors: Sequence[SparseVector], dim: int):  # type: ignore[no-untyped-def]
    """Rows of a scipy CSR matrix, one per vector."""
    from scipy.sparse import csr_matrix

    indptr = np.zeros(len(vectors) + 1, np.int64)
    indptr[1:] = np.cumsum([v.nnz for v in vectors])
    indices = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.uint32)
    values = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    return csr_matrix((values, indices.astype(np.int64), indptr), shape=(len(vectors), dim), dtype=np.float32)


def top_k_run(scores: npt.NDArray[np.float32], query_ids: list[str], doc_ids: list[str], k: int) -> Run:
    """``scores`` is (queries, docs); keep each query's ``k`` best documents with score > 0."""
    run: Run = {}
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    for row, query_id in enumerate(query_ids):
        picked = best[row]
        run[query_id] = {doc_ids[j]: float(scores[row, j]) for j in picked if scores[row, j] > 0}
    return run


def sparse_run(
    doc_matrix,
    queries: Sequence[SparseVector],
    query_ids: list[str],
    doc_ids: list[str],
    dim: int,
    k: int,  # type: ignore[no-untyped-def]
) -> Run:
    """Top ``k`` by sparse dot product."""
    query_matrix = sparse_matrix(queries, dim)
    scores = (query_matrix @ doc_matrix.T).toarray()
    return top_k_run(scores, query_ids, doc_ids, k)


def dense_run(
    doc_vectors: npt.NDArray[np.float32],
    query_vectors: npt.NDArray[np.float32],
    query_ids: list[str],
    doc_ids: list[str],
    k: int,
) -> Run:
    """Top ``k`` by cosine (the vectors are L2-normalised)."""
    scores = query_vectors @ doc_vectors.T
    # Cosines can be <= 0; shift so that top_k_run keeps them (ranks, not values, matter).
    return top_k_run(scores + 2.0, query_ids, doc_ids, k)


class Bm25:
    """BM25 from the maintained ``bm25s`` package (English stopwords, Snowball stemmer when available)."""

    def __init__(self, doc_texts: list[str], doc_ids: list[str]) -> None:
        try:
            import bm25s
        except ImportError as exc:
            raise MissingDependencyError("BM25 needs bm25s: pip install bm25s PyStemmer") from exc
        try:
            import Stemmer

            self.stemmer = Stemmer.Stemmer("english")
        except ImportError:
            self.stemmer = None
        self._bm25s = bm25s
        self.doc_ids = doc_ids
        self.index = bm25s.BM25()
        self.index.index(
            bm25s.tokenize(doc_texts, stopwords="en", stemmer=self.stemmer, show_progress=False), show_progress=False
        )

    def run(self, queries: list[str], query_ids: list[str], k: int) -> Run:
        tokens = self._bm25s.tokenize(queries, stopwords="en", stemmer=self.stemmer, show_progress=False)
        documents, scores = self.index.retrieve(tokens, k=min(k, len(self.doc_ids)), show_progress=False)
        return {
            query_id: {
                self.doc_ids[int(d)]: float(s) for d, s in zip(documents[row], scores[row], strict=True) if s > 0
            }
            for row, query_id in enumerate(query_ids)
        }


def rrf(runs: Sequence[Run], k: int = 60, depth: int = 100) -> Run:
    """Reciprocal rank fusion: ``sum 1 / (k + rank)`` over the runs, ranks from 1.

    Fused scores tie often (a document first in one run and third in the other scores
    exactly what one third and first does); :func:`strict_ranking` orders such ties
    before the run is scored.
    """

    def reciprocal_ranks(scored: dict[str, float]) -> dict[str, float]:
        return {doc_id: 1.0 / (k + rank) for rank, doc_id in enumerate(_ranked(scored), start=1)}

    return _fuse(runs, reciprocal_ranks, depth)


def dbsf(runs: Sequence[Run], depth: int = 100) -> Run:
    """Distribution-based score fusion, as Qdrant computes it (``Fusion.DBSF``).

    Each run's scores for a query are mapped linearly from ``mean - 3 std`` .. ``mean + 3
    std`` (sample standard deviation) onto 0..1, and a document's mapped scores are
    summed; a document missing from a run adds nothing. A run with one document, or with
    all scores equal, maps them to 0.5. Unlike RRF it keeps how far apart the scores
    are, so a ranking whose top document stands out counts for more.
    """
    return _fuse(runs, _three_sigma_scaled, depth)


def _fuse(runs: Sequence[Run], contribution: Callable[[dict[str, float]], dict[str, float]], depth: int) -> Run:
    """Per query, each document's ``contribution`` from every run that holds it, summed; the
    ``depth`` best kept."""
    fused: Run = {}
    for run in runs:
        for query_id, scored in run.items():
            target = fused.setdefault(query_id, {})
            for doc_id, value in contribution(scored).items():
                target[doc_id] = target.get(doc_id, 0.0) + value
    return {q: {doc_id: scores[doc_id] for doc_id in _ranked(scores)[:depth]} for q, scores in fused.items()}


def _three_sigma_scaled(scored: dict[str, float]) -> dict[str, float]:
    """One run's scores for one query, ``mean +- 3 sample std`` mapped onto 0..1."""
    values = np.fromiter(scored.values(), np.float64, len(scored))
    if len(values) < 2 or values.max() == values.min():  # not std() == 0: its rounded mean can miss
        return dict.fromkeys(scored, 0.5)
    mean, std = values.mean(), values.std(ddof=1)
    low = mean - 3 * std
    return {doc_id: float((value - low) / (6 * std)) for doc_id, value in zip(scored, values, strict=True)}


def strict_ranking(run: Run) -> Run:
    """The same ranking with no tied scores: ties ordered by document id, scores replaced by
    ``n - position``.

    Metric implementations break score ties each their own way (trec_eval by document
    id, descending; others by input order), so a run with ties could get an nDCG@10 and an
    MRR@10 from two different orders; with single-relevant queries MRR@10 could even
    exceed nDCG@10. Every run is scored through this, so all metrics see one order.
    """
    strict: Run = {}
    for query_id, scored in run.items():
        ranked = _ranked(scored)
        strict[query_id] = {doc_id: float(len(ranked) - position) for position, doc_id in enumerate(ranked)}
    return strict


def _ranked(scored: dict[str, float]) -> list[str]:
    """Document ids by score, highest first; equal scores by document id."""
    return sorted(scored, key=lambda doc_id: (-scored[doc_id], doc_id))
