"""One evaluation run: every system on the same corpus, per query set.

Systems: ``sparse`` (the SAE encoder, documents pruned to the model's
``document_top_k``), ``sparse@N`` for stronger document pruning (top ``N`` of the same
vectors: identical to encoding with ``document_top_k=N``), ``dense`` (the same
backbone's dense embedding, from the same forward pass), ``bm25``, and ``hybrid``
(RRF, k=60, of sparse and dense). Metrics come from ir-measures: nDCG@10, MRR@10
(``RR@10``) and Recall@100.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from splare_connect.errors import MissingDependencyError
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.dataset import BeirDataset
from splare_connect.evaluation.systems import Bm25, Run, dense_run, rrf, sparse_matrix, sparse_run

if TYPE_CHECKING:
    from splare_connect.encoder import SplareEncoder

METRIC_NAMES = ("nDCG@10", "RR@10", "R@100")
DEPTH = 100


@dataclass
class EvaluationResult:
    """Scores per query set and system, with sparsity and timing."""

    model: str
    fingerprint: dict[str, Any]
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # set -> system -> metric
    sparsity: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def precision(self) -> str:
        """The encoder's precision, as its fingerprint records it (fp32 records none)."""
        return str(self.fingerprint.get("precision", "fp32"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "scores": self.scores,
            "sparsity": self.sparsity,
            "timing": self.timing,
        }


def evaluate(
    encoder: SplareEncoder,
    dataset: BeirDataset,
    *,
    systems: tuple[str, ...] = ("bm25", "dense", "sparse", "hybrid"),
    doc_pruning: tuple[int, ...] = (200, 100),
    cache_dir: Path | None = None,
    batch_size: int = 32,
) -> EvaluationResult:
    """Evaluate ``encoder`` (and the baselines) on every query set of ``dataset``."""
    try:
        import ir_measures
    except ImportError as exc:
        raise MissingDependencyError("evaluation needs ir-measures: pip install ir-measures") from exc
    metrics = [ir_measures.parse_measure(name) for name in METRIC_NAMES]
    result = EvaluationResult(model=encoder.config.name, fingerprint=dict(encoder.fingerprint))
    corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache_dir, batch_size=batch_size)
    result.timing["corpus_encode_seconds"] = corpus.seconds
    result.timing["corpus_from_cache"] = float(corpus.from_cache)
    result.sparsity["document_nnz_mean"] = float(np.mean([v.nnz for v in corpus.sparse]))
    doc_matrices = {"sparse": sparse_matrix(corpus.sparse, encoder.dim)}
    for top_k in doc_pruning:
        doc_matrices[f"sparse@{top_k}"] = sparse_matrix([v.top_k(top_k) for v in corpus.sparse], encoder.dim)
        result.sparsity[f"document_nnz_mean@{top_k}"] = float(np.mean([min(v.nnz, top_k) for v in corpus.sparse]))
    bm25 = Bm25(dataset.doc_texts, dataset.doc_ids) if "bm25" in systems else None
    query_nnz, query_seconds, query_count = [], 0.0, 0
    for query_set in dataset.query_sets:
        query_ids = list(query_set.queries)
        texts = [query_set.queries[q] for q in query_ids]
        start = time.perf_counter()
        encoded = encoder.encode(texts, role="query", dense=encoder.has_dense, batch_size=batch_size)
        query_seconds += time.perf_counter() - start
        query_count += len(texts)
        query_nnz.extend(v.nnz for v in encoded.sparse)
        runs: dict[str, Run] = {}
        for name, matrix in doc_matrices.items():
            if "sparse" in systems:
                runs[name] = sparse_run(matrix, encoded.sparse, query_ids, dataset.doc_ids, encoder.dim, DEPTH)
        dense = None
        if corpus.dense is not None and encoded.dense is not None and {"dense", "hybrid"} & set(systems):
            dense = dense_run(corpus.dense, encoded.dense, query_ids, dataset.doc_ids, DEPTH)
        if dense is not None and "dense" in systems:
            runs["dense"] = dense
        if dense is not None and "hybrid" in systems and "sparse" in runs:
            runs["hybrid"] = rrf([runs["sparse"], dense], k=60, depth=DEPTH)
        if bm25 is not None:
            runs["bm25"] = bm25.run(texts, query_ids, DEPTH)
        qrels = [ir_measures.Qrel(q, d, rel) for q, docs in query_set.qrels.items() for d, rel in docs.items()]
        result.scores[query_set.name] = {}
        for name, run in runs.items():
            scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()]
            aggregate = ir_measures.calc_aggregate(metrics, qrels, scored)
            result.scores[query_set.name][name] = {str(m): float(aggregate.get(m, 0.0)) for m in metrics}
    result.sparsity["query_nnz_mean"] = float(np.mean(query_nnz)) if query_nnz else 0.0
    result.timing["query_ms_mean"] = 1000 * query_seconds / max(query_count, 1)
    if corpus.seconds:
        result.timing["documents_per_second"] = len(dataset.doc_ids) / corpus.seconds
    return result
