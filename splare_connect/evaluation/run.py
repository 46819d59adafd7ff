"""One evaluation run: every system on the same corpus, per query set.

Systems: ``sparse`` (the SAE encoder, documents pruned to the model's
``document_top_k``), ``sparse@N`` for stronger document pruning (top ``N`` of the same
vectors: identical to encoding with ``document_top_k=N``), ``dense`` (the same
backbone's dense embedding, from the same forward pass), ``bm25``, ``hybrid``
(RRF, k=60, of sparse and dense), ``hybrid-dbsf`` (the same two runs fused by
distribution-based score fusion, as Qdrant's ``Fusion.DBSF``), and, with a baseline
encoder, ``baseline-sparse`` and
``baseline-dense``. Metrics come from ir-measures: nDCG@10, MRR@10
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
from splare_connect.evaluation.systems import (
    Bm25,
    Run,
    dbsf,
    dense_run,
    rrf,
    sparse_matrix,
    sparse_run,
    strict_ranking,
)

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.sparse_vector import SparseVector

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
    baseline: dict[str, Any] | None = None  # the compared encoder's name and fingerprint, if any
    runtime: str = "torch"  # what ran the encoder (runtimes share a fingerprint)

    @property
    def precision(self) -> str:
        """The encoder's precision, as its fingerprint records it (fp32 records none)."""
        return str(self.fingerprint.get("precision", "fp32"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "runtime": self.runtime,
            "scores": self.scores,
            "sparsity": self.sparsity,
            "timing": self.timing,
            "baseline": self.baseline,
        }


class _EncodedCorpus:
    """One encoder's side of a run: its corpus vectors (cached on disk), and per query set
    its sparse runs (every document pruning), dense run and hybrids."""

    def __init__(
        self,
        encoder: SplareEncoder,
        dataset: BeirDataset,
        doc_pruning: tuple[int, ...],
        cache_dir: Path | None,
        batch_size: int,
    ) -> None:
        self.encoder = encoder
        self.doc_ids = dataset.doc_ids
        self.batch_size = batch_size
        self.corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, cache_dir, batch_size=batch_size)
        self.doc_matrices = {"sparse": sparse_matrix(self.corpus.sparse, encoder.dim)}
        for top_k in doc_pruning:
            pruned = [vector.top_k(top_k) for vector in self.corpus.sparse]
            self.doc_matrices[f"sparse@{top_k}"] = sparse_matrix(pruned, encoder.dim)
        self.query_nnz: list[int] = []
        self.query_seconds = 0.0

    def runs(self, texts: list[str], query_ids: list[str], systems: tuple[str, ...]) -> dict[str, Run]:
        """This encoder's runs for one query set, limited to ``systems``."""
        start = time.perf_counter()
        encoded = self.encoder.encode(texts, role="query", dense=self.encoder.has_dense, batch_size=self.batch_size)
        self.query_seconds += time.perf_counter() - start
        self.query_nnz.extend(vector.nnz for vector in encoded.sparse)
        runs: dict[str, Run] = {}
        hybrids = {"hybrid", "hybrid-dbsf"} & set(systems)
        sparse = None
        if "sparse" in systems or hybrids:  # a hybrid fuses the sparse run, asked for or not
            sparse = self._sparse_run("sparse", encoded.sparse, query_ids)
        if "sparse" in systems:
            assert sparse is not None  # made above
            for name in self.doc_matrices:
                runs[name] = sparse if name == "sparse" else self._sparse_run(name, encoded.sparse, query_ids)
        dense = None
        if self.corpus.dense is not None and encoded.dense is not None and ("dense" in systems or hybrids):
            dense = dense_run(self.corpus.dense, encoded.dense, query_ids, self.doc_ids, DEPTH)
        if dense is not None and "dense" in systems:
            runs["dense"] = dense
        if dense is not None and sparse is not None:
            if "hybrid" in hybrids:
                runs["hybrid"] = rrf([sparse, dense], k=60, depth=DEPTH)
            if "hybrid-dbsf" in hybrids:
                runs["hybrid-dbsf"] = dbsf([sparse, dense], depth=DEPTH)
        return runs

    def _sparse_run(self, documents: str, queries: list[SparseVector], query_ids: list[str]) -> Run:
        """The queries' run against one of the document matrices (``"sparse"``, ``"sparse@200"``...)."""
        return sparse_run(self.doc_matrices[documents], queries, query_ids, self.doc_ids, self.encoder.dim, DEPTH)


def evaluate(
    encoder: SplareEncoder,
    dataset: BeirDataset,
    *,
    systems: tuple[str, ...] = ("bm25", "dense", "sparse", "hybrid", "hybrid-dbsf"),
    doc_pruning: tuple[int, ...] = (200, 100),
    cache_dir: Path | None = None,
    batch_size: int = 32,
    baseline: SplareEncoder | None = None,
) -> EvaluationResult:
    """Evaluate ``encoder`` (and the baselines) on every query set of ``dataset``.

    ``baseline``, another encoder (for a fine-tuned model: the model it started from),
    adds its ``sparse`` and ``dense`` runs to the same table as ``baseline-sparse`` and
    ``baseline-dense``: one run then holds everything a fine-tune is judged against,
    its teacher included.
    """
    try:
        import ir_measures
    except ImportError as exc:
        raise MissingDependencyError("evaluation needs ir-measures: pip install ir-measures") from exc
    metrics = [ir_measures.parse_measure(name) for name in METRIC_NAMES]
    result = EvaluationResult(model=encoder.config.name, fingerprint=dict(encoder.fingerprint), runtime=encoder.runtime)
    model = _EncodedCorpus(encoder, dataset, doc_pruning, cache_dir, batch_size)
    compared = _EncodedCorpus(baseline, dataset, (), cache_dir, batch_size) if baseline is not None else None
    if baseline is not None:
        result.baseline = {"model": baseline.config.name, "fingerprint": dict(baseline.fingerprint)}
    result.timing["corpus_encode_seconds"] = model.corpus.seconds
    result.timing["corpus_from_cache"] = float(model.corpus.from_cache)
    result.sparsity["document_nnz_mean"] = float(np.mean([v.nnz for v in model.corpus.sparse]))
    for top_k in doc_pruning:
        result.sparsity[f"document_nnz_mean@{top_k}"] = float(np.mean([min(v.nnz, top_k) for v in model.corpus.sparse]))
    bm25 = Bm25(dataset.doc_texts, dataset.doc_ids) if "bm25" in systems else None
    for query_set in dataset.query_sets:
        query_ids = list(query_set.queries)
        texts = [query_set.queries[q] for q in query_ids]
        runs = model.runs(texts, query_ids, systems)
        if compared is not None:
            for name, run in compared.runs(texts, query_ids, ("sparse", "dense")).items():
                runs[f"baseline-{name}"] = run
        if bm25 is not None:
            runs["bm25"] = bm25.run(texts, query_ids, DEPTH)
        qrels = [ir_measures.Qrel(q, d, rel) for q, docs in query_set.qrels.items() for d, rel in docs.items()]
        result.scores[query_set.name] = {}
        for name, run in runs.items():
            ranked = strict_ranking(run)
            scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in ranked.items() for d, s in docs.items()]
            aggregate = ir_measures.calc_aggregate(metrics, qrels, scored)
            result.scores[query_set.name][name] = {str(m): float(aggregate.get(m, 0.0)) for m in metrics}
    result.sparsity["query_nnz_mean"] = float(np.mean(model.query_nnz)) if model.query_nnz else 0.0
    result.timing["query_ms_mean"] = 1000 * model.query_seconds / max(len(model.query_nnz), 1)
    if model.corpus.seconds:
        result.timing["documents_per_second"] = len(dataset.doc_ids) / model.corpus.seconds
    return result
